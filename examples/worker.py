"""A resumable onboarding job: read userids from a file, make them servicers, and journal each
request's outcome the moment WeChat answers it (``on_request``), so that a re-run after a crash,
a timeout or Ctrl-C skips exactly the ids that went through. Runs on asyncio or trio.

    wechat-kf fake-server --port 8765      # prints the environment to export for it
    python -m examples.worker --open-kfid wkSANDBOX0000000000000000000001 \\
        --userids-file ids.txt --journal applied.jsonl --backend trio
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import attrs

from examples.common import open_clients
from wechat_kf import (
    AccessTokenError,
    BatchError,
    CredentialError,
    OpenKfidError,
    PermissionDeniedError,
    RequestOutcome,
    WeComClient,
)

logger = logging.getLogger("examples.worker")
#: Failures that stop the batch (the SDK sends nothing more after one): worth naming in the log.
FATAL = (CredentialError, PermissionDeniedError, OpenKfidError, AccessTokenError)


@attrs.define
class Summary:
    """What a run did: ids skipped (already in the journal), succeeded, refused by WeChat, and
    left unprocessed (a re-run retries those)."""

    skipped: int = 0
    succeeded: int = 0
    refused: int = 0
    unprocessed: list[str] = attrs.Factory(list)

    @property
    def complete(self) -> bool:
        return not self.unprocessed and self.refused == 0


def read_journal(path: Path) -> set[str]:
    """The userids that already have a definitive outcome."""
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            done.add(json.loads(line)["userid"])
    return done


def journal_writer(path: Path) -> Callable[[RequestOutcome], None]:
    """An ``on_request`` callback that appends each answered id to ``path`` and syncs it to disk
    before the batch goes on: a crash after that never repeats them. An id WeChat did not report
    (errcode None) has no definitive outcome and is left for the next run."""

    def record(outcome: RequestOutcome) -> None:
        lines = [
            json.dumps({"userid": i.userid, "errcode": i.errcode, "errmsg": i.errmsg}) + "\n"
            for i in outcome.results
            if i.userid and i.errcode is not None
        ]
        if not lines:
            return
        with path.open("a", encoding="utf-8") as journal:
            journal.writelines(lines)
            journal.flush()
            os.fsync(journal.fileno())

    return record


async def onboard(
    client: WeComClient, open_kfid: str, userids: Iterable[str], journal: Path
) -> Summary:
    """Add every userid not yet in ``journal`` as a servicer, journaling as answers arrive."""
    done = read_journal(journal)
    pending = [u for u in dict.fromkeys(userids) if u not in done]
    summary = Summary(skipped=len(done))
    logger.info("%d ids to apply, %d already done", len(pending), len(done))
    if not pending:
        return summary

    def progress(ids_done: int, total: int) -> None:
        logger.info("applied %d/%d", ids_done, total)

    try:
        result = await client.servicers.add(
            open_kfid, pending, on_request=journal_writer(journal), on_progress=progress
        )
    except BatchError as exc:
        result = exc.result
        summary.unprocessed += exc.unprocessed_userids
        fatal = next((e for e in exc.errors if isinstance(e, FATAL)), None)
        logger.warning(
            "%d ids unprocessed: %s", len(exc.unprocessed_userids), fatal or exc.errors[0]
        )
    summary.succeeded = len(result.succeeded)
    summary.refused = sum(1 for item in result.items if item.errcode is not None and not item.ok)
    summary.unprocessed += [i.userid for i in result.items if i.errcode is None and i.userid]
    return summary


async def main_async(args: argparse.Namespace) -> int:
    userids = [line.strip() for line in args.userids_file.read_text("utf-8").splitlines()]
    async with AsyncExitStack() as stack:
        _, client = await open_clients(stack)
        summary = await onboard(client, args.open_kfid, [u for u in userids if u], args.journal)
    logger.info(
        "done: %d succeeded, %d refused, %d unprocessed (re-run to retry), %d skipped",
        summary.succeeded,
        summary.refused,
        len(summary.unprocessed),
        summary.skipped,
    )
    return 0 if summary.complete else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.worker")
    parser.add_argument("--open-kfid", required=True)
    parser.add_argument("--userids-file", type=Path, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return anyio.run(main_async, args, backend=args.backend)


if __name__ == "__main__":
    sys.exit(main())
