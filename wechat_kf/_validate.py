"""Argument checks shared by the resources: bad input is refused before any request is sent."""

from __future__ import annotations

import os
import re
import stat
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
    "userid_problem",
    "userids",
    "without_case_duplicates",
]

MAX_AVATAR_BYTES = 5 * 1024 * 1024
_KF_ACCOUNT = re.compile(r"[A-Za-z0-9_]{1,10}@\S{1,30}")
# WeCom's rule for a userid (a third-party app's encrypted open_userid is of the same alphabet).
_USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_USERID_RULE = "1-64 letters, digits, '_', '-', '@' or '.', beginning with a letter or digit"


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


def _display_name(what: str, value: object) -> str:
    """A name people read (a kf nickname, a 微信客服 account's name): 1..16 characters, not
    all blank."""
    text = _require_str(what, value)
    if not 1 <= len(text) <= 16:
        raise ValueError(f"{what} must be 1-16 characters, got {len(text)}")
    if not text.strip():
        raise ValueError(f"{what} must not be blank")
    return text


def nickname(value: object) -> str:
    """A kf nickname: 1..16 characters, not all blank."""
    return _display_name("nickname", value)


def token_like(name: str, value: object) -> str:
    """An identifier such as open_kfid or invite_wx: non-empty, no whitespace."""
    text = _require_str(name, value)
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"{name} must be non-empty and contain no whitespace, got {text!r}")
    return text


def userid_problem(value: str) -> str | None:
    """What keeps ``value`` from being a WeCom userid (or a third-party app's open_userid): None
    when it is one, else why not, in a few words. The rule: 1..64 bytes of ASCII letters,
    digits and ``_-@.``, beginning with a letter or a digit."""
    if _USERID.fullmatch(value):
        return None
    if not value:
        return "is empty"
    if len(value.encode("utf-8", "surrogatepass")) > 64:
        return f"is over 64 bytes: a userid is {_USERID_RULE}"
    bad = next((ch for ch in value if not _USERID.fullmatch("a" + ch)), None)
    if bad is not None:
        return f"holds {bad!r}: a userid is {_USERID_RULE}"
    return f"begins with {value[0]!r}: a userid is {_USERID_RULE}"


def userid(name: str, value: object) -> str:
    """One WeCom userid (see :func:`userid_problem`), else a TypeError or ValueError saying why."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    problem = userid_problem(value)
    if problem is not None:
        raise ValueError(f"{name} {value!r} {problem}")
    return value


def userids(values: object) -> list[str]:
    """Distinct WeCom userids (see :func:`userid_problem`) in first-seen order, from any iterable
    but a bare str; the first that is not one is a ValueError naming it and its place."""
    if isinstance(values, (str, bytes, bytearray, memoryview)):
        raise TypeError("userids must be an iterable of str, not a single string")
    if not isinstance(values, Iterable):
        raise TypeError(f"userids must be an iterable of str, not {type(values).__name__}")
    seen: dict[str, None] = {}
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"every userid must be a str, not {type(value).__name__}")
        problem = userid_problem(value)
        if problem is not None:
            raise ValueError(f"userids[{index}] {value!r} {problem}")
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
    """A WeCom kf account name: 1..16 characters, not all blank."""
    return _display_name("name", value)


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


def filename(value: object) -> str:
    """A filename as a multipart part carries it: a name, not a path (no ``/`` or ``\\``), and
    nothing that could break the part's header (no control character, no quote), in UTF-8."""
    if not isinstance(value, str):
        raise TypeError(f"filename must be a str, not {type(value).__name__}")
    if not value.strip() or value in (".", ".."):
        raise ValueError(f"filename must name a file, got {value!r}")
    # A quote is escaped differently by each HTTP library: refused, so both send one name.
    if any(ch in '/\\"' or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(
            f'filename must be a bare name, without / \\ " or control characters: {value!r}'
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"filename {value!r} does not encode as UTF-8") from None
    return value


def _usable_name(name: str) -> str | None:
    """A path's name when it can travel as a filename, else None (the caller names the file)."""
    try:
        return filename(name)
    except ValueError:
        return None


def _read_regular_file(path: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of the regular file at ``path`` (a FIFO, a device or a
    directory is refused: opened without waiting, it is checked before anything is read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(0, "not a regular file")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


async def file_bytes(what: str, value: object, *, max_bytes: int) -> tuple[bytes, str | None]:
    """The content of a file argument (bytes-like, or a ``str`` / ``os.PathLike`` path read
    here) and, for a path, the file's name when it can travel as a filename; ValueError when it
    is empty, over ``max_bytes`` (a file is read only up to one byte past it, however large it
    is or grows), not a regular file, or cannot be read. ``what`` names the argument in the
    messages."""
    limit = f"{what} must be at most {max_bytes / (1024 * 1024):g} MB"
    name: str | None = None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not isinstance(path, str):
            raise TypeError(f"{what} must be bytes or a str path, not a bytes path")
        try:
            data = await anyio.to_thread.run_sync(_read_regular_file, path, max_bytes)
        except OSError as exc:
            reason = exc.strerror or "not a regular file"
            raise ValueError(f"cannot read the {what} file {path!r}: {reason}") from None
        name = _usable_name(os.path.basename(path))
    else:
        raise TypeError(f"{what} must be bytes or a path, not {type(value).__name__}")
    if not data:
        raise ValueError(f"{what} must not be empty")
    if len(data) > max_bytes:
        raise ValueError(f"{limit}, got more")
    return data, name
