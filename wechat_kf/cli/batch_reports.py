"""What a servicer batch or sync prints when its work is done or interrupted: as text, the ids
WeChat refused grouped by errcode, the requests that failed grouped by kind of error with the ids
each left unprocessed, the skipped lines of the ids file, and a summary, in a few lines however
large the batch (150,000 ids: under 40 lines); with --json one document naming every id's fate;
with --failures-file a CSV row per id that did not go through."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.markup import escape

from wechat_kf import BatchResult, SyncError, SyncResult, to_data

from .exits import ADVICE, OK, USAGE, exit_code, final_report
from .failures import (
    ErrorGroup,
    failures_table,
    group_errors,
    reason,
    some,
    write_error_groups,
    write_failures_file,
    write_skipped,
)
from .ids import Target
from .output import out, print_json
from .progress import Journal, Rest

#: The columns of a servicer command's --failures-file.
FAILURE_COLUMNS = ("action", "userid", "department_id", "outcome", "errcode", "reason")
#: Planned ids a sync prints before "... (N in all)".
_PLANNED = 20


@attrs.define
class BatchRun:
    """What a servicer add or delete did: WeChat's answers (``result``), the ids left
    unprocessed (``rest``, None when none), the batch's ``errors``, the ``journal`` of each
    request, and the ``target`` it was given (with its skipped lines)."""

    action: str
    target: Target
    journal: Journal
    result: BatchResult = attrs.Factory(lambda: BatchResult([]))
    rest: Rest | None = None
    errors: Sequence[Exception] = ()
    interrupted: bool = False

    def groups(self) -> list[ErrorGroup]:
        return group_errors(self.errors, self.journal.failed(self.action))

    def code(self) -> int:
        failed = self.rest is not None or not self.result.ok or bool(self.target.unusable)
        return exit_code([g.first for g in self.groups()], failed)


def _unsent(rest: Rest | None, groups: Sequence[ErrorGroup]) -> Rest:
    """The unprocessed ids no failed request held: never sent (the batch stopped first), or in
    flight when it was interrupted."""
    if rest is None:
        return [], []
    users = {u for g in groups for u in g.userids}
    departments = {d for g in groups for d in g.department_ids}
    return [u for u in rest[0] if u not in users], [d for d in rest[1] if d not in departments]


def report_batch(run: BatchRun, *, as_json: bool, failures_file: Path | None) -> int:
    """The outcome of a batch: one JSON document, or the failures in a few lines and a summary;
    and the failures file when asked for."""
    code = run.code()
    groups = run.groups()

    def write() -> None:
        if failures_file is not None:
            rows = _failure_rows(run.action, run.result, run.rest, groups, run.target)
            write_failures_file(failures_file, FAILURE_COLUMNS, rows)
        if as_json:
            print_json(batch_data(run, groups))
            return
        console = out()
        write_outcomes(console, run.result)
        write_error_groups(console, groups)
        unsent = _unsent(run.rest, groups)
        if unsent[0] or unsent[1]:
            ids = [*unsent[0], *(f"department {d}" for d in unsent[1])]
            why = "in flight or never sent" if run.interrupted else "never sent: the batch stopped"
            console.print(f"  {len(ids)} ids {why}: {escape(some(ids))}")
        write_skipped(console, run.target.source, run.target.skipped)
        result = run.result
        summary = f"{len(result.succeeded)} ok, {len(result.failed)} failed"
        if run.rest is not None:
            summary += f", {len(run.rest[0]) + len(run.rest[1])} unprocessed"
        summary += run.target.unusable_note()
        if result.case_duplicates:
            # WeCom ignores case in userids: say which lines were the same member, not a loss.
            summary += f", {len(result.case_duplicates)} repeated in another case"
        if run.interrupted:
            summary += " (interrupted: the unprocessed ids may include requests in flight)"
        console.print(summary)
        for dropped, kept in list(result.case_duplicates.items())[:5]:
            console.print(f"  {escape(dropped)} is {escape(kept)} (userids ignore case)")

    if run.interrupted:
        write()
        return code
    return final_report(code, write)


def batch_data(run: BatchRun, groups: Sequence[ErrorGroup]) -> dict[str, Any]:
    """The --json document of a batch: every id's outcome, what was left and why."""
    result, rest = run.result, run.rest
    unsent = _unsent(rest, groups)
    data: dict[str, Any] = {
        "ok": rest is None and not run.interrupted and result.ok and not run.target.unusable,
        "summary": {
            "ok": len(result.succeeded),
            "failed": len(result.failed),
            "unprocessed": len(rest[0]) + len(rest[1]) if rest else 0,
            "skipped": len(run.target.unusable),
        },
        "items": to_data(list(result.items)),
        "unprocessed_userids": rest[0] if rest else [],
        "unprocessed_department_ids": rest[1] if rest else [],
        "unsent_userids": unsent[0],
        "unsent_department_ids": unsent[1],
        "case_duplicates": dict(result.case_duplicates),
        "errors": [group.data() for group in groups],
        "skipped": run.target.skipped_data(),
    }
    if run.interrupted:
        data["interrupted"] = True
    return data


def write_outcomes(console: Console, result: BatchResult) -> None:
    """The ids WeChat refused, grouped by errcode, with advice for the errcodes that have some:
    a few lines however large the batch (a table row per failure took over 30 s for 150,000
    ids)."""
    failed = result.failed
    if not failed:
        return
    table, advised = failures_table(failed)
    console.print(table)
    for errcode in advised:
        console.print(f"  {errcode}: {escape(ADVICE[errcode])}")
    console.print("every id's outcome: --json; every failed id in a file: --failures-file FILE")


def _failure_rows(
    action: str,
    result: BatchResult,
    rest: Rest | None,
    groups: Sequence[ErrorGroup],
    target: Target | None,
) -> Iterator[tuple[Any, ...]]:
    """A row per id that did not go through: refused, unprocessed (with the error that left
    it, when a request failed), and the target's skipped lines."""
    for item in result.failed:
        yield action, item.userid, item.department_id, "failed", item.errcode, item.errmsg
    why: dict[Any, tuple[int | None, str]] = {}
    for group in groups:
        cause = reason(group.first)
        why.update((u, cause) for u in group.userids)
        why.update((("department", d), cause) for d in group.department_ids)
    stopped = (None, "not sent: the batch stopped (or was interrupted) first")
    for userid in rest[0] if rest else ():
        yield action, userid, None, "unprocessed", *why.get(userid, stopped)
    for department in rest[1] if rest else ():
        yield action, None, department, "unprocessed", *why.get(("department", department), stopped)
    for line in target.skipped if target else ():
        if line.counts:
            yield action, line.value, None, "skipped", None, f"line {line.line}: {line.reason}"


# -- sync ------------------------------------------------------------------------------------


@attrs.define
class SyncRun:
    """What a sync did: its plan and what was applied (``result``), the ``error`` of a plan
    applied in part, the ``journal``, the ``target`` and what of it is ``over`` the caps."""

    result: SyncResult
    target: Target
    journal: Journal
    error: SyncError | None = None
    over: list[str] = attrs.Factory(list)
    interrupted: bool = False

    def groups(self) -> list[ErrorGroup]:
        errors = self.error.errors if self.error else ()
        failed = [*self.journal.failed("add"), *self.journal.failed("delete")]
        return group_errors(errors, failed)

    def code(self) -> int:
        if self.over:
            return USAGE
        failed = self.error is not None or not self.result.ok or bool(self.target.unusable)
        return exit_code([g.first for g in self.groups()], failed)


def report_sync(run: SyncRun, *, as_json: bool, failures_file: Path | None) -> int:
    """The plan of a sync (and what is over the caps) and what was done, as one JSON document
    or as text; and the failures file when asked for."""
    code = run.code()
    groups = run.groups()

    def write() -> None:
        if failures_file is not None:
            write_failures_file(failures_file, FAILURE_COLUMNS, _sync_rows(run, groups))
        if as_json:
            print_json(_sync_data(run, groups, code == OK))
        else:
            _write_sync(run, groups)

    if run.interrupted:
        write()
        return code
    return final_report(code, write)


def _sync_rows(run: SyncRun, groups: Sequence[ErrorGroup]) -> Iterator[tuple[Any, ...]]:
    """The failures file of a sync: its removals', then its additions' and skipped lines."""
    error, result = run.error, run.result
    adds: Rest | None = None
    removes: Rest | None = None
    if error is not None:
        adds = (list(error.unprocessed_to_add), list(error.unprocessed_departments_to_add))
        removes = (
            list(error.unprocessed_to_remove),
            list(error.unprocessed_departments_to_remove),
        )
    empty = BatchResult([])
    yield from _failure_rows("delete", result.removed or empty, removes, groups, None)
    yield from _failure_rows("add", result.added or empty, adds, groups, run.target)


def _sync_data(run: SyncRun, groups: Sequence[ErrorGroup], ok: bool) -> dict[str, Any]:
    error = run.error
    data: dict[str, Any] = to_data(run.result)
    data["ok"] = ok and not run.interrupted
    data["over_caps"] = run.over
    data["unprocessed"] = {
        "to_add": error.unprocessed_to_add if error else [],
        "to_remove": error.unprocessed_to_remove if error else [],
        "departments_to_add": error.unprocessed_departments_to_add if error else [],
        "departments_to_remove": error.unprocessed_departments_to_remove if error else [],
    }
    data["errors"] = [group.data() for group in groups]
    data["skipped"] = run.target.skipped_data()
    if run.interrupted:
        data["interrupted"] = True
    return data


def _write_sync(run: SyncRun, groups: Sequence[ErrorGroup]) -> None:
    console, result, error = out(), run.result, run.error
    verb = "would" if result.dry_run or run.over else "to"
    console.print(
        f"plan for {result.open_kfid}: {verb} add {len(result.to_add)} members and "
        f"{len(result.departments_to_add)} departments, {verb} remove {len(result.to_remove)} "
        f"members and {len(result.departments_to_remove)} departments"
    )
    for label, ids in (
        ("add", [*result.to_add, *map(str, result.departments_to_add)]),
        ("remove", [*result.to_remove, *map(str, result.departments_to_remove)]),
    ):
        if ids and (result.dry_run or run.over):
            more = f" ... ({len(ids)} in all: --json)" if len(ids) > _PLANNED else ""
            console.print(f"  {label}: {escape(', '.join(ids[:_PLANNED]))}{more}")
    write_skipped(console, run.target.source, run.target.skipped)
    if run.over:
        console.print(f"[red]over WeChat's caps:[/red] {escape('; '.join(run.over))}", markup=True)
        console.print("nothing sent: trim the target, then run it again")
        return
    if result.dry_run or not result.changes:
        console.print("dry run: nothing sent" if result.dry_run else "already in sync")
        return
    for label, batch in (("added", result.added), ("removed", result.removed)):
        if batch is not None:
            console.print(f"{label}: {len(batch.succeeded)} ok, {len(batch.failed)} failed")
            write_outcomes(console, batch)
    write_error_groups(console, groups)
    if error is not None:
        unprocessed = (
            len(error.unprocessed_to_add)
            + len(error.unprocessed_to_remove)
            + len(error.unprocessed_departments_to_add)
            + len(error.unprocessed_departments_to_remove)
        )
        note = " (interrupted: they may include requests in flight)" if run.interrupted else ""
        console.print(f"{unprocessed} unprocessed{note}: run the same sync again to finish")
