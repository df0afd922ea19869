"""``wechat-kf wecom customers get``: what WeCom tells of 微信客服 customers, for any number of
external_userids (given, or read from a file like the servicer commands read userids), asked
100 at a time and concurrently behind a progress bar; every id ends found, invalid, or named as
unprocessed, also after a Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, BinaryIO

import anyio
import attrs
import click

from wechat_kf import (
    AccessTokenError,
    BatchError,
    ClientClosedError,
    CredentialError,
    Customer,
    CustomerBatch,
    PermissionDeniedError,
    RateLimitError,
    WeChatError,
    WeComClient,
    to_data,
)

from .credentials import wecom_command
from .exits import FAILED, OK, USAGE, describe, error_data, fail, final_report, run
from .ids import read_userids
from .options import identifier_problem
from .output import out, print_json
from .progress import progress
from .reports import connector
from .tables import customers_text

#: What one customer/batchget request takes.
_PER_REQUEST = 100
#: Ids and errors a text report shows before "... (N in all)".
_SHOWN = 20
_ERRORS_SHOWN = 5
#: WeCom's daily quota: once it is used up, nothing more goes through today.
_QUOTA_USED_UP = 45009


@click.group("customers")
def customers() -> None:
    """The 微信客服 customers of the corp."""


def _fatal(error: Exception) -> bool:
    """Whether no other request can succeed after ``error`` (the SDK's own rule for its
    batches): refused credentials or permission, a token still refused, a closed client, the
    day's quota used up, or a failure that is not WeChat's at all."""
    if isinstance(error, RateLimitError):
        return error.errcode == _QUOTA_USED_UP
    fatal = (CredentialError, PermissionDeniedError, AccessTokenError, ClientClosedError)
    return isinstance(error, fatal) or not isinstance(error, WeChatError)


@attrs.define
class _Gathered:
    """The requests of a run (100 ids each) and how each settled so far: the customers and
    invalid ids it answered, and its ids left unprocessed; ``errors`` in the order they came."""

    chunks: list[list[str]]
    settled: dict[int, tuple[CustomerBatch, list[str]]] = attrs.Factory(dict)
    errors: list[Exception] = attrs.Factory(list)

    def outcome(self) -> tuple[CustomerBatch, list[str]]:
        """Every id so far in input order: found or invalid, else unprocessed (a request not
        settled yet leaves all its ids unprocessed)."""
        found: list[Customer] = []
        invalid: list[str] = []
        rest: list[str] = []
        for index, chunk in enumerate(self.chunks):
            batch, unprocessed = self.settled.get(index, (CustomerBatch(), chunk))
            found.extend(batch.customers)
            invalid.extend(batch.invalid)
            rest.extend(unprocessed)
        return CustomerBatch(found, invalid), rest


async def _gather(
    client: WeComClient,
    gathered: _Gathered,
    context: bool,
    on_progress: Callable[[int, int], None],
) -> None:
    """Ask for every chunk, at most the client's ``max_concurrency`` at a time; after a fatal
    failure the chunks not yet started stay unsent (unprocessed)."""
    limiter = anyio.CapacityLimiter(client.max_concurrency)
    total = sum(len(chunk) for chunk in gathered.chunks)
    done = 0
    stopped = False

    async def one(index: int, chunk: list[str]) -> None:
        nonlocal done, stopped
        async with limiter:
            settled: tuple[CustomerBatch, list[str]] = (CustomerBatch(), chunk)
            if not stopped:
                try:
                    batch = await client.customers.get(chunk, enter_session_context=context)
                    settled = (batch, [])
                except BatchError as exc:
                    partial: CustomerBatch = exc.result
                    settled = (partial, exc.unprocessed_userids)
                    gathered.errors.extend(exc.errors)
                    stopped = stopped or any(_fatal(e) for e in exc.errors)
                except WeChatError as exc:  # such as a closed client: nothing was asked
                    gathered.errors.append(exc)
                    stopped = True
            gathered.settled[index] = settled
            done += len(chunk)
            on_progress(done, total)

    async with anyio.create_task_group() as group:
        for index, chunk in enumerate(gathered.chunks):
            group.start_soon(one, index, chunk)


def _ids(given: Sequence[str], ids_file: BinaryIO | None, encoding: str) -> list[str]:
    """The distinct ids given then read (first kept), each checked before any request."""
    ids = [*given, *(read_userids(ids_file, encoding) if ids_file else [])]
    for value in ids:
        problem = identifier_problem(value)
        if problem is not None:
            raise fail(f"external_userid {value!r} {problem}", USAGE)
    if not ids:
        raise fail("nothing to do: give external_userids or --file", USAGE)
    return list(dict.fromkeys(ids))


@wecom_command(
    customers,
    "get",
    "Show customers (nickname, gender, unionid, avatar) by external_userid, any number.",
    open_kfid=False,
)
@click.argument("external_userids", nargs=-1)
@click.option(
    "--file",
    "ids_file",
    type=click.File("rb"),
    help="One external_userid per line ('#' comments, blank lines skipped); '-' reads stdin.",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="The file's encoding, such as gbk (a UTF-8 byte-order mark is dropped).",
)
@click.option("--context", is_flag=True, help="Also ask how each entered the session (scene).")
@click.option("--show-all", is_flag=True, help="Every invalid and unprocessed id, not 20.")
def customers_get(
    external_userids: tuple[str, ...],
    ids_file: BinaryIO | None,
    encoding: str,
    context: bool,
    show_all: bool,
    **opts: Any,
) -> None:
    """Print the customers the ids name, then the invalid ids (unknown, or silent for 48
    hours: exit 0 all the same) and any ids left unprocessed by a failed request (exit 1), so
    that running again with those finishes the job."""
    connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
    gathered = _Gathered([])
    finished: list[_Gathered] = []

    async def main_() -> int:
        ids = _ids(external_userids, ids_file, encoding)
        gathered.chunks = [ids[i : i + _PER_REQUEST] for i in range(0, len(ids), _PER_REQUEST)]
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            with progress(not as_json, "reading customers") as on_progress:
                await _gather(client, gathered, context, on_progress)
        batch, rest = gathered.outcome()
        refused = [e for e in gathered.errors if isinstance(e, CredentialError)]
        if refused and not batch.customers and not batch.invalid:
            raise refused[0]  # the credentials, not the ids: one line and exit 2
        finished.append(gathered)
        return final_report(
            FAILED if rest else OK,
            lambda: _report(gathered, as_json=as_json, context=context, show_all=show_all),
        )

    def interrupted() -> None:
        _report(
            gathered,
            as_json=as_json,
            context=context,
            show_all=show_all,
            interrupted=not finished,
        )

    run(main_, as_json=as_json, interrupted=interrupted)


def _report(
    gathered: _Gathered, *, as_json: bool, context: bool, show_all: bool, interrupted: bool = False
) -> None:
    """The customers, the invalid ids and the unprocessed ones with what failed: one JSON
    document, or a table and a few lines."""
    batch, rest = gathered.outcome()
    if as_json:
        data: dict[str, Any] = {
            "ok": not rest and not interrupted,
            "customers": to_data(batch.customers),
            "invalid": batch.invalid,
            "unprocessed_external_userids": rest,
            "errors": [error_data(e) for e in gathered.errors],
        }
        if interrupted:
            data["interrupted"] = True
        print_json(data)
        return
    console = out()
    if batch.customers:
        click.echo(customers_text(batch.customers, context=context))
    if batch.invalid:
        console.print(
            f"invalid (unknown, or silent for 48 hours): {_some(batch.invalid, show_all)}"
        )
    if rest:
        note = " (interrupted: they may include requests in flight)" if interrupted else ""
        console.print(f"unprocessed{note}, ask for them again: {_some(rest, show_all)}")
        for error in gathered.errors[:_ERRORS_SHOWN]:
            console.print(f"  {describe(error)}")
        if len(gathered.errors) > _ERRORS_SHOWN:
            console.print(f"  ... ({len(gathered.errors)} failed requests in all)")
    console.print(
        f"{len(batch.customers)} found, {len(batch.invalid)} invalid, {len(rest)} unprocessed"
    )


def _some(ids: Sequence[str], show_all: bool) -> str:
    shown = ids if show_all else ids[:_SHOWN]
    more = f", ... ({len(ids)} in all: --show-all or --json)" if len(shown) < len(ids) else ""
    return ", ".join(shown) + more
