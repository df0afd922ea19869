"""How the inbox calls a handler, so that a cancellation the handler raises, or brings on itself,
is its failure and never ends the inbox or the task that drains."""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.lowlevel
import sniffio

from .kf_messages import KfMessage

__all__ = ["HandlerCancelled", "asyncio_task", "call_handler", "handling", "handling_for"]

#: The inbox (its engine) whose handler the current task is running for, if any.
_HANDLING: ContextVar[object | None] = ContextVar("wechat_kf_inbox_handling", default=None)


def handling() -> object | None:
    """The inbox whose handler this task (or a task it started) runs for, or None."""
    return _HANDLING.get()


class HandlerCancelled(Exception):
    """The handler raised a cancellation, or cancelled its own task, though nothing cancelled the
    inbox: a failure of the handler like any exception (retried, then ``on_failure``)."""


@contextlib.contextmanager
def handling_for(inbox: object) -> Iterator[None]:
    """Within: :func:`handling` answers ``inbox`` (the handlers of a page run in this task, and
    the tasks they start inherit it)."""
    marker = _HANDLING.set(inbox)
    try:
        yield
    finally:
        _HANDLING.reset(marker)


def asyncio_task() -> Any:
    """The running asyncio task, or None (trio): what :func:`call_handler` is given."""
    if sniffio.current_async_library() != "asyncio":
        return None
    return sys.modules["asyncio"].current_task()


async def call_handler(
    handler: Callable[[KfMessage], Any], message: KfMessage, task: Any, *, owned: bool
) -> None:
    """Call ``handler(message)`` (plain or async) once, in ``task`` (:func:`asyncio_task`, found
    once per page); what it raises is raised here, and a cancellation that the inbox (or the
    caller of ``drain``) did not cause as :class:`HandlerCancelled` (asyncio: a handler that
    raises ``CancelledError``, or cancels its own task, whether it then awaits or returns). In a
    task the inbox does not own (``owned`` False: the caller of ``drain``), a cancellation asked
    of the task cannot be told from one asked by whoever cancels the caller (a timeout, a
    framework), so it goes through. It costs nothing per message; only on asyncio before Python
    3.11, which cannot tell a task's cancellation requests apart, does the handler get a task of
    its own."""
    if task is not None and not hasattr(task, "cancelling"):
        await _in_a_task(handler, message)
        return
    before = task.cancelling() if task is not None else 0
    try:
        result = handler(message)
        if inspect.isawaitable(result):
            await result
    except anyio.get_cancelled_exc_class():
        asked = task is not None and task.cancelling() > before
        if _cancelled_from_outside() or (asked and not owned):
            raise
        _uncancel(task, before)
        raise HandlerCancelled("the handler was cancelled") from None
    if owned and task is not None and task.cancelling() > before and not _cancelled_from_outside():
        # It asked for its own task's cancellation and returned before it came: take it here,
        # or it would end the pull at its next await.
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class():
            pass
        _uncancel(task, before)
        raise HandlerCancelled("the handler cancelled its own task")


def _cancelled_from_outside() -> bool:
    # A cancel scope around us was cancelled: the inbox closing, or the caller of drain.
    return anyio.current_effective_deadline() == -math.inf


def _uncancel(task: Any, before: int) -> None:
    while task is not None and task.cancelling() > before:
        task.uncancel()


async def _in_a_task(handler: Callable[[KfMessage], Any], message: KfMessage) -> None:
    failure: list[BaseException] = []

    async def call() -> None:
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except anyio.get_cancelled_exc_class():
            if _cancelled_from_outside():
                raise
            failure.append(HandlerCancelled("the handler was cancelled"))
        except BaseException as exc:
            failure.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
    if failure:
        raise failure[0]
