"""What is received: the items of WeCom's ``kf/sync_msg`` ``msg_list[]`` as typed, frozen models.

:func:`parse_message` turns one item into a :class:`KfMessage`: one class per message type
(:class:`TextMessage`, :class:`ImageMessage`, ...), one per event (:class:`EnterSessionEvent`,
...; every event is a :class:`KfEvent`, itself a :class:`KfMessage`), and
:class:`UnknownMessage` / :class:`UnknownEvent` for everything else. It never raises for any JSON
value: a type WeChat adds later, or a known type whose fields are missing or of a surprising
type, becomes an Unknown* that keeps the item in ``raw`` and says why in ``reason``, never a
half-typed object. So one odd item never fails a page.

The readings this module accepts beyond the documented types, and nothing looser: an id sent as
an integer (``msgid``) becomes its decimal string; integers (``send_time``, ``origin``,
``fail_type``, ...) may be decimal strings; coordinates may be decimal strings. ``send_time``
must be whole unix seconds; it becomes an aware UTC datetime.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from . import _kf_fields as _f

__all__ = [
    "BusinessCardMessage",
    "EnterSessionEvent",
    "FileMessage",
    "ImageMessage",
    "KfEvent",
    "KfMessage",
    "LinkMessage",
    "LocationMessage",
    "MenuMessage",
    "MessageOrigin",
    "MiniprogramMessage",
    "MsgSendFailEvent",
    "RecallEvent",
    "ServicerStatusChangeEvent",
    "SessionStatusChangeEvent",
    "TextMessage",
    "UnknownEvent",
    "UnknownMessage",
    "VideoMessage",
    "VoiceMessage",
    "parse_message",
    "parse_messages",
]


class MessageOrigin(enum.IntEnum):
    """Who produced a received item: the customer (3), WeChat's system, for events (4), or a
    servicer writing in the WeCom app (5). A value WeChat adds later is kept as a plain int."""

    CUSTOMER = 3
    EVENT = 4
    SERVICER = 5


# --- the models -----------------------------------------------------------------------------
#
# The base types its common fields loosely, because an Unknown* may lack any of them; every
# modelled type narrows them again (a TextMessage always has an open_kfid and a send_time), so
# code that has matched a type never checks for None. ``raw`` and the other dict-valued fields
# are compared but not hashed: hash(message) works, and equal messages still hash alike.


@attrs.frozen(kw_only=True)
class KfMessage:
    """Any received item. ``msgid`` identifies it (the same item can come back from a later pull),
    ``msgtype`` is WeChat's (``"event"`` for events), ``open_kfid`` names the kf account,
    ``external_userid`` the customer, ``send_time`` is an aware UTC datetime, ``origin`` a
    :class:`MessageOrigin` (or the int WeChat sent, for a value added later), ``servicer_userid``
    the servicer where WeChat names one, and ``raw`` the item as received (a shallow copy). Every
    modelled type has an open_kfid, a send_time and an origin, and every message type and
    :class:`EnterSessionEvent` an external_userid; only an Unknown* may lack them (None, or ``""``
    for a missing msgid or msgtype)."""

    msgid: str
    msgtype: str
    external_userid: str | None
    servicer_userid: str | None
    open_kfid: str | None
    send_time: datetime | None
    origin: MessageOrigin | int | None
    raw: dict[str, Any] = attrs.field(repr=False, hash=False)


@attrs.frozen(kw_only=True)
class _Message(KfMessage):
    # A modelled message always names its kf account and customer, and when and whence it came.
    open_kfid: str
    external_userid: str
    send_time: datetime
    origin: MessageOrigin | int


@attrs.frozen(kw_only=True)
class TextMessage(_Message):
    """A text, with the ``menu_id`` of the :class:`~wechat_kf.MenuClick` item the customer tapped
    to send it, if they did."""

    content: str
    menu_id: str | None = None


@attrs.frozen(kw_only=True)
class ImageMessage(_Message):
    """An image; ``media_id`` downloads it (valid 3 days)."""

    media_id: str


@attrs.frozen(kw_only=True)
class VoiceMessage(_Message):
    """A voice message; ``media_id`` downloads it (amr, or silk when the pull asked for it)."""

    media_id: str


@attrs.frozen(kw_only=True)
class VideoMessage(_Message):
    """A video; ``media_id`` downloads it."""

    media_id: str


@attrs.frozen(kw_only=True)
class FileMessage(_Message):
    """A file; ``media_id`` downloads it."""

    media_id: str


@attrs.frozen(kw_only=True)
class LocationMessage(_Message):
    """A map location: ``latitude`` and ``longitude`` as floats, the place's ``name`` and
    ``address`` (None when WeChat leaves them out)."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@attrs.frozen(kw_only=True)
class LinkMessage(_Message):
    """A shared link: its ``url``, and the ``title``, ``desc`` and ``pic_url`` (thumbnail) WeChat
    shows, each None when left out."""

    url: str
    title: str | None = None
    desc: str | None = None
    pic_url: str | None = None


@attrs.frozen(kw_only=True)
class BusinessCardMessage(_Message):
    """A WeCom member's business card: the member's ``userid``."""

    userid: str


@attrs.frozen(kw_only=True)
class MiniprogramMessage(_Message):
    """A mini program card: the mini program's ``appid`` and the ``pagepath`` it opens, with its
    ``title`` and ``thumb_media_id`` (cover) when WeChat sends them."""

    appid: str
    pagepath: str
    title: str | None = None
    thumb_media_id: str | None = None


@attrs.frozen(kw_only=True)
class MenuMessage(_Message):
    """A menu (sent by a servicer in the WeCom app): ``head_content``, the menu ``items`` as WeChat
    sent them (dicts such as ``{"type": "click", "click": {"id": ..., "content": ...}}``) and
    ``tail_content``."""

    items: tuple[dict[str, Any], ...] = attrs.field(hash=False)
    head_content: str | None = None
    tail_content: str | None = None


@attrs.frozen(kw_only=True)
class UnknownMessage(KfMessage):
    """An item wechat_kf does not model: a msgtype it does not know (``channels_shop_product``,
    ``merged_msg``, ``note``, or one WeChat adds later), or a known one that could not be read
    (a field missing or of a surprising type). ``reason`` says which; ``raw`` holds the item. A
    value that was not a JSON object at all is kept as ``raw == {"value": item}``."""

    reason: str


@attrs.frozen(kw_only=True)
class KfEvent(KfMessage):
    """Any event (msgtype ``"event"``, origin 4). ``event_type`` is the event's kind (None only on
    an :class:`UnknownEvent` without one); ``open_kfid``, ``external_userid`` and
    ``servicer_userid`` are read from inside the ``event`` object, where WeChat puts them
    (falling back to the top level of the item)."""

    event_type: str | None


@attrs.frozen(kw_only=True)
class _Event(KfEvent):
    open_kfid: str
    send_time: datetime
    origin: MessageOrigin | int
    event_type: str


@attrs.frozen(kw_only=True)
class EnterSessionEvent(_Event):
    """A customer opened the conversation. ``scene`` and ``scene_param`` are those of the contact
    link they came through; ``welcome_code`` (present only when a welcome message may be sent)
    allows one message through ``send_on_event`` within 20 s; ``wechat_channels`` describes a
    视频号 entry, when WeChat sends it."""

    external_userid: str
    scene: str | None = None
    scene_param: str | None = None
    welcome_code: str | None = None
    wechat_channels: dict[str, Any] | None = attrs.field(default=None, hash=False)


@attrs.frozen(kw_only=True)
class MsgSendFailEvent(_Event):
    """A message the API sent was not delivered: its ``fail_msgid`` and WeChat's ``fail_type``
    (4 past the 48 h window, 6 over the 5-message budget, 10 the customer refuses messages; other
    values exist and are kept as they are)."""

    fail_msgid: str
    fail_type: int


@attrs.frozen(kw_only=True)
class ServicerStatusChangeEvent(_Event):
    """A servicer started or stopped taking conversations: ``servicer_userid``, ``status`` (1
    serving, 2 stopped: not the 0/1 of the servicer list) and ``stop_type`` when WeChat sends
    it."""

    servicer_userid: str
    status: int
    stop_type: int | None = None


@attrs.frozen(kw_only=True)
class SessionStatusChangeEvent(_Event):
    """A session changed hands: ``change_type`` (1 taken from the pool, 2 transferred, 3 ended,
    4 reopened), the ``old_servicer_userid`` and ``new_servicer_userid`` where they apply, and
    the ``msg_code`` that allows one message through ``send_on_event``, when WeChat gives one."""

    change_type: int
    old_servicer_userid: str | None = None
    new_servicer_userid: str | None = None
    msg_code: str | None = None


@attrs.frozen(kw_only=True)
class RecallEvent(_Event):
    """A message was recalled, by the customer (``event_type`` ``"user_recall_msg"``) or a
    servicer (``"servicer_recall_msg"``): ``recall_msgid`` names it."""

    event_type: Literal["user_recall_msg", "servicer_recall_msg"]
    recall_msgid: str


@attrs.frozen(kw_only=True)
class UnknownEvent(KfEvent):
    """An event wechat_kf does not model (``reject_customer_msg_switch_change``, or one WeChat adds
    later), or a known one that could not be read. ``reason`` says which; ``raw`` holds the
    item."""

    reason: str


# --- reading ----------------------------------------------------------------------------------

_Parse = Callable[[Mapping[str, Any], dict[str, Any]], KfMessage]


def _message(item: dict[str, Any]) -> KfMessage:
    msgtype = item.get("msgtype", _f.MISSING)
    if not isinstance(msgtype, str):
        raise _f.Unfit(f"msgtype is {_f.what(msgtype)}, not a str")
    parse = _MESSAGES.get(msgtype)
    if parse is None:
        raise _f.Unfit(f"msgtype {msgtype!r} is not one wechat_kf models")
    common = _needs({**_f.common(item, item, MessageOrigin), "raw": item}, "external_userid")
    return parse(_f.body(item, msgtype), common)


def _event(item: dict[str, Any]) -> KfMessage:
    event = _f.body(item, "event")
    event_type = _f.string(event, "event_type", "event.")
    parse = _EVENTS.get(event_type)
    if parse is None:
        raise _f.Unfit(f"event_type {event_type!r} is not one wechat_kf models")
    common = _f.common(item, event, MessageOrigin)
    return parse(event, {**common, "raw": item, "event_type": event_type})


def _needs(common: dict[str, Any], key: str) -> dict[str, Any]:
    # An id that is optional on the base but always present on this type (read with fallback).
    if common[key] is None:
        raise _f.Unfit(f"{key} is missing")
    return common


def _media(cls: type[ImageMessage | VoiceMessage | VideoMessage | FileMessage]) -> _Parse:
    def parse(body: Mapping[str, Any], common: dict[str, Any]) -> KfMessage:
        return cls(**common, media_id=_f.string(body, "media_id", f"{common['msgtype']}."))

    return parse


def _menu(body: Mapping[str, Any], common: dict[str, Any]) -> KfMessage:
    entries = body.get("list", _f.MISSING)
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise _f.Unfit(f"msgmenu.list is {_f.what(entries)}, not a list of objects")
    return MenuMessage(
        **common,
        items=tuple(entries),
        head_content=_f.opt_string(body, "head_content", "msgmenu."),
        tail_content=_f.opt_string(body, "tail_content", "msgmenu."),
    )


def _recall(event: Mapping[str, Any], common: dict[str, Any]) -> KfMessage:
    return RecallEvent(**common, recall_msgid=_f.string(event, "recall_msgid", "event."))


# Each takes the type's own object (item[msgtype], or item["event"]) and the common fields.
_MESSAGES: dict[str, _Parse] = {
    "text": lambda b, c: TextMessage(
        **c, content=_f.string(b, "content", "text."), menu_id=_f.opt_string(b, "menu_id", "text.")
    ),
    "image": _media(ImageMessage),
    "voice": _media(VoiceMessage),
    "video": _media(VideoMessage),
    "file": _media(FileMessage),
    "location": lambda b, c: LocationMessage(
        **c,
        latitude=_f.finite(b, "latitude", "location."),
        longitude=_f.finite(b, "longitude", "location."),
        name=_f.opt_string(b, "name", "location."),
        address=_f.opt_string(b, "address", "location."),
    ),
    "link": lambda b, c: LinkMessage(
        **c,
        url=_f.string(b, "url", "link."),
        title=_f.opt_string(b, "title", "link."),
        desc=_f.opt_string(b, "desc", "link."),
        pic_url=_f.opt_string(b, "pic_url", "link."),
    ),
    "business_card": lambda b, c: BusinessCardMessage(
        **c, userid=_f.string(b, "userid", "business_card.")
    ),
    "miniprogram": lambda b, c: MiniprogramMessage(
        **c,
        appid=_f.string(b, "appid", "miniprogram."),
        pagepath=_f.string(b, "pagepath", "miniprogram."),
        title=_f.opt_string(b, "title", "miniprogram."),
        thumb_media_id=_f.opt_string(b, "thumb_media_id", "miniprogram."),
    ),
    "msgmenu": _menu,
}

_EVENTS: dict[str, _Parse] = {
    "enter_session": lambda e, c: EnterSessionEvent(
        **_needs(c, "external_userid"),
        scene=_f.opt_string(e, "scene", "event."),
        scene_param=_f.opt_string(e, "scene_param", "event."),
        welcome_code=_f.opt_string(e, "welcome_code", "event."),
        wechat_channels=_f.opt_object(e, "wechat_channels", "event."),
    ),
    "msg_send_fail": lambda e, c: MsgSendFailEvent(
        **c,
        fail_msgid=_f.string(e, "fail_msgid", "event."),
        fail_type=_f.integer(e, "fail_type", "event."),
    ),
    "servicer_status_change": lambda e, c: ServicerStatusChangeEvent(
        **_needs(c, "servicer_userid"),
        status=_f.integer(e, "status", "event."),
        stop_type=_f.opt_integer(e, "stop_type", "event."),
    ),
    "session_status_change": lambda e, c: SessionStatusChangeEvent(
        **c,
        change_type=_f.integer(e, "change_type", "event."),
        old_servicer_userid=_f.opt_string(e, "old_servicer_userid", "event."),
        new_servicer_userid=_f.opt_string(e, "new_servicer_userid", "event."),
        msg_code=_f.opt_string(e, "msg_code", "event."),
    ),
    "user_recall_msg": _recall,
    "servicer_recall_msg": _recall,
}


def parse_message(item: Mapping[str, Any]) -> KfMessage:
    """One ``msg_list[]`` item as its :class:`KfMessage` type. Never raises: an item that cannot be
    modelled (an unknown msgtype or event_type, a field missing or of a surprising type, a
    ``send_time`` that is not whole unix seconds) is an :class:`UnknownMessage`, or an
    :class:`UnknownEvent` when its msgtype is ``"event"``, with the item in ``raw`` and the cause
    in ``reason``; a value that is not a JSON object is an UnknownMessage with
    ``raw == {"value": item}``."""
    if not isinstance(item, Mapping):
        raw: dict[str, Any] = {"value": item}
        reason = f"the item is {_f.what(item)}, not a JSON object"
        return UnknownMessage(**_f.lenient(raw, {}, MessageOrigin), raw=raw, reason=reason)
    raw = dict(item)
    is_event = raw.get("msgtype") == "event"
    try:
        return _event(raw) if is_event else _message(raw)
    except _f.Unfit as unfit:
        reason = str(unfit)
    except Exception as error:
        # The readers raise only Unfit; this keeps the promise that one item never fails a
        # page, should an item still surprise them.
        reason = f"could not be read: {type(error).__name__}: {error}"
    if not is_event:
        return UnknownMessage(**_f.lenient(raw, raw, MessageOrigin), raw=raw, reason=reason)
    event = raw.get("event")
    source = event if isinstance(event, Mapping) else {}
    event_type = source.get("event_type")
    return UnknownEvent(
        **_f.lenient(raw, source, MessageOrigin),
        raw=raw,
        reason=reason,
        event_type=event_type if isinstance(event_type, str) else None,
    )


def parse_messages(items: Iterable[Any]) -> list[KfMessage]:
    """Every item of a ``msg_list`` through :func:`parse_message`, in order; an item that is not a
    JSON object is an :class:`UnknownMessage` with ``raw == {"value": item}``, never an error."""
    return [parse_message(item) for item in items]
