"""WeCom 微信客服 messages: one page of what customers sent (``sync_msg``), and sending to them
(``send_msg``, ``send_msg_on_event``) with a msgid that makes every re-send harmless."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .. import _validate
from .._serde import as_int
from .._transport import Transport
from ..contents import Content, Menu, Text
from ..errors import InvalidResponseError
from ..hooks import Hooks
from ..kf_messages import parse_messages
from ..models import SentMessage, SyncPage

__all__ = ["Messages"]

_SYNC = "/cgi-bin/kf/sync_msg"
_SEND = "/cgi-bin/kf/send_msg"
_SEND_ON_EVENT = "/cgi-bin/kf/send_msg_on_event"
#: WeChat's msgid: at most 32 bytes of these characters (40058 otherwise).
_MSGID = re.compile(r"[0-9A-Za-z_-]{1,32}")
MAX_CURSOR_BYTES = 64
MAX_TOKEN_BYTES = 128
MAX_LIMIT = 1000


def _msgid(msgid: str | None) -> str:
    if msgid is None:
        # Chosen here, once, so that every attempt of the call carries the same id: WeChat
        # refuses a msgid it has seen, so a re-sent request can never deliver a second copy.
        return secrets.token_hex(16)
    if not isinstance(msgid, str):
        raise TypeError(f"msgid must be a str, not {type(msgid).__name__}")
    if not _MSGID.fullmatch(msgid):
        raise ValueError("msgid must be 1..32 characters of letters, digits, '_' or '-'")
    return msgid


def _bounded(name: str, value: str | None, max_bytes: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{name} must encode as UTF-8") from None
    if not 0 < size <= max_bytes:
        raise ValueError(f"{name} must be 1..{max_bytes} bytes")
    return value


def _content(content: object, allowed: tuple[type, ...] | None = None) -> dict[str, Any]:
    if allowed is not None and not isinstance(content, allowed):
        names = " or ".join(cls.__name__ for cls in allowed)
        raise TypeError(f"send_on_event takes {names}, not {type(content).__name__}")
    wecom_json = getattr(content, "wecom_json", None)
    if wecom_json is None:
        raise TypeError(f"content must be a wechat_kf content (Text, Image, ...), not {content!r}")
    payload: dict[str, Any] = wecom_json()
    return payload


class Messages:
    """The messages of one WeCom corp's 微信客服 accounts (``client.messages``): ``sync`` reads
    one page of what customers sent (the inbox builds its loop on it), ``send`` answers a
    customer, ``send_on_event`` answers with the code an event gave. Every send carries a msgid
    (the caller's, or 32 random hex characters) that stays the same on every attempt, so a
    re-sent request can never deliver twice; a refusal after an attempt that may have applied is
    a ``TransportError(maybe_applied=True)`` naming the msgid."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @property
    def hooks(self) -> Hooks:
        """The client's hooks, for the inbox built on these messages to report each pull and
        each message it settles to the same observers as the client's calls."""
        return self._transport.hooks

    async def sync(
        self,
        open_kfid: str,
        cursor: str | None = None,
        token: str | None = None,
        limit: int = MAX_LIMIT,
        *,
        voice_format: int | None = None,
    ) -> SyncPage:
        """One page of ``open_kfid``'s messages and events from ``cursor`` (None: the oldest of
        the last 3 days), with the ``token`` of the ``kf_msg_or_event`` callback that announced
        them (valid 10 minutes; without one WeChat rate-limits hard), at most ``limit``
        (1..1000). Pull again from ``page.next_cursor`` while ``page.has_more``, empty pages
        included. A message that cannot be modelled is an ``UnknownMessage`` / ``UnknownEvent``,
        never a failed page."""
        payload: dict[str, Any] = {"open_kfid": _validate.token_like("open_kfid", open_kfid)}
        if (checked := _bounded("cursor", cursor, MAX_CURSOR_BYTES)) is not None:
            payload["cursor"] = checked
        if (checked := _bounded("token", token, MAX_TOKEN_BYTES)) is not None:
            payload["token"] = checked
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError("limit must be an int")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        payload["limit"] = limit
        if voice_format is not None:
            if type(voice_format) is not int or voice_format not in (0, 1):
                raise ValueError("voice_format must be 0 (amr) or 1 (silk)")
            payload["voice_format"] = voice_format
        body = await self._transport.request("POST", _SYNC, json=payload, idempotent=True)
        return _page(body)

    async def send(
        self,
        open_kfid: str,
        external_userid: str,
        content: Content,
        msgid: str | None = None,
    ) -> SentMessage:
        """Send ``content`` to the customer ``external_userid`` from ``open_kfid``; WeChat takes
        it only while the session is in state 0 or 1 (``SessionStateError`` otherwise). Accepted
        is not delivered: over the 48-hour window or its 5 messages, WeChat answers success and
        later yields a ``msg_send_fail`` event naming the msgid."""
        payload = {
            "touser": _validate.token_like("external_userid", external_userid),
            "open_kfid": _validate.token_like("open_kfid", open_kfid),
            "msgid": _msgid(msgid),
            **_content(content),
        }
        return await self._send(_SEND, payload)

    async def send_on_event(
        self, code: str, content: Text | Menu, msgid: str | None = None
    ) -> SentMessage:
        """Send ``content`` (``Text`` or ``Menu``) with the code an event gave: an
        ``enter_session`` event's ``welcome_code`` (20 s) or a session change's ``msg_code``;
        one message per code."""
        payload = {
            "code": _validate.token_like("code", code),
            "msgid": _msgid(msgid),
            **_content(content, (Text, Menu)),
        }
        return await self._send(_SEND_ON_EVENT, payload)

    async def _send(self, path: str, payload: dict[str, Any]) -> SentMessage:
        msgid = payload["msgid"]
        body = await self._transport.request(
            "POST", path, json=payload, idempotent=True, idempotency_key=msgid
        )
        answered = body.get("msgid")
        return SentMessage(answered if isinstance(answered, str) and answered else msgid)


def _page(body: dict[str, Any]) -> SyncPage:
    items = body.get("msg_list", [])
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InvalidResponseError("'msg_list' is not a list", path=_SYNC)
    cursor = body.get("next_cursor") or None
    if cursor is not None and not (isinstance(cursor, str) and _encodes(cursor)):
        raise InvalidResponseError("'next_cursor' is not a UTF-8 string", path=_SYNC)
    has_more = as_int(body.get("has_more", 0))
    if has_more not in (0, 1):
        raise InvalidResponseError("'has_more' is not 0 or 1", path=_SYNC)
    if has_more and cursor is None:
        # Pulling on without a cursor would start again from the oldest message.
        raise InvalidResponseError("'has_more' is 1 but there is no 'next_cursor'", path=_SYNC)
    return SyncPage(parse_messages(items), cursor, has_more == 1)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
