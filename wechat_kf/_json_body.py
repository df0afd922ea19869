"""Reading and writing the JSON of an API call: the request body, the answer's object and its
errcode, and telling a downloaded file from WeChat's JSON error."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from typing import Any

from ._serde import as_int
from .errors import InvalidResponseError

__all__ = ["FILE", "FILE_HEADERS", "JSON", "decode", "errcode_of", "is_json", "json_body"]

JSON = "application/json"
# Where a download's bytes and headers travel through the send loop, which hands on dicts.
FILE = "\x00file"
FILE_HEADERS = "\x00headers"


def is_json(headers: Mapping[str, str], raw: bytes) -> bool:
    """Whether a download's answer is WeChat's JSON error instead of the file: said so by its
    content type, or (WeChat has sent errors as text/plain) a small object that has an errcode."""
    if "json" in headers.get("content-type", "").lower():
        return True
    head = raw[:256].lstrip()
    return len(raw) < 4096 and head.startswith(b"{") and b'"errcode"' in head


def json_body(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as the bytes of a request body: UTF-8 JSON, never ``\\u`` escapes (WeChat has
    shown such escapes literally), whatever the installed httpx would do with ``json=``."""
    text = jsonlib.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def decode(raw: bytes, status: int, path: str) -> dict[str, Any]:
    if not 200 <= status < 300:
        raise InvalidResponseError(
            f"unexpected HTTP status {status}", path=path, status_code=status
        )
    try:
        body = jsonlib.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidResponseError(
            f"body is not JSON ({len(raw)} bytes)", path=path, status_code=status
        ) from None
    if not isinstance(body, dict):
        raise InvalidResponseError("body is not a JSON object", path=path, status_code=status)
    return body


def errcode_of(body: Mapping[str, Any], path: str) -> tuple[int, str]:
    errcode = as_int(body.get("errcode", 0))
    if errcode is None:
        raise InvalidResponseError("errcode is not an integer", path=path)
    errmsg = body.get("errmsg", "")
    return errcode, errmsg if isinstance(errmsg, str) else str(errmsg)
