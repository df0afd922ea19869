"""OpenTelemetry for wechat_kf (extra ``otel``): ``hooks=[OpenTelemetryHook()]`` gives a client span
per attempt and metrics for request duration, retries, token fetches and batch ids, through the
global tracer and meter providers or the ones you give."""

from __future__ import annotations

import time
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError("wechat_kf.otel needs: pip install 'wechat-kf[otel]'") from exc

from ._version import __version__
from .hooks import (
    Attempt,
    AttemptResult,
    BatchRequest,
    HandledMessage,
    InboxPull,
    Retry,
    TokenFetch,
)

__all__ = ["OpenTelemetryHook"]


class OpenTelemetryHook:
    """A span per attempt, named "METHOD /path", with ``http.request.method``, ``server.address``,
    ``server.port``, ``url.path`` (never the query, which holds the token), ``wechat.attempt``,
    ``wechat.call`` (business or
    token) and, once it ends, ``http.response.status_code``, ``wechat.errcode``, ``wechat.rid``
    and ``error.type``; and the metrics ``wechat_kf.request.duration`` (seconds, per attempt),
    ``wechat_kf.retries``, ``wechat_kf.token.fetches`` and ``wechat_kf.batch.ids``; for an
    inbox, a span ``wechat_kf.inbox.pull`` per pull and ``wechat_kf.inbox.handle`` per message
    it settled (``wechat.open_kfid``, ``wechat.msgid``, ``wechat.msgtype``, counts, attempts,
    ``wechat.inbox.outcome``; never a token), and the metrics ``wechat_kf.inbox.pull.duration``,
    ``wechat_kf.inbox.handle.duration`` and ``wechat_kf.inbox.messages``. Uses the global
    providers unless ``tracer_provider`` / ``meter_provider`` are given."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("wechat_kf", __version__, tracer_provider)
        meter = metrics.get_meter("wechat_kf", __version__, meter_provider)
        self._duration = meter.create_histogram(
            "wechat_kf.request.duration", unit="s", description="Duration of each attempt."
        )
        self._retries = meter.create_counter(
            "wechat_kf.retries", unit="{retry}", description="Calls sent again, by reason."
        )
        self._token_fetches = meter.create_counter(
            "wechat_kf.token.fetches", unit="{fetch}", description="Token fetches, by reason."
        )
        self._batch_ids = meter.create_counter(
            "wechat_kf.batch.ids", unit="{id}", description="Ids of servicer batches, by outcome."
        )
        self._pull_duration = meter.create_histogram(
            "wechat_kf.inbox.pull.duration", unit="s", description="Duration of each inbox pull."
        )
        self._handle_duration = meter.create_histogram(
            "wechat_kf.inbox.handle.duration",
            unit="s",
            description="Time from a message's first handler attempt to its outcome.",
        )
        self._inbox_messages = meter.create_counter(
            "wechat_kf.inbox.messages",
            unit="{message}",
            description="Messages an inbox settled, by type and outcome.",
        )

    def on_attempt(self, attempt: Attempt) -> Any:
        attributes = {**_common(attempt), "wechat.attempt": attempt.attempt}
        return self._tracer.start_as_current_span(
            f"{attempt.method} {attempt.path}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def on_attempt_end(self, result: AttemptResult) -> None:
        span = trace.get_current_span()
        if result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
        if result.errcode is not None:
            span.set_attribute("wechat.errcode", result.errcode)
        if result.rid is not None:
            span.set_attribute("wechat.rid", result.rid)
        if result.error is not None:
            span.set_attribute("error.type", result.error)
            span.set_status(Status(StatusCode.ERROR, result.error))
        attributes = _common(result.attempt)
        if result.error is not None:
            attributes["error.type"] = result.error
        self._duration.record(result.duration, attributes)

    def on_retry(self, retry: Retry) -> None:
        self._retries.add(1, {"url.path": retry.path, "wechat.retry.reason": retry.reason})

    def on_token_fetch(self, fetch: TokenFetch) -> None:
        attributes = {"wechat.platform": fetch.platform, "wechat.token.reason": fetch.reason}
        self._token_fetches.add(1, attributes)

    def on_batch_request(self, request: BatchRequest) -> None:
        base = {"wechat.batch.action": request.action}
        if request.ok:
            self._batch_ids.add(request.ok, {**base, "wechat.batch.outcome": "ok"})
        if request.failed:
            self._batch_ids.add(request.failed, {**base, "wechat.batch.outcome": "failed"})
        unprocessed = request.ids - request.ok - request.failed
        if unprocessed:
            self._batch_ids.add(unprocessed, {**base, "wechat.batch.outcome": "unprocessed"})

    def on_inbox_pull(self, pull: InboxPull) -> None:
        attributes: dict[str, Any] = {
            "wechat.open_kfid": pull.open_kfid,
            "wechat.inbox.pages": pull.pages,
            "wechat.inbox.messages": pull.messages,
            "wechat.inbox.handled": pull.handled,
            "wechat.inbox.with_token": pull.with_token,
            "wechat.inbox.outcome": pull.outcome,
        }
        self._span_after("wechat_kf.inbox.pull", pull.duration, attributes, pull.error)
        outcome = {"wechat.inbox.outcome": pull.outcome}
        self._pull_duration.record(pull.duration, outcome)

    def on_inbox_message(self, message: HandledMessage) -> None:
        attributes: dict[str, Any] = {
            "wechat.open_kfid": message.open_kfid,
            "wechat.msgid": message.msgid,
            "wechat.msgtype": message.msgtype,
            "wechat.inbox.attempts": message.attempts,
            "wechat.inbox.outcome": message.outcome,
        }
        # A message done after a retry keeps its last error in the record, but did not fail.
        error = message.error if message.outcome == "failed" else None
        self._span_after("wechat_kf.inbox.handle", message.duration, attributes, error)
        labels = {"wechat.msgtype": message.msgtype, "wechat.inbox.outcome": message.outcome}
        self._handle_duration.record(message.duration, labels)
        self._inbox_messages.add(1, labels)

    def _span_after(
        self, name: str, duration: float, attributes: dict[str, Any], error: str | None
    ) -> None:
        """A span for what the record says just ended, ``duration`` seconds long (the inbox
        reports a pull or a message once it is over)."""
        end = time.time_ns()
        span = self._tracer.start_span(
            name, attributes=attributes, start_time=end - int(duration * 1e9)
        )
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end)


def _common(attempt: Attempt) -> dict[str, Any]:
    """What both a span and the duration metric say of an attempt (OpenTelemetry's HTTP client
    conventions, plus ours)."""
    attributes: dict[str, Any] = {
        "http.request.method": attempt.method,
        "url.path": attempt.path,
        "wechat.call": attempt.kind,
    }
    if attempt.server_address is not None:
        attributes["server.address"] = attempt.server_address
    if attempt.server_port is not None:
        attributes["server.port"] = attempt.server_port
    return attributes
