"""One worker process of the inbox fleet tests: an Inbox over a RedisInboxStore against the fake
served over loopback, on asyncio or trio (``--backend``). It reads notifications from stdin, one
JSON object a line (``{"open_kfid": ..., "token": ...}``), and notifies its inbox of each; it
writes every msgid its handler finished to ``{out}/{name}.handled`` and every lease it held to
``{out}/{name}.holds`` (a JSON line when taken, another when let go, wall-clock times), each line
with one ``os.write`` on an O_APPEND file, so a SIGKILL loses nothing already written. At the end
of stdin it closes the inbox and exits. With ``--block-on MSGID`` the handler of that message
touches ``{out}/{name}.blocked`` and never returns."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio

from tests._redis import redis_client
from wechat_kf import Inbox, KfMessage, WeComClient
from wechat_kf.stores import PullStart, RedisInboxStore


def appender(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    return write


class RecordingStore(RedisInboxStore):
    """The store, writing down when each of this process's leases starts and ends (the start
    after Redis granted it, the end before asking Redis to let it go: inside the real hold)."""

    def __init__(self, *args: Any, holds: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds = holds

    async def acquire(self, namespace: str, open_kfid: str, owner: str) -> PullStart | None:
        start = await super().acquire(namespace, open_kfid, owner)
        if start is not None:
            self._holds(json.dumps({"kfid": open_kfid, "owner": owner, "start": time.time()}))
        return start

    async def release(
        self, namespace: str, open_kfid: str, owner: str, generation: int | None
    ) -> PullStart | None:
        stamp = time.time()
        following = await super().release(namespace, open_kfid, owner, generation)
        if following is None:
            self._holds(json.dumps({"kfid": open_kfid, "owner": owner, "end": stamp}))
        return following

    async def renew(self, namespace: str, open_kfid: str, owner: str) -> bool:
        stamp = time.time()
        kept = await super().renew(namespace, open_kfid, owner)
        if not kept:  # lost: it ended at the latest now
            self._holds(json.dumps({"kfid": open_kfid, "owner": owner, "end": stamp}))
        return kept


async def main(args: argparse.Namespace) -> None:
    out = Path(args.out)
    handled = appender(out / f"{args.name}.handled")
    redis = redis_client(args.redis_url, args.backend)
    # A generous command timeout: four workers, Redis and the fake share a small machine.
    store = RecordingStore(
        redis,
        prefix=args.prefix,
        lease=args.lease,
        command_timeout=10.0,
        holds=appender(out / f"{args.name}.holds"),
    )
    rng = random.Random(args.name)

    async def handle(message: KfMessage) -> None:
        if message.msgid == args.block_on:
            (out / f"{args.name}.blocked").touch()
            await anyio.sleep_forever()  # never returns: the test kills this process here
        await anyio.sleep(rng.uniform(0, 0.003))  # some work, so that handlers overlap pulls
        handled(message.msgid)

    client = WeComClient(args.corpid, args.secret, base_url=args.base_url, timeout=30)
    async with (
        client,
        Inbox(client, handle, store=store, max_concurrency=args.max_concurrency) as inbox,
    ):
        (out / f"{args.name}.ready").touch()
        stdin = anyio.wrap_file(sys.stdin)
        async for line in stdin:
            news = json.loads(line)
            await inbox.notify(SimpleNamespace(open_kfid=news["open_kfid"], token=news["token"]))
    await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--corpid", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--lease", type=float, default=4.0)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--block-on", default="", help="a msgid whose handler never returns")
    arguments = parser.parse_args()
    anyio.run(main, arguments, backend=arguments.backend)
