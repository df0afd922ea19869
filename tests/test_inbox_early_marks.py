"""The Redis store's early marks: each mark is on its way to Redis before the next handler
starts, without a round trip per message, and the page's commit writes them all again with the
cursor. Proven on a real redis-server: the marks are there while the page is still being handled,
a page of 200 costs a handful of commits rather than 200, a process killed mid-page repeats none
of the messages whose handlers returned, a Redis that refuses ``CLIENT REPLY`` still gets every
mark, and a pull cancelled mid-page never hands the pool a connection whose replies are off.

On trio, redis.asyncio cannot run and the store is given the blocking client in worker threads
(tests/_redis.py), which lends no connection: there the same proofs hold through a commit per
message, and the round-trip test says so."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from redis import Redis as BlockingRedis

from tests._redis import redis_client, redis_server
from tests._servers import serve
from wechat_kf import Inbox, KfMessage, WeComClient
from wechat_kf.stores import RedisInboxStore
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = "wmCUSTOMER000001"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def blocking(redis_url: str) -> Iterator[BlockingRedis]:
    client = BlockingRedis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client(fake: FakeWeChat, corp: tuple[str, str, str]) -> AsyncIterator[WeComClient]:
    fake.tokenless_pulls_per_minute = 1000
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(corp[0], corp[1], http_client=http) as wc,
    ):
        yield wc


def done_key(prefix: str, corpid: str, open_kfid: str, msgid: str) -> str:
    return f"{prefix}:inbox:{corpid}:{open_kfid}:done:{msgid}"


async def every_connection_answers_in_step(redis: Any, backend: str, prefix: str) -> None:
    """Use every connection of the client's pool (4) at once, many times: one the store handed
    back with its replies off would leave its caller waiting (the test's fail_after fails)."""
    if backend != "asyncio":  # the blocking client in threads: its pool is never lent
        for i in range(20):
            await redis.set(f"{prefix}:probe", str(i))
            assert await redis.get(f"{prefix}:probe") == str(i).encode()
        return

    async def one(n: int) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{prefix}:probe{n}", str(n)).get(f"{prefix}:probe{n}")
            assert await pipe.execute() == [True, str(n).encode()]

    for _ in range(20):
        async with anyio.create_task_group() as group:
            for n in range(4):
                group.start_soon(one, n)


class CountingStore(RedisInboxStore):
    """The store, counting its commits (each one round trip); with ``hold_cursor``, its commit
    with a cursor (a page's last) waits until cancelled, having set ``committing``."""

    def __init__(self, *args: Any, hold_cursor: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commits = 0
        self.hold_cursor = hold_cursor
        self.committing = anyio.Event()

    async def commit(
        self,
        namespace: str,
        open_kfid: str,
        owner: str,
        marks: Mapping[str, str],
        cursor: str | None,
    ) -> bool:
        self.commits += 1
        if self.hold_cursor and cursor is not None:
            self.committing.set()
            await anyio.sleep_forever()
        return await super().commit(namespace, open_kfid, owner, marks, cursor)


async def test_each_mark_reaches_redis_while_its_page_is_still_being_handled(
    fake: FakeWeChat,
    client: WeComClient,
    corp: tuple[str, str, str],
    redis_url: str,
    anyio_backend: str,
    blocking: BlockingRedis,
    prefix: str,
) -> None:
    corpid, kf = corp[0], corp[2]
    ids = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(20)]
    missing: list[str] = []

    async def handler(message: KfMessage) -> None:
        index = ids.index(message.msgid)
        if index:
            # Redis itself, through another connection: what another process would see. The
            # mark left before this handler started (sent at once, or gathered in the kernel
            # for a few ms: either way beyond this process dying); it arrives meanwhile.
            key = done_key(prefix, corpid, kf, ids[index - 1])
            with anyio.move_on_after(2):
                while not await anyio.to_thread.run_sync(blocking.exists, key):  # noqa: ASYNC110 - Redis
                    await anyio.sleep(0.005)
                return
            missing.append(ids[index - 1])

    redis = redis_client(redis_url, anyio_backend)
    try:
        with anyio.fail_after(60):
            async with Inbox(client, handler, store=RedisInboxStore(redis, prefix=prefix)) as inbox:
                assert await inbox.drain(kf) == 20
    finally:
        await redis.aclose()
    assert missing == []
    assert all(blocking.get(done_key(prefix, corpid, kf, i)) == b"done" for i in ids)


async def test_a_page_of_200_costs_a_few_commits_not_one_per_message(
    fake: FakeWeChat,
    client: WeComClient,
    corp: tuple[str, str, str],
    redis_url: str,
    anyio_backend: str,
    blocking: BlockingRedis,
    prefix: str,
) -> None:
    corpid, kf = corp[0], corp[2]
    ids = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(200)]

    async def handler(message: KfMessage) -> None:
        return None

    redis = redis_client(redis_url, anyio_backend)
    store = CountingStore(redis, prefix=prefix)
    try:
        with anyio.fail_after(30):
            async with Inbox(client, handler, store=store) as inbox:
                assert await inbox.drain(kf) == 200
    finally:
        await redis.aclose()
    if anyio_backend == "asyncio":
        # One page: its marks went early, then one commit with the cursor.
        assert store.commits <= 2
    else:
        assert store.commits >= 200  # no connection to lend: a commit after each handler
    assert all(blocking.get(done_key(prefix, corpid, kf, i)) == b"done" for i in ids)
    assert blocking.get(f"{prefix}:inbox:{corpid}:{kf}:cursor") is not None


async def test_a_redis_that_refuses_client_reply_still_gets_every_mark(
    fake: FakeWeChat,
    client: WeComClient,
    corp: tuple[str, str, str],
    redis_url: str,
    anyio_backend: str,
    blocking: BlockingRedis,
    prefix: str,
) -> None:
    corpid, kf = corp[0], corp[2]
    user = f"u{prefix}"
    # As a proxy or an ACL may: every command but CLIENT REPLY.
    blocking.execute_command(
        "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-client|reply"
    )
    url = redis_url.replace("redis://", f"redis://{user}:pw@")
    ids = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(30)]
    seen: list[str] = []

    async def handler(message: KfMessage) -> None:
        seen.append(message.msgid)

    redis = redis_client(url, anyio_backend, max_connections=4)
    store = CountingStore(redis, prefix=prefix)
    try:
        with anyio.fail_after(20):
            async with Inbox(client, handler, store=store, limit=10) as inbox:
                assert await inbox.drain(kf) == 30
            await every_connection_answers_in_step(redis, anyio_backend, prefix)
    finally:
        await redis.aclose()
        blocking.execute_command("ACL", "DELUSER", user)
    assert seen == ids
    assert all(blocking.get(done_key(prefix, corpid, kf, i)) == b"done" for i in ids)
    if anyio_backend == "asyncio":
        # The first page found out (one commit); the two after it committed each mark without
        # asking again (with early marks still on, they would have cost one commit each).
        assert store.commits >= 1 + 2 * 10


async def test_a_pull_cancelled_mid_page_hands_the_pool_no_connection_with_replies_off(
    caplog: pytest.LogCaptureFixture,
    fake: FakeWeChat,
    client: WeComClient,
    corp: tuple[str, str, str],
    redis_url: str,
    anyio_backend: str,
    blocking: BlockingRedis,
    prefix: str,
) -> None:
    corpid, kf = corp[0], corp[2]
    ids = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(10)]
    reached = anyio.Event()

    async def handler(message: KfMessage) -> None:
        if message.msgid == ids[5]:
            reached.set()
            await anyio.sleep_forever()

    redis = redis_client(redis_url, anyio_backend, max_connections=4)
    try:
        with anyio.fail_after(20):
            store = RedisInboxStore(redis, prefix=prefix)
            async with (
                Inbox(client, handler, store=store) as inbox,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(inbox.drain, kf)
                await reached.wait()
                tg.cancel_scope.cancel()
            await every_connection_answers_in_step(redis, anyio_backend, prefix)
    finally:
        await redis.aclose()
    marked = [i for i in ids if blocking.exists(done_key(prefix, corpid, kf, i))]
    assert marked == ids[:5]  # the five whose handlers returned; not the cancelled one
    # Let go at once: a release sent on a connection with its replies off would time out.
    assert not blocking.exists(f"{prefix}:inbox:{corpid}:{kf}:lease")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert blocking.get(f"{prefix}:inbox:{corpid}:{kf}:cursor") is None


async def test_a_process_killed_mid_page_repeats_none_of_the_messages_it_finished(
    tmp_path: Path, redis_url: str, anyio_backend: str, prefix: str
) -> None:
    fake = FakeWeChat(seed=3)
    app = fake.register_wecom_app()
    kf = fake.create_kf_account(app.corpid)
    ids = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(10)]
    token = fake.latest_sync_token(kf)
    with serve(fake.app) as base_url:
        command = [
            sys.executable, "-m", "tests._inbox_worker", "--base-url", base_url,
            "--redis-url", redis_url, f"--corpid={app.corpid}", f"--secret={app.secret}",
            "--prefix", prefix, "--out", str(tmp_path), "--name", "w", "--lease", "1",
            "--backend", anyio_backend, f"--block-on={ids[6]}",
        ]  # fmt: skip
        with (tmp_path / "w.err").open("wb") as errors:
            worker = await anyio.open_process(command, cwd=ROOT, stderr=errors)
        try:
            with anyio.fail_after(30):
                assert worker.stdin is not None
                await worker.stdin.send(f'{{"open_kfid": "{kf}", "token": "{token}"}}\n'.encode())
                while not (tmp_path / "w.blocked").exists():  # noqa: ASYNC110 - a file
                    await anyio.sleep(0.01)
                os.kill(worker.pid, signal.SIGKILL)  # mid-page: nothing of it committed
                await worker.wait()
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        finished = (tmp_path / "w.handled").read_text().split()
        assert finished == ids[:6]
        again: list[str] = []

        async def handler(message: KfMessage) -> None:
            again.append(message.msgid)

        redis = redis_client(redis_url, anyio_backend)
        try:
            with anyio.fail_after(30):
                async with (
                    WeComClient(app.corpid, app.secret, base_url=base_url) as wc,
                    Inbox(wc, handler, store=RedisInboxStore(redis, prefix=prefix)) as inbox,
                ):
                    await inbox.notify(SimpleNamespace(open_kfid=kf, token=token))
                    await inbox.drain(kf)  # waits for the dead holder's lease to run out
        finally:
            await redis.aclose()
    # The one whose handler never returned is handled again; none of those that returned.
    assert again == ids[6:]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis.asyncio's pool: trio lends none
async def test_every_connection_goes_back_to_the_pool_sending_at_once(
    fake: FakeWeChat, client: WeComClient, corp: tuple[str, str, str], redis_url: str, prefix: str
) -> None:
    import socket

    for i in range(30):
        fake.customer_says(corp[2], CUSTOMER, f"m{i}")

    async def handler(message: KfMessage) -> None:
        return None

    redis = redis_client(redis_url, "asyncio")
    try:
        with anyio.fail_after(20):
            async with Inbox(client, handler, store=RedisInboxStore(redis, prefix=prefix)) as inbox:
                assert await inbox.drain(corp[2]) == 30
        pool = redis.connection_pool
        assert not pool._in_use_connections
        # A connection left gathering small writes (Nagle) would hold each later command of the
        # client's other users back until the previous one is acknowledged.
        for connection in pool._available_connections:
            sock = connection._writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        await redis.aclose()


async def test_closing_during_a_page_s_last_commit_still_writes_every_returned_mark(
    fake: FakeWeChat,
    client: WeComClient,
    corp: tuple[str, str, str],
    redis_url: str,
    anyio_backend: str,
    blocking: BlockingRedis,
    prefix: str,
) -> None:
    corpid, kf = corp[0], corp[2]
    ids = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(5)]
    returned: list[str] = []

    async def handler(message: KfMessage) -> None:
        returned.append(message.msgid)

    redis = redis_client(redis_url, anyio_backend)
    store = CountingStore(redis, prefix=prefix, hold_cursor=True)
    try:
        with anyio.fail_after(20):
            async with Inbox(client, handler, store=store) as inbox:
                await inbox.notify(SimpleNamespace(open_kfid=kf, token=None))
                await store.committing.wait()
            # Closed mid-commit: no process died, so no message whose handler returned may
            # be handed over again.
            assert returned == ids
            assert await store.marked(corpid, kf, ids) == set(ids)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis.asyncio's pool: trio lends none
async def test_a_small_pool_lends_and_serves_without_running_out(
    fake: FakeWeChat,
    client: WeComClient,
    corp: tuple[str, str, str],
    redis_url: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounts = [corp[2], *(fake.create_kf_account(corp[0]) for _ in range(3))]
    for kf in accounts:
        for i in range(30):
            fake.customer_says(kf, CUSTOMER, f"m{i}")
    seen: list[str] = []

    async def handler(message: KfMessage) -> None:
        seen.append(message.msgid)
        await anyio.lowlevel.checkpoint()

    for size in (2, 4, 5, 9):  # what it lends comes out of what it may use
        sized = redis_client(redis_url, "asyncio", max_connections=size)
        store = RedisInboxStore(sized)
        assert store.max_in_flight + store._lender.most <= size
        await sized.aclose()
    redis = redis_client(redis_url, "asyncio", max_connections=4)
    try:
        with anyio.fail_after(30):
            store = RedisInboxStore(redis, prefix=prefix)
            async with Inbox(client, handler, store=store) as inbox:
                async with anyio.create_task_group() as group:
                    for _ in range(10):  # news for every account, many times, while they pull
                        for kf in accounts:
                            group.start_soon(
                                inbox.notify, SimpleNamespace(open_kfid=kf, token=None)
                            )
                for kf in accounts:
                    await inbox.drain(kf)
    finally:
        await redis.aclose()
    assert len(seen) == len(set(seen)) == 120
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
