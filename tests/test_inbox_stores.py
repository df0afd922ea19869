"""The inbox stores: one contract, passed by MemoryInboxStore and by RedisInboxStore on a real
redis-server (cursor fenced by the lease, marks tested and written many at once, the lease, the
compare-and-release against the generation, the news and its token, the outbox), then what only
Redis has: every key under the prefix and expiring, one round trip per call, a hostile value
under a key, an unreachable server as TokenStoreError.

On trio, redis.asyncio cannot run: the store is given the blocking client in worker threads
(tests/_redis.py), as in tests/test_redis_store.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from redis import Redis as BlockingRedis

from tests._redis import redis_client, redis_server
from tests._servers import free_port
from wechat_kf.errors import TokenStoreError
from wechat_kf.stores import InboxStore, MemoryInboxStore, PullStart, RedisInboxStore

pytestmark = pytest.mark.anyio

LEASE = 0.5
NS, KF = "wwcorp", "wkACCOUNT"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def blocking(redis_url: str) -> Iterator[BlockingRedis]:
    """A plain client of the same server, to look at and tamper with what the store wrote."""
    client = BlockingRedis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def redis_store(
    redis_url: str, anyio_backend: str, prefix: str
) -> AsyncIterator[RedisInboxStore]:
    client = redis_client(redis_url, anyio_backend)
    yield RedisInboxStore(client, prefix=prefix, lease=LEASE)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryInboxStore(lease=LEASE)
        return
    url = request.getfixturevalue("redis_url")
    client = redis_client(url, anyio_backend)
    yield RedisInboxStore(client, prefix=f"t{uuid.uuid4().hex[:8]}", lease=LEASE)
    await client.aclose()


# -- the contract, for both ----------------------------------------------------------------------


async def test_both_stores_implement_the_protocol(store: Any) -> None:
    assert isinstance(store, InboxStore)
    assert store.lease == LEASE


async def test_the_cursor_moves_only_for_the_lease_holder_and_marks_are_written_regardless(
    store: Any,
) -> None:
    with anyio.fail_after(5):
        assert await store.get_cursor(NS, KF) is None
        start = await store.acquire(NS, KF, "me")
        assert start == PullStart(None, 0)
        assert await store.commit(NS, KF, "me", {"m1": "done"}, "c1")
        assert await store.get_cursor(NS, KF) == "c1"
        # Someone who does not hold the lease never moves it, but their marks stand.
        assert not await store.commit(NS, KF, "other", {"m2": "failed"}, "c0")
        assert await store.get_cursor(NS, KF) == "c1"
        assert await store.marked(NS, KF, ["m1", "m2", "m3"]) == {"m1", "m2"}
        # Marks alone need no lease.
        assert await store.commit(NS, KF, "other", {"m3": "done"}, None)
        assert await store.release(NS, KF, "me", None) is None
        assert not await store.commit(NS, KF, "me", {}, "c2")  # released: no longer the holder
        again = await store.acquire(NS, KF, "next")
        assert again is not None
        assert again.cursor == "c1"


async def test_marked_answers_for_many_msgids_at_once(store: Any) -> None:
    with anyio.fail_after(5):
        ids = [f"msg{i}" for i in range(500)]
        assert await store.marked(NS, KF, ids) == set()
        assert await store.marked(NS, KF, []) == set()
        await store.commit(NS, KF, "x", {m: "done" for m in ids[::2]}, None)
        assert await store.marked(NS, KF, ids) == set(ids[::2])
        # Any msgid WeChat might send, even one that is no plain key part.
        odd = ["a:b:c", "空格 x", "*" * 300]
        await store.commit(NS, KF, "x", dict.fromkeys(odd, "failed"), None)
        assert await store.marked(NS, KF, [*odd, "a:b"]) == set(odd)


async def test_one_holder_at_a_time_until_it_releases_or_its_lease_runs_out(store: Any) -> None:
    with anyio.fail_after(5):
        assert await store.acquire(NS, KF, "a") is not None
        assert await store.acquire(NS, KF, "b") is None
        assert await store.release(NS, KF, "b", None) is None  # not b's: nothing happens
        assert await store.acquire(NS, KF, "b") is None
        assert await store.release(NS, KF, "a", None) is None
        assert await store.acquire(NS, KF, "b") is not None
        await anyio.sleep(LEASE + 0.2)  # b dies holding it
        assert not await store.renew(NS, KF, "b")
        assert await store.acquire(NS, KF, "c") is not None


async def test_a_renewed_lease_outlives_its_first_term(store: Any) -> None:
    with anyio.fail_after(5):
        assert await store.acquire(NS, KF, "a") is not None
        for _ in range(4):
            await anyio.sleep(LEASE / 3)
            assert await store.renew(NS, KF, "a")
        assert await store.acquire(NS, KF, "b") is None


async def test_release_against_an_old_generation_keeps_the_lease_and_answers_the_news(
    store: Any,
) -> None:
    with anyio.fail_after(5):
        await store.notify(NS, KF, "tok1", time.time() + 600)
        assert await store.pending(NS) == [KF]
        start = await store.acquire(NS, KF, "a")
        assert start is not None
        assert start.generation == 1
        assert start.token == "tok1"
        await store.commit(NS, KF, "a", {}, "c1")
        for _ in range(50):  # news while a pulls: from any process
            await store.notify(NS, KF, None, None)
        following = await store.release(NS, KF, "a", start.generation)
        assert following is not None
        assert following.generation == 51
        assert following.cursor == "c1"
        assert following.token == "tok1"
        assert await store.acquire(NS, KF, "b") is None  # a still holds it
        assert await store.release(NS, KF, "a", following.generation) is None
        assert await store.pending(NS) == []
        assert await store.acquire(NS, KF, "b") is not None


async def test_a_plain_release_leaves_the_news_pending_for_the_next_holder(store: Any) -> None:
    with anyio.fail_after(5):
        await store.notify(NS, KF, None, None)
        start = await store.acquire(NS, KF, "a")
        assert start is not None
        assert await store.release(NS, KF, "a", None) is None  # the pull failed
        assert await store.pending(NS) == [KF]
        again = await store.acquire(NS, KF, "b")
        assert again is not None
        assert again.generation == start.generation


async def test_a_lease_that_ran_out_releases_nothing_and_settles_nothing(store: Any) -> None:
    with anyio.fail_after(5):
        await store.notify(NS, KF, None, None)
        start = await store.acquire(NS, KF, "a")
        assert start is not None
        await anyio.sleep(LEASE + 0.2)
        assert await store.acquire(NS, KF, "b") is not None
        assert await store.release(NS, KF, "a", start.generation) is None
        assert await store.pending(NS) == [KF]  # b has not settled it yet
        assert await store.acquire(NS, KF, "c") is None  # and a did not free b's lease


async def test_the_token_kept_is_the_one_valid_longest(store: Any) -> None:
    with anyio.fail_after(5):
        now = time.time()
        await store.notify(NS, KF, "late", now + 600)
        await store.notify(NS, KF, "early", now + 300)  # delivered out of order
        await store.notify(NS, KF, None, None)
        start = await store.acquire(NS, KF, "a")
        assert start is not None
        assert (start.token, start.token_expires_at) == ("late", pytest.approx(now + 600))
        assert "late" not in repr(start)
        await store.notify(NS, KF, "newer", now + 601)
        following = await store.release(NS, KF, "a", start.generation)
        assert following is not None
        assert following.token == "newer"


async def test_accounts_and_namespaces_never_share_anything(store: Any) -> None:
    with anyio.fail_after(5):
        await store.notify("ns1", "kfA", "t", time.time() + 600)
        assert await store.acquire("ns1", "kfA", "a") is not None
        await store.commit("ns1", "kfA", "a", {"m": "done"}, "cA")
        await store.mark_replied("ns1", "kfA", "r")
        for ns, kf in (("ns1", "kfB"), ("ns2", "kfA")):
            assert await store.acquire(ns, kf, "b") == PullStart(None, 0)
            assert await store.marked(ns, kf, ["m"]) == set()
            assert not await store.replied(ns, kf, "r")
        assert await store.pending("ns2") == []
        assert await store.pending("ns1") == ["kfA"]


async def test_an_outbox_mark_says_a_reply_was_sent(store: Any) -> None:
    with anyio.fail_after(5):
        assert not await store.replied(NS, KF, "0123abcd" * 4)
        await store.mark_replied(NS, KF, "0123abcd" * 4)
        assert await store.replied(NS, KF, "0123abcd" * 4)
        assert not await store.replied(NS, KF, "f" * 32)


# -- memory only ---------------------------------------------------------------------------------


async def test_memory_marks_and_outbox_marks_are_kept_four_days_and_no_longer() -> None:
    now = [0.0]
    store = MemoryInboxStore(clock=lambda: now[0])
    with anyio.fail_after(5):
        await store.commit(NS, KF, "x", {"old": "done"}, None)
        await store.mark_replied(NS, KF, "r-old")
        now[0] = 3 * 86400
        await store.commit(NS, KF, "x", {"new": "done"}, None)
        assert await store.marked(NS, KF, ["old", "new"]) == {"old", "new"}
        now[0] = 4 * 86400 + 1
        assert await store.marked(NS, KF, ["old", "new"]) == {"new"}
        assert not await store.replied(NS, KF, "r-old")


async def test_two_memory_stores_share_nothing() -> None:
    one, two = MemoryInboxStore(), MemoryInboxStore()
    with anyio.fail_after(5):
        await one.notify(NS, KF, None, None)
        await one.commit(NS, KF, "x", {"m": "done"}, None)
        assert await two.pending(NS) == []
        assert await two.marked(NS, KF, ["m"]) == set()


def test_stores_refuse_a_lease_that_is_not_a_positive_number(redis_url: str) -> None:
    for lease in (0, -1, True, "20"):
        with pytest.raises(ValueError, match="lease"):
            MemoryInboxStore(lease=lease)  # type: ignore[arg-type]
    client = BlockingRedis.from_url(redis_url)
    with pytest.raises(ValueError, match="lease"):
        RedisInboxStore(client, lease=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="command_timeout"):
        RedisInboxStore(client, command_timeout=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix"):
        RedisInboxStore(client, prefix="")  # type: ignore[arg-type]
    client.close()


# -- Redis only ----------------------------------------------------------------------------------


async def test_every_redis_key_is_under_the_prefix_and_expires(
    redis_store: RedisInboxStore, blocking: BlockingRedis, prefix: str
) -> None:
    store = redis_store
    with anyio.fail_after(5):
        await store.notify(NS, KF, "tok", time.time() + 600)
        start = await store.acquire(NS, KF, "a")
        assert start is not None
        await store.commit(NS, KF, "a", {"m1": "done", "m2": "failed"}, "cur")
        await store.mark_replied(NS, KF, "r1")
        keys = sorted(k.decode() for k in blocking.scan_iter(f"{prefix}:*"))
        base = f"{prefix}:inbox:{NS}"
        assert keys == sorted(
            [f"{base}:pending"]
            + [f"{base}:{KF}:{k}" for k in ("cursor", "done:m1", "done:m2", "lease", "news")]
            + [f"{base}:{KF}:reply:r1"]
        )
        ttls = {key: blocking.pttl(key) / 1000 for key in keys}
        assert all(ttl > 0 for ttl in ttls.values()), ttls
        assert 4 * 86400 - 10 < ttls[f"{base}:{KF}:done:m1"] <= 4 * 86400
        assert 4 * 86400 - 10 < ttls[f"{base}:{KF}:reply:r1"] <= 4 * 86400
        assert 0 < ttls[f"{base}:{KF}:lease"] <= LEASE
        assert blocking.get(f"{base}:{KF}:done:m2") == b"failed"


class Counting:
    """A Redis client that counts the round trips made through it (a script call is one)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def register_script(self, script: str) -> Any:
        run = self._client.register_script(script)

        async def counted(keys: Any = (), args: Any = ()) -> Any:
            self.calls.append("script")
            return await run(keys=keys, args=args)

        return counted

    def __getattr__(self, name: str) -> Any:
        command = getattr(self._client, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await command(*args, **kwargs)

        return counted


async def test_each_redis_call_is_one_round_trip_whatever_the_page_size(
    redis_url: str, anyio_backend: str, prefix: str
) -> None:
    client = redis_client(redis_url, anyio_backend)
    counting = Counting(client)
    store = RedisInboxStore(counting, prefix=prefix, lease=LEASE)  # type: ignore[arg-type]
    ids = [f"m{i}" for i in range(1000)]
    with anyio.fail_after(10):
        start = await store.acquire(NS, KF, "a")
        assert start is not None
        assert await store.marked(NS, KF, ids) == set()
        await store.commit(NS, KF, "a", dict.fromkeys(ids, "done"), "c1")
        assert len(await store.marked(NS, KF, ids)) == 1000
        assert await store.release(NS, KF, "a", start.generation) is None
        await store.notify(NS, KF, "tok", time.time() + 600)
        assert await store.pending(NS) == [KF]
    assert counting.calls == ["script", "script", "script", "script", "script", "script", "zrange"]
    await client.aclose()


async def test_hostile_values_under_the_keys_never_stop_the_inbox(
    redis_store: RedisInboxStore, blocking: BlockingRedis, prefix: str
) -> None:
    store = redis_store
    base = f"{prefix}:inbox:{NS}:{KF}"
    blocking.hset(f"{base}:news", mapping={"generation": "lots", "expires_at": "soon"})
    blocking.rpush(f"{base}:cursor", "not a string")
    blocking.set(f"{base}:lease", "someone")  # no TTL: nobody's lease
    with anyio.fail_after(5):
        start = await store.acquire(NS, KF, "a")
        assert start == PullStart(None, 0)
        assert await store.release(NS, KF, "a", start.generation) is None
        blocking.set(f"{base}:news", "garbage")
        blocking.set(f"{prefix}:inbox:{NS}:pending", "garbage")
        await store.notify(NS, KF, "tok", time.time() + 600)
        start = await store.acquire(NS, KF, "b")
        assert start is not None
        assert start.generation == 1
        assert start.token == "tok"
        assert await store.pending(NS) == [KF]


async def test_an_unreachable_redis_is_a_token_store_error_never_a_redis_one(
    anyio_backend: str,
) -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", anyio_backend)
    store = RedisInboxStore(client, command_timeout=1.0)
    calls = [
        lambda: store.notify(NS, KF, "tok", time.time() + 600),
        lambda: store.pending(NS),
        lambda: store.acquire(NS, KF, "a"),
        lambda: store.renew(NS, KF, "a"),
        lambda: store.release(NS, KF, "a", 1),
        lambda: store.get_cursor(NS, KF),
        lambda: store.marked(NS, KF, ["m"]),
        lambda: store.commit(NS, KF, "a", {"m": "done"}, "c"),
        lambda: store.replied(NS, KF, "r"),
        lambda: store.mark_replied(NS, KF, "r"),
    ]
    with anyio.fail_after(20):
        for call in calls:
            with pytest.raises(TokenStoreError) as info:
                await call()
            # Raised with no chain: redis-py's frames hold the arguments, a token among them.
            assert info.value.__cause__ is None
            assert info.value.__context__ is None
            assert "tok" not in str(info.value)
    await client.aclose()


async def test_two_thousand_concurrent_notifies_on_redis_are_all_recorded(
    redis_url: str, prefix: str, anyio_backend: str, blocking: BlockingRedis
) -> None:
    client = redis_client(redis_url, anyio_backend)
    store = RedisInboxStore(client, prefix=prefix)
    try:
        # redis-py's asyncio pool raises at once when full (8.x: 100 connections; older
        # releases allow 2**31): the store waits below its size.
        if anyio_backend == "asyncio":
            assert store.max_in_flight < client.connection_pool.max_connections
        assert store.max_in_flight >= 1
        failures: list[BaseException] = []

        async def notify(i: int) -> None:
            try:
                await store.notify("wwcorp", f"kf{i % 20}", None, None)
            except TokenStoreError as exc:
                failures.append(exc)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for i in range(2000):
                    group.start_soon(notify, i)
        assert failures == []
        generations = [
            int(blocking.hget(f"{prefix}:inbox:wwcorp:kf{k}:news", "generation") or 0)
            for k in range(20)
        ]
        assert generations == [100] * 20
        assert len(await store.pending("wwcorp")) == 20
    finally:
        await client.aclose()
