"""Third-party platforms: authorizer and corp tokens fetched through the component and suite tokens,
refreshed and shared like the apps' own, against FakeWeChat's platform endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import ClientClosedError, CredentialError, MemoryTokenStore, WeChatError
from wechat_kf.callbacks import ComponentVerifyTicket
from wechat_kf.platforms import OpenPlatform, PlatformTicketError, ServiceProvider
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

COMPONENT = "/cgi-bin/component/api_component_token"
AUTHORIZER = "/cgi-bin/component/api_authorizer_token"
SUITE = "/cgi-bin/service/get_suite_token"
CORP = "/cgi-bin/service/get_corp_token"


@pytest.fixture
async def http(fake: FakeWeChat) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport) as client:
        yield client


@pytest.fixture
def component(fake: FakeWeChat) -> Any:
    state = fake.register_open_platform()
    fake.push_verify_ticket(state.component_appid)
    return state


def platform(fake: FakeWeChat, component: Any, http: httpx.AsyncClient, **options: Any) -> Any:
    def latest() -> str | None:  # what a callback stored: always the newest ticket
        return fake.open_platforms[component.component_appid].ticket

    options.setdefault("verify_ticket", latest)
    return OpenPlatform(
        component.component_appid, component.component_appsecret, http_client=http, **options
    )


def successes(fake: FakeWeChat, path: str) -> int:
    return len([c for c in fake.calls_to(path) if c.delivered_ok])


async def test_an_authorizer_client_calls_with_a_token_fetched_through_the_component_token(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    fake.add_kf_account("wxauthorizer0001", "a@gh_fake", "客服")
    async with platform(fake, component, http) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token=refresh)
        accounts = await oa.kf_accounts.list()
    assert [a.kf_account for a in accounts] == ["a@gh_fake"]
    assert (successes(fake, COMPONENT), successes(fake, AUTHORIZER)) == (1, 1)
    sent = fake.calls_to(AUTHORIZER)[0]
    assert sent.json["authorizer_refresh_token"] == "<redacted>"
    assert sent.params["component_access_token"] == "<redacted>"


async def test_many_authorizers_share_one_component_token_and_one_pool(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    appids = [f"wxauthorizer000{i}" for i in range(3)]
    refresh = {a: fake.authorize(component.component_appid, a) for a in appids}
    fake.faults.token_latency = 0.02  # every caller finds the caches cold together
    async with platform(fake, component, http) as p:
        clients = [p.official_account(a, refresh_token=refresh[a]) for a in appids for _ in "ab"]
        async with anyio.create_task_group() as group:
            for client in clients:
                for _ in range(10):
                    group.start_soon(client.kf_accounts.list)
        pools = {id(c._transport._exchange._http) for c in clients}
    assert pools == {id(http)}
    assert successes(fake, COMPONENT) == 1
    assert successes(fake, AUTHORIZER) == 3


async def test_ticket_sources_may_be_async_and_no_ticket_is_a_clear_error(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    none_yet: list[str | None] = [None]

    async def stored() -> str | None:
        return none_yet[0]

    async with platform(fake, component, http, verify_ticket=stored) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token=refresh)
        with pytest.raises(PlatformTicketError, match="component_verify_ticket"):
            await oa.kf_accounts.list()
        assert fake.calls_to(COMPONENT) == []  # nothing sent without a ticket
        none_yet[0] = fake.open_platforms[component.component_appid].ticket
        await oa.kf_accounts.list()


async def test_an_expired_ticket_is_refused_and_the_next_pushed_one_works(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    async with platform(fake, component, http) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token=refresh)
        fake.advance(13 * 3600)  # no ticket pushed for 13 hours
        with pytest.raises(CredentialError) as info:
            await oa.kf_accounts.list()
        assert info.value.errcode == 61006
        fake.push_verify_ticket(component.component_appid)
        await oa.kf_accounts.list()


async def test_a_refresh_token_that_comes_back_new_is_saved_and_used_next(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    first = fake.authorize(component.component_appid, "wxauthorizer0001")
    fake.rotate_refresh_tokens = True
    saved: list[str] = []

    async def save(token: str) -> None:
        saved.append(token)

    async with platform(fake, component, http) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token=first, save_refresh_token=save)
        await oa.kf_accounts.list()
        fake.revoke_tokens()
        fake.push_verify_ticket(component.component_appid)
        await oa.kf_accounts.list()  # the rotated refresh token, not the first, is used
    current = fake.open_platforms[component.component_appid].refresh_tokens["wxauthorizer0001"]
    assert len(saved) == 2
    assert saved[-1] == current
    assert first not in saved


async def test_an_invalid_refresh_token_is_a_credential_error_61023(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    fake.authorize(component.component_appid, "wxauthorizer0001")
    async with platform(fake, component, http) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token="refreshtoken@@@stale")
        with pytest.raises(CredentialError) as info:
            await oa.kf_accounts.list()
    assert info.value.errcode == 61023
    assert successes(fake, AUTHORIZER) == 0


async def test_a_component_token_the_endpoint_rejects_is_replaced_once(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    async with platform(fake, component, http) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token=refresh)
        await oa.kf_accounts.list()
        fake.revoke_tokens()  # WeChat drops both: the business call and the fetch are refused
        await oa.kf_accounts.list()
    refused = [c for c in fake.calls_to(AUTHORIZER) if c.errcode == 40001]
    assert len(refused) == 1
    assert successes(fake, COMPONENT) == 2
    assert successes(fake, AUTHORIZER) == 2


async def test_a_service_provider_acts_for_an_authorised_corp(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    suite = fake.register_service_provider()
    fake.push_suite_ticket(suite.suite_id)
    code = fake.authorize_corp(suite.suite_id, "wwcustomer00001")
    fake.add_members("wwcustomer00001", ["alice", "bob"])
    open_kfid = fake.create_kf_account("wwcustomer00001")

    def latest() -> str | None:
        return fake.service_providers[suite.suite_id].ticket

    async with ServiceProvider(
        suite.suite_id, suite.suite_secret, suite_ticket=latest, http_client=http
    ) as sp:
        wc = sp.wecom("wwcustomer00001", permanent_code=code)
        result = await wc.servicers.add(open_kfid, ["alice", "bob"])
        wrong = sp.wecom("wwother00000001", permanent_code="not-the-code")
        with pytest.raises(CredentialError) as info:
            await wrong.servicers.list(open_kfid)
    assert result.ok
    assert set(fake.servicers(open_kfid)) == {"alice", "bob"}
    assert info.value.errcode == 40084
    assert (successes(fake, SUITE), successes(fake, CORP)) == (1, 1)


async def test_an_expired_suite_ticket_is_refused(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    suite = fake.register_service_provider()
    ticket = fake.push_suite_ticket(suite.suite_id)
    code = fake.authorize_corp(suite.suite_id, "wwcustomer00001")
    fake.advance(13 * 3600)
    async with ServiceProvider(
        suite.suite_id, suite.suite_secret, suite_ticket=ticket, http_client=http
    ) as sp:
        with pytest.raises(CredentialError) as info:
            await sp.wecom("wwcustomer00001", permanent_code=code).servicers.list("wk1")
    assert info.value.errcode == 40085


async def test_closing_a_client_leaves_the_platform_and_its_other_clients_working(
    fake: FakeWeChat, component: Any
) -> None:
    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    http = httpx.AsyncClient(transport=fake.transport)
    p = OpenPlatform(
        component.component_appid,
        component.component_appsecret,
        verify_ticket=component.ticket,
        http_client=http,
    )
    first = p.official_account("wxauthorizer0001", refresh_token=refresh)
    second = p.official_account("wxauthorizer0001", refresh_token=refresh)
    await first.aclose()
    assert first.closed
    await second.kf_accounts.list()
    await p.aclose()
    with pytest.raises(WeChatError):
        await second.kf_accounts.list()
    assert not http.is_closed  # the caller's pool is the caller's to close
    await http.aclose()


async def test_bad_arguments_are_refused_before_any_request(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    with pytest.raises(TypeError):
        OpenPlatform("wxc", "secret", verify_ticket=42, http_client=http)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OpenPlatform("", "secret", verify_ticket="t", http_client=http)
    async with platform(fake, component, http) as p:
        with pytest.raises(TypeError):
            p.official_account("wxa", refresh_token=None)  # type: ignore[arg-type]
    assert fake.calls == []


async def test_platform_token_fetches_reach_the_hooks(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    fetches: list[Any] = []

    class Hook:
        def on_token_fetch(self, fetch: Any) -> None:
            fetches.append((fetch.platform, fetch.app_id, fetch.reason))

    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    async with platform(fake, component, http, hooks=[Hook()]) as p:
        await p.official_account("wxauthorizer0001", refresh_token=refresh).kf_accounts.list()
    assert fetches == [
        ("oa", "wxauthorizer0001", "cold"),
        ("component", component.component_appid, "cold"),
    ]


# -- across processes, on a real redis-server --------------------------------------------------


def test_four_processes_of_one_platform_fetch_one_component_and_one_authorizer_token() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tests._redis import redis_server
    from tests._servers import serve

    fake = FakeWeChat()
    state = fake.register_open_platform()
    ticket = fake.push_verify_ticket(state.component_appid)
    refresh = fake.authorize(state.component_appid, "wxauthorizer0001")
    fake.faults.token_latency = 0.2  # a slow fetch, so all four processes find the store cold
    root = Path(__file__).resolve().parent.parent
    with redis_server() as redis_url, serve(fake.app) as base_url:
        command = [
            sys.executable, "-m", "tests._platform_worker", "--base-url", base_url,
            "--redis-url", redis_url, f"--component-appid={state.component_appid}",
            f"--component-secret={state.component_appsecret}", f"--ticket={ticket}",
            "--authorizer", "wxauthorizer0001", f"--refresh-token={refresh}",
        ]  # fmt: skip
        workers = [
            subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(4)
        ]
        results = [
            json.loads(w.communicate(timeout=60)[0].strip().splitlines()[-1]) for w in workers
        ]
    assert [r["ok"] for r in results] == [50] * 4, results
    assert successes(fake, COMPONENT) == 1
    assert successes(fake, AUTHORIZER) == 1


def test_two_processes_sharing_a_store_and_a_refresh_token_source_keep_up_with_rotations(
    tmp_path: Any,
) -> None:
    # Each process in turn meets a revoked token and fetches; each fetch rotates the refresh
    # token, saved to the one source both read. A process that preferred its own copy of an
    # earlier rotation would present a retired token (61023).
    import json
    import subprocess
    import sys
    from pathlib import Path

    from redis import Redis

    from tests._redis import redis_server
    from tests._servers import serve

    fake = FakeWeChat()
    fake.rotate_refresh_tokens = True
    state = fake.register_open_platform()
    ticket = fake.push_verify_ticket(state.component_appid)
    source = tmp_path / "refresh_token"
    source.write_text(fake.authorize(state.component_appid, "wxauthorizer0001"))
    root = Path(__file__).resolve().parent.parent
    with redis_server() as redis_url, serve(fake.app) as base_url:
        redis = Redis.from_url(redis_url)
        command = [
            sys.executable, "-m", "tests._platform_worker", "--base-url", base_url,
            "--redis-url", redis_url, f"--component-appid={state.component_appid}",
            f"--component-secret={state.component_appsecret}", f"--ticket={ticket}",
            "--authorizer", "wxauthorizer0001", "--refresh-file", str(source), "--rounds", "3",
        ]  # fmt: skip
        workers = [
            subprocess.Popen(
                command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outcomes = []
        try:
            for round_ in range(6):
                worker = workers[round_ % 2]
                assert worker.stdin is not None
                assert worker.stdout is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
                outcomes.append(json.loads(worker.stdout.readline())["outcome"])
                # Every token gone, here and in the store: the next round fetches anew.
                fake.revoke_tokens()
                redis.flushdb()
        finally:
            for worker in workers:
                worker.communicate(timeout=30)
            redis.close()
    assert outcomes == ["ok"] * 6
    assert successes(fake, AUTHORIZER) == 6
    assert all(c.errcode != 61023 for c in fake.calls_to(AUTHORIZER))
    assert (
        source.read_text()
        == fake.open_platforms[state.component_appid].refresh_tokens["wxauthorizer0001"]
    )


async def test_the_sandbox_and_the_fake_server_seed_a_platform_and_a_service_provider() -> None:
    from wechat_kf.testing import sandbox

    box = sandbox()
    async with (
        httpx.AsyncClient(transport=box.fake.transport) as http,
        OpenPlatform(
            box.component_appid,
            box.component_appsecret,
            verify_ticket=box.verify_ticket,
            http_client=http,
        ) as p,
        ServiceProvider(
            box.suite_id, box.suite_secret, suite_ticket=box.suite_ticket, http_client=http
        ) as sp,
    ):
        oa = p.official_account(box.appid, refresh_token=box.authorizer_refresh_token)
        assert len(await oa.kf_accounts.list()) == 2
        wc = sp.wecom(box.corpid, permanent_code=box.permanent_code)
        assert await wc.servicers.list(box.open_kfid) == []


# -- refresh tokens: never re-sent once they may have rotated; read at every fetch -------------


async def test_an_authorizer_fetch_whose_answer_is_lost_is_never_sent_again(exchange: str) -> None:
    from tests._wire import WireConn, WireRequest, WireServer, response
    from wechat_kf import TransportError

    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path == COMPONENT:
            conn.send(response(200, {"component_access_token": "ct" * 10, "expires_in": 7200}))
        else:  # WeChat applied it (rotating the refresh token) and the answer never came back
            conn.close()

    with WireServer(script) as server:
        async with OpenPlatform(
            "wxcomponent01",
            "component-secret-0001",
            verify_ticket="ticket-0001",
            base_url=server.url,
            exchange=exchange,
            max_retries=3,
        ) as p:
            oa = p.official_account("wxauthorizer01", refresh_token="refresh-0001")
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await oa.kf_accounts.list()
    assert len(server.requests_to(AUTHORIZER)) == 1
    assert info.value.maybe_applied
    assert "api_get_authorizer_info" in str(info.value)


async def test_a_retired_refresh_token_says_how_to_recover(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    fake.authorize(component.component_appid, "wxauthorizer0001")
    async with platform(fake, component, http) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token="refreshtoken@@@retired")
        with pytest.raises(CredentialError) as info:
            await oa.kf_accounts.list()
    assert info.value.errcode == 61023
    assert "api_get_authorizer_info" in str(info.value)
    assert "authorise" in str(info.value)


async def test_a_new_refresh_token_for_a_known_authorizer_replaces_the_old_one(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    good = fake.authorize(component.component_appid, "wxauthorizer0001")
    async with platform(fake, component, http) as p:
        wrong = p.official_account("wxauthorizer0001", refresh_token="refreshtoken@@@retired")
        with pytest.raises(CredentialError):
            await wrong.kf_accounts.list()
        # The account authorised the platform again: its new refresh token is the one used.
        right = p.official_account("wxauthorizer0001", refresh_token=good)
        assert await right.kf_accounts.list() == []


async def test_asking_again_with_the_first_refresh_token_keeps_the_rotation_learnt(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    first = fake.authorize(component.component_appid, "wxauthorizer0001")
    fake.rotate_refresh_tokens = True
    async with platform(fake, component, http) as p:
        await p.official_account("wxauthorizer0001", refresh_token=first).kf_accounts.list()
        fake.revoke_tokens()  # the next call must fetch again, with the rotated refresh token
        again = p.official_account("wxauthorizer0001", refresh_token=first)
        assert await again.kf_accounts.list() == []


async def test_the_refresh_token_source_is_read_at_every_fetch_even_after_a_rotation(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    # One source of refresh tokens, two providers (as two processes would have): each rotation
    # one makes is saved there, and the other presents it next.
    shared = [fake.authorize(component.component_appid, "wxauthorizer0001")]
    fake.rotate_refresh_tokens = True

    def save(token: str) -> None:
        shared[0] = token

    async with platform(fake, component, http) as first, platform(fake, component, http) as second:
        clients = [
            p.official_account("wxauthorizer0001", refresh_token=lambda: shared[0],
                               save_refresh_token=save)
            for p in (first, second)
        ]  # fmt: skip
        for round_ in range(4):
            await clients[round_ % 2].kf_accounts.list()
            fake.revoke_tokens()
    assert successes(fake, AUTHORIZER) == 4
    # Never the retired one (the other calls met a revoked component token and were re-sent).
    assert all(c.errcode != 61023 for c in fake.calls_to(AUTHORIZER))


@pytest.mark.parametrize(
    "rest",
    [{}, {"expires_in": "7200"}, {"authorizer_access_token": ""}],
    ids=["no-expiry", "string-expiry", "empty-token"],
)
async def test_a_rotated_refresh_token_is_saved_even_when_the_rest_of_the_answer_is_refused(
    rest: dict[str, Any],
) -> None:
    from tests._wire import WireConn, WireRequest, WireServer, response
    from wechat_kf import InvalidResponseError

    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path == COMPONENT:
            conn.send(response(200, {"component_access_token": "ct" * 10, "expires_in": 7200}))
        else:
            body = {"authorizer_access_token": "at" * 10, "authorizer_refresh_token": "new-0002"}
            conn.send(response(200, {**body, **rest}))

    saved: list[str] = []
    with WireServer(script) as server:
        async with OpenPlatform(
            "wxcomponent01", "component-secret-0001", verify_ticket="ticket-0001",
            base_url=server.url, exchange="httpx",
        ) as p:  # fmt: skip
            oa = p.official_account(
                "wxauthorizer01", refresh_token="refresh-0001", save_refresh_token=saved.append
            )
            with anyio.fail_after(10), pytest.raises(InvalidResponseError):
                await oa.kf_accounts.list()
    assert saved == ["new-0002"]


async def test_a_token_that_is_not_printable_ascii_is_an_invalid_response_not_a_crash() -> None:
    from tests._wire import WireConn, WireRequest, WireServer, response
    from wechat_kf import InvalidResponseError, WeComClient

    def script(request: WireRequest, conn: WireConn) -> None:
        body = b'{"access_token": "tok\\ud800", "expires_in": 7200}'
        conn.send(response(200, body))

    with WireServer(script) as server:
        async with WeComClient("ww", "s", base_url=server.url, exchange="httpx") as wc:
            with anyio.fail_after(10), pytest.raises(InvalidResponseError) as info:
                await wc.servicers.list("wk")
    assert "\ud800" not in repr(info.value) + str(info.value)


def test_a_half_built_platform_has_a_repr() -> None:
    assert "OpenPlatform" in repr(OpenPlatform.__new__(OpenPlatform))
    assert "ServiceProvider" in repr(ServiceProvider.__new__(ServiceProvider))


# -- tickets saved by the callback, read by every process ---------------------------------------


async def test_a_saved_verify_ticket_feeds_a_platform_made_without_one(
    fake: FakeWeChat, component: Any, http: httpx.AsyncClient
) -> None:
    refresh = fake.authorize(component.component_appid, "wxauthorizer0001")
    store = MemoryTokenStore()
    options = {"token_store": store, "http_client": http}
    async with OpenPlatform(
        component.component_appid, component.component_appsecret, **options
    ) as p:
        oa = p.official_account("wxauthorizer0001", refresh_token=refresh)
        with pytest.raises(PlatformTicketError, match="save_verify_ticket"):
            await oa.kf_accounts.list()
        assert fake.calls_to(COMPONENT) == []  # nothing sent without a ticket
        with pytest.raises(ValueError, match="not"):  # a ticket of another platform
            await p.save_verify_ticket(SimpleNamespace(component_appid="wxother", ticket="t"))
        pushed = ComponentVerifyTicket(
            component.component_appid, component.ticket, datetime.now(timezone.utc)
        )
        await p.save_verify_ticket(pushed)  # what CallbackCrypto.decrypt hands the callback
        assert await oa.kf_accounts.list() == []


async def test_a_saved_suite_ticket_feeds_a_provider_made_without_one(fake: FakeWeChat) -> None:
    suite = fake.register_service_provider()
    ticket = fake.push_suite_ticket(suite.suite_id)
    code = fake.authorize_corp(suite.suite_id, "wwcorp0001")
    kfid = fake.create_kf_account("wwcorp0001")
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        ServiceProvider(suite.suite_id, suite.suite_secret, http_client=http) as sp,
    ):
        wc = sp.wecom("wwcorp0001", permanent_code=code)
        with pytest.raises(PlatformTicketError, match="save_suite_ticket"):
            await wc.servicers.list(kfid)
        await sp.save_suite_ticket(ticket)
        assert await wc.servicers.list(kfid) == []
        with pytest.raises(ValueError):
            await sp.save_suite_ticket("has space")


def test_a_ticket_saved_by_one_process_is_used_by_anothers_next_component_fetch() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    from redis.asyncio import Redis

    from tests._redis import redis_server
    from tests._servers import serve
    from wechat_kf.stores import RedisTokenStore

    fake = FakeWeChat()
    state = fake.register_open_platform()
    ticket = fake.push_verify_ticket(state.component_appid)
    refresh = fake.authorize(state.component_appid, "wxauthorizer0001")
    root = Path(__file__).resolve().parent.parent
    with redis_server() as redis_url, serve(fake.app) as base_url:

        async def save() -> None:  # the process whose callback received the push
            redis = Redis.from_url(redis_url)
            store = RedisTokenStore(redis, prefix="platform")
            async with OpenPlatform(
                state.component_appid, state.component_appsecret, token_store=store,
                base_url=base_url,
            ) as platform:  # fmt: skip
                await platform.save_verify_ticket(ticket)
            await redis.aclose()

        anyio.run(save)
        command = [
            sys.executable, "-m", "tests._platform_worker", "--base-url", base_url,
            "--redis-url", redis_url, f"--component-appid={state.component_appid}",
            f"--component-secret={state.component_appsecret}", "--authorizer", "wxauthorizer0001",
            f"--refresh-token={refresh}", "--calls", "5",
        ]  # fmt: skip
        worker = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=60)
    result = json.loads(worker.stdout.strip().splitlines()[-1])
    assert result == {"ok": 5, "errors": []}, worker.stderr
    sent = fake.calls_to(COMPONENT)
    assert [c.delivered_ok for c in sent] == [True]


async def test_a_platform_opens_and_closes_with_async_with() -> None:
    async with OpenPlatform("wxcomponent00001", "s" * 32, verify_ticket="t") as platform:
        assert not platform.closed
    assert platform.closed
    async with ServiceProvider("wwsuite000000001", "s" * 32, suite_ticket="t") as provider:
        client = provider.wecom("wwcorp", permanent_code="code")
    assert provider.closed
    assert client.closed
    with pytest.raises(ClientClosedError):
        async with platform:
            pass
