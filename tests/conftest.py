"""Shared fixtures: every async test runs on asyncio and trio, on a FakeWeChat, and fails if any
secret or token it saw shows up in a log record."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from wechat_kf import OfficialAccountClient, WeComClient, tokens
from wechat_kf._transport import Transport
from wechat_kf.testing import FakeWeChat


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait milliseconds, not seconds, so the policy is exercised without slow tests;
    the process-wide record of forced stable_token refreshes starts empty for each test."""
    monkeypatch.setattr(Transport, "backoff_base", 0.001)
    monkeypatch.setattr(tokens, "_last_forced_refresh", {})


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.texts.append(text)


@pytest.fixture(autouse=True)
def secret_watch() -> Iterator[set[str]]:
    """Captures every log record at DEBUG (ours, httpx's, httpcore's); tests and the ``fake``
    fixture add the secrets and tokens in play, and the test fails if any record holds one."""
    watched: set[str] = set()
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
    leaks = [(s, text) for s in watched if s for text in handler.texts if s in text]
    assert not leaks, f"secret leaked into a log record: {leaks[0][1]!r}"


@pytest.fixture
def fake(secret_watch: set[str]) -> Iterator[FakeWeChat]:
    """A FakeWeChat whose secrets and issued tokens are watched for leaks."""
    instance = FakeWeChat(seed=1234)
    yield instance
    secret_watch.update(instance.issued_tokens())
    secret_watch.update(app.secret for app in instance.official_accounts.values())
    secret_watch.update(app.secret for app in instance.wecom_apps.values())


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
