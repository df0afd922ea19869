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
