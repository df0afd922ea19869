"""``wechat-kf oa sessions``: an Official Account's customer-service sessions, the users waiting
for a kf account, and the chat records of any span, printed as they arrive.

Times: ``--since`` and ``--until`` are ISO 8601; one without an offset is read in this
machine's time zone (as ``date`` shows it), and the tables show times in that zone with their
offset; --json keeps the SDK's unix seconds. The records of a --json run are one JSON document
written as they arrive: ``{"records": [...], "count": n, "ok": ...}``, closed with the error or
``"interrupted": true`` when the run stops early."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import click
from rich.markup import escape

from wechat_kf import (
    CredentialError,
    MessageRecord,
    OfficialAccountClient,
    WaitingCases,
    WeChatError,
    to_data,
)

from .credentials import credentials
from .exits import FAILED, OK, USAGE, describe, error_data, fail, final_report, run
from .options import F, common
from .output import err, out
from .reports import StreamedDocument, connector, listing, one_call
from .tables import kf_sessions_table, local_time, record_line, waiting_table


@click.group("sessions")
def sessions() -> None:
    """Customer-service sessions, the waiting queue and chat records."""


def _oa_command(name: str, help_text: str) -> Callable[[F], F]:
    """An ``oa sessions`` subcommand with credentials and the common options."""

    def decorate(func: F) -> F:
        func = credentials("appid", "Official Account appid.", "WECHAT_APPID", "WECHAT_SECRET")(
            common(func)
        )
        return sessions.command(name, help=help_text)(func)  # type: ignore[return-value]

    return decorate


@_oa_command("list", "List the sessions a kf account is serving.")
@click.argument("kf_account")
def sessions_list(kf_account: str, **opts: Any) -> None:
    """Print the users ``kf_account`` serves now, and since when."""
    listing(
        opts,
        OfficialAccountClient,
        lambda c: c.sessions.list(kf_account),
        kf_sessions_table,
        "sessions",
    )


@_oa_command("waiting", "Show how many users wait for a kf account, the longest first.")
def sessions_waiting(**opts: Any) -> None:
    """Print how many users wait and the 100 who have waited longest."""

    def text(waiting: WaitingCases) -> str:
        console = out()
        with console.capture() as captured:
            console.print(f"{waiting.count} waiting")
            if waiting.cases:
                console.print(waiting_table(waiting))
        return captured.get().rstrip("\n")

    one_call(
        opts, OfficialAccountClient, lambda c: c.sessions.waiting(), text, lambda w: to_data(w)
    )


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time (a usage error otherwise); one without an offset is in this machine's
    time zone."""
    if value is None:
        return None
    text = value.strip()
    try:
        # Python 3.10 does not read a "Z" suffix itself.
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, such as 2024-05-01T09:30 or 2024-05-01", ctx, param
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


@_oa_command("records", "Print the chat records of any span, as they arrive.")
@click.option("--since", required=True, callback=_time, help="From (ISO 8601; local if no offset).")
@click.option("--until", callback=_time, help="To (ISO 8601; local if no offset). Default: now.")
def sessions_records(since: datetime, until: datetime | None, **opts: Any) -> None:
    """Print the chat records between --since and --until (default: now), read in 24-hour
    windows and printed as they arrive: lines of fixed columns, or with --json one document
    whose array is written record by record and closed whatever stops the run."""
    connect, as_json = connector(OfficialAccountClient, opts), bool(opts["as_json"])
    document = StreamedDocument("records")
    counted = [0]

    async def main_() -> int:
        end = until if until is not None else datetime.now().astimezone()
        if end <= since:
            raise fail(
                f"--since ({local_time(since)}) must be before --until ({local_time(end)})", USAGE
            )
        failure: list[WeChatError] = []
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            records = client.sessions.records(since, end)  # arguments checked here
            try:
                async with records:
                    async for record in records:
                        _show(record)
            except WeChatError as exc:
                if not as_json:
                    raise  # one line by exits.run, after the records printed so far
                failure.append(exc)
        if failure:
            code = USAGE if isinstance(failure[0], CredentialError) else FAILED
            return final_report(code, lambda: _close_on_error(document, failure[0]))
        if as_json:
            return final_report(OK, lambda: document.close(ok=True))
        span = f"between {local_time(since)} and {local_time(end)}"
        return final_report(OK, lambda: out().print(f"{counted[0]} records {span}"))

    def _show(record: MessageRecord) -> None:
        if as_json:
            document.add(to_data(record))
        else:
            if counted[0] == 0:
                click.echo(record_line(None))
            click.echo(record_line(record))
        counted[0] += 1

    def interrupted() -> None:
        if as_json:
            error = {"type": "Interrupted", "message": "interrupted by Ctrl-C"}
            document.close(ok=False, interrupted=True, error=error)
        else:
            out().print(f"{counted[0]} records before the interrupt")

    run(main_, as_json=as_json, interrupted=interrupted)


def _close_on_error(document: StreamedDocument, error: WeChatError) -> None:
    """End the document with the error, and say it in one line on stderr."""
    document.close(ok=False, error=error_data(error))
    prefix = "credentials refused: " if isinstance(error, CredentialError) else ""
    err().print(f"[red]error:[/red] {escape(prefix + describe(error))}")
