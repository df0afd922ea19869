"""``wechat-kf wecom servicers``: list, add, delete and sync the servicers of a 微信客服
account, in batches of any size (ids given, or read from a list or a CSV export), with a
progress bar, a report of a few lines however large the batch, every failed id in a
--failures-file, and a Ctrl-C that says what was done."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import click

from wechat_kf import BatchError, SyncError, WeComClient
from wechat_kf.wecom import over_caps

from .batch_reports import BatchRun, SyncRun, report_batch, report_sync
from .credentials import wecom_command
from .exits import USAGE, fail, run
from .failures import failures_file_option
from .ids import Layout, Target, file_options, layout_of, target
from .options import F, tuning, userids_given
from .progress import Journal, progress
from .reports import connector, listing
from .tables import servicers_table


@click.group("servicers")
def servicers() -> None:
    """The servicers of a 微信客服 account."""


@wecom_command(servicers, "list", "List the servicers of a 微信客服 account.")
def servicers_list(open_kfid: str, **opts: Any) -> None:
    listing(opts, WeComClient, lambda c: c.servicers.list(open_kfid), servicers_table, "servicers")


def _show_all_is_gone(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        raise click.UsageError(
            "--show-all is gone: every id's outcome is in --json, and every id that did not go "
            "through in --failures-file FILE",
            ctx,
        )
    return value


def _batch_options(func: F) -> F:
    options = [
        click.option(
            "--userid", "userids", multiple=True, callback=userids_given, help="Repeatable."
        ),
        click.option(
            "--userids-file",
            type=click.File("rb", lazy=True),  # nothing left open by a usage error
            help="A list of userids, one per line ('#' comments, blank lines skipped), or a CSV "
            "or TSV export (see --column); '-' reads stdin. Lines that hold no userid are "
            "skipped and said, with their number.",
        ),
        lambda f: file_options(f, what="userid"),
        click.option(
            "--department-id",
            "department_ids",
            multiple=True,
            type=click.IntRange(min=1),
            help="Repeatable.",
        ),
        failures_file_option,
        tuning,
        click.option(
            "--show-all",
            is_flag=True,
            hidden=True,
            expose_value=False,
            is_eager=True,  # refused before any file is opened
            callback=_show_all_is_gone,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@attrs.define
class _Given:
    """What a batch command was given, the options with the secret aside; ``wanted`` once the
    file is read (in the run, so that a bad file is one line and its exit code)."""

    userids: tuple[str, ...]
    userids_file: BinaryIO | None
    layout: Layout
    department_ids: tuple[int, ...]
    failures_file: Path | None
    wanted: Target = attrs.Factory(Target)

    def read(self) -> Target:
        self.wanted = target(self.userids, self.userids_file, self.layout, self.department_ids)
        return self.wanted


def _given(opts: dict[str, Any]) -> _Given:
    return _Given(
        opts.pop("userids"),
        opts.pop("userids_file"),
        layout_of(opts),
        opts.pop("department_ids"),
        opts.pop("failures_file"),
    )


def _nothing(wanted: Target) -> str:
    """What the skipped lines say when they left no id at all."""
    if not wanted.unusable:
        return ""
    first = wanted.unusable[0]
    return (
        f" ({len(wanted.unusable)} lines of {wanted.source} skipped; line {first.line}: "
        f"{first.reason})"
    )


def _batch_command(delete: bool) -> Callable[..., None]:
    action = "delete" if delete else "add"

    def command(open_kfid: str, **opts: Any) -> None:
        given = _given(opts)
        # The frames below hold these, never the options with the secret in them.
        connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
        del opts
        journal = Journal()
        # The batch's outcome once it has one: a Ctrl-C after that interrupted nothing.
        finished: list[BatchRun] = []

        async def main_() -> int:
            wanted = given.read()
            if not wanted.ids and not wanted.department_ids:
                if wanted.unusable:
                    return report_batch(
                        BatchRun(action, wanted, journal),
                        as_json=as_json,
                        failures_file=given.failures_file,
                    )
                raise fail("nothing to do: give --userid, --userids-file or --department-id", USAGE)
            async with AsyncExitStack() as stack:
                client = await connect(stack)
                call = client.servicers.delete if delete else client.servicers.add
                label = "deleting servicers" if delete else "adding servicers"
                done = BatchRun(action, wanted, journal)
                with progress(not as_json, label) as on_progress:
                    try:
                        done.result = await call(
                            open_kfid,
                            wanted.ids,
                            department_ids=wanted.department_ids,
                            on_progress=on_progress,
                            on_request=journal,
                        )
                    except BatchError as exc:
                        done.result, done.errors = exc.result, exc.errors
                        done.rest = (exc.unprocessed_userids, exc.unprocessed_department_ids)
                    finished.append(done)
            return report_batch(finished[0], as_json=as_json, failures_file=given.failures_file)

        def interrupted() -> None:
            if finished:
                report_batch(finished[0], as_json=as_json, failures_file=given.failures_file)
                return
            wanted = given.wanted
            rest = journal.unprocessed(action, wanted.ids, wanted.department_ids)
            partial = BatchRun(
                action, wanted, journal, journal.result(action), rest, interrupted=True
            )
            report_batch(partial, as_json=as_json, failures_file=given.failures_file)

        run(main_, as_json=as_json, interrupted=interrupted)

    return command


def _sync_command(open_kfid: str, dry_run: bool, **opts: Any) -> None:
    given = _given(opts)
    # The frames below hold these, never the options with the secret in them.
    connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
    del opts
    journal = Journal()
    plans: list[SyncRun] = []
    # The sync's outcome once it has one: a Ctrl-C after that interrupted nothing.
    finished: list[SyncRun] = []

    def report(done: SyncRun) -> int:
        return report_sync(done, as_json=as_json, failures_file=given.failures_file)

    async def main_() -> int:
        wanted = given.read()
        if not wanted.ids and not wanted.department_ids:
            # An empty file is far more often a mistake than a wish to remove every servicer.
            raise fail(
                "the target lists no userid and no department: give ids, or remove servicers "
                f"with 'wechat-kf wecom servicers delete'{_nothing(wanted)}",
                USAGE,
            )
        over = over_caps(wanted.ids, wanted.department_ids)
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            plan = await client.servicers.sync(
                open_kfid, wanted.ids, department_ids=wanted.department_ids, dry_run=True
            )
            plans.append(SyncRun(plan, wanted, journal, over=over))
            if dry_run or over or not plan.changes:
                finished.append(plans[0])
                return report(plans[0])
            done = SyncRun(plan, wanted, journal)
            with progress(not as_json, "syncing servicers") as bar:
                try:
                    done.result = await client.servicers.sync(
                        open_kfid,
                        wanted.ids,
                        department_ids=wanted.department_ids,
                        on_progress=bar,
                        on_request=journal,
                    )
                except SyncError as exc:
                    done.error, done.result = exc, exc.result
                finished.append(done)
        return report(finished[0])

    def interrupted() -> None:
        if finished:
            report(finished[0])
            return
        if not plans:
            # Only the current servicers were being read: nothing was changed, and run() says
            # that it was interrupted.
            return
        plan = plans[0].result
        done = attrs.evolve(plan, added=journal.result("add"), removed=journal.result("delete"))
        adds = journal.unprocessed("add", plan.to_add, plan.departments_to_add)
        removes = journal.unprocessed("delete", plan.to_remove, plan.departments_to_remove)
        error = SyncError(
            done,
            unprocessed_to_add=adds[0],
            unprocessed_departments_to_add=adds[1],
            unprocessed_to_remove=removes[0],
            unprocessed_departments_to_remove=removes[1],
        )
        report(SyncRun(done, given.wanted, journal, error, interrupted=True))

    run(main_, as_json=as_json, interrupted=interrupted)


servicers_sync: Callable[..., None] = wecom_command(
    servicers, "sync", "Make the servicers exactly the ids given: add the missing, remove the rest."
)(
    _batch_options(
        click.option(
            "--dry-run",
            is_flag=True,
            help="Print the plan (and what is over the caps); send nothing.",
        )(_sync_command)
    )
)
servicers_add: Callable[..., None] = wecom_command(
    servicers, "add", "Add servicers, in concurrent batches."
)(_batch_options(_batch_command(delete=False)))
servicers_delete: Callable[..., None] = wecom_command(servicers, "delete", "Remove servicers.")(
    _batch_options(_batch_command(delete=True))
)
