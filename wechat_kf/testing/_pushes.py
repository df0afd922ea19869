"""What the fake pushes to callback URLs, the way WeChat does: the plaintext events, sealed with
:class:`wechat_kf.callbacks.CallbackCrypto` in the envelope each platform posts, delivered to
a URL (httpx) or an ASGI app (in-process), retried until a 200 or the fourth delivery.

Pushes are queued by the fake's sync code (a customer speaks, the clock passes a ticket mark)
and delivered by async code: :meth:`Outbox.drain` now, or :meth:`Outbox.run` in the background
of ``FakeWeChat.pushing()``. Nothing here knows FakeWeChat or its World."""

from __future__ import annotations

import re
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import httpx
import sniffio

if TYPE_CHECKING:
    from ..callbacks import CallbackCrypto

__all__ = [
    "CallbackDelivery",
    "CallbackTarget",
    "Outbox",
    "PendingPush",
    "kf_msg_or_event_xml",
    "suite_ticket_xml",
    "verify_ticket_xml",
]

AsgiCallable: TypeAlias = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]
#: Which callback a push goes to: ("corp", corpid), ("component", appid) or ("suite", suite_id).
Key: TypeAlias = tuple[str, str]

#: WeChat delivers a push at most this many times ("three retries in all").
MAX_DELIVERIES = 4
_ENCRYPT = re.compile(r"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]*)\]\]></Encrypt>")
#: How often an idle background loop looks at the queue, for pushes queued from another thread
#: (a fake served over loopback by a server thread), whose wake-ups cannot cross threads.
_POLL = 0.02


def _cdata(value: str) -> str:
    # "]]>" would close the section early: split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def kf_msg_or_event_xml(corpid: str, open_kfid: str, token: str, create_time: int) -> str:
    """WeCom's kf_msg_or_event push: news for ``open_kfid``, with the sync_msg token."""
    return (
        f"<xml><ToUserName>{_cdata(corpid)}</ToUserName><CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType><Event>{_cdata('kf_msg_or_event')}</Event>"
        f"<Token>{_cdata(token)}</Token><OpenKfId>{_cdata(open_kfid)}</OpenKfId></xml>"
    )


def verify_ticket_xml(component_appid: str, ticket: str, create_time: int) -> str:
    """The open platform's component_verify_ticket push."""
    return (
        f"<xml><AppId>{_cdata(component_appid)}</AppId><CreateTime>{create_time}</CreateTime>"
        f"<InfoType>{_cdata('component_verify_ticket')}</InfoType>"
        f"<ComponentVerifyTicket>{_cdata(ticket)}</ComponentVerifyTicket></xml>"
    )


def suite_ticket_xml(suite_id: str, ticket: str, create_time: int) -> str:
    """The WeCom service provider's suite_ticket push (TimeStamp, not CreateTime, as sent)."""
    return (
        f"<xml><SuiteId>{_cdata(suite_id)}</SuiteId><InfoType>{_cdata('suite_ticket')}</InfoType>"
        f"<TimeStamp>{create_time}</TimeStamp><SuiteTicket>{_cdata(ticket)}</SuiteTicket></xml>"
    )


@attrs.frozen
class CallbackTarget:
    """Where one callback's pushes go: a URL or an ASGI app (POSTed at ``path``), and the crypto
    configured for it (its token, key and receive id)."""

    target: str | AsgiCallable
    crypto: CallbackCrypto
    path: str = "/"

    def outer(self, key: Key, encrypt: str) -> str:
        """The XML posted around ``encrypt``: WeCom names the receiver in ToUserName with an
        empty AgentID, the open platform in AppId."""
        if key[0] == "component":
            return f"<xml><AppId>{_cdata(key[1])}</AppId><Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
        return (
            f"<xml><ToUserName>{_cdata(key[1])}</ToUserName><AgentID>{_cdata('')}</AgentID>"
            f"<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
        )


@attrs.frozen
class PendingPush:
    """A push waiting to be delivered: its callback, its kind (``kf_msg_or_event``,
    ``component_verify_ticket``, ``suite_ticket``), the plaintext XML, and how many deliveries
    it already had (a push put back in the queue when its delivery was stopped keeps them)."""

    key: Key
    kind: str
    plaintext: str
    attempts: int = 0


@attrs.frozen
class CallbackDelivery:
    """One delivery attempt of a push: its kind, the receive id, which attempt (1..4), the HTTP
    status answered (None when none came) or the error (``"timeout"`` past the callback timeout,
    else the exception's type and text)."""

    kind: str
    receive_id: str
    attempt: int
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the callback answered HTTP 200 (WeChat's only success)."""
        return self.status == 200


@attrs.define
class Outbox:
    """The pushes waiting for delivery, the callbacks they go to, and every delivery made.
    ``timeout`` (real seconds) is how long a delivery waits for its answer, ``max_deliveries``
    how many times a push is tried, ``retry_delay`` (real seconds) the wait between tries."""

    targets: dict[Key, CallbackTarget] = attrs.Factory(dict)
    queue: deque[PendingPush] = attrs.Factory(deque)
    deliveries: list[CallbackDelivery] = attrs.Factory(list)
    timeout: float = 5.0
    max_deliveries: int = MAX_DELIVERIES
    retry_delay: float = 0.0
    in_flight: int = 0
    #: True while ``FakeWeChat.pushing()`` is entered (set before its task group starts).
    background: bool = False
    _wake: anyio.Event | None = attrs.field(default=None, repr=False)
    _idle: anyio.Event | None = attrs.field(default=None, repr=False)
    _loop_thread: int | None = attrs.field(default=None, repr=False)

    def post(self, key: Key, kind: str, plaintext: str) -> bool:
        """Queue a push for the callback ``key``; False (nothing queued) when it has none."""
        if key not in self.targets:
            return False
        self.queue.append(PendingPush(key, kind, plaintext))
        if self._wake is not None and threading.get_ident() == self._loop_thread:
            self._wake.set()
        return True

    @property
    def settled(self) -> bool:
        """True when nothing waits and nothing is being delivered."""
        return not self.queue and not self.in_flight

    async def drain(self) -> None:
        """Deliver every queued push, those queued meanwhile included, one after another."""
        while self.queue:
            push = self.queue.popleft()
            self.in_flight += 1
            try:
                await self._deliver(push)
            finally:
                self.in_flight -= 1
                if self.settled and self._idle is not None:
                    self._idle.set()

    async def wait_settled(self) -> None:
        """Wait until nothing waits and nothing is being delivered (by :meth:`run`)."""
        while not self.settled:
            self._idle = anyio.Event()
            with anyio.move_on_after(_POLL):  # a push queued from another thread wakes no one
                await self._idle.wait()

    @property
    def running(self) -> bool:
        """True while :meth:`run` delivers in the background."""
        return self._loop_thread is not None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver pushes as they are queued, until cancelled."""
        if self.running:
            raise RuntimeError("the fake already delivers its pushes in the background")
        self._loop_thread = threading.get_ident()
        task_status.started()
        try:
            while True:
                self._wake = anyio.Event()
                await self.drain()
                with anyio.move_on_after(_POLL):
                    await self._wake.wait()
        finally:
            self._wake = self._loop_thread = None

    async def _deliver(self, push: PendingPush) -> None:
        """Deliver ``push`` until a 200 or its last attempt. Stopped on the way (``pushing()``
        left, a deadline around ``deliver_pushes()``), it goes back to the front of the queue
        with the attempts recorded so far: the attempt cut short got no answer, so it is
        neither recorded nor counted."""
        target = self.targets.get(push.key)
        if target is None:  # the callback was removed since
            return
        sealed = target.crypto.seal(push.plaintext)
        encrypt = _ENCRYPT.search(sealed.body)
        assert encrypt is not None, "CallbackCrypto.seal changed its envelope"
        body = target.outer(push.key, encrypt.group(1)).encode()
        params = {
            "msg_signature": sealed.msg_signature,
            "timestamp": sealed.timestamp,
            "nonce": sealed.nonce,
        }
        made = push.attempts
        try:
            for attempt in range(made + 1, self.max_deliveries + 1):
                status, error = await self._post(target, body, params)
                self.deliveries.append(
                    CallbackDelivery(push.kind, target.crypto.receive_id, attempt, status, error)
                )
                made = attempt
                if status == 200:
                    return
                if attempt < self.max_deliveries and self.retry_delay > 0:
                    await anyio.sleep(self.retry_delay)
        except anyio.get_cancelled_exc_class():
            self.queue.appendleft(attrs.evolve(push, attempts=made))
            raise

    async def _post(
        self, target: CallbackTarget, body: bytes, params: dict[str, str]
    ) -> tuple[int | None, str | None]:
        if isinstance(target.target, str):
            transport: httpx.AsyncBaseTransport | None = None
            url = target.target
        else:
            transport = httpx.ASGITransport(app=target.target)
            url = "http://callback.test" + target.path
        try:
            # The deadline is anyio's, not only httpx's: an ASGI app in-process has no socket
            # for httpx's timeouts to act on.
            with anyio.fail_after(self.timeout):
                async with (
                    httpx.AsyncClient(
                        transport=transport, timeout=self.timeout, follow_redirects=False
                    ) as client,
                    client.stream(
                        "POST",
                        url,
                        params=params,
                        content=body,
                        headers={"content-type": "text/xml"},
                    ) as response,
                ):
                    # Only the status counts (a 200 is WeChat's one success): the body is never
                    # read, so an answer that does not end costs nothing. (httpx's ASGI
                    # transport hands over an in-process app's body whole, as the app sent it.)
                    return response.status_code, None
        except TimeoutError:
            return None, "timeout"
        except anyio.get_cancelled_exc_class() as error:
            if _task_cancelled():
                raise
            # A cancelled scope around the delivery (pushing() left, the caller's deadline)
            # raises here: the delivery stops.
            await anyio.lowlevel.checkpoint_if_cancelled()
            # Else the app let out a cancellation of its own (its own cancelled wait), while nothing
            # cancelled the delivery: the receiver failed, like any crash.
            return None, f"{type(error).__name__}: {error}"
        except Exception as error:  # the receiver failed: recorded, then retried like WeChat
            return None, f"{type(error).__name__}: {error}"


def _task_cancelled() -> bool:
    """On asyncio, whether the task was asked to stop: ``task.cancel()`` from outside anyio
    (``asyncio.wait_for``, ``asyncio.timeout``) is a real cancellation too, though no anyio
    scope is cancelled. (trio has no cancellation but its scopes'; Python 3.10 does not count
    a task's cancellations, so there only the anyio scopes are seen.)"""
    if sys.version_info < (3, 11) or sniffio.current_async_library() != "asyncio":
        return False
    # Running on asyncio, so it is loaded; read from sys.modules, never imported (anyio only).
    task = sys.modules["asyncio"].current_task()
    return task is not None and task.cancelling() > 0
