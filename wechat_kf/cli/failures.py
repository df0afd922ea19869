"""What a large run reports of what went wrong, in a few lines however many ids it had: the ids
WeChat refused grouped by errcode (how many, the first's errmsg, the first ids, advice), the
requests that failed as a whole grouped by kind of error (one failed token fetch is one line
saying how many requests it failed, and which ids it left unprocessed), the lines of an ids
file that were skipped; and every one of them, one per row, in a --failures-file (CSV)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wechat_kf import APIError, CredentialError, ServicerResult, TransportError

from .exits import ADVICE, USAGE, describe, error_data, fail
from .ids import Skipped
from .tables import ident

#: Ids named in a line before "...", errcodes and kinds of error shown before "N others".
FIRST_IDS = 5
MAX_GROUPS = 20
MAX_SKIPPED = 10
# WeChat's errmsg reaches the terminal: no escape sequence of its own.
_CONTROL = {code: "?" for code in [*range(32), 127]}


def some(ids: Sequence[Any], total: int | None = None) -> str:
    """The first ids, and "..." when there are more."""
    total = len(ids) if total is None else total
    shown = ", ".join(str(i) for i in ids[:FIRST_IDS])
    return shown + (", ..." if total > FIRST_IDS else "")


# -- ids WeChat refused, by errcode ----------------------------------------------------------


@attrs.define
class _Refused:
    errmsg: str
    count: int = 0
    first: list[str] = attrs.Factory(list)


def failures_table(failed: Sequence[ServicerResult]) -> tuple[Table, list[int]]:
    """The refused ids by errcode, the largest group first; and the errcodes shown for which
    there is advice."""
    groups: dict[int | None, _Refused] = {}
    for item in failed:
        group = groups.get(item.errcode)
        if group is None:
            group = groups[item.errcode] = _Refused(item.errmsg)
        group.count += 1
        if len(group.first) < FIRST_IDS:
            group.first.append(ident(item))
    table = Table("errcode", "ids", "errmsg (the first's)", "first ids")
    ordered = sorted(groups.items(), key=lambda pair: pair[1].count, reverse=True)
    for errcode, group in ordered[:MAX_GROUPS]:
        code = "-" if errcode is None else str(errcode)
        errmsg = group.errmsg.translate(_CONTROL)
        table.add_row(code, str(group.count), errmsg, some(group.first, group.count), style="red")
    if len(ordered) > MAX_GROUPS:
        others = ordered[MAX_GROUPS:]
        count = sum(group.count for _, group in others)
        table.add_row("...", str(count), f"{len(others)} other errcodes", "", style="red")
    advised = [code for code, _ in ordered[:MAX_GROUPS] if code is not None and code in ADVICE]
    return table, advised


# -- requests that failed as a whole, by kind ------------------------------------------------


@attrs.define
class ErrorGroup:
    """The requests that failed with one kind of error (``first`` is the first of them) and the
    ids they left unprocessed."""

    first: BaseException
    requests: int = 0
    userids: list[Any] = attrs.Factory(list)
    department_ids: list[int] = attrs.Factory(list)

    def data(self, id_name: str = "userids") -> dict[str, Any]:
        data = {**error_data(self.first), "requests": self.requests}
        data[f"unprocessed_{id_name}"] = self.userids
        if id_name == "userids":
            data["unprocessed_department_ids"] = self.department_ids
        return data


def _kind(error: BaseException) -> tuple[Any, ...]:
    """What makes two failures one line: WeChat's errcode on one path (each answer has its own
    rid), or the same message (a failed token fetch fails every request waiting for it)."""
    if isinstance(error, APIError):
        return (type(error).__name__, error.errcode, error.path)
    if isinstance(error, TransportError):
        return (type(error).__name__, str(error), error.status_code, error.maybe_applied)
    return (type(error).__name__, str(error))


def group_errors(
    errors: Iterable[BaseException],
    failed: Iterable[tuple[BaseException, Sequence[Any], Sequence[int]]],
) -> list[ErrorGroup]:
    """``errors`` grouped by kind, in the order they came, each with how many ``failed``
    requests (error, userids, department ids) it covers and their ids."""
    groups: dict[tuple[Any, ...], ErrorGroup] = {}
    for error in errors:
        groups.setdefault(_kind(error), ErrorGroup(error))
    for error, userids, department_ids in failed:
        group = groups.setdefault(_kind(error), ErrorGroup(error))
        group.requests += 1
        group.userids.extend(userids)
        group.department_ids.extend(department_ids)
    return list(groups.values())


def write_error_groups(console: Console, groups: Sequence[ErrorGroup], noun: str = "ids") -> None:
    """A line per kind of error: what failed, how many requests, and the ids it left
    unprocessed (the first of them)."""
    for group in groups[:MAX_GROUPS]:
        refused = "credentials refused: " if isinstance(group.first, CredentialError) else ""
        ids = [*group.userids, *(f"department {d}" for d in group.department_ids)]
        left = f"; {len(ids)} {noun} left unprocessed: {some(ids)}" if ids else ""
        requests = "" if group.requests <= 1 else f" ({group.requests} requests)"
        line = f"{refused}{describe(group.first)}{requests}{left}"
        console.print(f"  [red]error:[/red] {escape(line)}", markup=True)
    if len(groups) > MAX_GROUPS:
        console.print(f"  ... and {len(groups) - MAX_GROUPS} other kinds of error: --json")


def write_skipped(console: Console, source: str, skipped: Sequence[Skipped]) -> None:
    """The skipped lines of an ids file: a line each, the first few, then how many in all."""
    if not skipped:
        return
    plural = "" if len(skipped) == 1 else "s"
    console.print(f"{len(skipped)} line{plural} of {source} skipped:")
    for line in skipped[:MAX_SKIPPED]:
        console.print(f"  line {line.line}: {line.reason}")
    if len(skipped) > MAX_SKIPPED:
        console.print(f"  ... ({len(skipped)} in all: --json or --failures-file)")


# -- the failures file -----------------------------------------------------------------------

failures_file_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--failures-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write every id that did not go through to this CSV file (made or replaced): refused, "
    "unprocessed, skipped, with why; a rerun reads it back with --userids-file.",
)


def write_failures_file(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``rows`` under ``header`` as CSV at ``path`` (the header alone when there are none); a
    file that cannot be written is one line and exit 2."""
    try:
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(["" if v is None else v for v in row] for row in rows)
    except OSError as exc:
        raise fail(f"cannot write --failures-file {path}: {exc.strerror or exc}", USAGE) from None


def reason(error: BaseException) -> tuple[int | None, str]:
    """An error's errcode (when WeChat gave one) and its line, for a row of a failures file."""
    errcode = error.errcode if isinstance(error, APIError) else None
    return errcode, describe(error)
