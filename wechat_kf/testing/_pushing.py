"""FakeWeChat's callbacks: where it pushes (``set_callback``, ``set_platform_callback``), and
when the queued pushes are delivered (``pushing()`` in the background, or ``deliver_pushes()``
now). A mixin over the World's outbox (``_pushes``).

Sync methods (``customer_says``, ``advance``, ``push_verify_ticket``...) only queue pushes, so
they stay sync; delivery is async and bounded by a task group, so no task outlives the test::

    fake.set_callback(app, token=TOKEN, encoding_aes_key=KEY)
    async with fake.pushing():
        fake.customer_says(open_kfid, "wmCUSTOMER", "你好")
        await fake.pushes_settled()
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio

from ._pushes import AsgiCallable, CallbackDelivery, CallbackTarget, Key
from ._state import World

__all__ = ["Pushing"]


class Pushing:
    """The callback methods of FakeWeChat (which sets ``world``)."""

    world: World

    def set_callback(
        self,
        target: str | AsgiCallable,
        *,
        token: str,
        encoding_aes_key: str,
        corpid: str | None = None,
        receive_id: str | None = None,
        path: str = "/",
    ) -> None:
        """From now on, push the corp's ``kf_msg_or_event`` events to ``target``, as WeChat
        does: a URL (POSTed with httpx; loopback in tests) or an ASGI app (called in-process at
        ``path``), with ``?msg_signature=&timestamp=&nonce=`` and the encrypted XML, sealed with
        ``CallbackCrypto(token, encoding_aes_key, receive_id)`` (the receive id defaults to the
        corpid, which defaults to the only corp registered). Pushes are queued; ``pushing()`` or
        ``deliver_pushes()`` delivers them. Needs the ``callbacks`` extra."""
        if corpid is None:
            if len(self.world.corps) != 1:
                raise ValueError("name the corpid: the fake has no corp or more than one")
            corpid = next(iter(self.world.corps))
        elif corpid not in self.world.corps:
            raise ValueError(f"unknown corp {corpid!r}: register_wecom_app first")
        receive_id = corpid if receive_id is None else receive_id
        self._set_target(("corp", corpid), target, token, encoding_aes_key, receive_id, path)

    def set_platform_callback(
        self,
        platform_id: str,
        target: str | AsgiCallable,
        *,
        token: str,
        encoding_aes_key: str,
        path: str = "/",
    ) -> None:
        """From now on, push a platform's tickets to ``target`` (a URL or an ASGI app, as for
        :meth:`set_callback`): ``platform_id`` is an open platform's component appid (its
        ``component_verify_ticket``) or a service provider's suite id (its ``suite_ticket``),
        which is also the receive id. A new ticket is pushed each time the fake's clock passes
        a 10-minute mark (:meth:`advance`) and each time ``push_verify_ticket`` /
        ``push_suite_ticket`` is called."""
        if platform_id in self.world.open_platforms:
            key: Key = ("component", platform_id)
        elif platform_id in self.world.service_providers:
            key = ("suite", platform_id)
        else:
            raise ValueError(f"{platform_id!r} is neither a registered open platform nor a suite")
        self._set_target(key, target, token, encoding_aes_key, platform_id, path)

    def remove_callbacks(self) -> None:
        """Push nothing any more (what is queued is dropped when its turn comes)."""
        self.world.outbox.targets.clear()

    @property
    def callback_deliveries(self) -> list[CallbackDelivery]:
        """Every delivery attempt made so far, in order: its kind, receive id, attempt number
        (1..4) and the status answered or the error."""
        return list(self.world.outbox.deliveries)

    @property
    def callback_timeout(self) -> float:
        """How many real seconds a delivery waits for the callback's answer before it counts
        as failed and is retried (WeChat: 5)."""
        return self.world.outbox.timeout

    @callback_timeout.setter
    def callback_timeout(self, seconds: float) -> None:
        self.world.outbox.timeout = seconds

    @property
    def pending_pushes(self) -> int:
        """How many pushes wait for delivery or are being delivered."""
        outbox = self.world.outbox
        return len(outbox.queue) + outbox.in_flight

    async def deliver_pushes(self) -> None:
        """Deliver every queued push now (and those queued meanwhile), one after another, each
        retried until the callback answers 200 or it was delivered 4 times; returns when the
        queue is empty. Needs no ``pushing()``."""
        await self.world.outbox.drain()

    @contextlib.asynccontextmanager
    async def pushing(self) -> AsyncIterator[None]:
        """Inside the ``async with``, queued pushes are delivered in the background as they
        come, in order, like WeChat does; leaving it stops the delivery (what is still queued
        stays queued, and so does a push whose delivery was under way, at the front of the
        queue with the attempts it had) and leaves no task behind. One at a time per fake:
        entering it again inside it raises ``RuntimeError``. An exception of the body leaves it
        as it was raised, not in an ExceptionGroup. Runs on asyncio and trio."""
        outbox = self.world.outbox
        if outbox.background:
            raise RuntimeError(
                "fake.pushing() is already active: one pushing() delivers every push of the "
                "fake, so do not enter it again inside it"
            )
        outbox.background = True
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                await group.start(outbox.run)
                try:
                    yield
                except BaseException as error:
                    # Raised by the body (a failed assertion, a cancellation): re-raised as it
                    # is once the delivery stopped, never wrapped in an ExceptionGroup.
                    failure = error
                finally:
                    group.cancel_scope.cancel()
            if failure is not None:
                raise failure
        finally:
            failure = None  # no cycle through this frame's traceback
            outbox.background = False

    async def pushes_settled(self) -> None:
        """Wait until every queued push has been delivered (retries included). Inside
        ``pushing()`` it waits for the background delivery; outside, it delivers them itself.
        Wrap it in ``anyio.fail_after`` in tests: a callback that never answers takes
        ``callback_timeout`` per delivery."""
        outbox = self.world.outbox
        if not outbox.running:
            await outbox.drain()
            return
        await outbox.wait_settled()

    def _set_target(
        self,
        key: Key,
        target: str | AsgiCallable,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        path: str,
    ) -> None:
        # Imported here: the fake works without the callbacks extra until a callback is set.
        from ..callbacks import CallbackCrypto

        if not isinstance(target, str) and not callable(target):
            raise TypeError("target must be a URL or an ASGI application")
        crypto = CallbackCrypto(token, encoding_aes_key, receive_id)
        self.world.outbox.targets[key] = CallbackTarget(target, crypto, path)
