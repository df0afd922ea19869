"""What a notification tells the inbox: the account (a checked open_kfid), the callback token
and until when that token may be used."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ._secrets import hide

__all__ = ["TOKEN_LIFETIME", "news_of", "open_kfid_of"]

#: How long a callback token is valid after WeChat pushed it (s).
TOKEN_LIFETIME = 600.0


def open_kfid_of(value: object) -> str:
    """``value`` as an open_kfid: a str, non-empty, without whitespace (else TypeError or
    ValueError)."""
    if not isinstance(value, str):
        raise TypeError(f"open_kfid must be a str, not {type(value).__name__}")
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("open_kfid must be non-empty and contain no whitespace")
    return value


def news_of(event: Any) -> tuple[str, str | None, float]:
    """open_kfid, callback token (None when absent or empty) and until when it is valid (unix
    seconds: 10 minutes from the push, never counted from a time ahead of ours)."""
    open_kfid = open_kfid_of(getattr(event, "open_kfid", None))
    token = getattr(event, "token", None)
    if token is not None and not isinstance(token, str):
        raise TypeError("event.token must be a str or None")
    now = time.time()
    created = getattr(event, "create_time", None)
    pushed = created.timestamp() if isinstance(created, datetime) else now
    return open_kfid, hide(token) or None, min(pushed, now) + TOKEN_LIFETIME
