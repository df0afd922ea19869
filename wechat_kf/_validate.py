"""Argument checks shared by the resources: bad input is refused before any request is sent."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "MAX_AVATAR_BYTES",
    "department_ids",
    "kf_account",
    "nickname",
    "token_like",
    "userid_key",
    "userids",
    "without_case_duplicates",
]

MAX_AVATAR_BYTES = 5 * 1024 * 1024
_KF_ACCOUNT = re.compile(r"[A-Za-z0-9_]{1,10}@\S{1,30}")


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    _require_utf8(name, value)
    return value


def _require_utf8(name: str, value: str) -> None:
    # A lone surrogate passes every str check but fails when the request body is encoded,
    # possibly after other requests of a batch were already sent.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} {value!r} does not encode as UTF-8") from None


def kf_account(value: object) -> str:
    """A kf_account: 1..10 of ``[A-Za-z0-9_]``, ``@``, then a WeChat ID of 1..30 non-space chars."""
    text = _require_str("kf_account", value)
    if not _KF_ACCOUNT.fullmatch(text):
        raise ValueError(
            "kf_account must be 1-10 letters, digits or underscores, '@', then a WeChat ID "
            f"of 1-30 non-space characters; got {text!r}"
        )
    return text


def nickname(value: object) -> str:
    """A kf nickname: 1..16 characters."""
    text = _require_str("nickname", value)
    if not 1 <= len(text) <= 16:
        raise ValueError(f"nickname must be 1-16 characters, got {len(text)}")
    return text


def token_like(name: str, value: object) -> str:
    """An identifier such as open_kfid or invite_wx: non-empty, no whitespace."""
    text = _require_str(name, value)
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"{name} must be non-empty and contain no whitespace, got {text!r}")
    return text


def userids(values: object) -> list[str]:
    """Distinct non-empty userids that encode as UTF-8, in first-seen order, from any iterable
    but a bare str."""
    if isinstance(values, (str, bytes, bytearray, memoryview)):
        raise TypeError("userids must be an iterable of str, not a single string")
    if not isinstance(values, Iterable):
        raise TypeError(f"userids must be an iterable of str, not {type(values).__name__}")
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"every userid must be a str, not {type(value).__name__}")
        if not value:
            raise ValueError("a userid must not be empty")
        _require_utf8("userid", value)
        seen.setdefault(value)
    return list(seen)


def userid_key(userid: str) -> str:
    """What WeCom compares when it decides whether two userids name one member: its uniqueness
    check ignores the case of ASCII letters ("Alice" and "alice" are one member)."""
    return userid.lower() if userid.isascii() else userid


def without_case_duplicates(ids: list[str]) -> tuple[list[str], dict[str, str]]:
    """``ids`` with every id that differs from an earlier one only by case left out (the first
    spelling is kept), and what was left out: ``{dropped spelling: kept spelling}``."""
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for userid in ids:
        first = kept.setdefault(userid_key(userid), userid)
        if first != userid:
            dropped.setdefault(userid, first)
    return list(kept.values()), dropped


def department_ids(values: object) -> list[int]:
    """Distinct positive department ids in first-seen order (``bool`` is not an id)."""
    if isinstance(values, (str, bytes, bytearray, memoryview)) or not isinstance(values, Iterable):
        raise TypeError("department_ids must be an iterable of int")
    seen: dict[int, None] = {}
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"every department id must be an int, not {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"department ids must be positive, got {value}")
        seen.setdefault(value)
    return list(seen)
