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
_FATAL = (CredentialError, PermissionDeniedError, OpenKfidError, AccessTokenError)
_NOT_REPORTED = "not reported by the server"


@attrs.define
class _Chunk:
    userids: list[str]
    department_ids: list[int]


@attrs.define
class _BatchState:
    """What a batch knows while its requests run: outcomes by id, and what stopped it."""

    by_userid: dict[str, ServicerResult] = attrs.Factory(dict)
    by_department: dict[int, ServicerResult] = attrs.Factory(dict)
    errors: list[WeChatError] = attrs.Factory(list)
    stopped: bool = False
    total: int = 0
    done: int = 0
    on_progress: ProgressCallback | None = None

    def advance(self, chunk: _Chunk) -> None:
        self.done += len(chunk.userids) + len(chunk.department_ids)
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)


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
        return await self._batch(
            "/cgi-bin/kf/servicer/add", open_kfid, userids, department_ids, on_progress
        )

    async def delete(
        self,
        open_kfid: str,
        userids: Iterable[str] = (),
        *,
        department_ids: Iterable[int] = (),
        on_progress: ProgressCallback | None = None,
    ) -> BatchResult:
        """Remove the members ``userids`` and the departments ``department_ids`` from the
        servicers of ``open_kfid``; same results and errors as :meth:`add`."""
        return await self._batch(
            "/cgi-bin/kf/servicer/del", open_kfid, userids, department_ids, on_progress
        )

    async def _batch(
        self,
        path: str,
        open_kfid: str,
        userids: Iterable[str],
        department_ids: Iterable[int],
        on_progress: ProgressCallback | None,
    ) -> BatchResult:
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
            except WeChatError as exc:
                state.errors.append(exc)
                if isinstance(exc, _FATAL):
                    state.stopped = True
            state.advance(chunk)


def _cut(ids: list[Any]) -> builtins.list[list[Any]]:
    return [ids[i : i + MAX_IDS_PER_REQUEST] for i in range(0, len(ids), MAX_IDS_PER_REQUEST)]


def _record(body: Mapping[str, Any], chunk: _Chunk, state: _BatchState, path: str) -> None:
    """Store one outcome per id of ``chunk``; ids the server left out get ``errcode=None``."""
    reported = structure_list(body, "result_list", ServicerResult, path=path)
    by_userid: dict[str, ServicerResult] = {}
    by_department: dict[int, ServicerResult] = {}
    for item in reported:
        if item.userid is not None:
            by_userid.setdefault(item.userid, item)
        elif item.department_id is not None:
            by_department.setdefault(item.department_id, item)
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
    if unprocessed_users or unprocessed_departments:
        raise BatchError(result, unprocessed_users, unprocessed_departments, state.errors)
    return result
