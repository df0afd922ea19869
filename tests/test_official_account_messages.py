"""oa.messages: each content's exact Official Account JSON, the contents it refuses before
sending, the window errcodes, send never repeated, typing retried."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from wechat_kf import APIError, MessageWindowError, OfficialAccountClient, TransportError
from wechat_kf.contents import (
    Content,
    File,
    Image,
    Link,
    Location,
    Menu,
    MenuClick,
    MenuText,
    MenuView,
    Miniprogram,
    Text,
    Video,
    Voice,
)

pytestmark = pytest.mark.anyio

SECRET = "oa-secret-never-shown"
TOKEN = "oa-token-" + "y" * 40
OPENID = "oDF3iY9WMaswOPWjCIp_f3Bnpljk"
SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"

Reply = dict[str, Any] | httpx.Response
Answer = Callable[[httpx.Request], Reply]


class WeChat:
    """A mock of api.weixin.qq.com: issues a token, records every business request, answers
    each with ``answer(request)`` (a JSON body or a Response)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 7200})
        self.requests.append(request)
        reply = self.answer(request)
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """(method, path, query without the token, JSON body) of every business request."""
        return [
            (
                r.method,
                r.url.path,
                {k: v for k, v in r.url.params.items() if k != "access_token"},
                json.loads(r.content),
            )
            for r in self.requests
        ]


@contextlib.asynccontextmanager
async def client(
    answer: Answer, secret_watch: set[str]
) -> AsyncIterator[tuple[OfficialAccountClient, WeChat]]:
    secret_watch.update([SECRET, TOKEN])
    wechat = WeChat(answer)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(wechat)) as http,
        OfficialAccountClient("wx_test", SECRET, http_client=http) as oa,
    ):
        yield oa, wechat


def ok(request: httpx.Request) -> Reply:
    return {"errcode": 0, "errmsg": "ok"}


def failing(errcode: int) -> Answer:
    return lambda request: {"errcode": errcode, "errmsg": f"refused rid: 65b-{errcode}"}


def bad_gateway_then(answer: Answer) -> Answer:
    """A 502 on the first request (after WeChat may have applied it), then ``answer``."""
    count = 0

    def reply(request: httpx.Request) -> Reply:
        nonlocal count
        count += 1
        return httpx.Response(502) if count == 1 else answer(request)

    return reply


WIRE: list[tuple[str, Content, dict[str, Any]]] = [
    ("text", Text("您好"), {"msgtype": "text", "text": {"content": "您好"}}),
    ("image", Image("MEDIA_1"), {"msgtype": "image", "image": {"media_id": "MEDIA_1"}}),
    ("voice", Voice("MEDIA_2"), {"msgtype": "voice", "voice": {"media_id": "MEDIA_2"}}),
    (
        "video with its extras",
        Video("MEDIA_3", thumb_media_id="THUMB", title="开箱", description="新品"),
        {
            "msgtype": "video",
            "video": {
                "media_id": "MEDIA_3",
                "thumb_media_id": "THUMB",
                "title": "开箱",
                "description": "新品",
            },
        },
    ),
    ("bare video", Video("MEDIA_4"), {"msgtype": "video", "video": {"media_id": "MEDIA_4"}}),
    (
        "menu",
        Menu([MenuClick("101", "满意"), MenuClick("102", "不满意")], "请评价", "欢迎再来"),
        {
            "msgtype": "msgmenu",
            "msgmenu": {
                "head_content": "请评价",
                "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
                "tail_content": "欢迎再来",
            },
        },
    ),
    (
        "menu without head or tail",
        Menu([MenuClick("1", "查询订单")]),
        {"msgtype": "msgmenu", "msgmenu": {"list": [{"id": "1", "content": "查询订单"}]}},
    ),
    (
        "miniprogram",
        Miniprogram("wxmini", "THUMB", "pages/index?x=1", title="小程序"),
        {
            "msgtype": "miniprogrampage",
            "miniprogrampage": {
                "title": "小程序",
                "appid": "wxmini",
                "pagepath": "pages/index?x=1",
                "thumb_media_id": "THUMB",
            },
        },
    ),
]


@pytest.mark.parametrize(("content", "wire"), [w[1:] for w in WIRE], ids=[w[0] for w in WIRE])
async def test_send_posts_each_contents_official_account_json(
    secret_watch: set[str], content: Content, wire: dict[str, Any]
) -> None:
    async with client(ok, secret_watch) as (oa, wechat):
        await oa.messages.send(OPENID, content)
    assert wechat.seen == [("POST", SEND, {}, {"touser": OPENID, **wire})]


async def test_send_as_a_kf_account_names_it_in_customservice(secret_watch: set[str]) -> None:
    async with client(ok, secret_watch) as (oa, wechat):
        await oa.messages.send(OPENID, Text("您好"), kf_account="alice@gh_test")
    assert wechat.seen[0][3] == {
        "touser": OPENID,
        "msgtype": "text",
        "text": {"content": "您好"},
        "customservice": {"kf_account": "alice@gh_test"},
    }


REFUSED: list[tuple[str, object, type[Exception]]] = [
    ("file", File("MEDIA"), TypeError),
    ("link", Link("标题", "https://example.com/a", "THUMB"), TypeError),
    ("location", Location(31.2, 121.5, name="上海"), TypeError),
    (
        "menu with a view item",
        Menu([MenuClick("1", "a"), MenuView("https://e.com", "b")]),
        TypeError,
    ),
    ("menu with a text item", Menu([MenuText("说明")]), TypeError),
    ("a plain str", "您好", TypeError),
    ("a dict", {"msgtype": "text", "text": {"content": "hi"}}, TypeError),
    ("None", None, TypeError),
]


@pytest.mark.parametrize(("content", "exc"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
async def test_a_content_an_official_account_cannot_take_is_refused_before_sending(
    secret_watch: set[str], content: Any, exc: type[Exception]
) -> None:
    async with client(ok, secret_watch) as (oa, wechat):
        with pytest.raises(exc):
            await oa.messages.send(OPENID, content)
    assert wechat.requests == []


@pytest.mark.parametrize("errcode", [45015, 45047])
async def test_a_send_outside_the_window_or_over_its_budget_raises_message_window_error(
    secret_watch: set[str], errcode: int
) -> None:
    async with client(failing(errcode), secret_watch) as (oa, wechat):
        with pytest.raises(MessageWindowError) as info:
            await oa.messages.send(OPENID, Text("hi"))
    assert (info.value.errcode, info.value.rid, info.value.path) == (
        errcode,
        f"65b-{errcode}",
        SEND,
    )
    assert len(wechat.requests) == 1


async def test_a_send_to_an_invalid_openid_raises_api_error(secret_watch: set[str]) -> None:
    async with client(failing(40003), secret_watch) as (oa, _):
        with pytest.raises(APIError) as info:
            await oa.messages.send(OPENID, Text("hi"))
    assert type(info.value) is APIError
    assert info.value.errcode == 40003


async def test_send_is_never_repeated_once_it_may_have_applied(secret_watch: set[str]) -> None:
    async with client(bad_gateway_then(ok), secret_watch) as (oa, wechat):
        with pytest.raises(TransportError) as info:
            await oa.messages.send(OPENID, Text("hi"))
    assert info.value.maybe_applied is True
    assert len(wechat.requests) == 1


@pytest.mark.parametrize(("typing", "command"), [(True, "Typing"), (False, "CancelTyping")])
async def test_typing_posts_the_command(secret_watch: set[str], typing: bool, command: str) -> None:
    async with client(ok, secret_watch) as (oa, wechat):
        await oa.messages.typing(OPENID, typing=typing)
    assert wechat.seen == [("POST", TYPING, {}, {"touser": OPENID, "command": command})]


async def test_typing_defaults_to_showing_it(secret_watch: set[str]) -> None:
    async with client(ok, secret_watch) as (oa, wechat):
        await oa.messages.typing(OPENID)
    assert wechat.seen[0][3]["command"] == "Typing"


@pytest.mark.parametrize("errcode", [45072, 45080, 45081])
async def test_typing_refusals_raise_api_error_with_the_errcode(
    secret_watch: set[str], errcode: int
) -> None:
    async with client(failing(errcode), secret_watch) as (oa, wechat):
        with pytest.raises(APIError) as info:
            await oa.messages.typing(OPENID)
    assert info.value.errcode == errcode
    assert info.value.description is not None
    assert len(wechat.requests) == 1


async def test_typing_is_retried_after_a_lost_answer(secret_watch: set[str]) -> None:
    async with client(bad_gateway_then(ok), secret_watch) as (oa, wechat):
        await oa.messages.typing(OPENID, typing=False)
    assert len(wechat.requests) == 2
    assert wechat.seen[0] == wechat.seen[1]


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception]]] = [
    ("send empty openid", "send", ("", Text("hi")), {}, ValueError),
    ("send spaced openid", "send", ("o 1", Text("hi")), {}, ValueError),
    ("send openid not str", "send", (None, Text("hi")), {}, TypeError),
    ("send bad kf_account", "send", (OPENID, Text("hi")), {"kf_account": "alice"}, ValueError),
    ("send empty kf_account", "send", (OPENID, Text("hi")), {"kf_account": ""}, ValueError),
    ("send kf_account not str", "send", (OPENID, Text("hi")), {"kf_account": 7}, TypeError),
    ("typing empty openid", "typing", ("",), {}, ValueError),
    ("typing openid with tab", "typing", ("o\t1",), {}, ValueError),
    ("typing not a bool", "typing", (OPENID,), {"typing": "false"}, TypeError),
    ("typing an int", "typing", (OPENID,), {"typing": 0}, TypeError),
]


@pytest.mark.parametrize(
    ("call", "args", "kwargs", "exc"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_arguments_raise_before_any_request(
    secret_watch: set[str],
    call: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    exc: type[Exception],
) -> None:
    async with client(ok, secret_watch) as (oa, wechat):
        with pytest.raises(exc):
            await getattr(oa.messages, call)(*args, **kwargs)
    assert wechat.requests == []
