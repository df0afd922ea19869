"""FakeWeChat's WeCom 微信客服 messages: ``sync_msg`` (cursor, has_more, 3-day retention, the
push token and the token-less rate limit), ``send_msg`` (session states, msgid rules, the
5-messages-in-48-h budget) and ``send_msg_on_event`` (welcome and msg codes).

Choices where the documentation is silent: a msgid the account already used is
:data:`DUPLICATE_MSGID` (95001); a code that is unknown, used or expired is
:data:`INVALID_EVENT_CODE` (95010); a cursor the fake never handed out is 40058; a customer
without a session on the account is 40096. A send in an ended session (state 4) is 95013,
in state 2 or 3 95018. A delivered send moves a session from state 0 to 1 (the API is now the
one answering). A send past the window or over the budget answers 0 and appends a
``msg_send_fail`` event (fail_type 4 or 6) at once."""

from __future__ import annotations

import secrets
from typing import Any

from ._faults import Refusal, Request
from ._kf_state import CODE_KINDS, RETENTION, WINDOW, WINDOW_BUDGET, Session, WeComSentMessage
from ._state import Corp, KfAccountOfCorp, World
from ._wecom_checks import ID_CHARS, OK, fields, kf_account, required, session_of
from ._wecom_contents import checked_content

#: The errcode of a msgid the kf account already used (WeChat documents the rule, not the code).
DUPLICATE_MSGID = 95001
#: The errcode of a send_msg_on_event code that is unknown, already used or expired.
INVALID_EVENT_CODE = 95010
#: The fail_type of a msg_send_fail event: past the 48-h window, over the 5-message budget.
FAIL_WINDOW = 4
FAIL_BUDGET = 6
MAX_PAGE = 1000


def new_msgid() -> str:
    """A msgid as WeChat makes them: 32 characters of [0-9a-zA-Z_-]."""
    return secrets.token_urlsafe(24)


def _optional_string(payload: dict[str, Any], name: str, max_bytes: int) -> str:
    value = payload.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise Refusal(40058, f"invalid parameter, {name} is a string of at most {max_bytes} bytes")
    return value


def _pull_allowed(world: World, corp: Corp, kf: KfAccountOfCorp, token: str) -> None:
    """A pull with a token needs one of the corp's pushes for this account, at most 10 minutes
    old; a pull without is rate-limited per corp and minute."""
    now = world.now()
    if token:
        issued = corp.sync_tokens.get(token)
        if issued is None or issued.open_kfid != kf.open_kfid or issued.expires_at <= now:
            raise Refusal(95007, "invalid msg token")
        return
    corp.tokenless_pulls = [t for t in corp.tokenless_pulls if t > now - 60]
    if len(corp.tokenless_pulls) >= world.tokenless_pulls_per_minute:
        raise Refusal(45009, "api freq out of limit: sync_msg without a token")
    corp.tokenless_pulls.append(now)


def _cursor(kf: KfAccountOfCorp, position: int) -> str:
    cursor = secrets.token_urlsafe(12)
    kf.log.cursors[cursor] = position
    return cursor


def sync_msg(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    kf = kf_account(corp, payload.get("open_kfid"))
    limit = payload.get("limit", MAX_PAGE)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise Refusal(40058, "invalid parameter, limit is 1..1000")
    if payload.get("voice_format", 0) not in (0, 1):
        raise Refusal(40058, "invalid parameter, voice_format is 0 or 1")
    cursor = _optional_string(payload, "cursor", 64)
    token = _optional_string(payload, "token", 128)
    if cursor and cursor not in kf.log.cursors:
        raise Refusal(40058, "invalid parameter, unknown cursor")
    _pull_allowed(world, corp, kf, token)
    log = kf.log
    cutoff = world.now() - RETENTION
    while log.messages and log.messages[0].send_time < cutoff:  # older than 3 days: gone
        log.messages.pop(0)
    position = log.cursors[cursor] if cursor else 0
    rate = world.empty_page_rate
    if rate > 0 and world.random.random() < rate:
        return {**OK, "next_cursor": _cursor(kf, position), "has_more": 1, "msg_list": []}
    remaining = [m for m in log.messages if m.seq >= position]
    page = remaining[:limit]
    following = page[-1].seq + 1 if page else position
    return {
        **OK,
        "next_cursor": _cursor(kf, following),
        "has_more": int(len(remaining) > limit),
        "msg_list": [dict(m.item) for m in page],
    }


def _msgid(kf: KfAccountOfCorp, payload: dict[str, Any]) -> str:
    msgid = payload.get("msgid")
    if msgid is None or msgid == "":
        return new_msgid()
    if not isinstance(msgid, str) or len(msgid) > 32 or not ID_CHARS.fullmatch(msgid):
        raise Refusal(40058, "invalid parameter, msgid is at most 32 bytes of [0-9a-zA-Z_-]")
    if msgid in kf.log.msgids:
        raise Refusal(DUPLICATE_MSGID, "msgid already used on this kf account")
    return msgid


def send_failed(
    world: World, corp: Corp, kf: KfAccountOfCorp, session: Session, msgid: str, fail_type: int
) -> None:
    """Report a message that never reached the customer, as WeChat does: a msg_send_fail event
    in the account's log (pushed like any other event)."""
    event = {
        "event_type": "msg_send_fail",
        "open_kfid": kf.open_kfid,
        "external_userid": session.external_userid,
        "fail_msgid": msgid,
        "fail_type": fail_type,
    }
    item = {
        "msgid": new_msgid(),
        "send_time": int(world.now()),
        "origin": 4,
        "msgtype": "event",
        "event": event,
    }
    world.log_kf_message(corp, kf, item)


def send_msg(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    kf = kf_account(corp, payload.get("open_kfid"))
    touser = required(payload, "touser")
    msgtype, content = checked_content(world, corp, payload)
    msgid = _msgid(kf, payload)
    session = session_of(kf, touser)
    if session.state == 4:
        raise Refusal(95013, "the session has ended")
    if session.state not in (0, 1):
        raise Refusal(95018, "send msg session status invalid")
    kf.log.msgids.add(msgid)
    now = world.now()
    opened = session.window_opened_at
    fail_type = None
    if opened is None or now - opened > WINDOW:
        fail_type = FAIL_WINDOW
    elif session.window_sends >= WINDOW_BUDGET:
        fail_type = FAIL_BUDGET
    else:
        session.window_sends += 1
        session.state = 1
    sent = WeComSentMessage(
        kf.open_kfid, touser, msgid, msgtype, content, now, fail_type is None, fail_type
    )
    world.kf_sent.append(sent)
    if fail_type is not None:
        send_failed(world, corp, kf, session, msgid, fail_type)
    return {**OK, "msgid": msgid}


def send_msg_on_event(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    value = required(payload, "code")
    if payload.get("msgtype") not in ("text", "msgmenu"):
        raise Refusal(40058, "invalid parameter, send_msg_on_event sends text or msgmenu")
    code = corp.codes.get(value)
    if code is None or code.used or code.expires_at <= world.now():
        raise Refusal(INVALID_EVENT_CODE, "invalid code: unknown, used or expired")
    msgtype, content = checked_content(world, corp, payload, CODE_KINDS[code.kind][1])
    kf = kf_account(corp, code.open_kfid)
    msgid = _msgid(kf, payload)
    code.used = True
    kf.log.msgids.add(msgid)
    world.kf_sent.append(
        WeComSentMessage(
            kf.open_kfid,
            code.external_userid,
            msgid,
            msgtype,
            content,
            world.now(),
            via="send_msg_on_event",
        )
    )
    return {**OK, "msgid": msgid}
