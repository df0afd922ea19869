"""wc.sessions: get (the state, typed, and who serves) and transfer (the msg_code; never sent
twice; servicer_userid exactly for HUMAN; no transition checked by the SDK)."""

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
    ServiceState,
    SessionState,
    SessionStateError,
    TransportError,
    WeComClient,
)

pytestmark = pytest.mark.anyio

GET = "/cgi-bin/kf/service_state/get"
TRANSFER = "/cgi-bin/kf/service_state/trans"
LOST = [httpx.Response(502), httpx.RemoteProtocolError("Server disconnected")]


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


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"service_state": 3, "servicer_userid": "zu"}, ServiceState(SessionState.HUMAN, "zu")),
        ({"service_state": 0}, ServiceState(SessionState.UNTREATED)),
        ({"service_state": 1, "servicer_userid": ""}, ServiceState(SessionState.ASSISTANT)),
        ({"service_state": "4"}, ServiceState(SessionState.ENDED)),
        ({"service_state": 2, "servicer_userid": None}, ServiceState(SessionState.WAITING)),
        # a state WeChat adds later stays readable, as its number
        ({"service_state": 7}, ServiceState(7)),
    ],
)  # fmt: skip
async def test_get_sends_both_ids_and_reads_the_state(
    script: Scripted, answer: dict[str, Any], expected: ServiceState
) -> None:
    script.business.append({"errcode": 0, "errmsg": "ok", **answer})
    async with wecom(script) as wc:
        state = await wc.sessions.get("wk1", "wmCUSTOMER")
    assert state == expected
    assert type(state.state) is type(expected.state)
    assert sent(script) == [("POST", GET, {"open_kfid": "wk1", "external_userid": "wmCUSTOMER"})]


@pytest.mark.parametrize(
    "answer",
    [{}, {"service_state": None}, {"service_state": "three"}, {"service_state": True},
     {"service_state": 3, "servicer_userid": 5}],
)  # fmt: skip
async def test_a_get_answer_of_another_shape_is_an_invalid_response(
    script: Scripted, answer: dict[str, Any]
) -> None:
    script.business.append(answer)
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError):
            await wc.sessions.get("wk1", "wm1")


@pytest.mark.parametrize("failure", LOST)
async def test_get_is_sent_again_after_a_lost_answer(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.extend([failure, {"service_state": 1}])
    async with wecom(script) as wc:
        assert await wc.sessions.get("wk1", "wm1") == ServiceState(SessionState.ASSISTANT)
    assert len(script.business_requests) == 2


@pytest.mark.parametrize(
    ("errcode", "exc"),
    [(95000, OpenKfidError), (95004, OpenKfidError), (40096, APIError)],
)
@pytest.mark.parametrize("call", ["get", "transfer"])
async def test_refusals_raise_their_errcode_once(
    script: Scripted, call: str, errcode: int, exc: type[APIError]
) -> None:
    script.business.append({"errcode": errcode, "errmsg": "refused, hint: [h-9]"})
    async with wecom(script) as wc:
        if call == "get":
            calling = wc.sessions.get("wk1", "wm1")
        else:
            calling = wc.sessions.transfer("wk1", "wm1", SessionState.WAITING)
        with pytest.raises(exc) as info:
            await calling
    assert (info.value.errcode, info.value.rid) == (errcode, "h-9")
    assert len(script.business_requests) == 1


async def test_transfer_to_a_human_sends_the_servicer_and_returns_the_msg_code(
    script: Scripted,
) -> None:
    script.business.append({"errcode": 0, "errmsg": "ok", "msg_code": "MSG_CODE_1"})
    async with wecom(script) as wc:
        code = await wc.sessions.transfer(
            "wk1", "wm1", SessionState.HUMAN, servicer_userid="zhangsan"
        )
    assert code == "MSG_CODE_1"
    payload = {
        "open_kfid": "wk1",
        "external_userid": "wm1",
        "service_state": 3,
        "servicer_userid": "zhangsan",
    }
    assert sent(script) == [("POST", TRANSFER, payload)]


@pytest.mark.parametrize(
    ("answer", "code"),
    [({}, None), ({"msg_code": ""}, None), ({"msg_code": None}, None), ({"msg_code": 12}, "12")],
)
async def test_transfer_returns_none_without_a_msg_code(
    script: Scripted, answer: dict[str, Any], code: str | None
) -> None:
    script.business.append(answer)
    async with wecom(script) as wc:
        assert await wc.sessions.transfer("wk1", "wm1", 2) == code
    assert sent(script)[0][2]["service_state"] == 2
    assert "servicer_userid" not in sent(script)[0][2]


async def test_a_transfer_answer_with_a_msg_code_of_another_type_says_the_change_applied(
    script: Scripted,
) -> None:
    script.business.append({"msg_code": ["x"]})
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError, match="state changed"):
            await wc.sessions.transfer("wk1", "wm1", SessionState.ENDED)


@pytest.mark.parametrize("state", [0, 1, 2, 4, SessionState.ENDED])
async def test_transfer_checks_no_transition_it_sends_any_state_at_once(
    script: Scripted, state: int
) -> None:
    # WeChat decides which changes are allowed (the fake enforces them): no read before.
    async with wecom(script) as wc:
        await wc.sessions.transfer("wk1", "wm1", state)
    assert sent(script) == [
        ("POST", TRANSFER, {"open_kfid": "wk1", "external_userid": "wm1", "service_state": state})
    ]


@pytest.mark.parametrize("errcode", [95016, 95018])
async def test_a_change_wechat_refuses_raises_once(script: Scripted, errcode: int) -> None:
    script.business.append({"errcode": errcode, "errmsg": "refused"})
    async with wecom(script) as wc:
        with pytest.raises(APIError) as info:
            await wc.sessions.transfer("wk1", "wm1", SessionState.ASSISTANT)
    assert info.value.errcode == errcode
    assert isinstance(info.value, SessionStateError) is (errcode == 95018)
    assert len(script.business_requests) == 1


@pytest.mark.parametrize("failure", LOST)
async def test_transfer_is_never_sent_twice_after_a_lost_answer(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.extend([failure, {"msg_code": "second"}])
    async with wecom(script) as wc:
        with pytest.raises(TransportError) as info:
            await wc.sessions.transfer("wk1", "wm1", SessionState.HUMAN, servicer_userid="u1")
    assert info.value.maybe_applied is True
    assert info.value.path == TRANSFER
    assert len(script.business_requests) == 1


BAD_TRANSFERS: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception]]] = [
    ("human without servicer", ("wk1", "wm1", SessionState.HUMAN), {}, ValueError),
    ("3 without servicer", ("wk1", "wm1", 3), {}, ValueError),
    ("servicer for the pool", ("wk1", "wm1", 2), {"servicer_userid": "u1"}, ValueError),
    ("empty servicer", ("wk1", "wm1", 3), {"servicer_userid": ""}, ValueError),
    ("spaced servicer", ("wk1", "wm1", 3), {"servicer_userid": "u 1"}, ValueError),
    ("servicer not str", ("wk1", "wm1", 3), {"servicer_userid": 1}, TypeError),
    ("servicer off the userid rule", ("wk1", "wm1", 3), {"servicer_userid": "张三"}, ValueError),
    ("servicer beginning with _", ("wk1", "wm1", 3), {"servicer_userid": "_u1"}, ValueError),
    ("servicer over 64 bytes", ("wk1", "wm1", 3), {"servicer_userid": "u" * 65}, ValueError),
    ("bool state", ("wk1", "wm1", True), {}, TypeError),
    ("str state", ("wk1", "wm1", "3"), {}, TypeError),
    ("float state", ("wk1", "wm1", 3.0), {}, TypeError),
    ("state 5", ("wk1", "wm1", 5), {}, ValueError),
    ("state -1", ("wk1", "wm1", -1), {}, ValueError),
    ("empty open_kfid", ("", "wm1", 1), {}, ValueError),
    ("spaced external_userid", ("wk1", "wm 1", 1), {}, ValueError),
    ("external_userid not str", ("wk1", None, 1), {}, TypeError),
]


@pytest.mark.parametrize(
    ("args", "kwargs", "exc"),
    [case[1:] for case in BAD_TRANSFERS],
    ids=[case[0] for case in BAD_TRANSFERS],
)
async def test_bad_transfers_raise_before_any_request(
    script: Scripted, args: tuple[Any, ...], kwargs: dict[str, Any], exc: type[Exception]
) -> None:
    async with wecom(script) as wc:
        with pytest.raises(exc):
            await wc.sessions.transfer(*args, **kwargs)
    assert script.requests == []


@pytest.mark.parametrize(
    ("args", "exc"),
    [(("", "wm1"), ValueError), (("wk1", ""), ValueError), (("wk1", "a\nb"), ValueError),
     ((None, "wm1"), TypeError), (("wk1", b"wm1"), TypeError)],
)  # fmt: skip
async def test_bad_gets_raise_before_any_request(
    script: Scripted, args: tuple[Any, ...], exc: type[Exception]
) -> None:
    async with wecom(script) as wc:
        with pytest.raises(exc):
            await wc.sessions.get(*args)
    assert script.requests == []
