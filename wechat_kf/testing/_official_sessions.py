"""FakeWeChat's Official Account conversations: kf sessions (create, close, get, list, the
waiting customers), message records, ``message/custom/send`` and typing.

Choices where the documentation is silent: a body that is not a JSON object, or lacks a field,
is 40058; an unknown msgtype of custom/send is 40008; an openid that never wrote to the account
is 40003 everywhere (``getsession`` of a known customer without a session answers an empty
``kf_account`` and ``createtime`` 0); a session asked of its own kf account again is kept (0).
Record pages: ``msgid`` must be 1 or a value an answer handed out (else 65416), and ids skip,
so a client that computes the next msgid is caught. Typing: 45072 a command other than
Typing / CancelTyping, 45080 the customer's last message is over 30 s old, 45081 Typing while
the indicator still shows (it lasts 15 s)."""

from __future__ import annotations

from typing import Any

from ._faults import Refusal, Request
from ._oa_state import OaConversation, OaCustomer, OaSentMessage, OaSession
from ._state import KfAccountState, OfficialAccountApp, World

OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
WINDOW = 48 * 3600.0
WINDOW_BUDGET = 5
MAX_SPAN = 24 * 3600
MAX_RECORDS = 10_000
MAX_WAITING_SHOWN = 100
TYPING_EXCHANGE = 30.0
TYPING_LASTS = 15.0
#: The fields each msgtype of custom/send carries: required, and optional.
_CONTENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text": (("content",), ()),
    "image": (("media_id",), ()),
    "voice": (("media_id",), ()),
    "video": (("media_id",), ("thumb_media_id", "title", "description")),
    "msgmenu": (("list",), ("head_content", "tail_content")),
    "miniprogrampage": (("title", "appid", "pagepath", "thumb_media_id"), ()),
}


def _fields(request: Request) -> dict[str, Any]:
    if not isinstance(request.payload, dict):
        raise Refusal(40058, "invalid parameter, the body is not a JSON object")
    return request.payload


def _customer(conversation: OaConversation, openid: object) -> OaCustomer:
    customer = conversation.customers.get(openid) if isinstance(openid, str) else None
    if customer is None:
        raise Refusal(40003, "invalid openid")
    return customer


def _kf(app: OfficialAccountApp, kf_account: object) -> KfAccountState:
    account = app.kf_accounts.get(kf_account) if isinstance(kf_account, str) else None
    if account is None:
        raise Refusal(65401, "invalid kf account")
    return account


def session_create(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    payload = _fields(request)
    account = _kf(app, payload.get("kf_account"))
    conversation = app.conversation
    customer = _customer(conversation, payload.get("openid"))
    current = conversation.sessions.get(customer.openid)
    if current is not None:
        if current.kf_account != account.kf_account:
            raise Refusal(65414, "the customer is served by another kf account")
        return OK
    if not account.online_status:
        raise Refusal(65415, "the kf account is offline")
    created = int(world.now())
    conversation.sessions[customer.openid] = OaSession(customer.openid, account.kf_account, created)
    customer.waiting = False
    account.accepted_case += 1
    return OK


def session_close(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    payload = _fields(request)
    account = _kf(app, payload.get("kf_account"))
    customer = _customer(app.conversation, payload.get("openid"))
    current = app.conversation.sessions.get(customer.openid)
    if current is None or current.kf_account != account.kf_account:
        raise Refusal(65413, "no such session")
    del app.conversation.sessions[customer.openid]
    account.accepted_case = max(0, account.accepted_case - 1)
    return OK


def session_get(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    customer = _customer(app.conversation, request.query.get("openid"))
    current = app.conversation.sessions.get(customer.openid)
    if current is None:
        return {**OK, "kf_account": "", "createtime": 0}
    return {**OK, "kf_account": current.kf_account, "createtime": current.createtime}


def session_list(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    account = _kf(app, request.query.get("kf_account"))
    sessions = [
        {"openid": s.openid, "createtime": s.createtime}
        for s in app.conversation.sessions.values()
        if s.kf_account == account.kf_account
    ]
    return {**OK, "sessionlist": sessions}


def wait_case(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    waiting = sorted(
        (c for c in app.conversation.customers.values() if c.waiting),
        key=lambda c: c.last_message_at,
    )
    cases = [
        {"openid": c.openid, "latest_time": int(c.last_message_at)}
        for c in waiting[:MAX_WAITING_SHOWN]
    ]
    return {**OK, "count": len(waiting), "waitcaselist": cases}


def _int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Refusal(65416, f"invalid parameter, {name}")
    return value


def records(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    payload = _fields(request)
    start, end = _int(payload, "starttime"), _int(payload, "endtime")
    msgid, number = _int(payload, "msgid"), _int(payload, "number")
    if start > end or not 1 <= number <= MAX_RECORDS:
        raise Refusal(65416, "invalid parameter, starttime, endtime or number")
    if end - start > MAX_SPAN:
        raise Refusal(65417, "the span is over 24 hours")
    conversation = app.conversation
    if msgid != 1 and msgid not in conversation.record_cursors:
        raise Refusal(65416, "invalid parameter, msgid is 1 or what the last answer gave")
    window = [r for r in conversation.records if start <= r.time <= end and r.id >= msgid]
    page, rest = window[:number], window[number:]
    following = rest[0].id if rest else conversation.next_record_id
    conversation.record_cursors.add(following)
    items = [
        {"openid": r.openid, "opercode": r.opercode, "text": r.text, "time": r.time,
         "worker": r.worker}
        for r in page
    ]  # fmt: skip
    return {**OK, "recordlist": items, "number": len(items), "msgid": following}


def _content(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    msgtype = payload.get("msgtype")
    if not isinstance(msgtype, str):
        raise Refusal(40058, "invalid parameter, msgtype is missing")
    if msgtype not in _CONTENTS:
        raise Refusal(40008, "invalid message type")
    content = payload.get(msgtype)
    if not isinstance(content, dict):
        raise Refusal(40058, f"invalid parameter, the {msgtype} object is missing")
    required, optional = _CONTENTS[msgtype]
    for name in required:
        value = content.get(name)
        if name == "list":
            ok = isinstance(value, list) and bool(value) and all(
                isinstance(i, dict) and isinstance(i.get("id"), str)
                and isinstance(i.get("content"), str) for i in value
            )  # fmt: skip
        else:
            ok = isinstance(value, str) and bool(value)
        if not ok:
            raise Refusal(40058, f"invalid parameter, {msgtype}.{name}")
    if any(name in content and not isinstance(content[name], str) for name in optional):
        raise Refusal(40058, f"invalid parameter, a {msgtype} field is not a string")
    return msgtype, content


def custom_send(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    payload = _fields(request)
    conversation = app.conversation
    customer = _customer(conversation, payload.get("touser"))
    msgtype, content = _content(payload)
    service = payload.get("customservice")
    worker: str | None = None
    if service is not None:
        named = service.get("kf_account") if isinstance(service, dict) else None
        worker = _kf(app, named).kf_account
    now = world.now()
    if now - customer.last_message_at > WINDOW:
        raise Refusal(45015, "response out of time limit or subscription is canceled")
    if customer.window_sends >= WINDOW_BUDGET:
        raise Refusal(45047, "out of response count limit")
    customer.window_sends += 1
    conversation.sent.append(OaSentMessage(customer.openid, msgtype, content, worker, now))
    text = content["content"] if msgtype == "text" else f"[{msgtype}]"
    session = conversation.sessions.get(customer.openid)
    named = worker or (session.kf_account if session is not None else "")
    conversation.record(customer.openid, 2002, text, now, named)
    return OK


def typing(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    payload = _fields(request)
    customer = _customer(app.conversation, payload.get("touser"))
    command = payload.get("command")
    if command not in ("Typing", "CancelTyping"):
        raise Refusal(45072, "invalid command")
    now = world.now()
    if now - customer.last_message_at > TYPING_EXCHANGE:
        raise Refusal(45080, "no message exchanged with the user in the last 30 seconds")
    if command == "CancelTyping":
        customer.typing_until = 0.0
        return OK
    if customer.typing_until > now:
        raise Refusal(45081, "already typing")
    customer.typing_until = now + TYPING_LASTS
    return OK
