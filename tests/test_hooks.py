"""Hooks: what each fixed point reports, that a hook's context wraps the attempt, that a raising
hook never breaks a call, that no record holds a secret, and the OpenTelemetry hook's spans and
metrics through the SDK's in-memory exporters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import httpx
import pytest

from wechat_kf import OfficialAccountClient, StaticTokenProvider, WeComClient
from wechat_kf.hooks import (
    Attempt,
    AttemptResult,
    BatchRequest,
    LoggingHook,
    Retry,
    TokenFetch,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

Corp = tuple[str, str, str]


@attrs.define
class Recorder:
    """A hook that keeps every record, and notes what the attempt context saw."""

    events: list[Any] = attrs.Factory(list)
    inside: list[bool] = attrs.Factory(list)
    depth: int = 0

    @contextmanager
    def _wrap(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def on_attempt(self, attempt: Attempt) -> Any:
        self.events.append(attempt)
        return self._wrap()

    def on_attempt_end(self, result: AttemptResult) -> None:
        self.inside.append(self.depth == 1)
        self.events.append(result)

    def on_retry(self, retry: Retry) -> None:
        self.events.append(retry)

    def on_token_fetch(self, fetch: TokenFetch) -> None:
        self.events.append(fetch)

    def on_batch_request(self, request: BatchRequest) -> None:
        self.events.append(request)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def wecom(fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient, *hooks: Any) -> WeComClient:
    return WeComClient(corp[0], corp[1], http_client=http, hooks=list(hooks))


async def test_each_attempt_is_wrapped_and_reported_with_its_outcome(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient
) -> None:
    hook = Recorder()
    async with wecom(fake, corp, http, hook) as wc:
        await wc.servicers.list(corp[2])
    starts, ends = hook.of(Attempt), hook.of(AttemptResult)
    assert [(a.kind, a.path, a.attempt) for a in starts] == [
        ("token", "/cgi-bin/gettoken", 1),
        ("business", "/cgi-bin/kf/servicer/list", 1),
    ]
    assert [(r.status, r.errcode, r.error) for r in ends] == [(200, 0, None), (200, 0, None)]
    assert all(r.duration >= 0 for r in ends)
    assert hook.inside == [True, True]  # the end is reported inside the attempt's context
    assert hook.of(TokenFetch) == [TokenFetch("wecom", corp[0], "cold")]


async def test_retries_and_refreshes_are_reported_once_each_with_their_reason(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient
) -> None:
    hook = Recorder()
    async with wecom(fake, corp, http, hook) as wc:
        await wc.servicers.list(corp[2])
        fake.faults.busy_rate = 1.0
        with pytest.raises(Exception, match="system error"):
            await wc.servicers.list(corp[2])
        fake.faults.busy_rate = 0.0
        fake.revoke_tokens()
        await wc.servicers.list(corp[2])
    retries = hook.of(Retry)
    assert [(r.reason, r.attempt) for r in retries[:3]] == [
        ("errcode -1", 1),
        ("errcode -1", 2),
        ("errcode -1", 3),
    ]
    assert retries[3].reason == "token rejected"
    assert retries[3].errcode == 40014
    refreshed = [(r.attempt.attempt, r.errcode, r.rid is not None) for r in hook.of(AttemptResult)]
    assert (1, 40014, True) in refreshed
    assert [f.reason for f in hook.of(TokenFetch)] == ["cold", "rejected"]


async def test_a_forced_stable_token_refresh_is_reported_as_forced(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    hook = Recorder()
    async with OfficialAccountClient(app.appid, app.secret, http_client=http, hooks=[hook]) as oa:
        await oa.kf_accounts.list()
        token = app.stable_token
        assert token is not None
        fake.tokens[token].expires_at = 0  # WeChat says expired; stable_token hands it out again
        app.stable_token = None
        fake.tokens.pop(token)

        async def same_token(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"access_token": token, "expires_in": 7200})

        # The first re-fetch answers the rejected token again, which forces a refresh.
        real = fake.transport
        calls = {"n": 0}

        async def handler(request: httpx.Request) -> httpx.Response:
            body = request.content
            if request.url.path == "/cgi-bin/stable_token" and b"force_refresh" not in body:
                calls["n"] += 1
                if calls["n"] == 1:
                    return await same_token(request)
            return await real.handle_async_request(request)

        http._transport = httpx.MockTransport(handler)
        await oa.kf_accounts.list()
    assert [f.reason for f in hook.of(TokenFetch)] == ["cold", "rejected", "forced"]


async def test_each_batch_request_is_reported_with_its_counts(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient
) -> None:
    hook = Recorder()
    async with wecom(fake, corp, http, hook) as wc:
        await wc.servicers.add(corp[2], [f"u{i}" for i in range(150)] + ["ghost"])
    requests = sorted(hook.of(BatchRequest), key=lambda r: r.ids)
    assert [(r.action, r.ids, r.ok, r.failed, r.error) for r in requests] == [
        ("add", 51, 50, 1, None),
        ("add", 100, 100, 0, None),
    ]


class Raising:
    def on_attempt(self, attempt: Attempt) -> Any:
        raise RuntimeError("hook broke in on_attempt")

    def on_attempt_end(self, result: AttemptResult) -> None:
        raise RuntimeError("hook broke in on_attempt_end")

    def on_retry(self, retry: Retry) -> None:
        raise RuntimeError("hook broke in on_retry")

    def on_token_fetch(self, fetch: TokenFetch) -> None:
        raise RuntimeError("hook broke in on_token_fetch")

    def on_batch_request(self, request: BatchRequest) -> None:
        raise RuntimeError("hook broke in on_batch_request")


class RaisingOnExit:
    @contextmanager
    def _wrap(self) -> Iterator[None]:
        yield
        raise RuntimeError("hook broke on exit")

    def on_attempt(self, attempt: Attempt) -> Any:
        return self._wrap()


async def test_a_raising_hook_is_logged_and_never_breaks_a_call(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.faults.busy_rate = 0.3
    after = Recorder()
    with caplog.at_level(logging.WARNING, logger="wechat_kf.hooks"):
        async with wecom(fake, corp, http, Raising(), RaisingOnExit(), after) as wc:
            result = await wc.servicers.add(corp[2], [f"u{i}" for i in range(300)])
    assert result.ok
    assert after.of(BatchRequest)  # the hooks after a broken one still hear everything
    broken = {r.getMessage() for r in caplog.records if r.name == "wechat_kf.hooks"}
    assert "hook Raising failed in on_attempt" in broken
    assert "hook Raising failed in on_batch_request" in broken
    assert "hook RaisingOnExit failed in on_attempt (exit)" in broken


async def test_no_record_holds_a_token_or_a_secret(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient
) -> None:
    fake.faults.busy_rate = 0.3
    hook = Recorder()
    async with wecom(fake, corp, http, hook) as wc:
        await wc.servicers.add(corp[2], [f"u{i}" for i in range(200)])
        fake.revoke_tokens()
        await wc.servicers.list(corp[2])
    shown = " ".join(repr(e) for e in hook.events)
    for secret in [corp[1], *fake.issued_tokens()]:
        assert secret not in shown


async def test_the_default_hook_is_the_logging_hook_and_hooks_replace_it(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient
) -> None:
    default = WeComClient(corp[0], corp[1], http_client=http)
    assert [type(h) for h in default._transport.hooks.hooks] == [LoggingHook]
    chosen = WeComClient(corp[0], corp[1], http_client=http, hooks=[])
    assert chosen._transport.hooks.hooks == ()
    await default.aclose()
    await chosen.aclose()
    with pytest.raises(TypeError):
        WeComClient(corp[0], corp[1], http_client=http, hooks="LoggingHook")  # type: ignore[arg-type]


async def test_a_static_provider_reports_no_token_fetch(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    hook = Recorder()
    provider = StaticTokenProvider("t" * 40)
    async with OfficialAccountClient(token_provider=provider, http_client=http, hooks=[hook]) as c:
        with pytest.raises(Exception):  # noqa: B017 - the fake refuses the unknown token
            await c.kf_accounts.list()
    assert hook.of(TokenFetch) == []


class EndsOnly(LoggingHook):
    """A LoggingHook whose subclass reads every attempt's end: a listener like any other."""

    def __init__(self) -> None:
        self.ends: list[AttemptResult] = []

    def on_attempt_end(self, result: AttemptResult) -> None:
        self.ends.append(result)


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_an_attempt_no_hook_listens_to_builds_no_record_and_still_retries(
    fake: FakeWeChat,
    corp: Corp,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    level: int,
) -> None:
    """The default LoggingHook listens only while ``wechat_kf.transport`` takes DEBUG lines:
    otherwise no Attempt or AttemptResult is made, and the call, its retries and its WARNING
    lines are as ever."""
    made: list[Any] = []
    monkeypatch.setattr("wechat_kf._transport.Attempt", lambda *a: made.append(a) or Attempt(*a))
    monkeypatch.setattr(logging.getLogger("wechat_kf.transport"), "level", level)
    fake.faults.busy_rate = 0.5
    with caplog.at_level(level, logger="wechat_kf.transport"):
        async with WeComClient(corp[0], corp[1], http_client=http, max_retries=20) as wc:
            for _ in range(4):
                assert await wc.servicers.list(corp[2]) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "wechat_kf.transport"]
    attempts = len(fake.calls)
    assert any("retrying in" in line for line in lines)
    if level == logging.INFO:
        assert made == []
        assert not any("attempt=" in line and "ms=" in line for line in lines)
    else:
        assert len(made) == attempts
        assert sum("ms=" in line for line in lines) == attempts


async def test_a_hook_reading_attempt_ends_hears_every_attempt_whatever_the_log_level(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("wechat_kf.transport"), "level", logging.WARNING)
    hook, plain = EndsOnly(), Recorder()
    async with (
        WeComClient(corp[0], corp[1], http_client=http, hooks=[hook]) as wc,
        WeComClient(corp[0], corp[1], http_client=http, hooks=[plain]) as other,
    ):
        await wc.servicers.list(corp[2])
        await other.servicers.list(corp[2])
    assert [r.attempt.path for r in hook.ends] == ["/cgi-bin/gettoken", "/cgi-bin/kf/servicer/list"]
    assert len(plain.of(Attempt)) == len(plain.of(AttemptResult)) == 2


# -- OpenTelemetry -----------------------------------------------------------------------------


def metric_points(reader: Any) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


async def test_the_opentelemetry_hook_makes_a_span_per_attempt_without_the_query(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient, otel: tuple[Any, Any, Any]
) -> None:
    hook, spans, reader = otel
    async with wecom(fake, corp, http, hook) as wc:
        await wc.servicers.list(corp[2])
        fake.revoke_tokens()
        await wc.servicers.add(corp[2], ["u1"])
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert names == [
        "GET /cgi-bin/gettoken",
        "GET /cgi-bin/kf/servicer/list",
        "POST /cgi-bin/kf/servicer/add",
        "GET /cgi-bin/gettoken",
        "POST /cgi-bin/kf/servicer/add",
    ]
    rejected = finished[2].attributes
    assert rejected["http.request.method"] == "POST"
    assert rejected["url.path"] == "/cgi-bin/kf/servicer/add"
    assert "http.request.resend_count" not in rejected  # the first attempt
    assert rejected["url.full"].endswith("/cgi-bin/kf/servicer/add?access_token=REDACTED")
    assert rejected["wechat.errcode"] == 40014
    assert rejected["wechat.rid"]
    assert rejected["error.type"] == "token rejected"
    assert finished[4].attributes["http.request.resend_count"] == 1
    assert finished[4].attributes["wechat.errcode"] == 0
    everything = repr([dict(s.attributes) for s in finished]) + repr(names)
    for secret in [corp[1], *fake.issued_tokens()]:
        assert secret not in everything
    points = metric_points(reader)
    assert sum(p.count for p in points["wechat_kf.request.duration"]) == 5
    assert sum(p.value for p in points["wechat_kf.retries"]) == 1
    fetches = {
        p.attributes["wechat.token.reason"]: p.value for p in points["wechat_kf.token.fetches"]
    }
    assert fetches == {"cold": 1, "rejected": 1}
    ids = {p.attributes["wechat.batch.outcome"]: p.value for p in points["wechat_kf.batch.ids"]}
    assert ids == {"ok": 1}


@pytest.mark.parametrize(
    ("base_url", "address", "port"),
    [
        ("https://qyapi.weixin.qq.com", "qyapi.weixin.qq.com", 443),
        ("http://127.0.0.1:8123", "127.0.0.1", 8123),
        ("https://wechat.example:9443/", "wechat.example", 9443),
    ],
)
async def test_spans_and_durations_carry_server_address_and_port(
    corp: Corp, otel: tuple[Any, Any, Any], base_url: str, address: str, port: int
) -> None:
    hook, spans, reader = otel

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            return httpx.Response(200, json={"access_token": "T" * 20, "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 0, "servicer_list": []})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        WeComClient(corp[0], corp[1], http_client=http, base_url=base_url, hooks=[hook]) as wc,
    ):
        await wc.servicers.list(corp[2])
    finished = spans.get_finished_spans()
    assert len(finished) == 2
    for span in finished:
        assert span.attributes["server.address"] == address
        assert span.attributes["server.port"] == port
    durations = metric_points(reader)["wechat_kf.request.duration"]
    assert {(p.attributes["server.address"], p.attributes["server.port"]) for p in durations} == {
        (address, port)
    }
