"""No token or secret in exception text, reprs or errmsg echoes; TLS and redirect rules."""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable

import anyio
import httpx
import pytest

from tests._scripted import SECRET, Scripted
from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    AccessTokenError,
    BatchError,
    CredentialError,
    InvalidResponseError,
    OfficialAccountClient,
    StaticTokenProvider,
    TransportError,
    WeChatError,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio


def assert_hidden(secrets: list[str], *objects: object) -> None:
    for obj in objects:
        texts = [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts += [str(a) for a in obj.args]
        for secret in secrets:
            for text in texts:
                assert secret not in text, f"{secret!r} leaked into {text!r}"


async def test_errors_from_every_kind_of_failure_hide_tokens_and_secrets(
    fake: FakeWeChat, http: httpx.AsyncClient, corp: tuple[str, str, str]
) -> None:
    app = fake.register_official_account()
    caught: list[WeChatError] = []
    async with OfficialAccountClient(app.appid, "wrong", http_client=http) as bad:
        with pytest.raises(CredentialError) as info:
            await bad.kf_accounts.list()
        caught.append(info.value)
    async with OfficialAccountClient(app.appid, app.secret, http_client=http) as oa:
        await oa.kf_accounts.list()
        fake.faults.revoke_every = 1
        with pytest.raises(AccessTokenError) as token_info:
            await oa.kf_accounts.list()
        caught.append(token_info.value)
        fake.faults.revoke_every = None
        fake.faults.http_error_rate = 1.0
        with pytest.raises(TransportError) as transport_info:
            await oa.kf_accounts.list()
        caught.append(transport_info.value)
        fake.faults.http_error_rate = 0.0
    async with WeComClient(corp[0], corp[1], http_client=http) as wc:
        with pytest.raises(BatchError) as batch_info:
            await wc.servicers.add("wkunknown", ["u1"])
        caught.append(batch_info.value)
        assert_hidden([corp[1], *fake.issued_tokens()], wc, wc.servicers, wc.token_provider)
    secrets = [app.secret, corp[1], *fake.issued_tokens()]
    assert_hidden(secrets, *caught, oa, oa.kf_accounts, oa.token_provider, *fake.calls)


async def test_a_token_echoed_in_errmsg_is_redacted(secret_watch: set[str]) -> None:
    secret_watch.add(SECRET)
    token = f"tok-1-{SECRET}"
    script = Scripted({"errcode": 48001, "errmsg": f"api unauthorized, token {token} rid: r1"})
    async with OfficialAccountClient("wx", SECRET, http_client=script.client()) as client:
        with pytest.raises(WeChatError) as info:
            await client.kf_accounts.list()
    assert_hidden([token, SECRET], info.value)
    assert info.value.rid == "r1"  # type: ignore[attr-defined]


async def test_tls_verification_stays_on_in_the_owned_client() -> None:
    client = OfficialAccountClient("wx", "secret", exchange="httpx")
    transports = client._transport._exchange._transports  # type: ignore[attr-defined]
    assert transports
    for transport in transports:  # every pool of the owned exchange
        assert transport._pool._ssl_context.verify_mode.name == "CERT_REQUIRED"
        assert transport._pool._ssl_context.check_hostname
    await client.aclose()


def tracker_record(error: BaseException) -> str:
    """Everything an error tracker with Sentry's defaults records: the chain, with the locals of
    every frame (the callers here hold no secret), but for the leak watch's own wrappers of
    constructors in conftest.py, whose arguments are the caller's."""
    rendered = traceback.TracebackException(
        type(error), error, error.__traceback__, capture_locals=True
    )
    pending: list[traceback.TracebackException | None] = [rendered]
    while pending:
        current = pending.pop()
        if current is not None:
            kept = [f for f in current.stack if not f.filename.endswith("conftest.py")]
            current.stack = traceback.StackSummary.from_list(kept)
            pending += [current.__cause__, current.__context__]
    return "".join(rendered.format())


FAILURES: dict[str, tuple[str, Callable[[], Scripted], type[WeChatError]]] = {
    "gettoken connect error": (
        "wecom",
        lambda: Scripted(token_replies=(httpx.ConnectError("refused"),) * 5),
        TransportError,
    ),
    "business read timeout": (
        "oa",
        lambda: Scripted(*[httpx.ReadTimeout("timed out")] * 5),
        TransportError,
    ),
    "business dropped connection": (
        "wecom",
        lambda: Scripted(*[httpx.RemoteProtocolError("Server disconnected")] * 5),
        TransportError,
    ),
    "token answer without expires_in": (
        "oa",
        lambda: Scripted(token_replies=({"access_token": f"tok-9-{SECRET}"},)),
        InvalidResponseError,
    ),
    "rejected twice": (
        "oa",
        lambda: Scripted(*[{"errcode": 40001, "errmsg": "invalid credential"}] * 2),
        AccessTokenError,
    ),
    "wrong secret": (
        "wecom",
        lambda: Scripted(token_replies=({"errcode": 40001, "errmsg": "invalid secret"},)),
        CredentialError,
    ),
    "garbage answer": (
        "oa",
        lambda: Scripted(httpx.Response(200, content=b"<html>")),
        InvalidResponseError,
    ),
}


async def raised_by(platform: str, script: Scripted) -> BaseException:
    """Make the failing call and return what it raised (caught here, so the traceback holds the
    SDK's frames and this one, whose locals hold no secret)."""
    client: OfficialAccountClient | WeComClient
    if platform == "oa":
        client = OfficialAccountClient("wx", SECRET, http_client=script.client(), max_retries=1)
        call = client.kf_accounts.list
    else:
        client = WeComClient("ww", SECRET, http_client=script.client(), max_retries=1)
        call = functools.partial(client.servicers.add, "wk", ["u1", "u2"])
    async with client:
        try:
            await call()
        except WeChatError as exc:
            return exc
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
async def test_an_error_tracker_recording_a_raised_error_with_locals_sees_no_secret(
    secret_watch: set[str], case: tuple[str, Callable[[], Scripted], type[WeChatError]]
) -> None:
    platform, make_script, expected = case
    script = make_script()
    error = await raised_by(platform, script)
    # A batch reports each failed request's error in .errors: render those too.
    errors = [error, *error.errors] if isinstance(error, BatchError) else [error]
    records = [tracker_record(e) for e in errors]
    assert isinstance(errors[-1], expected)
    assert any("_transport.py" in r or "tokens.py" in r for r in records)  # the SDK's frames
    secrets = [SECRET, *script.issued(), f"tok-9-{SECRET}"]
    secret_watch.update(secrets)
    leaks = [secret for secret in secrets for record in records if secret in record]
    assert not leaks


def test_a_refused_constructor_argument_leaves_no_secret_in_the_frames() -> None:
    for make in (
        lambda: OfficialAccountClient("wx app", SECRET),
        lambda: WeComClient("ww", SECRET, timeout=-1),
        lambda: OfficialAccountClient("wx", SECRET, token_provider=StaticTokenProvider(SECRET)),
        lambda: StaticTokenProvider(" "),
    ):
        with pytest.raises((ValueError, TypeError)) as info:
            make()
        assert SECRET not in tracker_record(info.value)


async def test_a_redirect_echoing_the_url_is_logged_by_httpcore_children_with_the_token_masked(
    secret_watch: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    token = f"wire-token-{SECRET}"
    secret_watch.add(token)

    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path == "/cgi-bin/gettoken":
            conn.send(response(200, {"access_token": token, "expires_in": 7200}))
        else:  # a 301 whose Location echoes the whole URL, token and all
            target = f"https://elsewhere.example{request.path}?access_token={token}"
            conn.send(response(301, b"", {"Location": target}))

    caplog.set_level(logging.DEBUG)
    with WireServer(script) as server:
        async with WeComClient(
            "ww", SECRET, base_url=server.url, max_retries=0, exchange="httpx"
        ) as client:
            with anyio.fail_after(10), pytest.raises(InvalidResponseError):
                await client.servicers.list("wk")
    children = [r for r in caplog.records if r.name.startswith("httpcore.")]
    assert any("elsewhere.example" in r.getMessage() for r in children)  # the line was logged
    assert not [r for r in caplog.records if token in r.getMessage() or SECRET in r.getMessage()]


def test_a_logger_of_an_http_library_created_later_is_covered_when_a_client_is_made() -> None:
    late = logging.getLogger("aiohttp.client.later-child")
    late.filters.clear()
    OfficialAccountClient("wx", SECRET)
    record = late.makeRecord(
        late.name, logging.DEBUG, __file__, 1, "GET /x?secret=%s", (SECRET,), None
    )
    assert all(f.filter(record) for f in late.filters)
    assert SECRET not in record.getMessage()


TICKET, REFRESH, CODE = "ticket-" + SECRET, "refresh-" + SECRET, "code-" + SECRET


def test_a_refused_platform_argument_leaves_no_ticket_refresh_token_or_code_in_the_frames() -> None:
    from wechat_kf import OpenPlatform, ServiceProvider

    # Module constants, not locals: this test's own frame is in the record too.
    platform = OpenPlatform("wxcomponent01", SECRET, verify_ticket=TICKET)
    provider = ServiceProvider("wwsuite0001", SECRET, suite_ticket=TICKET)
    for make in (
        lambda: OpenPlatform("wxcomponent01", SECRET, verify_ticket=TICKET, timeout=-1),
        lambda: ServiceProvider("wwsuite0001", SECRET, suite_ticket=TICKET, retry_backoff=-1),
        lambda: platform.official_account("wx a", refresh_token=REFRESH),
        lambda: platform.official_account("wxa", refresh_token=REFRESH, save_refresh_token=5),
        lambda: provider.wecom("ww c", permanent_code=CODE),
        lambda: provider.wecom("wwc", permanent_code=CODE, max_concurrency=0),
    ):
        with pytest.raises((ValueError, TypeError)) as info:
            make()
        record = tracker_record(info.value)
        # No loop variable: it would hold a secret in this frame, which the next record shows.
        assert not [1 for held in (SECRET, TICKET, REFRESH, CODE) if held in record]
