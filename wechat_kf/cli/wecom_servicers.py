"""``wechat-kf wecom servicers``: list, add, delete and sync the servicers of a 微信客服
account, in batches of any size, with a progress bar, and a Ctrl-C that says what was done."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, BinaryIO

import attrs
import click

from wechat_kf import BatchError, BatchResult, SyncError, SyncResult, WeComClient

from .credentials import wecom_command
from .exits import USAGE, fail, run
from .ids import target
from .options import F
from .progress import Journal, Rest, progress
from .reports import connector, listing, report_batch, report_sync
from .tables import servicers_table


@click.group("servicers")
def servicers() -> None:
    """The servicers of a 微信客服 account."""


@wecom_command(servicers, "list", "List the servicers of a 微信客服 account.")
def servicers_list(open_kfid: str, **opts: Any) -> None:
    listing(opts, WeComClient, lambda c: c.servicers.list(open_kfid), servicers_table)


def _batch_options(func: F) -> F:
    options = [
        click.option("--userid", "userids", multiple=True, help="Repeatable."),
        click.option(
            "--userids-file",
            type=click.File("rb"),
            help="One userid per line ('#' comments, blank lines skipped); '-' reads stdin.",
        ),
        click.option(
            "--encoding",
            default="utf-8",
            show_default=True,
            help="The file's encoding, such as gbk (a UTF-8 byte-order mark is dropped).",
        ),
        click.option(
            "--department-id", "department_ids", multiple=True, type=int, help="Repeatable."
        ),
        click.option(
            "--show-all", is_flag=True, help="A row for every id, not only the failed ones."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _batch_command(delete: bool) -> Callable[..., None]:
    action = "delete" if delete else "add"

    def command(
        open_kfid: str,
        userids: tuple[str, ...],
        userids_file: BinaryIO | None,
        encoding: str,
        department_ids: tuple[int, ...],
        show_all: bool,
        **opts: Any,
    ) -> None:
        # The frames below hold these, never the options with the secret in them.
        connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
        del opts
        journal = Journal()
        ids: list[str] = []
        departments: list[int] = []
        # The batch's outcome once it has one: a Ctrl-C after that interrupted nothing.
        finished: list[tuple[BatchResult, Rest | None, Sequence[Exception]]] = []

        async def main_() -> int:
            ids[:], departments[:] = target(userids, userids_file, encoding, department_ids)
            if not ids and not departments:
                raise fail("nothing to do: give --userid, --userids-file or --department-id", USAGE)
            async with AsyncExitStack() as stack:
                client = await connect(stack)
                call = client.servicers.delete if delete else client.servicers.add
                label = "deleting servicers" if delete else "adding servicers"
                error: BatchError | None = None
                with progress(not as_json, label) as on_progress:
                    try:
                        result = await call(
                            open_kfid,
                            ids,
                            department_ids=departments,
                            on_progress=on_progress,
                            on_request=journal,
                        )
                    except BatchError as exc:
                        error, result = exc, exc.result
                    rest = (
                        (error.unprocessed_userids, error.unprocessed_department_ids)
                        if error
                        else None
                    )
                    finished.append((result, rest, error.errors if error else []))
            return report_batch(*finished[0], as_json=as_json, show_all=show_all)

        def interrupted() -> None:
            if finished:
                report_batch(*finished[0], as_json=as_json, show_all=show_all)
                return
            rest = journal.unprocessed(action, ids, departments)
            report_batch(
                journal.result(action),
                rest,
                [],
                as_json=as_json,
                show_all=show_all,
                interrupted=True,
            )

        run(main_, as_json=as_json, interrupted=interrupted)

    return command


def _sync_command(
    open_kfid: str,
    userids: tuple[str, ...],
    userids_file: BinaryIO | None,
    encoding: str,
    department_ids: tuple[int, ...],
    show_all: bool,
    dry_run: bool,
    **opts: Any,
) -> None:
    # The frames below hold these, never the options with the secret in them.
    connect, as_json = connector(WeComClient, opts), bool(opts["as_json"])
    del opts
    journal = Journal()
    plans: list[SyncResult] = []
    # The sync's outcome once it has one: a Ctrl-C after that interrupted nothing.
    finished: list[tuple[SyncResult, SyncError | None]] = []

    async def main_() -> int:
        ids, departments = target(userids, userids_file, encoding, department_ids)
        if not ids and not departments:
            # An empty file is far more often a mistake than a wish to remove every servicer.
            raise fail(
                "the target lists no userid and no department: give ids, or remove servicers "
                "with 'wechat-kf wecom servicers delete'",
                USAGE,
            )
        async with AsyncExitStack() as stack:
            client = await connect(stack)
            plans.append(
                await client.servicers.sync(
                    open_kfid, ids, department_ids=departments, dry_run=True
                )
            )
            if dry_run or not plans[0].changes:
                finished.append((plans[0], None))
                return report_sync(plans[0], None, as_json=as_json, show_all=show_all)
            error: SyncError | None = None
            with progress(not as_json, "syncing servicers") as bar:
                try:
                    result = await client.servicers.sync(
                        open_kfid,
                        ids,
                        department_ids=departments,
                        on_progress=bar,
                        on_request=journal,
                    )
                except SyncError as exc:
                    error, result = exc, exc.result
                finished.append((result, error))
        return report_sync(*finished[0], as_json=as_json, show_all=show_all)

    def interrupted() -> None:
        if finished:
            report_sync(*finished[0], as_json=as_json, show_all=show_all)
            return
        if not plans:
            # Only the current servicers were being read: nothing was changed, and run() says
            # that it was interrupted.
            return
        plan = plans[0]
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
        report_sync(done, error, as_json=as_json, show_all=show_all, interrupted=True)

    run(main_, as_json=as_json, interrupted=interrupted)


servicers_sync = _batch_options(
    click.option("--dry-run", is_flag=True, help="Print the plan; send nothing.")(
        wecom_command(
            servicers,
            "sync",
            "Make the servicers exactly the ids given: add the missing, remove the rest.",
        )(_sync_command)
    )
)

servicers_add = _batch_options(
    wecom_command(servicers, "add", "Add servicers, in concurrent batches.")(
        _batch_command(delete=False)
    )
)
servicers_delete = _batch_options(
    wecom_command(servicers, "delete", "Remove servicers.")(_batch_command(delete=True))
)
