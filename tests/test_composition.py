"""One way to compose a client: every kind of client (the two apps' own, and the ones the two
platforms hand out) is built through the same connection, so each setting (timeout, retries,
base_url, hooks, exchange, the kept-alive pool) reaches the wire for all of them alike. Proven on
a raw loopback server, each test under a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    OfficialAccountClient,
    OpenPlatform,
    ServiceProvider,
    TransportError,
    WeComClient,
)
from wechat_kf.hooks import Attempt

pytestmark = pytest.mark.anyio

SECRET = "composition-secret-never-shown-01"
KINDS = ["official_account", "wecom", "open_platform", "service_provider"]

#: What each token endpoint answers with, by path.
_TOKENS = {
    "/cgi-bin/stable_token": "access_token",
    "/cgi-bin/gettoken": "access_token",
    "/cgi-bin/component/api_component_token": "component_access_token",
    "/cgi-bin/component/api_authorizer_token": "authorizer_access_token",
    "/cgi-bin/service/get_suite_token": "suite_access_token",
    "/cgi-bin/service/get_corp_token": "access_token",
}


def answer(request: WireRequest) -> bytes:
    """A well-formed answer to any call a kind makes."""
    field = _TOKENS.get(request.path)
    if field is not None:
        body: dict[str, Any] = {field: f"token-for-{request.path}", "expires_in": 7200}
        if field == "authorizer_access_token":
            body["authorizer_refresh_token"] = "refresh-0001"
        return response(200, body)
    return response(200, {"errcode": 0, "kf_list": [], "servicer_list": []})


@asynccontextmanager
async def kind_of_client(
    kind: str, base_url: str, **settings: Any
) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """A client of ``kind`` made with ``settings``, and the one call that exercises it."""
    if kind == "official_account":
        async with OfficialAccountClient("wxapp0001", SECRET, base_url=base_url, **settings) as oa:
            yield oa.kf_accounts.list
    elif kind == "wecom":
        async with WeComClient("wwcorp0001", SECRET, base_url=base_url, **settings) as wc:
            yield lambda: wc.servicers.list("wkkf0001")
    elif kind == "open_platform":
        async with OpenPlatform(
            "wxcomponent01", SECRET, verify_ticket="ticket-0001", base_url=base_url, **settings
        ) as platform:
            oa = platform.official_account("wxauthorizer01", refresh_token="refresh-0001")
            yield oa.kf_accounts.list
    else:
        async with ServiceProvider(
            "wwsuite0001", SECRET, suite_ticket="ticket-0001", base_url=base_url, **settings
        ) as provider:
            wc = provider.wecom("wwcorp0001", permanent_code="code-0001")
            yield lambda: wc.servicers.list("wkkf0001")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_timeout_longer_than_httpx_default_reaches_the_wire_for_every_kind(
    kind: str,
) -> None:
    # The first request is answered after 5.5 s: past httpx's own 5 s default, inside ours.
    first = threading.Event()

    def script(request: WireRequest, conn: WireConn) -> None:
        if not first.is_set():
            first.set()
            time.sleep(5.5)
        conn.send(answer(request))

    with WireServer(script) as server:
        async with kind_of_client(kind, server.url, timeout=8, exchange="httpx") as call:
            with anyio.fail_after(20):
                await call()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_short_timeout_and_max_retries_reach_the_wire_for_every_kind(kind: str) -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        conn.stall()

    with WireServer(script) as server:
        async with kind_of_client(kind, server.url, timeout=0.3, max_retries=1) as call:
            started = time.monotonic()
            with anyio.fail_after(10), pytest.raises(TransportError):
                await call()
            elapsed = time.monotonic() - started
    # The first request is a token fetch: sent twice when it is idempotent, once otherwise.
    assert 1 <= len(server.requests) <= 2
    assert elapsed < 3


@pytest.mark.parametrize("kind", KINDS)
async def test_hooks_see_every_attempt_of_every_kind_with_its_server(kind: str) -> None:
    seen: list[Attempt] = []

    class Recorder:
        def on_attempt(self, attempt: Attempt) -> None:
            seen.append(attempt)

    with WireServer(lambda request, conn: conn.send(answer(request))) as server:
        async with kind_of_client(kind, server.url, hooks=[Recorder()]) as call:
            with anyio.fail_after(10):
                await call()
    port = int(server.url.rsplit(":", 1)[1])
    assert [a.path for a in seen] == [r.path for r in server.requests]
    assert {(a.server_address, a.server_port) for a in seen} == {("127.0.0.1", port)}


@pytest.mark.parametrize("kind", KINDS)
async def test_the_chosen_exchange_carries_every_kind_over_one_kept_alive_connection(
    kind: str, exchange: str
) -> None:
    connections: set[int] = set()

    def script(request: WireRequest, conn: WireConn) -> None:
        connections.add(id(conn))
        conn.send(answer(request))

    with WireServer(script) as server:
        async with kind_of_client(kind, server.url, exchange=exchange) as call:
            with anyio.fail_after(10):
                await call()
                await call()
    agents = {r.headers.get("user-agent", "") for r in server.requests}
    expected = "python-httpx" if exchange == "httpx" else "aiohttp"
    assert all(expected in agent for agent in agents), agents
    assert len(server.requests) >= 3
    assert len(connections) == 1
