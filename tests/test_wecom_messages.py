"""wc.messages: sync (one typed page), send and send_on_event with a msgid that is the same on
every attempt, and the maybe-applied rule of a refused re-send."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from wechat_kf import (
    APIError,
    InvalidResponseError,
    OpenKfidError,
    SentMessage,
    SessionStateError,
    SyncPage,
    TransportError,
    WeComClient,
)
from wechat_kf.contents import Image, Link, Location, Menu, MenuClick, Text
from wechat_kf.kf_messages import (
    EnterSessionEvent,
    MessageOrigin,
    TextMessage,
    UnknownMessage,
)

pytestmark = pytest.mark.anyio

Reply = dict[str, Any] | httpx.Response


class Wire:
    """A mock WeCom: a token for every fetch, and the scripted replies for business calls (then
    ``{"errcode": 0}``); records every business request."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "t" * 40, "expires_in": 7200})
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else {"errcode": 0, "errmsg": "ok"}
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def wc(wire: Wire) -> AsyncIterator[WeComClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(wire))
    async with http, WeComClient("wwcorp", "s" * 43, http_client=http) as client:
        yield client


def _text_item(msgid: str, content: str) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "open_kfid": "wkA",
        "external_userid": "wmC",
        "send_time": 1700000000,
        "origin": 3,
        "msgtype": "text",
        "text": {"content": content},
    }


# -- sync ---------------------------------------------------------------------------------------


async def test_sync_sends_the_documented_request_and_returns_a_typed_page(
    wire: Wire, wc: WeComClient
) -> None:
    enter = {
        "msgid": "e1",
        "send_time": 1700000001,
        "origin": 4,
        "msgtype": "event",
        "event": {
            "event_type": "enter_session",
            "open_kfid": "wkA",
            "external_userid": "wmC",
            "scene": "web01",
            "welcome_code": "WC",
        },
    }
    wire.replies.append(
        {
            "errcode": 0,
            "next_cursor": "CUR2",
            "has_more": 1,
            "msg_list": [_text_item("m1", "你好"), enter],
        }
    )
    page = await wc.messages.sync("wkA", cursor="CUR1", token="TOK", limit=50, voice_format=1)
    request = wire.requests[0]
    assert (request.method, request.url.path) == ("POST", "/cgi-bin/kf/sync_msg")
    assert wire.bodies() == [
        {"open_kfid": "wkA", "cursor": "CUR1", "token": "TOK", "limit": 50, "voice_format": 1}
    ]
    assert isinstance(page, SyncPage)
    assert (page.next_cursor, page.has_more) == ("CUR2", True)
    text, event = page.messages
    assert isinstance(text, TextMessage)
    assert (text.msgid, text.content, text.origin) == ("m1", "你好", MessageOrigin.CUSTOMER)
    assert text.send_time == datetime.fromtimestamp(1700000000, timezone.utc)
    assert isinstance(event, EnterSessionEvent)
    assert (event.open_kfid, event.external_userid, event.welcome_code) == ("wkA", "wmC", "WC")


async def test_sync_without_cursor_or_token_sends_only_open_kfid_and_limit(
    wire: Wire, wc: WeComClient
) -> None:
    await wc.messages.sync("wkA")
    assert wire.bodies() == [{"open_kfid": "wkA", "limit": 1000}]


async def test_an_empty_page_with_more_to_come_says_so(wire: Wire, wc: WeComClient) -> None:
    wire.replies.append({"errcode": 0, "next_cursor": "C", "has_more": 1, "msg_list": []})
    page = await wc.messages.sync("wkA")
    assert (page.messages, page.next_cursor, page.has_more) == ([], "C", True)


async def test_an_unknown_or_malformed_item_never_fails_the_page(
    wire: Wire, wc: WeComClient
) -> None:
    new_kind = {**_text_item("m2", "x"), "msgtype": "hologram", "hologram": {"id": 1}}
    bad_text = {**_text_item("m3", "x"), "text": {"content": 42}}
    wire.replies.append(
        {"errcode": 0, "has_more": 0, "msg_list": [new_kind, bad_text, _text_item("m4", "ok")]}
    )
    page = await wc.messages.sync("wkA")
    kinds = [type(m) for m in page.messages]
    assert kinds == [UnknownMessage, UnknownMessage, TextMessage]
    assert page.messages[0].raw == new_kind
    assert page.messages[1].raw == bad_text
    assert page.has_more is False


@pytest.mark.parametrize(
    "body",
    [
        {"errcode": 0, "msg_list": {"not": "a list"}},
        {"errcode": 0, "msg_list": [], "has_more": 2},
        {"errcode": 0, "msg_list": [], "next_cursor": 7},
        httpx.Response(200, content=b'{"errcode": 0, "next_cursor": "\\ud800"}'),
        {"errcode": 0, "msg_list": [], "has_more": 1},
        {"errcode": 0, "msg_list": [], "has_more": 1, "next_cursor": ""},
    ],
)
async def test_a_page_of_another_shape_is_an_invalid_response(
    wire: Wire, wc: WeComClient, body: Reply
) -> None:
    wire.replies.append(body)
    with pytest.raises(InvalidResponseError):
        await wc.messages.sync("wkA")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.sync(""), ValueError),
        (lambda m: m.sync("wk A"), ValueError),
        (lambda m: m.sync("wkA", limit=0), ValueError),
        (lambda m: m.sync("wkA", limit=1001), ValueError),
        (lambda m: m.sync("wkA", limit=True), TypeError),
        (lambda m: m.sync("wkA", cursor="c" * 65), ValueError),
        (lambda m: m.sync("wkA", token="t" * 129), ValueError),
        (lambda m: m.sync("wkA", voice_format=2), ValueError),
        (lambda m: m.sync("wkA", voice_format=1.0), ValueError),
        (lambda m: m.sync("wkA", cursor="\ud800"), ValueError),
        (lambda m: m.sync("wkA", token="t\udc80"), ValueError),
        (lambda m: m.send("wkA", "wmC", Text("hi"), msgid="x" * 33), ValueError),
        (lambda m: m.send("wkA", "wmC", Text("hi"), msgid="bad id"), ValueError),
        (lambda m: m.send("wkA", "wmC", "just a string"), TypeError),
        (lambda m: m.send("wkA", "", Text("hi")), ValueError),
        (lambda m: m.send_on_event("CODE", Image("media")), TypeError),
        (lambda m: m.send_on_event("", Text("hi")), ValueError),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    wire: Wire, wc: WeComClient, call: Callable[[Any], Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await call(wc.messages)
    assert wire.requests == []


# -- send ---------------------------------------------------------------------------------------


async def test_send_posts_the_content_with_a_generated_msgid(wire: Wire, wc: WeComClient) -> None:
    sent = await wc.messages.send("wkA", "wmC", Text("您好"))
    (body,) = wire.bodies()
    assert wire.requests[0].url.path == "/cgi-bin/kf/send_msg"
    assert re.fullmatch(r"[0-9a-f]{32}", body["msgid"])
    assert body == {
        "touser": "wmC",
        "open_kfid": "wkA",
        "msgid": body["msgid"],
        "msgtype": "text",
        "text": {"content": "您好"},
    }
    assert sent == SentMessage(body["msgid"])


async def test_two_sends_without_a_msgid_get_different_ones(wire: Wire, wc: WeComClient) -> None:
    await wc.messages.send("wkA", "wmC", Text("a"))
    await wc.messages.send("wkA", "wmC", Text("a"))
    first, second = wire.bodies()
    assert first["msgid"] != second["msgid"]


async def test_the_caller_s_msgid_is_sent_and_returned(wire: Wire, wc: WeComClient) -> None:
    sent = await wc.messages.send("wkA", "wmC", Text("a"), msgid="order-42_reply")
    assert wire.bodies()[0]["msgid"] == "order-42_reply"
    assert sent.msgid == "order-42_reply"


@pytest.mark.parametrize(
    ("content", "msgtype"),
    [
        (Link("标题", "https://example.com/a", "thumb"), "link"),
        (Location(23.1, 113.3, name="店"), "location"),
        (Menu([MenuClick("1", "查询订单")], head_content="请选择"), "msgmenu"),
    ],
)
async def test_each_content_goes_out_under_its_own_msgtype(
    wire: Wire, wc: WeComClient, content: Any, msgtype: str
) -> None:
    await wc.messages.send("wkA", "wmC", content)
    body = wire.bodies()[0]
    assert body["msgtype"] == msgtype
    assert msgtype in body
    assert body[msgtype] == content.wecom_json()[msgtype]


async def test_a_send_whose_answer_was_lost_is_sent_again_with_the_same_msgid(
    wire: Wire, wc: WeComClient
) -> None:
    wire.replies.extend([httpx.Response(502), {"errcode": 0, "msgid": "ignored-by-us"}])
    sent = await wc.messages.send("wkA", "wmC", Text("a"))
    first, second = wire.bodies()
    assert first == second
    assert sent.msgid == "ignored-by-us"  # what WeChat answers is what it knows the message by


async def test_a_refused_re_send_after_a_maybe_applied_attempt_is_maybe_applied_with_the_msgid(
    wire: Wire, wc: WeComClient
) -> None:
    duplicate = {"errcode": 95001, "errmsg": "msgid duplicated, hint: [1_2_3]"}
    wire.replies.extend([httpx.Response(504), duplicate])
    with pytest.raises(TransportError) as info:
        await wc.messages.send("wkA", "wmC", Text("a"), msgid="m-1")
    assert (info.value.maybe_applied, info.value.msgid) == (True, "m-1")
    assert isinstance(info.value.__cause__, APIError)
    assert len(wire.requests) == 2


async def test_a_refusal_at_the_first_attempt_is_the_typed_error(
    wire: Wire, wc: WeComClient
) -> None:
    wire.replies.append({"errcode": 95018, "errmsg": "send msg session status invalid"})
    with pytest.raises(SessionStateError):
        await wc.messages.send("wkA", "wmC", Text("a"))
    wire.replies.append({"errcode": 95000, "errmsg": "invalid open_kfid"})
    with pytest.raises(OpenKfidError):
        await wc.messages.send("wkA", "wmC", Text("a"))
    assert len(wire.requests) == 2


# -- send_on_event ------------------------------------------------------------------------------


async def test_send_on_event_posts_the_code_and_the_content(wire: Wire, wc: WeComClient) -> None:
    menu = Menu([MenuClick("1", "查询订单")], head_content="请选择")
    sent = await wc.messages.send_on_event("WELCOME", menu, msgid="w1")
    (body,) = wire.bodies()
    assert wire.requests[0].url.path == "/cgi-bin/kf/send_msg_on_event"
    assert body == {"code": "WELCOME", "msgid": "w1", **menu.wecom_json()}
    assert sent == SentMessage("w1")


async def test_send_on_event_re_sends_with_the_same_msgid_and_reports_it(
    wire: Wire, wc: WeComClient
) -> None:
    wire.replies.extend([httpx.Response(502)] * 10)
    with pytest.raises(TransportError) as info:
        await wc.messages.send_on_event("CODE", Text("欢迎"))
    msgids = {body["msgid"] for body in wire.bodies()}
    assert len(wire.requests) == 4  # the first attempt and max_retries=3
    assert msgids == {info.value.msgid}
    assert info.value.maybe_applied is True


# -- sync on payloads written by others, and on a page of garbage --------------------------------
#
# What these tests need beyond the file's imports is imported inside them (this section was added
# after the file's imports).

DOC_KFID = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"
DOC_CUSTOMER = "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"
DOC_MEDIA = "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
DOC_SENT = datetime.fromtimestamp(1615478585, timezone.utc)

# shenghui0779/gochat, corp/kf/message_test.go (TestSyncMsg, the answer its mock returns), at
# commit b81309aaabd42faf542549c77aa8a92194e3f1ed, verbatim: an item of each of the ten modelled
# message types and four events, with the example values peers copy from WeCom's doc 94670 (the
# ids, media_id and send_time below). Its events also carry open_kfid, external_userid,
# servicer_userid and origin 3 at the top level, where the doc puts the ids inside the event.
GOCHAT_SYNC_MSG = """\
{
    "errcode": 0,
    "errmsg": "ok",
    "next_cursor": "4gw7MepFLfgF2VC5npN",
    "has_more": 1,
    "msg_list": [
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "text",
            "text": {
                "content": "hello world",
                "menu_id": "101"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "image",
            "image": {
                "media_id": "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "voice",
            "voice": {
                "media_id": "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "video",
            "video": {
                "media_id": "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "file",
            "file": {
                "media_id": "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "location",
            "location": {
                "latitude": 23.106021881103501,
                "longitude": 113.320503234863,
                "name": "广州国际媒体港(广州市海珠区)",
                "address": "广东省广州市海珠区滨江东路"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "link",
            "link": {
                "title": "TITLE",
                "desc": "DESC",
                "url": "URL",
                "pic_url": "PIC_URL"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "business_card",
            "business_card": {
                "userid": "USERID"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "miniprogram",
            "miniprogram": {
                "title": "TITLE",
                "appid": "APPID",
                "pagepath": "PAGE_PATH",
                "thumb_media_id": "THUMB_MEDIA_ID"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "msgmenu",
            "msgmenu": {
                "head_content": "您对本次服务是否满意呢? ",
                "list": [
                    {
                        "type": "click",
                        "click": {
                            "id": "101",
                            "content": "满意"
                        }
                    },
                    {
                        "type": "click",
                        "click": {
                            "id": "102",
                            "content": "不满意"
                        }
                    },
                    {
                        "type": "view",
                        "view": {
                            "url": "https://work.weixin.qq.com",
                            "content": "点击跳转到自助查询页面"
                        }
                    },
                    {
                        "type": "miniprogram",
                        "miniprogram": {
                            "appid": "wx123123123123123",
                            "pagepath": "pages/index?userid=zhangsan&orderid=123123123",
                            "content": "点击打开小程序查询更多"
                        }
                    }
                ],
                "tail_content": "欢迎再次光临"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "event",
            "event": {
                "event_type": "enter_session",
                "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
                "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
                "scene": "123",
                "scene_param": "abc",
                "welcome_code": "aaaaaa"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "event",
            "event": {
                "event_type": "msg_send_fail",
                "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
                "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
                "fail_msgid": "FAIL_MSGID",
                "fail_type": 4
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "event",
            "event": {
                "event_type": "servicer_status_change",
                "servicer_userid": "SERVICER_USERID",
                "status": 1,
                "open_kfid": "OPEN_KFID"
            }
        },
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "event",
            "event": {
                "event_type": "session_status_change",
                "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
                "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
                "change_type": 1,
                "old_servicer_userid": "OLD_SERVICER_USERID",
                "new_servicer_userid": "NEW_SERVICER_USERID",
                "msg_code": "MSG_CODE"
            }
        }
    ]
}
"""

# fudiwei/DotNetCore.SKIT.FlurlHttpClient.Wechat, test/SKIT.FlurlHttpClient.Wechat.Work.UnitTests/
# ModelSamples/CgibinKf/CgibinKfSyncMessageResponse.json (commit 226a01424c0e),
# verbatim: SKIT's copy of the response example of doc 94670 (its one item has the placeholder
# msgtype "MSG_TYPE"), then the two recall events as the doc's examples show them, the event
# object alone (no msgid, send_time or origin).
SKIT_SYNC_MSG = """\
{
    "errcode": 0,
    "errmsg": "ok",
    "next_cursor": "4gw7MepFLfgF2VC5npN",
    "has_more": 1,
    "msg_list": [
        {
            "msgid": "from_msgid_4622416642169452483",
            "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
            "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
            "send_time": 1615478585,
            "origin": 3,
            "servicer_userid": "Zhangsan",
            "msgtype": "MSG_TYPE"
        },
        {
            "msgtype": "event",
            "event": {
                "event_type": "user_recall_msg",
                "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
                "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
                "recall_msgid": "RECALL_MSGID"
            }
        },
        {
            "msgtype": "event",
            "event": {
                "event_type": "servicer_recall_msg",
                "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
                "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
                "recall_msgid": "RECALL_MSGID",
                "servicer_userid": "SERVICER_USERID"
            }
        }
    ]
}
"""


def _json_reply(text: str) -> httpx.Response:
    return httpx.Response(200, content=text.encode(), headers={"Content-Type": "application/json"})


async def test_sync_models_every_item_of_gochats_fixture_as_its_class(
    wire: Wire, wc: WeComClient
) -> None:
    import anyio

    from wechat_kf.kf_messages import (
        BusinessCardMessage,
        FileMessage,
        ImageMessage,
        LinkMessage,
        LocationMessage,
        MenuMessage,
        MiniprogramMessage,
        MsgSendFailEvent,
        ServicerStatusChangeEvent,
        SessionStatusChangeEvent,
        VideoMessage,
        VoiceMessage,
    )

    items = json.loads(GOCHAT_SYNC_MSG)["msg_list"]
    wire.replies.append(_json_reply(GOCHAT_SYNC_MSG))
    with anyio.fail_after(10):
        page = await wc.messages.sync(DOC_KFID, cursor="4gw7MepFLfgF2VC5npN", token="ENCApHxn")
    assert (page.next_cursor, page.has_more) == ("4gw7MepFLfgF2VC5npN", True)
    common: dict[str, Any] = {
        "msgid": "from_msgid_4622416642169452483",
        "open_kfid": DOC_KFID,
        "external_userid": DOC_CUSTOMER,
        "servicer_userid": "Zhangsan",
        "send_time": DOC_SENT,
        "origin": MessageOrigin.CUSTOMER,
    }
    menu = items[9]["msgmenu"]["list"]

    def at(index: int) -> dict[str, Any]:
        return {**common, "raw": items[index]}

    expected = [
        TextMessage(**at(0), msgtype="text", content="hello world", menu_id="101"),
        ImageMessage(**at(1), msgtype="image", media_id=DOC_MEDIA),
        VoiceMessage(**at(2), msgtype="voice", media_id=DOC_MEDIA),
        VideoMessage(**at(3), msgtype="video", media_id=DOC_MEDIA),
        FileMessage(**at(4), msgtype="file", media_id=DOC_MEDIA),
        LocationMessage(
            **at(5),
            msgtype="location",
            latitude=23.106021881103501,
            longitude=113.320503234863,
            name="广州国际媒体港(广州市海珠区)",
            address="广东省广州市海珠区滨江东路",
        ),
        LinkMessage(
            **at(6), msgtype="link", url="URL", title="TITLE", desc="DESC", pic_url="PIC_URL"
        ),
        BusinessCardMessage(**at(7), msgtype="business_card", userid="USERID"),
        MiniprogramMessage(
            **at(8),
            msgtype="miniprogram",
            appid="APPID",
            pagepath="PAGE_PATH",
            title="TITLE",
            thumb_media_id="THUMB_MEDIA_ID",
        ),
        MenuMessage(
            **at(9),
            msgtype="msgmenu",
            items=tuple(menu),
            head_content="您对本次服务是否满意呢? ",
            tail_content="欢迎再次光临",
        ),
        EnterSessionEvent(
            **at(10),
            msgtype="event",
            event_type="enter_session",
            scene="123",
            scene_param="abc",
            welcome_code="aaaaaa",
        ),
        MsgSendFailEvent(
            **at(11),
            msgtype="event",
            event_type="msg_send_fail",
            fail_msgid="FAIL_MSGID",
            fail_type=4,
        ),
        ServicerStatusChangeEvent(  # its ids are read from inside the event, where it has them
            **{**at(12), "open_kfid": "OPEN_KFID", "servicer_userid": "SERVICER_USERID"},
            msgtype="event",
            event_type="servicer_status_change",
            status=1,
        ),
        SessionStatusChangeEvent(
            **at(13),
            msgtype="event",
            event_type="session_status_change",
            change_type=1,
            old_servicer_userid="OLD_SERVICER_USERID",
            new_servicer_userid="NEW_SERVICER_USERID",
            msg_code="MSG_CODE",
        ),
    ]
    assert [type(m) for m in page.messages] == [type(m) for m in expected]
    for got, want in zip(page.messages, expected, strict=True):
        assert got == want
    assert [m["type"] for m in page.messages[9].items] == ["click", "click", "view", "miniprogram"]


async def test_sync_reads_skits_copy_of_the_doc_example_keeping_what_it_cannot_model(
    wire: Wire, wc: WeComClient
) -> None:
    import anyio

    from wechat_kf.kf_messages import UnknownEvent

    items = json.loads(SKIT_SYNC_MSG)["msg_list"]
    wire.replies.append(_json_reply(SKIT_SYNC_MSG))
    with anyio.fail_after(10):
        page = await wc.messages.sync(DOC_KFID)
    placeholder, user_recall, servicer_recall = page.messages
    # "MSG_TYPE" is no type: kept whole, every common field read.
    assert isinstance(placeholder, UnknownMessage)
    assert placeholder.msgid == "from_msgid_4622416642169452483"
    assert placeholder.msgtype == "MSG_TYPE"
    assert (placeholder.open_kfid, placeholder.external_userid) == (DOC_KFID, DOC_CUSTOMER)
    assert (placeholder.servicer_userid, placeholder.send_time) == ("Zhangsan", DOC_SENT)
    assert placeholder.origin is MessageOrigin.CUSTOMER
    assert "MSG_TYPE" in placeholder.reason
    assert placeholder.raw == items[0]
    # The events as the doc shows them lack msgid, send_time and origin: unknown, not an error,
    # with their type and ids read from the event object.
    for event, item, servicer in [
        (user_recall, items[1], None),
        (servicer_recall, items[2], "SERVICER_USERID"),
    ]:
        assert isinstance(event, UnknownEvent)
        assert event.event_type == item["event"]["event_type"]
        assert (event.open_kfid, event.external_userid) == (DOC_KFID, DOC_CUSTOMER)
        assert event.servicer_userid == servicer
        assert (event.msgid, event.send_time, event.origin) == ("", None, None)
        assert "msgid" in event.reason
        assert event.raw == item


def _doc_event(event_type: str, **fields: Any) -> dict[str, Any]:
    """An event item of the form doc 94670 describes (written here from its field list, not
    copied): the common fields at the top, the ids inside the event object."""
    return {
        "msgid": f"{event_type}_1",
        "send_time": 1615478585,
        "origin": 4,
        "msgtype": "event",
        "event": {
            "event_type": event_type,
            "open_kfid": DOC_KFID,
            "external_userid": DOC_CUSTOMER,
            **fields,
        },
    }


async def test_sync_models_every_documented_event_and_keeps_the_unmodelled_types(
    wire: Wire, wc: WeComClient
) -> None:
    import anyio

    from wechat_kf.kf_messages import RecallEvent, UnknownEvent

    unmodelled = [
        "channels_shop_product",
        "channels_shop_order",
        "merged_msg",
        "channels",
        "meeting",
        "schedule",
        "note",
    ]
    items = [
        _doc_event(
            "enter_session",
            scene="123",
            scene_param="abc",
            welcome_code="aaaaaa",
            wechat_channels={"nickname": "视频号", "scene": 1},
        ),
        _doc_event("user_recall_msg", recall_msgid="RECALL_MSGID"),
        _doc_event("servicer_recall_msg", recall_msgid="RECALL_MSGID", servicer_userid="zs"),
        _doc_event("reject_customer_msg_switch_change", servicer_userid="zs", reject_switch=1),
        *[
            {
                "msgid": f"{kind}_1",
                "open_kfid": DOC_KFID,
                "external_userid": DOC_CUSTOMER,
                "send_time": 1615478585,
                "origin": 3,
                "msgtype": kind,
                kind: {"title": "TITLE"},
            }
            for kind in unmodelled
        ],
    ]
    wire.replies.append({"errcode": 0, "has_more": 0, "next_cursor": "C", "msg_list": items})
    with anyio.fail_after(10):
        page = await wc.messages.sync(DOC_KFID)
    enter, user_recall, servicer_recall, reject, *others = page.messages
    assert isinstance(enter, EnterSessionEvent)
    assert (enter.open_kfid, enter.external_userid, enter.origin) == (
        DOC_KFID,
        DOC_CUSTOMER,
        MessageOrigin.EVENT,
    )
    assert (enter.scene, enter.scene_param, enter.welcome_code) == ("123", "abc", "aaaaaa")
    assert enter.wechat_channels == {"nickname": "视频号", "scene": 1}
    assert isinstance(user_recall, RecallEvent)
    assert (user_recall.event_type, user_recall.recall_msgid) == ("user_recall_msg", "RECALL_MSGID")
    assert user_recall.servicer_userid is None
    assert isinstance(servicer_recall, RecallEvent)
    assert servicer_recall.event_type == "servicer_recall_msg"
    assert (servicer_recall.recall_msgid, servicer_recall.servicer_userid) == ("RECALL_MSGID", "zs")
    assert isinstance(reject, UnknownEvent)
    assert reject.event_type == "reject_customer_msg_switch_change"
    assert [type(m) for m in others] == [UnknownMessage] * len(unmodelled)
    assert [m.msgtype for m in others] == unmodelled
    assert [m.raw for m in page.messages] == items
    assert all(m.send_time == DOC_SENT for m in page.messages)


_GARBAGE_TYPES = [
    "text", "image", "voice", "video", "file", "location", "link", "business_card",
    "miniprogram", "msgmenu", "event", "merged_msg", "hologram", "", "TEXT", " text",
]  # fmt: skip
_GARBAGE_EVENTS = [
    "enter_session", "msg_send_fail", "servicer_status_change", "session_status_change",
    "user_recall_msg", "servicer_recall_msg", "reject_customer_msg_switch_change", "", "new_one",
]  # fmt: skip
_GARBAGE_KEYS = [
    "msgid", "open_kfid", "external_userid", "servicer_userid", "send_time", "origin", "content",
    "menu_id", "media_id", "latitude", "longitude", "name", "address", "url", "title", "desc",
    "pic_url", "userid", "appid", "pagepath", "thumb_media_id", "head_content", "list",
    "tail_content", "event_type", "scene", "scene_param", "welcome_code", "wechat_channels",
    "fail_msgid", "fail_type", "status", "stop_type", "change_type", "old_servicer_userid",
    "new_servicer_userid", "msg_code", "recall_msgid", "x", "",
]  # fmt: skip


def _garbage(rng: Any, depth: int = 0) -> Any:
    """Any JSON value: scalars of every kind (huge and negative numbers, numeric and empty
    strings, odd characters), and lists and objects of more garbage, nested a few levels."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 3, 4, 5, 2**31, -(2**63), 10**30, 1615478585])
    if kind == 3:
        return rng.choice([0.0, -0.5, 1e308, 23.1, 1615478585.5, 5e-324])
    if kind == 4:
        return rng.choice(["", "0", "1615478585", "3", "23.1", "nan", "1e999", "１２", "\x00"])
    if kind == 5:
        points = [rng.randrange(32, 127), rng.randrange(0x4E00, 0x9FFF), 0x1F600, 0x202E, 0xFEFF]
        return "".join(chr(rng.choice(points)) for _ in range(rng.randrange(12)))
    if kind in (6, 7):
        return [_garbage(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(_GARBAGE_KEYS): _garbage(rng, depth + 1) for _ in range(rng.randrange(5))}


_BODIES: dict[str, dict[str, Any]] = {
    "text": {"content": "您好", "menu_id": "101"},
    "image": {"media_id": DOC_MEDIA},
    "voice": {"media_id": DOC_MEDIA},
    "video": {"media_id": DOC_MEDIA},
    "file": {"media_id": DOC_MEDIA},
    "location": {"latitude": 23.1, "longitude": 113.3, "name": "店", "address": "路"},
    "link": {"url": "https://example.com", "title": "T", "desc": "D", "pic_url": "P"},
    "business_card": {"userid": "zhangsan"},
    "miniprogram": {"appid": "wx1", "pagepath": "pages/i", "title": "T", "thumb_media_id": "M"},
    "msgmenu": {"head_content": "H", "list": [{"type": "click", "click": {"id": "1"}}]},
    "enter_session": {"open_kfid": DOC_KFID, "external_userid": DOC_CUSTOMER, "scene": "s"},
    "msg_send_fail": {"fail_msgid": "F", "fail_type": 4},
    "servicer_status_change": {"servicer_userid": "zs", "status": 1, "stop_type": 0},
    "session_status_change": {"change_type": 2, "old_servicer_userid": "a", "msg_code": "C"},
    "user_recall_msg": {"recall_msgid": "R"},
    "servicer_recall_msg": {"recall_msgid": "R", "servicer_userid": "zs"},
}


def _garbage_item(rng: Any) -> Any:
    """A msg_list item of random shape: now and then not an object at all; otherwise the common
    fields each right, garbage or missing, a known or unknown msgtype (an event with a known or
    unknown event_type), and the type's object right, with a field or two broken or dropped,
    random, or garbage in its place; and stray keys."""
    if rng.random() < 0.1:
        return rng.choice([None, 0, 1.5, "text", True, [], [{"msgtype": "text"}], _garbage(rng)])
    good: dict[str, Any] = {
        "msgid": f"m{rng.randrange(10**6)}",
        "open_kfid": DOC_KFID,
        "external_userid": DOC_CUSTOMER,
        "servicer_userid": "zs",
        "send_time": 1615478585,
        "origin": rng.choice([3, 4, 5, 9]),
    }
    item: dict[str, Any] = {}
    for key, value in good.items():
        roll = rng.random()
        if roll < 0.93:
            item[key] = value
        elif roll < 0.97:
            item[key] = _garbage(rng)
    msgtype = rng.choice(_GARBAGE_TYPES) if rng.random() < 0.95 else _garbage(rng)
    if rng.random() < 0.97:
        item["msgtype"] = msgtype
    kind = msgtype
    body: Any = {}
    if msgtype == "event":
        kind = rng.choice(_GARBAGE_EVENTS) if rng.random() < 0.95 else _garbage(rng)
        body["event_type"] = kind
    roll = rng.random()
    if roll < 0.6 and isinstance(kind, str) and kind in _BODIES:
        body.update(_BODIES[kind])
        for key in rng.sample(sorted(body), min(len(body), rng.choice([0, 0, 1, 2]))):
            if rng.random() < 0.5:
                del body[key]
            else:
                body[key] = _garbage(rng)
    elif roll < 0.9:
        for key in rng.sample(_GARBAGE_KEYS, rng.randrange(6)):
            body[key] = rng.choice([_garbage(rng), "value", 1, 1.5, [{"type": "click"}], {}])
    else:
        body = _garbage(rng)
    if isinstance(msgtype, str) and rng.random() < 0.95:
        item[msgtype] = body
    for _ in range(rng.randrange(3)):  # stray keys (the common fields had their turn above)
        item[rng.choice([k for k in _GARBAGE_KEYS if k not in good])] = _garbage(rng)
    return item


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_page_of_1000_items_of_random_shape_gives_1000_messages_and_never_fails(
    wire: Wire, wc: WeComClient, seed: int
) -> None:
    import random

    import anyio

    from wechat_kf.kf_messages import KfMessage, UnknownEvent

    rng = random.Random(seed)
    items = [_garbage_item(rng) for _ in range(1000)]
    wire.replies.append({"errcode": 0, "has_more": 1, "next_cursor": "NEXT", "msg_list": items})
    with anyio.fail_after(20):
        page = await wc.messages.sync(DOC_KFID)
    assert (page.next_cursor, page.has_more) == ("NEXT", True)
    assert len(page.messages) == 1000
    for message, item in zip(page.messages, items, strict=True):
        assert isinstance(message, KfMessage)
        assert message.raw == (item if isinstance(item, dict) else {"value": item})
        hash(message)
        repr(message)
    unknown = [m for m in page.messages if isinstance(m, (UnknownMessage, UnknownEvent))]
    # The generator takes both roads: items that are modelled, and many more that cannot be.
    assert 100 <= 1000 - len(unknown) <= len(unknown)
