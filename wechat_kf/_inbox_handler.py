"""How the inbox calls a handler: in a task of its own, so that a cancellation the handler
raises, or brings on itself, is its failure and never ends the inbox or the task that drains."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import anyio

from .kf_messages import KfMessage

__all__ = ["HandlerCancelled", "call_handler", "handling"]

#: The inbox (its engine) whose handler the current task is running for, if any.
_HANDLING: ContextVar[object | None] = ContextVar("wechat_kf_inbox_handling", default=None)


def handling() -> object | None:
    """The inbox whose handler this task (or a task it started) runs for, or None."""
    return _HANDLING.get()


class HandlerCancelled(Exception):
    """The handler raised a cancellation, or cancelled its own task, though nothing cancelled the
    inbox: a failure of the handler like any exception (retried, then ``on_failure``)."""


async def call_handler(
    handler: Callable[[KfMessage], Any], message: KfMessage, inbox: object
) -> None:
    """Call ``handler(message)`` (plain or async) once, in a task of its own, for ``inbox``
    (:func:`handling` answers it there); what it raises is
    raised here, a cancellation that the inbox (or the caller of ``drain``) did not cause as
    :class:`HandlerCancelled` (asyncio: a handler that raises ``CancelledError`` or cancels its
    own task)."""
    failure: list[BaseException] = []

    async def call() -> None:
        _HANDLING.set(inbox)  # this task's own context: gone when it ends
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except anyio.get_cancelled_exc_class():
            if anyio.current_effective_deadline() == -math.inf:
                raise  # a cancel scope around us was cancelled: not the handler's doing
            failure.append(HandlerCancelled("the handler was cancelled"))
        except BaseException as exc:
            failure.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
    if failure:
        raise failure[0]
