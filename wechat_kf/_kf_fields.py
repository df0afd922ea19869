"""Reading the fields of a ``sync_msg`` item for :mod:`wechat_kf.kf_messages`, strictly: a field
that is missing or of a surprising type raises :class:`Unfit`, which makes the item an Unknown*.
Only :func:`lenient` never raises: it reads what an Unknown* can still show."""

from __future__ import annotations

import contextlib
import enum
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from ._serde import as_int

E = TypeVar("E", bound=enum.IntEnum)

MISSING: Any = object()
# A plain decimal number: float() alone also takes "nan", "1_0" and non-ASCII digits.
_NUMBER_TEXT = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*", re.A)
_ID_KEYS = ("open_kfid", "external_userid", "servicer_userid")


class Unfit(Exception):
    """A field of a known type is missing or of a surprising type: the item becomes Unknown*."""


def what(value: object) -> str:
    """``value``'s kind for a reason: "missing", "null", "a list", "an int"."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def string(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    """``obj[key]``, a str."""
    value = obj.get(key, MISSING)
    if not isinstance(value, str):
        raise Unfit(f"{where}{key} is {what(value)}, not a str")
    return value


def opt_string(obj: Mapping[str, Any], key: str, where: str = "") -> str | None:
    """``obj[key]``, a str, or None when missing or null."""
    return None if obj.get(key) is None else string(obj, key, where)


def integer(obj: Mapping[str, Any], key: str, where: str = "") -> int:
    """``obj[key]``, an int or a decimal string of one (never a bool)."""
    value = obj.get(key, MISSING)
    number = as_int(value)
    if number is None:
        raise Unfit(f"{where}{key} is {what(value)}, not an integer")
    return number


def opt_integer(obj: Mapping[str, Any], key: str, where: str = "") -> int | None:
    """Like :func:`integer`, or None when missing or null."""
    return None if obj.get(key) is None else integer(obj, key, where)


def finite(obj: Mapping[str, Any], key: str, where: str = "") -> float:
    """``obj[key]``, a finite number or a decimal string of one (never a bool), as a float."""
    value = obj.get(key, MISSING)
    number = math.nan
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        with contextlib.suppress(OverflowError):  # an int beyond any float stays nan
            number = float(value)
    elif isinstance(value, str) and len(value) <= 64 and _NUMBER_TEXT.fullmatch(value):
        number = float(value)
    if not math.isfinite(number):
        raise Unfit(f"{where}{key} is {what(value)}, not a finite number")
    return number


def opt_object(obj: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    """``obj[key]``, a JSON object, or None when missing or null."""
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise Unfit(f"{where}{key} is {what(value)}, not an object")
    return value


def body(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``obj[key]``, the JSON object a type's fields are in."""
    value = obj.get(key, MISSING)
    if not isinstance(value, Mapping):
        raise Unfit(f"{key} is {what(value)}, not an object")
    return value


def msgid(value: object) -> str | None:
    """A msgid: WeChat sends a str; an integer is read as the same id (as wechat_kf reads ids
    elsewhere). None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def send_time(value: object) -> datetime | None:
    """Whole unix seconds (an int or its decimal string) as an aware UTC datetime; None for
    anything else, or a number beyond what a datetime holds."""
    seconds = as_int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def origin(value: object, kinds: type[E]) -> E | int | None:
    """An integer as one of ``kinds``, or the plain int when WeChat added a value since; None
    when it is not an integer."""
    number = as_int(value)
    if number is None:
        return None
    try:
        return kinds(number)
    except ValueError:
        return number


def ids(item: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """open_kfid, external_userid and servicer_userid from ``source`` (an event's object) where it
    has them, else from the item's top level: WeChat documents events with their ids inside, yet
    some of its examples show them at the top as well."""
    found = {
        key: source.get(key) if source.get(key) is not None else item.get(key) for key in _ID_KEYS
    }
    return {key: value for key, value in found.items() if value is not None}


def lenient(
    item: Mapping[str, Any], source: Mapping[str, Any], kinds: type[enum.IntEnum]
) -> dict[str, Any]:
    """The common fields of a :class:`~wechat_kf.KfMessage` as far as they can be read (what
    cannot is None, or ``""`` for msgid and msgtype), for an Unknown*. Never raises."""
    msgtype = item.get("msgtype")
    found = ids(item, source)
    return {
        "msgid": msgid(item.get("msgid")) or "",
        "msgtype": msgtype if isinstance(msgtype, str) else "",
        **{key: found.get(key) if isinstance(found.get(key), str) else None for key in _ID_KEYS},
        "send_time": send_time(item.get("send_time")),
        "origin": origin(item.get("origin"), kinds),
    }


def common(
    item: Mapping[str, Any], source: Mapping[str, Any], kinds: type[enum.IntEnum]
) -> dict[str, Any]:
    """The common fields a modelled type needs: a non-empty msgid, an open_kfid, ids that are
    str where present, a send_time and an origin; else :class:`Unfit` naming the first that is
    wrong."""
    fields = lenient(item, source, kinds)
    if not fields["msgid"]:
        raise Unfit(f"msgid is {what(item.get('msgid', MISSING))}, not a non-empty str")
    found = ids(item, source)
    string(found, "open_kfid")
    opt_string(found, "external_userid")
    opt_string(found, "servicer_userid")
    if fields["send_time"] is None:
        raise Unfit(f"send_time is {what(item.get('send_time', MISSING))}, not unix seconds")
    if fields["origin"] is None:
        raise Unfit(f"origin is {what(item.get('origin', MISSING))}, not an integer")
    return fields
