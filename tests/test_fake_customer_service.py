"""FakeWeChat's rest of customer service, driven with raw JSON over plain httpx (the SDK's own
checks never get in the way): WeCom accounts, media, sessions, customers, sync_msg, send_msg
and send_msg_on_event; Official Account sessions, records, custom messages and typing. Each
test proves one rule of wechat-api.md sections 7 and 9, or a choice the fake documents."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tests._servers import serve
from wechat_kf.testing import DUPLICATE_MSGID, INVALID_EVENT_CODE, FakeWeChat

pytestmark = pytest.mark.anyio

OA = "https://api.weixin.qq.com"
WECOM = "https://qyapi.weixin.qq.com"
CUSTOMER = "wmCUSTOMER0001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Wire:
    """Raw requests to the fake with a token of the one WeCom app or Official Account."""

    def __init__(self, http: httpx.AsyncClient, fake: FakeWeChat) -> None:
        self.http = http
        self.fake = fake
        self._tokens: dict[str, str] = {}

    async def token(self, platform: str) -> str:
        if platform not in self._tokens:
            if platform == "wecom":
                app = next(iter(self.fake.wecom_apps.values()))
                params = {"corpid": app.corpid, "corpsecret": app.secret}
                answer = (await self.http.get(f"{WECOM}/cgi-bin/gettoken", params=params)).json()
            else:
                oa = next(iter(self.fake.official_accounts.values()))
                body = {"grant_type": "client_credential", "appid": oa.appid, "secret": oa.secret}
                answer = (await self.http.post(f"{OA}/cgi-bin/stable_token", json=body)).json()
            self._tokens[platform] = answer["access_token"]
        return self._tokens[platform]

    async def wecom(self, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        """POST ``body`` as JSON (GET when it is None) to a WeCom path."""
        params["access_token"] = await self.token("wecom")
        if body is None:
            response = await self.http.get(WECOM + path, params=params)
        else:
            response = await self.http.post(WECOM + path, json=body, params=params)
        return dict(response.json())

    async def oa(self, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        """POST ``body`` as JSON (GET when it is None) to an Official Account path."""
        params["access_token"] = await self.token("oa")
        if body is None:
            response = await self.http.get(OA + path, params=params)
        else:
            response = await self.http.post(OA + path, json=body, params=params)
        return dict(response.json())

    async def upload(
        self, content: bytes, type: str = "image", filename: str = "a.png", ctype: str = "image/png"
    ) -> dict[str, Any]:
        params = {"access_token": await self.token("wecom"), "type": type}
        files = {"media": (filename, content, ctype)}
        response = await self.http.post(f"{WECOM}/cgi-bin/media/upload", params=params, files=files)
        return dict(response.json())

    async def send(self, open_kfid: str, msgtype: str = "text", **extra: Any) -> dict[str, Any]:
        content = extra.pop("content", {"content": "您好"})
        body = {"touser": CUSTOMER, "open_kfid": open_kfid, "msgtype": msgtype, msgtype: content}
        return await self.wecom("/cgi-bin/kf/send_msg", {**body, **extra})

    async def sync(self, open_kfid: str, **body: Any) -> dict[str, Any]:
        return await self.wecom("/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid, **body})


@pytest.fixture
def kf(fake: FakeWeChat) -> str:
    """A WeCom app, members zhangsan (a servicer of the account), lisi (a servicer who stopped)
    and wangwu (no servicer), and one 微信客服 account: its open_kfid."""
    app = fake.register_wecom_app()
    fake.add_members(app.corpid, ["zhangsan", "lisi", "wangwu"])
    open_kfid = fake.create_kf_account(app.corpid, "售后")
    fake.add_servicers(open_kfid, ["zhangsan", "lisi"])
    fake.corps[app.corpid].kf_accounts[open_kfid].servicers["lisi"] = 1
    return open_kfid


@pytest.fixture
def wire(fake: FakeWeChat, http: httpx.AsyncClient) -> Wire:
    """Raw requests, with tokens that outlive every advance of the clock in these tests."""
    fake.register_official_account()
    fake.token_ttl = 30 * 86400
    return Wire(http, fake)


def corpid_of(fake: FakeWeChat) -> str:
    return next(iter(fake.corps))


# -- every request -------------------------------------------------------------------------------

WECOM_JSON_PATHS = [
    "/cgi-bin/kf/account/add",
    "/cgi-bin/kf/account/del",
    "/cgi-bin/kf/account/update",
    "/cgi-bin/kf/add_contact_way",
    "/cgi-bin/kf/service_state/get",
    "/cgi-bin/kf/service_state/trans",
    "/cgi-bin/kf/customer/batchget",
    "/cgi-bin/kf/sync_msg",
    "/cgi-bin/kf/send_msg",
    "/cgi-bin/kf/send_msg_on_event",
]


@pytest.mark.parametrize("path", WECOM_JSON_PATHS)
async def test_a_body_that_is_not_a_json_object_is_40058(wire: Wire, kf: str, path: str) -> None:
    token = await wire.token("wecom")
    for content in (b"not json", b"[1, 2]"):
        answer = await wire.http.post(WECOM + path, content=content, params={"access_token": token})
        assert answer.json()["errcode"] == 40058


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/cgi-bin/kf/account/add", {"name": "n"}),
        ("/cgi-bin/kf/account/del", {}),
        ("/cgi-bin/kf/service_state/get", {"external_userid": CUSTOMER}),
        ("/cgi-bin/kf/service_state/trans", {"external_userid": CUSTOMER, "service_state": 1}),
        ("/cgi-bin/kf/customer/batchget", {}),
        ("/cgi-bin/kf/sync_msg", {}),
        ("/cgi-bin/kf/send_msg", {"touser": CUSTOMER, "msgtype": "text", "text": {"content": "x"}}),
        ("/cgi-bin/kf/send_msg_on_event", {"msgtype": "text", "text": {"content": "x"}}),
    ],
)
async def test_a_missing_required_field_is_40058(
    wire: Wire, kf: str, path: str, body: dict[str, Any]
) -> None:
    assert (await wire.wecom(path, body))["errcode"] == 40058


# -- media ---------------------------------------------------------------------------------------


async def test_media_upload_answers_type_media_id_and_created_at_as_a_string(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    answer = await wire.upload(PNG)
    assert answer["errcode"] == 0
    assert answer["type"] == "image"
    assert answer["created_at"] == str(int(fake.now()))


async def test_media_get_answers_the_raw_bytes_with_their_type_and_filename(
    wire: Wire, kf: str
) -> None:
    media_id = (await wire.upload(b"%PDF-1.4 report", "file", "报告 2024.pdf", "application/pdf"))[
        "media_id"
    ]
    token = await wire.token("wecom")
    params = {"access_token": token, "media_id": media_id}
    response = await wire.http.get(f"{WECOM}/cgi-bin/media/get", params=params)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.4 report"
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A%202024.pdf" in disposition


async def test_media_get_of_an_unknown_media_is_a_json_40007(wire: Wire, kf: str) -> None:
    answer = await wire.wecom("/cgi-bin/media/get", media_id="3nope")
    assert answer["errcode"] == 40007


async def test_media_expire_after_3_days(wire: Wire, kf: str, fake: FakeWeChat) -> None:
    media_id = (await wire.upload(PNG))["media_id"]
    token = await wire.token("wecom")
    params = {"access_token": token, "media_id": media_id}
    fake.advance(3 * 86400 - 10)
    response = await wire.http.get(f"{WECOM}/cgi-bin/media/get", params=params)
    assert response.content == PNG
    fake.advance(11)
    assert (await wire.wecom("/cgi-bin/media/get", media_id=media_id))["errcode"] == 40007
    add = await wire.wecom("/cgi-bin/kf/account/add", {"name": "n", "media_id": media_id})
    assert add["errcode"] == 40007


@pytest.mark.parametrize(
    ("kind", "size", "errcode"),
    [
        ("image", (10 << 20) + 1, 40009),
        ("voice", (2 << 20) + 1, 40006),
        ("video", (10 << 20) + 1, 40011),
        ("file", (20 << 20) + 1, 40006),
        ("image", 5, 40006),
    ],
)
async def test_media_upload_sizes_are_enforced(
    wire: Wire, kf: str, kind: str, size: int, errcode: int
) -> None:
    assert (await wire.upload(b"x" * size, kind))["errcode"] == errcode
    assert (await wire.upload(b"x" * (size - 1 if size > 5 else 6), kind))["errcode"] == 0


async def test_media_upload_of_a_bad_type_is_40005_and_without_a_media_part_40004(
    wire: Wire, kf: str
) -> None:
    assert (await wire.upload(PNG, "gif"))["errcode"] == 40005
    params = {"access_token": await wire.token("wecom"), "type": "image"}
    files = {"image": ("a.png", PNG, "image/png")}
    response = await wire.http.post(f"{WECOM}/cgi-bin/media/upload", params=params, files=files)
    assert response.json()["errcode"] == 40004


async def test_a_downloaded_file_can_be_dropped_by_the_fault_injection(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    media_id = (await wire.upload(PNG))["media_id"]
    token = await wire.token("wecom")
    fake.faults.drop_after_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        await wire.http.get(
            f"{WECOM}/cgi-bin/media/get", params={"access_token": token, "media_id": media_id}
        )
    assert fake.calls[-1].dropped


async def test_a_downloaded_file_over_loopback_keeps_its_bytes_and_headers(
    fake: FakeWeChat,
) -> None:
    app = fake.register_wecom_app()
    media_id = fake.store_media(app.corpid, PNG, filename="logo.png", content_type="image/png")
    with serve(fake.app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            params = {"corpid": app.corpid, "corpsecret": app.secret}
            token = (await http.get("/cgi-bin/gettoken", params=params)).json()["access_token"]
            params = {"access_token": token, "media_id": media_id}
            with anyio.fail_after(10):
                response = await http.get("/cgi-bin/media/get", params=params)
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'attachment; filename="logo.png"'


# -- kf accounts ---------------------------------------------------------------------------------


async def test_each_account_add_makes_a_new_account_listed_with_its_name(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    media_id = (await wire.upload(PNG))["media_id"]
    first = await wire.wecom("/cgi-bin/kf/account/add", {"name": "售前", "media_id": media_id})
    second = await wire.wecom("/cgi-bin/kf/account/add", {"name": "售前", "media_id": media_id})
    assert first["open_kfid"] != second["open_kfid"]
    listed = await wire.wecom("/cgi-bin/kf/account/list", {"offset": 0, "limit": 100})
    names = {a["open_kfid"]: a["name"] for a in listed["account_list"]}
    assert names[first["open_kfid"]] == names[second["open_kfid"]] == "售前"


@pytest.mark.parametrize("name", ["", "x" * 17, 5])
async def test_account_add_refuses_a_bad_name_with_95006(wire: Wire, kf: str, name: Any) -> None:
    media_id = (await wire.upload(PNG))["media_id"]
    answer = await wire.wecom("/cgi-bin/kf/account/add", {"name": name, "media_id": media_id})
    assert answer["errcode"] == 95006


async def test_account_add_needs_a_media_the_fake_stored(wire: Wire, kf: str) -> None:
    answer = await wire.wecom("/cgi-bin/kf/account/add", {"name": "n", "media_id": "3made-up"})
    assert answer["errcode"] == 40007


async def test_an_unverified_corp_has_at_most_10_accounts(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    corpid = corpid_of(fake)
    fake.set_corp_verified(corpid, False)
    media_id = fake.store_media(corpid)
    body = {"name": "n", "media_id": media_id}
    answers = [(await wire.wecom("/cgi-bin/kf/account/add", body))["errcode"] for _ in range(10)]
    assert answers == [0] * 9 + [95027]  # the fixture's account is the first of the 10


async def test_a_corp_has_at_most_5000_accounts(wire: Wire, kf: str, fake: FakeWeChat) -> None:
    corpid = corpid_of(fake)
    for i in range(4998):
        fake.create_kf_account(corpid, f"kf{i}")
    body = {"name": "n", "media_id": fake.store_media(corpid)}
    assert (await wire.wecom("/cgi-bin/kf/account/add", body))["errcode"] == 0
    assert (await wire.wecom("/cgi-bin/kf/account/add", body))["errcode"] == 95005


async def test_account_del_then_del_again_is_95004_and_a_malformed_id_95000(
    wire: Wire, kf: str
) -> None:
    assert (await wire.wecom("/cgi-bin/kf/account/del", {"open_kfid": kf}))["errcode"] == 0
    assert (await wire.wecom("/cgi-bin/kf/account/del", {"open_kfid": kf}))["errcode"] == 95004
    malformed = await wire.wecom("/cgi-bin/kf/account/del", {"open_kfid": "has space"})
    assert malformed["errcode"] == 95000


async def test_account_update_needs_a_name_or_a_media_and_applies_them(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/kf/account/update"
    assert (await wire.wecom(url, {"open_kfid": kf}))["errcode"] == 40058
    assert (await wire.wecom(url, {"open_kfid": kf, "name": "x" * 17}))["errcode"] == 95006
    media_id = fake.store_media(corpid_of(fake), PNG + b"new")
    answer = await wire.wecom(url, {"open_kfid": kf, "name": "新名", "media_id": media_id})
    assert answer["errcode"] == 0
    account = fake.corps[corpid_of(fake)].kf_accounts[kf]
    assert (account.name, account.media_id) == ("新名", media_id)


async def test_contact_way_answers_an_opaque_url_and_checks_the_scene(wire: Wire, kf: str) -> None:
    url = "/cgi-bin/kf/add_contact_way"
    plain = await wire.wecom(url, {"open_kfid": kf})
    assert plain["url"].startswith("https://work.weixin.qq.com/kfid/kfc")
    with_scene = await wire.wecom(url, {"open_kfid": kf, "scene": "web_01-a"})
    assert "enc_scene=" in with_scene["url"]
    assert "web_01-a" not in with_scene["url"]
    for scene in ("x" * 33, "中文", "a b"):
        assert (await wire.wecom(url, {"open_kfid": kf, "scene": scene}))["errcode"] == 40058


# -- session states ------------------------------------------------------------------------------


async def test_service_state_of_a_customer_who_wrote_is_0_and_of_a_stranger_40096(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/kf/service_state/get"
    assert (await wire.wecom(url, {"open_kfid": kf, "external_userid": "wmX"}))["errcode"] == 40096
    fake.customer_says(kf, CUSTOMER, "在吗")
    answer = await wire.wecom(url, {"open_kfid": kf, "external_userid": CUSTOMER})
    assert answer["service_state"] == 0
    assert "servicer_userid" not in answer
    missing = await wire.wecom(url, {"open_kfid": "wkGONE", "external_userid": CUSTOMER})
    assert missing["errcode"] == 95004


ALLOWED = {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 3), (3, 4)}


@pytest.mark.parametrize(("old", "new"), [(o, n) for o in range(5) for n in range(5)])
async def test_state_transitions_follow_the_documented_table_else_95016(
    wire: Wire, kf: str, fake: FakeWeChat, old: int, new: int
) -> None:
    fake.customer_says(kf, CUSTOMER)
    fake.set_session_state(kf, CUSTOMER, old, "zhangsan" if old == 3 else None)
    body = {"open_kfid": kf, "external_userid": CUSTOMER, "service_state": new}
    if new == 3:
        body["servicer_userid"] = "zhangsan"
    answer = await wire.wecom("/cgi-bin/kf/service_state/trans", body)
    assert answer["errcode"] == (0 if (old, new) in ALLOWED else 95016)
    assert fake.session_state(kf, CUSTOMER) == (new if (old, new) in ALLOWED else old)


async def test_a_msg_code_comes_with_the_pool_the_pool_to_human_and_the_end(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, CUSTOMER)
    url = "/cgi-bin/kf/service_state/trans"
    base = {"open_kfid": kf, "external_userid": CUSTOMER}
    to_pool = await wire.wecom(url, {**base, "service_state": 2})
    to_human = await wire.wecom(url, {**base, "service_state": 3, "servicer_userid": "zhangsan"})
    again = await wire.wecom(url, {**base, "service_state": 3, "servicer_userid": "zhangsan"})
    ended = await wire.wecom(url, {**base, "service_state": 4})
    assert all("msg_code" in a for a in (to_pool, to_human, ended))
    assert "msg_code" not in again
    fake.customer_says(kf, CUSTOMER)  # reopens the ended session at 0
    direct = await wire.wecom(url, {**base, "service_state": 1})
    assert "msg_code" not in direct
    state = await wire.wecom("/cgi-bin/kf/service_state/get", base)
    assert state["service_state"] == 1


@pytest.mark.parametrize(
    ("servicer", "errcode"),
    [(None, 40058), ("nobody", 60111), ("wangwu", 95014), ("lisi", 95019), ("ZhangSan", 0)],
)
async def test_state_3_needs_a_serving_servicer_of_the_account(
    wire: Wire, kf: str, fake: FakeWeChat, servicer: str | None, errcode: int
) -> None:
    fake.customer_says(kf, CUSTOMER)
    body: dict[str, Any] = {"open_kfid": kf, "external_userid": CUSTOMER, "service_state": 3}
    if servicer is not None:
        body["servicer_userid"] = servicer
    assert (await wire.wecom("/cgi-bin/kf/service_state/trans", body))["errcode"] == errcode
    if errcode == 0:
        state = await wire.wecom(
            "/cgi-bin/kf/service_state/get", {"open_kfid": kf, "external_userid": CUSTOMER}
        )
        assert (state["service_state"], state["servicer_userid"]) == (3, "zhangsan")


# -- customers -----------------------------------------------------------------------------------


async def test_batchget_resolves_customers_who_wrote_in_the_last_48_hours(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, "wmOLD")
    fake.advance(47 * 3600)
    fake.customer_enters(kf, CUSTOMER, scene="web01", scene_param="order=42")
    fake.advance(2 * 3600)
    url = "/cgi-bin/kf/customer/batchget"
    body = {"external_userid_list": [CUSTOMER, "wmOLD", "wmNEVER"]}
    answer = await wire.wecom(url, {**body, "need_enter_session_context": 1})
    (customer,) = answer["customer_list"]
    assert customer["external_userid"] == CUSTOMER
    assert customer["nickname"] == fake.customers[CUSTOMER].nickname
    assert set(customer) >= {"avatar", "gender", "unionid"}
    context = customer["enter_session_context"]
    assert (context["scene"], context["scene_param"]) == ("web01", "order=42")
    assert answer["invalid_external_userid"] == ["wmOLD", "wmNEVER"]
    without = await wire.wecom(url, body)
    assert "enter_session_context" not in without["customer_list"][0]


async def test_batchget_takes_1_to_100_ids(wire: Wire, kf: str) -> None:
    url = "/cgi-bin/kf/customer/batchget"
    assert (await wire.wecom(url, {"external_userid_list": []}))["errcode"] == 40058
    many = {"external_userid_list": [f"wm{i}" for i in range(101)]}
    assert (await wire.wecom(url, many))["errcode"] == 40058
    hundred = {"external_userid_list": [f"wm{i}" for i in range(100)]}
    assert len((await wire.wecom(url, hundred))["invalid_external_userid"]) == 100


# -- sync_msg ------------------------------------------------------------------------------------


async def test_sync_items_have_the_documented_shapes_and_events_carry_their_ids_inside(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    welcome = fake.customer_enters(kf, CUSTOMER, scene="web01")
    msgid = fake.customer_says(kf, CUSTOMER, "你好")
    fake.customer_sends(kf, CUSTOMER, "image", {"media_id": "3media"})
    fake.servicer_says(kf, CUSTOMER, "zhangsan", "在的")
    page = await wire.sync(kf, token=fake.latest_sync_token(kf))
    assert (page["errcode"], page["has_more"]) == (0, 0)
    event, text, image, servicer = page["msg_list"]
    assert event["origin"] == 4
    assert event["msgtype"] == "event"
    assert "open_kfid" not in event
    assert "external_userid" not in event
    assert event["event"] == {
        "event_type": "enter_session",
        "open_kfid": kf,
        "external_userid": CUSTOMER,
        "scene": "web01",
        "welcome_code": welcome,
    }
    assert text == {
        "msgid": msgid,
        "open_kfid": kf,
        "external_userid": CUSTOMER,
        "send_time": int(fake.now()),
        "origin": 3,
        "msgtype": "text",
        "text": {"content": "你好"},
    }
    assert image["image"] == {"media_id": "3media"}
    assert (servicer["origin"], servicer["servicer_userid"]) == (5, "zhangsan")


async def test_sync_pages_with_an_opaque_cursor_and_has_more(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    sent = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(5)]
    token = fake.latest_sync_token(kf)
    first = await wire.sync(kf, token=token, limit=2)
    assert ([m["msgid"] for m in first["msg_list"]], first["has_more"]) == (sent[:2], 1)
    assert isinstance(first["next_cursor"], str)
    assert len(first["next_cursor"]) <= 64
    second = await wire.sync(kf, token=token, limit=2, cursor=first["next_cursor"])
    third = await wire.sync(kf, token=token, limit=2, cursor=second["next_cursor"])
    assert [m["msgid"] for m in second["msg_list"] + third["msg_list"]] == sent[2:]
    assert third["has_more"] == 0
    after = await wire.sync(kf, token=token, cursor=third["next_cursor"])
    assert (after["msg_list"], after["has_more"]) == ([], 0)
    later = fake.customer_says(kf, CUSTOMER, "again")
    resumed = await wire.sync(kf, token=fake.latest_sync_token(kf), cursor=third["next_cursor"])
    assert [m["msgid"] for m in resumed["msg_list"]] == [later]


async def test_sync_refuses_an_unknown_cursor_a_bad_limit_and_a_bad_voice_format(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, CUSTOMER)
    token = fake.latest_sync_token(kf)
    for bad in ({"cursor": "made-up"}, {"limit": 0}, {"limit": 1001}, {"voice_format": 2}):
        assert (await wire.sync(kf, token=token, **bad))["errcode"] == 40058
    assert (await wire.sync(kf, token=token, limit=1000, voice_format=1))["errcode"] == 0


async def test_sync_keeps_3_days_and_starts_from_the_oldest_kept_without_a_cursor(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, CUSTOMER, "old")
    fake.advance(2 * 86400)
    kept = fake.customer_says(kf, CUSTOMER, "kept")
    fake.advance(86400 + 1)
    fresh = fake.customer_says(kf, CUSTOMER, "fresh")
    page = await wire.sync(kf, token=fake.latest_sync_token(kf))
    assert [m["msgid"] for m in page["msg_list"]] == [kept, fresh]


async def test_a_push_token_works_10_minutes_and_only_for_its_account(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    other = fake.create_kf_account(corpid_of(fake), "其他")
    fake.customer_says(kf, CUSTOMER)
    token = fake.latest_sync_token(kf)
    assert (await wire.sync(other, token=token))["errcode"] == 95007
    assert (await wire.sync(kf, token="ENCmade-up"))["errcode"] == 95007
    fake.advance(599)
    assert (await wire.sync(kf, token=token))["errcode"] == 0
    fake.advance(2)
    assert (await wire.sync(kf, token=token))["errcode"] == 95007


async def test_pulls_without_a_token_are_limited_per_minute_with_45009(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    assert fake.tokenless_pulls_per_minute == 10
    fake.tokenless_pulls_per_minute = 3
    answers = [(await wire.sync(kf))["errcode"] for _ in range(4)]
    assert answers == [0, 0, 0, 45009]
    fake.customer_says(kf, CUSTOMER)
    assert (await wire.sync(kf, token=fake.latest_sync_token(kf)))["errcode"] == 0
    fake.advance(61)
    assert (await wire.sync(kf))["errcode"] == 0


async def test_empty_pages_with_has_more_do_not_lose_a_message_of_a_loop_that_keeps_pulling(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    sent = [fake.customer_says(kf, CUSTOMER, f"m{i}") for i in range(7)]
    token = fake.latest_sync_token(kf)
    fake.empty_page_rate = 0.5
    received: list[str] = []
    empty_with_more = 0
    cursor = None
    for _ in range(100):
        page = await wire.sync(kf, token=token, limit=2, **({"cursor": cursor} if cursor else {}))
        empty_with_more += not page["msg_list"] and page["has_more"] == 1
        received += [m["msgid"] for m in page["msg_list"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert received == sent
    assert empty_with_more > 0


async def test_messages_sent_through_the_api_never_come_back(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    said = fake.customer_says(kf, CUSTOMER)
    assert (await wire.send(kf))["errcode"] == 0
    page = await wire.sync(kf, token=fake.latest_sync_token(kf))
    assert [m["msgid"] for m in page["msg_list"]] == [said]


# -- send_msg ------------------------------------------------------------------------------------


async def test_send_answers_the_given_or_a_generated_msgid_and_records_the_send(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, CUSTOMER)
    assert (await wire.send(kf, msgid="reply_1-a"))["msgid"] == "reply_1-a"
    generated = (await wire.send(kf))["msgid"]
    assert len(generated) == 32
    first, second = fake.sent_messages(kf, CUSTOMER)
    assert (first.msgid, first.msgtype, first.content) == ("reply_1-a", "text", {"content": "您好"})
    assert (first.delivered, first.fail_type, second.msgid) == (True, None, generated)
    assert fake.sent_messages(external_userid="wmOTHER") == []


@pytest.mark.parametrize("msgid", ["x" * 33, "has space", "中文", 7])
async def test_a_msgid_is_at_most_32_bytes_of_the_allowed_characters(
    wire: Wire, kf: str, fake: FakeWeChat, msgid: Any
) -> None:
    fake.customer_says(kf, CUSTOMER)
    assert (await wire.send(kf, msgid=msgid))["errcode"] == 40058


async def test_a_msgid_is_used_once_per_account(wire: Wire, kf: str, fake: FakeWeChat) -> None:
    other = fake.create_kf_account(corpid_of(fake), "其他")
    fake.customer_says(kf, CUSTOMER)
    fake.customer_says(other, CUSTOMER)
    assert (await wire.send(kf, msgid="m" * 32))["errcode"] == 0
    assert (await wire.send(kf, msgid="m" * 32))["errcode"] == DUPLICATE_MSGID
    assert (await wire.send(other, msgid="m" * 32))["errcode"] == 0
    assert len(fake.sent_messages(kf)) == 1


@pytest.mark.parametrize(("state", "errcode"), [(0, 0), (1, 0), (2, 95018), (3, 95018), (4, 95013)])
async def test_the_api_sends_only_in_states_0_and_1(
    wire: Wire, kf: str, fake: FakeWeChat, state: int, errcode: int
) -> None:
    fake.customer_says(kf, CUSTOMER)
    fake.set_session_state(kf, CUSTOMER, state, "zhangsan" if state == 3 else None)
    assert (await wire.send(kf))["errcode"] == errcode
    if state == 0:
        assert fake.session_state(kf, CUSTOMER) == 1  # the API now answers the customer


async def test_a_send_to_a_customer_the_account_never_saw_is_40096(wire: Wire, kf: str) -> None:
    assert (await wire.send(kf))["errcode"] == 40096


async def failures(wire: Wire, kf: str, fake: FakeWeChat) -> list[dict[str, Any]]:
    page = await wire.sync(kf, token=fake.latest_sync_token(kf))
    return [
        m["event"]
        for m in page["msg_list"]
        if m["msgtype"] == "event" and m["event"]["event_type"] == "msg_send_fail"
    ]


async def test_a_sixth_send_in_the_window_answers_0_then_fails_with_fail_type_6(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, CUSTOMER)
    answers = [await wire.send(kf, msgid=f"m{i}") for i in range(6)]
    assert [a["errcode"] for a in answers] == [0] * 6
    assert [s.delivered for s in fake.sent_messages(kf)] == [True] * 5 + [False]
    (failure,) = await failures(wire, kf, fake)
    assert failure == {
        "event_type": "msg_send_fail",
        "open_kfid": kf,
        "external_userid": CUSTOMER,
        "fail_msgid": "m5",
        "fail_type": 6,
    }
    fake.customer_says(kf, CUSTOMER, "the budget starts again")
    assert (await wire.send(kf, msgid="m6"))["errcode"] == 0
    assert fake.sent_messages(kf)[-1].delivered


async def test_a_send_past_the_48_hour_window_answers_0_then_fails_with_fail_type_4(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    fake.customer_says(kf, CUSTOMER)
    fake.advance(48 * 3600 + 1)
    assert (await wire.send(kf, msgid="late"))["errcode"] == 0
    assert fake.sent_messages(kf)[-1].fail_type == 4
    assert [(f["fail_msgid"], f["fail_type"]) for f in await failures(wire, kf, fake)] == [
        ("late", 4)
    ]


@pytest.mark.parametrize(
    ("msgtype", "content"),
    [
        ("news", {"articles": [{"title": "t", "url": "https://e.x"}]}),
        ("link", {"title": "t", "url": "https://e.x"}),
        ("msgmenu", {"list": [{"type": "location", "location": {"latitude": 1, "longitude": 2}}]}),
        ("msgmenu", {"list": [{"type": "click", "content": "no click object"}]}),
        ("msgmenu", {"list": []}),
        ("location", {"latitude": 91, "longitude": 0}),
        ("location", {"name": "no coordinates"}),
        ("text", {"content": "字" * 683}),
        ("text", {}),
        ("miniprogram", {"appid": "wx1", "pagepath": "p"}),
    ],
)
async def test_send_refuses_what_wecom_does_not_take_with_40058(
    wire: Wire, kf: str, fake: FakeWeChat, msgtype: str, content: dict[str, Any]
) -> None:
    fake.customer_says(kf, CUSTOMER)
    thumb = fake.store_media(corpid_of(fake))
    if msgtype == "link":
        content = {**content, "thumb_media_id": thumb, "desc": 5}
    assert (await wire.send(kf, msgtype, content=content))["errcode"] == 40058
    assert fake.sent_messages() == []


async def test_send_takes_every_documented_shape(wire: Wire, kf: str, fake: FakeWeChat) -> None:
    media = fake.store_media(corpid_of(fake))
    menu = {
        "head_content": "请选择",
        "list": [
            {"type": "click", "click": {"id": "1", "content": "查询订单"}},
            {"type": "view", "view": {"url": "https://e.x", "content": "官网"}},
            {
                "type": "miniprogram",
                "miniprogram": {"appid": "wx1", "pagepath": "p", "content": "c"},
            },
            {"type": "text", "text": {"content": "说明", "no_newline": 1}},
        ],
        "tail_content": "谢谢",
    }
    contents = {
        "text": {"content": "字" * 682},
        "image": {"media_id": media},
        "file": {"media_id": media},
        "link": {"title": "t", "url": "https://e.x", "thumb_media_id": media, "desc": "d"},
        "miniprogram": {"appid": "wx1", "thumb_media_id": media, "pagepath": "p"},
        "msgmenu": menu,
        "location": {"latitude": 23.1, "longitude": 113.3, "name": "n"},
    }
    for msgtype, content in contents.items():
        fake.customer_says(kf, CUSTOMER)  # a fresh budget for each
        assert (await wire.send(kf, msgtype, content=content))["errcode"] == 0, msgtype
    assert [s.msgtype for s in fake.sent_messages(kf)] == list(contents)


async def test_send_needs_media_the_corp_stored(wire: Wire, kf: str, fake: FakeWeChat) -> None:
    fake.customer_says(kf, CUSTOMER)
    answer = await wire.send(kf, "image", content={"media_id": "3made-up"})
    assert answer["errcode"] == 40007


# -- send_msg_on_event ---------------------------------------------------------------------------


def on_event(code: str, msgtype: str = "text", **extra: Any) -> dict[str, Any]:
    content = {"content": "欢迎"} if msgtype == "text" else {"list": [
        {"type": "click", "click": {"id": "1", "content": "查询"}}
    ]}  # fmt: skip
    return {"code": code, "msgtype": msgtype, msgtype: content, **extra}


async def test_a_welcome_code_sends_one_message(wire: Wire, kf: str, fake: FakeWeChat) -> None:
    code = fake.customer_enters(kf, CUSTOMER)
    url = "/cgi-bin/kf/send_msg_on_event"
    answer = await wire.wecom(url, on_event(code, "msgmenu", msgid="welcome1"))
    assert (answer["errcode"], answer["msgid"]) == (0, "welcome1")
    assert (await wire.wecom(url, on_event(code)))["errcode"] == INVALID_EVENT_CODE
    (sent,) = fake.sent_messages(kf, CUSTOMER)
    assert (sent.via, sent.msgtype) == ("send_msg_on_event", "msgmenu")


async def test_a_welcome_code_expires_after_20_seconds(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/kf/send_msg_on_event"
    code = fake.customer_enters(kf, CUSTOMER)
    fake.advance(19)
    assert (await wire.wecom(url, on_event(code)))["errcode"] == 0
    late = fake.customer_enters(kf, CUSTOMER)
    fake.advance(21)
    assert (await wire.wecom(url, on_event(late)))["errcode"] == INVALID_EVENT_CODE


async def test_send_on_event_takes_text_or_msgmenu_only_and_what_the_code_allows(
    wire: Wire, kf: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/kf/send_msg_on_event"
    code = fake.customer_enters(kf, CUSTOMER)
    image = {
        "code": code,
        "msgtype": "image",
        "image": {"media_id": fake.store_media(corpid_of(fake))},
    }
    assert (await wire.wecom(url, image))["errcode"] == 40058
    fake.customer_says(kf, CUSTOMER)
    trans = "/cgi-bin/kf/service_state/trans"
    base = {"open_kfid": kf, "external_userid": CUSTOMER}
    pool = (await wire.wecom(trans, {**base, "service_state": 2}))["msg_code"]
    assert (await wire.wecom(url, on_event(pool, "msgmenu")))["errcode"] == 40058
    fake.advance(47 * 3600)
    assert (await wire.wecom(url, on_event(pool)))["errcode"] == 0
    end = (await wire.wecom(trans, {**base, "service_state": 4}))["msg_code"]
    assert (await wire.wecom(url, on_event(end, "msgmenu")))["errcode"] == 0
    assert (await wire.wecom(url, on_event("made-up")))["errcode"] == INVALID_EVENT_CODE


# -- Official Account sessions -------------------------------------------------------------------

ALICE = "alice@gh_fake"
BOB = "bob@gh_fake"


@pytest.fixture
def appid(fake: FakeWeChat, wire: Wire) -> str:
    """The Official Account, kf accounts alice (online) and bob (offline), and user oUSER."""
    app = next(iter(fake.official_accounts))
    fake.add_kf_account(app, ALICE, "Alice")
    fake.add_kf_account(app, BOB, "Bob")
    fake.set_online(app, ALICE)
    fake.oa_customer_says(app, "oUSER", "你好")
    return app


async def test_a_session_needs_a_known_openid_a_known_kf_and_an_online_one(
    wire: Wire, appid: str
) -> None:
    url = "/customservice/kfsession/create"
    assert (await wire.oa(url, {"kf_account": ALICE, "openid": "oNOBODY"}))["errcode"] == 40003
    assert (await wire.oa(url, {"kf_account": "x@gh_fake", "openid": "oUSER"}))["errcode"] == 65401
    assert (await wire.oa(url, {"kf_account": BOB, "openid": "oUSER"}))["errcode"] == 65415
    assert (await wire.oa(url, {"kf_account": ALICE, "openid": "oUSER"}))["errcode"] == 0
    assert (await wire.oa(url, {"kf_account": 3}))["errcode"] == 65401


async def test_a_served_customer_cannot_be_taken_by_another_kf_until_closed(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    create, close = "/customservice/kfsession/create", "/customservice/kfsession/close"
    fake.set_online(appid, BOB)
    assert (await wire.oa(create, {"kf_account": ALICE, "openid": "oUSER"}))["errcode"] == 0
    assert (await wire.oa(create, {"kf_account": BOB, "openid": "oUSER"}))["errcode"] == 65414
    assert (await wire.oa(close, {"kf_account": BOB, "openid": "oUSER"}))["errcode"] == 65413
    assert (await wire.oa(close, {"kf_account": ALICE, "openid": "oUSER"}))["errcode"] == 0
    assert (await wire.oa(close, {"kf_account": ALICE, "openid": "oUSER"}))["errcode"] == 65413
    assert (await wire.oa(create, {"kf_account": BOB, "openid": "oUSER"}))["errcode"] == 0
    assert fake.kf_accounts(appid)[BOB].accepted_case == 1


async def test_getsession_and_getsessionlist_show_the_session(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    none = await wire.oa("/customservice/kfsession/getsession", openid="oUSER")
    assert (none["kf_account"], none["createtime"]) == ("", 0)
    await wire.oa("/customservice/kfsession/create", {"kf_account": ALICE, "openid": "oUSER"})
    session = await wire.oa("/customservice/kfsession/getsession", openid="oUSER")
    assert (session["kf_account"], session["createtime"]) == (ALICE, int(fake.now()))
    listed = await wire.oa("/customservice/kfsession/getsessionlist", kf_account=ALICE)
    assert listed["sessionlist"] == [{"openid": "oUSER", "createtime": int(fake.now())}]
    unknown = await wire.oa("/customservice/kfsession/getsessionlist", kf_account="x@gh_fake")
    assert unknown["errcode"] == 65401
    stranger = await wire.oa("/customservice/kfsession/getsession", openid="oNOBODY")
    assert stranger["errcode"] == 40003


async def test_getwaitcase_counts_every_waiting_customer_and_lists_the_100_oldest(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    for i in range(120):
        fake.advance(1)
        fake.oa_customer_says(appid, f"o{i:03d}")
    await wire.oa("/customservice/kfsession/create", {"kf_account": ALICE, "openid": "o000"})
    waiting = await wire.oa("/customservice/kfsession/getwaitcase")
    assert waiting["count"] == 120  # oUSER and o001..o119
    listed = [c["openid"] for c in waiting["waitcaselist"]]
    assert listed == ["oUSER"] + [f"o{i:03d}" for i in range(1, 100)]


# -- Official Account records --------------------------------------------------------------------


async def test_records_page_with_the_msgid_the_answer_gives_and_refuse_a_computed_one(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    for i in range(24):
        fake.oa_customer_says(appid, "oUSER", f"m{i}")
    start = int(fake.now()) - 10
    url = "/customservice/msgrecord/getmsglist"
    body = {"starttime": start, "endtime": start + 3600, "number": 10}
    texts: list[str] = []
    msgid = 1
    while True:
        page = await wire.oa(url, {**body, "msgid": msgid})
        texts += [r["text"] for r in page["recordlist"]]
        assert page["number"] == len(page["recordlist"])
        if page["number"] < 10:
            break
        assert page["msgid"] != msgid + 10  # opaque: not where counting would put it
        msgid = page["msgid"]
    assert texts == ["你好"] + [f"m{i}" for i in range(24)]
    first = await wire.oa(url, {**body, "msgid": 1})
    computed = await wire.oa(url, {**body, "msgid": first["msgid"] - 1})
    assert computed["errcode"] == 65416
    record = first["recordlist"][1]
    assert (record["openid"], record["opercode"], record["worker"]) == ("oUSER", 2003, "")


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"endtime_extra": 86401}, 65417),
        ({"number": 10001}, 65416),
        ({"number": 0}, 65416),
        ({"msgid": 0}, 65416),
        ({"endtime_extra": -1}, 65416),
    ],
)
async def test_records_refuse_bad_parameters(
    wire: Wire, appid: str, fake: FakeWeChat, change: dict[str, int], errcode: int
) -> None:
    start = int(fake.now())
    body = {"starttime": start, "endtime": start + 60, "msgid": 1, "number": 100}
    extra = dict(change)  # the parameters are shared by both backends' runs: never mutated
    if "endtime_extra" in extra:
        body["endtime"] = start + extra.pop("endtime_extra")
    body.update(extra)
    answer = await wire.oa("/customservice/msgrecord/getmsglist", body)
    assert answer["errcode"] == errcode


# -- Official Account messages -------------------------------------------------------------------


async def test_custom_send_records_the_message_and_its_record(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    body = {
        "touser": "oUSER",
        "msgtype": "text",
        "text": {"content": "您好"},
        "customservice": {"kf_account": ALICE},
    }
    assert (await wire.oa("/cgi-bin/message/custom/send", body))["errcode"] == 0
    (sent,) = fake.oa_sent_messages(appid)
    assert (sent.touser, sent.msgtype, sent.kf_account) == ("oUSER", "text", ALICE)
    last = fake.oa_records(appid)[-1]
    assert (last.opercode, last.text, last.worker) == (2002, "您好", ALICE)


async def test_custom_send_takes_the_oa_wire_names_only(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/message/custom/send"
    good = {
        "msgmenu": {
            "head_content": "h",
            "list": [{"id": "1", "content": "c"}],
            "tail_content": "t",
        },
        "miniprogrampage": {"title": "t", "appid": "wx1", "pagepath": "p", "thumb_media_id": "m"},
        "video": {"media_id": "m", "title": "t"},
    }
    for msgtype, content in good.items():
        answer = await wire.oa(url, {"touser": "oUSER", "msgtype": msgtype, msgtype: content})
        assert answer["errcode"] == 0, msgtype
    news = {"touser": "oUSER", "msgtype": "link", "link": {"title": "t"}}
    assert (await wire.oa(url, news))["errcode"] == 40008
    wecom_menu = {"touser": "oUSER", "msgtype": "msgmenu", "msgmenu": {"list": [
        {"type": "click", "click": {"id": "1", "content": "c"}}
    ]}}  # fmt: skip
    assert (await wire.oa(url, wecom_menu))["errcode"] == 40058
    stranger = {"touser": "oNOBODY", "msgtype": "text", "text": {"content": "x"}}
    assert (await wire.oa(url, stranger))["errcode"] == 40003


async def test_custom_send_allows_5_messages_within_48_hours(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/message/custom/send"
    body = {"touser": "oUSER", "msgtype": "text", "text": {"content": "x"}}
    answers = [(await wire.oa(url, body))["errcode"] for _ in range(6)]
    assert answers == [0] * 5 + [45047]
    fake.oa_customer_says(appid, "oUSER")
    assert (await wire.oa(url, body))["errcode"] == 0
    fake.advance(48 * 3600 + 1)
    assert (await wire.oa(url, body))["errcode"] == 45015


async def test_typing_needs_a_valid_command_and_an_exchange_within_30_seconds(
    wire: Wire, appid: str, fake: FakeWeChat
) -> None:
    url = "/cgi-bin/message/custom/typing"
    assert (await wire.oa(url, {"touser": "oUSER", "command": "typing"}))["errcode"] == 45072
    assert (await wire.oa(url, {"touser": "oUSER", "command": "Typing"}))["errcode"] == 0
    assert (await wire.oa(url, {"touser": "oUSER", "command": "Typing"}))["errcode"] == 45081
    assert (await wire.oa(url, {"touser": "oUSER", "command": "CancelTyping"}))["errcode"] == 0
    assert (await wire.oa(url, {"touser": "oUSER", "command": "Typing"}))["errcode"] == 0
    fake.advance(31)
    assert (await wire.oa(url, {"touser": "oUSER", "command": "Typing"}))["errcode"] == 45080
    assert (await wire.oa(url, {"touser": "oNOBODY", "command": "Typing"}))["errcode"] == 40003
