"""Servicers: the WeCom 微信客服 servicer resource, with batching that never loses an id."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Mapping
from itertools import zip_longest
from typing import Any

import anyio
import attrs

from .. import _validate
from .._batching import MAX_IDS_PER_REQUEST, Run, cut, is_fatal, run_batch
from .._serde import structure_list
from .._transport import Transport
from ..errors import BatchError, ClientClosedError, InvalidResponseError, SyncError
from ..hooks import BatchRequest
from ..models import BatchResult, RequestOutcome, Servicer, ServicerResult, SyncResult

__all__ = [
    "MAX_DEPARTMENTS_PER_KF_ACCOUNT",
    "MAX_IDS_PER_REQUEST",
    "MAX_SERVICERS_PER_KF_ACCOUNT",
    "ProgressCallback",
    "RequestCallback",
    "Servicers",
    "over_caps",
    "userid_problem",
]

#: Called as ``on_progress(ids_done, ids_total)`` after each request of a batch.
ProgressCallback = Callable[[int, int], None]
#: Called with each request's :class:`RequestOutcome` as soon as it is known.
RequestCallback = Callable[[RequestOutcome], None]

#: What one WeCom kf account may hold: 2,000 servicers and 20 departments.
MAX_SERVICERS_PER_KF_ACCOUNT = 2000
MAX_DEPARTMENTS_PER_KF_ACCOUNT = 20
_NOT_REPORTED = "not reported by the server"
logger: logging.Logger = logging.getLogger("wechat_kf.servicers")
_ADD = "/cgi-bin/kf/servicer/add"
_DELETE = "/cgi-bin/kf/servicer/del"
_ACTIONS = {_ADD: "add", _DELETE: "delete"}
#: delete's "user is not a servicer": the id is already where the caller wants it.
_NOT_A_SERVICER = 95014


def userid_problem(value: str) -> str | None:
    """What keeps ``value`` from being a WeCom userid, in a few words, or None when it is one:
    1..64 bytes of ASCII letters, digits and ``_-@.``, beginning with a letter or a digit (a
    third-party app's encrypted open_userid is of the same alphabet). The servicer calls refuse
    any other id with a ``ValueError`` before sending; a tool reading ids from a file can use
    this to skip a line and say why."""
    if not isinstance(value, str):
        raise TypeError(f"a userid must be a str, not {type(value).__name__}")
    return _validate.userid_problem(value)


def over_caps(userids: Iterable[str] = (), department_ids: Iterable[int] = ()) -> list[str]:
    """What a ``sync`` target holds beyond what one kf account may (2,000 servicers, 20
    departments), one sentence per cap exceeded; empty when it fits. Userids are counted as
    WeCom counts them, without regard to case. ``sync`` refuses such a target with a
    ``ValueError`` before any request, except as a ``dry_run``, which returns the plan all the
    same (and logs these sentences as a WARNING)."""
    users = _validate.without_case_duplicates(_validate.userids(userids))[0]
    return _over_caps(len(users), len(_validate.department_ids(department_ids)))


def _over_caps(users: int, departments: int) -> builtins.list[str]:
    over = []
    if users > MAX_SERVICERS_PER_KF_ACCOUNT:
        over.append(
            f"{users} userids: a kf account holds at most {MAX_SERVICERS_PER_KF_ACCOUNT} servicers"
        )
    if departments > MAX_DEPARTMENTS_PER_KF_ACCOUNT:
        over.append(
            f"{departments} department ids: a kf account holds at most "
            f"{MAX_DEPARTMENTS_PER_KF_ACCOUNT} departments"
        )
    return over


@attrs.define
class _Chunk:
    userids: list[str]
    department_ids: list[int]

    @property
    def size(self) -> int:
        return len(self.userids) + len(self.department_ids)


class Servicers:
    """The servicers of WeCom kf accounts (``client.servicers``): list them, and add or delete
    members and departments in batches of any size. A batch is cut into requests of at most 100
    userids and 100 department ids that run concurrently, at most ``max_concurrency`` per client;
    every id ends with exactly one outcome, or is reported unprocessed in a ``BatchError``."""

    def __init__(self, transport: Transport, limiter: anyio.CapacityLimiter) -> None:
        self._transport = transport
        self._limiter = limiter
        # One sync per kf account at a time on this client: two interleaved plans would undo
        # each other's work.
        self._sync_locks: dict[str, anyio.Lock] = {}

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
        on_request: RequestCallback | None = None,
    ) -> BatchResult:
        """Make the members ``userids`` and the departments ``department_ids`` servicers of
        ``open_kfid``; returns one item per distinct id, or raises ``BatchError`` when some
        requests failed as a whole (their ids are listed there as unprocessed). ``on_progress``
        is called with (ids done, ids in all) after each request, for progress bars;
        ``on_request`` with each sent request's :class:`RequestOutcome` as soon as it is known,
        for a journal of exactly which ids went through."""
        return await self._batch(_ADD, open_kfid, userids, department_ids, on_progress, on_request)

    async def delete(
        self,
        open_kfid: str,
        userids: Iterable[str] = (),
        *,
        department_ids: Iterable[int] = (),
        on_progress: ProgressCallback | None = None,
        on_request: RequestCallback | None = None,
    ) -> BatchResult:
        """Remove the members ``userids`` and the departments ``department_ids`` from the
        servicers of ``open_kfid``; same results, errors and callbacks as :meth:`add`. An id
        that is already not a servicer (95014) is a success, so a re-run or a retry after a lost
        answer is clean."""
        return await self._batch(
            _DELETE, open_kfid, userids, department_ids, on_progress, on_request
        )

    async def sync(
        self,
        open_kfid: str,
        userids: Iterable[str] = (),
        *,
        department_ids: Iterable[int] = (),
        dry_run: bool = False,
        on_progress: ProgressCallback | None = None,
        on_request: RequestCallback | None = None,
    ) -> SyncResult:
        """Make the servicers of ``open_kfid`` exactly the members ``userids`` and the departments
        ``department_ids``: read the current servicers, plan what to add and to remove and, unless
        ``dry_run``, apply the plan through the same batching as :meth:`add` and :meth:`delete`
        (both at once under the client's limiter; removals first when adding first would pass
        WeChat's caps). Two syncs of one ``open_kfid`` on one client never interleave. A target
        over the caps (2,000 members, 20 departments; see :func:`over_caps`) is a ``ValueError``
        before any request, but a ``dry_run`` still returns its plan and logs what is over as a
        WARNING; a plan applied in part raises ``SyncError``, which says what was and was not
        done."""
        if self._transport.closed:
            raise ClientClosedError("the client is closed")
        kfid = _validate.token_like("open_kfid", open_kfid)
        users, case_duplicates = _validate.without_case_duplicates(_validate.userids(userids))
        departments = _validate.department_ids(department_ids)
        if not isinstance(dry_run, bool):
            raise TypeError("dry_run must be a bool")
        over = _over_caps(len(users), len(departments))
        if over and not dry_run:
            raise ValueError("; ".join(over))
        lock = self._sync_locks.setdefault(kfid, anyio.Lock())
        async with lock:
            current = await self.list(kfid)
            plan = _plan(kfid, current, users, departments, dry_run)
            plan = attrs.evolve(plan, case_duplicates=case_duplicates)
            if over:
                # The plan is what a person needs to see to trim the target.
                logger.warning("sync of %s cannot be applied: %s", kfid, "; ".join(over))
            if dry_run or not plan.changes:
                return plan
            return await self._apply(plan, current, on_progress, on_request)

    async def _apply(
        self,
        plan: SyncResult,
        current: builtins.list[Servicer],
        on_progress: ProgressCallback | None,
        on_request: RequestCallback | None,
    ) -> SyncResult:
        total = plan.changes
        done = {_ADD: 0, _DELETE: 0}
        results: dict[str, BatchResult] = {}
        failures: dict[str, BatchError] = {}

        def progress_of(path: str) -> ProgressCallback | None:
            if on_progress is None:
                return None

            def progress(ids_done: int, _: int) -> None:
                done[path] = ids_done
                on_progress(sum(done.values()), total)

            return progress

        async def run(path: str, ids: builtins.list[str], depts: builtins.list[int]) -> None:
            if not ids and not depts:
                return
            try:
                results[path] = await self._batch(
                    path, plan.open_kfid, ids, depts, progress_of(path), on_request
                )
            except BatchError as exc:
                failures[path] = exc
                results[path] = exc.result

        users_now = sum(1 for s in current if s.userid)
        departments_now = sum(1 for s in current if s.department_id is not None)
        if (
            users_now + len(plan.to_add) > MAX_SERVICERS_PER_KF_ACCOUNT
            or departments_now + len(plan.departments_to_add) > MAX_DEPARTMENTS_PER_KF_ACCOUNT
        ):
            await run(_DELETE, plan.to_remove, plan.departments_to_remove)
            await run(_ADD, plan.to_add, plan.departments_to_add)
        else:
            async with anyio.create_task_group() as group:
                group.start_soon(run, _DELETE, plan.to_remove, plan.departments_to_remove)
                group.start_soon(run, _ADD, plan.to_add, plan.departments_to_add)
        done_plan = attrs.evolve(plan, added=results.get(_ADD), removed=results.get(_DELETE))
        if not failures:
            return done_plan
        add_error, delete_error = failures.get(_ADD), failures.get(_DELETE)
        error = SyncError(
            done_plan,
            unprocessed_to_add=add_error.unprocessed_userids if add_error else (),
            unprocessed_to_remove=delete_error.unprocessed_userids if delete_error else (),
            unprocessed_departments_to_add=(
                add_error.unprocessed_department_ids if add_error else ()
            ),
            unprocessed_departments_to_remove=(
                delete_error.unprocessed_department_ids if delete_error else ()
            ),
            errors=[e for failure in failures.values() for e in failure.errors],
        )
        cause = next((f.__cause__ for f in failures.values() if f.__cause__), None)
        raise error from cause

    async def _batch(
        self,
        path: str,
        open_kfid: str,
        userids: Iterable[str],
        department_ids: Iterable[int],
        on_progress: ProgressCallback | None,
        on_request: RequestCallback | None,
    ) -> BatchResult:
        if self._transport.closed:
            raise ClientClosedError("the client is closed")
        kfid = _validate.token_like("open_kfid", open_kfid)
        users, case_duplicates = _validate.without_case_duplicates(_validate.userids(userids))
        departments = _validate.department_ids(department_ids)
        if not users and not departments:
            raise ValueError("nothing to do: give at least one userid or department id")
        chunks = [
            _Chunk(list(u or ()), list(d or ()))
            for u, d in zip_longest(cut(users), cut(departments))
        ]

        async def send(chunk: _Chunk) -> builtins.list[ServicerResult]:
            payload: dict[str, Any] = {"open_kfid": kfid}
            if chunk.userids:
                payload["userid_list"] = chunk.userids
            if chunk.department_ids:
                payload["department_id_list"] = chunk.department_ids
            body = await self._transport.request("POST", path, json=payload, idempotent=True)
            return _record(body, chunk, path)

        def done(
            chunk: _Chunk, results: builtins.list[ServicerResult] | None, error: Exception | None
        ) -> None:
            outcome = RequestOutcome(
                _ACTIONS[path], kfid, chunk.userids, chunk.department_ids, results or [], error
            )
            ok = sum(1 for item in outcome.results if item.ok)
            self._transport.hooks.batch_request(
                BatchRequest(
                    outcome.action,
                    kfid,
                    chunk.size,
                    ok,
                    len(outcome.results) - ok,
                    None if error is None else type(error).__name__,
                )
            )
            if on_request is not None:
                on_request(outcome)

        run = await run_batch(
            chunks,
            send,
            limiter=self._limiter,
            is_fatal=is_fatal,
            size=lambda chunk: chunk.size,
            on_done=done,
            on_progress=on_progress,
        )
        return _finish(users, departments, case_duplicates, run)


def _plan(
    kfid: str,
    current: builtins.list[Servicer],
    users: builtins.list[str],
    departments: builtins.list[int],
    dry_run: bool,
) -> SyncResult:
    """What turns ``current`` into exactly ``users`` and ``departments``; members compared as WeCom
    compares them, without regard to case (a servicer "alice" is the wanted "Alice")."""
    key = _validate.userid_key
    users_now = [s.userid for s in current if s.userid]
    departments_now = [s.department_id for s in current if s.department_id is not None]
    wanted_users, wanted_departments = {key(u) for u in users}, set(departments)
    have_users, have_departments = {key(u) for u in users_now}, set(departments_now)
    to_remove = [u for u in users_now if key(u) not in wanted_users]
    return SyncResult(
        kfid,
        to_add=[u for u in users if key(u) not in have_users],
        to_remove=_validate.without_case_duplicates(to_remove)[0],
        departments_to_add=[d for d in departments if d not in have_departments],
        departments_to_remove=list(
            dict.fromkeys(d for d in departments_now if d not in wanted_departments)
        ),
        dry_run=dry_run,
    )


def _record(body: Mapping[str, Any], chunk: _Chunk, path: str) -> builtins.list[ServicerResult]:
    """One outcome per id of ``chunk``, from the whole answer or not at all; ids the server left
    out get ``errcode=None``."""
    reported = structure_list(body, "result_list", ServicerResult, path=path)
    # Keyed as WeCom compares userids: an answer may spell an id in another case.
    key = _validate.userid_key
    by_userid: dict[str, ServicerResult] = {}
    by_department: dict[int, ServicerResult] = {}
    for item in reported:
        item = _settled(item, path)
        if item.userid:
            by_userid.setdefault(key(item.userid), item)
        elif item.department_id is not None:
            # Some SDKs send a department's outcome with an empty "userid": "".
            by_department.setdefault(item.department_id, attrs.evolve(item, userid=None))
        else:
            raise InvalidResponseError(
                "a result_list item has neither userid nor department_id", path=path
            )
    results = [_outcome(by_userid.get(key(userid)), userid=userid) for userid in chunk.userids]
    results += [
        _outcome(by_department.get(department), department_id=department)
        for department in chunk.department_ids
    ]
    return results


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
    if userid is not None and item.userid != userid:
        return attrs.evolve(item, userid=userid)  # the caller's spelling, whatever WeChat's
    return item


def _finish(
    users: list[str],
    departments: list[int],
    case_duplicates: dict[str, str],
    run: Run[_Chunk, builtins.list[ServicerResult]],
) -> BatchResult:
    by_userid: dict[str, ServicerResult] = {}
    by_department: dict[int, ServicerResult] = {}
    for _, results in run.sent:
        for item in results:
            if item.department_id is not None and item.userid is None:
                by_department[item.department_id] = item
            else:
                by_userid[item.userid or ""] = item
    items = [by_userid[u] for u in users if u in by_userid]
    items += [by_department[d] for d in departments if d in by_department]
    unprocessed_users = [u for u in users if u not in by_userid]
    unprocessed_departments = [d for d in departments if d not in by_department]
    result = BatchResult(items, case_duplicates=case_duplicates)
    if unprocessed_users or unprocessed_departments or run.callback_error is not None:
        error = BatchError(result, unprocessed_users, unprocessed_departments, run.errors)
        raise error from run.callback_error
    return result
