"""What is sent to a customer: frozen contents, checked when built, that know their wire JSON.

Each content gives the object WeCom's ``kf/send_msg`` takes (:meth:`wecom_json`) and the one an
Official Account's ``message/custom/send`` takes (:meth:`official_account_json`), without the
addressing fields (``touser``, ``open_kfid``, ``msgid``, ``customservice``) the resources add.
Optional fields left as None are omitted from the wire, never sent as null. A bad value is a
``ValueError`` and a value of the wrong type a ``TypeError``, raised when the content is built,
so nothing half-checked reaches a batch of sends.

Byte limits are WeCom's documented ones (text 2,048, menu head and tail 1,024, a click item's text
128, a link's URL 2,048, a mini program appid 32). A link's title and description and a mini
program's title are not limited here: WeCom documents that it cuts them short itself.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import attrs

__all__ = [
    "Content",
    "File",
    "Image",
    "Link",
    "Location",
    "Menu",
    "MenuClick",
    "MenuItem",
    "MenuMiniprogram",
    "MenuText",
    "MenuView",
    "Miniprogram",
    "Text",
    "Video",
    "Voice",
]

MAX_TEXT_BYTES = 2048
MAX_MENU_ITEMS = 10
MAX_MENU_TEXT_BYTES = 1024
MAX_CLICK_ID_BYTES = 128
MAX_CLICK_CONTENT_BYTES = 128
MAX_URL_BYTES = 2048
MAX_APPID_BYTES = 32
MAX_PAGEPATH_BYTES = 1024

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _utf8_size(where: str, value: object) -> int:
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a str, not {type(value).__name__}")
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate passes every str check but fails when the request body is encoded.
        raise ValueError(f"{where} does not encode as UTF-8 (a lone surrogate?)") from None


def _text(max_bytes: int | None = None, *, optional: bool = False) -> _Validator:
    """A non-empty str of at most ``max_bytes`` UTF-8 bytes (None allowed when ``optional``)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        where = f"{type(instance).__name__}.{attribute.name}"
        size = _utf8_size(where, value)
        if size == 0:
            raise ValueError(f"{where} must not be empty")
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"{where} must be at most {max_bytes} UTF-8 bytes, got {size}")

    return check


def _token(max_bytes: int | None = None, *, optional: bool = False) -> _Validator:
    """A media id or appid: non-empty, no whitespace (a pasted id with a newline is a mistake
    WeChat would only answer with a vague 'invalid media_id')."""
    base = _text(max_bytes, optional=optional)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        base(instance, attribute, value)
        if isinstance(value, str) and any(ch.isspace() for ch in value):
            where = f"{type(instance).__name__}.{attribute.name}"
            raise ValueError(f"{where} must contain no whitespace, got {value!r}")

    return check


def _url(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    where = f"{type(instance).__name__}.{attribute.name}"
    size = _utf8_size(where, value)
    if not isinstance(value, str) or not 0 < size <= MAX_URL_BYTES:
        raise ValueError(f"{where} must be 1 to {MAX_URL_BYTES} UTF-8 bytes, got {size}")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{where} must contain no whitespace or control characters")
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"{where} is not a valid URL: {value!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{where} must be an absolute http(s) URL, got {value!r}")


def _bool(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        where = f"{type(instance).__name__}.{attribute.name}"
        raise TypeError(f"{where} must be a bool, not {type(value).__name__}")


def _coordinate(where: str, value: object, bound: float) -> float:
    # bool is an int: True as a latitude is a bug, never a coordinate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a float, not {type(value).__name__}")
    number = float(value) if abs(value) <= bound else math.inf  # a huge int overflows float()
    if not math.isfinite(number) or not -bound <= number <= bound:
        raise ValueError(f"{where} must be between -{bound:g} and {bound:g}, got {value!r}")
    return number


def _latitude(value: float) -> float:
    return _coordinate("Location.latitude", value, 90.0)


def _longitude(value: float) -> float:
    return _coordinate("Location.longitude", value, 180.0)


def _not_on_official_account(content: object) -> TypeError:
    return TypeError(
        f"{type(content).__name__} cannot be sent to an Official Account: its customer-service "
        "messages take Text, Image, Voice, Video, Menu (click items only) and Miniprogram"
    )


class _Content(abc.ABC):
    """The two wire forms every content has."""

    __slots__ = ()

    @abc.abstractmethod
    def wecom_json(self) -> dict[str, Any]:
        """The content as WeCom's ``kf/send_msg`` takes it: ``{"msgtype": name, name: {...}}``."""

    def official_account_json(self) -> dict[str, Any]:
        """The content as an Official Account's ``message/custom/send`` takes it:
        ``{"msgtype": name, name: {...}}`` with OA's own names; a ``TypeError`` for a content an
        Official Account cannot send."""
        raise _not_on_official_account(self)


def _wire(msgtype: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"msgtype": msgtype, msgtype: body}


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that are not None, in the given order (WeChat wants no nulls)."""
    return {key: value for key, value in fields.items() if value is not None}


@attrs.frozen
class Text(_Content):
    """A text message: ``content`` is 1 to 2,048 UTF-8 bytes (WeCom's limit, kept for an
    Official Account too). Both platforms."""

    content: str = attrs.field(validator=_text(MAX_TEXT_BYTES))

    def wecom_json(self) -> dict[str, Any]:
        return _wire("text", {"content": self.content})

    def official_account_json(self) -> dict[str, Any]:
        return _wire("text", {"content": self.content})


@attrs.frozen
class Image(_Content):
    """An image, by the ``media_id`` an upload returned. Both platforms."""

    media_id: str = attrs.field(validator=_token())

    def wecom_json(self) -> dict[str, Any]:
        return _wire("image", {"media_id": self.media_id})

    def official_account_json(self) -> dict[str, Any]:
        return _wire("image", {"media_id": self.media_id})


@attrs.frozen
class Voice(_Content):
    """A voice message, by the ``media_id`` an upload returned. Both platforms."""

    media_id: str = attrs.field(validator=_token())

    def wecom_json(self) -> dict[str, Any]:
        return _wire("voice", {"media_id": self.media_id})

    def official_account_json(self) -> dict[str, Any]:
        return _wire("voice", {"media_id": self.media_id})


@attrs.frozen
class Video(_Content):
    """A video, by the ``media_id`` an upload returned. The keyword-only ``thumb_media_id``,
    ``title`` and ``description`` are an Official Account's extras: WeCom's video takes the
    media id alone, so they are left out of :meth:`wecom_json`."""

    media_id: str = attrs.field(validator=_token())
    thumb_media_id: str | None = attrs.field(
        default=None, kw_only=True, validator=_token(optional=True)
    )
    title: str | None = attrs.field(default=None, kw_only=True, validator=_text(optional=True))
    description: str | None = attrs.field(
        default=None, kw_only=True, validator=_text(optional=True)
    )

    def wecom_json(self) -> dict[str, Any]:
        return _wire("video", {"media_id": self.media_id})

    def official_account_json(self) -> dict[str, Any]:
        return _wire(
            "video",
            _present(
                media_id=self.media_id,
                thumb_media_id=self.thumb_media_id,
                title=self.title,
                description=self.description,
            ),
        )


@attrs.frozen
class File(_Content):
    """A file, by the ``media_id`` an upload returned. WeCom only."""

    media_id: str = attrs.field(validator=_token())

    def wecom_json(self) -> dict[str, Any]:
        return _wire("file", {"media_id": self.media_id})


@attrs.frozen
class Link(_Content):
    """A link card: ``title``, an absolute http(s) ``url`` of at most 2,048 bytes, the
    ``thumb_media_id`` of its picture and an optional ``desc``. Sent as msgtype ``link`` (not
    ``news``). WeCom only."""

    title: str = attrs.field(validator=_text())
    url: str = attrs.field(validator=_url)
    thumb_media_id: str = attrs.field(validator=_token())
    desc: str | None = attrs.field(default=None, validator=_text(optional=True))

    def wecom_json(self) -> dict[str, Any]:
        return _wire(
            "link",
            _present(
                title=self.title, desc=self.desc, url=self.url, thumb_media_id=self.thumb_media_id
            ),
        )


@attrs.frozen
class Miniprogram(_Content):
    """A mini program card: the mini program's ``appid`` (at most 32 bytes), the
    ``thumb_media_id`` of its cover, the ``pagepath`` it opens (at most 1,024 bytes) and an
    optional ``title``. Both platforms (an Official Account calls it ``miniprogrampage``)."""

    appid: str = attrs.field(validator=_token(MAX_APPID_BYTES))
    thumb_media_id: str = attrs.field(validator=_token())
    pagepath: str = attrs.field(validator=_text(MAX_PAGEPATH_BYTES))
    title: str | None = attrs.field(default=None, validator=_text(optional=True))

    def wecom_json(self) -> dict[str, Any]:
        return _wire(
            "miniprogram",
            _present(
                appid=self.appid,
                title=self.title,
                thumb_media_id=self.thumb_media_id,
                pagepath=self.pagepath,
            ),
        )

    def official_account_json(self) -> dict[str, Any]:
        return _wire(
            "miniprogrampage",
            _present(
                title=self.title,
                appid=self.appid,
                pagepath=self.pagepath,
                thumb_media_id=self.thumb_media_id,
            ),
        )


@attrs.frozen
class MenuClick:
    """A menu item the customer taps to answer: ``id`` (1 to 128 UTF-8 bytes; it comes back as
    the ``menu_id`` of the customer's text; one peer copies WeCom's limit as 64 bytes, so keep
    ids short) and the ``content`` shown (1 to 128 bytes). The only item an Official Account's
    menus have."""

    id: str = attrs.field(validator=_text(MAX_CLICK_ID_BYTES))
    content: str = attrs.field(validator=_text(MAX_CLICK_CONTENT_BYTES))

    def _wecom_item(self) -> dict[str, Any]:
        return {"type": "click", "click": {"id": self.id, "content": self.content}}


@attrs.frozen
class MenuView:
    """A menu item that opens an absolute http(s) ``url`` (at most 2,048 bytes), shown as
    ``content`` (1 to 1,024 bytes). WeCom only."""

    url: str = attrs.field(validator=_url)
    content: str = attrs.field(validator=_text(MAX_MENU_TEXT_BYTES))

    def _wecom_item(self) -> dict[str, Any]:
        return {"type": "view", "view": {"url": self.url, "content": self.content}}


@attrs.frozen
class MenuMiniprogram:
    """A menu item that opens a mini program's ``pagepath`` (at most 1,024 bytes), by its
    ``appid`` (at most 32 bytes), shown as ``content`` (1 to 1,024 bytes). WeCom only."""

    appid: str = attrs.field(validator=_token(MAX_APPID_BYTES))
    pagepath: str = attrs.field(validator=_text(MAX_PAGEPATH_BYTES))
    content: str = attrs.field(validator=_text(MAX_MENU_TEXT_BYTES))

    def _wecom_item(self) -> dict[str, Any]:
        body = {"appid": self.appid, "pagepath": self.pagepath, "content": self.content}
        return {"type": "miniprogram", "miniprogram": body}


@attrs.frozen
class MenuText:
    """Plain text between menu items (1 to 1,024 bytes, the bound of the other menu texts),
    followed by a line break unless ``no_newline`` is True (sent as ``no_newline: 1``; False is
    WeCom's default and left out). WeCom only."""

    content: str = attrs.field(validator=_text(MAX_MENU_TEXT_BYTES))
    no_newline: bool = attrs.field(default=False, validator=_bool)

    def _wecom_item(self) -> dict[str, Any]:
        body: dict[str, Any] = {"content": self.content}
        if self.no_newline:
            body["no_newline"] = 1
        return {"type": "text", "text": body}


MenuItem: TypeAlias = MenuClick | MenuView | MenuMiniprogram | MenuText
"""Any item of a :class:`Menu`."""

_MENU_ITEM_TYPES = (MenuClick, MenuView, MenuMiniprogram, MenuText)


def _menu_items(value: Iterable[MenuItem]) -> tuple[MenuItem, ...]:
    # A bare item, a str or a dict is iterable or close to it: each would give a confusing error
    # further down, so they are refused by name here.
    if isinstance(value, (str, bytes, Mapping, *_MENU_ITEM_TYPES)) or not isinstance(
        value, Iterable
    ):
        raise TypeError(f"Menu.items must be a list of menu items, not {type(value).__name__}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, _MENU_ITEM_TYPES):
            raise TypeError(
                "every Menu item must be a MenuClick, MenuView, MenuMiniprogram or MenuText, "
                f"not {type(item).__name__}"
            )
    if not 1 <= len(items) <= MAX_MENU_ITEMS:
        raise ValueError(f"Menu.items must hold 1 to {MAX_MENU_ITEMS} items, got {len(items)}")
    return items


@attrs.frozen
class Menu(_Content):
    """A menu message: 1 to 10 ``items`` (WeCom's limit; kept as a tuple), with an optional
    ``head_content`` before them and ``tail_content`` after (each at most 1,024 bytes). WeCom
    takes every item kind; an Official Account takes :class:`MenuClick` items only (any other
    is a ``TypeError`` from :meth:`official_account_json`)."""

    items: tuple[MenuItem, ...] = attrs.field(converter=_menu_items)
    head_content: str | None = attrs.field(
        default=None, validator=_text(MAX_MENU_TEXT_BYTES, optional=True)
    )
    tail_content: str | None = attrs.field(
        default=None, validator=_text(MAX_MENU_TEXT_BYTES, optional=True)
    )

    def wecom_json(self) -> dict[str, Any]:
        return _wire(
            "msgmenu",
            _present(
                head_content=self.head_content,
                list=[item._wecom_item() for item in self.items],
                tail_content=self.tail_content,
            ),
        )

    def official_account_json(self) -> dict[str, Any]:
        entries = []
        for item in self.items:
            if not isinstance(item, MenuClick):
                raise TypeError(
                    f"a Menu with a {type(item).__name__} item cannot be sent to an Official "
                    "Account: its menus have MenuClick items only"
                )
            entries.append({"id": item.id, "content": item.content})
        return _wire(
            "msgmenu",
            _present(head_content=self.head_content, list=entries, tail_content=self.tail_content),
        )


@attrs.frozen
class Location(_Content):
    """A map location: ``latitude`` (-90 to 90) and ``longitude`` (-180 to 180) as floats (an
    int is taken, a bool or a str is not), with an optional place ``name`` and ``address``. Sent
    as msgtype ``location`` (not inside a menu). WeCom only."""

    latitude: float = attrs.field(converter=_latitude)
    longitude: float = attrs.field(converter=_longitude)
    name: str | None = attrs.field(default=None, validator=_text(optional=True))
    address: str | None = attrs.field(default=None, validator=_text(optional=True))

    def wecom_json(self) -> dict[str, Any]:
        return _wire(
            "location",
            _present(
                name=self.name,
                address=self.address,
                latitude=self.latitude,
                longitude=self.longitude,
            ),
        )


Content: TypeAlias = Text | Image | Voice | Video | File | Link | Miniprogram | Menu | Location
"""Anything ``messages.send`` takes (an Official Account takes Text, Image, Voice, Video, Menu of
click items and Miniprogram)."""
