"""The state of WeCom 微信客服 conversations the fake keeps: media, customers, sessions, the
message log that ``sync_msg`` reads, the codes ``send_msg_on_event`` takes, and what the API
sent. The rules that read and change it are in ``_wecom_kf`` and ``_wecom_messages``."""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

__all__ = [
    "CODE_KINDS",
    "CustomerState",
    "EventCode",
    "KfLog",
    "LoggedMessage",
    "Media",
    "Session",
    "SyncToken",
    "WeComSentMessage",
    "customer_profile",
]

#: Media live this long after their upload (then 40007).
MEDIA_LIFETIME = 3 * 86400.0
#: Messages are kept for sync_msg this long.
RETENTION = 3 * 86400.0
#: The window a customer's message opens, and how many API messages it allows.
WINDOW = 48 * 3600.0
WINDOW_BUDGET = 5
#: A kf_msg_or_event token is accepted this long by sync_msg.
SYNC_TOKEN_LIFETIME = 600.0

#: What each kind of event code allows: (lifetime in seconds, the msgtypes it may send).
CODE_KINDS: dict[str, tuple[float, frozenset[str]]] = {
    "welcome": (20.0, frozenset({"text", "msgmenu"})),
    "pool": (WINDOW, frozenset({"text"})),
    "human": (WINDOW, frozenset({"text"})),
    "end": (20.0, frozenset({"text", "msgmenu"})),
}


@attrs.frozen
class Media:
    """A file uploaded with ``media/upload``: its type, bytes, filename, content type and when
    it was uploaded (on the fake's clock)."""

    media_id: str
    type: str
    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    filename: str
    content_type: str
    created_at: float


@attrs.define
class CustomerState:
    """A WeChat user who wrote to a 微信客服 account of the corp: the profile ``customer/batchget``
    answers (made up from the external_userid, the same every time), when they last wrote or
    entered a session, and the context of their last ``enter_session``. The fake's record, not
    ``wechat_kf.Customer`` (what ``wc.customers.get`` returns)."""

    external_userid: str
    nickname: str
    avatar: str
    gender: int
    unionid: str
    last_seen_at: float = 0.0
    enter_session_context: dict[str, Any] | None = None


def customer_profile(external_userid: str) -> CustomerState:
    """A customer whose profile is derived from the external_userid alone (deterministic)."""
    digest = hashlib.sha256(external_userid.encode("utf-8", "surrogatepass")).hexdigest()
    return CustomerState(
        external_userid=external_userid,
        nickname=f"客户{digest[:6]}",
        avatar=f"https://wx.qlogo.cn/mmhead/{digest[:32]}/0",
        gender=int(digest[6], 16) % 3,
        unionid="o" + digest[7:35],
    )


@attrs.define
class Session:
    """A customer's session with one 微信客服 account: its state (0 untreated, 1 smart assistant,
    2 pool, 3 human, 4 ended), the servicer in state 3, when the customer last wrote (the 48-h
    window) and how many API messages that window has used."""

    open_kfid: str
    external_userid: str
    state: int = 0
    servicer_userid: str | None = None
    window_opened_at: float | None = None
    window_sends: int = 0


@attrs.frozen
class LoggedMessage:
    """One item ``sync_msg`` hands out: its place in the account's log and its send time."""

    seq: int
    send_time: float
    item: dict[str, Any]


@attrs.define
class KfLog:
    """A 微信客服 account's received messages and events in order, the cursors handed out (opaque
    strings, each naming a place in the log), and every msgid the API used on it."""

    messages: list[LoggedMessage] = attrs.Factory(list)
    cursors: dict[str, int] = attrs.Factory(dict)
    msgids: set[str] = attrs.Factory(set)
    next_seq: int = 0


@attrs.define
class EventCode:
    """A code ``send_msg_on_event`` takes: a welcome_code or a msg_code, whose session it is
    for, its kind (see :data:`CODE_KINDS`), until when it is accepted and whether it was used."""

    code: str
    kind: str
    open_kfid: str
    external_userid: str
    expires_at: float
    used: bool = False


@attrs.frozen
class SyncToken:
    """A token a kf_msg_or_event push carried: which account it pulls and until when."""

    token: str
    open_kfid: str
    expires_at: float


@attrs.frozen
class WeComSentMessage:
    """A message the API sent (``send_msg`` or ``send_msg_on_event``): the account, the
    customer (``touser``), the msgid, the msgtype and its content as sent, when (the fake's
    clock), the path it came through, and whether it reached the customer: ``delivered`` False
    with ``fail_type`` 4 (past the 48-h window) or 6 (over the 5-message budget), which a
    ``msg_send_fail`` event in sync_msg also reports. The fake's record of a send, not
    ``wechat_kf.SentMessage`` (what ``wc.messages.send`` returns)."""

    open_kfid: str
    touser: str
    msgid: str
    msgtype: str
    content: dict[str, Any]
    time: float
    delivered: bool = True
    fail_type: int | None = None
    via: str = "send_msg"
