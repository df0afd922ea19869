"""Hooks: what the SDK tells observers at fixed points (each attempt, each retry, each token fetch,
each batch request, each inbox pull and each message an inbox settles), for traces, metrics and
logs.

A hook is any object with some of these methods; a method it lacks is skipped::

    class MyHook:
        def on_attempt(self, attempt: Attempt) -> ContextManager | None: ...  # wraps the attempt
        def on_attempt_end(self, result: AttemptResult) -> None: ...          # inside that wrap
        def on_retry(self, retry: Retry) -> None: ...
        def on_token_fetch(self, fetch: TokenFetch) -> None: ...
        def on_batch_request(self, request: BatchRequest) -> None: ...
        def on_inbox_pull(self, pull: InboxPull) -> None: ...                # an inbox pull ended
        def on_inbox_message(self, message: HandledMessage) -> None: ...     # a message settled

Clients take ``hooks=[...]``; the default is ``[LoggingHook()]``, the SDK's log lines. The
records are frozen and never hold a token or a secret. A hook that raises is logged and never
breaks a call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

__all__ = [
    "Attempt",
    "AttemptResult",
    "BatchRequest",
    "HandledMessage",
    "InboxPull",
    "LoggingHook",
    "Retry",
    "TokenFetch",
]

logger: logging.Logger = logging.getLogger("wechat_kf.transport")
_inbox_logger = logging.getLogger("wechat_kf.inbox")
_hook_logger = logging.getLogger("wechat_kf.hooks")


@attrs.frozen
class Attempt:
    """One request about to be sent: ``kind`` is "business" (an API call with the access token)
    or "token" (a token endpoint); ``attempt`` counts from 1 for each call, refreshes and
    retries included; ``idempotent`` says whether the policy may send it again after it may have
    been applied; ``server_address`` and ``server_port`` name the host it goes to (the port
    implied by the scheme when the base URL gives none); ``url`` is the whole URL with its
    query, every token, secret or ticket in it replaced by ``REDACTED``."""

    method: str
    path: str
    attempt: int
    idempotent: bool
    kind: str
    server_address: str | None = None
    server_port: int | None = None
    url: str | None = None


@attrs.frozen
class AttemptResult:
    """How an attempt ended, ``duration`` seconds after it started: the HTTP ``status`` (None
    when no answer came), WeChat's ``errcode`` and ``rid`` when it answered, and ``error``, the
    name of what went wrong (None for a success): an exception class such as "TransportError",
    or "token rejected"."""

    attempt: Attempt
    duration: float
    status: int | None = None
    errcode: int | None = None
    rid: str | None = None
    error: str | None = None


@attrs.frozen
class Retry:
    """The policy sends a call again: after ``attempt`` failed with ``reason`` (a retryable
    failure, or "token rejected", which refreshes the token first), in ``delay`` seconds."""

    method: str
    path: str
    attempt: int
    kind: str
    reason: str
    delay: float
    errcode: int | None = None


@attrs.frozen
class TokenFetch:
    """A token provider fetches a token: ``platform`` "oa" or "wecom", ``app_id`` the appid or
    corpid, and why: "cold" (none held yet), "stale" (about to expire), "rejected" (WeChat
    refused the one held) or "forced" (a forced ``stable_token`` refresh)."""

    platform: str
    app_id: str
    reason: str


@attrs.frozen
class BatchRequest:
    """One request of a servicer batch came back: ``action`` "add" or "delete", the ``ids`` it
    carried, how many WeChat accepted (``ok``) and refused (``failed``), or ``error``, the name of
    what left them all unprocessed."""

    action: str
    open_kfid: str
    ids: int
    ok: int
    failed: int
    error: str | None = None


@attrs.frozen
class InboxPull:
    """One pull of an :class:`~wechat_kf.Inbox` ended: ``open_kfid``, how many ``pages`` it read
    (empty ones included), how many ``messages`` they held, how many of those were ``handled``
    (handed to the handler: the rest were marked done already), whether it carried a callback
    token (``with_token``; never the token itself), its ``duration`` in seconds, and its
    ``outcome``: "ok", "rate_limited" (45009: it backs off and tries again), "lease_lost"
    (another process took the account over), "failed" or "cancelled", with ``error``, the name
    of the exception, when it did not end well."""

    open_kfid: str
    pages: int
    messages: int
    handled: int
    with_token: bool
    duration: float
    outcome: str
    error: str | None = None


@attrs.frozen
class HandledMessage:
    """An inbox settled one message: its ``open_kfid``, ``msgid`` and ``msgtype``, how many
    ``attempts`` the handler took, the ``duration`` in seconds from the first attempt to the
    outcome (backoff included), and the ``outcome``: "done" (the handler returned), "failed"
    (it raised ``max_attempts`` times; ``on_failure`` was called and the message is marked
    failed) or "cancelled" (the inbox closed before the handler returned: left unmarked, so it is
    handled again), with ``error``, the name of the last exception, if any."""

    open_kfid: str
    msgid: str
    msgtype: str
    attempts: int
    duration: float
    outcome: str
    error: str | None = None


class LoggingHook:
    """The SDK's log lines, as a hook (the default): DEBUG a line per attempt under
    ``wechat_kf.transport`` (method, path, attempt, status or errcode, milliseconds), WARNING a
    line per retry with its reason and delay, and per token refresh after a rejection; DEBUG a
    line per inbox pull and per message an inbox settled, under ``wechat_kf.inbox``."""

    def on_inbox_pull(self, pull: InboxPull) -> None:
        if _inbox_logger.isEnabledFor(logging.DEBUG):
            _inbox_logger.debug(
                "pull %s: %s pages=%d messages=%d handled=%d token=%s ms=%.1f",
                pull.open_kfid,
                pull.outcome if pull.error is None else f"{pull.outcome} ({pull.error})",
                pull.pages,
                pull.messages,
                pull.handled,
                "yes" if pull.with_token else "no",
                pull.duration * 1000,
            )

    def on_inbox_message(self, message: HandledMessage) -> None:
        if _inbox_logger.isEnabledFor(logging.DEBUG):
            _inbox_logger.debug(
                "message %s (%s) of %s: %s attempts=%d ms=%.1f",
                message.msgid,
                message.msgtype,
                message.open_kfid,
                message.outcome,
                message.attempts,
                message.duration * 1000,
            )

    def on_attempt_end(self, result: AttemptResult) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        a = result.attempt
        outcome = (
            f"errcode={result.errcode}"
            if result.errcode is not None
            else f"status={result.status}"
            if result.status is not None
            else f"failed ({result.error})"
        )
        logger.debug(
            "%s %s attempt=%d %s ms=%.1f",
            a.method,
            a.path,
            a.attempt,
            outcome,
            result.duration * 1000,
        )

    def on_retry(self, retry: Retry) -> None:
        if retry.reason == "token rejected":
            logger.warning(
                "%s %s: token rejected (%s), refreshing", retry.method, retry.path, retry.errcode
            )
            return
        logger.warning(
            "%s %s attempt=%d failed (%s); retrying in %.2fs",
            retry.method,
            retry.path,
            retry.attempt,
            retry.reason,
            retry.delay,
        )


class Hooks:
    """The hooks of one client, called so that none can break a call: what a hook raises is
    logged under ``wechat_kf.hooks`` and dropped."""

    def __init__(self, hooks: Iterable[Any] | None) -> None:
        if hooks is None:
            hooks = [LoggingHook()]
        if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
            raise TypeError("hooks must be an iterable of hook objects")
        self.hooks: Sequence[Any] = tuple(hooks)
        # The methods each point calls, found once: most points of most clients have none or
        # one, and an attempt is the hot path.
        self._methods: dict[str, list[tuple[Any, Any]]] = {
            name: [(h, getattr(h, name)) for h in self.hooks if hasattr(h, name)]
            for name in (
                "on_attempt",
                "on_attempt_end",
                "on_retry",
                "on_token_fetch",
                "on_batch_request",
                "on_inbox_pull",
                "on_inbox_message",
            )
        }
        stock = LoggingHook.on_attempt_end
        ends = [getattr(method, "__func__", None) for _, method in self._methods["on_attempt_end"]]
        # The stock LoggingHook only writes DEBUG lines: it listens only while they are taken.
        self._logging = stock in ends
        self._watching = bool(self._methods["on_attempt"]) or any(e is not stock for e in ends)
        told = LoggingHook.on_inbox_message
        heard = [
            getattr(method, "__func__", None) for _, method in self._methods["on_inbox_message"]
        ]
        self._logging_messages = told in heard
        self._watching_messages = any(h is not told for h in heard)

    def watching_attempts(self) -> bool:
        """Whether a hook hears of an attempt now: one that wraps attempts or reads their ends,
        or a ``LoggingHook`` while ``wechat_kf.transport`` takes DEBUG lines. The transport asks
        before each attempt and builds no record when none does."""
        return self._watching or (self._logging and logger.isEnabledFor(logging.DEBUG))

    def watching_messages(self) -> bool:
        """Whether a hook hears of a message an inbox settled now: one that reads them, or a
        ``LoggingHook`` while ``wechat_kf.inbox`` takes DEBUG lines. The inbox asks before each
        message and builds no record when none does."""
        return self._watching_messages or (
            self._logging_messages and _inbox_logger.isEnabledFor(logging.DEBUG)
        )

    def attempt(self, attempt: Attempt) -> contextlib.AbstractContextManager[Any]:
        """Around one attempt: each hook's ``on_attempt`` context manager, entered in order."""
        wrapping = self._methods["on_attempt"]
        if not wrapping:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        for hook, method in wrapping:
            try:
                wrap = method(attempt)
                if wrap is not None:
                    stack.enter_context(_Guarded(wrap, hook))
            except Exception:
                _hook_failed(hook, "on_attempt")
        return stack

    def attempt_end(self, result: AttemptResult) -> None:
        self._call("on_attempt_end", result)

    def retry(self, retry: Retry) -> None:
        self._call("on_retry", retry)

    def token_fetch(self, fetch: TokenFetch) -> None:
        self._call("on_token_fetch", fetch)

    def batch_request(self, request: BatchRequest) -> None:
        self._call("on_batch_request", request)

    def inbox_pull(self, pull: InboxPull) -> None:
        self._call("on_inbox_pull", pull)

    def inbox_message(self, message: HandledMessage) -> None:
        self._call("on_inbox_message", message)

    def _call(self, name: str, record: Any) -> None:
        for hook, method in self._methods[name]:
            try:
                method(record)
            except Exception:
                _hook_failed(hook, name)


class _Guarded:
    """A hook's context manager whose own failures are logged instead of raised; what the
    attempt raises (a cancellation, say) still reaches it and goes on."""

    def __init__(self, wrap: Any, hook: Any) -> None:
        self._wrap = wrap
        self._hook = hook
        self._entered = False

    def __enter__(self) -> None:
        self._wrap.__enter__()
        self._entered = True

    def __exit__(self, *exc_info: Any) -> None:
        if self._entered:
            try:
                self._wrap.__exit__(*exc_info)
            except Exception:
                _hook_failed(self._hook, "on_attempt (exit)")


def _hook_failed(hook: Any, where: str) -> None:
    _hook_logger.warning("hook %s failed in %s", type(hook).__name__, where, exc_info=True)
