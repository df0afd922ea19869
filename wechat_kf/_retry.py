"""The retry policy: one pure function from (what failed, which attempt) to a delay or giving up."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

from .errors import ERRCODES

__all__ = ["MAY_HAVE_APPLIED", "Failure", "retry_delay"]

BASE_DELAY = 0.2
MAX_DELAY = 5.0


class Failure(enum.Enum):
    """A failure the policy may retry; anything not listed here is never retried."""

    BUSY = "system busy (errcode -1)"
    MINUTE_QUOTA = "per-minute quota (errcode 45011)"
    CONCURRENCY = "concurrency limit (errcode 45033)"
    HTTP_429 = "HTTP 429"
    HTTP_5XX = "HTTP 5xx"
    NOT_SENT = "connection failed before the request was sent"
    MAYBE_SENT = "connection lost after the request was sent"
    DEADLINE = "the attempt's deadline expired"


#: Failures after which WeChat may have applied the request: repeated only for idempotent calls.
#: A gateway's 5xx can come after the request was applied; 429 and the errcodes above are
#: refusals before processing.
MAY_HAVE_APPLIED = frozenset({Failure.HTTP_5XX, Failure.MAYBE_SENT, Failure.DEADLINE})

#: The errcodes the policy sends again, from the one registry (``errors.ERRCODES``).
RETRYABLE_ERRCODES = {code: Failure[info.retry] for code, info in ERRCODES.items() if info.retry}


def retry_delay(
    failure: Failure,
    attempt: int,
    *,
    max_retries: int,
    idempotent: bool,
    once: bool = False,
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retrying after the ``attempt``-th request (1-based) failed with
    ``failure``, or None to give up: at most ``max_retries`` retries; a request that may have been
    applied is repeated only when the call is idempotent, and a request sent ``once`` (a forced
    token refresh) only when it never left. The delay doubles per attempt up to ``cap``, with
    jitter over its upper half so that many clients do not retry in step."""
    if attempt > max_retries:
        return None
    if once and failure is not Failure.NOT_SENT:
        return None
    if failure in MAY_HAVE_APPLIED and not idempotent:
        return None
    delay = min(cap, base * 2 ** (attempt - 1))
    return float(delay * (0.5 + rand() / 2))
