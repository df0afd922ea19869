"""Token providers: caching, single flight, compare-and-invalidate, forced stable_token refresh."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
import pytest

from tests._scripted import SECRET, Reply, Scripted
from wechat_kf import (
    AccessToken,
    AccessTokenError,
    CredentialError,
    InvalidResponseError,
    MemoryTokenStore,
    OfficialAccountClient,
    OfficialAccountTokenProvider,
    RateLimitError,
    StaticTokenProvider,
    WeChatError,
    WeComClient,
    WeComTokenProvider,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Stands in for the transport: answers token requests from ``tokens`` (the last repeats)."""

    def __init__(self, *tokens: str, expires_in: int = 7200) -> None:
        self.tokens = list(tokens)
        self.expires_in = expires_in
        self.calls: list[tuple[str, str, Mapping[str, Any] | None]] = []
        self.once: list[bool] = []

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool,
        once: bool = False,
    ) -> Mapping[str, Any]:
        self.calls.append((method, path, json if json is not None else params))
        self.once.append(once)
        await anyio.sleep(0.01)
        token = self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
        return {"access_token": token, "expires_in": self.expires_in}

    @property
    def forced(self) -> list[bool]:
        return [bool(body and body.get("force_refresh")) for _, _, body in self.calls]


async def test_200_concurrent_calls_on_a_cold_cache_fetch_one_token(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    async with anyio.create_task_group() as group:
        for _ in range(200):
            group.start_soon(oa.kf_accounts.list)
    assert fake.token_fetches == 1
    assert len(fake.calls_to("/cgi-bin/customservice/getkflist")) == 200


async def test_a_burst_of_token_errors_causes_one_refetch(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    await oa.kf_accounts.list()
    fake.revoke_tokens()
    fake.faults.latency = 0.02  # so that all 50 are in flight with the revoked token
    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(oa.kf_accounts.list)
    assert fake.token_fetches == 2
    rejected = [c for c in fake.calls if c.errcode == 40001]
    assert len(rejected) == 50


async def test_expired_token_on_the_server_is_refreshed_transparently(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    await oa.kf_accounts.list()
    fake.advance(7200)
    await oa.kf_accounts.list()
    assert [c.errcode for c in fake.calls_to("/cgi-bin/customservice/getkflist")] == [
        None,
        42001,
        None,
    ]
    assert fake.token_fetches == 2


async def test_token_is_cached_until_300_seconds_before_expiry() -> None:
    clock, fetch = Clock(), Fetcher("t1", "t2")
    provider = OfficialAccountTokenProvider("wxapp", "secret", fetch=fetch, clock=clock)
    assert await provider.get_token() == "t1"
    clock.now += 7200 - 301
    assert await provider.get_token() == "t1"
    clock.now += 2
    assert await provider.get_token() == "t2"
    assert len(fetch.calls) == 2


async def test_a_wecom_token_refetched_in_its_last_minutes_is_not_fetched_again_on_every_call(
    anyio_backend: str,
) -> None:
    # WeCom hands the same token back until it expires, with what it has left (floored): the
    # copy it hands back expires a fraction of a second before the stored one, yet it is the
    # newer knowledge of that token and must replace it.
    clock = Clock()
    issued_at = clock.now

    class SameToken(Fetcher):
        async def __call__(self, *args: Any, **kwargs: Any) -> Mapping[str, Any]:
            body = dict(await super().__call__(*args, **kwargs))
            body["expires_in"] = int(issued_at + 7200 - clock.now)
            return body

    fetch = SameToken("t1")
    provider = WeComTokenProvider("ww", "secret", fetch=fetch, clock=clock)
    await provider.get_token()
    clock.now += 7200 - 250.3  # inside the last 300 s
    for _ in range(10):
        assert await provider.get_token() == "t1"
        clock.now += 1
    assert len(fetch.calls) == 2


async def test_a_store_keeps_the_newest_copy_of_one_token_and_the_later_expiring_of_two() -> None:
    store = MemoryTokenStore()
    first = AccessToken(value="t1", expires_at=100.0, refresh_at=90.0)
    again = AccessToken(value="t1", expires_at=99.6, refresh_at=98.0)
    older = AccessToken(value="t0", expires_at=50.0, refresh_at=40.0)
    assert await store.put("k", first) == first
    assert await store.put("k", again) == again
    assert await store.put("k", older) == again


async def test_invalidate_drops_only_the_token_that_is_still_cached() -> None:
    store = MemoryTokenStore()
    fetch = Fetcher("t1", "t2", "t3")
    provider = WeComTokenProvider("ww1", "secret", fetch=fetch, store=store)
    assert await provider.get_token() == "t1"
    await provider.invalidate("t1")
    assert await provider.get_token() == "t2"
    await provider.invalidate("t1")  # a late report about the old token
    assert await provider.get_token() == "t2"
    assert len(fetch.calls) == 2


async def test_stable_token_forces_a_refresh_only_when_a_normal_fetch_returns_the_bad_token() -> (
    None
):
    clock = Clock()
    fetch = Fetcher("same", "same", "fresh", "fresh")
    provider = OfficialAccountTokenProvider("wx-force-1", "secret", fetch=fetch, clock=clock)
    assert await provider.get_token() == "same"
    await provider.invalidate("same")
    assert await provider.get_token() == "fresh"
    assert fetch.forced == [False, False, True]
    assert all(path == "/cgi-bin/stable_token" for _, path, _ in fetch.calls)


async def test_stable_token_forced_refresh_at_most_once_per_30_seconds_per_appid() -> None:
    clock = Clock()
    fetch = Fetcher("a", "a", "b", "b", "b", "c")
    store = MemoryTokenStore(clock=clock)
    provider = OfficialAccountTokenProvider(
        "wx-force-2", "secret", fetch=fetch, clock=clock, store=store
    )
    await provider.get_token()
    await provider.invalidate("a")
    assert await provider.get_token() == "b"  # normal "a", then forced "b"
    clock.now += 10
    await provider.invalidate("b")
    assert await provider.get_token() == "b"  # normal "b"; a second force is not allowed yet
    clock.now += 25
    await provider.invalidate("b")
    assert await provider.get_token() == "c"  # 35 s later: normal "b", then forced "c"
    assert fetch.forced == [False, False, True, False, False, True]


async def test_stable_token_normal_fetch_returning_a_new_token_forces_nothing() -> None:
    fetch = Fetcher("a", "b")
    provider = OfficialAccountTokenProvider("wx-force-3", "secret", fetch=fetch)
    await provider.get_token()
    await provider.invalidate("a")
    assert await provider.get_token() == "b"
    assert fetch.forced == [False, False]


async def test_classic_token_uses_get_cgi_bin_token(fake: FakeWeChat) -> None:
    app = fake.register_official_account()
    http = httpx.AsyncClient(transport=fake.transport)
    async with (
        http,
        OfficialAccountClient(
            app.appid, app.secret, use_stable_token=False, http_client=http
        ) as client,
    ):
        await client.kf_accounts.list()
    assert fake.calls[0].path == "/cgi-bin/token"
    assert fake.calls[0].params["secret"] == "<redacted>"


async def test_wrong_secret_raises_credential_error_after_one_request(fake: FakeWeChat) -> None:
    app = fake.register_official_account()
    http = httpx.AsyncClient(transport=fake.transport)
    async with http, OfficialAccountClient(app.appid, "wrong-secret", http_client=http) as client:
        with pytest.raises(CredentialError) as info:
            await client.kf_accounts.list()
    assert info.value.errcode == 40125
    assert len(fake.calls) == 1


@pytest.mark.parametrize("errcode", [40013, 40164, 61004, 40243, 89503, 40002])
async def test_token_endpoint_rejections_raise_credential_error_at_once(
    secret_watch: set[str], errcode: int
) -> None:
    secret_watch.add(SECRET)
    script = Scripted(token_replies=({"errcode": errcode, "errmsg": "no rid: r-1"},))
    async with OfficialAccountClient("wx", SECRET, http_client=script.client()) as client:
        with pytest.raises(CredentialError) as info:
            await client.kf_accounts.list()
    assert info.value.errcode == errcode
    assert info.value.rid == "r-1"
    assert len(script.requests) == 1


async def test_token_endpoint_quota_raises_rate_limit_error(secret_watch: set[str]) -> None:
    secret_watch.add(SECRET)
    script = Scripted(token_replies=({"errcode": 45009, "errmsg": "quota"},))
    async with OfficialAccountClient("wx", SECRET, http_client=script.client()) as client:
        with pytest.raises(RateLimitError):
            await client.kf_accounts.list()
    assert len(script.requests) == 1


async def test_token_fetch_is_retried_on_busy_5xx_and_connect_errors(
    secret_watch: set[str],
) -> None:
    secret_watch.add(SECRET)
    replies = ({"errcode": -1, "errmsg": "busy"}, httpx.Response(502), httpx.ConnectError("x"))
    script = Scripted(token_replies=replies)
    async with OfficialAccountClient("wx", SECRET, http_client=script.client()) as client:
        await client.kf_accounts.list()
    secret_watch.update(script.issued())
    assert len(script.token_requests) == 4
    assert len(script.business_requests) == 1


async def test_wecom_gettoken_40001_is_a_wrong_secret_not_a_refresh(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    http = httpx.AsyncClient(transport=fake.transport)
    async with http, WeComClient(corp[0], "not-the-secret", http_client=http) as client:
        with pytest.raises(CredentialError) as info:
            await client.servicers.list(corp[2])
    assert info.value.errcode == 40001
    assert fake.token_fetches == 1
    assert len(fake.calls) == 1


async def test_wecom_tokens_are_cached_per_corpid_and_secret_pair() -> None:
    store = MemoryTokenStore()
    one, other = Fetcher("t-app1"), Fetcher("t-app2")
    app1 = WeComTokenProvider("ww1", "secret-1", fetch=one, store=store)
    app2 = WeComTokenProvider("ww1", "secret-2", fetch=other, store=store)
    app1_again = WeComTokenProvider("ww1", "secret-1", fetch=one, store=store)
    assert await app1.get_token() == "t-app1"
    assert await app2.get_token() == "t-app2"
    assert await app1_again.get_token() == "t-app1"
    assert len(one.calls) == 1
    assert len(other.calls) == 1


async def test_static_provider_is_used_as_is_and_a_rejected_token_raises(
    secret_watch: set[str],
) -> None:
    secret_watch.add("static-token-value")
    script = Scripted(*([{"errcode": 40001, "errmsg": "invalid"}] * 2))
    provider = StaticTokenProvider("static-token-value")
    async with OfficialAccountClient(token_provider=provider, http_client=script.client()) as c:
        with pytest.raises(AccessTokenError):
            await c.kf_accounts.list()
    assert script.token_requests == []
    assert [r.url.params["access_token"] for r in script.requests] == ["static-token-value"] * 2
    assert "static-token-value" not in repr(provider)


async def test_cancelled_token_fetch_leaves_the_provider_usable() -> None:
    fetch = Fetcher("t1")
    provider = WeComTokenProvider("ww1", "secret", fetch=fetch)
    with anyio.move_on_after(0.001):
        await provider.get_token()
    assert await provider.get_token() == "t1"


def test_access_token_repr_hides_the_value() -> None:
    token = AccessToken(value="very-secret-token", expires_at=1.0)
    assert "very-secret-token" not in repr(token)
    assert "very-secret-token" not in str(token)


def test_providers_repr_shows_the_app_id_only() -> None:
    provider = OfficialAccountTokenProvider("wxapp", "the-secret", fetch=Fetcher("t"))
    wecom = WeComTokenProvider("ww1", "the-corpsecret", fetch=Fetcher("t"))
    assert "wxapp" in repr(provider)
    assert "the-secret" not in repr(provider)
    assert "the-corpsecret" not in repr(wecom)


@pytest.mark.parametrize("bad", ["", " ", "has space"])
def test_providers_refuse_blank_credentials(bad: str) -> None:
    with pytest.raises(ValueError):
        WeComTokenProvider(bad, "secret", fetch=Fetcher("t"))
    with pytest.raises(ValueError):
        OfficialAccountTokenProvider("wx", bad, fetch=Fetcher("t"))


@pytest.mark.parametrize("bad", ["", "   "])
def test_static_provider_refuses_a_blank_token(bad: str) -> None:
    with pytest.raises(ValueError):
        StaticTokenProvider(bad)


def _stable_forced(request: httpx.Request) -> bool:
    return request.url.path == "/cgi-bin/stable_token" and b"force_refresh" in request.content


@pytest.mark.parametrize(
    "reply",
    [
        {"errcode": -1, "errmsg": "system busy"},
        {"errcode": 45011, "errmsg": "minute quota"},
        httpx.Response(429),
        httpx.Response(502),
        httpx.ReadTimeout("lost"),
    ],
    ids=["busy", "45011", "429", "502", "read-timeout"],
)
async def test_a_forced_refresh_is_never_sent_again_by_the_retry_policy(
    secret_watch: set[str], reply: Reply
) -> None:
    secret_watch.add(SECRET)
    same = {"access_token": f"tok-same-{SECRET}", "expires_in": 7200}
    # The token is rejected; a normal fetch returns it again, so the provider forces once.
    script = Scripted(
        *[{"errcode": 40001, "errmsg": "invalid credential"}] * 3,
        token_replies=(same, same, reply),
    )
    async with OfficialAccountClient(
        "wx-forced-once", SECRET, http_client=script.client(), max_retries=3
    ) as client:
        with pytest.raises(WeChatError) as info:
            await client.kf_accounts.list()
    assert sum(_stable_forced(r) for r in script.requests) == 1
    assert not isinstance(info.value, CredentialError)  # a busy platform is no bad secret


@pytest.mark.parametrize("expires_in", [300, 120, 30])
async def test_a_token_that_arrives_with_less_than_the_margin_is_used_not_refetched_per_call(
    expires_in: int,
) -> None:
    clock, fetch = Clock(), Fetcher("t1", "t2", expires_in=expires_in)
    provider = WeComTokenProvider("ww-short", "secret", fetch=fetch, clock=clock)
    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(provider.get_token)
    for _ in range(50):
        assert await provider.get_token() == "t1"
    clock.now += expires_in * 0.85
    assert await provider.get_token() == "t1"
    assert len(fetch.calls) == 1
    clock.now += expires_in * 0.1  # shortly before it expires: replaced
    assert await provider.get_token() == "t2"
    assert len(fetch.calls) == 2


async def test_a_token_handed_out_again_with_what_it_has_left_costs_a_few_fetches() -> None:
    clock = Clock()
    issued_at = clock.now
    fetches: list[float] = []

    async def wecom_like(
        method: str, path: str, *, idempotent: bool, once: bool = False, **_: Any
    ) -> Mapping[str, Any]:
        # WeCom returns the same token while it is valid, with the time it has left.
        nonlocal issued_at
        fetches.append(clock.now)
        left = issued_at + 7200 - clock.now
        if left <= 0:
            issued_at, left = clock.now, 7200
        return {"access_token": f"tok-{issued_at}", "expires_in": left}

    provider = WeComTokenProvider("ww-left", "secret", fetch=wecom_like, clock=clock)
    for _ in range(7400):
        await provider.get_token()
        clock.now += 1.0
    assert 3 <= len(fetches) <= 7, fetches


@pytest.mark.parametrize(
    "expires_in",
    [0, -5, float("nan"), float("inf"), "7200", None, True, [7200]],
    ids=repr,
)
async def test_expires_in_that_is_not_a_finite_positive_number_is_an_invalid_response(
    secret_watch: set[str], expires_in: object
) -> None:
    secret_watch.add(SECRET)
    # Written by hand: WeChat's JSON may say NaN or Infinity, which httpx would refuse to write.
    body = json.dumps({"access_token": f"tok-x-{SECRET}", "expires_in": expires_in})
    script = Scripted(token_replies=(httpx.Response(200, content=body.encode()),))
    async with OfficialAccountClient(
        "wx", SECRET, http_client=script.client(), max_retries=0
    ) as client:
        with pytest.raises(InvalidResponseError) as info:
            await client.kf_accounts.list()
    assert "expires_in" in str(info.value)
    assert script.business_requests == []


async def test_a_missing_expires_in_is_an_invalid_response(secret_watch: set[str]) -> None:
    secret_watch.add(SECRET)
    script = Scripted(token_replies=({"access_token": f"tok-y-{SECRET}"},))
    async with OfficialAccountClient("wx", SECRET, http_client=script.client()) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()


def test_a_fresh_client_in_a_second_event_loop_can_force_a_refresh(anyio_backend: str) -> None:
    # Nothing of a forced refresh outlives its store: no process-wide record between runs.
    async def force_once() -> list[bool]:
        fetch = Fetcher("stuck", "stuck", "fresh")
        provider = OfficialAccountTokenProvider("wx-twice", "secret", fetch=fetch)
        await provider.get_token()
        await provider.invalidate("stuck")
        assert await provider.get_token() == "fresh"
        return fetch.forced

    assert anyio.run(force_once, backend=anyio_backend) == [False, False, True]
    assert anyio.run(force_once, backend=anyio_backend) == [False, False, True]


async def test_two_stores_ration_forced_refreshes_independently_and_one_store_once() -> None:
    async def forced(store: MemoryTokenStore) -> list[bool]:
        # Whatever the store holds gets rejected; a normal fetch hands the same token back.
        fetch = Fetcher("stuck", "stuck", "fresh")
        provider = OfficialAccountTokenProvider("wx-stores", "s", fetch=fetch, store=store)
        rejected = await provider.get_token()
        fetch.tokens = [rejected, "fresh"]
        await provider.invalidate(rejected)
        await provider.get_token()
        return fetch.forced

    shared = MemoryTokenStore()
    assert await forced(shared) == [False, False, True]
    assert await forced(shared) == [False]  # the same store within 30 s: no second force
    assert await forced(MemoryTokenStore()) == [False, False, True]  # another store: its own


async def test_a_wall_clock_stepping_back_does_not_block_forced_refreshes() -> None:
    wall, monotonic = Clock(), Clock()
    fetch = Fetcher("a", "a", "b", "b", "c")
    store = MemoryTokenStore(clock=monotonic)
    provider = OfficialAccountTokenProvider("wx-step", "s", fetch=fetch, clock=wall, store=store)
    await provider.get_token()
    await provider.invalidate("a")
    assert await provider.get_token() == "b"  # forced
    wall.now -= 3600  # NTP steps the wall clock back an hour
    monotonic.now += 31
    await provider.invalidate("b")
    assert await provider.get_token() == "c"  # forced again, 31 s later by the store's clock
    assert fetch.forced == [False, False, True, False, True]


async def test_a_rejected_token_lingering_in_the_store_is_never_taken_back(
    secret_watch: set[str],
) -> None:
    secret_watch.add(SECRET)
    issued: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            issued.append(f"tok-{len(issued) + 1}-{SECRET}")
            return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 7200})
        await anyio.sleep(0.03)
        if request.url.params["access_token"] == issued[0]:  # WeChat revoked the first one
            return httpx.Response(200, json={"errcode": 40014, "errmsg": "invalid access_token"})
        return httpx.Response(200, json={"errcode": 0, "servicer_list": []})

    class SlowToForget(MemoryTokenStore):
        """A shared store whose compare-and-delete lands a little late, as over a network."""

        async def invalidate(self, key: str, value: str) -> bool:
            await anyio.sleep(0.02)
            return await super().invalidate(key, value)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with (
        http,
        WeComClient("ww", SECRET, http_client=http, token_store=SlowToForget()) as client,
    ):
        await client.token_provider.get_token()

        async def later() -> None:
            await anyio.sleep(0.04)  # starts while the first call's rejection is being stored
            await client.servicers.list("wk")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(client.servicers.list, "wk")
                group.start_soon(later)
    secret_watch.update(issued)
    assert len(issued) == 2
