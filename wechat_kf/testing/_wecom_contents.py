"""What the fake's WeCom ``send_msg`` and ``send_msg_on_event`` accept as a message: each
msgtype's object with its documented fields (wechat-api.md section 7), anything else 40058 (a
link sent as ``news``, a location inside a ``msgmenu``...), and media ids the corp stored
(40007)."""

from __future__ import annotations

from typing import Any

from ._faults import Refusal
from ._state import Corp, World
from ._wecom_kf import live_media

__all__ = ["MAX_TEXT_BYTES", "checked_content"]

MAX_TEXT_BYTES = 2048
#: Each msgtype's fields: required, and optional.
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text": (("content",), ()),
    "image": (("media_id",), ()),
    "voice": (("media_id",), ()),
    "video": (("media_id",), ()),
    "file": (("media_id",), ()),
    "link": (("title", "url", "thumb_media_id"), ("desc",)),
    "miniprogram": (("appid", "thumb_media_id", "pagepath"), ("title",)),
    "msgmenu": ((), ("head_content", "tail_content")),
    "location": ((), ("name", "address")),
    "ca_link": (("link_url",), ()),
}
#: Each menu item type's fields: required, and optional.
_MENU_ITEMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "click": (("content",), ("id",)),
    "view": (("url", "content"), ()),
    "miniprogram": (("appid", "pagepath", "content"), ()),
    "text": (("content",), ()),
}


def _refuse(why: str) -> Refusal:
    return Refusal(40058, f"invalid parameter, {why}")


Spec = tuple[tuple[str, ...], tuple[str, ...]]


def _strings(obj: dict[str, Any], spec: Spec, where: str) -> None:
    required, optional = spec
    for name in required:
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise _refuse(f"{where}.{name} is required")
    for name in optional:
        if name in obj and not isinstance(obj[name], str):
            raise _refuse(f"{where}.{name} must be a string")


def _number(value: object, bound: float, where: str) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not -bound <= value <= bound:  # type: ignore[operator]
        raise _refuse(f"{where} must be a number within +-{bound}")


def _menu(content: dict[str, Any]) -> None:
    items = content.get("list")
    if not isinstance(items, list) or not items:
        raise _refuse("msgmenu.list must be a non-empty list")
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in _MENU_ITEMS:
            raise _refuse("a msgmenu item is click, view, miniprogram or text")
        inner = item.get(kind)
        if not isinstance(inner, dict):
            raise _refuse(f"a msgmenu {kind} item carries its {kind} object")
        _strings(inner, _MENU_ITEMS[kind], f"msgmenu.list.{kind}")
        no_newline = inner.get("no_newline", 0)
        if kind == "text" and (no_newline not in (0, 1) or isinstance(no_newline, bool)):
            raise _refuse("msgmenu.list.text.no_newline is 0 or 1")


def checked_content(
    world: World, corp: Corp, payload: dict[str, Any], allowed: frozenset[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """The msgtype and its object, checked; ``allowed`` narrows the msgtypes."""
    msgtype = payload.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in _FIELDS:
        raise _refuse(f"msgtype {msgtype!r} is not one WeCom sends")
    if allowed is not None and msgtype not in allowed:
        raise _refuse(f"msgtype {msgtype} is not allowed here")
    content = payload.get(msgtype)
    if not isinstance(content, dict):
        raise _refuse(f"the {msgtype} object is missing")
    _strings(content, _FIELDS[msgtype], msgtype)
    text: str = content["content"] if msgtype == "text" else ""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise _refuse("text.content is over 2048 bytes")
    if msgtype == "msgmenu":
        _menu(content)
    if msgtype == "location":
        _number(content.get("latitude"), 90, "location.latitude")
        _number(content.get("longitude"), 180, "location.longitude")
    for name in ("media_id", "thumb_media_id"):
        if name in content:
            live_media(world, corp, content[name])
    return msgtype, content
