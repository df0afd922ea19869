"""OpenTelemetry for wechat_kf (extra ``otel``): ``hooks=[OpenTelemetryHook()]`` gives a client span
per attempt and metrics for request duration, retries, token fetches and batch ids, through the
global tracer and meter providers or the ones you give."""

from __future__ import annotations

import time
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as _missing:  # pragma: no cover - exercised without the extra only
    raise ImportError("wechat_kf.otel needs: pip install 'wechat-kf[otel]'") from _missing

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
    """A client span per attempt, named "METHOD /path", following OpenTelemetry's HTTP client
    conventions: ``http.request.method``, ``server.address``, ``server.port``, ``url.full`` (the
    token and every secret in its query replaced by ``REDACTED``), ``http.request.resend_count``
    (from the second attempt of a call, whatever sent it again) and, once it ends,
    ``http.response.status_code`` and ``error.type`` (the status as text for an HTTP error,
    else the name of what failed: "TransportError", "APIError", "token rejected"...); plus ours,
    ``url.path``, ``wechat.call`` (business or token), ``wechat.errcode`` and ``wechat.rid``.
    Metrics: ``http.client.request.duration`` (seconds, per attempt, with the conventions'
    attributes and buckets), and ours, ``wechat_kf.request.duration``, ``wechat_kf.retries``,
    ``wechat_kf.token.fetches`` and ``wechat_kf.batch.ids``; for an inbox, a span
    ``wechat_kf.inbox.pull`` per pull and ``wechat_kf.inbox.handle`` per message it settled
    (``wechat.open_kfid``, ``wechat.msgid``, ``wechat.msgtype``, counts, attempts,
    ``wechat.inbox.outcome``; never a token), and the metrics ``wechat_kf.inbox.pull.duration``,
    ``wechat_kf.inbox.handle.duration`` and ``wechat_kf.inbox.messages``. Uses the global
    providers unless ``tracer_provider`` / ``meter_provider`` are given."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("wechat_kf", __version__, tracer_provider)
        meter = metrics.get_meter("wechat_kf", __version__, meter_provider)
        self._http_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
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
        attributes = _common(attempt)
        attributes["url.path"] = attempt.path
        attributes["wechat.call"] = attempt.kind
        if attempt.url is not None:
            attributes["url.full"] = attempt.url
        if attempt.attempt > 1:
            attributes["http.request.resend_count"] = attempt.attempt - 1
        return self._tracer.start_as_current_span(
            f"{attempt.method} {attempt.path}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def on_attempt_end(self, result: AttemptResult) -> None:
        span = trace.get_current_span()
        attributes = _common(result.attempt)
        if result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
            attributes["http.response.status_code"] = result.status
        if result.errcode is not None:
            span.set_attribute("wechat.errcode", result.errcode)
        if result.rid is not None:
            span.set_attribute("wechat.rid", result.rid)
        error = _error_type(result)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
            attributes["error.type"] = error
        self._http_duration.record(result.duration, attributes)
        ours = {**attributes, "url.path": result.attempt.path, "wechat.call": result.attempt.kind}
        self._duration.record(result.duration, ours)

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


#: The buckets the HTTP client conventions advise for ``http.client.request.duration``.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def _common(attempt: Attempt) -> dict[str, Any]:
    """What both a span and the duration metrics say of an attempt (OpenTelemetry's HTTP client
    conventions)."""
    attributes: dict[str, Any] = {"http.request.method": attempt.method}
    if attempt.server_address is not None:
        attributes["server.address"] = attempt.server_address
    if attempt.server_port is not None:
        attributes["server.port"] = attempt.server_port
    return attributes


def _error_type(result: AttemptResult) -> str | None:
    """``error.type`` of an attempt: the status code as text when HTTP said it failed (the
    conventions' rule), else the name of what failed, None for a success."""
    if result.status is not None and result.status >= 400:
        return str(result.status)
    return result.error
