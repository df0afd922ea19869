"""Against a hostile server on a real loopback socket: every call ends in bounded time with a
WeChatError, nothing that may have been applied is sent again unless the call is idempotent, and
every id of a batch gets its true outcome. Each test runs under anyio.fail_after, so a regression
fails instead of hanging the suite, once for each way a request goes over the wire: the SDK's
own httpx pool, an httpx client of the caller's, and aiohttp."""

from __future__ import annotations

import gzip
import logging
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import trustme

from tests._servers import serve
from tests._wire import WireConn, WireRequest, WireServer, loop_watch, response
from wechat_kf import (
    AccessTokenError,
    BatchError,
    InvalidResponseError,
    OfficialAccountClient,
    StaticTokenProvider,
    TransportError,
    WeChatError,
    WeComClient,
)
from wechat_kf._body import MAX_BODY_BYTES
from wechat_kf.testing import FakeWeChat, Faults

pytestmark = pytest.mark.anyio

SECRET = "wire-secret-never-shown-0123456789"
TOKEN = "wire-token-never-shown-abcdefghijklmnopqrstuvwxyz"
TOKEN_PATHS = {"/cgi-bin/stable_token", "/cgi-bin/token", "/cgi-bin/gettoken"}
LIST = "/cgi-bin/customservice/getkflist"
ADD = "/cgi-bin/kf/servicer/add"
OK = {"errcode": 0, "errmsg": "ok"}
#: Generous slack over a computed bound: the machines are noisy, the old failures took minutes.
SLACK = 1.0


@pytest.fixture(autouse=True)
def _watch_wire_secrets(secret_watch: set[str]) -> None:
    secret_watch.update({SECRET, TOKEN})


#: An httpx.AsyncClient of the caller's, with httpx's defaults: the SDK uses it as given.
CALLERS = "httpx-client"


@pytest.fixture(params=["httpx", CALLERS, "aiohttp"])
def exchange(request: pytest.FixtureRequest) -> str:
    """Each way a request goes over the wire: the SDK's own httpx pool, a caller's httpx
    client, and aiohttp (asyncio only: its trio runs are deselected by conftest.py)."""
    return str(request.param)


_given: list[httpx.AsyncClient] = []


@pytest.fixture(autouse=True)
async def _close_callers_clients() -> AsyncIterator[None]:
    yield
    while _given:
        await _given.pop().aclose()


def chosen(exchange: str) -> dict[str, Any]:
    """The client options that send over ``exchange``: for ``CALLERS``, an httpx.AsyncClient
    made now (after the test set its environment), closed when the test ends."""
    if exchange != CALLERS:
        return {"exchange": exchange}
    http = httpx.AsyncClient()
    _given.append(http)
    return {"http_client": http}


def with_tokens(business: Any) -> Any:
    """A script that answers the token endpoints with TOKEN and hands the rest to ``business``."""

    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path in TOKEN_PATHS:
            conn.send(response(200, {"access_token": TOKEN, "expires_in": 7200}))
        else:
            business(request, conn)

    return script


def oa(server: WireServer, exchange: str, **options: Any) -> OfficialAccountClient:
    return OfficialAccountClient(
        "wxwire", SECRET, base_url=server.url, **chosen(exchange), **options
    )


def oa_with_token(
    server: WireServer, exchange: str, max_retries: int, **options: Any
) -> OfficialAccountClient:
    """A client whose token is TOKEN, given: no token endpoint in the way."""
    return OfficialAccountClient(
        token_provider=StaticTokenProvider(TOKEN),
        base_url=server.url,
        max_retries=max_retries,
        **chosen(exchange),
        **options,
    )


def servicer_results(request: WireRequest) -> dict[str, Any]:
    ids = request.json.get("userid_list", [])
    results = [{"userid": u, "errcode": 0, "errmsg": "success"} for u in ids]
    return {"errcode": 0, "errmsg": "ok", "result_list": results}


async def test_each_exchange_under_these_tests_is_the_one_it_names(exchange: str) -> None:
    from wechat_kf._exchanges import AiohttpExchange
    from wechat_kf._httpx_exchanges import HttpxExchange, PooledHttpxExchange

    kinds = {"httpx": PooledHttpxExchange, CALLERS: HttpxExchange, "aiohttp": AiohttpExchange}
    with WireServer(with_tokens(answer_lists)) as server:
        async with oa(server, exchange) as client:
            assert type(client._transport._exchange) is kinds[exchange]


# -- Time: nothing waits without a bound -----------------------------------------------------


def drip_body(request: WireRequest, conn: WireConn) -> None:
    conn.send(response(200, b"", {"Content-Length": "2000"}))
    conn.drip(b" " * 2000, every=0.05)


def drip_headers(request: WireRequest, conn: WireConn) -> None:
    conn.drip(response(200, OK) + b" " * 2000, every=0.05)


@pytest.mark.parametrize("script", [drip_body, drip_headers], ids=["body", "headers"])
@pytest.mark.parametrize("max_retries", [0, 1])
async def test_a_dripping_server_is_cut_off_at_the_attempt_deadline(
    script: Any,
    max_retries: int,
    exchange: str,
) -> None:
    timeout = 0.25
    with WireServer(with_tokens(script)) as server:
        async with oa(server, exchange, timeout=timeout, max_retries=max_retries) as client:
            with anyio.fail_after(10):
                started = anyio.current_time()
                with pytest.raises(TransportError) as info:
                    await client.kf_accounts.list()
                elapsed = anyio.current_time() - started
    # The documented worst case: (max_retries + 1) x timeout, plus backoff (milliseconds here).
    assert elapsed < (max_retries + 1) * timeout + SLACK
    assert elapsed >= (max_retries + 1) * timeout * 0.9
    assert info.value.maybe_applied
    assert len(server.requests_to(LIST)) == max_retries + 1


async def test_a_dripping_answer_to_a_non_idempotent_call_is_not_resent(exchange: str) -> None:
    with WireServer(with_tokens(drip_body)) as server:
        async with oa(server, exchange, timeout=0.25, max_retries=3) as client:
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await client.kf_accounts.add("a@gh_wire", nickname="n")
    assert info.value.maybe_applied
    assert len(server.requests_to("/customservice/kfaccount/add")) == 1


async def test_a_silent_token_endpoint_fails_every_waiting_caller_within_one_bound(
    exchange: str,
) -> None:
    silent = threading.Event()
    silent.set()

    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path in TOKEN_PATHS and silent.is_set():
            conn.stall()
        elif request.path in TOKEN_PATHS:
            conn.send(response(200, {"access_token": TOKEN, "expires_in": 7200}))
        else:
            conn.send(response(200, {"kf_list": []}))

    timeout, max_retries = 0.25, 1
    outcomes: list[BaseException | None] = []

    async def call(client: OfficialAccountClient) -> None:
        try:
            await client.kf_accounts.list()
            outcomes.append(None)
        except WeChatError as exc:
            outcomes.append(exc)

    with WireServer(script) as server:
        async with oa(server, exchange, timeout=timeout, max_retries=max_retries) as client:
            with anyio.fail_after(10):
                started = anyio.current_time()
                async with anyio.create_task_group() as group:
                    for _ in range(20):
                        group.start_soon(call, client)
                elapsed = anyio.current_time() - started
                # One fetch (with its retry) failed, and its outcome went to every waiter.
                assert len(server.requests_to("/cgi-bin/stable_token")) == max_retries + 1
                silent.clear()
                assert await client.kf_accounts.list() == []  # answers again: works again
    assert len(outcomes) == 20
    assert all(isinstance(outcome, TransportError) for outcome in outcomes)
    assert elapsed < (max_retries + 1) * timeout + SLACK


# -- Decoding is bounded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b'{"errcode": 0, "kf_list": []}'),  # says gzip, is plain
        ("br", b'{"errcode": 0, "kf_list": []}'),  # an encoding we never asked for
        ("deflate", b"\x00\x01garbage"),
    ],
)
async def test_a_body_that_does_not_decode_as_announced_is_an_invalid_response(
    encoding: str,
    body: bytes,
    exchange: str,
) -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, body, {"Content-Encoding": encoding}))

    with WireServer(with_tokens(script)) as server:
        async with oa(server, exchange, timeout=2.0) as client:
            with anyio.fail_after(10), pytest.raises(InvalidResponseError):
                await client.kf_accounts.list()
    assert len(server.requests_to(LIST)) == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, gzip", "identity"])
async def test_encoded_answers_that_fit_the_cap_are_read(encoding: str, exchange: str) -> None:
    payload = b'{"errcode": 0, "kf_list": [{"kf_account": "a@gh_wire"}]}'
    body = payload
    for coding in [c.strip() for c in encoding.split(",")]:
        if coding == "gzip":
            body = gzip.compress(body)
        elif coding == "deflate":
            body = zlib.compress(body)

    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, body, {"Content-Encoding": encoding}))

    with WireServer(with_tokens(script)) as server:
        async with oa(server, exchange, timeout=2.0) as client:
            with anyio.fail_after(10):
                accounts = await client.kf_accounts.list()
    assert [a.kf_account for a in accounts] == ["a@gh_wire"]


def _gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """A gzip layer that inflates to 64 MiB, and two layers of it."""
    single = _gzip_of_zeros(64 * 1024 * 1024)
    return {"gzip": single, "gzip, gzip": gzip.compress(single, 9)}


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip"])
async def test_a_gzip_bomb_costs_at_most_the_cap_in_memory(
    bombs: dict[str, bytes],
    encoding: str,
    exchange: str,
) -> None:
    body = bombs[encoding]

    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, body, {"Content-Encoding": encoding}))

    with WireServer(with_tokens(script)) as server:
        async with oa(server, exchange, timeout=5.0) as client:
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                baseline = tracemalloc.get_traced_memory()[0]
                with anyio.fail_after(20), pytest.raises(InvalidResponseError) as info:
                    await client.kf_accounts.list()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
    assert "larger than" in str(info.value)
    assert peak < MAX_BODY_BYTES + 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


@pytest.fixture(scope="module")
def runaways(bombs: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """Answers of at most the 8 MiB wire cap that cost far more to decode than they weigh:
    (Content-Encoding, body)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(gzip.compress(b'{"errcode": 0, "kf_list": []}'))]
    parts += [packer.compress(bytes(1024 * 1024)) for _ in range(48)]
    empty_member = gzip.compress(b"")
    return {
        # The inner stream ends; the outer one goes on inflating 48 MiB of zeros (49 KB sent).
        "zeros-after-the-inner-end": ("gzip, gzip", b"".join([*parts, packer.flush()])),
        # Member after member of 64 MiB of zeros: gigabytes, were it inflated to the end.
        "gigabytes": ("gzip", bombs["gzip"] * (MAX_BODY_BYTES // len(bombs["gzip"]))),
        # 400,000 valid, empty members: each costs a little work and yields nothing.
        "empty-members": ("gzip", empty_member * (MAX_BODY_BYTES // len(empty_member))),
    }


@pytest.mark.parametrize("runaway", ["zeros-after-the-inner-end", "gigabytes", "empty-members"])
async def test_a_runaway_answer_costs_the_cap_or_the_deadline_and_never_freezes_the_loop(
    runaways: dict[str, tuple[str, bytes]],
    runaway: str,
    exchange: str,
) -> None:
    encoding, body = runaways[runaway]
    answer = response(200, body, {"Content-Encoding": encoding})  # built before memory is traced
    timeout = 0.5

    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(answer)

    with WireServer(script) as server:
        async with oa_with_token(server, exchange, max_retries=0, timeout=timeout) as client:
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                with anyio.fail_after(20):
                    async with loop_watch() as watch:
                        started = anyio.current_time()
                        # Caught here, asserted below: a failure inside the watch's task
                        # group would come out wrapped in an ExceptionGroup.
                        try:
                            outcome: object = await client.kf_accounts.list()
                        except (InvalidResponseError, TransportError) as exc:
                            outcome = exc
                        elapsed = anyio.current_time() - started
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
    # Refused (cap reached, or bytes after an end) or cut by the deadline: never past it.
    assert isinstance(outcome, (InvalidResponseError, TransportError)), outcome
    assert elapsed < timeout + SLACK
    assert watch.longest_stall() < 0.25, f"loop held {watch.longest_stall():.2f} s"
    assert peak < MAX_BODY_BYTES + 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


async def test_a_raw_deflate_answer_whose_first_chunk_is_one_byte_is_read(exchange: str) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(b'{"errcode": 0, "kf_list": [{"kf_account": "a@gh_wire"}]}')
    body += packer.flush()

    def script(request: WireRequest, conn: WireConn) -> None:
        whole = response(200, body, {"Content-Encoding": "deflate"})
        first = len(whole) - len(body) + 1  # the head and one byte of the body
        conn.send(whole[:first])
        time.sleep(0.05)  # so that the client reads that byte on its own
        conn.send(whole[first:])

    with WireServer(script) as server:
        async with oa_with_token(server, exchange, max_retries=0) as client:
            with anyio.fail_after(10):
                accounts = await client.kf_accounts.list()
    assert [a.kf_account for a in accounts] == ["a@gh_wire"]


# -- A request that may have been applied is repeated only if it is idempotent --------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_after_applying_an_add_is_not_resent(status: int, exchange: str) -> None:
    applied: list[str] = []

    def script(request: WireRequest, conn: WireConn) -> None:
        applied.append(request.json["kf_account"])
        conn.send(response(status, b"<html>gateway timeout</html>", {"Content-Type": "text/html"}))

    with WireServer(with_tokens(script)) as server:
        async with oa(server, exchange, timeout=2.0, max_retries=3) as client:
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await client.kf_accounts.add("a@gh_wire", nickname="n")
    assert applied == ["a@gh_wire"]
    assert info.value.maybe_applied
    assert info.value.status_code == status


async def test_a_gateway_that_applies_then_answers_504_leaves_the_caller_a_transport_error(
    exchange: str,
) -> None:
    fake = FakeWeChat(seed=5)
    app = fake.register_official_account()
    with serve(fake.app) as base_url:
        async with OfficialAccountClient(
            app.appid, app.secret, base_url=base_url, **chosen(exchange)
        ) as client:
            await client.kf_accounts.list()
            fake.faults = Faults(http_error_after_rate=1.0, http_error_status=504)
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await client.kf_accounts.add("a@gh_fake", nickname="n")
    # Applied once, reported as "may have applied", never KfAccountExistsError from a resend.
    assert "a@gh_fake" in fake.kf_accounts(app.appid)
    assert len(fake.calls_to("/customservice/kfaccount/add")) == 1
    assert info.value.status_code == 504
    assert info.value.maybe_applied


async def test_a_502_to_a_forced_stable_token_refresh_is_sent_once(exchange: str) -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        if request.path == "/cgi-bin/stable_token" and request.json.get("force_refresh"):
            conn.send(response(502, b"bad gateway", {"Content-Type": "text/plain"}))
        elif request.path == "/cgi-bin/stable_token":
            conn.send(response(200, {"access_token": TOKEN, "expires_in": 7200}))
        else:  # WeChat keeps rejecting the token, so the provider decides to force
            conn.send(response(200, {"errcode": 40001, "errmsg": "invalid credential"}))

    with WireServer(script) as server:
        async with oa(server, exchange, timeout=2.0, max_retries=3) as client:
            with anyio.fail_after(10):
                with pytest.raises(TransportError) as info:
                    await client.kf_accounts.list()
                with pytest.raises(AccessTokenError):
                    await client.kf_accounts.list()  # within 30 s: no second forced refresh
    forced = [r for r in server.requests_to("/cgi-bin/stable_token") if r.json.get("force_refresh")]
    assert len(forced) == 1
    assert info.value.status_code == 502


# -- Batches: every id's true outcome --------------------------------------------------------


@pytest.fixture
def users() -> list[str]:
    return [f"u{i:03d}" for i in range(250)]


async def test_an_undecodable_answer_leaves_exactly_its_requests_ids_unprocessed(
    users: list[str],
    exchange: str,
) -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        body = servicer_results(request)
        if "u100" in request.json["userid_list"]:  # the second request of three
            conn.send(response(200, OK, {"Content-Encoding": "gzip"}))
        else:
            conn.send(response(200, body))

    with WireServer(with_tokens(script)) as server:
        async with WeComClient("wwwire", SECRET, base_url=server.url, **chosen(exchange)) as client:
            with anyio.fail_after(10), pytest.raises(BatchError) as info:
                await client.servicers.add("wkwire", users)
    error = info.value
    assert error.unprocessed_userids == users[100:200]
    assert [item.userid for item in error.result.items] == users[:100] + users[200:]
    assert all(isinstance(e, InvalidResponseError) for e in error.errors)


@pytest.mark.parametrize("errcode", ["²", "--1", "1" * 5000, 1.5, None, [0], {"a": 1}, True])
async def test_a_garbage_errcode_in_a_batch_leaves_its_ids_unprocessed(
    users: list[str],
    errcode: object,
    exchange: str,
) -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        if "u000" in request.json["userid_list"]:
            conn.send(response(200, {"errcode": errcode, "errmsg": "?"}))
        else:
            conn.send(response(200, servicer_results(request)))

    with WireServer(with_tokens(script)) as server:
        async with WeComClient("wwwire", SECRET, base_url=server.url, **chosen(exchange)) as client:
            with anyio.fail_after(10), pytest.raises(BatchError) as info:
                await client.servicers.add("wkwire", users)
    assert info.value.unprocessed_userids == users[:100]
    assert len(info.value.result.items) == 150


@pytest.fixture
def corp_fake() -> tuple[FakeWeChat, str, str, str, list[str]]:
    fake = FakeWeChat(seed=11)
    app = fake.register_wecom_app()
    ids = [f"user{i:04d}" for i in range(1000)]
    fake.add_members(app.corpid, ids)
    kfid = fake.create_kf_account(app.corpid)
    return fake, app.corpid, app.secret, kfid, ids


async def test_deleting_with_30_percent_of_answers_lost_reports_every_id_deleted(
    corp_fake: tuple[FakeWeChat, str, str, str, list[str]],
    exchange: str,
) -> None:
    fake, corpid, secret, kfid, ids = corp_fake
    with serve(fake.app) as base_url:
        async with WeComClient(
            corpid, secret, base_url=base_url, max_retries=10, **chosen(exchange)
        ) as client:
            with anyio.fail_after(30):
                assert (await client.servicers.add(kfid, ids)).ok
                fake.faults = Faults(drop_after_rate=0.3)
                deleted = await client.servicers.delete(kfid, ids)
                again = await client.servicers.delete(kfid, ids)  # the offboarding job re-run
    assert fake.servicers(kfid) == {}
    assert any(call.dropped for call in fake.calls_to("/cgi-bin/kf/servicer/del"))
    assert deleted.ok
    assert [item.userid for item in deleted.items] == ids
    assert {item.errcode for item in deleted.items if item.already} <= {95014}
    assert any(item.already for item in deleted.items)  # answers were lost, then retried
    assert again.ok
    assert all(item.already and item.errcode == 95014 for item in again.items)
    assert all("not a servicer" in item.errmsg for item in again.items)


async def test_a_raising_on_progress_stops_the_batch_and_reports_every_applied_id(
    corp_fake: tuple[FakeWeChat, str, str, str, list[str]],
) -> None:
    fake, corpid, secret, kfid, ids = corp_fake
    boom = RuntimeError("progress bar crashed")
    calls: list[int] = []

    def on_progress(done: int, total: int) -> None:
        calls.append(done)
        raise boom

    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(corpid, secret, http_client=http, max_concurrency=2) as client,
    ):
        with anyio.fail_after(10), pytest.raises(BatchError) as info:
            await client.servicers.add(kfid, ids, on_progress=on_progress)
        applied = set(fake.servicers(kfid))
        assert (await client.servicers.add(kfid, ["user0001"])).ok  # still usable
    error = info.value
    assert error.__cause__ is boom
    assert boom in error.errors
    assert len(calls) == 1  # never called again once it raised
    processed = [item.userid for item in error.result.items]
    assert sorted(processed + error.unprocessed_userids) == ids
    assert error.unprocessed_userids  # the requests not yet sent were not sent
    assert applied == {item.userid for item in error.result.succeeded}


async def test_a_raising_on_progress_after_the_last_request_still_raises_batch_error(
    corp_fake: tuple[FakeWeChat, str, str, str, list[str]],
) -> None:
    fake, corpid, secret, kfid, ids = corp_fake

    def on_progress(done: int, total: int) -> None:
        if done == total:
            raise ValueError("bad total")

    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(corpid, secret, http_client=http) as client,
    ):
        with anyio.fail_after(10), pytest.raises(BatchError) as info:
            await client.servicers.add(kfid, ids[:150], on_progress=on_progress)
    assert info.value.unprocessed_userids == []
    assert len(info.value.result.succeeded) == 150
    assert isinstance(info.value.__cause__, ValueError)


async def test_a_stalled_answer_in_a_batch_is_retried_within_the_deadline(
    corp_fake: tuple[FakeWeChat, str, str, str, list[str]],
    exchange: str,
) -> None:
    fake, corpid, secret, kfid, ids = corp_fake
    fake.faults = Faults(stall_rate=0.2)
    with serve(fake.app) as base_url:
        async with WeComClient(
            corpid, secret, base_url=base_url, timeout=0.2, max_retries=10, **chosen(exchange)
        ) as client:
            with anyio.fail_after(30):
                result = await client.servicers.add(kfid, ids)
    assert result.ok
    assert set(fake.servicers(kfid)) == set(ids)
    assert any(call.stalled for call in fake.calls_to(ADD))


async def test_a_static_token_business_call_on_a_dropped_connection_is_a_transport_error(
    exchange: str,
) -> None:
    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"errc')
        conn.close()

    with WireServer(script) as server:
        async with oa_with_token(server, exchange, max_retries=1) as client:
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await client.kf_accounts.add("a@gh_wire", nickname="n")
    assert info.value.maybe_applied
    assert len(server.requests) == 1


# -- TLS: certificates are verified on both exchanges ------------------------------------------


def tls_server(script: Any) -> tuple[WireServer, trustme.CA]:
    """A wire server over TLS with a certificate for 127.0.0.1 from a fresh test CA."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return WireServer(script, tls=context), ca


def answer_lists(request: WireRequest, conn: WireConn) -> None:
    conn.send(response(200, {"errcode": 0, "kf_list": []}))


async def test_a_certificate_from_an_unknown_authority_is_refused_before_anything_is_sent(
    exchange: str,
) -> None:
    server, _ = tls_server(with_tokens(answer_lists))
    with server:
        async with oa(server, exchange, max_retries=1) as client:
            with anyio.fail_after(10), pytest.raises(TransportError) as info:
                await client.kf_accounts.list()
    assert not info.value.maybe_applied
    assert server.requests == []  # not even the token request left
    assert server.handshakes_failed >= 1


async def test_a_certificate_the_client_trusts_carries_the_call(
    exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = tls_server(with_tokens(answer_lists))
    # Each library's own way to trust a CA: httpx reads SSL_CERT_FILE when it builds its
    # context; aiohttp made its verified context at import, so that context is swapped.
    with ca.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        if exchange == "aiohttp":
            import aiohttp.connector

            trusting = ssl.create_default_context(cafile=ca_file)
            monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", trusting)
        with server:
            async with oa(server, exchange) as client:
                with anyio.fail_after(10):
                    assert await client.kf_accounts.list() == []
    assert [r.path for r in server.requests] == ["/cgi-bin/stable_token", LIST]
    assert server.handshakes_failed == 0


async def test_a_connection_the_server_closed_while_idle_is_not_reused(exchange: str) -> None:
    """A server that drops kept-alive connections sooner than the client would: the next call
    takes a new connection, and a non-idempotent one is sent once and succeeds."""
    idle_limit = 0.1

    def close_when_idle(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, OK))
        time.sleep(idle_limit)
        conn.close()

    with WireServer(close_when_idle) as server:
        async with oa_with_token(server, exchange, max_retries=0) as client:
            with anyio.fail_after(10):
                for nickname in ("one", "two", "three"):
                    await anyio.sleep(idle_limit * 3)
                    await client.kf_accounts.add(f"{nickname}@gh_wire", nickname=nickname)
    adds = server.requests_to("/customservice/kfaccount/add")
    assert [r.json["nickname"] for r in adds] == ["one", "two", "three"]


async def test_a_server_that_echoes_the_token_in_a_broken_header_never_shows_it(
    exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exception chain is what this proves. httpcore's own DEBUG trace prints the broken
    # header line as it came, which a log filter that knows no token cannot mask: not watched.
    monkeypatch.setattr(logging.getLogger("httpcore.http11"), "disabled", True)

    def echo(request: WireRequest, conn: WireConn) -> None:
        token = request.query["access_token"].encode()
        conn.send(b"HTTP/1.1 200 OK\r\nX-Echo " + token + b"\r\nContent-Length: 2\r\n\r\n{}")
        conn.close()

    with WireServer(with_tokens(echo)) as server:
        async with oa(server, exchange, max_retries=0) as client:
            with anyio.fail_after(10), pytest.raises(WeChatError) as info:
                await client.kf_accounts.list()
    error: BaseException | None = info.value
    while error is not None:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        error = error.__cause__ or error.__context__
