"""Argument checks shared by the resources: bad input is refused before any request is sent."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import anyio

__all__ = [
    "MAX_AVATAR_BYTES",
    "FileInput",
    "department_ids",
    "file_bytes",
    "identifiers",
    "kf_account",
    "kf_name",
    "nickname",
    "scene",
    "session_state",
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


_SCENE = re.compile(r"[0-9A-Za-z_-]{0,32}")
#: What a file argument may be: its bytes, or the path of a file to read.
FileInput = bytes | bytearray | memoryview | str | os.PathLike[str]


def kf_name(value: object) -> str:
    """A WeCom kf account name: 1..16 characters."""
    text = _require_str("name", value)
    if not 1 <= len(text) <= 16:
        raise ValueError(f"name must be 1-16 characters, got {len(text)}")
    return text


def scene(value: object) -> str:
    """A contact way's scene: 0..32 characters of ``[0-9a-zA-Z_-]`` (ASCII, so also bytes)."""
    text = _require_str("scene", value)
    if not _SCENE.fullmatch(text):
        raise ValueError(f"scene must be 0-32 characters of [0-9a-zA-Z_-], got {text!r}")
    return text


def session_state(value: object) -> int:
    """A 微信客服 session state: a ``SessionState`` or an int in 0..4 (``bool`` is not one), as
    the plain int the wire carries."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"state must be a SessionState or an int, not {type(value).__name__}")
    if not 0 <= value <= 4:
        raise ValueError(f"state must be 0-4, got {int(value)}")
    return int(value)


def identifiers(name: str, values: object) -> list[str]:
    """Distinct identifiers (each non-empty, no whitespace, UTF-8) in first-seen order, from any
    iterable but a bare str; ``name`` is what one of them is called in the messages."""
    if isinstance(values, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"{name}s must be an iterable of str, not a single string")
    if not isinstance(values, Iterable):
        raise TypeError(f"{name}s must be an iterable of str, not {type(values).__name__}")
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(token_like(name, value))
    return list(seen)


async def file_bytes(what: str, value: object, *, max_bytes: int) -> tuple[bytes, str | None]:
    """The content of a file argument (bytes-like, or a ``str`` / ``os.PathLike`` path read
    here) and, for a path, the file's name; ValueError when it is empty, over ``max_bytes``
    (a file's size is checked before it is read, so a huge one is never loaded) or cannot be
    read. ``what`` names the argument in the messages."""
    limit = f"{what} must be at most {max_bytes / (1024 * 1024):g} MB"
    name: str | None = None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, (str, os.PathLike)):
        path = anyio.Path(value)
        try:
            size = (await path.stat()).st_size
            if size > max_bytes:
                raise ValueError(f"{limit}, got {size} bytes")
            data = await path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the {what} file {str(value)!r}: {exc.strerror}") from exc
        name = path.name
    else:
        raise TypeError(f"{what} must be bytes or a path, not {type(value).__name__}")
    if not data:
        raise ValueError(f"{what} must not be empty")
    if len(data) > max_bytes:  # bytes given, or a file that grew after its size was read
        raise ValueError(f"{limit}, got {len(data)} bytes")
    return data, name
