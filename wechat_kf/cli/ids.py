"""The ids a batch works on: --userid, --department-id, and files of ids as people make them: a
plain list, or a CSV or TSV export with a header row and several columns (read with the ``csv``
module; --column picks the column, a header is recognised or declared), Excel's byte-order mark,
GBK exports, '#' comments. A line that holds no usable id is skipped and said, with its number
and why; a file that is not a list of ids at all is refused in one line."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

import attrs
import click

from wechat_kf.wecom import userid_problem

from .exits import USAGE, fail

#: Says what keeps a value from being an id (None: it is one).
Check = Callable[[str], "str | None"]

#: Header cells that name a column of ids, compared without case, spaces, '_' or '-'; the first
#: of them a header holds is the column taken when --column is not given.
ID_HEADERS = ("userid", "openuserid", "账号", "帐号", "成员账号", "userids", "id", "account")
#: Headers of other ids a file may hold (a command's own ``what`` is looked for first).
_OTHER_IDS = ("externaluserid",)
#: Other header cells an HR export's first row is recognised by.
_OTHER_HEADERS = ("name", "姓名", "department", "部门", "email", "邮箱", "mobile", "手机", "职务")
_DELIMITERS = (",", "\t", ";")
#: How many data lines the delimiter is guessed from.
_SAMPLE = 50


@attrs.frozen
class Skipped:
    """A line of an ids file that gave no id: its number, the value (or the whole line), why,
    and whether it ``counts`` as an id the run could not process (exit 1) or is only said (a
    header, a repeat)."""

    line: int
    value: str
    reason: str
    counts: bool = True

    def data(self, source: str) -> dict[str, Any]:
        return {"file": source, "line": self.line, "value": self.value, "reason": self.reason}


@attrs.define
class Target:
    """What a command was given: the userids (or other ids), in order, the department ids, and
    the lines of its file that were skipped."""

    ids: list[str] = attrs.Factory(list)
    department_ids: list[int] = attrs.Factory(list)
    skipped: list[Skipped] = attrs.Factory(list)
    source: str = "-"

    @property
    def unusable(self) -> list[Skipped]:
        """The skipped lines that make the run fail: ids that could not be processed."""
        return [s for s in self.skipped if s.counts]

    def unusable_note(self) -> str:
        """For a summary line: how many skipped lines held no usable id ("" when none)."""
        count = len(self.unusable)
        if not count:
            return ""
        return f", {count} line{'' if count == 1 else 's'} with no usable id"

    def skipped_data(self) -> list[dict[str, Any]]:
        return [s.data(self.source) for s in self.skipped]


@attrs.frozen
class Layout:
    """How to read a file: --column (a name, or a number from 1), --header / --no-header (None:
    recognise it), --delimiter (None: guess), --encoding."""

    column: str | None = None
    header: bool | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"


def _normal(cell: str) -> str:
    return "".join(ch for ch in cell.strip().lower() if ch not in " _-")


def _decode(stream: BinaryIO, encoding: str) -> tuple[str, str]:
    """The file's name and text, its byte-order mark dropped; one line and exit 2 when it does
    not decode or holds control characters (a binary file)."""
    name = getattr(stream, "name", "-")
    name = "standard input" if name in ("-", "<stdin>") else str(name)
    raw = stream.read()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise fail(f"unknown --encoding {encoding!r}", USAGE) from None
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        raise fail(
            f"{name}: not {encoding} text (byte 0x{byte:02x} at offset {exc.start}); "
            "give its encoding with --encoding, such as --encoding gbk",
            USAGE,
        ) from None
    text = text.removeprefix("\ufeff")
    for number, line in enumerate(text.splitlines(), start=1):
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in line):
            raise fail(f"{name}: line {number} holds control characters: not a list of ids", USAGE)
    return name, text


def _delimiter(lines: Sequence[str]) -> str:
    """The delimiter most of the first lines hold (a comma when none holds any)."""
    sample = lines[:_SAMPLE]
    counts = [sum(1 for line in sample if d in line) for d in _DELIMITERS]
    best = max(range(len(_DELIMITERS)), key=lambda i: counts[i])
    return _DELIMITERS[best] if counts[best] else ","


def _is_header(row: Sequence[str], layout: Layout) -> bool:
    if layout.header is not None:
        return layout.header
    cells = {_normal(cell) for cell in row}
    if layout.column is not None and not layout.column.isdigit():
        return True  # a column named: the first row names the columns
    return bool(cells & {_normal(h) for h in (*ID_HEADERS, *_OTHER_IDS, *_OTHER_HEADERS)})


def _column(header: Sequence[str] | None, width: int, layout: Layout, name: str, what: str) -> int:
    """The index of the column of ids: the one chosen, the only one, or the one headed
    ``what`` (or, for userids, as an HR export heads them)."""
    chosen = layout.column
    shown = ", ".join(repr(c.strip()) for c in header) if header else ""
    if chosen is not None and chosen.isdigit():
        index = int(chosen) - 1
        if index < 0:
            raise fail("--column counts from 1", USAGE)
        if index >= width:
            raise fail(f"{name}: --column {chosen}, but its lines have at most {width}", USAGE)
        return index
    if chosen is not None:
        assert header is not None
        names = [_normal(c) for c in header]
        if _normal(chosen) not in names:
            raise fail(f"{name}: no column {chosen!r} in its header ({shown})", USAGE)
        return names.index(_normal(chosen))
    if width <= 1:
        return 0
    if header is not None:
        names = [_normal(c) for c in header]
        for wanted in (what, *(ID_HEADERS if what == "userid" else ())):
            if _normal(wanted) in names:
                return names.index(_normal(wanted))
        raise fail(
            f"{name}: {width} columns and none named {what} ({shown}): choose one with "
            "--column NAME or --column N",
            USAGE,
        )
    raise fail(
        f"{name}: {width} columns and no header: choose the column of ids with --column N "
        "(from 1), or name it with --column NAME if the first line is a header",
        USAGE,
    )


def read_ids(stream: BinaryIO, layout: Layout, check: Check, what: str = "userid") -> Target:
    """The ids of a file (a list, or a CSV/TSV export; see :class:`Layout`): blank lines,
    '#' comments and blank rows left out unsaid; the header, lines with no value in the column,
    values ``check`` refuses and repeats skipped, each with its line number and why."""
    if layout.column is not None and not layout.column.isdigit() and layout.header is False:
        raise fail("--column NAME needs the header that names it: drop --no-header", USAGE)
    name, text = _decode(stream, layout.encoding)
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    delimiter = layout.delimiter or _delimiter([line for _, line in lines])
    rows = [(n, next(csv.reader([line], delimiter=delimiter), [])) for n, line in lines]
    rows = [(n, row) for n, row in rows if any(cell.strip() for cell in row)]
    target = Target(source=name)
    if not rows:
        return target
    header: list[str] | None = None
    if _is_header(rows[0][1], layout):
        number, header = rows.pop(0)
        target.skipped.append(Skipped(number, delimiter.join(header), "the header", counts=False))
    width = max([len(header or [])] + [len(row) for _, row in rows[:_SAMPLE]])
    index = _column(header, width, layout, name, what)
    label = repr(header[index].strip()) if header and index < len(header) else str(index + 1)
    # A --failures-file read back: its skipped rows hold no id to retry (the run that wrote it
    # said why), so a rerun of what failed can end clean.
    names = [_normal(cell) for cell in header or ()]
    outcome = names.index("outcome") if "outcome" in names else None
    first_line: dict[str, int] = {}
    for number, row in rows:
        if outcome is not None and outcome < len(row) and row[outcome].strip() == "skipped":
            reason = "skipped by the run that wrote this failures file"
            target.skipped.append(Skipped(number, delimiter.join(row), reason, counts=False))
            continue
        value = row[index].strip() if index < len(row) else ""
        problem = None if value else f"no value in column {label}"
        problem = problem or _problem(check, value, what)
        if problem is not None:
            target.skipped.append(Skipped(number, value or delimiter.join(row), problem))
        elif value in first_line:
            reason = f"repeats line {first_line[value]}"
            target.skipped.append(Skipped(number, value, reason, counts=False))
        else:
            first_line[value] = number
            target.ids.append(value)
    return target


def _problem(check: Check, value: str, what: str) -> str | None:
    problem = check(value)
    article = "an" if what.startswith(("a", "e", "i", "o")) else "a"  # "a userid"
    return None if problem is None else f"not {article} {what}: {value!r} {problem}"


def file_options(func: Any, *, what: str = "userid") -> Any:
    """--column, --header/--no-header, --delimiter and --encoding, for a file of ``what``s."""
    options = [
        click.option(
            "--column",
            help=f"The column of {what}s in a CSV or TSV file: its header's NAME, or N from 1 "
            f"(default: the only column, or the one headed {what}).",
        ),
        click.option(
            "--header/--no-header",
            default=None,
            help="Whether the file's first line is a header (default: recognised by its names).",
        ),
        click.option(
            "--delimiter",
            type=click.Choice([",", ";", "tab"]),
            help="The file's delimiter (default: the one its lines hold).",
        ),
        click.option(
            "--encoding",
            default="utf-8",
            show_default=True,
            help="The file's encoding, such as gbk (a UTF-8 byte-order mark is dropped).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def layout_of(opts: dict[str, Any]) -> Layout:
    """The :class:`Layout` the options of :func:`file_options` say (and takes them out)."""
    delimiter = opts.pop("delimiter")
    return Layout(
        column=opts.pop("column"),
        header=opts.pop("header"),
        delimiter="\t" if delimiter == "tab" else delimiter,
        encoding=opts.pop("encoding"),
    )


def target(
    userids: Sequence[str],
    userids_file: BinaryIO | None,
    layout: Layout,
    department_ids: Sequence[int],
) -> Target:
    """The userids (given, then the file's) and department ids a command was given, with the
    lines of the file that were skipped."""
    found = read_ids(userids_file, layout, userid_problem) if userids_file else Target()
    found.ids = [*userids, *found.ids]
    found.department_ids = list(department_ids)
    return found
