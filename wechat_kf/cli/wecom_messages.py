"""``wechat-kf wecom messages``: ``send`` a text message to a 微信客服 customer, with a msgid that
makes sending again harmless, and ``tail`` an account's messages as they arrive.

``tail`` runs the SDK's :class:`~wechat_kf.Inbox` (``sync_msg`` from a stored cursor, empty pages
and has_more followed, each message handed over once) and drains the account every --interval
seconds: a command receives no callbacks, so it pulls without a callback token, which WeChat
rate-limits (45009: the tail waits longer and goes on). The cursor lives in a
:class:`~.cursor_file.CursorFileStore`: with --cursor-file it is written there after each message
printed, so a rerun prints each message once. Its --json is JSON Lines, the one exception to
"one JSON document per run": a stream that never ends is read line by line."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, NoReturn

import anyio
import attrs
import click
from rich.markup import escape

from wechat_kf import (
    CredentialError,
    Inbox,
    KfMessage,
    RateLimitError,
    SentMessage,
    Text,
    TransportError,
    WeChatError,
    WeComClient,
    to_data,
)

from .credentials import wecom_command
from .cursor_file import CursorFileError, CursorFileStore, OutputClosed
from .exits import FAILED, OK, USAGE, describe, error_data, fail, final_report, run
from .output import err, out, print_json, sigint_deferred, silence_stdout
from .reports import connector, one_call
from .tables import message_line

#: How long a tail waits at most between pulls that keep failing (s).
_MAX_BACKOFF = 60.0


@click.group("messages")
def messages() -> None:
    """Messages to and from 微信客服 customers."""


def _maybe_sent(error: TransportError) -> str:
    return (
        f"it may have been sent: look for msgid {error.msgid} in the conversation (or a "
        f"msg_send_fail event) before sending again, and send again only with --msgid "
        f"{error.msgid}: WeChat refuses a msgid it has seen, so no second copy can arrive"
    )


@wecom_command(messages, "send", "Send a text message to a customer; prints its msgid.")
@click.option("--to", "external_userid", required=True, help="The customer's external_userid.")
@click.option("--text", required=True, help="The text (at most 2,048 bytes of UTF-8).")
@click.option("--msgid", help="Up to 32 of [0-9a-zA-Z_-], unique per account (default: random).")
def messages_send(
    open_kfid: str, external_userid: str, text: str, msgid: str | None, **opts: Any
) -> None:
    """Send ``text`` to a customer and print the msgid. WeChat's success means accepted, not
    delivered: past the 48-hour window or its 5 messages, a msg_send_fail event names the
    msgid later. A send that may have reached WeChat before failing prints its msgid, so that
    the user checks, and sends again with the same --msgid if it must."""

    async def send(client: WeComClient) -> SentMessage:
        return await client.messages.send(open_kfid, external_userid, Text(text), msgid=msgid)

    one_call(
        opts,
        WeComClient,
        send,
        lambda sent: sent.msgid,
        lambda sent: {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "msgid": sent.msgid,
        },
        if_maybe_applied=_maybe_sent,
    )


_TAIL_HELP = """Print the account's messages as they arrive, until Ctrl-C (exit 130).

One line per message: its time, origin (customer, event, servicer), external_userid, type
and text (or a summary). A command receives no callbacks: it pulls every --interval seconds,
without a callback token, which WeChat rate-limits (on 45009 it waits longer, then goes on).

--from-now (the default) prints only what arrives from now on; --from-start first prints the
3 days WeChat keeps. With --cursor-file the place is written to that file after each message
printed, and a run given the same file goes on where the last one stopped, printing no message
twice (its cursor wins over --from-*: delete the file to start over). Without it, the place is
kept in memory only.

--json prints JSON Lines (this command only: a stream that never ends is read line by line):
each message as it arrives, as one JSON object (the SDK's to_data: msgid, msgtype, origin,
send_time in unix seconds, ...), then one last line {"ok": false, "count": N, ...} with
"interrupted": true after Ctrl-C, or the "error" that stopped it."""


@attrs.define
class _Tail:
    """What a tail prints: each message as the inbox hands it over, and its last line."""

    as_json: bool
    store: CursorFileStore | None = None
    count: int = 0
    #: Why a message could not be printed (then nothing more is committed).
    unprinted: Exception | None = None

    def show(self, message: KfMessage) -> None:
        """The inbox's handler: print one message (the header first, in text)."""
        try:
            with sigint_deferred():
                if self.as_json:
                    print_line(to_data(message))
                else:
                    if self.count == 0:
                        click.echo(message_line(None))
                    click.echo(message_line(message))
        except Exception as exc:
            # stdout is gone (a pager quit, `| head` had enough) or cannot take the text:
            # commit nothing more, so that the cursor file keeps the last message printed.
            self.unprinted = exc
            if self.store is not None:
                self.store.stop()
            raise
        self.count += 1

    def stopped(self, error: Exception) -> int:
        """The end of a tail that failed: its last line (--json) and one error line."""
        if isinstance(error, OutputClosed) and self.unprinted is not None:
            error = self.unprinted
        if isinstance(error, OSError):
            # Nobody reads any more (`| head` had enough): leave quietly, and with 0, as any
            # command whose reader went away, with nothing left to flush into the pipe.
            silence_stdout()
            return OK
        code = USAGE if isinstance(error, CredentialError) else FAILED

        def write() -> None:
            if self.as_json:
                print_json({"ok": False, "count": self.count, "error": error_data(error)})
            prefix = "credentials refused: " if isinstance(error, CredentialError) else ""
            if isinstance(error, WeChatError):
                message = describe(error)
            elif isinstance(error, CursorFileError):
                message = str(error)
            else:
                message = f"cannot print a message: {type(error).__name__}: {error}"
            err().print(f"[red]error:[/red] {escape(prefix + message)}")

        return final_report(code, write)


def print_line(data: Any) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(data, ensure_ascii=False))


@wecom_command(messages, "tail", _TAIL_HELP, json_lines=True)
@click.option("--from-start", is_flag=True, help="Begin with the 3 days of messages WeChat keeps.")
@click.option("--from-now", is_flag=True, help="Begin with what arrives from now on (default).")
@click.option(
    "--cursor-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the place in this file (made if missing), so that a rerun goes on from it.",
)
@click.option(
    "--interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between pulls.",
)
def messages_tail(
    open_kfid: str,
    from_start: bool,
    from_now: bool,
    cursor_file: Path | None,
    interval: float,
    **opts: Any,
) -> None:
    """Print the account's messages as they arrive (see ``_TAIL_HELP``)."""
    if from_start and from_now:
        raise click.UsageError("give --from-start or --from-now, not both")
    connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
    tail = _Tail(as_json)

    async def main_() -> int:
        try:
            store = tail.store = CursorFileStore(cursor_file, open_kfid)
        except CursorFileError as exc:
            raise fail(str(exc), USAGE) from None
        if not as_json:
            where = (
                "from the cursor in the file"
                if store.cursor
                else ("from the start" if from_start else "from now")
            )
            err().print(
                f"tailing {escape(open_kfid)} {where}, a pull every {interval:g} s; Ctrl-C stops"
            )
        failure: Exception
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            inbox = Inbox(
                client,
                tail.show,
                store=store,
                start="earliest" if from_start else "latest",
                max_attempts=1,  # printing fails the same way twice
                on_failure=lambda message, error: None,  # said by stopped()
            )
            await stack.enter_async_context(inbox)
            try:
                await _follow(inbox, open_kfid, interval)
            except (WeChatError, CursorFileError, OutputClosed) as exc:
                failure = exc
        return tail.stopped(failure)

    def interrupted() -> None:
        if as_json:
            error = {"type": "Interrupted", "message": "interrupted by Ctrl-C"}
            print_json({"ok": False, "count": tail.count, "interrupted": True, "error": error})
        else:
            kept = f"; the place is kept in {cursor_file}" if cursor_file else ""
            plural = "" if tail.count == 1 else "s"
            out().print(f"{tail.count} message{plural} before the interrupt{kept}")

    run(main_, as_json=as_json, interrupted=interrupted)


async def _follow(inbox: Inbox, open_kfid: str, interval: float) -> NoReturn:
    """Drain the account every ``interval`` seconds, forever. A rate limit (no callback token)
    or a network failure once a pull went through makes it wait longer, up to a minute, and go
    on; the first pull failing on the network (a wrong --base-url) and every other failure
    stop it."""
    pulled, failures = False, 0
    while True:
        try:
            await inbox.drain(open_kfid)
        except (RateLimitError, TransportError) as exc:
            if isinstance(exc, TransportError) and not pulled:
                raise
            failures += 1
            delay = min(interval * 2**failures, max(interval, _MAX_BACKOFF))
            err().print(
                f"[yellow]warning:[/yellow] {escape(describe(exc))}; pulling again in {delay:g} s"
            )
        else:
            pulled, failures = True, 0
            delay = interval
        await anyio.sleep(delay)
