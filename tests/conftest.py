"""Shared fixtures: every async test runs on asyncio and trio, on a FakeWeChat, and fails if any
secret or token it saw shows up in a log record."""

from __future__ import annotations

import copy
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import wechat_kf
from wechat_kf import (
    AccessToken,
    MemoryTokenStore,
    OfficialAccountClient,
    OfficialAccountTokenProvider,
    StaticTokenProvider,
    WeChatError,
    WeComClient,
    WeComTokenProvider,
    tokens,
)
from wechat_kf.testing import Call, FakeWeChat, instant_retries


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["httpx", "aiohttp"])
def exchange(request: pytest.FixtureRequest) -> str:
    """Each exchange in turn, for the tests of the contract both honour (aiohttp on asyncio
    only: its trio combinations are deselected below)."""
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the combinations that cannot exist: the aiohttp exchange on trio."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        chosen = params.params if params is not None else {}
        if chosen.get("exchange") == "aiohttp" and chosen.get("anyio_backend") == "trio":
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    """Retries do not wait, so the policy is exercised without slow tests (the public helper
    users have for their own tests)."""
    with instant_retries():
        yield


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.texts.append(text)


# Objects whose str and repr must never show a secret: every instance made during a test is kept.
_WATCHED_CLASSES: tuple[type[Any], ...] = (
    WeChatError,
    OfficialAccountClient,
    WeComClient,
    OfficialAccountTokenProvider,
    WeComTokenProvider,
    StaticTokenProvider,
    AccessToken,
    MemoryTokenStore,
    Call,
)


def _record_instances(monkeypatch: pytest.MonkeyPatch, cls: type[Any], into: list[Any]) -> None:
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        into.append(self)

    monkeypatch.setattr(cls, "__init__", init)


def _texts(obj: Any) -> list[str]:
    texts = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        texts += [repr(arg) for arg in obj.args]
        texts += _tracker_view(obj)
    return texts


_PACKAGE = str(Path(wechat_kf.__file__).resolve().parent)


def _tracker_view(error: BaseException) -> list[str]:
    """What an error tracker with Sentry's defaults records of ``error``: every exception of its
    chain (suppressed context included), and the local variables of each frame, as reprs. Only
    the SDK's frames are kept: the caller's own locals are the caller's business."""
    texts: list[str] = []
    pending = [traceback.TracebackException(type(error), error, error.__traceback__,
                                            capture_locals=True)]  # fmt: skip
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts.append("".join(current.format_exception_only()))
        texts += [repr(frame.locals) for frame in current.stack
                  if str(Path(frame.filename).resolve()).startswith(_PACKAGE)]  # fmt: skip
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


@pytest.fixture(autouse=True)
def secret_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Fails the test if a secret or token shows up where it must not: every log record at DEBUG
    (ours, httpx's, httpcore's and their children's), the str and repr of every exception, client,
    provider, store, token and fake call made during the test, and every exception as an error
    tracker records it (its chain, with the local variables of the SDK's frames). The secrets
    are those of every FakeWeChat made during the test (its apps' secrets and every token it
    issued) plus what the test adds."""
    watched: set[str] = set()
    fakes: list[FakeWeChat] = []
    objects: list[Any] = []
    _record_instances(monkeypatch, FakeWeChat, fakes)
    for cls in _WATCHED_CLASSES:
        _record_instances(monkeypatch, cls, objects)

    def copied(obj: Any) -> Any:  # the copies of a failure that waiting callers raise, too
        duplicate = copy.copy(obj)
        objects.append(duplicate)
        return duplicate

    monkeypatch.setattr(tokens, "copy", SimpleNamespace(copy=copied))
    handler = _Capture()
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in ("wechat_kf", "httpx", "httpcore")]
    levels = [lg.level for lg in loggers]
    root.addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield watched
    finally:
        root.removeHandler(handler)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    for instance in fakes:
        watched.update(instance.issued_tokens())
        watched.update(app.secret for app in instance.official_accounts.values())
        watched.update(app.secret for app in instance.wecom_apps.values())
        for platform in instance.open_platforms.values():
            watched.update([platform.component_appsecret, platform.ticket or ""])
            watched.update(platform.refresh_tokens.values())
        for suite in instance.service_providers.values():
            watched.update([suite.suite_secret, suite.ticket or ""])
            watched.update(suite.permanent_codes.values())
    secrets = [s for s in watched if s]
    leaks = [(s, text) for s in secrets for text in handler.texts if s in text]
    assert not leaks, f"secret leaked into a log record: {leaks[0][1]!r}"
    shown = [text for obj in objects for text in _texts(obj)]
    leaks = [(s, text) for s in secrets for text in shown if s in text]
    assert not leaks, f"secret leaked into a str or repr: {leaks[0][1]!r}"


@pytest.fixture
def fake() -> FakeWeChat:
    """A FakeWeChat (its secrets and issued tokens are watched for leaks like every fake's)."""
    return FakeWeChat(seed=1234)


@pytest.fixture
async def http(fake: FakeWeChat) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to the fake in-process."""
    async with httpx.AsyncClient(transport=fake.transport) as client:
        yield client


@pytest.fixture
async def oa(fake: FakeWeChat, http: httpx.AsyncClient) -> AsyncIterator[OfficialAccountClient]:
    """An Official Account client on a registered fake app (WeChat ID ``gh_fake``)."""
    app = fake.register_official_account()
    async with OfficialAccountClient(app.appid, app.secret, http_client=http) as client:
        yield client


@pytest.fixture
def corp(fake: FakeWeChat) -> tuple[str, str, str]:
    """A registered WeCom app with members u0..u999 and departments 1..30: (corpid, secret,
    open_kfid)."""
    app = fake.register_wecom_app()
    fake.add_members(app.corpid, [f"u{i}" for i in range(1000)])
    fake.add_departments(app.corpid, range(1, 31))
    return app.corpid, app.secret, fake.create_kf_account(app.corpid)


@pytest.fixture
async def wc(corp: tuple[str, str, str], http: httpx.AsyncClient) -> AsyncIterator[WeComClient]:
    """A WeCom client for the ``corp`` fixture's app."""
    async with WeComClient(corp[0], corp[1], http_client=http) as client:
        yield client


@pytest.fixture
def otel() -> Iterator[tuple[Any, Any, Any]]:
    """An OpenTelemetryHook over in-memory exporters: (hook, finished spans, metric reader)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from wechat_kf.otel import OpenTelemetryHook

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    hook = OpenTelemetryHook(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield hook, spans, reader
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture(autouse=True)
def _restore_log_levels() -> Iterator[None]:
    # The command sets the levels of these loggers (-v); no test may leave them to the next.
    loggers = [logging.getLogger(name) for name in ("wechat_kf", "httpx")]
    levels = [lg.level for lg in loggers]
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)
