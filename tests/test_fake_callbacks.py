"""FakeWeChat's callback pushes: what it POSTs (WeChat's envelope, sealed so that CallbackCrypto
opens it into the right model), when (a customer's message, a send that failed, the platforms'
tickets every 10 minutes of the fake's clock), and how (in the background of ``pushing()`` or
at once with ``deliver_pushes()``, retried up to 4 deliveries, to an ASGI app or a URL), on
asyncio and trio, with no task left behind."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from tests._servers import serve
from tests._wire import WireConn, WireRequest, WireServer
from wechat_kf.callbacks import (
    CallbackCrypto,
    ComponentVerifyTicket,
    KfMsgOrEvent,
    SuiteTicket,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

WECOM = "https://qyapi.weixin.qq.com"
TOKEN = "QDG6eK"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CUSTOMER = "wmCUSTOMER0001"


class Receiver:
    """An ASGI app that records every request it gets and answers the statuses given in turn
    (the last one for ever after), after ``delay`` seconds, or raises when told to."""

    def __init__(self, *statuses: int, delay: float = 0.0, crash: bool = False) -> None:
        self.statuses = list(statuses or (200,))
        self.delay = delay
        self.crash = crash
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = dict(parse_qsl(scope["query_string"].decode()))
        self.requests.append((scope["path"], query, body))
        if self.crash:
            raise RuntimeError("the receiver crashed")
        await anyio.sleep(self.delay)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"success"})

    def opened(self, crypto: CallbackCrypto, index: int = -1) -> Any:
        """The ``index``-th push received, checked and decrypted."""
        _, query, body = self.requests[index]
        return crypto.decrypt(
            body,
            msg_signature=query["msg_signature"],
            timestamp=query["timestamp"],
            nonce=query["nonce"],
        )


@pytest.fixture
def kf(fake: FakeWeChat) -> str:
    """A WeCom app and one 微信客服 account: its open_kfid."""
    app = fake.register_wecom_app()
    return fake.create_kf_account(app.corpid, "售后")


def corpid_of(fake: FakeWeChat) -> str:
    return next(iter(fake.corps))


async def test_a_customer_message_pushes_a_kf_msg_or_event_that_decrypts_with_its_token(
    fake: FakeWeChat, kf: str, http: httpx.AsyncClient
) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY, path="/wechat/callback")
    with anyio.fail_after(10):
        async with fake.pushing():
            msgid = fake.customer_says(kf, CUSTOMER, "你好")
            await fake.pushes_settled()
    (delivery,) = fake.callback_deliveries
    assert (delivery.kind, delivery.attempt, delivery.status, delivery.ok) == (
        "kf_msg_or_event",
        1,
        200,
        True,
    )
    assert receiver.requests[0][0] == "/wechat/callback"
    event = receiver.opened(CallbackCrypto(TOKEN, KEY, corpid_of(fake)))
    assert isinstance(event, KfMsgOrEvent)
    assert (event.corpid, event.open_kfid) == (corpid_of(fake), kf)
    assert event.token == fake.latest_sync_token(kf)
    # The pushed token pulls the message.
    app = next(iter(fake.wecom_apps.values()))
    params = {"corpid": app.corpid, "corpsecret": app.secret}
    access = (await http.get(f"{WECOM}/cgi-bin/gettoken", params=params)).json()["access_token"]
    page = await http.post(
        f"{WECOM}/cgi-bin/kf/sync_msg",
        params={"access_token": access},
        json={"open_kfid": kf, "token": str(event.token)},
    )
    assert [m["msgid"] for m in page.json()["msg_list"]] == [msgid]


async def test_a_push_is_posted_in_wecoms_envelope_with_the_signature_in_the_query(
    fake: FakeWeChat, kf: str
) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    fake.customer_enters(kf, CUSTOMER)
    with anyio.fail_after(10):
        await fake.deliver_pushes()
    path, query, body = receiver.requests[0]
    assert path == "/"
    assert set(query) == {"msg_signature", "timestamp", "nonce"}
    text = body.decode()
    assert text.startswith(f"<xml><ToUserName><![CDATA[{corpid_of(fake)}]]></ToUserName>")
    assert "<AgentID><![CDATA[]]></AgentID><Encrypt><![CDATA[" in text
    assert text.endswith("]]></Encrypt></xml>")


async def test_a_push_sealed_for_a_chosen_receive_id_is_refused_by_another(
    fake: FakeWeChat, kf: str
) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY, receive_id="wwsomeoneelse")
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        await fake.deliver_pushes()
    assert isinstance(receiver.opened(CallbackCrypto(TOKEN, KEY, "wwsomeoneelse")), KfMsgOrEvent)
    with pytest.raises(ValueError, match="receive id"):
        receiver.opened(CallbackCrypto(TOKEN, KEY, corpid_of(fake)))


async def test_a_push_answered_500_is_delivered_again_until_a_200(
    fake: FakeWeChat, kf: str
) -> None:
    receiver = Receiver(500, 200)
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    with anyio.fail_after(10):
        async with fake.pushing():
            fake.customer_says(kf, CUSTOMER)
            await fake.pushes_settled()
    assert [(d.attempt, d.status) for d in fake.callback_deliveries] == [(1, 500), (2, 200)]
    first, second = receiver.requests
    assert first[2] == second[2]  # the same push, twice: the receiver must dedupe


async def test_a_push_never_answered_200_is_delivered_4_times_in_all(
    fake: FakeWeChat, kf: str
) -> None:
    receiver = Receiver(503)
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        await fake.deliver_pushes()
    assert [(d.attempt, d.status) for d in fake.callback_deliveries] == [
        (1, 503),
        (2, 503),
        (3, 503),
        (4, 503),
    ]
    assert fake.pending_pushes == 0


async def test_a_push_not_answered_within_the_callback_timeout_is_retried(
    fake: FakeWeChat, kf: str
) -> None:
    assert fake.callback_timeout == 5.0
    fake.callback_timeout = 0.05
    receiver = Receiver(delay=1.0)
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        await fake.deliver_pushes()
    assert [(d.status, d.error) for d in fake.callback_deliveries] == [(None, "timeout")] * 4


async def test_a_receiver_that_crashes_is_recorded_and_retried(fake: FakeWeChat, kf: str) -> None:
    fake.set_callback(Receiver(crash=True), token=TOKEN, encoding_aes_key=KEY)
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        await fake.deliver_pushes()
    deliveries = fake.callback_deliveries
    assert len(deliveries) == 4
    assert all(d.status is None and "the receiver crashed" in (d.error or "") for d in deliveries)


async def test_a_url_callback_over_loopback_receives_the_push(fake: FakeWeChat, kf: str) -> None:
    receiver = Receiver()
    with serve(receiver) as base_url:
        fake.set_callback(f"{base_url}/callback", token=TOKEN, encoding_aes_key=KEY)
        with anyio.fail_after(10):
            async with fake.pushing():
                fake.customer_says(kf, CUSTOMER)
                await fake.pushes_settled()
    assert [d.status for d in fake.callback_deliveries] == [200]
    assert receiver.requests[0][0] == "/callback"
    assert isinstance(receiver.opened(CallbackCrypto(TOKEN, KEY, corpid_of(fake))), KfMsgOrEvent)


async def test_a_failed_send_pushes_too(fake: FakeWeChat, kf: str, http: httpx.AsyncClient) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    fake.customer_says(kf, CUSTOMER)
    fake.advance(48 * 3600 + 1)
    app = next(iter(fake.wecom_apps.values()))
    params = {"corpid": app.corpid, "corpsecret": app.secret}
    access = (await http.get(f"{WECOM}/cgi-bin/gettoken", params=params)).json()["access_token"]
    body = {"touser": CUSTOMER, "open_kfid": kf, "msgtype": "text", "text": {"content": "late"}}
    with anyio.fail_after(10):
        async with fake.pushing():
            sent = await http.post(
                f"{WECOM}/cgi-bin/kf/send_msg", params={"access_token": access}, json=body
            )
            assert sent.json()["errcode"] == 0
            await fake.pushes_settled()
    assert len(receiver.requests) == 2  # the customer's message, then the msg_send_fail


async def test_nothing_is_queued_without_a_callback_and_nothing_runs_after_pushing(
    fake: FakeWeChat, kf: str
) -> None:
    fake.customer_says(kf, CUSTOMER)
    assert fake.pending_pushes == 0
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    with anyio.fail_after(10):
        async with fake.pushing():
            pass
    fake.customer_says(kf, CUSTOMER)
    await anyio.sleep(0.05)
    assert (fake.pending_pushes, receiver.requests) == (1, [])  # queued, not delivered
    with anyio.fail_after(10):
        await fake.pushes_settled()  # outside pushing(): delivers them itself
    assert fake.pending_pushes == 0
    assert len(receiver.requests) == 1


async def test_pushes_are_delivered_in_order(fake: FakeWeChat, kf: str) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    crypto = CallbackCrypto(TOKEN, KEY, corpid_of(fake))
    with anyio.fail_after(10):
        async with fake.pushing():
            for i in range(5):
                fake.customer_says(kf, CUSTOMER, f"m{i}")
                fake.advance(1)
            await fake.pushes_settled()
    times = [receiver.opened(crypto, i).create_time for i in range(5)]
    assert times == sorted(times)
    assert len(set(times)) == 5


# -- the platforms' tickets ---------------------------------------------------------------------


@pytest.fixture
def platforms(fake: FakeWeChat) -> tuple[Receiver, Receiver]:
    """An open platform and a service provider, each with a callback: their receivers."""
    fake.register_open_platform("wxcomponent00001")
    fake.register_service_provider("wwsuite000000001")
    component, suite = Receiver(), Receiver()
    fake.set_platform_callback("wxcomponent00001", component, token=TOKEN, encoding_aes_key=KEY)
    fake.set_platform_callback("wwsuite000000001", suite, token=TOKEN, encoding_aes_key=KEY)
    return component, suite


async def test_every_10_minutes_each_platform_gets_a_new_ticket_pushed(
    fake: FakeWeChat, platforms: tuple[Receiver, Receiver]
) -> None:
    component, suite = platforms
    to_mark = 600 - fake.now() % 600
    with anyio.fail_after(10):
        async with fake.pushing():
            fake.advance(to_mark - 1)  # not yet
            await fake.pushes_settled()
            assert (component.requests, suite.requests) == ([], [])
            fake.advance(2)
            await fake.pushes_settled()
            fake.advance(3600)  # six marks: one new ticket, the latest
            await fake.pushes_settled()
    assert (len(component.requests), len(suite.requests)) == (2, 2)
    verify = component.opened(CallbackCrypto(TOKEN, KEY, "wxcomponent00001"))
    assert isinstance(verify, ComponentVerifyTicket)
    assert verify.component_appid == "wxcomponent00001"
    assert verify.ticket == fake.open_platforms["wxcomponent00001"].ticket
    ticket = suite.opened(CallbackCrypto(TOKEN, KEY, "wwsuite000000001"))
    assert isinstance(ticket, SuiteTicket)
    assert (ticket.suite_id, ticket.ticket) == (
        "wwsuite000000001",
        fake.service_providers["wwsuite000000001"].ticket,
    )
    assert component.requests[0][2].startswith(b"<xml><AppId><![CDATA[wxcomponent00001]]>")


async def test_a_ticket_pushed_by_hand_is_delivered_and_a_platform_without_callback_keeps_its(
    fake: FakeWeChat, platforms: tuple[Receiver, Receiver]
) -> None:
    component, _ = platforms
    fake.register_open_platform("wxcomponent00002")
    kept = fake.push_verify_ticket("wxcomponent00002")
    pushed = fake.push_verify_ticket("wxcomponent00001")
    with anyio.fail_after(10):
        await fake.deliver_pushes()
    opened = component.opened(CallbackCrypto(TOKEN, KEY, "wxcomponent00001"))
    assert opened.ticket == pushed
    fake.advance(600)
    assert fake.open_platforms["wxcomponent00002"].ticket == kept


async def test_set_callback_needs_a_known_corp_and_a_platform_callback_a_known_platform(
    fake: FakeWeChat,
) -> None:
    with pytest.raises(ValueError, match="corp"):
        fake.set_callback(Receiver(), token=TOKEN, encoding_aes_key=KEY)
    with pytest.raises(ValueError, match="neither"):
        fake.set_platform_callback("wxnobody", Receiver(), token=TOKEN, encoding_aes_key=KEY)
    fake.register_wecom_app("ww1")
    with pytest.raises(ValueError, match="unknown corp"):
        fake.set_callback(Receiver(), token=TOKEN, encoding_aes_key=KEY, corpid="ww2")
    with pytest.raises(ValueError, match="encoding_aes_key"):
        fake.set_callback(Receiver(), token=TOKEN, encoding_aes_key="short")


# -- delivery that is interrupted, or answered strangely ----------------------------------------


def stray_cancellation() -> BaseException:
    """The backend's cancellation exception, raised by an app on its own: nothing cancelled the
    fake (an app's own wait that was cancelled and let the exception out)."""
    if anyio.get_cancelled_exc_class() is asyncio.CancelledError:
        return asyncio.CancelledError()
    import trio

    return trio.Cancelled._create()


async def test_an_app_raising_its_own_cancellation_is_a_failed_delivery_and_pushing_goes_on(
    fake: FakeWeChat, kf: str
) -> None:
    calls = 0

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        calls += 1
        if calls == 1:
            raise stray_cancellation()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"success"})

    fake.set_callback(app, token=TOKEN, encoding_aes_key=KEY)
    reached_the_end = False
    with anyio.fail_after(10):
        async with fake.pushing():
            fake.customer_says(kf, CUSTOMER, "1")
            await fake.pushes_settled()
            fake.customer_says(kf, CUSTOMER, "2")
            await fake.pushes_settled()
            reached_the_end = True
    assert reached_the_end
    deliveries = fake.callback_deliveries
    assert [(d.attempt, d.status) for d in deliveries] == [(1, None), (2, 200), (1, 200)]
    assert "Cancel" in (deliveries[0].error or "")
    assert fake.pending_pushes == 0


async def test_a_cancellation_of_the_delivery_itself_still_stops_it(
    fake: FakeWeChat, kf: str
) -> None:
    fake.set_callback(Receiver(delay=30), token=TOKEN, encoding_aes_key=KEY)
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10), anyio.move_on_after(0.2) as stopped:
        await fake.deliver_pushes()
    assert stopped.cancelled_caught
    assert (fake.callback_deliveries, fake.pending_pushes) == ([], 1)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 counts no task cancellations")
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_asyncio_timeout_around_delivery_is_not_taken_for_the_apps_failure(
    fake: FakeWeChat, kf: str
) -> None:
    fake.set_callback(Receiver(delay=30), token=TOKEN, encoding_aes_key=KEY)
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(fake.deliver_pushes(), 0.2)
    assert (fake.callback_deliveries, fake.pending_pushes) == ([], 1)


async def test_a_push_in_flight_when_pushing_ends_stays_queued_and_is_delivered_later(
    fake: FakeWeChat, kf: str
) -> None:
    arrived = anyio.Event()

    class Slow(Receiver):
        async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                arrived.set()
            await super().__call__(scope, receive, send)

    receiver = Slow(delay=30)
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    with anyio.fail_after(10):
        async with fake.pushing():
            fake.customer_says(kf, CUSTOMER)
            await arrived.wait()  # the delivery is in flight
        assert (fake.pending_pushes, fake.callback_deliveries) == (1, [])
        receiver.delay = 0
        await fake.deliver_pushes()
    assert [(d.attempt, d.status) for d in fake.callback_deliveries] == [(1, 200)]
    assert fake.pending_pushes == 0
    assert len(receiver.requests) == 2


async def test_a_push_put_back_keeps_its_place_and_the_attempts_it_already_used(
    fake: FakeWeChat, kf: str
) -> None:
    answers = [500]  # the first attempt of the first push; then each request hangs until told

    release, waiting = anyio.Event(), anyio.Event()

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        status = answers.pop(0) if answers else 200
        if status == 200:
            waiting.set()
            await release.wait()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"success"})

    fake.set_callback(app, token=TOKEN, encoding_aes_key=KEY)
    crypto = CallbackCrypto(TOKEN, KEY, corpid_of(fake))
    with anyio.fail_after(10):
        async with fake.pushing():
            fake.customer_says(kf, CUSTOMER, "first")
            fake.advance(1)
            fake.customer_says(kf, CUSTOMER, "second")
            await waiting.wait()  # attempt 1 was answered 500; attempt 2 hangs
        assert fake.pending_pushes == 2
        release.set()
        receiver = Receiver()
        fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
        await fake.deliver_pushes()
    assert [(d.attempt, d.status) for d in fake.callback_deliveries] == [
        (1, 500),
        (2, 200),  # the first push again: its second attempt, not a new first one
        (1, 200),
    ]
    times = [receiver.opened(crypto, i).create_time for i in range(2)]
    assert times[0] < times[1]  # the one put back went first


async def test_a_url_answering_an_endless_body_counts_by_its_status_without_reading_it(
    fake: FakeWeChat, kf: str
) -> None:
    block = b"x" * (1 << 20)

    def endless(request: WireRequest, conn: WireConn) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        for _ in range(20_000):  # 20 GB at most, until the fake hangs up
            if conn.closed:
                return
            conn.send(block)

    with WireServer(endless) as server:
        fake.set_callback(f"{server.url}/cb", token=TOKEN, encoding_aes_key=KEY)
        fake.callback_timeout = 3.0
        fake.customer_says(kf, CUSTOMER)
        started = time.monotonic()
        with anyio.fail_after(10):
            await fake.deliver_pushes()
        took = time.monotonic() - started
    assert [(d.status, d.error) for d in fake.callback_deliveries] == [(200, None)]
    assert took < 2.0


async def test_pushing_inside_pushing_is_a_plain_runtime_error_and_the_outer_one_goes_on(
    fake: FakeWeChat, kf: str
) -> None:
    receiver = Receiver()
    fake.set_callback(receiver, token=TOKEN, encoding_aes_key=KEY)
    with anyio.fail_after(10):
        async with fake.pushing():
            with pytest.raises(RuntimeError, match="already active"):
                async with fake.pushing():
                    pytest.fail("a second pushing() was entered")
            fake.customer_says(kf, CUSTOMER)
            await fake.pushes_settled()
        # Let through, it leaves the outer pushing() as it was raised, not in a group.
        with pytest.raises(RuntimeError, match="already active") as raised:
            async with fake.pushing(), fake.pushing():
                pass
        assert type(raised.value) is RuntimeError
        async with fake.pushing():  # and once left, it can be entered again
            fake.customer_says(kf, CUSTOMER)
            await fake.pushes_settled()
    assert [d.status for d in fake.callback_deliveries] == [200, 200]


async def test_an_error_in_the_body_of_pushing_leaves_it_unwrapped_and_no_task_behind(
    fake: FakeWeChat, kf: str
) -> None:
    fake.set_callback(Receiver(), token=TOKEN, encoding_aes_key=KEY)
    with anyio.fail_after(10):
        with pytest.raises(ValueError, match="the test's own") as raised:
            async with fake.pushing():
                raise ValueError("the test's own")
        assert type(raised.value) is ValueError
        assert not fake.world.outbox.running
        with anyio.move_on_after(0.1) as outer:  # a deadline around it still cancels it
            async with fake.pushing():
                await anyio.sleep_forever()
        assert outer.cancelled_caught
        assert not fake.world.outbox.running
        fake.customer_says(kf, CUSTOMER)
        async with fake.pushing():
            await fake.pushes_settled()
    assert [d.status for d in fake.callback_deliveries] == [200]
