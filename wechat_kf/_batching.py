"""The batch runner: ids cut into requests of at most 100, the requests run concurrently under a
client's limiter, and every request ends in exactly one way: sent with its results, failed as a
whole with its error, or never sent because a fatal failure (or the caller's callback) stopped
the batch first. It knows nothing of servicers or customers: a resource gives it the requests,
how to send one, and what makes a failure fatal (:func:`is_fatal`, the rule both servicers and
customers use); it hands back a :class:`Run` in which no id can be missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import anyio
import attrs

from .errors import (
    AccessTokenError,
    ClientClosedError,
    CredentialError,
    OpenKfidError,
    PermissionDeniedError,
    RateLimitError,
    WeChatError,
)

__all__ = ["MAX_IDS_PER_REQUEST", "Run", "cut", "is_fatal", "run_batch"]

#: What WeChat takes in one request of a batched call (servicers, customers).
MAX_IDS_PER_REQUEST = 100

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")
T = TypeVar("T")


#: Failures after which no further request of the batch can succeed.
_FATAL = (
    CredentialError,
    PermissionDeniedError,
    OpenKfidError,
    AccessTokenError,
    ClientClosedError,
)
#: The daily quota (or WeCom's frequency cap): nothing more goes through today.
_QUOTA_USED_UP = 45009


def is_fatal(error: Exception) -> bool:
    """Whether ``error`` means no other request of the batch can succeed (wrong credentials or
    permissions, a bad open_kfid, a token still refused, a closed client, the day's quota used
    up, or something that is not a WeChatError at all): the requests not yet sent then stay
    unsent instead of burning calls on the same refusal."""
    if isinstance(error, RateLimitError):
        return error.errcode == _QUOTA_USED_UP
    return isinstance(error, _FATAL) or not isinstance(error, WeChatError)


def cut(ids: Sequence[T], size: int = MAX_IDS_PER_REQUEST) -> list[list[T]]:
    """``ids`` in consecutive slices of at most ``size``, in order."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


@attrs.define
class Run(Generic[RequestT, ResultT]):
    """How each request of a batch ended: ``sent`` (with what ``send`` returned), ``failed``
    (with the error that left all its ids unprocessed) or ``unsent`` (stopped first). ``errors``
    are the failures in the order they happened, the caller's callback error included, which is
    also ``callback_error``."""

    sent: list[tuple[RequestT, ResultT]] = attrs.Factory(list)
    failed: list[tuple[RequestT, Exception]] = attrs.Factory(list)
    unsent: list[RequestT] = attrs.Factory(list)
    errors: list[Exception] = attrs.Factory(list)
    callback_error: Exception | None = None
    stopped: bool = False

    def _call_back(self, callback: Callable[..., None], *args: Any) -> None:
        if self.callback_error is not None:
            return
        try:
            callback(*args)
        except Exception as exc:
            # The caller's code failed, not the batch: stop sending and report it with every
            # outcome known so far, instead of letting it tear the task group down.
            self.callback_error = exc
            self.errors.append(exc)
            self.stopped = True


async def run_batch(
    requests: Sequence[RequestT],
    send: Callable[[RequestT], Awaitable[ResultT]],
    *,
    limiter: anyio.CapacityLimiter,
    is_fatal: Callable[[Exception], bool],
    size: Callable[[RequestT], int],
    on_done: Callable[[RequestT, ResultT | None, Exception | None], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Run[RequestT, ResultT]:
    """Send every request concurrently, at most the ``limiter``'s tokens at a time; whatever one
    raises leaves exactly that request failed (never an ExceptionGroup); after a fatal failure
    the requests not yet started stay unsent. ``on_done(request, result, error)`` is called as
    each sent request ends and ``on_progress(ids done, ids in all)`` after every request; if
    either raises, the batch stops as after a fatal failure."""
    run: Run[RequestT, ResultT] = Run()
    total = sum(size(request) for request in requests)
    done = 0

    async def one(request: RequestT) -> None:
        nonlocal done
        async with limiter:
            if run.stopped:
                run.unsent.append(request)
            else:
                result: ResultT | None = None
                error: Exception | None = None
                try:
                    result = await send(request)
                except Exception as exc:
                    error = exc
                if error is None:
                    run.sent.append((request, result))  # type: ignore[arg-type]
                else:
                    run.failed.append((request, error))
                    run.errors.append(error)
                    run.stopped = run.stopped or is_fatal(error)
                if on_done is not None:
                    run._call_back(on_done, request, result, error)
            done += size(request)
            if on_progress is not None:
                run._call_back(on_progress, done, total)

    async with anyio.create_task_group() as group:
        for request in requests:
            group.start_soon(one, request)
    return run
