"""The examples work: FastAPI through httpx.ASGITransport with its lifespan, aiohttp through its
test client, the worker on both backends including a resume after a crash. And the apps answer
customers end to end: the fake pushes to their callback route (FastAPI in-process on asyncio and
trio, aiohttp over loopback), their inbox pulls and replies, each message once, whether a push is
delivered three times, WeChat hands the same messages out again, or two instances sharing a real
redis-server take the pushes in turn."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from examples import aiohttp_app, fastapi_app
from examples.common import WELCOME
from examples.worker import onboard, read_journal
from tests._redis import redis_server
from wechat_kf import (
    BatchResult,
    KfAccount,
    OnlineKfAccount,
    Servicer,
    ServicerResult,
    WeComClient,
    from_data,
    to_data,
)
from wechat_kf.testing import DUPLICATE_MSGID, FakeWeChat, Sandbox, sandbox

pytestmark = pytest.mark.anyio
KFID = "wkSANDBOX0000000000000000000001"


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, with its credentials in the environment the examples read."""
    box = sandbox()
    monkeypatch.setenv("WECHAT_APPID", box.appid)
    monkeypatch.setenv("WECHAT_SECRET", box.oa_secret)
    monkeypatch.setenv("WECOM_CORPID", box.corpid)
    monkeypatch.setenv("WECOM_SECRET", box.wecom_secret)
    monkeypatch.delenv("WECHAT_KF_BASE_URL", raising=False)
    return box


# -- FastAPI -------------------------------------------------------------------------------------


@pytest.fixture
async def fastapi_client(box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    app = fastapi_app.create_app(box.fake.transport)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def test_fastapi_lists_kf_accounts(fastapi_client: httpx.AsyncClient) -> None:
    response = await fastapi_client.get("/kf-accounts")
    assert response.status_code == 200
    assert [a["kf_account"] for a in response.json()] == ["support@gh_sandbox", "sales@gh_sandbox"]


async def test_fastapi_adds_servicers_200_when_all_succeed(
    fastapi_client: httpx.AsyncClient, box: Sandbox
) -> None:
    response = await fastapi_client.post(f"/servicers/{KFID}", json={"userids": ["user0001"]})
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert box.fake.servicers(KFID) == {"user0001": 0}


async def test_fastapi_answers_207_with_the_failed_ids(fastapi_client: httpx.AsyncClient) -> None:
    response = await fastapi_client.post(
        f"/servicers/{KFID}", json={"userids": ["user0001", "ghost"]}
    )
    assert response.status_code == 207
    body = response.json()
    assert [(i["userid"], i["errcode"]) for i in body["items"]] == [
        ("user0001", 0),
        ("ghost", 60111),
    ]


async def test_fastapi_reports_unprocessed_ids_with_207(fastapi_client: httpx.AsyncClient) -> None:
    response = await fastapi_client.post("/servicers/wkUNKNOWN", json={"userids": ["user0001"]})
    assert response.status_code == 207
    assert response.json()["unprocessed_userids"] == ["user0001"]


async def test_fastapi_bad_input_is_422(fastapi_client: httpx.AsyncClient) -> None:
    response = await fastapi_client.post(f"/servicers/{KFID}", json={"userids": []})
    assert response.status_code == 422
    assert "nothing to do" in response.json()["detail"]


async def test_fastapi_rate_limit_is_429_with_retry_after(box: Sandbox) -> None:
    def quota(request: httpx.Request) -> httpx.Response:
        if "token" in request.url.path:
            return httpx.Response(200, json={"access_token": "t", "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 45009, "errmsg": "quota rid: q1"})

    app = fastapi_app.create_app(httpx.MockTransport(quota))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/kf-accounts")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"
    assert response.json()["rid"] == "q1"


async def test_fastapi_credentials_refused_is_502(box: Sandbox) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errcode": 40125, "errmsg": "invalid appsecret"})

    app = fastapi_app.create_app(httpx.MockTransport(refuse))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/kf-accounts")
    assert response.status_code == 502
    assert response.json()["errcode"] == 40125


# -- aiohttp (asyncio only: aiohttp is built on asyncio) -----------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_app_lists_and_adds_through_its_test_client(box: Sandbox) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(aiohttp_app.create_app(box.fake.transport))) as client:
        listed = await client.get("/kf-accounts")
        assert listed.status == 200
        assert len(await listed.json()) == 2
        added = await client.post(f"/servicers/{KFID}", json={"userids": ["user0002", "ghost"]})
        assert added.status == 207
        assert (await added.json())["items"][1]["errcode"] == 60111
        bad = await client.post(f"/servicers/{KFID}", json={"userids": "user0002"})
        assert bad.status == 422
    assert box.fake.servicers(KFID) == {"user0002": 0}


# -- the worker ----------------------------------------------------------------------------------


class CrashAfter(httpx.AsyncBaseTransport):
    """Passes ``allowed`` servicer requests to the fake, then hangs as a dying process would."""

    def __init__(self, box: Sandbox, allowed: int) -> None:
        self.inner = box.fake.transport
        self.allowed = allowed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "/servicer/add" in request.url.path:
            if self.allowed == 0:
                await anyio.sleep_forever()
            self.allowed -= 1
        return await self.inner.handle_async_request(request)


async def run_worker(box: Sandbox, transport: Any, ids: list[str], journal: Path) -> Any:
    async with (
        httpx.AsyncClient(transport=transport) as http,
        WeComClient(box.corpid, box.wecom_secret, http_client=http, max_concurrency=2) as client,
    ):
        return await onboard(client, KFID, ids, journal)


async def test_worker_resumes_after_a_crash_and_applies_every_id_once(
    box: Sandbox, tmp_path: Path
) -> None:
    ids = [*box.members[:900], "ghost1", "ghost2"]
    journal = tmp_path / "applied.jsonl"
    with anyio.move_on_after(2) as crash:  # the process dies after four requests were answered
        await run_worker(box, CrashAfter(box, allowed=4), ids, journal)
    assert crash.cancelled_caught
    recorded = read_journal(journal)
    answered = [c for c in box.fake.calls_to("/cgi-bin/kf/servicer/add") if c.delivered_ok]
    assert len(answered) == 4
    # Each answered request was journaled as it came, and nothing else.
    assert recorded == {u for c in answered for u in c.json["userid_list"]}

    summary = await run_worker(box, box.fake.transport, ids, journal)
    assert summary.skipped == len(recorded)
    ghosts_left = 2 - len(recorded & {"ghost1", "ghost2"})
    assert (summary.succeeded, summary.refused, summary.unprocessed) == (
        len(ids) - len(recorded) - ghosts_left,
        ghosts_left,
        [],
    )
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(line["userid"] for line in lines) == sorted(ids)  # each id recorded once
    assert set(box.fake.servicers(KFID)) == set(box.members[:900])
    resent = [
        u
        for c in box.fake.calls_to("/cgi-bin/kf/servicer/add")
        if c.delivered_ok
        for u in c.json["userid_list"]
    ]
    first = len(recorded)
    assert not set(resent[:first]) & set(resent[first:])  # the journaled ids were not sent again


async def test_worker_runs_as_a_command_on_both_backends(
    box: Sandbox, tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples import common, worker

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(box.members[:250]) + "\n", encoding="utf-8")
    original = common.open_clients

    async def with_fake(stack: Any, transport: Any = None) -> Any:
        return await original(stack, box.fake.transport)

    monkeypatch.setattr(worker, "open_clients", with_fake)
    argv = ["--open-kfid", KFID, "--userids-file", str(ids_file), "--journal",
            str(tmp_path / "j.jsonl"), "--backend", anyio_backend]  # fmt: skip
    code = await anyio.to_thread.run_sync(worker.main, argv)
    assert code == 0
    assert len(box.fake.servicers(KFID)) == 250


# -- plain data in and out -----------------------------------------------------------------------


async def test_models_and_batch_results_round_trip_through_plain_data(box: Sandbox) -> None:
    async with (
        httpx.AsyncClient(transport=box.fake.transport) as http,
        WeComClient(box.corpid, box.wecom_secret, http_client=http) as wc,
    ):
        result = await wc.servicers.add(KFID, ["user0001", "ghost"], department_ids=[1])
        servicers = await wc.servicers.list(KFID)
    data = to_data(result)
    assert json.loads(json.dumps(data)) == data
    assert from_data(BatchResult, data) == result
    assert from_data(list[Servicer], to_data(servicers)) == servicers
    item = ServicerResult(userid="a", errcode=0, errmsg="ok")
    assert from_data(ServicerResult, to_data(item)) == item
    online = OnlineKfAccount(kf_account="a@b", status=1, kf_id="1", accepted_case=2)
    assert from_data(OnlineKfAccount, to_data(online)) == online


def test_kf_account_round_trip_keeps_the_aware_expiry() -> None:
    from datetime import datetime, timezone

    from wechat_kf import InviteStatus

    account = KfAccount(
        kf_account="a@gh",
        kf_id="1001",
        invite_expire_time=datetime(2026, 12, 1, tzinfo=timezone.utc),
        invite_status=InviteStatus.WAITING,
    )
    data = to_data(account)
    assert data["invite_expire_time"] == 1796083200  # 2026-12-01T00:00:00Z
    assert data["invite_status"] == "waiting"
    assert from_data(KfAccount, data) == account


# -- callbacks -----------------------------------------------------------------------------------

CALLBACK_TOKEN = "exampletoken"
CALLBACK_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
COMPONENT_APPID = "wxcomponent00001"


@pytest.fixture
def callback_env(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox with an open platform, and both callbacks configured in the environment."""
    platform = box.fake.register_open_platform(COMPONENT_APPID)
    monkeypatch.setenv("WECOM_CALLBACK_TOKEN", CALLBACK_TOKEN)
    monkeypatch.setenv("WECOM_CALLBACK_AES_KEY", CALLBACK_KEY)
    monkeypatch.setenv("WECHAT_COMPONENT_APPID", COMPONENT_APPID)
    monkeypatch.setenv("WECHAT_COMPONENT_SECRET", platform.component_appsecret)
    monkeypatch.setenv("WECHAT_COMPONENT_CALLBACK_TOKEN", CALLBACK_TOKEN)
    monkeypatch.setenv("WECHAT_COMPONENT_CALLBACK_AES_KEY", CALLBACK_KEY)
    return box


def url_check(receive_id: str, echo: str) -> dict[str, str]:
    """The query of WeCom's URL check for ``echo``, as WeChat signs it."""
    import re

    from wechat_kf.callbacks import CallbackCrypto

    sealed = CallbackCrypto(CALLBACK_TOKEN, CALLBACK_KEY, receive_id).seal(echo)
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed.body)
    assert encrypt is not None
    return {
        "msg_signature": sealed.msg_signature,
        "timestamp": sealed.timestamp,
        "nonce": sealed.nonce,
        "echostr": encrypt.group(1),
    }


async def test_fastapi_callbacks_answer_the_url_check_and_take_the_fake_s_pushes(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    app = fastapi_app.create_app(box.fake.transport)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            checked = await client.get("/callbacks/wecom", params=url_check(box.corpid, "echo-1"))
            assert (checked.status_code, checked.text) == (200, "echo-1")
            forged = {**url_check(box.corpid, "echo-2"), "msg_signature": "0" * 40}
            assert (await client.get("/callbacks/wecom", params=forged)).status_code == 403
        box.fake.set_callback(
            app, token=CALLBACK_TOKEN, encoding_aes_key=CALLBACK_KEY, path="/callbacks/wecom"
        )
        box.fake.set_platform_callback(
            COMPONENT_APPID,
            app,
            token=CALLBACK_TOKEN,
            encoding_aes_key=CALLBACK_KEY,
            path="/callbacks/open-platform",
        )
        with anyio.fail_after(10):
            async with box.fake.pushing():
                box.fake.customer_says(KFID, "wmCUSTOMER0001", "你好")
                box.fake.advance(600)  # ten fake minutes: WeChat pushes a new verify ticket
                await box.fake.pushes_settled()
            callbacks = app.state.callbacks
            (event,) = callbacks.kf_events
            assert (event.open_kfid, event.corpid) == (KFID, box.corpid)
            assert event.token
            # The pushed ticket was saved: the platform fetches its component token with it.
            assert await callbacks.platform.component.get_token()
    deliveries = box.fake.callback_deliveries
    assert [d.kind for d in deliveries] == ["kf_msg_or_event", "component_verify_ticket"]
    assert all(d.ok and d.attempt == 1 for d in deliveries)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_callbacks_take_the_fake_s_pushes_over_loopback(
    callback_env: Sandbox,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    box = callback_env
    app = aiohttp_app.create_app(box.fake.transport)
    async with TestClient(TestServer(app)) as client:
        checked = await client.get("/callbacks/wecom", params=url_check(box.corpid, "echo-3"))
        assert (checked.status, await checked.text()) == (200, "echo-3")
        url = str(client.make_url("/callbacks/wecom"))
        box.fake.set_callback(url, token=CALLBACK_TOKEN, encoding_aes_key=CALLBACK_KEY)
        box.fake.set_platform_callback(
            COMPONENT_APPID,
            str(client.make_url("/callbacks/open-platform")),
            token=CALLBACK_TOKEN,
            encoding_aes_key=CALLBACK_KEY,
        )
        with anyio.fail_after(10):
            box.fake.customer_says(KFID, "wmCUSTOMER0002", "在吗")
            box.fake.push_verify_ticket(COMPONENT_APPID)
            await box.fake.deliver_pushes()
        callbacks = app[aiohttp_app.CALLBACKS]
        assert [e.open_kfid for e in callbacks.kf_events] == [KFID]
        assert await callbacks.platform.component.get_token()
        wrong_route = await client.post("/callbacks/nowhere", data=b"<xml/>")
        assert wrong_route.status == 404
    assert all(d.ok for d in box.fake.callback_deliveries)


async def test_a_push_that_fails_its_checks_is_refused_and_not_acted_on(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    app = fastapi_app.create_app(box.fake.transport)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            from wechat_kf.callbacks import CallbackCrypto

            other = CallbackCrypto(CALLBACK_TOKEN, CALLBACK_KEY, "wwSOMEONEELSE")
            sealed = other.seal("<xml><MsgType>event</MsgType></xml>")
            params = {
                "msg_signature": sealed.msg_signature,
                "timestamp": sealed.timestamp,
                "nonce": sealed.nonce,
            }
            refused = await client.post("/callbacks/wecom", params=params, content=sealed.body)
            assert refused.status_code == 403
            assert not app.state.callbacks.kf_events


def sealed_push(receive_id: str, plaintext: str) -> tuple[dict[str, str], bytes]:
    """The query and body WeChat would POST for ``plaintext``, sealed with the examples' key
    for ``receive_id``."""
    from wechat_kf.callbacks import CallbackCrypto

    sealed = CallbackCrypto(CALLBACK_TOKEN, CALLBACK_KEY, receive_id).seal(plaintext)
    query = {"msg_signature": sealed.msg_signature, "timestamp": sealed.timestamp,
             "nonce": sealed.nonce}  # fmt: skip
    return query, sealed.body.encode()


def kf_event_xml(corpid: str, token: str = "TOKEN1") -> str:
    return (
        f"<xml><ToUserName>{corpid}</ToUserName><CreateTime>{int(time.time())}</CreateTime>"
        f"<MsgType>event</MsgType><Event>kf_msg_or_event</Event><Token>{token}</Token>"
        f"<OpenKfId>{KFID}</OpenKfId></xml>"
    )


def ticket_xml(component_appid: str) -> str:
    return (
        f"<xml><AppId>{component_appid}</AppId><CreateTime>{int(time.time())}</CreateTime>"
        "<InfoType>component_verify_ticket</InfoType>"
        "<ComponentVerifyTicket>INJECTED-TICKET</ComponentVerifyTicket></xml>"
    )


async def raw_post(port: int, head: bytes, *parts: bytes, gap: float = 0.2) -> bytes:
    """Send ``head`` and then each part as its own TCP segment, ``gap`` seconds apart; return
    the status line answered."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head)
        for part in parts:
            await anyio.sleep(gap)
            with contextlib.suppress(anyio.BrokenResourceError):
                await stream.send(part)
        answer = b""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            while b"\r\n" not in answer:
                answer += await stream.receive()
    return answer.split(b"\r\n", 1)[0]


def post_head(path: str, query: dict[str, str], length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {path}?{urlencode(query)} HTTP/1.1\r\nHost: app\r\n{framing}\r\n"
            "Content-Type: text/xml\r\nConnection: close\r\n\r\n").encode()  # fmt: skip


def chunked(*parts: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_takes_a_push_whose_body_comes_in_several_tcp_segments(
    callback_env: Sandbox,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    box = callback_env
    app = aiohttp_app.create_app(box.fake.transport)
    async with TestClient(TestServer(app)) as client:
        port = client.port
        assert port is not None
        with anyio.fail_after(10):
            query, body = sealed_push(box.corpid, kf_event_xml(box.corpid))
            head = post_head("/callbacks/wecom", query, len(body))
            status = await raw_post(port, head + body[:100], body[100:250], body[250:])
            assert status == b"HTTP/1.1 200 OK"
            query, body = sealed_push(box.corpid, kf_event_xml(box.corpid))
            head = post_head("/callbacks/wecom", query, None)
            status = await raw_post(port, head, *chunked(body[:50], body[50:]))
            assert status == b"HTTP/1.1 200 OK"
        assert [e.open_kfid for e in app[aiohttp_app.CALLBACKS].kf_events] == [KFID, KFID]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_refuses_a_push_over_the_cap_with_413_declared_or_streamed(
    callback_env: Sandbox,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from examples.callbacks import MAX_PUSH_BYTES

    box = callback_env
    app = aiohttp_app.create_app(box.fake.transport)
    query, _ = sealed_push(box.corpid, kf_event_xml(box.corpid))
    async with TestClient(TestServer(app)) as client:
        port = client.port
        assert port is not None
        with anyio.fail_after(10):
            declared = post_head("/callbacks/wecom", query, 300 * 1024 * 1024)
            # The reason phrase is Python's own (3.13 says "Content Too Large"): the code counts.
            assert (await raw_post(port, declared, b"A" * 1024)).startswith(b"HTTP/1.1 413 ")
            streamed = post_head("/callbacks/wecom", query, None)
            block = b"A" * (16 * 1024)
            parts = chunked(*[block] * (MAX_PUSH_BYTES // len(block) + 2))
            answer = await raw_post(port, streamed + b"".join(parts), gap=0)
            assert answer.startswith(b"HTTP/1.1 413 ")
            exactly = b"A" * MAX_PUSH_BYTES  # at the cap: read, then refused as no push
            assert (
                await raw_post(
                    port, post_head("/callbacks/wecom", query, len(exactly)) + exactly, gap=0
                )
                == b"HTTP/1.1 403 Forbidden"
            )
        assert not app[aiohttp_app.CALLBACKS].kf_events


class Drip:
    """A request body of ``total`` bytes in 64 KiB chunks, counting how many were read (an
    iterator, not a generator: left unfinished, it holds nothing to clean up)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.read = 0

    def __aiter__(self) -> Drip:
        return self

    async def __anext__(self) -> bytes:
        if self.read * 64 * 1024 >= self.total:
            raise StopAsyncIteration
        self.read += 1
        return b"A" * (64 * 1024)


async def test_fastapi_refuses_a_push_over_the_cap_before_reading_it_whole(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    app = fastapi_app.create_app(box.fake.transport)
    query, _ = sealed_push(box.corpid, kf_event_xml(box.corpid))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            with anyio.fail_after(10):
                declared = Drip(16 * 1024 * 1024)
                answer = await client.post(
                    "/callbacks/wecom",
                    params=query,
                    content=declared,
                    headers={"content-length": str(declared.total)},
                )
                assert (answer.status_code, declared.read) == (413, 0)
                streamed = Drip(16 * 1024 * 1024)  # no length: counted as it comes
                answer = await client.post("/callbacks/wecom", params=query, content=streamed)
                assert answer.status_code == 413
                assert streamed.read <= 2
    assert not app.state.callbacks.kf_events


async def test_fastapi_takes_a_push_streamed_in_pieces_without_a_length(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    app = fastapi_app.create_app(box.fake.transport)
    query, body = sealed_push(box.corpid, kf_event_xml(box.corpid))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 37):
            yield body[start : start + 37]

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            with anyio.fail_after(10):
                answer = await client.post("/callbacks/wecom", params=query, content=pieces())
        assert (answer.status_code, answer.text) == (200, "success")
        assert [e.open_kfid for e in app.state.callbacks.kf_events] == [KFID]


async def test_a_push_on_another_route_than_its_own_is_acknowledged_and_ignored(
    callback_env: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    box = callback_env
    app = fastapi_app.create_app(box.fake.transport)
    async with app.router.lifespan_context(app):
        callbacks = app.state.callbacks
        saved: list[Any] = []

        async def save(ticket: Any) -> None:
            saved.append(ticket)

        callbacks.platform.save_verify_ticket = save
        transport = httpx.ASGITransport(app=app)
        caplog.set_level(logging.INFO, logger="examples.callbacks")
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            with anyio.fail_after(10):
                # A ticket sealed with the corp callback's key, on the corp's route.
                query, body = sealed_push(box.corpid, ticket_xml(COMPONENT_APPID))
                answer = await client.post("/callbacks/wecom", params=query, content=body)
                assert (answer.status_code, answer.text) == (200, "success")
                # A kf event sealed with the platform's key, on the platform's route.
                query, body = sealed_push(COMPONENT_APPID, kf_event_xml(box.corpid))
                answer = await client.post("/callbacks/open-platform", params=query, content=body)
                assert (answer.status_code, answer.text) == (200, "success")
                # Another platform's ticket on the platform's route.
                query, body = sealed_push(COMPONENT_APPID, ticket_xml("wxsomeoneelse0001"))
                answer = await client.post("/callbacks/open-platform", params=query, content=body)
                assert (answer.status_code, answer.text) == (200, "success")
                # The route's own push is still acted on.
                query, body = sealed_push(COMPONENT_APPID, ticket_xml(COMPONENT_APPID))
                answer = await client.post("/callbacks/open-platform", params=query, content=body)
                assert (answer.status_code, answer.text) == (200, "success")
        assert not callbacks.kf_events
        assert [t.component_appid for t in saved] == [COMPONENT_APPID]
    ignored = [r for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 3
    assert all(r.levelno == logging.INFO for r in ignored)


# -- answering customers: the inbox behind the callback route ------------------------------------

ALICE, BOB, CAROL = "wmALICE000001", "wmBOB0000001", "wmCAROL000001"
SEND_PATHS = ("/cgi-bin/kf/send_msg", "/cgi-bin/kf/send_msg_on_event")


async def until(predicate: Callable[[], bool], step: float = 0.01) -> None:
    """Wait for what nothing signals (the fake's log of sent messages); every caller is under
    ``anyio.fail_after``."""
    while not predicate():  # noqa: ASYNC110 - polled: no event reports it
        await anyio.sleep(step)


def replies(fake: FakeWeChat, customer: str) -> list[str]:
    """The texts the app sent the customer, in order (welcome included)."""
    return [m.content["content"] for m in fake.sent_messages(KFID, customer)]


def answered(fake: FakeWeChat, said: dict[str, list[str]]) -> bool:
    """Whether every customer got at least one answer per message (and the welcome) so far."""
    return all(len(replies(fake, who)) >= len(texts) for who, texts in said.items())


def assert_nothing_sent_twice(fake: FakeWeChat) -> None:
    """No message reached a customer twice, and no reply was even tried twice: the fake never
    refused a repeated msgid (what a second handling of a message would meet)."""
    sent = [(m.touser, m.via, m.content.get("content")) for m in fake.sent_messages(KFID)]
    assert len(sent) == len(set(sent))
    calls = [c for path in SEND_PATHS for c in fake.calls_to(path)]
    assert not [c for c in calls if c.errcode == DUPLICATE_MSGID]
    assert len([c for c in calls if c.delivered_ok]) == len(sent)


def assert_the_sandbox_backlog_answered_once(box: Sandbox) -> None:
    """The inbox starts from the 3-day backlog: the sandbox's own customers are answered too,
    once each, except the one a human servicer has (the API may not write in that session)."""
    first, second, third = box.customers
    assert replies(box.fake, first)[-1:] == ["收到: 你好，我想查一下订单"]
    assert replies(box.fake, second) == ["收到: 在吗"]
    assert replies(box.fake, third) == []


def set_wecom_callback(fake: FakeWeChat, target: Any) -> None:
    fake.set_callback(
        target, token=CALLBACK_TOKEN, encoding_aes_key=CALLBACK_KEY, path="/callbacks/wecom"
    )


async def test_fastapi_app_answers_each_customer_message_once_and_welcomes_who_enters(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    fake = box.fake
    app = fastapi_app.create_app(fake.transport)
    with anyio.fail_after(20):
        async with app.router.lifespan_context(app):
            set_wecom_callback(fake, app)
            async with fake.pushing():
                fake.customer_enters(KFID, ALICE, scene="web01")
                fake.customer_says(KFID, ALICE, "你好")
                fake.customer_says(KFID, BOB, "在吗")
                fake.customer_says(KFID, ALICE, "订单 123 到哪了")
                await fake.pushes_settled()
                await until(lambda: answered(fake, {ALICE: ["", "", ""], BOB: [""]}))
            # Nothing left to pull, and nothing handed to the handler again.
            assert await app.state.inbox.drain(KFID) == 0
            assert len(app.state.callbacks.kf_events) == 4  # a push per message and the entry
    assert replies(fake, ALICE) == [WELCOME.content, "收到: 你好", "收到: 订单 123 到哪了"]
    assert [m.via for m in fake.sent_messages(KFID, ALICE)] == [
        "send_msg_on_event",
        "send_msg",
        "send_msg",
    ]
    assert replies(fake, BOB) == ["收到: 在吗"]
    assert_the_sandbox_backlog_answered_once(box)
    assert_nothing_sent_twice(fake)
    assert all(d.ok and d.attempt == 1 for d in fake.callback_deliveries)


async def test_a_kf_push_of_another_corp_is_not_taken_and_one_after_the_inbox_closed_is_503(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    app = fastapi_app.create_app(box.fake.transport)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            with anyio.fail_after(10):
                # Sealed with this corp's key, yet news of another corp's account: acknowledged,
                # never pulled (the inbox would ask this corp for an account it does not have).
                query, body = sealed_push(box.corpid, kf_event_xml("wwSOMEONEELSE"))
                answer = await client.post("/callbacks/wecom", params=query, content=body)
                assert (answer.status_code, answer.text) == (200, "success")
                assert not app.state.callbacks.kf_events
                # The app is shutting down: its inbox is closed, so WeChat is asked to deliver
                # the push again (to a process still up) rather than told it was taken.
                await app.state.inbox.aclose()
                query, body = sealed_push(box.corpid, kf_event_xml(box.corpid))
                answer = await client.post("/callbacks/wecom", params=query, content=body)
                assert answer.status_code == 503
    assert not box.fake.calls_to("/cgi-bin/kf/sync_msg")


class LateAnswers:
    """An ASGI app in front of the example's: the first ``late`` pushes reach the app, which acts
    on them, but their answers are held past the fake's callback timeout, so the fake (as WeChat
    does) delivers the push again."""

    def __init__(self, app: Any, late: int) -> None:
        self.app = app
        self.late = late

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.late == 0:
            await self.app(scope, receive, send)
            return
        self.late -= 1

        async def held(message: Any) -> None:
            pass

        await self.app(scope, receive, held)
        await anyio.sleep_forever()  # until the fake gives up on this delivery


async def test_fastapi_app_answers_once_a_push_the_fake_delivered_three_times(
    callback_env: Sandbox,
) -> None:
    box = callback_env
    fake = box.fake
    fake.callback_timeout = 0.3
    app = fastapi_app.create_app(fake.transport)
    with anyio.fail_after(20):
        async with app.router.lifespan_context(app):
            set_wecom_callback(fake, LateAnswers(app, late=2))
            async with fake.pushing():
                fake.customer_says(KFID, CAROL, "发了三次吗")
                await fake.pushes_settled()
                await until(lambda: answered(fake, {CAROL: [""]}))
            assert await app.state.inbox.drain(KFID) == 0
            events = list(app.state.callbacks.kf_events)
    deliveries = [(d.kind, d.attempt, d.status, d.error) for d in fake.callback_deliveries]
    assert deliveries == [
        ("kf_msg_or_event", 1, None, "timeout"),
        ("kf_msg_or_event", 2, None, "timeout"),
        ("kf_msg_or_event", 3, 200, None),
    ]
    # The app took the push each time (the same token), and answered the message once.
    assert len(events) == 3
    assert len({e.token for e in events}) == 1
    assert replies(fake, CAROL) == ["收到: 发了三次吗"]
    assert_the_sandbox_backlog_answered_once(box)
    assert_nothing_sent_twice(fake)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_app_answers_the_fake_s_pushes_over_loopback_once_replayed_and_rewound(
    callback_env: Sandbox,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    box = callback_env
    fake = box.fake
    app = aiohttp_app.create_app(fake.transport)
    async with TestClient(TestServer(app)) as client:
        inbox = app[aiohttp_app.INBOX]
        set_wecom_callback(fake, str(client.make_url("/callbacks/wecom")))
        with anyio.fail_after(20):
            # Where WeChat's log stands before these customers: a cursor to pull from again.
            before = (await app[aiohttp_app.WECOM].messages.sync(KFID)).next_cursor
            assert before
            fake.customer_enters(KFID, ALICE, scene="web01")
            fake.customer_says(KFID, ALICE, "你好")
            fake.customer_says(KFID, BOB, "在吗")
            await fake.deliver_pushes()  # over loopback, each answered at once
            await until(lambda: answered(fake, {ALICE: ["", ""], BOB: [""]}))
            assert await inbox.drain(KFID) == 0
            assert all(d.ok and d.attempt == 1 for d in fake.callback_deliveries)

            # WeChat hands the same messages out again: the stored cursor goes back to before
            # them, and the latest push is delivered three more times, all at once.
            owner = "rewinder"  # the drain let the lease go
            assert await inbox.store.acquire(inbox.namespace, KFID, owner) is not None
            assert await inbox.store.commit(inbox.namespace, KFID, owner, {}, before)
            await inbox.store.release(inbox.namespace, KFID, owner, None)
            pulls = len(fake.calls_to("/cgi-bin/kf/sync_msg"))
            token = fake.latest_sync_token(KFID)
            assert token is not None
            query, body = sealed_push(box.corpid, kf_event_xml(box.corpid, token))

            async def replay() -> None:
                answer = await client.post("/callbacks/wecom", params=query, data=body)
                assert (answer.status, await answer.text()) == (200, "success")

            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(replay)
            assert await inbox.drain(KFID) == 0  # waits for the pull the replays started
        again = fake.calls_to("/cgi-bin/kf/sync_msg")[pulls:]
        assert again
        assert again[0].json["cursor"] == before  # the old messages came back...
    assert replies(fake, ALICE) == [WELCOME.content, "收到: 你好"]  # ...and were not answered
    assert replies(fake, BOB) == ["收到: 在吗"]
    assert_the_sandbox_backlog_answered_once(box)
    assert_nothing_sent_twice(fake)


class Counting(httpx.AsyncBaseTransport):
    """The fake's transport, counting the messages sent through it (one per app instance)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sends = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in SEND_PATHS:
            self.sends += 1
        return await self.inner.handle_async_request(request)


class Alternate:
    """An ASGI app that hands the requests to ``apps`` in turn (a load balancer in front of two
    instances of the app), counting what each got."""

    def __init__(self, apps: list[Any]) -> None:
        self.apps = apps
        self.received = [0] * len(apps)
        self.turn = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        index = self.turn % len(self.apps)
        self.turn += 1
        self.received[index] += 1
        await self.apps[index](scope, receive, send)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # redis.asyncio: asyncio only
async def test_two_fastapi_instances_sharing_redis_answer_every_message_once(
    callback_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wechat_kf.stores import RedisInboxStore

    box = callback_env
    fake = box.fake
    fake.faults.latency = (0.0, 0.01)  # so that pulls overlap the pushes that keep coming
    customers = [f"wmFLEET{i:06d}" for i in range(6)]
    said: dict[str, list[str]] = {who: [] for who in customers}

    def says(who: str, text: str) -> None:
        fake.customer_says(KFID, who, text)
        said[who].append(f"收到: {text}")

    with redis_server() as url:
        monkeypatch.setenv("REDIS_URL", url)
        instances = [Counting(fake.transport) for _ in range(2)]
        apps = [fastapi_app.create_app(instance) for instance in instances]
        async with contextlib.AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(app.router.lifespan_context(app))
            assert all(isinstance(app.state.inbox.store, RedisInboxStore) for app in apps)
            balancer = Alternate(apps)
            set_wecom_callback(fake, balancer)
            with anyio.fail_after(30):
                async with fake.pushing():
                    # One at a time, the lease let go in between: each push lands on the
                    # other instance, which pulls it.
                    for i, who in enumerate(customers[:4]):
                        says(who, f"一个一个 {i}")
                        await until(lambda: answered(fake, said))
                        assert await apps[i % 2].state.inbox.drain(KFID) == 0
                    # All at once: pushes land on both while one of them holds the lease.
                    fake.customer_enters(KFID, customers[5], scene="fleet")
                    said[customers[5]].append(WELCOME.content)
                    for round_ in range(3):
                        for who in customers:
                            says(who, f"{who[-2:]} 第{round_}句")
                        await anyio.sleep(0.02)
                    await fake.pushes_settled()
                    await until(lambda: answered(fake, said))
                # Both instances, once each holds the lease in turn, find nothing left.
                assert [await app.state.inbox.drain(KFID) for app in apps] == [0, 0]
    assert balancer.received == [12, 11]  # 23 pushes, delivered to the instances in turn
    assert all(d.ok and d.attempt == 1 for d in fake.callback_deliveries)
    assert all(instance.sends > 0 for instance in instances)  # both answered customers
    # Every message answered exactly once, in order per customer, whichever instance pulled.
    assert {who: replies(fake, who) for who in customers} == said
    assert_the_sandbox_backlog_answered_once(box)
    assert_nothing_sent_twice(fake)
