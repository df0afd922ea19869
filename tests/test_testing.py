"""FakeWeChat: each rule it enforces, each fault it injects, in-process and over a socket."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tests._servers import serve
from wechat_kf import (
    BatchError,
    OfficialAccountClient,
    TransportError,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat, instant_retries, sandbox

pytestmark = pytest.mark.anyio

OA = "https://api.weixin.qq.com"
WECOM = "https://qyapi.weixin.qq.com"


class Raw:
    """Talks to the fake with plain httpx, so the SDK's own checks do not get in the way."""

    def __init__(self, http: httpx.AsyncClient, fake: FakeWeChat) -> None:
        self.http = http
        self.fake = fake

    async def get(self, url: str, **params: Any) -> dict[str, Any]:
        response = await self.http.get(url, params=params)
        return dict(response.json())

    async def post(self, url: str, body: Any, **params: Any) -> dict[str, Any]:
        response = await self.http.post(url, json=body, params=params)
        return dict(response.json())

    async def oa_token(self) -> str:
        app = next(iter(self.fake.official_accounts.values()))
        body = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret}
        return str((await self.post(f"{OA}/cgi-bin/stable_token", body))["access_token"])

    async def wecom_token(self) -> str:
        app = next(iter(self.fake.wecom_apps.values()))
        answer = await self.get(
            f"{WECOM}/cgi-bin/gettoken", corpid=app.corpid, corpsecret=app.secret
        )
        return str(answer["access_token"])


@pytest.fixture
async def raw(fake: FakeWeChat, http: httpx.AsyncClient) -> Raw:
    fake.register_official_account()
    return Raw(http, fake)


# -- tokens --------------------------------------------------------------------------------------


async def test_stable_token_returns_the_same_token_while_valid(raw: Raw) -> None:
    assert await raw.oa_token() == await raw.oa_token()


async def test_forced_refresh_replaces_the_token_at_once_and_only_every_30_seconds(
    raw: Raw, fake: FakeWeChat
) -> None:
    app = next(iter(fake.official_accounts.values()))
    old = await raw.oa_token()
    body = {
        "grant_type": "client_credential",
        "appid": app.appid,
        "secret": app.secret,
        "force_refresh": True,
    }
    new = (await raw.post(f"{OA}/cgi-bin/stable_token", body))["access_token"]
    assert new != old
    rejected = await raw.get(f"{OA}/cgi-bin/customservice/getkflist", access_token=old)
    assert rejected["errcode"] == 40001
    assert (await raw.post(f"{OA}/cgi-bin/stable_token", body))["errcode"] == 45009
    fake.advance(31)
    assert "access_token" in await raw.post(f"{OA}/cgi-bin/stable_token", body)


async def test_classic_fetch_replaces_the_previous_token_after_a_grace_period(
    raw: Raw, fake: FakeWeChat
) -> None:
    app = next(iter(fake.official_accounts.values()))
    params = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret}
    first = (await raw.get(f"{OA}/cgi-bin/token", **params))["access_token"]
    second = (await raw.get(f"{OA}/cgi-bin/token", **params))["access_token"]
    assert first != second
    url = f"{OA}/cgi-bin/customservice/getkflist"
    assert "errcode" not in await raw.get(url, access_token=first)
    fake.advance(301)
    assert (await raw.get(url, access_token=first))["errcode"] == 42001
    assert "errcode" not in await raw.get(url, access_token=second)


async def test_tokens_expire_with_42001(raw: Raw, fake: FakeWeChat) -> None:
    token = await raw.oa_token()
    fake.advance(7200)
    answer = await raw.get(f"{OA}/cgi-bin/customservice/getkflist", access_token=token)
    assert answer["errcode"] == 42001


async def test_missing_and_unknown_tokens_are_refused(raw: Raw) -> None:
    url = f"{OA}/cgi-bin/customservice/getkflist"
    assert (await raw.get(url))["errcode"] == 41001
    assert (await raw.get(url, access_token="made-up"))["errcode"] == 40001


async def test_token_endpoints_check_the_credentials(raw: Raw, fake: FakeWeChat) -> None:
    app = fake.register_wecom_app("ww1")
    stable = f"{OA}/cgi-bin/stable_token"
    base = {"grant_type": "client_credential"}
    assert (await raw.post(stable, {**base, "appid": "nope", "secret": "x"}))["errcode"] == 40013
    oa_app = next(iter(fake.official_accounts))
    assert (await raw.post(stable, {**base, "appid": oa_app, "secret": "x"}))["errcode"] == 40125
    assert (await raw.post(stable, {"appid": oa_app}))["errcode"] == 40002
    gettoken = f"{WECOM}/cgi-bin/gettoken"
    assert (await raw.get(gettoken, corpsecret="x"))["errcode"] == 41002
    assert (await raw.get(gettoken, corpid="ww1"))["errcode"] == 41004
    assert (await raw.get(gettoken, corpid="ww9", corpsecret="x"))["errcode"] == 40013
    assert (await raw.get(gettoken, corpid="ww1", corpsecret="x"))["errcode"] == 40001
    assert "access_token" in await raw.get(gettoken, corpid="ww1", corpsecret=app.secret)


async def test_an_oa_token_is_not_a_wecom_token(raw: Raw, fake: FakeWeChat) -> None:
    fake.register_wecom_app()
    token = await raw.oa_token()
    answer = await raw.get(f"{WECOM}/cgi-bin/kf/servicer/list", access_token=token, open_kfid="x")
    assert answer["errcode"] == 40014


async def test_token_fetch_count_and_redacted_call_log(raw: Raw, fake: FakeWeChat) -> None:
    token = await raw.oa_token()
    await raw.get(f"{OA}/cgi-bin/customservice/getkflist", access_token=token)
    assert fake.token_fetches == 1
    assert fake.calls[0].json["secret"] == "<redacted>"
    assert fake.calls[1].params == {"access_token": "<redacted>"}
    assert token not in repr(fake.calls)


async def test_a_pull_s_callback_token_is_redacted_in_the_call_log(fake: FakeWeChat) -> None:
    corp = fake.register_wecom_app()
    open_kfid = fake.create_kf_account(corp.corpid)
    fake.customer_says(open_kfid, "wmC", "hi")
    sync_token = fake.latest_sync_token(open_kfid)
    assert sync_token
    async with httpx.AsyncClient(transport=fake.transport) as http:
        got = await http.get(
            f"{WECOM}/cgi-bin/gettoken", params={"corpid": corp.corpid, "corpsecret": corp.secret}
        )
        await http.post(
            f"{WECOM}/cgi-bin/kf/sync_msg",
            params={"access_token": got.json()["access_token"]},
            json={"open_kfid": open_kfid, "token": sync_token},
        )
    (pull,) = fake.calls_to("/cgi-bin/kf/sync_msg")
    assert pull.json["token"] == "<redacted>"
    assert pull.errcode == 0
    assert sync_token not in repr(fake.calls)


# -- kf accounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"kf_account": "bad", "nickname": "n"}, 65404),
        ({"kf_account": "toolongprefix@gh_fake", "nickname": "n"}, 65404),
        ({"kf_account": "a@gh_other", "nickname": "n"}, 65401),
        ({"kf_account": "a@gh_fake", "nickname": "x" * 17}, 65403),
        ({"kf_account": "a@gh_fake", "nickname": ""}, 65403),
    ],
)
async def test_kf_account_add_rules(raw: Raw, body: dict[str, Any], errcode: int) -> None:
    token = await raw.oa_token()
    answer = await raw.post(f"{OA}/customservice/kfaccount/add", body, access_token=token)
    assert answer["errcode"] == errcode
    assert "rid: " in answer["errmsg"]


async def test_at_most_100_kf_accounts_and_no_duplicates(raw: Raw) -> None:
    token = await raw.oa_token()
    url = f"{OA}/customservice/kfaccount/add"
    for i in range(100):
        body = {"kf_account": f"k{i}@gh_fake", "nickname": "n"}
        assert (await raw.post(url, body, access_token=token))["errcode"] == 0
    dup = await raw.post(url, {"kf_account": "k1@gh_fake", "nickname": "n"}, access_token=token)
    assert dup["errcode"] == 65406
    more = await raw.post(url, {"kf_account": "k100@gh_fake", "nickname": "n"}, access_token=token)
    assert more["errcode"] == 65405


async def test_legacy_get_delete_is_accepted(raw: Raw, fake: FakeWeChat) -> None:
    appid = next(iter(fake.official_accounts))
    fake.add_kf_account(appid, "a@gh_fake", "n")
    token = await raw.oa_token()
    url = f"{OA}/customservice/kfaccount/del"
    assert (await raw.get(url, access_token=token, kf_account="a@gh_fake"))["errcode"] == 0
    assert fake.kf_accounts(appid) == {}


async def test_invite_rules_and_acceptance(fake: FakeWeChat, oa: OfficialAccountClient) -> None:
    appid = next(iter(fake.official_accounts))
    await oa.kf_accounts.add("a@gh_fake", nickname="n")
    await oa.kf_accounts.invite_worker("a@gh_fake", invite_wx="wx_a")
    fake.accept_invite(appid, "a@gh_fake")
    (account,) = await oa.kf_accounts.list()
    assert (account.kf_wx, account.invite_status) == ("wx_a", None)
    with pytest.raises(Exception) as info:
        await oa.kf_accounts.invite_worker("a@gh_fake", invite_wx="wx_b")
    assert getattr(info.value, "errcode", None) == 65412


async def test_avatar_rules(raw: Raw, fake: FakeWeChat) -> None:
    appid = next(iter(fake.official_accounts))
    fake.add_kf_account(appid, "a@gh_fake", "n")
    token = await raw.oa_token()
    url = f"{OA}/customservice/kfaccount/uploadheadimg"
    params = {"access_token": token, "kf_account": "a@gh_fake"}
    wrong_field = await raw.http.post(url, params=params, files={"image": ("a.jpg", b"x")})
    assert wrong_field.json()["errcode"] == 40005
    big = await raw.http.post(
        url, params=params, files={"media": ("a.jpg", b"x" * (5 << 20) + b"!")}
    )
    assert big.json()["errcode"] == 40009
    ok = await raw.http.post(url, params=params, files={"media": ("a.jpg", b"\xff\xd8\xff")})
    assert ok.json()["errcode"] == 0


# -- servicers -----------------------------------------------------------------------------------


async def test_servicer_calls_take_at_most_100_ids_and_a_known_open_kfid(
    raw: Raw, fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    token = await raw.wecom_token()
    url = f"{WECOM}/cgi-bin/kf/servicer/add"
    many = {"open_kfid": corp[2], "userid_list": [f"u{i}" for i in range(101)]}
    assert (await raw.post(url, many, access_token=token))["errcode"] == 40058
    unknown = {"open_kfid": "wknope", "userid_list": ["u1"]}
    assert (await raw.post(url, unknown, access_token=token))["errcode"] == 95000
    empty = {"open_kfid": corp[2]}
    assert (await raw.post(url, empty, access_token=token))["errcode"] == 40058


async def test_servicer_cap_of_2000_per_account(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.add_members(corp[0], [f"m{i}" for i in range(2005)])
    result = await wc.servicers.add(corp[2], [f"m{i}" for i in range(2005)])
    assert len(result.succeeded) == 2000
    assert {i.errcode for i in result.failed} == {95005}
    assert len(fake.servicers(corp[2])) == 2000


async def test_servicer_departments_capped_at_20_and_must_exist(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    result = await wc.servicers.add(corp[2], department_ids=[*range(1, 22), 999])
    codes = [i.errcode for i in result.items]
    assert codes[:20] == [0] * 20
    assert codes[20:] == [95005, 60003]


async def test_kf_account_list_pages(raw: Raw, fake: FakeWeChat) -> None:
    app = fake.register_wecom_app()
    for i in range(5):
        fake.create_kf_account(app.corpid, f"kf{i}")
    token = await raw.wecom_token()
    url = f"{WECOM}/cgi-bin/kf/account/list"
    page = await raw.post(url, {"offset": 3, "limit": 2}, access_token=token)
    assert [a["name"] for a in page["account_list"]] == ["kf3", "kf4"]
    assert (await raw.post(url, {"offset": 0, "limit": 0}, access_token=token))["errcode"] == 40058


async def test_unknown_path_is_a_404(raw: Raw) -> None:
    response = await raw.http.get(f"{OA}/cgi-bin/nothing")
    assert response.status_code == 404


# -- faults --------------------------------------------------------------------------------------


async def test_busy_rate_answers_minus_one(raw: Raw, fake: FakeWeChat) -> None:
    fake.faults.busy_rate = 1.0
    assert (await raw.get(f"{OA}/cgi-bin/customservice/getkflist"))["errcode"] == -1


async def test_http_error_rate_answers_502(raw: Raw, fake: FakeWeChat) -> None:
    fake.faults.http_error_rate = 1.0
    response = await raw.http.get(f"{OA}/cgi-bin/customservice/getkflist")
    assert response.status_code == 502


async def test_drop_rate_drops_the_connection_before_applying(raw: Raw, fake: FakeWeChat) -> None:
    token = await raw.oa_token()
    fake.faults.drop_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        await raw.post(
            f"{OA}/customservice/kfaccount/add",
            {"kf_account": "a@gh_fake", "nickname": "n"},
            access_token=token,
        )
    assert fake.kf_accounts(next(iter(fake.official_accounts))) == {}


async def test_drop_after_rate_applies_then_drops(raw: Raw, fake: FakeWeChat) -> None:
    token = await raw.oa_token()
    fake.faults.drop_after_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        await raw.post(
            f"{OA}/customservice/kfaccount/add",
            {"kf_account": "a@gh_fake", "nickname": "n"},
            access_token=token,
        )
    assert list(fake.kf_accounts(next(iter(fake.official_accounts)))) == ["a@gh_fake"]


async def test_http_error_after_rate_applies_then_answers_the_chosen_status(
    raw: Raw, fake: FakeWeChat
) -> None:
    token = await raw.oa_token()
    fake.faults.http_error_after_rate = 1.0
    fake.faults.http_error_status = 504
    response = await raw.http.post(
        f"{OA}/customservice/kfaccount/add",
        json={"kf_account": "a@gh_fake", "nickname": "n"},
        params={"access_token": token},
    )
    assert response.status_code == 504
    assert list(fake.kf_accounts(next(iter(fake.official_accounts)))) == ["a@gh_fake"]
    assert fake.calls[-1].status == 504


async def test_stall_rate_applies_then_never_answers_until_the_client_gives_up(
    raw: Raw, fake: FakeWeChat
) -> None:
    token = await raw.oa_token()
    fake.faults.stall_rate = 1.0
    with anyio.move_on_after(0.2) as scope:
        await raw.post(
            f"{OA}/customservice/kfaccount/add",
            {"kf_account": "a@gh_fake", "nickname": "n"},
            access_token=token,
        )
    assert scope.cancelled_caught
    assert list(fake.kf_accounts(next(iter(fake.official_accounts)))) == ["a@gh_fake"]
    assert fake.calls[-1].stalled
    assert not fake.calls[-1].delivered_ok


async def test_a_stalled_answer_over_loopback_ends_at_the_clients_timeout() -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    with serve(fake.app) as base_url:
        async with OfficialAccountClient(
            app.appid, app.secret, base_url=base_url, timeout=0.3, max_retries=0
        ) as client:
            await client.kf_accounts.list()
            fake.faults.stall_rate = 1.0
            with anyio.fail_after(5), pytest.raises(TransportError) as info:
                await client.kf_accounts.add("a@gh_fake", nickname="n")
            fake.faults.stall_rate = 0.0
            assert [a.kf_account for a in await client.kf_accounts.list()] == ["a@gh_fake"]
    assert info.value.maybe_applied


async def test_revoke_every_n_calls(raw: Raw, fake: FakeWeChat) -> None:
    token = await raw.oa_token()
    fake.faults.revoke_every = 3
    url = f"{OA}/cgi-bin/customservice/getkflist"
    answers = [(await raw.get(url, access_token=token)).get("errcode") for _ in range(3)]
    assert answers == [None, None, 40001]


async def test_latency_range_delays_each_call(raw: Raw, fake: FakeWeChat) -> None:
    fake.faults.latency = (0.05, 0.06)
    started = anyio.current_time()
    await raw.get(f"{OA}/cgi-bin/customservice/getkflist")
    assert anyio.current_time() - started >= 0.05


async def test_faults_are_reproducible_for_a_seed() -> None:
    async def run(seed: int) -> list[int | None]:
        fake = FakeWeChat(seed=seed)
        fake.faults.busy_rate = 0.5
        async with httpx.AsyncClient(transport=fake.transport) as http:
            for _ in range(40):
                await http.get(f"{OA}/cgi-bin/customservice/getkflist")
        return [call.errcode for call in fake.calls]

    assert await run(5) == await run(5)
    assert await run(5) != await run(6)


async def test_under_every_fault_each_id_has_one_outcome_matching_the_fakes_state(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.faults.busy_rate = 0.2
    fake.faults.http_error_rate = 0.05
    fake.faults.drop_after_rate = 0.05
    fake.faults.revoke_every = 7
    ids = [f"u{i}" for i in range(1000)]
    unprocessed: list[str] = []
    try:
        result = await wc.servicers.add(corp[2], ids)
    except BatchError as exc:
        result, unprocessed = exc.result, exc.unprocessed_userids
    processed = [item.userid for item in result.items]
    assert sorted(processed + unprocessed) == sorted(ids)
    applied = set(fake.servicers(corp[2]))
    succeeded = {item.userid for item in result.succeeded}
    # what succeeded is applied; what is unprocessed may have been applied before a lost answer
    assert succeeded <= applied <= succeeded | set(unprocessed)
    assert len(result.succeeded) + len(unprocessed) >= 900


# -- over a real socket --------------------------------------------------------------------------


async def test_the_sdk_drives_the_fake_over_loopback(secret_watch: set[str]) -> None:
    box = sandbox()
    with serve(box.fake.app) as base_url:
        async with OfficialAccountClient(box.appid, box.oa_secret, base_url=base_url) as oa:
            await oa.kf_accounts.add("new@gh_sandbox", nickname="n")
            accounts = await oa.kf_accounts.list()
        async with WeComClient(box.corpid, box.wecom_secret, base_url=base_url) as wc:
            result = await wc.servicers.add(box.open_kfid, box.members[:250])
    secret_watch.update([box.oa_secret, box.wecom_secret, *box.fake.issued_tokens()])
    assert "new@gh_sandbox" in [a.kf_account for a in accounts]
    assert result.ok
    assert len(box.fake.servicers(box.open_kfid)) == 250


async def test_dropped_connections_over_loopback_are_retried_for_idempotent_calls(
    secret_watch: set[str],
) -> None:
    box = sandbox()
    with serve(box.fake.app) as base_url:
        async with WeComClient(box.corpid, box.wecom_secret, base_url=base_url) as wc:
            await wc.servicers.list(box.open_kfid)
            box.fake.faults.drop_after_rate = 1.0
            with pytest.raises(TransportError) as info:
                await wc.servicers.list(box.open_kfid)
            box.fake.faults.drop_after_rate = 0.0
            assert await wc.servicers.list(box.open_kfid) == []
    secret_watch.update([box.wecom_secret, *box.fake.issued_tokens()])
    assert info.value.maybe_applied
    assert len(box.fake.calls_to("/cgi-bin/kf/servicer/list")) == 1 + 4 + 1


# -- instant retries and seeding -------------------------------------------------------------


async def test_the_autouse_fixture_pattern_reaches_async_tests_on_every_backend() -> None:
    from wechat_kf.clients import DEFAULT_RETRY_BACKOFF

    assert DEFAULT_RETRY_BACKOFF.get() == 0


def busy_then_ok(busy: int) -> httpx.MockTransport:
    answers = iter([{"errcode": -1, "errmsg": "system busy"}] * busy)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "t" * 40, "expires_in": 7200})
        return httpx.Response(200, json=next(answers, {"errcode": 0, "servicer_list": []}))

    return httpx.MockTransport(handler)


async def retry_delays(caplog: pytest.LogCaptureFixture, **options: Any) -> list[float]:
    caplog.clear()
    async with (
        httpx.AsyncClient(transport=busy_then_ok(2)) as http,
        WeComClient("ww", "secret", http_client=http, **options) as wc,
    ):
        assert await wc.servicers.list("wkOPEN") == []
    return [r.args[-1] for r in caplog.records if "retrying in" in r.msg]  # type: ignore[index]


async def test_instant_retries_keeps_every_attempt_and_drops_only_the_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from wechat_kf.clients import DEFAULT_RETRY_BACKOFF

    caplog.set_level("WARNING", logger="wechat_kf")
    outside = DEFAULT_RETRY_BACKOFF.set(1.0)  # as if the suite's fixture were not there
    try:
        assert all(0.05 <= delay <= 0.4 for delay in await retry_delays(caplog))
        with instant_retries():
            assert await retry_delays(caplog) == [0.0, 0.0]
        assert DEFAULT_RETRY_BACKOFF.get() == 1.0
        assert len(await retry_delays(caplog)) == 2
    finally:
        DEFAULT_RETRY_BACKOFF.reset(outside)


async def test_a_clients_own_retry_backoff_wins_over_the_context_either_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from wechat_kf.clients import DEFAULT_RETRY_BACKOFF

    caplog.set_level("WARNING", logger="wechat_kf")
    assert await retry_delays(caplog, retry_backoff=0) == [0.0, 0.0]
    outside = DEFAULT_RETRY_BACKOFF.set(1.0)
    try:
        assert await retry_delays(caplog, retry_backoff=0) == [0.0, 0.0]
    finally:
        DEFAULT_RETRY_BACKOFF.reset(outside)
    # Inside instant retries (the suite's fixture), a client that asks for waits gets them.
    assert all(0.05 <= delay <= 0.4 for delay in await retry_delays(caplog, retry_backoff=1))
    with pytest.raises(ValueError, match="retry_backoff"):
        WeComClient("ww", "secret", retry_backoff=-1)


async def test_seeded_servicers_are_what_the_api_lists(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.add_servicers(corp[2], ["u1", "newcomer"], [4, 31])
    listed = await wc.servicers.list(corp[2])
    assert [(s.userid, s.department_id) for s in listed] == [
        ("u1", None), ("newcomer", None), (None, 4), (None, 31)
    ]  # fmt: skip
    assert "newcomer" in fake.corps[corp[0]].members
    assert fake.servicer_departments(corp[2]) == [4, 31]


async def test_a_raw_download_takes_the_faults_like_a_json_answer(
    raw: Raw, fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    media_id = fake.store_media(corp[0], b"\x89PNG fake bytes", filename="a.png")
    params = {"access_token": await raw.wecom_token(), "media_id": media_id}
    fake.faults.http_error_after_rate = 1.0
    replaced = await raw.http.get(f"{WECOM}/cgi-bin/media/get", params=params)
    assert (replaced.status_code, fake.calls[-1].status) == (502, 502)
    fake.faults.http_error_after_rate = 0.0
    fake.faults.stall_rate = 1.0
    with anyio.move_on_after(0.2) as scope:
        await raw.http.get(f"{WECOM}/cgi-bin/media/get", params=params)
    assert scope.cancelled_caught
    fake.faults.stall_rate = 0.0
    served = await raw.http.get(f"{WECOM}/cgi-bin/media/get", params=params)
    assert served.content == b"\x89PNG fake bytes"
    assert served.headers["content-type"] == "image/png"


async def test_multipart_parts_keep_their_filename_and_content_type(
    raw: Raw, fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    params = {"access_token": await raw.wecom_token(), "type": "voice"}
    files = {"media": ("hello.amr", b"#!AMR\n voice", "audio/amr")}
    answer = await raw.http.post(f"{WECOM}/cgi-bin/media/upload", params=params, files=files)
    media = fake.corps[corp[0]].media[answer.json()["media_id"]]
    assert (media.filename, media.content_type, media.type) == ("hello.amr", "audio/amr", "voice")
    assert media.content == b"#!AMR\n voice"


# -- the public names ----------------------------------------------------------------------------


def test_no_public_name_of_the_fake_shadows_a_public_name_of_the_sdk() -> None:
    import wechat_kf
    import wechat_kf.testing

    assert set(wechat_kf.testing.__all__).isdisjoint(wechat_kf.__all__)
    assert wechat_kf.testing.WeComSentMessage is not wechat_kf.SentMessage
    assert not hasattr(wechat_kf.testing, "SentMessage")


# -- the sandbox -------------------------------------------------------------------------------


def test_the_sandbox_seeds_as_many_members_as_asked() -> None:
    box = sandbox(members=3)
    assert box.members == ["user0001", "user0002", "user0003"]
    assert box.seeded_members == 3
    assert box.member(box.seeded_members) == "user0003"
    assert len(sandbox().members) == 1000


@pytest.mark.parametrize(
    ("members", "error"), [(0, ValueError), (True, TypeError), ("5", TypeError)]
)
def test_the_sandbox_refuses_a_member_count_it_cannot_seed(
    members: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="members"):
        sandbox(members=members)
