"""wc.kf_accounts: list (every WeCom 微信客服 account, read page by page), add, update, delete
and contact_way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from tests._scripted import SECRET, Scripted
from wechat_kf import (
    APIError,
    InvalidResponseError,
    OpenKfidError,
    TransportError,
    WeComClient,
    WeComKfAccount,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

Corp = tuple[str, str, str]
PATH = "/cgi-bin/kf/account/list"
ADD = "/cgi-bin/kf/account/add"
UPDATE = "/cgi-bin/kf/account/update"
DELETE = "/cgi-bin/kf/account/del"
CONTACT_WAY = "/cgi-bin/kf/add_contact_way"


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


# add, update, delete, contact_way: the exact requests, the answers, the errcodes, what is re-sent


@pytest.fixture
def script(secret_watch: set[str]) -> Scripted:
    secret_watch.add(SECRET)  # every token the script issues contains it
    return Scripted()


@asynccontextmanager
async def wecom(script: Scripted, **options: Any) -> AsyncIterator[WeComClient]:
    async with (
        script.client() as http,
        WeComClient("ww", SECRET, http_client=http, **options) as wc,
    ):
        with anyio.fail_after(20):
            yield wc


def sent(script: Scripted) -> list[tuple[str, str, Any]]:
    return [(r.method, r.url.path, json.loads(r.content)) for r in script.business_requests]


LOST = [httpx.Response(502), httpx.RemoteProtocolError("Server disconnected")]


async def test_add_sends_name_and_media_id_and_returns_the_open_kfid(script: Scripted) -> None:
    script.business.append({"errcode": 0, "errmsg": "ok", "open_kfid": "wkNEW"})
    async with wecom(script) as wc:
        assert await wc.kf_accounts.add("售后客服", media_id="MEDIA_1") == "wkNEW"
    assert sent(script) == [("POST", ADD, {"name": "售后客服", "media_id": "MEDIA_1"})]


async def test_add_accepts_16_characters(script: Scripted) -> None:
    script.business.append({"open_kfid": "wk"})
    async with wecom(script) as wc:
        await wc.kf_accounts.add("一二三四五六七八九十一二三四五六", media_id="m")
    assert len(script.business_requests) == 1


@pytest.mark.parametrize("failure", LOST)
async def test_add_is_never_sent_twice_after_a_lost_answer(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.extend([failure, {"open_kfid": "wkSECOND"}])
    async with wecom(script) as wc:
        with pytest.raises(TransportError) as info:
            await wc.kf_accounts.add("客服", media_id="m")
    assert info.value.maybe_applied is True
    assert len(script.business_requests) == 1


@pytest.mark.parametrize("errcode", [95027, 95005, 95006, 40007])
async def test_a_refused_add_raises_its_errcode(script: Scripted, errcode: int) -> None:
    script.business.append({"errcode": errcode, "errmsg": "refused, hint: [h-1]"})
    async with wecom(script) as wc:
        with pytest.raises(APIError) as info:
            await wc.kf_accounts.add("客服", media_id="m")
    assert (info.value.errcode, info.value.path, info.value.rid) == (errcode, ADD, "h-1")
    assert len(script.business_requests) == 1


@pytest.mark.parametrize("answer", [{"errcode": 0}, {"open_kfid": ""}, {"open_kfid": 1}])
async def test_an_add_answer_without_an_open_kfid_is_an_invalid_response(
    script: Scripted, answer: dict[str, Any]
) -> None:
    script.business.append(answer)
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError, match="open_kfid"):
            await wc.kf_accounts.add("客服", media_id="m")


@pytest.mark.parametrize(
    ("kwargs", "payload"),
    [
        ({"name": "售后"}, {"open_kfid": "wk1", "name": "售后"}),
        ({"media_id": "M2"}, {"open_kfid": "wk1", "media_id": "M2"}),
        (
            {"name": "售后", "media_id": "M2"},
            {"open_kfid": "wk1", "name": "售后", "media_id": "M2"},
        ),
    ],
)
async def test_update_sends_only_what_is_given(
    script: Scripted, kwargs: dict[str, str], payload: dict[str, str]
) -> None:
    async with wecom(script) as wc:
        assert await wc.kf_accounts.update("wk1", **kwargs) is None
    assert sent(script) == [("POST", UPDATE, payload)]


@pytest.mark.parametrize("failure", LOST)
async def test_update_is_sent_again_after_a_lost_answer(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.append(failure)
    async with wecom(script) as wc:
        await wc.kf_accounts.update("wk1", name="n")
    assert [body for _, _, body in sent(script)] == [{"open_kfid": "wk1", "name": "n"}] * 2


async def test_delete_sends_the_open_kfid(script: Scripted) -> None:
    async with wecom(script) as wc:
        assert await wc.kf_accounts.delete("wk1") is None
    assert sent(script) == [("POST", DELETE, {"open_kfid": "wk1"})]


@pytest.mark.parametrize("failure", LOST)
async def test_delete_is_sent_again_after_a_lost_answer(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.append(failure)
    async with wecom(script) as wc:
        await wc.kf_accounts.delete("wk1")
    assert len(script.business_requests) == 2


async def test_a_retried_delete_that_finds_the_account_gone_raises_open_kfid_error(
    script: Scripted,
) -> None:
    # The first attempt may have deleted it; the SDK cannot tell that from a wrong open_kfid.
    script.business.extend([httpx.Response(502), {"errcode": 95004, "errmsg": "not found"}])
    async with wecom(script) as wc:
        with pytest.raises(OpenKfidError) as info:
            await wc.kf_accounts.delete("wk1")
    assert info.value.errcode == 95004
    assert len(script.business_requests) == 2


@pytest.mark.parametrize(
    ("call", "args", "kwargs"),
    [
        ("update", ("wkX",), {"name": "n"}),
        ("delete", ("wkX",), {}),
        ("contact_way", ("wkX",), {}),
    ],
)
@pytest.mark.parametrize("errcode", [95000, 95004])
async def test_an_unknown_open_kfid_raises_open_kfid_error(
    script: Scripted, call: str, args: tuple[str], kwargs: dict[str, str], errcode: int
) -> None:
    script.business.append({"errcode": errcode, "errmsg": "invalid open_kfid"})
    async with wecom(script) as wc:
        with pytest.raises(OpenKfidError) as info:
            await getattr(wc.kf_accounts, call)(*args, **kwargs)
    assert info.value.errcode == errcode
    assert len(script.business_requests) == 1


URL = "https://work.weixin.qq.com/kfid/kfcXYZ?enc_scene=ENC%2Bab==&x=1"


@pytest.mark.parametrize(
    ("scene", "payload"),
    [
        (None, {"open_kfid": "wk1"}),
        ("", {"open_kfid": "wk1"}),
        ("web01", {"open_kfid": "wk1", "scene": "web01"}),
        ("a-Z_9" * 6 + "ab", {"open_kfid": "wk1", "scene": "a-Z_9" * 6 + "ab"}),
    ],
)
async def test_contact_way_sends_the_scene_and_returns_the_url_unchanged(
    script: Scripted, scene: str | None, payload: dict[str, str]
) -> None:
    script.business.append({"errcode": 0, "errmsg": "ok", "url": URL})
    async with wecom(script) as wc:
        assert await wc.kf_accounts.contact_way("wk1", scene=scene) == URL
    assert sent(script) == [("POST", CONTACT_WAY, payload)]


@pytest.mark.parametrize("failure", LOST)
async def test_contact_way_is_sent_again_after_a_lost_answer(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.extend([failure, {"url": URL}])
    async with wecom(script) as wc:
        assert await wc.kf_accounts.contact_way("wk1", scene="s") == URL
    assert len(script.business_requests) == 2


@pytest.mark.parametrize("answer", [{"errcode": 0}, {"url": ""}, {"url": ["u"]}])
async def test_a_contact_way_answer_without_a_url_is_an_invalid_response(
    script: Scripted, answer: dict[str, Any]
) -> None:
    script.business.append(answer)
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError, match="url"):
            await wc.kf_accounts.contact_way("wk1")


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception]]] = [
    ("empty name", "add", ("",), {"media_id": "m"}, ValueError),
    ("17 characters", "add", ("x" * 17,), {"media_id": "m"}, ValueError),
    ("blank name", "add", ("   ",), {"media_id": "m"}, ValueError),
    ("name not str", "add", (7,), {"media_id": "m"}, TypeError),
    ("name not UTF-8", "add", ("\ud800",), {"media_id": "m"}, ValueError),
    ("empty media_id", "add", ("n",), {"media_id": ""}, ValueError),
    ("spaced media_id", "add", ("n",), {"media_id": "a b"}, ValueError),
    ("media_id not str", "add", ("n",), {"media_id": None}, TypeError),
    ("nothing to update", "update", ("wk1",), {}, ValueError),
    ("update empty name", "update", ("wk1",), {"name": ""}, ValueError),
    ("update long name", "update", ("wk1",), {"name": "x" * 17}, ValueError),
    ("update bad media_id", "update", ("wk1",), {"media_id": " "}, ValueError),
    ("update bad open_kfid", "update", ("wk 1",), {"name": "n"}, ValueError),
    ("delete empty", "delete", ("",), {}, ValueError),
    ("delete not str", "delete", (None,), {}, TypeError),
    ("contact bad open_kfid", "contact_way", ("\twk",), {}, ValueError),
    ("33-char scene", "contact_way", ("wk1",), {"scene": "s" * 33}, ValueError),
    ("spaced scene", "contact_way", ("wk1",), {"scene": "a b"}, ValueError),
    ("non-ASCII scene", "contact_way", ("wk1",), {"scene": "场景"}, ValueError),
    ("dotted scene", "contact_way", ("wk1",), {"scene": "a.b"}, ValueError),
    ("scene not str", "contact_way", ("wk1",), {"scene": 1}, TypeError),
]


@pytest.mark.parametrize(
    ("call", "args", "kwargs", "exc"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
async def test_bad_arguments_raise_before_any_request(
    script: Scripted,
    call: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    exc: type[Exception],
) -> None:
    async with wecom(script) as wc:
        with pytest.raises(exc):
            await getattr(wc.kf_accounts, call)(*args, **kwargs)
    assert script.requests == []
