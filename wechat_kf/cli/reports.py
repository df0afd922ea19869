"""What a command prints when its work is done or interrupted: a listing and the outcome of one
call, as text for a person or one JSON document with --json (written whole, or item by item for
a stream of records). A report of finished work is written whole and keeps the run's exit code
whatever Ctrl-C follows (``exits.final_report``). Batches and syncs: ``batch_reports``.

Every --json document is one object: ``{"ok": ..., ...}`` with named fields; a listing's is
``{"ok": true, "<items>": [...], "count": n}`` (``"servicers"``, ``"kf_accounts"``,
``"sessions"``, ...)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from wechat_kf import TransportError, to_data

from .credentials import Client, open_client
from .exits import FAILED, OK, describe, error_data, final_report, run
from .output import PRINTED, err, out, print_json, run_state, sigint_deferred

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
    key: str,
) -> None:
    """Fetch a list and print it as a table, or with --json as the one document
    ``{"ok": true, key: [...], "count": n}``."""
    connect, as_json = connector(cls, opts), bool(opts["as_json"])

    async def main_() -> int:
        async with AsyncExitStack() as stack:
            items = await fetch(await connect(stack))
        if as_json:
            document = {"ok": True, key: to_data(list(items)), "count": len(items)}
            return final_report(OK, lambda: print_json(document))
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
        self.count: int = 0
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
