"""A resumable onboarding job: read userids from a file, make them servicers in batches, log the
progress, and record every id with a definitive outcome in a journal so that a re-run after a
crash skips them. Runs on asyncio or trio.

    wechat-kf fake-server --port 8765
    WECHAT_KF_FAKE=http://127.0.0.1:8765 python -m examples.worker \\
        --open-kfid wkSANDBOX0000000000000000000001 --userids-file ids.txt \\
        --journal applied.jsonl --backend trio
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
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
    ServicerResult,
    WeComClient,
)

logger = logging.getLogger("examples.worker")
#: Failures that no later batch can escape: stop instead of burning through the file.
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


def append_journal(path: Path, items: Iterable[ServicerResult]) -> None:
    """Record outcomes durably before moving on: a crash after this never repeats them."""
    lines = [
        json.dumps({"userid": i.userid, "errcode": i.errcode, "errmsg": i.errmsg}) + "\n"
        for i in items
    ]
    with path.open("a", encoding="utf-8") as journal:
        journal.writelines(lines)
        journal.flush()
        os.fsync(journal.fileno())


async def onboard(
    client: WeComClient,
    open_kfid: str,
    userids: Iterable[str],
    journal: Path,
    *,
    batch: int = 1000,
) -> Summary:
    """Add every userid not yet in ``journal`` as a servicer, ``batch`` ids per call."""
    done = read_journal(journal)
    pending = [u for u in dict.fromkeys(userids) if u not in done]
    summary = Summary(skipped=len(done))
    logger.info("%d ids to apply, %d already done", len(pending), len(done))
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        fatal = None
        try:
            result = await client.servicers.add(open_kfid, chunk)
        except BatchError as exc:
            result = exc.result
            summary.unprocessed += exc.unprocessed_userids
            logger.warning("%d ids unprocessed: %s", len(exc.unprocessed_userids), exc.errors[0])
            fatal = next((e for e in exc.errors if isinstance(e, FATAL)), None)
        # An id WeChat did not report has no definitive outcome: keep it for the next run.
        definitive = [item for item in result.items if item.errcode is not None]
        append_journal(journal, definitive)
        summary.succeeded += len(result.succeeded)
        summary.refused += sum(1 for item in definitive if not item.ok)
        summary.unprocessed += [i.userid for i in result.items if i.errcode is None and i.userid]
        logger.info("applied %d/%d", min(start + batch, len(pending)), len(pending))
        if fatal is not None:
            summary.unprocessed += pending[start + batch :]
            logger.error("stopping, no later batch can succeed: %s", fatal)
            break
    return summary


async def main_async(args: argparse.Namespace) -> int:
    userids = [line.strip() for line in args.userids_file.read_text("utf-8").splitlines()]
    async with AsyncExitStack() as stack:
        _, client = await open_clients(stack)
        summary = await onboard(
            client, args.open_kfid, [u for u in userids if u], args.journal, batch=args.batch
        )
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
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return anyio.run(main_async, args, backend=args.backend)


if __name__ == "__main__":
    sys.exit(main())
