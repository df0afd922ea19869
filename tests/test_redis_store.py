"""RedisTokenStore on a real redis-server: atomic writes, compare-and-delete, the lease lock, the
fallback when Redis is down, and one token fetch across several OS processes.

redis.asyncio runs on asyncio only, so these async tests run on asyncio alone."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from redis.asyncio import Redis

from tests._redis import redis_for_test, redis_server
from tests._servers import free_port, serve
from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    AccessToken,
    OfficialAccountClient,
    TokenStoreError,
    WeComClient,
)
from wechat_kf.stores import RedisTokenStore, TokenStore
from wechat_kf.testing import FakeWeChat

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def store(redis: Redis) -> RedisTokenStore:
    return RedisTokenStore(redis, prefix="t", lease=1.0)


# -- the store itself ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_one_key_per_token_with_its_expiry_and_a_matching_ttl(
    store: RedisTokenStore, redis: Redis
) -> None:
    expires_at = time.time() + 7200
    await store.put("oa:wx1:stable", AccessToken("v1", expires_at))
    raw = await redis.get("t:token:oa:wx1:stable")
    assert json.loads(raw) == {"value": "v1", "expires_at": expires_at}
    ttl = await redis.pttl("t:token:oa:wx1:stable")
    assert 7190_000 < ttl <= 7200_000
    assert await store.get("oa:wx1:stable") == AccessToken("v1", expires_at)
    assert await store.get("oa:wx2:stable") is None
    assert isinstance(store, TokenStore)


@pytest.mark.anyio
async def test_a_late_write_never_replaces_a_newer_token(store: RedisTokenStore) -> None:
    now = time.time()
    newer = AccessToken("newer", now + 7200)
    await store.put("k", newer)
    assert await store.put("k", AccessToken("older", now + 7000)) == newer
    assert await store.get("k") == newer


@pytest.mark.anyio
async def test_invalidate_is_compare_and_delete(store: RedisTokenStore) -> None:
    await store.put("k", AccessToken("current", time.time() + 100))
    assert not await store.invalidate("k", "stale")
    assert await store.get("k") is not None
    assert await store.invalidate("k", "current")
    assert await store.get("k") is None


@pytest.mark.anyio
async def test_only_the_owner_releases_the_lock_and_a_dead_owner_loses_it_with_the_lease(
    store: RedisTokenStore, redis: Redis
) -> None:
    await redis.set("t:lock:k", "someone-else", px=300)
    started = time.monotonic()
    async with store.refresh_lock("k") as held:
        assert held
        waited = time.monotonic() - started
        assert await redis.get("t:lock:k") != b"someone-else"
    assert waited >= 0.25  # it had to wait for the other owner's lease to end
    assert await redis.get("t:lock:k") is None  # released by its owner


@pytest.mark.anyio
async def test_a_waiter_reads_the_new_token_instead_of_waiting_for_the_lock(
    store: RedisTokenStore, redis: Redis
) -> None:
    await redis.set("t:lock:k", "fetcher", px=5000)

    async def publish() -> None:
        await anyio.sleep(0.1)
        await store.put("k", AccessToken("fresh", time.time() + 7200))

    async with anyio.create_task_group() as group:
        group.start_soon(publish)
        with anyio.fail_after(2):
            async with store.refresh_lock("k") as held:
                assert not held
    assert await redis.get("t:lock:k") == b"fetcher"


@pytest.mark.anyio
async def test_200_concurrent_calls_in_one_process_fetch_once(
    store: RedisTokenStore, fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    fake.faults.token_latency = 0.05
    async with (
        OfficialAccountClient(app.appid, app.secret, token_store=store, http_client=http) as c,
        anyio.create_task_group() as group,
    ):
        for _ in range(200):
            group.start_soon(c.kf_accounts.list)
    assert fake.token_fetches == 1


@pytest.mark.anyio
async def test_two_appids_never_share_a_token(
    store: RedisTokenStore, fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    one = fake.register_official_account("wxone", wechat_id="gh_one")
    two = fake.register_official_account("wxtwo", wechat_id="gh_two")
    async with (
        OfficialAccountClient(one.appid, one.secret, token_store=store, http_client=http) as a,
        OfficialAccountClient(two.appid, two.secret, token_store=store, http_client=http) as b,
    ):
        await a.kf_accounts.add("x@gh_one", nickname="one")
        await b.kf_accounts.add("x@gh_two", nickname="two")
        token_a, token_b = await a.token_provider.get_token(), await b.token_provider.get_token()
    assert token_a != token_b
    assert fake.token_fetches == 2
    assert list(fake.kf_accounts("wxone")) == ["x@gh_one"]
    assert list(fake.kf_accounts("wxtwo")) == ["x@gh_two"]


@pytest.fixture
async def dead_store() -> AsyncIterator[RedisTokenStore]:
    """A store whose Redis refuses connections (nothing listens on the port)."""
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    yield RedisTokenStore(client)
    await client.aclose()


@pytest.mark.anyio
async def test_redis_down_stable_token_falls_back_in_process_with_one_warning(
    dead_store: RedisTokenStore,
    fake: FakeWeChat,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = fake.register_official_account()
    async with OfficialAccountClient(
        app.appid, app.secret, token_store=dead_store, http_client=http
    ) as client:
        for _ in range(3):
            await client.kf_accounts.list()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "token store unreachable" in warnings[0].getMessage()
    assert fake.token_fetches == 1


@pytest.mark.anyio
async def test_redis_down_wecom_token_falls_back(
    dead_store: RedisTokenStore, fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_wecom_app()
    kfid = fake.create_kf_account(app.corpid)
    async with WeComClient(
        app.corpid, app.secret, token_store=dead_store, http_client=http
    ) as client:
        assert await client.servicers.list(kfid) == []


@pytest.mark.anyio
async def test_redis_down_classic_token_raises_token_store_error_and_never_fetches(
    dead_store: RedisTokenStore, fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    async with OfficialAccountClient(
        app.appid, app.secret, token_store=dead_store, use_stable_token=False, http_client=http
    ) as client:
        with pytest.raises(TokenStoreError, match="classic"):
            await client.kf_accounts.list()
    assert fake.token_fetches == 0


# -- across OS processes -------------------------------------------------------------------------


def start_worker(
    base_url: str, redis_url: str, appid: str, secret: str, *extra: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "tests._redis_worker", "--base-url", base_url,
        "--redis-url", redis_url, "--appid", appid, "--secret", secret, *extra,
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def finish(workers: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize("kind", ["stable", "classic"])
def test_four_processes_on_a_cold_store_fetch_one_token_and_one_after_revocation(
    redis_url: str, secret_watch: set[str], kind: str
) -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    fake.faults.token_latency = 0.2  # a slow fetch, so all four processes find the cache cold
    extra = ("--classic",) if kind == "classic" else ()
    with serve(fake.app) as base_url:
        first = finish([start_worker(base_url, redis_url, app.appid, app.secret, *extra)
                        for _ in range(4)])  # fmt: skip
        fetched_cold = fake.token_fetches
        fake.revoke_tokens()
        second = finish([start_worker(base_url, redis_url, app.appid, app.secret, *extra)
                         for _ in range(4)])  # fmt: skip
    secret_watch.update([app.secret, *fake.issued_tokens()])
    assert [r["ok"] for r in first + second] == [100] * 8, first + second
    assert fetched_cold == 1
    assert fake.token_fetches == 2


def test_killing_the_process_that_holds_the_lock_lets_another_take_over(
    redis_url: str, secret_watch: set[str]
) -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    fake.faults.token_latency = 30.0  # the first fetch hangs until its process is killed
    args = ("--lease", "1.0", "--calls", "50")
    with serve(fake.app) as base_url:
        holder = start_worker(base_url, redis_url, app.appid, app.secret, *args)
        lock = f"wechat_kf:lock:oa:{app.appid}:stable"
        deadline = time.monotonic() + 20
        while not _redis_has(redis_url, lock):
            assert time.monotonic() < deadline, "the first worker never took the lock"
            time.sleep(0.02)
        others = [start_worker(base_url, redis_url, app.appid, app.secret, *args)
                  for _ in range(3)]  # fmt: skip
        time.sleep(0.3)
        fake.faults.token_latency = 0.0
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=10)
        results = finish(others)
    secret_watch.update([app.secret, *fake.issued_tokens()])
    assert [r["ok"] for r in results] == [50, 50, 50]
    assert all(r["errors"] == [] for r in results)


def _redis_has(url: str, key: str) -> bool:
    async def check() -> bool:
        client = Redis.from_url(url)
        try:
            return bool(await client.exists(key))
        finally:
            await client.aclose()

    return anyio.run(check)


# -- whatever Redis holds, however Redis behaves -------------------------------------------------


async def poison(redis: Redis, key: str, how: str) -> None:
    if how == "a list key":
        await redis.rpush(key, "a")
    elif how == "a hash key":
        await redis.hset(key, "value", "v")
    else:
        await redis.set(key, how)


WRONG_SHAPES = [
    "42",
    "[1, 2]",
    '{"value": "v", "expires_at": "9999999999"}',
    '{"value": 5, "expires_at": 9999999999}',
    '{"expires_at": 9999999999}',
    "not json at all",
    "a list key",
    "a hash key",
]


@pytest.mark.anyio
@pytest.mark.parametrize("shape", WRONG_SHAPES)
async def test_a_wrong_shaped_value_under_the_token_key_counts_as_none_and_is_replaced(
    store: RedisTokenStore, redis: Redis, fake: FakeWeChat, http: httpx.AsyncClient, shape: str
) -> None:
    app = fake.register_official_account()
    key = f"oa:{app.appid}:stable"
    await poison(redis, f"t:token:{key}", shape)
    assert await store.get(key) is None
    assert not await store.invalidate(key, "anything")
    async with OfficialAccountClient(
        app.appid, app.secret, token_store=store, http_client=http
    ) as client:
        with anyio.fail_after(5):
            assert await client.kf_accounts.list() == []
    stored = json.loads(await redis.get(f"t:token:{key}"))
    assert stored["value"] in fake.issued_tokens()
    assert await redis.pttl(f"t:token:{key}") > 0
    assert fake.token_fetches == 1


@pytest.mark.anyio
@pytest.mark.parametrize("shape", ["crashed-tool", "a list key"])
async def test_a_lock_key_without_a_ttl_does_not_block_a_cold_call(
    store: RedisTokenStore, redis: Redis, fake: FakeWeChat, http: httpx.AsyncClient, shape: str
) -> None:
    app = fake.register_official_account()
    await poison(redis, f"t:lock:oa:{app.appid}:stable", shape)
    async with OfficialAccountClient(
        app.appid, app.secret, token_store=store, http_client=http
    ) as client:
        with anyio.fail_after(2):
            assert await client.kf_accounts.list() == []
    assert await redis.exists(f"t:lock:oa:{app.appid}:stable") == 0  # taken over, released


@pytest.mark.anyio
async def test_a_claim_is_one_per_interval_for_every_store_on_the_redis(redis: Redis) -> None:
    one, two = RedisTokenStore(redis, prefix="c"), RedisTokenStore(redis, prefix="c")
    assert await one.claim("force-refresh:oa:wx:stable", 0.3)
    assert not await two.claim("force-refresh:oa:wx:stable", 0.3)
    assert await two.claim("force-refresh:oa:other:stable", 0.3)
    await anyio.sleep(0.35)
    assert await two.claim("force-refresh:oa:wx:stable", 0.3)


@pytest.mark.anyio
async def test_a_lease_shorter_than_the_fetch_still_means_one_fetch(
    redis: Redis, fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    fake.faults.token_latency = 1.0  # three leases long
    stores = [RedisTokenStore(redis, prefix="l", lease=0.3) for _ in range(2)]
    clients = [
        OfficialAccountClient(
            app.appid, app.secret, token_store=s, use_stable_token=False, http_client=http
        )
        for s in stores
    ]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(client.kf_accounts.list)
    for client in clients:
        await client.aclose()
    assert fake.token_fetches == 1  # a classic fetch knocks out the last: never two


@pytest.mark.anyio
async def test_a_huge_expires_in_never_reaches_redis_arithmetic(
    store: RedisTokenStore, redis: Redis, secret_watch: set[str]
) -> None:
    token = "tok-huge-never-shown"
    secret_watch.add(token)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": token, "expires_in": 1e300})
        return httpx.Response(200, json={"kf_list": []})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with (
        http,
        OfficialAccountClient("wxhuge", "s3cret", token_store=store, http_client=http) as c,
    ):
        assert await c.kf_accounts.list() == []
    assert 0 < await redis.pttl("t:token:oa:wxhuge:stable") <= 86400 * 1000


@pytest.fixture
async def freezable() -> AsyncIterator[tuple[subprocess.Popen[Any], RedisTokenStore]]:
    """A redis-server of this test's own, to freeze, and a store on it through a client with no
    socket timeout at all (redis-py 5's default): only the store bounds its commands."""
    with redis_for_test() as server:
        client = Redis.from_url(f"{server.url}/0", socket_timeout=None, socket_connect_timeout=None)
        try:
            yield server.process, RedisTokenStore(client, prefix="f", command_timeout=0.3)
        finally:
            await client.aclose()


@contextmanager
def frozen(process: subprocess.Popen[Any]) -> Iterator[None]:
    """SIGSTOP the server; SIGCONT in a finally, and from a watchdog should the test hang."""
    os.kill(process.pid, signal.SIGSTOP)
    watchdog = threading.Timer(15, os.kill, (process.pid, signal.SIGCONT))
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        os.kill(process.pid, signal.SIGCONT)


@pytest.mark.anyio
async def test_a_frozen_redis_sends_every_waiting_caller_to_the_fallback_at_once(
    freezable: tuple[subprocess.Popen[Any], RedisTokenStore],
    fake: FakeWeChat,
    http: httpx.AsyncClient,
) -> None:
    process, store = freezable
    app = fake.register_official_account()
    async with OfficialAccountClient(
        app.appid, app.secret, token_store=store, http_client=http
    ) as oa:
        with frozen(process), anyio.fail_after(5):
            started = anyio.current_time()
            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(oa.kf_accounts.list)
            elapsed = anyio.current_time() - started
    assert elapsed < 0.3 + 1.0  # one command timeout, not ten in a row
    assert fake.token_fetches == 1


@pytest.mark.anyio
async def test_freezing_redis_while_holding_the_lock_never_holds_the_caller_past_its_timeouts(
    freezable: tuple[subprocess.Popen[Any], RedisTokenStore],
    fake: FakeWeChat,
    http: httpx.AsyncClient,
) -> None:
    process, store = freezable
    app = fake.register_official_account()
    fake.faults.token_latency = 0.5
    stop = anyio.Event()

    async def freeze_during_the_fetch() -> None:
        await anyio.sleep(0.2)
        with frozen(process):
            await stop.wait()

    async with OfficialAccountClient(
        app.appid, app.secret, token_store=store, http_client=http
    ) as oa:
        started = anyio.current_time()
        async with anyio.create_task_group() as group:
            group.start_soon(freeze_during_the_fetch)
            with anyio.fail_after(4):
                assert await oa.kf_accounts.list() == []
            stop.set()
        elapsed = anyio.current_time() - started
    # fetch, a put and a release that time out, then a fetch of the in-process fallback
    assert elapsed < 0.5 + 0.3 + 0.3 + 0.5 + 1.0


def test_four_processes_with_a_stuck_stable_token_force_one_refresh(
    redis_url: str, secret_watch: set[str]
) -> None:
    issued = ["stuck-token-0-never-shown"]
    secret_watch.update(f"stuck-token-{i}-never-shown" for i in range(10))
    forced: list[float] = []

    def script(request: WireRequest, conn: WireConn) -> None:
        # WeChat keeps rejecting whatever token it hands out: every process, seeing a normal
        # fetch return the rejected token, decides to force; the claim lets one of them.
        if request.path == "/cgi-bin/stable_token":
            if request.json.get("force_refresh"):
                forced.append(time.monotonic())
                issued.append(f"stuck-token-{len(issued)}-never-shown")
            conn.send(response(200, {"access_token": issued[-1], "expires_in": 7200}))
        else:
            conn.send(response(200, {"errcode": 40001, "errmsg": "invalid credential"}))

    with WireServer(script) as server:
        workers = [
            start_worker(server.url, redis_url, "wxstuck", "stuck-secret", "--calls", "25")
            for _ in range(4)
        ]
        results = finish(workers)
    assert len(forced) == 1
    assert all(error == "AccessTokenError" for r in results for error in r["errors"])  # type: ignore[attr-defined]
