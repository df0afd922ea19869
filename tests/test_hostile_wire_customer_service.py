"""Idempotency of the customer-service calls on a hostile wire (a raw loopback socket): after a
request has reached the server, the server answers HTTP 502 or drops the connection without a
word. Then an idempotent call is sent once more and succeeds; a call that must not run twice is
never sent again and raises ``TransportError(maybe_applied=True)``; a WeCom send is sent again
carrying the very same msgid, and a refusal of that repeat is reported as maybe applied, naming
the msgid (design 2b, "Idempotency")."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import anyio
import pytest

from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    APIError,
    Customer,
    CustomerBatch,
    KfSession,
    OfficialAccountClient,
    SentMessage,
    ServiceState,
    SessionState,
    SyncPage,
    Text,
    TransportError,
    WaitingCase,
    WaitingCases,
    WeComClient,
)

pytestmark = pytest.mark.anyio

SECRET = "wire-cs-secret-never-shown-0123456789"
TOKEN = "wire-cs-token-never-shown-abcdefghijklmnopqrstuvwxyz"
TOKEN_PATHS = {"/cgi-bin/stable_token", "/cgi-bin/token", "/cgi-bin/gettoken"}
KFID = "wkWIRE000000000000000000000000001"
CUSTOMER = "wmWIRE000000000000000000000000001"
KF = "alice@gh_wire"
OPENID = "oWIRE00000000000000000000001"
T0 = 1_700_000_000
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}


@pytest.fixture(autouse=True)
def _watch_wire_secrets(secret_watch: set[str]) -> None:
    secret_watch.update({SECRET, TOKEN})


# -- The faults: each strikes after the server has read the whole request ---------------------


def bad_gateway(request: WireRequest, conn: WireConn) -> None:
    conn.send(response(502, b"<html>502 Bad Gateway</html>", {"Content-Type": "text/html"}))


def hang_up(request: WireRequest, conn: WireConn) -> None:
    conn.close()


FAULTS = {"502 after reading": bad_gateway, "closed after reading": hang_up}


class Wire:
    """A script for WireServer: the token endpoints answer TOKEN; the first request to ``path``
    gets ``fault``; every later one gets ``answers`` in turn (the last one repeated), a JSON body
    or a function of the request that makes one."""

    def __init__(self, path: str, fault: Callable[[WireRequest, WireConn], None], *answers: Any):
        self.path = path
        self.fault = fault
        self.answers = list(answers) or [OK]
        self.faulted = False
        self._lock = threading.Lock()

    def __call__(self, request: WireRequest, conn: WireConn) -> None:
        if request.path in TOKEN_PATHS:
            conn.send(response(200, {"access_token": TOKEN, "expires_in": 7200}))
            return
        with self._lock:
            fault = request.path == self.path and not self.faulted
            self.faulted = self.faulted or fault
            answer = None if fault else self.answers[0]
            if not fault and request.path == self.path and len(self.answers) > 1:
                self.answers.pop(0)
        if fault:
            self.fault(request, conn)
        else:
            conn.send(response(200, answer(request) if callable(answer) else answer))


def wecom(server: WireServer, exchange: str) -> WeComClient:
    return WeComClient(
        "wwwire", SECRET, base_url=server.url, exchange=exchange, max_retries=2, retry_backoff=0
    )


def official_account(server: WireServer, exchange: str) -> OfficialAccountClient:
    return OfficialAccountClient(
        "wxwire", SECRET, base_url=server.url, exchange=exchange, max_retries=2, retry_backoff=0
    )


CLIENTS = {"wecom": wecom, "oa": official_account}


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def ok(**fields: Any) -> dict[str, Any]:
    return {**OK, **fields}


RESENT = "re-sent"
ONCE = "sent once"

Call = Callable[[Any], Awaitable[Any]]
# (name, client, call, path, what a success answers, expected: RESENT with the call's value, or
# ONCE)
TABLE: list[tuple[str, str, Call, str, dict[str, Any], tuple[str, Any]]] = [
    (
        "wecom kf_accounts.update",
        "wecom",
        lambda c: c.kf_accounts.update(KFID, name="售后"),
        "/cgi-bin/kf/account/update",
        ok(),
        (RESENT, None),
    ),
    (
        "wecom kf_accounts.delete",
        "wecom",
        lambda c: c.kf_accounts.delete(KFID),
        "/cgi-bin/kf/account/del",
        ok(),
        (RESENT, None),
    ),
    (
        "wecom kf_accounts.contact_way",
        "wecom",
        lambda c: c.kf_accounts.contact_way(KFID, scene="web01"),
        "/cgi-bin/kf/add_contact_way",
        ok(url="https://work.weixin.qq.com/kfid/kfcWIRE?enc_scene=ENCx"),
        (RESENT, "https://work.weixin.qq.com/kfid/kfcWIRE?enc_scene=ENCx"),
    ),
    (
        "wecom media.upload (multipart)",
        "wecom",
        lambda c: c.media.upload(PNG, type="image", filename="logo.png"),
        "/cgi-bin/media/upload",
        ok(type="image", media_id="MEDIA_WIRE_1", created_at=str(T0)),
        (RESENT, "MEDIA_WIRE_1"),
    ),
    (
        "wecom sessions.get",
        "wecom",
        lambda c: c.sessions.get(KFID, CUSTOMER),
        "/cgi-bin/kf/service_state/get",
        ok(service_state=3, servicer_userid="zhangsan"),
        (RESENT, ServiceState(SessionState.HUMAN, "zhangsan")),
    ),
    (
        "wecom customers.get",
        "wecom",
        lambda c: c.customers.get([CUSTOMER, "wmGONE"]),
        "/cgi-bin/kf/customer/batchget",
        ok(
            customer_list=[{"external_userid": CUSTOMER, "nickname": "张三", "gender": 1}],
            invalid_external_userid=["wmGONE"],
        ),
        (RESENT, CustomerBatch([Customer(CUSTOMER, "张三", gender=1)], ["wmGONE"])),
    ),
    (
        "wecom messages.sync",
        "wecom",
        lambda c: c.messages.sync(KFID, cursor="CUR1"),
        "/cgi-bin/kf/sync_msg",
        ok(next_cursor="CUR2", has_more=0, msg_list=[]),
        (RESENT, SyncPage([], "CUR2", False)),
    ),
    (
        "oa sessions.get",
        "oa",
        lambda c: c.sessions.get(OPENID),
        "/customservice/kfsession/getsession",
        ok(kf_account=KF, createtime=T0),
        (RESENT, KfSession(KF, OPENID, utc(T0))),
    ),
    (
        "oa sessions.list",
        "oa",
        lambda c: c.sessions.list(KF),
        "/customservice/kfsession/getsessionlist",
        ok(sessionlist=[{"openid": OPENID, "createtime": T0}]),
        (RESENT, [KfSession(KF, OPENID, utc(T0))]),
    ),
    (
        "oa sessions.waiting",
        "oa",
        lambda c: c.sessions.waiting(),
        "/customservice/kfsession/getwaitcase",
        ok(count=1, waitcaselist=[{"openid": OPENID, "latest_time": T0}]),
        (RESENT, WaitingCases(1, [WaitingCase(OPENID, utc(T0))])),
    ),
    (
        "oa messages.typing",
        "oa",
        lambda c: c.messages.typing(OPENID),
        "/cgi-bin/message/custom/typing",
        ok(),
        (RESENT, None),
    ),
    (
        "wecom kf_accounts.add",
        "wecom",
        lambda c: c.kf_accounts.add("售后客服", media_id="MEDIA_WIRE_1"),
        "/cgi-bin/kf/account/add",
        ok(open_kfid=KFID),
        (ONCE, None),
    ),
    (
        "wecom sessions.transfer",
        "wecom",
        lambda c: c.sessions.transfer(
            KFID, CUSTOMER, SessionState.HUMAN, servicer_userid="zhangsan"
        ),
        "/cgi-bin/kf/service_state/trans",
        ok(msg_code="MSG_CODE"),
        (ONCE, None),
    ),
    (
        "oa sessions.create",
        "oa",
        lambda c: c.sessions.create(KF, OPENID),
        "/customservice/kfsession/create",
        ok(),
        (ONCE, None),
    ),
    (
        "oa sessions.close",
        "oa",
        lambda c: c.sessions.close(KF, OPENID),
        "/customservice/kfsession/close",
        ok(),
        (ONCE, None),
    ),
    (
        "oa messages.send",
        "oa",
        lambda c: c.messages.send(OPENID, Text("您好")),
        "/cgi-bin/message/custom/send",
        ok(),
        (ONCE, None),
    ),
]


def same_request(first: WireRequest, second: WireRequest) -> bool:
    """Whether ``second`` repeats ``first``: the same method, query and body (a multipart body
    is compared by the file it carries, its boundary being drawn anew for each attempt)."""
    if (first.method, first.query) != (second.method, second.query):
        return False
    if "multipart/form-data" in first.headers.get("content-type", ""):
        return PNG in first.body and PNG in second.body
    return first.body == second.body


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
@pytest.mark.parametrize(
    ("client", "call", "path", "answer", "expected"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
async def test_after_a_lost_answer_idempotent_calls_are_re_sent_and_the_others_never(
    fault: str,
    client: str,
    call: Call,
    path: str,
    answer: dict[str, Any],
    expected: tuple[str, Any],
    exchange: str,
) -> None:
    outcome, value = expected
    with WireServer(Wire(path, FAULTS[fault], answer)) as server:
        async with CLIENTS[client](server, exchange) as api:
            with anyio.fail_after(10):
                if outcome == RESENT:
                    assert await call(api) == value
                else:
                    with pytest.raises(TransportError) as info:
                        await call(api)
    seen = server.requests_to(path)
    if outcome == RESENT:
        assert len(seen) == 2, f"{len(seen)} requests to {path}"
        assert same_request(*seen)
    else:
        assert len(seen) == 1, f"{len(seen)} requests to {path}: a second copy may have applied"
        assert info.value.maybe_applied is True
        assert info.value.path == path
        assert info.value.status_code == (502 if fault == "502 after reading" else None)


SENDS: dict[str, tuple[Call, str]] = {
    "send": (lambda c: c.messages.send(KFID, CUSTOMER, Text("您好")), "/cgi-bin/kf/send_msg"),
    "send_on_event": (
        lambda c: c.messages.send_on_event("WELCOME_CODE", Text("欢迎")),
        "/cgi-bin/kf/send_msg_on_event",
    ),
}


def echo_msgid(request: WireRequest) -> dict[str, Any]:
    return ok(msgid=request.json["msgid"])


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
@pytest.mark.parametrize("send", list(SENDS))
async def test_a_wecom_send_is_re_sent_with_the_same_msgid_after_a_lost_answer(
    fault: str, send: str, exchange: str
) -> None:
    call, path = SENDS[send]
    with WireServer(Wire(path, FAULTS[fault], echo_msgid)) as server:
        async with wecom(server, exchange) as api:
            with anyio.fail_after(10):
                sent = await call(api)
    first, second = server.requests_to(path)
    assert first.json == second.json  # the msgid included: a second copy is impossible
    assert re.fullmatch(r"[0-9a-f]{32}", first.json["msgid"])
    assert sent == SentMessage(first.json["msgid"])


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
@pytest.mark.parametrize("send", list(SENDS))
async def test_a_refused_re_send_of_a_wecom_send_is_maybe_applied_and_names_the_msgid(
    fault: str, send: str, exchange: str
) -> None:
    call, path = SENDS[send]
    duplicate = {"errcode": 95001, "errmsg": "msgid duplicated, hint: [wire]"}
    with WireServer(Wire(path, FAULTS[fault], duplicate)) as server:
        async with wecom(server, exchange) as api:
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await call(api)
    first, second = server.requests_to(path)  # sent twice, no more: 95001 is not retried
    assert first.json == second.json
    assert info.value.maybe_applied is True
    assert info.value.msgid == first.json["msgid"]
    assert isinstance(info.value.__cause__, APIError)
    assert info.value.__cause__.errcode == 95001
