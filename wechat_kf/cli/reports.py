"""What a command prints when its work is done or interrupted: a listing, the outcome of one
call, of a batch and of a sync, as text for a person or one JSON document with --json (written
whole, or item by item for a stream of records). A report of finished work is written whole and
keeps the run's exit code whatever Ctrl-C follows (``exits.final_report``); however large the
batch, the text report of its failures is a few lines."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import attrs
import click
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wechat_kf import BatchResult, ServicerResult, SyncError, SyncResult, TransportError, to_data

from .credentials import Client, open_client
from .exits import FAILED, OK, describe, error_data, final_report, run
from .output import PRINTED, err, out, print_json, run_state, sigint_deferred
from .progress import Rest
from .tables import ident

T = TypeVar("T")

_FIRST_IDS = 5
_MAX_ERRCODES = 20
# WeChat's errmsg reaches the terminal: no escape sequence of its own.
_CONTROL = {code: "?" for code in [*range(32), 127]}


def connector(
    cls: type[Client], opts: dict[str, Any]
) -> Callable[[AsyncExitStack], Awaitable[Client]]:
    """What opens the client a command asked for (``credentials.open_client``), so that the
    frames a call's error passes through hold this function rather than the options: an error
    tracker that records the locals of each frame never sees the secret among them."""

    def connect(stack: AsyncExitStack) -> Awaitable[Client]:
        return open_client(stack, cls, opts)

    return connect


def listing(
    opts: dict[str, Any],
    cls: type[Client],
    fetch: Callable[[Client], Awaitable[Sequence[Any]]],
    render: Callable[[Any], Table],
) -> None:
    """Fetch a list and print it as a table, or as JSON with --json."""
    connect, as_json = connector(cls, opts), bool(opts["as_json"])

    async def main_() -> int:
        async with AsyncExitStack() as stack:
            items = await fetch(await connect(stack))
        if as_json:
            return final_report(OK, lambda: print_json(to_data(list(items))))
        return final_report(OK, lambda: out().print(render(items)))

    run(main_, as_json=as_json)


# -- one call --------------------------------------------------------------------------------


def one_call(
    opts: dict[str, Any],
    cls: type[Client],
    call: Callable[[Client], Awaitable[T]],
    text: Callable[[T], str],
    data: Callable[[T], dict[str, Any]],
    *,
    if_maybe_applied: Callable[[TransportError], str | None] | None = None,
) -> None:
    """Make one call and print its outcome: ``text(result)`` for a person, or with --json the
    one document ``{"ok": true, **data(result)}``. Given ``if_maybe_applied``, a call that
    failed after an attempt that may have reached WeChat (``TransportError`` with
    ``maybe_applied``) is reported with the advice it returns (see :func:`report_maybe_applied`);
    every other failure, and one it returns None for, is left to ``exits.run``."""
    connect, as_json = connector(cls, opts), bool(opts["as_json"])

    async def main_() -> int:
        outcome: list[T] = []
        failure: tuple[TransportError, str] | None = None
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            try:
                outcome.append(await call(client))
            except TransportError as exc:
                advice = if_maybe_applied(exc) if if_maybe_applied and exc.maybe_applied else None
                if advice is None:
                    raise
                failure = exc, advice
        if failure is not None:
            return report_maybe_applied(*failure, as_json=as_json)
        result = outcome[0]
        if as_json:
            return final_report(OK, lambda: print_json({"ok": True, **data(result)}))
        return final_report(OK, lambda: click.echo(text(result)))

    run(main_, as_json=as_json)


def report_maybe_applied(error: TransportError, advice: str, *, as_json: bool) -> int:
    """A call that may have applied although it failed: one line with the error (its msgid,
    when it had one) and ``advice`` on what to check before trying again; with --json the
    document's error (which has the msgid, as every error's does) also carries ``advice``.
    Exit 1."""

    def write() -> None:
        if as_json:
            data = {**error_data(error), "advice": advice}
            print_json({"ok": False, "error": data})
        err().print(f"[red]error:[/red] {escape(describe(error))}; {escape(advice)}")

    return final_report(FAILED, write)


# -- a stream of records ---------------------------------------------------------------------


class StreamedDocument:
    """The one JSON document of a --json run whose items arrive over time,
    ``{"<key>": [item, ...], "count": n, ...}``: each item is written (on its own line) as soon
    as it is added, and :meth:`close` ends the array with the count and the fields given
    (whether the run was ok, its error, an interrupt). A Ctrl-C waits until the item being
    written is out, so closing after any stop still leaves one whole document."""

    def __init__(self, key: str) -> None:
        self.count = 0
        self._key = json.dumps(key)
        self._closed = False

    def add(self, item: Any) -> None:
        """Write one item of the array."""
        line = json.dumps(item, ensure_ascii=False)
        with sigint_deferred():
            head = f"{{\n  {self._key}: [\n" if self.count == 0 else ",\n"
            click.echo(f"{head}    {line}", nl=False)
            self.count += 1

    def close(self, **fields: Any) -> None:
        """End the array and the document with ``count`` and ``fields``; once only."""
        if self._closed:
            return
        tail = {"count": self.count, **fields}
        lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in tail.items()]
        with sigint_deferred():
            opening = f"{{\n  {self._key}: [" if self.count == 0 else "\n  "
            click.echo(opening + "],\n" + ",\n".join(lines) + "\n}")
            self._closed = True
            run_state()[PRINTED] = True


# -- batches ---------------------------------------------------------------------------------


def report_batch(
    result: BatchResult,
    rest: Rest | None,
    errors: Sequence[Exception],
    *,
    as_json: bool,
    show_all: bool,
    interrupted: bool = False,
) -> int:
    """The outcome of a batch: with --json one document; else the failures grouped by errcode
    (every id with --show-all) and a summary naming what was left unprocessed."""
    code = OK if rest is None and result.ok else FAILED

    def write() -> None:
        if as_json:
            print_json(batch_data(result, rest, errors, interrupted))
            return
        console = out()
        write_outcomes(console, result, show_all)
        summary = f"{len(result.succeeded)} ok, {len(result.failed)} failed"
        if rest is not None:
            summary += f", {len(rest[0]) + len(rest[1])} unprocessed"
        if result.case_duplicates:
            # WeCom ignores case in userids: say which lines were the same member, not a loss.
            summary += f", {len(result.case_duplicates)} repeated in another case"
        if interrupted:
            summary += " (interrupted: the unprocessed ids may include requests in flight)"
        console.print(summary)
        for dropped, kept in list(result.case_duplicates.items())[:5]:
            console.print(f"  {escape(dropped)} is {escape(kept)} (userids ignore case)")
        for failure in errors:
            console.print(f"  {describe(failure)}")

    if interrupted:
        write()
        return code
    return final_report(code, write)


def batch_data(
    result: BatchResult, rest: Rest | None, errors: Sequence[Exception], interrupted: bool
) -> dict[str, Any]:
    data = {
        "ok": rest is None and not interrupted and result.ok,
        "items": to_data(list(result.items)),
        "unprocessed_userids": rest[0] if rest else [],
        "unprocessed_department_ids": rest[1] if rest else [],
        "case_duplicates": dict(result.case_duplicates),
        "errors": [error_data(e) for e in errors],
    }
    if interrupted:
        data["interrupted"] = True
    return data


def write_outcomes(console: Console, result: BatchResult, show_all: bool) -> None:
    """A row per id with --show-all; else the failures grouped by errcode, a few lines however
    large the batch: a table row per failure took over 30 s for 150,000 ids."""
    if show_all:
        _write_rows(result.items)
        return
    failed = result.failed
    if failed:
        console.print(_failures_table(failed))
        console.print("every failed id: --json, or a row per id with --show-all")


@attrs.define
class _Group:
    errmsg: str
    count: int = 0
    first: list[str] = attrs.Factory(list)


def _failures_table(failed: Sequence[ServicerResult]) -> Table:
    groups: dict[int | None, _Group] = {}
    for item in failed:
        group = groups.get(item.errcode)
        if group is None:
            group = groups[item.errcode] = _Group(item.errmsg)
        group.count += 1
        if len(group.first) < _FIRST_IDS:
            group.first.append(ident(item))
    table = Table("errcode", "ids", "errmsg (the first's)", "first ids")
    ordered = sorted(groups.items(), key=lambda pair: pair[1].count, reverse=True)
    for errcode, group in ordered[:_MAX_ERRCODES]:
        first = ", ".join(group.first) + (", ..." if group.count > len(group.first) else "")
        code = "-" if errcode is None else str(errcode)
        table.add_row(code, str(group.count), group.errmsg.translate(_CONTROL), first, style="red")
    if len(ordered) > _MAX_ERRCODES:
        others = ordered[_MAX_ERRCODES:]
        count = sum(group.count for _, group in others)
        table.add_row("...", str(count), f"{len(others)} other errcodes", "", style="red")
    return table


def _write_rows(items: Sequence[ServicerResult]) -> None:
    """Every id, errcode and errmsg in aligned plain text, failures in red on a terminal: a rich
    table measures each cell and takes minutes for 150,000 rows."""
    rows = [
        (ident(i), "-" if i.errcode is None else str(i.errcode), i.errmsg.translate(_CONTROL))
        for i in items
    ]
    id_width = max([cell_len("id"), *(cell_len(row[0]) for row in rows)])
    code_width = max([len("errcode"), *(len(row[1]) for row in rows)])

    def line(name: str, code: str, errmsg: str) -> str:
        return f"{name}{' ' * (id_width - cell_len(name))}  {code:<{code_width}}  {errmsg}"

    lines = [line("id", "errcode", "errmsg")]
    for item, row in zip(items, rows, strict=True):
        lines.append(line(*row) if item.ok else click.style(line(*row), fg="red"))
    click.echo("\n".join(lines))


# -- sync ------------------------------------------------------------------------------------


def report_sync(
    result: SyncResult,
    error: SyncError | None,
    *,
    as_json: bool,
    show_all: bool,
    interrupted: bool = False,
) -> int:
    """The plan of a sync and what was done, as one JSON document or as text."""
    ok = error is None and result.ok
    code = OK if ok else FAILED

    def write() -> None:
        if as_json:
            print_json(_sync_data(result, error, ok, interrupted))
        else:
            _write_sync(result, error, show_all, interrupted)

    if interrupted:
        write()
        return code
    return final_report(code, write)


def _sync_data(
    result: SyncResult, error: SyncError | None, ok: bool, interrupted: bool
) -> dict[str, Any]:
    data: dict[str, Any] = to_data(result)
    data["ok"] = ok and not interrupted
    data["unprocessed"] = {
        "to_add": error.unprocessed_to_add if error else [],
        "to_remove": error.unprocessed_to_remove if error else [],
        "departments_to_add": error.unprocessed_departments_to_add if error else [],
        "departments_to_remove": error.unprocessed_departments_to_remove if error else [],
    }
    data["errors"] = [error_data(e) for e in error.errors] if error else []
    if interrupted:
        data["interrupted"] = True
    return data


def _write_sync(
    result: SyncResult, error: SyncError | None, show_all: bool, interrupted: bool
) -> None:
    console = out()
    verb = "would" if result.dry_run else "to"
    console.print(
        f"plan for {result.open_kfid}: {verb} add {len(result.to_add)} members and "
        f"{len(result.departments_to_add)} departments, {verb} remove {len(result.to_remove)} "
        f"members and {len(result.departments_to_remove)} departments"
    )
    for label, ids in (
        ("add", [*result.to_add, *map(str, result.departments_to_add)]),
        ("remove", [*result.to_remove, *map(str, result.departments_to_remove)]),
    ):
        if ids and result.dry_run:
            shown = ids if show_all else ids[:20]
            more = f" ... ({len(ids)} in all)" if len(shown) < len(ids) else ""
            console.print(f"  {label}: {', '.join(shown)}{more}")
    if result.dry_run or not result.changes:
        console.print("dry run: nothing sent" if result.dry_run else "already in sync")
        return
    for label, batch in (("added", result.added), ("removed", result.removed)):
        if batch is not None:
            console.print(f"{label}: {len(batch.succeeded)} ok, {len(batch.failed)} failed")
            write_outcomes(console, batch, show_all)
    if error is not None:
        unprocessed = (
            len(error.unprocessed_to_add)
            + len(error.unprocessed_to_remove)
            + len(error.unprocessed_departments_to_add)
            + len(error.unprocessed_departments_to_remove)
        )
        note = " (interrupted: they may include requests in flight)" if interrupted else ""
        console.print(f"{unprocessed} unprocessed{note}: run the same sync again to finish")
        for failure in error.errors:
            console.print(f"  {describe(failure)}")
