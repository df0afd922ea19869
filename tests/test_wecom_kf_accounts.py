"""wc.kf_accounts.list: every WeCom 微信客服 account, read page by page."""

from __future__ import annotations

import httpx
import pytest

from wechat_kf import InvalidResponseError, WeComClient, WeComKfAccount
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

Corp = tuple[str, str, str]
PATH = "/cgi-bin/kf/account/list"


@pytest.mark.parametrize("extra", [0, 99, 199, 250])
async def test_list_returns_every_account_in_order_reading_pages_of_100(
    fake: FakeWeChat, wc: WeComClient, corp: Corp, extra: int
) -> None:
    opened = [corp[2]]
    for i in range(extra):
        opened.append(fake.create_kf_account(corp[0], f"客服{i}", avatar=f"https://a/{i}"))
    accounts = await wc.kf_accounts.list()
    assert [a.open_kfid for a in accounts] == opened
    assert accounts[0] == WeComKfAccount(corp[2], "客服", "", True)
    if extra:
        assert accounts[-1].name == f"客服{extra - 1}"
        assert accounts[-1].avatar.endswith(f"/{extra - 1}")
    pages = [call.json for call in fake.calls_to(PATH)]
    assert pages == [{"offset": 100 * i, "limit": 100} for i in range(len(opened) // 100 + 1)]


async def test_an_account_this_app_cannot_manage_says_so(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.create_kf_account(corp[0], "theirs", open_kfid="wkTHEIRS", manage_privilege=False)
    accounts = {a.open_kfid: a for a in await wc.kf_accounts.list()}
    assert accounts["wkTHEIRS"].manage_privilege is False


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"open_kfid": "wk1", "manage_privilege": 1}, WeComKfAccount("wk1", manage_privilege=True)),
        (
            {"open_kfid": "wk1", "manage_privilege": 0},
            WeComKfAccount("wk1", manage_privilege=False),
        ),
        ({"open_kfid": "wk1"}, WeComKfAccount("wk1")),
    ],
)
async def test_flags_sent_as_0_or_1_and_missing_fields_are_read(
    item: dict[str, object], expected: WeComKfAccount
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "t" * 40, "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 0, "account_list": [item]})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        WeComClient("ww", "secret", http_client=http) as wc,
    ):
        assert await wc.kf_accounts.list() == [expected]


@pytest.mark.parametrize(
    "item", [{"open_kfid": "wk1", "manage_privilege": "yes"}, {"name": "no id"}, "wk1"]
)
async def test_an_item_of_another_shape_is_an_invalid_response(item: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "t" * 40, "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 0, "account_list": [item]})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        WeComClient("ww", "secret", http_client=http) as wc,
    ):
        with pytest.raises(InvalidResponseError):
            await wc.kf_accounts.list()


async def test_a_server_that_never_stops_answering_full_pages_is_cut_off() -> None:
    full = [{"open_kfid": f"wk{i}"} for i in range(100)]
    pages = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal pages
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "t" * 40, "expires_in": 7200})
        pages += 1
        return httpx.Response(200, json={"errcode": 0, "account_list": full})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        WeComClient("ww", "secret", http_client=http) as wc,
    ):
        with pytest.raises(InvalidResponseError, match="full pages"):
            await wc.kf_accounts.list()
    assert pages == 1000


@pytest.mark.parametrize(
    "payload",
    [{"offset": 0, "limit": 0}, {"offset": 0, "limit": 101}, {"offset": -1, "limit": 10},
     {"offset": "0", "limit": 10}, {"offset": 0, "limit": True}],
)  # fmt: skip
async def test_the_fake_refuses_page_limits_wechat_refuses(
    fake: FakeWeChat, http: httpx.AsyncClient, corp: Corp, payload: dict[str, object]
) -> None:
    host = "https://qyapi.weixin.qq.com"
    credentials = {"corpid": corp[0], "corpsecret": corp[1]}
    token = (await http.get(f"{host}/cgi-bin/gettoken", params=credentials)).json()
    answer = await http.post(
        f"{host}{PATH}", params={"access_token": token["access_token"]}, json=payload
    )
    assert answer.json()["errcode"] == 40058
