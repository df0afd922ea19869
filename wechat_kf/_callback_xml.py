"""The XML side of WeChat's callbacks: a hardened parse of what came over the wire, the callback
models built from it, and the envelope of an encrypted reply.

Nothing here raises for bad input: a failure is returned as a :class:`Refusal`, so that the
public methods in :mod:`wechat_kf.callbacks` raise their ``CallbackError`` from a frame whose
local variables hold no decrypted byte (error trackers record those variables).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeAlias
from xml.etree.ElementTree import Element, ParseError

import attrs
import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from ._secrets import Secret, hide

__all__ = [
    "MAX_BODY_BYTES",
    "AuthChange",
    "Callback",
    "ComponentVerifyTicket",
    "KfMsgOrEvent",
    "OfficialAccountMessage",
    "Refusal",
    "SuiteTicket",
    "UnknownCallback",
    "envelope",
    "fields_of",
    "model_of",
]

#: The largest body (and so the largest decrypted message) read at all. WeChat's pushes are a few
#: hundred bytes and an Official Account message at most a few KiB; a MiB leaves room without
#: letting a stranger make a parser hold much.
MAX_BODY_BYTES = 1024 * 1024

#: The fields whose values are credentials: never shown in a repr.
_SECRET_KEYS = re.compile(r"(Ticket|Token|Code)$")

#: The OA-side InfoType values that announce a change of authorization (open platform and WeCom
#: service provider alike).
AUTH_CHANGES = frozenset(
    {"authorized", "updateauthorized", "unauthorized", "create_auth", "cancel_auth", "change_auth"}
)


class Refusal(NamedTuple):
    """Why a callback was refused: the ``CallbackError`` reason and a text without secrets."""

    reason: str
    message: str


def _hidden(value: str) -> str:
    return Secret(value)


def _utc(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


@attrs.frozen
class KfMsgOrEvent:
    """WeCom's ``kf_msg_or_event`` push: news for ``open_kfid``; pull it with ``sync_msg``,
    passing ``token`` (valid 10 minutes). ``corpid`` is the ToUserName, ``create_time`` an aware
    UTC datetime. The token is hidden from reprs."""

    corpid: str
    open_kfid: str
    token: str = attrs.field(converter=_hidden)
    create_time: datetime


@attrs.frozen
class ComponentVerifyTicket:
    """The open platform's ``component_verify_ticket`` push (every 10 minutes, valid 12 hours):
    what a third-party platform needs for its component_access_token. Hidden from reprs."""

    component_appid: str
    ticket: str = attrs.field(converter=_hidden)
    create_time: datetime


@attrs.frozen
class SuiteTicket:
    """The WeCom service provider's ``suite_ticket`` push (every 10 minutes, valid 30 minutes):
    what a suite needs for its suite_access_token. Hidden from reprs."""

    suite_id: str
    ticket: str = attrs.field(converter=_hidden)
    create_time: datetime


@attrs.frozen
class AuthChange:
    """A change of authorization: ``info_type`` is one of authorized, updateauthorized,
    unauthorized (open platform) or create_auth, cancel_auth, change_auth (WeCom service
    provider); ``fields`` holds every element as sent (codes hidden from reprs)."""

    info_type: str
    fields: dict[str, str]


@attrs.frozen
class OfficialAccountMessage:
    """A message or event pushed to an Official Account (or a WeCom app): ``msg_type`` (text,
    image, event...), ``event`` (subscribe, CLICK, kf_create_session... or None), the sender
    ``from_user`` (an openid), ``to_user`` and ``create_time``; ``fields`` holds every element."""

    msg_type: str
    event: str | None
    from_user: str
    to_user: str
    create_time: datetime
    fields: dict[str, str]


@attrs.frozen
class UnknownCallback:
    """A push of a shape the SDK does not model (or that lacks a field its model needs): every
    element as sent, so that nothing new is ever an exception."""

    fields: dict[str, str]


Callback: TypeAlias = (
    KfMsgOrEvent
    | ComponentVerifyTicket
    | SuiteTicket
    | AuthChange
    | OfficialAccountMessage
    | UnknownCallback
)
"""Any push :meth:`CallbackCrypto.decrypt <wechat_kf.callbacks.CallbackCrypto.decrypt>` returns."""


def fields_of(data: bytes | str) -> dict[str, str] | Refusal:
    """Every leaf element of an XML document, by its path below the root (``Content``,
    ``ScanCodeInfo/ScanResult``; the first of repeated ones), parsed with DTDs, entities and
    external references refused, and the size capped."""
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > MAX_BODY_BYTES:
        return Refusal("xml", f"the XML is over {MAX_BODY_BYTES} bytes")
    try:
        root = safe_xml.fromstring(data, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException:
        return Refusal("xml", "the XML declares a DTD or an entity")
    except (ParseError, ValueError, LookupError):
        return Refusal("xml", "the XML is not well-formed")
    fields: dict[str, str] = {}
    # An explicit stack: a deeply nested document must not exhaust Python's recursion limit.
    pending: list[tuple[str, Element]] = [("", root)]
    while pending:
        prefix, element = pending.pop()
        children = list(element)
        if not children and prefix:
            fields.setdefault(prefix, element.text or "")
        for child in reversed(children):
            pending.append((f"{prefix}/{child.tag}" if prefix else str(child.tag), child))
    return fields


def model_of(fields: dict[str, str]) -> Callback:
    """The model for a decrypted push; anything unexpected is an :class:`UnknownCallback`."""
    shown = {k: hide(v) if _SECRET_KEYS.search(k) else v for k, v in fields.items()}
    try:
        return _model(fields, shown)
    except (KeyError, ValueError, OverflowError, OSError):
        # A field missing or a time that is not a number: a shape the models do not cover.
        return UnknownCallback(shown)


def _model(fields: dict[str, str], shown: dict[str, str]) -> Callback:
    info_type = fields.get("InfoType")
    msg_type = fields.get("MsgType")
    if info_type == "component_verify_ticket":
        return ComponentVerifyTicket(
            fields["AppId"], fields["ComponentVerifyTicket"], _utc(fields["CreateTime"])
        )
    if info_type == "suite_ticket":
        # WeCom's service-provider pushes carry TimeStamp where the others have CreateTime.
        when = fields.get("TimeStamp") or fields["CreateTime"]
        return SuiteTicket(fields["SuiteId"], fields["SuiteTicket"], _utc(when))
    if info_type in AUTH_CHANGES:
        return AuthChange(info_type, shown)
    if msg_type == "event" and fields.get("Event") == "kf_msg_or_event":
        return KfMsgOrEvent(
            fields["ToUserName"], fields["OpenKfId"], fields["Token"], _utc(fields["CreateTime"])
        )
    if msg_type and info_type is None:
        return OfficialAccountMessage(
            msg_type,
            fields.get("Event"),
            fields["FromUserName"],
            fields["ToUserName"],
            _utc(fields["CreateTime"]),
            shown,
        )
    return UnknownCallback(shown)


def envelope(encrypt: str, signature: str, timestamp: str, nonce: str) -> str:
    """The XML WeChat posts (and an Official Account's encrypted passive reply): the four values
    are base64, hex, digits and a checked nonce, so none can close its CDATA section."""
    return (
        f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
