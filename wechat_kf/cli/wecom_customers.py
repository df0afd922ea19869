"""``wechat-kf wecom customers get``: what WeCom tells of 微信客服 customers, for any number of
external_userids (given, or read from a list or a CSV export like the servicer commands read
userids), asked 100 at a time and concurrently behind a progress bar; every id ends found,
invalid, or named as unprocessed (with the error that left it), also after a Ctrl-C; those that
did not go through can go to a --failures-file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
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
from .exits import USAGE, exit_code, fail, final_report, run
from .failures import (
    ErrorGroup,
    failures_file_option,
    group_errors,
    reason,
    write_error_groups,
    write_failures_file,
    write_skipped,
)
from .ids import Layout, Target, file_options, layout_of, read_ids
from .options import identifier_problem, tuning
from .output import out, print_json
from .progress import progress
from .reports import connector
from .tables import customers_text

#: Ids a text report shows before "... (N in all)".
_SHOWN = 20
#: The columns of the --failures-file.
_FAILURE_COLUMNS = ("external_userid", "outcome", "errcode", "reason")


@click.group("customers")
def customers() -> None:
    """The 微信客服 customers of the corp."""


@attrs.define
class _Gathered:
    """What a run has read so far, as each request settled: the customers and invalid ids, by
    id; ``errors`` in the order they came. Every id asked for and not settled is unprocessed."""

    ids: list[str]
    target: Target = attrs.Factory(Target)
    found: dict[str, Customer] = attrs.Factory(dict)
    invalid: set[str] = attrs.Factory(set)
    failed: list[tuple[Exception, list[str], list[int]]] = attrs.Factory(list)

    def settle(self, ids: list[str], answer: CustomerBatch | None, error: Exception | None) -> None:
        """One request's outcome, as ``customers.get`` reports it."""
        if answer is not None:
            self.found.update((c.external_userid, c) for c in answer.customers)
            self.invalid.update(answer.invalid)
        if error is not None:
            self.failed.append((error, list(ids), []))

    def groups(self) -> list[ErrorGroup]:
        return group_errors((), self.failed)

    def outcome(self) -> tuple[CustomerBatch, list[str]]:
        """Every id so far in input order: found or invalid, else unprocessed."""
        ids = self.ids
        batch = CustomerBatch(
            [self.found[i] for i in ids if i in self.found],
            [i for i in ids if i in self.invalid],
        )
        rest = [i for i in ids if i not in self.found and i not in self.invalid]
        return batch, rest


def _ids(given: Sequence[str], ids_file: BinaryIO | None, layout: Layout) -> Target:
    """The distinct ids given then read (first kept), each checked before any request: one
    given that is not an id is a usage error, a line of the file is skipped and said."""
    for value in given:
        problem = identifier_problem(value)
        if problem is not None:
            raise fail(f"external_userid {value!r} {problem}", USAGE)
    found = Target()
    if ids_file is not None:
        found = read_ids(ids_file, layout, identifier_problem, what="external_userid")
    found.ids = list(dict.fromkeys([*given, *found.ids]))
    if not found.ids and not found.unusable:
        raise fail("nothing to do: give external_userids or --file", USAGE)
    return found


def _gone(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        raise click.UsageError(
            "--show-all is gone: every id is in --json, and the invalid and unprocessed ones "
            "in --failures-file FILE",
            ctx,
        )
    return value


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
    type=click.File("rb", lazy=True),  # nothing left open by a usage error
    help="A list of external_userids, one per line ('#' comments, blank lines skipped), or a "
    "CSV or TSV export (see --column); '-' reads stdin.",
)
@lambda f: file_options(f, what="external_userid")
@click.option("--context", is_flag=True, help="Also ask how each entered the session (scene).")
@failures_file_option
@tuning
@click.option(
    "--show-all", is_flag=True, hidden=True, expose_value=False, is_eager=True, callback=_gone
)
def customers_get(
    external_userids: tuple[str, ...],
    ids_file: BinaryIO | None,
    context: bool,
    failures_file: Path | None,
    **opts: Any,
) -> None:
    """Print the customers the ids name, then the invalid ids (unknown, or silent for 48
    hours: exit 0 all the same) and any ids left unprocessed by a failed request (exit 1), so
    that running again with those finishes the job."""
    layout = layout_of(opts)
    connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
    gathered = _Gathered([])
    finished: list[_Gathered] = []

    def report(interrupted: bool = False) -> None:
        if failures_file is not None:
            write_failures_file(failures_file, _FAILURE_COLUMNS, _failure_rows(gathered))
        _report(gathered, as_json=as_json, context=context, interrupted=interrupted)

    async def main_() -> int:
        gathered.target = _ids(external_userids, ids_file, layout)
        gathered.ids = gathered.target.ids
        if not gathered.ids:  # every line of the file was skipped: say which, ask nothing
            finished.append(gathered)
            return final_report(exit_code([], True), report)
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
        refused = [e for e, _, _ in gathered.failed if isinstance(e, CredentialError)]
        if refused and not batch.customers and not batch.invalid:
            raise refused[0]  # the credentials, not the ids: one line and exit 2
        finished.append(gathered)
        failed = bool(rest) or bool(gathered.target.unusable)
        code = exit_code([e for e, _, _ in gathered.failed], failed)
        return final_report(code, report)

    def interrupted() -> None:
        report(interrupted=not finished)

    run(main_, as_json=as_json, interrupted=interrupted)


def _failure_rows(gathered: _Gathered) -> Iterator[tuple[Any, ...]]:
    """A row per id that did not go through: invalid, unprocessed (with the error that left
    it), and the skipped lines of the file."""
    batch, rest = gathered.outcome()
    for external_userid in batch.invalid:
        yield external_userid, "invalid", None, "unknown, or silent for 48 hours"
    why = {i: reason(error) for error, ids, _ in gathered.failed for i in ids}
    stopped = (None, "not sent: the run stopped (or was interrupted) first")
    for external_userid in rest:
        yield external_userid, "unprocessed", *why.get(external_userid, stopped)
    for line in gathered.target.unusable:
        yield line.value, "skipped", None, f"line {line.line}: {line.reason}"


def _report(
    gathered: _Gathered, *, as_json: bool, context: bool, interrupted: bool = False
) -> None:
    """The customers, the invalid ids and the unprocessed ones with what failed: one JSON
    document, or a table and a few lines."""
    batch, rest = gathered.outcome()
    groups, target = gathered.groups(), gathered.target
    if as_json:
        data: dict[str, Any] = {
            "ok": not rest and not interrupted and not target.unusable,
            "summary": {
                "found": len(batch.customers),
                "invalid": len(batch.invalid),
                "unprocessed": len(rest),
                "skipped": len(target.unusable),
            },
            "customers": to_data(batch.customers),
            "invalid": batch.invalid,
            "unprocessed_external_userids": rest,
            "errors": [group.data("external_userids") for group in groups],
            "skipped": target.skipped_data(),
        }
        if interrupted:
            data["interrupted"] = True
        print_json(data)
        return
    console = out()
    if batch.customers:
        click.echo(customers_text(batch.customers, context=context))
    if batch.invalid:
        console.print(f"invalid (unknown, or silent for 48 hours): {_some(batch.invalid)}")
    if rest:
        note = " (interrupted: they may include requests in flight)" if interrupted else ""
        console.print(f"unprocessed{note}, ask for them again: {_some(rest)}")
        write_error_groups(console, groups, "external_userids")
    write_skipped(console, target.source, target.skipped)
    skipped = target.unusable_note()
    console.print(
        f"{len(batch.customers)} found, {len(batch.invalid)} invalid, {len(rest)} unprocessed"
        + skipped
    )


def _some(ids: Sequence[str]) -> str:
    more = f", ... ({len(ids)} in all: --json or --failures-file)" if len(ids) > _SHOWN else ""
    return ", ".join(ids[:_SHOWN]) + more
