"""Servicers: the WeCom 微信客服 servicer resource, with batching that never loses an id."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from itertools import zip_longest
from typing import Any

import anyio
import attrs

from . import _validate
from ._serde import structure_list
from ._transport import Transport
from .errors import (
    AccessTokenError,
    BatchError,
    ClientClosedError,
    CredentialError,
    InvalidResponseError,
    OpenKfidError,
    PermissionDeniedError,
    WeChatError,
)
from .models import BatchResult, Servicer, ServicerResult

__all__ = ["MAX_IDS_PER_REQUEST", "ProgressCallback", "Servicers"]

#: Called as ``on_progress(ids_done, ids_total)`` after each request of a batch.
ProgressCallback = Callable[[int, int], None]

#: WeChat takes at most 100 userids and 100 department ids per add or delete request.
MAX_IDS_PER_REQUEST = 100
#: Failures after which no further request of the batch can succeed.
_FATAL = (
    CredentialError,
    PermissionDeniedError,
    OpenKfidError,
    AccessTokenError,
    ClientClosedError,
)
_NOT_REPORTED = "not reported by the server"
_ADD = "/cgi-bin/kf/servicer/add"
_DELETE = "/cgi-bin/kf/servicer/del"
#: delete's "user is not a servicer": the id is already where the caller wants it.
_NOT_A_SERVICER = 95014


@attrs.define
class _Chunk:
    userids: list[str]
    department_ids: list[int]


@attrs.define
class _BatchState:
    """What a batch knows while its requests run: outcomes by id, and what stopped it."""

    by_userid: dict[str, ServicerResult] = attrs.Factory(dict)
    by_department: dict[int, ServicerResult] = attrs.Factory(dict)
    errors: list[Exception] = attrs.Factory(list)
    stopped: bool = False
    total: int = 0
    done: int = 0
    on_progress: ProgressCallback | None = None
    callback_error: Exception | None = None

    def fail(self, error: Exception) -> None:
        """Record what left a request's ids unprocessed; a fatal one stops the batch."""
        self.errors.append(error)
        if isinstance(error, _FATAL) or not isinstance(error, WeChatError):
            self.stopped = True

    def advance(self, chunk: _Chunk) -> None:
        self.done += len(chunk.userids) + len(chunk.department_ids)
        if self.on_progress is None or self.callback_error is not None:
            return
        try:
            self.on_progress(self.done, self.total)
        except Exception as exc:
            # The caller's code failed, not the batch: stop sending and report it with every
            # outcome known so far, instead of letting it tear the task group down.
            self.callback_error = exc
            self.errors.append(exc)
            self.stopped = True


class Servicers:
    """The servicers of WeCom kf accounts (``client.servicers``): list them, and add or delete
    members and departments in batches of any size. A batch is cut into requests of at most 100
    userids and 100 department ids that run concurrently, at most ``max_concurrency`` per client;
    every id ends with exactly one outcome, or is reported unprocessed in a ``BatchError``."""

    def __init__(self, transport: Transport, limiter: anyio.CapacityLimiter) -> None:
        self._transport = transport
        self._limiter = limiter

    async def list(self, open_kfid: str) -> builtins.list[Servicer]:
        """The servicers of ``open_kfid``: members (with status) and departments."""
        path = "/cgi-bin/kf/servicer/list"
        params = {"open_kfid": _validate.token_like("open_kfid", open_kfid)}
        body = await self._transport.request("GET", path, params=params)
        return structure_list(body, "servicer_list", Servicer, path=path)

    async def add(
        self,
        open_kfid: str,
        userids: Iterable[str] = (),
        *,
        department_ids: Iterable[int] = (),
        on_progress: ProgressCallback | None = None,
    ) -> BatchResult:
        """Make the members ``userids`` and the departments ``department_ids`` servicers of
        ``open_kfid``; returns one item per distinct id, or raises ``BatchError`` when some
        requests failed as a whole (their ids are listed there as unprocessed). ``on_progress``
        is called with (ids done, ids in all) after each request, for progress bars."""
        return await self._batch(_ADD, open_kfid, userids, department_ids, on_progress)

    async def delete(
        self,
        open_kfid: str,
        userids: Iterable[str] = (),
        *,
        department_ids: Iterable[int] = (),
        on_progress: ProgressCallback | None = None,
    ) -> BatchResult:
        """Remove the members ``userids`` and the departments ``department_ids`` from the
        servicers of ``open_kfid``; same results and errors as :meth:`add`. An id that is already
        not a servicer (95014) is a success, so a re-run or a retry after a lost answer is clean."""
        return await self._batch(_DELETE, open_kfid, userids, department_ids, on_progress)

    async def _batch(
        self,
        path: str,
        open_kfid: str,
        userids: Iterable[str],
        department_ids: Iterable[int],
        on_progress: ProgressCallback | None,
    ) -> BatchResult:
        if self._transport.closed:
            raise ClientClosedError("the client is closed")
        kfid = _validate.token_like("open_kfid", open_kfid)
        users = _validate.userids(userids)
        departments = _validate.department_ids(department_ids)
        if not users and not departments:
            raise ValueError("nothing to do: give at least one userid or department id")
        chunks = [
            _Chunk(list(u or ()), list(d or ()))
            for u, d in zip_longest(_cut(users), _cut(departments))
        ]
        state = _BatchState(total=len(users) + len(departments), on_progress=on_progress)
        async with anyio.create_task_group() as group:
            for chunk in chunks:
                group.start_soon(self._run_chunk, path, kfid, chunk, state)
        return _finish(users, departments, state)

    async def _run_chunk(self, path: str, kfid: str, chunk: _Chunk, state: _BatchState) -> None:
        async with self._limiter:
            # A fatal failure elsewhere means this request cannot succeed: leave it unsent.
            if state.stopped:
                state.advance(chunk)
                return
            payload: dict[str, Any] = {"open_kfid": kfid}
            if chunk.userids:
                payload["userid_list"] = chunk.userids
            if chunk.department_ids:
                payload["department_id_list"] = chunk.department_ids
            try:
                body = await self._transport.request("POST", path, json=payload, idempotent=True)
                _record(body, chunk, state, path)
            except Exception as exc:
                # Whatever fails inside one request leaves exactly its ids unprocessed; a task
                # group must never turn it into an ExceptionGroup that hides applied ids.
                state.fail(exc)
            state.advance(chunk)


def _cut(ids: list[Any]) -> builtins.list[list[Any]]:
    return [ids[i : i + MAX_IDS_PER_REQUEST] for i in range(0, len(ids), MAX_IDS_PER_REQUEST)]


def _record(body: Mapping[str, Any], chunk: _Chunk, state: _BatchState, path: str) -> None:
    """Store one outcome per id of ``chunk``; ids the server left out get ``errcode=None``."""
    reported = structure_list(body, "result_list", ServicerResult, path=path)
    by_userid: dict[str, ServicerResult] = {}
    by_department: dict[int, ServicerResult] = {}
    for item in reported:
        item = _settled(item, path)
        if item.userid:
            by_userid.setdefault(item.userid, item)
        elif item.department_id is not None:
            # Some SDKs send a department's outcome with an empty "userid": "".
            by_department.setdefault(item.department_id, attrs.evolve(item, userid=None))
        else:
            raise InvalidResponseError(
                "a result_list item has neither userid nor department_id", path=path
            )
    # Only write once the whole answer is understood, so a chunk is processed entirely or not.
    for userid in chunk.userids:
        state.by_userid[userid] = _outcome(by_userid.get(userid), userid=userid)
    for department in chunk.department_ids:
        state.by_department[department] = _outcome(
            by_department.get(department), department_id=department
        )


def _settled(item: ServicerResult, path: str) -> ServicerResult:
    """``item`` marked ``already`` when WeChat says the id was already in the state asked for."""
    if path == _ADD and item.errcode == 0 and item.errmsg == "ignored":
        return attrs.evolve(item, already=True)
    if path == _DELETE and item.errcode == _NOT_A_SERVICER:
        return attrs.evolve(item, already=True)
    return item


def _outcome(
    item: ServicerResult | None, *, userid: str | None = None, department_id: int | None = None
) -> ServicerResult:
    if item is None:
        return ServicerResult(userid, department_id, None, _NOT_REPORTED)
    return item  # found by this very id, so it already names it


def _finish(users: list[str], departments: list[int], state: _BatchState) -> BatchResult:
    items: list[ServicerResult] = []
    unprocessed_users: list[str] = []
    unprocessed_departments: list[int] = []
    for userid in users:
        if userid in state.by_userid:
            items.append(state.by_userid[userid])
        else:
            unprocessed_users.append(userid)
    for department in departments:
        if department in state.by_department:
            items.append(state.by_department[department])
        else:
            unprocessed_departments.append(department)
    result = BatchResult(items)
    if unprocessed_users or unprocessed_departments or state.callback_error is not None:
        error = BatchError(result, unprocessed_users, unprocessed_departments, state.errors)
        raise error from state.callback_error
    return result
