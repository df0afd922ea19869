"""The two exchanges honour one contract over real loopback sockets: failure classification,
redirects, multipart uploads, cancellation, closing; plus how the exchange is chosen."""

from __future__ import annotations

import gc
import gzip
import logging
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from tests._servers import free_port, serve
from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    InvalidResponseError,
    OfficialAccountClient,
    StaticTokenProvider,
    TransportError,
    WeComClient,
)
from wechat_kf._exchanges import ExchangeFailed, Outgoing
from wechat_kf.clients import Connection
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

SECRET = "exchange-secret-never-shown-0123"
TOKEN = "exchange-token-never-shown-abcdefghijklmnop"
ADD = "/customservice/kfaccount/add"
LIST = "/cgi-bin/customservice/getkflist"


@pytest.fixture(autouse=True)
def _watch(secret_watch: set[str]) -> None:
    secret_watch.update({SECRET, TOKEN})


def tokens_then(business: Any) -> Any:
    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path == "/cgi-bin/stable_token":
            conn.send(response(200, {"access_token": TOKEN, "expires_in": 7200}))
        else:
            business(request, conn)

    return script


async def test_a_refused_connection_was_never_sent_so_even_add_is_retried(
    exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    async with OfficialAccountClient(
        token_provider=StaticTokenProvider(TOKEN),
        base_url=f"http://127.0.0.1:{port}",
        max_retries=2,
        exchange=exchange,
    ) as client:
        with anyio.fail_after(10), pytest.raises(TransportError) as info:
            await client.kf_accounts.add("a@gh_x", nickname="n")
    assert info.value.maybe_applied is False
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2


def drop_after_reading(request: WireRequest, conn: WireConn) -> None:
    conn.close()  # read the request (it may have been applied), answer nothing


@pytest.mark.parametrize(
    ("call", "path", "requests"),
    [
        (lambda c: c.kf_accounts.add("a@gh_x", nickname="n"), ADD, 1),
        (lambda c: c.kf_accounts.list(), LIST, 3),
    ],
    ids=["add-once", "list-retried"],
)
async def test_a_connection_dropped_after_the_request_left_is_maybe_applied(
    exchange: str, call: Any, path: str, requests: int
) -> None:
    with WireServer(tokens_then(drop_after_reading)) as server:
        async with OfficialAccountClient(
            "wx", SECRET, base_url=server.url, max_retries=2, exchange=exchange
        ) as client:
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await call(client)
    assert info.value.maybe_applied is True
    assert len(server.requests_to(path)) == requests


async def test_each_exchange_sends_the_encodings_it_can_bound_and_a_json_body_s_type(
    exchange: str,
) -> None:
    def ok(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, {"errcode": 0, "kf_list": []}))

    with WireServer(tokens_then(ok)) as server:
        async with OfficialAccountClient(
            "wx", SECRET, base_url=server.url, exchange=exchange
        ) as client:
            with anyio.fail_after(10):
                await client.kf_accounts.list()
                await client.kf_accounts.add("a@gh_x", nickname="n")
    (listed,) = server.requests_to(LIST)
    (added,) = server.requests_to(ADD)
    headers = [dict(listed.headers), dict(added.headers)]
    assert [h.get("accept-encoding") for h in headers] == ["gzip, deflate"] * 2
    assert [h.get("content-type") for h in headers] == [None, "application/json"]
    assert added.body == b'{"kf_account":"a@gh_x","nickname":"n"}'


async def test_a_redirect_is_never_followed(exchange: str) -> None:
    def redirect(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(302, b"", {"Location": "http://127.0.0.1:9/steal"}))

    with WireServer(tokens_then(redirect)) as server:
        async with OfficialAccountClient(
            "wx", SECRET, base_url=server.url, exchange=exchange
        ) as client:
            with anyio.fail_after(10), pytest.raises(InvalidResponseError) as info:
                await client.kf_accounts.list()
    assert info.value.status_code == 302
    assert [r.path for r in server.requests] == ["/cgi-bin/stable_token", LIST]


@pytest.mark.parametrize(
    "codings",
    [["gzip", "gzip"], ["gzip", "deflate"], ["gzip", "identity, deflate"]],
    ids=["gzip-gzip", "gzip-deflate", "gzip-identity-deflate"],
)
async def test_a_content_encoding_repeated_on_several_lines_means_every_line_in_order(
    exchange: str, codings: list[str]
) -> None:
    """RFC 9110, 5.3: repeated lines mean their values joined by commas, so both exchanges undo
    every coding, whatever each library's ``get`` returns for a repeated header."""
    body = b'{"errcode": 0, "kf_list": [{"kf_account": "a@gh_x"}]}'
    for coding in ", ".join(codings).split(", "):
        if coding == "gzip":
            body = gzip.compress(body)
        elif coding == "deflate":
            body = zlib.compress(body)
    lines = [("Content-Encoding", value) for value in codings]

    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, body, lines))

    with WireServer(script) as server:
        async with OfficialAccountClient(
            token_provider=StaticTokenProvider(TOKEN), base_url=server.url, exchange=exchange
        ) as client:
            with anyio.fail_after(10):
                accounts = await client.kf_accounts.list()
    assert [a.kf_account for a in accounts] == ["a@gh_x"]


@asynccontextmanager
async def served(exchange: str) -> AsyncIterator[tuple[FakeWeChat, OfficialAccountClient]]:
    """A FakeWeChat over loopback and an Official Account client on it, through ``exchange``."""
    fake = FakeWeChat()
    app = fake.register_official_account()
    with serve(fake.app) as base_url:
        async with OfficialAccountClient(
            app.appid, app.secret, base_url=base_url, exchange=exchange
        ) as client:
            yield fake, client


async def test_the_avatar_goes_out_as_multipart_and_nicknames_as_utf8(exchange: str) -> None:
    async with served(exchange) as (_, client):
        await client.kf_accounts.add("a@gh_fake", nickname="客服1")
        await client.kf_accounts.upload_avatar("a@gh_fake", b"\xff\xd8\xff" + b"j" * 1000)
        (account,) = await client.kf_accounts.list()
    assert account.kf_nick == "客服1"
    assert account.kf_headimgurl is not None
    assert account.kf_headimgurl.endswith("/1003")


async def test_cancelling_a_call_mid_answer_leaves_the_pool_usable(exchange: str) -> None:
    async with served(exchange) as (fake, client):
        await client.kf_accounts.list()
        fake.faults.latency = 1.0
        with anyio.move_on_after(0.1):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(client.kf_accounts.list)
        fake.faults.latency = 0.0
        with anyio.fail_after(5):
            assert await client.kf_accounts.list() == []


async def test_aclose_closes_what_the_exchange_owns_and_never_a_callers_client(
    exchange: str,
) -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    with serve(fake.app) as base_url:
        client = OfficialAccountClient(app.appid, app.secret, base_url=base_url, exchange=exchange)
        await client.kf_accounts.list()
        await client.aclose()
    owned: Any = client._transport._exchange
    if exchange == "aiohttp":
        assert owned._session.closed is True
    else:
        assert all(t._pool.connections == [] for t in owned._transports)
        with pytest.raises(ExchangeFailed) as refused:  # a closed pool opens nothing again
            await owned.send(Outgoing("GET", f"{base_url}{LIST}", LIST, {}))
        assert refused.value.sent is False
    async with httpx.AsyncClient(transport=fake.transport) as http:
        await OfficialAccountClient(app.appid, app.secret, http_client=http).aclose()
        assert not http.is_closed


async def test_the_exchange_is_visible_and_logged_once(
    exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wechat_kf")
    async with WeComClient("ww", SECRET, exchange=exchange) as client:
        assert client.exchange == exchange
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exchange:")]
    assert lines == [f"exchange: {exchange}"]


def test_the_owned_aiohttp_pool_keeps_100_connections_for_15_s_and_verifies_tls() -> None:
    async def main() -> tuple[int, float, object]:
        async with OfficialAccountClient("wx", SECRET, exchange="aiohttp") as client:
            session = client._transport._exchange._open()  # type: ignore[attr-defined]
            connector = session.connector
            return connector.limit, connector._keepalive_timeout, connector._ssl

    limit, keepalive, ssl = anyio.run(main, backend="asyncio")
    assert limit == 100
    assert keepalive == 15.0
    assert ssl is not False  # True, or None in older aiohttp: certificates are verified


def test_exchange_choices_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="exchange must be one of"):
        OfficialAccountClient("wx", SECRET, exchange="requests")
    with pytest.raises(ValueError, match="http_client"):
        OfficialAccountClient("wx", SECRET, http_client=httpx.AsyncClient(), exchange="aiohttp")
    assert OfficialAccountClient("wx", SECRET).exchange == "httpx"  # no event loop to tell


@pytest.mark.parametrize(("backend", "chosen"), [("asyncio", "aiohttp"), ("trio", "httpx")])
def test_auto_takes_aiohttp_on_asyncio_and_httpx_on_trio(backend: str, chosen: str) -> None:
    async def made_here() -> str:
        async with WeComClient("ww", SECRET) as client:
            return client.exchange

    assert anyio.run(made_here, backend=backend) == chosen


@pytest.mark.parametrize("make", ["oa", "wecom", "connection"])
def test_the_aiohttp_exchange_pinned_on_trio_is_a_value_error_when_the_client_is_made(
    make: str,
) -> None:
    made: list[object] = []

    async def main() -> None:
        if make == "oa":
            made.append(OfficialAccountClient("wx", SECRET, exchange="aiohttp"))
        elif make == "wecom":
            made.append(WeComClient("ww", SECRET, exchange="aiohttp"))
        else:
            made.append(Connection(base_url="https://qyapi.weixin.qq.com", exchange="aiohttp"))

    with pytest.raises(ValueError, match="asyncio only, not on trio; use exchange='httpx'"):
        anyio.run(main, backend="trio")
    assert made == []


def test_an_aiohttp_client_made_outside_a_loop_then_used_on_trio_fails_before_sending() -> None:
    with WireServer(tokens_then(drop_after_reading)) as server:
        client = OfficialAccountClient("wx", SECRET, base_url=server.url, exchange="aiohttp")

        async def main() -> None:
            async with client:
                await client.kf_accounts.list()

        with pytest.raises(ValueError, match="asyncio only, not on trio"):
            anyio.run(main, backend="trio")
    assert server.requests == []


def test_aiohttp_loggers_are_covered_by_the_redaction() -> None:
    OfficialAccountClient("wx", SECRET, exchange="aiohttp")
    for name in ("aiohttp", "aiohttp.client", "aiohttp.internal"):
        record = logging.LogRecord(name, logging.DEBUG, __file__, 1, "GET /x?access_token=%s",
                                   (TOKEN,), None)  # fmt: skip
        for log_filter in logging.getLogger(name).filters:
            log_filter.filter(record)  # type: ignore[union-attr]
        assert TOKEN not in record.getMessage(), name


async def test_the_proxy_named_by_the_environment_carries_the_requests(
    exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def proxy(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, {"kf_list": []}))

    with WireServer(proxy) as server:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("http_proxy", server.url)
        target = f"http://127.0.0.1:{free_port()}"  # nothing listens there: only the proxy does
        async with OfficialAccountClient(
            token_provider=StaticTokenProvider(TOKEN), base_url=target, exchange=exchange
        ) as client:
            with anyio.fail_after(10):
                assert await client.kf_accounts.list() == []
    assert [r.path for r in server.requests] == [LIST]


class _Silent:
    """Accepts TCP connections and never sends a byte (a TLS server that never answers the
    ClientHello); keeps what it accepted, to see whether the client closed it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                continue

    def __enter__(self) -> _Silent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def _closed_by_peer(conn: socket.socket, within: float) -> bool:
    """Whether the other end closed ``conn`` (end of stream or reset) within ``within`` s."""
    conn.settimeout(within)
    ends = time.monotonic() + within
    try:
        while time.monotonic() < ends:
            if not conn.recv(65536):
                return True
    except TimeoutError:
        return False
    except OSError:
        return True
    return False


async def test_a_connection_whose_tls_handshake_outlives_the_deadline_is_closed_at_once(
    exchange: str,
) -> None:
    """Not left open for the garbage collector to find: a server that accepts and never
    completes TLS would otherwise hold a socket per attempt."""
    gc.disable()  # else a leaked socket is closed whenever the collector happens to run
    try:
        with _Silent() as server:
            async with OfficialAccountClient(
                token_provider=StaticTokenProvider(TOKEN),
                base_url=f"https://127.0.0.1:{server.port}",
                timeout=0.3,
                max_retries=0,
                exchange=exchange,
            ) as client:
                with anyio.fail_after(10):
                    with pytest.raises(TransportError):
                        await client.kf_accounts.list()
                    await anyio.sleep(0.05)
                    assert len(server.accepted) == 1
                    closed = await anyio.to_thread.run_sync(
                        _closed_by_peer, server.accepted[0], 1.0
                    )
                assert closed, "the attempt's connection was left open"
    finally:
        gc.enable()
        gc.collect()
