"""Keeping tokens and secrets out of sight: a str that never shows itself in a repr, masking of
query strings, and a log filter on every logger of the HTTP libraries.

Error trackers record a raised exception with the local variables of each frame of its traceback,
as reprs. Every token and secret the SDK holds is a :class:`Secret`, so a dict, an attribute or a
local that holds one shows ``'<redacted>'`` there; what cannot be one (a URL with the token in its
query) is kept out of the frames of raised exceptions by the transport.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any, TypeVar

__all__ = ["Secret", "hide", "hide_fields", "install_log_redaction", "redact"]

T = TypeVar("T")

_SECRET_PARAMS = re.compile(r"((?:access_token|corpsecret|secret)=)[^&\s'\"]*", re.IGNORECASE)
#: Fields of a token endpoint's answer that are credentials.
_SECRET_FIELDS = re.compile(r"(token|ticket|secret|permanent_code)$")
#: Loggers that may print a URL (with its query) or a header that echoes one.
_HTTP_LOGGERS = ("httpx", "httpcore", "aiohttp")


class Secret(str):
    """A str whose repr is ``'<redacted>'``: equal to, hashed and encoded like the text it holds,
    so it works wherever the plain str does, but shows nothing in tracebacks, debuggers or the
    repr of a container."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


def hide(value: T) -> T:
    """``value`` as a :class:`Secret` when it is a str; anything else as it is."""
    if isinstance(value, str) and not isinstance(value, Secret):
        return Secret(value)  # type: ignore[return-value]
    return value


def hide_fields(body: MutableMapping[str, Any]) -> None:
    """Turn the credential fields of a token endpoint's answer (``access_token``,
    ``authorizer_refresh_token``...) into Secrets, in place."""
    for key, value in body.items():
        if isinstance(value, str) and _SECRET_FIELDS.search(key):
            body[key] = hide(value)


def redact(text: str) -> str:
    """``text`` with the values of access_token, secret and corpsecret query parameters masked."""
    return _SECRET_PARAMS.sub(r"\1<redacted>", text)


class _RedactingFilter(logging.Filter):
    """Masks secrets in records of loggers we do not own (httpx logs every URL at INFO, httpcore
    the response headers, a redirect's Location included, at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Put the filter on the httpx, httpcore and aiohttp loggers and on each of their children
    that exists now: a logger's filters never see the records of its children (httpcore logs as
    ``httpcore.http11``, ``httpcore.connection``...). Idempotent; the transport calls it whenever a
    client is made, so children created by a later import are covered too."""
    names = {
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".", 1)[0] in _HTTP_LOGGERS
    }
    for name in sorted(names.union(_HTTP_LOGGERS)):
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in target.filters):
            target.addFilter(_RedactingFilter())
