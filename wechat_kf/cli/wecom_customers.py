"""``wechat-kf wecom customers get``: what WeCom tells of 微信客服 customers, for any number of
external_userids (given, or read from a file like the servicer commands read userids), asked
100 at a time and concurrently behind a progress bar; every id ends found, invalid, or named as
unprocessed, also after a Ctrl-C."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any, BinaryIO

import attrs
import click

from wechat_kf import (
    BatchError,
    CredentialError,
    Customer,
    CustomerBatch,
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

#: Ids and errors a text report shows before "... (N in all)".
_SHOWN = 20
_ERRORS_SHOWN = 5


@click.group("customers")
def customers() -> None:
    """The 微信客服 customers of the corp."""


@attrs.define
class _Gathered:
    """What a run has read so far, as each request settled: the customers and invalid ids, by
    id; ``errors`` in the order they came. Every id asked for and not settled is unprocessed."""

    ids: list[str]
    found: dict[str, Customer] = attrs.Factory(dict)
    invalid: set[str] = attrs.Factory(set)
    errors: list[Exception] = attrs.Factory(list)

    def settle(self, _: list[str], answer: CustomerBatch | None, error: Exception | None) -> None:
        """One request's outcome, as ``customers.get`` reports it."""
        if answer is not None:
            self.found.update((c.external_userid, c) for c in answer.customers)
            self.invalid.update(answer.invalid)
        if error is not None:
            self.errors.append(error)

    def outcome(self) -> tuple[CustomerBatch, list[str]]:
        """Every id so far in input order: found or invalid, else unprocessed."""
        ids = self.ids
        batch = CustomerBatch(
            [self.found[i] for i in ids if i in self.found],
            [i for i in ids if i in self.invalid],
        )
        rest = [i for i in ids if i not in self.found and i not in self.invalid]
        return batch, rest


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
        gathered.ids = _ids(external_userids, ids_file, encoding)
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            # A BatchError's ids and errors are the ones settle() was told of.
            with (
                progress(not as_json, "reading customers") as on_progress,
                contextlib.suppress(BatchError),
            ):
                await client.customers.get(
                    gathered.ids,
                    enter_session_context=context,
                    on_progress=on_progress,
                    on_request=gathered.settle,
                )
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
