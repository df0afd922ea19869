"""RedisTokenStore on a real redis-server: atomic writes, compare-and-delete, the lease lock, the
fallback when Redis is down, and one token fetch across several OS processes.

The async tests run on asyncio and trio: redis.asyncio runs on asyncio only, so on trio the store
is given a blocking redis-py client whose commands run in worker threads (tests/_redis.py)."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from redis import Redis as BlockingRedis
from redis.asyncio import Redis

from tests._redis import redis_client, redis_for_test, redis_server
from tests._servers import free_port, serve
from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    AccessToken,
    OfficialAccountClient,
    OfficialAccountTokenProvider,
    TokenStoreError,
    WeComClient,
)
from wechat_kf.stores import RedisTokenStore, TokenStore
from wechat_kf.testing import FakeWeChat

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis(redis_url: str, anyio_backend: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url, anyio_backend)
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
async def dead_store(anyio_backend: str) -> AsyncIterator[RedisTokenStore]:
    """A store whose Redis refuses connections (nothing listens on the port)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = redis_client(url, anyio_backend, socket_connect_timeout=0.5)
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
        "--redis-url", redis_url, f"--appid={appid}", f"--secret={secret}", *extra,
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


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(
            '{"value": "junk", "expires_at": 4e9, "refresh_at": "soon"}', id="refresh-string"
        ),
        pytest.param('{"value": "", "expires_at": 4e9}', id="value-empty"),
    ],
)
def test_four_processes_on_a_store_holding_garbage_fetch_once_and_replace_it(
    redis_url: str, secret_watch: set[str], anyio_backend: str, garbage: str
) -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    fake.faults.token_latency = 0.2  # a slow fetch, so all four processes find no token
    key = f"wechat_kf:token:oa:{app.appid}:stable"
    with BlockingRedis.from_url(redis_url) as redis:
        redis.set(key, garbage)
        with serve(fake.app) as base_url:
            args = ("--backend", anyio_backend)
            results = finish([start_worker(base_url, redis_url, app.appid, app.secret, *args)
                              for _ in range(4)])  # fmt: skip
        stored = json.loads(redis.get(key))
    secret_watch.update([app.secret, *fake.issued_tokens()])
    assert [r["ok"] for r in results] == [100] * 4, results
    replaced = stored["value"] in fake.issued_tokens()
    assert (fake.token_fetches, replaced) == (1, True)  # before: 4 fetches, the garbage kept


def _redis_has(url: str, key: str) -> bool:
    async def check() -> bool:
        client = Redis.from_url(url)
        try:
            return bool(await client.exists(key))
        finally:
            await client.aclose()

    return anyio.run(check)


# -- whatever Redis holds, however Redis behaves -------------------------------------------------


async def poison(redis: Redis, key: str, how: str | bytes) -> None:
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


#: What Redis may hold under a token key that is no token (None): each would be kept by a put
#: that only compared expiries (most claim to expire in 2096), while every reader fetches.
GARBAGE: list[Any] = [
    pytest.param("not json at all", None, id="not-json"),
    pytest.param("", None, id="empty-string"),
    pytest.param('{"value": "junk", "expires_at": 4e9} and more', None, id="trailing-text"),
    pytest.param("[" * 2000, None, id="nested-too-deep"),
    pytest.param("a list key", None, id="list-key"),
    pytest.param("a hash key", None, id="hash-key"),
    pytest.param("42", None, id="json-number"),
    pytest.param('"junk"', None, id="json-string"),
    pytest.param("null", None, id="json-null"),
    pytest.param('["junk", 4e9]', None, id="json-array"),
    pytest.param('{"expires_at": 4e9}', None, id="value-missing"),
    pytest.param('{"value": "", "expires_at": 4e9}', None, id="value-empty"),
    pytest.param('{"value": null, "expires_at": 4e9}', None, id="value-null"),
    pytest.param('{"value": 5, "expires_at": 4e9}', None, id="value-number"),
    pytest.param('{"value": true, "expires_at": 4e9}', None, id="value-bool"),
    pytest.param('{"value": ["junk"], "expires_at": 4e9}', None, id="value-array"),
    pytest.param('{"value": {"value": "junk"}, "expires_at": 4e9}', None, id="value-object"),
    pytest.param('{"value": "ju nk", "expires_at": 4e9}', None, id="value-with-space"),
    pytest.param('{"value": "junk\\n", "expires_at": 4e9}', None, id="value-with-newline"),
    pytest.param('{"value": "junk\\u0000", "expires_at": 4e9}', None, id="value-with-nul"),
    pytest.param('{"value": "j\\u00fcnk", "expires_at": 4e9}', None, id="value-not-ascii"),
    pytest.param(b'{"value": "j\xffnk", "expires_at": 4e9}', None, id="value-not-utf8"),
    pytest.param('{"value": "\\ud800", "expires_at": 4e9}', None, id="value-lone-surrogate"),
    pytest.param(
        '{"value": "junk", "expires_at": 4e9, "value": ""}', None, id="value-repeated-empty"
    ),
    pytest.param('{"value": "junk"}', None, id="expires-missing"),
    pytest.param('{"value": "junk", "expires_at": null}', None, id="expires-null"),
    pytest.param('{"value": "junk", "expires_at": "4000000000"}', None, id="expires-string"),
    pytest.param('{"value": "junk", "expires_at": true}', None, id="expires-bool"),
    pytest.param('{"value": "junk", "expires_at": [4e9]}', None, id="expires-array"),
    pytest.param('{"value": "junk", "expires_at": {"at": 4e9}}', None, id="expires-object"),
    pytest.param('{"value": "junk", "expires_at": NaN}', None, id="expires-nan"),
    pytest.param('{"value": "junk", "expires_at": "NaN"}', None, id="expires-nan-string"),
    pytest.param('{"value": "junk", "expires_at": Infinity}', None, id="expires-infinity"),
    pytest.param('{"value": "junk", "expires_at": -Infinity}', None, id="expires-minus-infinity"),
    pytest.param('{"value": "junk", "expires_at": "Infinity"}', None, id="expires-infinity-string"),
    pytest.param('{"value": "junk", "expires_at": 1e400}', None, id="expires-huge-exponent"),
    pytest.param(
        '{"value": "junk", "expires_at": 1' + "0" * 400 + "}", None, id="expires-huge-integer"
    ),
    pytest.param(
        '{"value": "junk", "expires_at": 4e9, "refresh_at": "soon"}', None, id="refresh-string"
    ),
    pytest.param(
        '{"value": "junk", "expires_at": 4e9, "refresh_at": true}', None, id="refresh-bool"
    ),
    pytest.param('{"value": "junk", "expires_at": 4e9, "refresh_at": NaN}', None, id="refresh-nan"),
    pytest.param(
        '{"value": "junk", "expires_at": 4e9, "refresh_at": 1e400}', None, id="refresh-huge"
    ),
    pytest.param(
        '{"value": "junk", "expires_at": 4e9, "refresh_at": [1]}', None, id="refresh-array"
    ),
    pytest.param(
        '{"value": "junk", "expires_at": 4e9, "refresh_at": {}}', None, id="refresh-object"
    ),
]

#: Values that are a token, with the token they hold.
TOKENS: list[Any] = [
    pytest.param('{"value": "tok", "expires_at": 4e9}', AccessToken("tok", 4e9), id="minimal"),
    pytest.param(
        '{"value": "tok", "expires_at": 4000000000, "refresh_at": null}',
        AccessToken("tok", 4e9),
        id="refresh-null",
    ),
    pytest.param(
        '{"value": "tok", "expires_at": 4000000000.25, "refresh_at": 3999999700.125}',
        AccessToken("tok", 4000000000.25, refresh_at=3999999700.125),
        id="fractions-kept-exactly",
    ),
    pytest.param(
        ' {"refresh_at": 3.9e9, "extra": [1, {"x": null}], "expires_at": 4e9, "value": "t\\u006f'
        'k"} ',
        AccessToken("tok", 4e9, refresh_at=3.9e9),
        id="other-order-extra-fields-escapes",
    ),
    pytest.param(
        '{"value": "A-z_0.9~!", "expires_at": 1.7976931348623157e308}',
        AccessToken("A-z_0.9~!", 1.7976931348623157e308),
        id="printable-ascii-largest-finite",
    ),
    pytest.param('{"value": "old", "expires_at": -1}', AccessToken("old", -1.0), id="expired"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("stored", "holds"), [*GARBAGE, *TOKENS])
async def test_a_put_replaces_a_stored_value_exactly_when_a_get_finds_no_token_in_it(
    store: RedisTokenStore, redis: Redis, stored: str | bytes, holds: AccessToken | None
) -> None:
    key = "oa:wx:stable"
    await poison(redis, f"t:token:{key}", stored)
    now = time.time()
    fetched = AccessToken("fetched", now + 7200, refresh_at=now + 6900)
    with anyio.fail_after(5):
        assert await store.get(key) == holds
        # Readers and writers judge alike: what a reader cannot use, a writer replaces; a token
        # a reader can use stays while it expires after the one put.
        kept = holds is not None and holds.expires_at > fetched.expires_at
        assert await store.put(key, fetched) == (holds if kept else fetched)
        assert await store.get(key) == (holds if kept else fetched)
        assert await redis.pttl(f"t:token:{key}") > 0 or kept


@pytest.mark.anyio
async def test_a_client_that_decodes_responses_reads_and_writes_the_same_tokens(
    redis_url: str, anyio_backend: str, redis: Redis
) -> None:
    client = redis_client(redis_url, anyio_backend, decode_responses=True)
    try:
        decoding = RedisTokenStore(client, prefix="t")
        plain = RedisTokenStore(redis, prefix="t")
        token = AccessToken("tok", time.time() + 7200, refresh_at=time.time() + 6900)
        assert await decoding.put("k", token) == token
        assert await plain.get("k") == token
        assert await decoding.get("k") == token
        assert await decoding.invalidate("k", "tok")
    finally:
        await client.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value", "expires_in", "refresh_in"),
    [
        pytest.param("tok with spaces", 7200, None, id="value-with-spaces"),
        pytest.param("tök", 7200, None, id="value-not-ascii"),
        pytest.param("", 7200, None, id="value-empty"),
        pytest.param("tok", math.nan, None, id="expires-nan"),
        pytest.param("tok", math.inf, None, id="expires-infinite"),
        pytest.param("tok", 7200, math.nan, id="refresh-nan"),
    ],
)
async def test_a_token_the_store_cannot_hold_is_handed_back_and_never_stored(
    store: RedisTokenStore, value: str, expires_in: float, refresh_in: float | None
) -> None:
    now = time.time()
    refresh_at = None if refresh_in is None else now + refresh_in
    unstorable = AccessToken(value, now + expires_in, refresh_at=refresh_at)
    assert await store.put("k", unstorable) is unstorable
    assert await store.get("k") is None
    held = AccessToken("held", now + 100)
    await store.put("k", held)
    assert await store.put("k", unstorable) == held  # even one that claims to expire later
    assert await store.get("k") == held


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
async def freezable_redis(anyio_backend: str) -> AsyncIterator[tuple[subprocess.Popen[Any], Redis]]:
    """A redis-server of this test's own, to freeze, and a client of it with no socket timeout
    at all (redis-py 5's default): only the store bounds its commands."""
    with redis_for_test() as server:
        url = f"{server.url}/0"
        client = redis_client(url, anyio_backend, socket_timeout=None, socket_connect_timeout=None)
        try:
            yield server.process, client
        finally:
            await client.aclose()


@pytest.fixture
def freezable(
    freezable_redis: tuple[subprocess.Popen[Any], Redis],
) -> tuple[subprocess.Popen[Any], RedisTokenStore]:
    """:func:`freezable_redis`, with a store on it whose commands time out after 0.3 s."""
    process, client = freezable_redis
    return process, RedisTokenStore(client, prefix="f", command_timeout=0.3)


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


class SlowFetch:
    """A token endpoint that answers after ``seconds``; ``started`` is set at the first call."""

    def __init__(self, seconds: float, token: str) -> None:
        self.seconds, self.token, self.calls = seconds, token, 0
        self.started = anyio.Event()

    async def __call__(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        self.started.set()
        await anyio.sleep(self.seconds)
        return {"access_token": self.token, "expires_in": 7200}


async def cancelled_under_a_frozen_lease(
    process: subprocess.Popen[Any],
    client: Redis,
    call_with_deadline: Callable[[Callable[[], Awaitable[str]], float], Awaitable[None]],
) -> float:
    """A caller with a 1.5 s deadline takes the lease (3 s) and fetches for 3 s; Redis freezes as
    the fetch starts and resumes once the caller is back. Returns how long the caller took; then
    shows that the lease it could not release runs out by itself, so another caller fetches."""
    lease = 3.0
    store = RedisTokenStore(client, prefix="d", lease=lease)
    assert store.command_timeout == 2.0  # the default: what a release used to wait for
    slow = SlowFetch(3.0, "slow-token-never-shown")
    provider = OfficialAccountTokenProvider("wxslow", "s3cret", fetch=slow, store=store)
    took = math.inf
    back = anyio.Event()

    async def call() -> None:
        nonlocal took
        started = anyio.current_time()
        await call_with_deadline(provider.get_token, 1.5)
        took = anyio.current_time() - started
        back.set()

    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await slow.started.wait()  # the caller holds the lease and fetches
            with frozen(process):
                await back.wait()
        lock_ttl = await client.pttl("d:lock:oa:wxslow:stable")
        assert lock_ttl == -2 or 0 < lock_ttl <= lease * 1000  # gone, or going: never stuck
        quick = SlowFetch(0.0, "next-token-never-shown")
        other_store = RedisTokenStore(client, prefix="d", lease=lease)  # another process's
        other = OfficialAccountTokenProvider("wxslow", "s3cret", fetch=quick, store=other_store)
        with anyio.fail_after(lease + 2.0):
            assert await other.get_token() == "next-token-never-shown"
    assert (slow.calls, provider.fetch_count, quick.calls) == (1, 0, 1)
    return took


async def under_fail_after(get_token: Callable[[], Awaitable[str]], seconds: float) -> None:
    with pytest.raises(TimeoutError), anyio.fail_after(seconds):
        await get_token()


@pytest.mark.anyio
async def test_a_deadline_passing_under_a_lease_on_a_frozen_redis_returns_within_half_a_second(
    freezable_redis: tuple[subprocess.Popen[Any], Redis], secret_watch: set[str]
) -> None:
    secret_watch.update(["slow-token-never-shown", "next-token-never-shown", "s3cret"])
    took = await cancelled_under_a_frozen_lease(*freezable_redis, under_fail_after)
    assert took < 1.5 + 0.5  # before: 3.5 s, the deadline plus a release waiting 2 s


async def under_asyncio_wait_for(get_token: Callable[[], Awaitable[str]], seconds: float) -> None:
    import asyncio  # a plain asyncio timeout, as a FastAPI or aiohttp handler would set it

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(get_token(), seconds)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_asyncio_timeout_under_a_lease_on_a_frozen_redis_returns_within_half_a_second(
    freezable_redis: tuple[subprocess.Popen[Any], Redis], secret_watch: set[str]
) -> None:
    secret_watch.update(["slow-token-never-shown", "next-token-never-shown", "s3cret"])
    took = await cancelled_under_a_frozen_lease(*freezable_redis, under_asyncio_wait_for)
    assert took < 1.5 + 0.5


@pytest.mark.anyio
async def test_a_cancelled_caller_still_releases_the_lease_on_a_healthy_redis(
    redis: Redis, secret_watch: set[str]
) -> None:
    secret_watch.update(["slow-token-never-shown", "s3cret"])
    store = RedisTokenStore(redis, prefix="h")  # a 15 s lease: only a release frees it now
    slow = SlowFetch(3.0, "slow-token-never-shown")
    provider = OfficialAccountTokenProvider("wxslow", "s3cret", fetch=slow, store=store)
    with anyio.fail_after(5):
        await under_fail_after(provider.get_token, 0.3)
        assert await redis.exists("h:lock:oa:wxslow:stable") == 0


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


async def test_a_put_replaces_a_copy_of_the_same_token_even_when_it_expires_sooner(
    store: RedisTokenStore,
) -> None:
    # WeCom hands a token back with its floored remaining life: the new copy is the newer word.
    now = time.time()
    first = AccessToken(value="t1", expires_at=now + 100, refresh_at=now + 90)
    again = AccessToken(value="t1", expires_at=now + 99.6, refresh_at=now + 98)
    other = AccessToken(value="t0", expires_at=now + 50, refresh_at=now + 40)
    assert await store.put("k", first) == first
    assert await store.put("k", again) == again
    assert await store.put("k", other) == again
    assert await store.get("k") == again
