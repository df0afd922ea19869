"""The one cattrs converter: WeChat JSON <-> wechat_kf models.

WeChat's documents disagree on types (``kf_id`` is a string or a number, ``invite_expire_time`` a
number or a numeric string), so the hooks here absorb those readings and nothing else: a value of
any other type is an error, which :func:`structure` reports as ``InvalidResponseError``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn

from .errors import InvalidResponseError
from .models import InviteStatus, KfAccount, ServicerStatus

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=False)

# ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses, and a bound on
# the length keeps int() away from its 4,300-digit limit.
_INT_TEXT = re.compile(r"\s*-?[0-9]{1,19}\s*", re.ASCII)


def as_int(value: object) -> int | None:
    """``value`` as an int when it is one (never a bool) or a plain decimal string such as
    ``"40001"`` (WeChat's documents disagree on the type); None for anything else."""
    if type(value) is int:  # the common case, before the general checks
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    return None


def _structure_str(value: object, _: object) -> str:
    # WeChat sends ids sometimes as numbers; a bool is never a legitimate id.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_optional_str(value: object, _: object) -> str | None:
    # The common cases first, in one call: most of a listing's fields are these.
    if type(value) is str or value is None:
        return value
    return _structure_str(value, _)


def _structure_int(value: object, _: object) -> int:
    number = as_int(value)
    if number is None:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return number


def _structure_optional_int(value: object, _: object) -> int | None:
    if type(value) is int or value is None:
        return value
    return _structure_int(value, _)


def _structure_bool(value: object, _: object) -> bool:
    # Registered on its own: bool is an int, so the int hook would otherwise claim it.
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _structure_optional_flag(value: object, _: object) -> bool | None:
    # Some WeChat APIs send their flags as 0 / 1.
    if value is None:
        return None
    if type(value) is int and value in (0, 1):
        return bool(value)
    return _structure_bool(value, _)


def _structure_datetime(value: object, _: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected unix seconds, got {type(value).__name__}")
    seconds = float(value)
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _lenient_enum(cls: type[enum.Enum]) -> Any:
    # A status WeChat adds later must not make a whole listing unreadable: unknown -> None.
    # Looked up in a table of the members by value (what cls(value) does, at a fraction of the
    # cost); a value that cannot be a key is no member either.
    members = {member.value: member for member in cls}

    def hook(value: object, _: object) -> enum.Enum | None:
        try:
            return members.get(value)
        except TypeError:
            return None

    return hook


converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(bool, _structure_bool)
# Direct hooks for the optional forms: the generic union dispatch costs more than the fields.
converter.register_structure_hook(str | None, _structure_optional_str)
converter.register_structure_hook(int | None, _structure_optional_int)
converter.register_structure_hook(bool | None, _structure_optional_flag)
converter.register_structure_hook(datetime, _structure_datetime)
converter.register_unstructure_hook(datetime, lambda value: int(value.timestamp()))
converter.register_structure_hook(InviteStatus, _lenient_enum(InviteStatus))
converter.register_structure_hook(ServicerStatus, _lenient_enum(ServicerStatus))

_kf_account_fn = make_dict_structure_fn(KfAccount, converter)


def _structure_kf_account(value: Any, cls: type[KfAccount]) -> KfAccount:
    # One old fixture names the avatar field kf_headimg.
    if _is_mapping(value) and "kf_headimgurl" not in value and "kf_headimg" in value:
        value = {**value, "kf_headimgurl": value["kf_headimg"]}
    return _kf_account_fn(value, cls)


converter.register_structure_hook(KfAccount, _structure_kf_account)


def _is_mapping(value: object) -> bool:
    # A dict (what json gives) without the cost of the abstract class's check.
    return type(value) is dict or isinstance(value, Mapping)


def to_data(obj: Any) -> Any:
    """Any wechat_kf model, ``BatchResult`` or list of them as plain JSON-able data (dicts, lists,
    str, int, None): datetimes become unix seconds and enums their values."""
    return converter.unstructure(obj)


def from_data(cls: type[T], data: Any) -> T:
    """The inverse of :func:`to_data`: ``from_data(KfAccount, d)``, ``from_data(list[Servicer],
    items)``, ``from_data(BatchResult, d)``. Raises ``InvalidResponseError`` for data of another
    shape."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        raise InvalidResponseError(f"not a {cls}: {_describe(exc)}") from exc


def structure_list(body: Mapping[str, Any], key: str, cls: type[T], *, path: str) -> list[T]:
    """The models in ``body[key]`` (a missing key is an empty list), or InvalidResponseError."""
    items = body.get(key, [])
    if items is None:
        return []
    if not isinstance(items, list) or not all(map(_is_mapping, items)):
        raise InvalidResponseError(f"{key!r} is not a list of objects", path=path)
    hook = converter.get_structure_hook(cls)
    try:
        return [hook(item, cls) for item in items]
    except Exception as exc:
        raise InvalidResponseError(
            f"{key!r} does not have the documented shape: {_describe(exc)}", path=path
        ) from exc


def _describe(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)  # cattrs' validation errors are exception groups
    if inner:
        return "; ".join(_describe(error) for error in inner)
    return f"{type(exc).__name__}: {exc}"
