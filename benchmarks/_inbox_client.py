"""The inbox benchmarks' measured side, in a fresh process of the venv being measured (run by
``python -I benchmarks/_inbox_client.py JOB``; the job is a JSON object, the result one JSON line
on stdout). It imports only the standard library and what that venv holds: wechat_kf, plus
redis for the Redis store and aiohttp for the callback receiver.

- ``throughput``: one drain of the backlog the server holds on ``job["open_kfid"]``, pages of
  ``job["limit"]``, with a handler that does nothing; ``job["variant"]`` is ``bare`` (a loop of
  ``client.messages.sync`` pages calling the handler for each message: what any pull loop
  does, with no store), ``memory`` (``await inbox.drain(open_kfid)`` with a
  ``MemoryInboxStore``) or ``redis`` (the same with a ``RedisInboxStore`` on ``job["redis_url"]``,
  keys under a prefix of its own, so nothing is marked done yet). The token, a connection and
  the Redis connection and scripts are made before the timing; the Redis commands are counted by
  a wrapper around ``redis.asyncio.Redis.execute_command`` (one call, one round trip), and the
  marks sent early apart (one-way writes, no reply awaited).
- ``receiver``: a callback receiver on aiohttp at ``http://127.0.0.1:{job["port"]}/callback``,
  whose route decrypts each push with ``CallbackCrypto`` and hands it to ``inbox.notify`` (a
  ``MemoryInboxStore``); the handler records ``time.time()`` for each msgid. It returns once the
  handler saw ``job["count"]`` messages (and the pushes still on their way were answered)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any, ClassVar

import anyio

from wechat_kf import Inbox, MemoryInboxStore, WeComClient
from wechat_kf.hooks import InboxPull, LoggingHook
from wechat_kf.kf_messages import KfMessage


class PullCounter:
    """A hook counting the inbox's pulls and the pages they read."""

    def __init__(self) -> None:
        self.pulls = self.pages = 0
        self.outcomes: Counter[str] = Counter()

    def on_inbox_pull(self, pull: InboxPull) -> None:
        self.pulls += 1
        self.pages += pull.pages
        self.outcomes[pull.outcome] += 1


def counting_redis(url: str) -> Any:
    """A ``redis.asyncio.Redis`` that counts the commands it sends, by name."""
    from redis.asyncio import Redis

    class CountingRedis(Redis):
        commands: ClassVar[Counter[str]] = Counter()

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            self.commands[name.upper()] += 1
            return await super().execute_command(*args, **options)

    return CountingRedis.from_url(url)


#: Marks the Redis store sent early (one-way writes on a lent connection, no round trip each).
EARLY_MARKS = [0]


def count_early_marks() -> None:
    """Count the Redis store's early marks (outside ``execute_command``, so not round trips)."""
    from wechat_kf import _redis_inbox

    write = _redis_inbox.EarlyMarks.write

    async def counted(self: Any, msgid: str, status: str) -> bool:
        sent = await write(self, msgid, status)
        EARLY_MARKS[0] += sent
        return sent

    _redis_inbox.EarlyMarks.write = counted  # type: ignore[method-assign]


async def warm_redis_store(store: Any, namespace: str) -> None:
    """Load the store's scripts into Redis and open its connection, on an account of a namespace
    of its own: what a long-running service has done long before."""
    owner = "warm-up"
    await store.acquire(namespace, "warm-up", owner)
    await store.renew(namespace, "warm-up", owner)
    await store.marked(namespace, "warm-up", ["warm-up"])
    await store.commit(namespace, "warm-up", owner, {"warm-up": "done"}, "cursor")
    await store.release(namespace, "warm-up", owner, None)


async def throughput(job: dict[str, Any]) -> dict[str, Any]:
    variant, open_kfid, limit = job["variant"], job["open_kfid"], job["limit"]
    pulls = PullCounter()

    async def handler(message: KfMessage) -> None:
        return None

    async with WeComClient(
        job["corpid"], job["secret"], base_url=job["base_url"], exchange=job["exchange"],
        hooks=[LoggingHook(), pulls],
    ) as client:  # fmt: skip
        await client.kf_accounts.list()  # the token and a connection, outside the timing
        result: dict[str, Any] = {"variant": variant, "exchange": client.exchange}
        if variant == "bare":
            wall, cpu = time.perf_counter(), time.process_time()
            handled = pages = 0
            cursor = None
            while True:
                page = await client.messages.sync(open_kfid, cursor=cursor, limit=limit)
                pages += 1
                for message in page.messages:
                    await handler(message)
                handled += len(page.messages)
                cursor = page.next_cursor or cursor
                if not page.has_more:
                    break
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return {**result, **figures(wall, cpu, handled), "pages": pages}
        redis = None
        if variant == "memory":
            store: Any = MemoryInboxStore()
        else:
            from wechat_kf.stores import RedisInboxStore

            redis = counting_redis(job["redis_url"])
            store = RedisInboxStore(redis, prefix=job["prefix"])
            count_early_marks()
            await warm_redis_store(store, "warm-up")
        try:
            async with Inbox(client, handler, store=store, limit=limit) as inbox:
                await anyio.sleep(0.05)  # the sweep's first look at the pending accounts
                before = Counter(redis.commands) if redis is not None else Counter()
                wall, cpu = time.perf_counter(), time.process_time()
                handled = await inbox.drain(open_kfid)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                during = Counter(redis.commands) - before if redis is not None else Counter()
        finally:
            if redis is not None:
                await redis.aclose()
        result.update(figures(wall, cpu, handled), pages=pulls.pages, pulls=pulls.pulls)
        if redis is not None:
            round_trips = sum(during.values())
            result.update(
                redis_round_trips=round_trips,
                redis_commands=dict(sorted(during.items())),
                redis_commands_whole_job=dict(sorted(redis.commands.items())),
                round_trips_per_page=round_trips / pulls.pages,
                round_trips_per_message=round_trips / handled if handled else None,
                early_marks=EARLY_MARKS[0],
                early_marks_per_page=EARLY_MARKS[0] / pulls.pages,
            )
        return result


def figures(wall: float, cpu: float, handled: int) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "messages": handled,
        "messages_per_s": handled / wall,
        "cpu_us_per_message": cpu / handled * 1e6 if handled else None,
    }


async def receiver(job: dict[str, Any]) -> dict[str, Any]:
    from aiohttp import web

    from wechat_kf.callbacks import CallbackCrypto, CallbackError, KfMsgOrEvent

    crypto = CallbackCrypto(job["token"], job["encoding_aes_key"], job["corpid"])
    handled: dict[str, float] = {}
    arrived: dict[str, float] = {}
    refused = 0
    everything = anyio.Event()
    pulls = PullCounter()

    async def handler(message: KfMessage) -> None:
        handled[message.msgid] = time.time()
        if len(handled) >= job["count"]:
            everything.set()

    async with (
        WeComClient(
            job["corpid"], job["secret"], base_url=job["base_url"], exchange=job["exchange"],
            hooks=[LoggingHook(), pulls],
        ) as client,
        Inbox(client, handler, store=MemoryInboxStore()) as inbox,
    ):  # fmt: skip
        await client.kf_accounts.list()  # the token and a connection, before any push

        async def callback(request: web.Request) -> web.Response:
            nonlocal refused
            now = time.time()
            body = await request.read()
            query = request.query
            try:
                event = crypto.decrypt(
                    body,
                    msg_signature=query.get("msg_signature", ""),
                    timestamp=query.get("timestamp", ""),
                    nonce=query.get("nonce", ""),
                )
            except CallbackError:
                refused += 1
                return web.Response(status=403, text="refused")
            if isinstance(event, KfMsgOrEvent):
                arrived.setdefault(str(event.token), now)  # a retried push: its first arrival
                await inbox.notify(event)
            return web.Response(text="success")

        app = web.Application()
        app.router.add_post("/callback", callback)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", job["port"]).start()
            with anyio.move_on_after(job["timeout"]):
                await everything.wait()
            await anyio.sleep(0.3)  # the pushes still on their way are answered
        finally:
            await runner.cleanup()
        return {
            "exchange": client.exchange,
            "handled": handled,
            "arrived": arrived,
            "refused": refused,
            "pulls": pulls.pulls,
            "pages": pulls.pages,
            "pull_outcomes": dict(pulls.outcomes),
        }


JOBS = {"throughput": throughput, "receiver": receiver}


def main() -> None:
    job = json.loads(sys.argv[1])
    print(json.dumps(anyio.run(JOBS[job["job"]], job)))


if __name__ == "__main__":
    main()
