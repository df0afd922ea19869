"""The httpx pool the SDK owns: 100 connections kept alive 15 s, cut into small httpx clients
that verify TLS and follow no redirect; each request goes to the least busy one, past 100 in
flight the others wait their turn in arrival order, and nothing is lost or leaked by a deadline,
a cancellation or a close. The wire guarantees themselves (deadlines, no resend of what may have
applied, TLS, idle connections) are proven on this exchange by tests/test_hostile_wire.py."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from tests._wire import WireConn, WireRequest, WireServer, response
from wechat_kf import (
    ClientClosedError,
    OfficialAccountClient,
    StaticTokenProvider,
    TransportError,
)
from wechat_kf._exchanges import DEFAULT_CONNECTIONS, KEEPALIVE_SECONDS
from wechat_kf._httpx_exchanges import POOLS, HttpxExchange, PooledHttpxExchange, _Turns

pytestmark = pytest.mark.anyio

TOKEN = "pool-token-never-shown-abcdefghijklmnop"
OK_LIST = {"errcode": 0, "kf_list": []}


@pytest.fixture(autouse=True)
def _watch(secret_watch: set[str]) -> None:
    secret_watch.add(TOKEN)


def client(server: WireServer, **options: Any) -> OfficialAccountClient:
    return OfficialAccountClient(
        token_provider=StaticTokenProvider(TOKEN),
        base_url=server.url,
        exchange="httpx",
        **options,
    )


def pooled(oa: OfficialAccountClient) -> PooledHttpxExchange:
    exchange = oa._transport._exchange
    assert isinstance(exchange, PooledHttpxExchange)
    return exchange


def test_the_owned_pools_keep_100_connections_alive_15_s_and_verify_tls() -> None:
    oa = OfficialAccountClient("wx", "pool-secret", exchange="httpx")
    transports = pooled(oa)._transports
    assert len(transports) == POOLS > 1
    pools = [t._pool for t in transports]
    assert sum(p._max_connections for p in pools) == DEFAULT_CONNECTIONS == 100
    assert all(p._max_keepalive_connections == p._max_connections for p in pools)
    assert {p._keepalive_expiry for p in pools} == {KEEPALIVE_SECONDS} == {15.0}
    contexts = {id(p._ssl_context) for p in pools}
    assert len(contexts) == 1  # one context, built once
    context = pools[0]._ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


async def test_a_callers_http_client_is_used_as_given_and_never_pooled() -> None:
    async with httpx.AsyncClient() as http:
        oa = OfficialAccountClient("wx", "pool-secret", http_client=http)
        exchange = oa._transport._exchange
        assert isinstance(exchange, HttpxExchange)
        assert exchange._http is http
        await oa.aclose()
        assert not http.is_closed


async def test_calls_one_at_a_time_reuse_one_kept_alive_connection() -> None:
    connections: set[int] = set()

    def script(request: WireRequest, conn: WireConn) -> None:
        connections.add(id(conn))
        conn.send(response(200, OK_LIST))

    with WireServer(script) as server:
        async with client(server) as oa:
            with anyio.fail_after(10):
                for _ in range(10):
                    assert await oa.kf_accounts.list() == []
    assert len(server.requests) == 10
    assert len(connections) == 1


async def test_requests_in_flight_spread_over_the_pools_so_none_queues_below_100() -> None:
    """60 calls held at the server until all 60 have arrived: one pool of 5 connections, or any
    pool queueing, would never let them all arrive (each pool has 5 connections)."""
    calls = 60
    arrived = threading.Barrier(calls, timeout=8)

    def script(request: WireRequest, conn: WireConn) -> None:
        arrived.wait()
        conn.send(response(200, OK_LIST))

    with WireServer(script) as server:
        async with client(server, timeout=9) as oa:
            exchange = pooled(oa)
            busiest = 0

            async def watch() -> None:
                nonlocal busiest
                while True:
                    busiest = max(busiest, *exchange._in_flight)
                    await anyio.sleep(0.001)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(watch)
                    async with anyio.create_task_group() as calling:
                        for _ in range(calls):
                            calling.start_soon(oa.kf_accounts.list)
                    group.cancel_scope.cancel()
            assert exchange._in_flight == [0] * POOLS
    assert len(server.requests) == calls
    assert busiest == -(-calls // POOLS)  # 3 each: spread evenly, no pool holds more


async def test_past_100_in_flight_the_others_wait_and_every_call_is_answered() -> None:
    calls = DEFAULT_CONNECTIONS + 30
    lock = threading.Lock()
    now = most = 0
    release = threading.Event()

    def script(request: WireRequest, conn: WireConn) -> None:
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
            if now == DEFAULT_CONNECTIONS:
                release.set()
        release.wait(timeout=8)
        with lock:
            now -= 1
        conn.send(response(200, OK_LIST))

    with WireServer(script) as server:
        async with client(server, timeout=9) as oa:
            exchange = pooled(oa)
            results: list[Any] = []

            async def one() -> None:
                results.append(await oa.kf_accounts.list())

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for _ in range(calls):
                        group.start_soon(one)
            assert exchange._turns._free == DEFAULT_CONNECTIONS
            assert exchange._in_flight == [0] * POOLS
    assert results == [[]] * calls
    assert most == DEFAULT_CONNECTIONS  # never more at once than the pool keeps


async def test_a_deadline_or_a_cancellation_while_waiting_or_in_flight_leaks_no_turn() -> None:
    stall = threading.Event()

    def script(request: WireRequest, conn: WireConn) -> None:
        if not stall.is_set():
            conn.stall()  # held until the client gives up
        else:
            conn.send(response(200, OK_LIST))

    with WireServer(script) as server:
        async with client(server, timeout=0.5, max_retries=0) as oa:
            exchange = pooled(oa)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for _ in range(DEFAULT_CONNECTIONS + 20):  # 20 wait, then meet the deadline
                        group.start_soon(_swallow, oa)
                with anyio.move_on_after(0.2):  # cancelled in flight and while waiting
                    async with anyio.create_task_group() as group:
                        for _ in range(DEFAULT_CONNECTIONS + 20):
                            group.start_soon(oa.kf_accounts.list)
                assert exchange._turns._free == DEFAULT_CONNECTIONS
                assert exchange._in_flight == [0] * POOLS
                stall.set()
                assert await oa.kf_accounts.list() == []


async def _swallow(oa: OfficialAccountClient) -> None:
    # The deadline, or the connect bounded just inside it (a waiter handed its turn late).
    with pytest.raises(TransportError, match=r"within 0\.5 s|ConnectTimeout"):
        await oa.kf_accounts.list()


async def test_closing_closes_every_pool_and_a_closed_client_sends_nothing() -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, OK_LIST))

    with WireServer(script) as server:
        oa = client(server)
        with anyio.fail_after(10):
            await oa.kf_accounts.list()
            await oa.aclose()
            with pytest.raises(ClientClosedError):
                await oa.kf_accounts.list()
    assert [t._pool.connections for t in pooled(oa)._transports] == [[]] * POOLS
    assert len(server.requests) == 1


async def test_turns_go_to_waiters_in_arrival_order() -> None:
    turns = _Turns(2)
    await turns.take()
    await turns.take()
    served: list[int] = []

    async def wait(index: int) -> None:
        await turns.take()
        served.append(index)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for index in range(4):
                group.start_soon(wait, index)
                await _settle()  # each waits before the next arrives
            for _ in range(4):
                turns.give()
                await _settle()
    assert served == [0, 1, 2, 3]
    turns.give()
    turns.give()
    assert turns._free == 2


async def test_a_waiter_cancelled_as_it_is_handed_a_turn_loses_no_turn() -> None:
    """asyncio raises the cancellation out of the wait, which passes the turn on; trio lets the
    wait return and cancels at the next checkpoint, where the caller gives the turn back (as
    the exchange does): either way the next waiter is served and no turn is lost."""
    turns = _Turns(1)
    await turns.take()
    served: list[str] = []

    async def wait(name: str) -> None:
        await turns.take()
        served.append(name)
        turns.give()

    doomed = anyio.CancelScope()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(_cancellable, turns, doomed)
            await _settle()
            group.start_soon(wait, "second")
            await _settle()
            turns.give()  # handed to the first waiter...
            doomed.cancel()  # ...which is cancelled before it runs
            await _settle()
    assert served == ["second"]
    assert turns._free == 1


async def _cancellable(turns: _Turns, scope: anyio.CancelScope) -> None:
    with scope:
        await turns.take()
        try:
            await anyio.sleep_forever()
        finally:
            turns.give()


async def _settle() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_the_owned_pool_puts_on_the_wire_what_an_async_client_would() -> None:
    """The pool sends each request straight to its transport: the same request line, headers
    and body as through an httpx.AsyncClient, for a GET, a JSON POST and a multipart upload."""

    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, {"errcode": 0, "kf_list": []}))

    async def calls(oa: OfficialAccountClient) -> None:
        await oa.kf_accounts.list()
        await oa.kf_accounts.add("a@gh_pool", nickname="客服")
        await oa.kf_accounts.upload_avatar("a@gh_pool", b"\xff\xd8\xff" + b"j" * 100)

    seen = []
    for given in (False, True):
        with WireServer(script) as server:
            async with httpx.AsyncClient() as http:
                options: dict[str, Any] = {"http_client": http} if given else {}
                async with client(server, **options) as oa:
                    with anyio.fail_after(10):
                        await calls(oa)
            seen.append([_comparable(r) for r in server.requests])
    pooled_requests, client_requests = seen
    assert pooled_requests == client_requests
    assert [r[0] for r in pooled_requests] == ["GET", "POST", "POST"]


def _comparable(request: WireRequest) -> tuple[Any, ...]:
    """A request with what differs between any two sends of it taken out: the port in Host,
    and a multipart body's random boundary."""
    headers = dict(request.headers)
    headers["host"] = headers["host"].split(":")[0]
    body = request.body
    boundary = headers.get("content-type", "").partition("boundary=")[2]
    if boundary:
        body = body.replace(boundary.encode(), b"BOUNDARY")
        headers["content-type"] = headers["content-type"].replace(boundary, "BOUNDARY")
    return request.method, request.path, request.query, headers, body
