"""The kf message loop: :class:`Inbox` pulls what customers send to a WeCom app's 微信客服 accounts
(``sync_msg``) and hands each message to your handler once, in order per account, across every
process that shares its store.

A notification (the ``kf_msg_or_event`` callback) is recorded in the store and answered at once;
the pull happens in the background under the account's lease. Cursors move only after every
message of their page is done; done messages are marked, so a message WeChat hands out again is
skipped; replies carry a msgid derived from the message, so none is sent twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal

import anyio

from ._inbox_handler import handling
from ._inbox_loop import (
    Account,
    Engine,
    Handler,
    OnFailure,
    call_quietly,
    describe,
    log_failure,
    reply_msgid,
)
from ._inbox_news import news_of, open_kfid_of
from ._inbox_stores import InboxStore, MemoryInboxStore
from .clients import WeComClient
from .contents import Content
from .errors import ClientClosedError, OpenKfidError
from .kf_messages import KfMessage
from .models import SentMessage

__all__ = ["Inbox"]

logger: logging.Logger = logging.getLogger("wechat_kf.inbox")

#: The bound on recording a notification in a store that has no command timeout of its own (s).
_NOTIFY_BOUND = 5.0
#: A failed cycle is tried again after 1 s, 2 s, 4 s... at most this (s); a notification for the
#: account ends the wait at once (it may bring the callback token a 45009 was missing).
_MAX_RETRY_DELAY = 60.0
#: A store that cannot record news is reported once in this long (s), with how many more failed.
_WARN_EVERY = 10.0
#: Accounts whose news no pull settled are looked for this often, as a part of the lease (a
#: holder that died leaves its account pending: another process takes it over).
_SWEEPS_PER_LEASE = 2

Start = Literal["earliest", "latest"]


class Inbox:
    """The message loop of one :class:`~wechat_kf.WeComClient` and one :class:`InboxStore`
    (default: a new ``MemoryInboxStore``; a ``RedisInboxStore`` shares it across processes):
    ``await inbox.notify(event)`` in the callback route records the news and returns, and the
    account is pulled in the background from its stored cursor (``start="earliest"``: the 3-day
    backlog, ``"latest"``: from now, handing nothing older to the handler), ``limit`` messages a
    page, one puller per account across processes, at most ``max_concurrency`` accounts at a time
    here. ``handler(message)`` (async or plain) gets each message once, in order per account; if
    it raises it is tried again with backoff up to ``max_attempts`` times, then
    ``on_failure(message, error)`` (async or plain; default: an ERROR log) and the message is
    marked failed. ``poll_interval`` (seconds) also pulls every known account that often, for
    callbacks that never came. Keys are namespaced by the client's corpid; a client made with a
    ``token_provider`` has none: give ``namespace`` (the corpid its token is for). Runs inside
    ``async with`` (or until ``aclose()``), on asyncio or trio."""

    def __init__(
        self,
        client: WeComClient,
        handler: Callable[[KfMessage], Awaitable[None] | None],
        *,
        store: InboxStore | None = None,
        start: Start = "earliest",
        max_attempts: int = 3,
        on_failure: Callable[[KfMessage, Exception], Awaitable[None] | None] | None = None,
        max_concurrency: int = 4,
        poll_interval: float | None = None,
        limit: int = 1000,
        namespace: str | None = None,
    ) -> None:
        if not isinstance(client, WeComClient):
            raise TypeError(f"client must be a WeComClient, not {type(client).__name__}")
        if not callable(handler):
            raise TypeError("handler must be a function taking a KfMessage")
        if store is None:
            store = MemoryInboxStore()
        elif not isinstance(store, InboxStore):
            raise TypeError("store must implement the InboxStore protocol")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        _positive_int("max_attempts", max_attempts)
        if on_failure is not None and not callable(on_failure):
            raise TypeError("on_failure must be a function taking (message, error), or None")
        _positive_int("max_concurrency", max_concurrency)
        if poll_interval is not None and (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or not (math.isfinite(poll_interval) and poll_interval > 0)
        ):
            raise ValueError("poll_interval must be a positive number of seconds, or None")
        _positive_int("limit", limit)
        if limit > 1000:
            raise ValueError("limit must be 1..1000")
        self.client = client
        self.store = store
        self.namespace: str = _namespace(client, namespace)
        self.start: Start = start
        self.max_concurrency = max_concurrency
        self.poll_interval: float | None = None if poll_interval is None else float(poll_interval)
        handle: Handler = handler
        failed: OnFailure | None = on_failure
        self._engine = Engine(
            messages=client.messages,
            store=store,
            namespace=self.namespace,
            handler=handle,
            on_failure=failed,
            max_attempts=max_attempts,
            limit=limit,
            start=start,
            hooks=client.messages.hooks,
        )
        self._accounts: dict[str, Account] = {}
        self._state = "new"
        self._group: anyio.abc.TaskGroup | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        # Every task of ours runs in a cancel scope of its own, so that aclose() from any task
        # ends them without cancelling the body of the ``async with``.
        self._scopes: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None
        self._warned_at, self._unrecorded = -math.inf, 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Inbox:
        if self._state == "open":
            raise RuntimeError("the inbox is open already")
        if self._state != "new":
            raise ClientClosedError("the inbox is closed")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        self._state = "open"
        self._spawn(self._sweep)
        if self.poll_interval is not None:
            self._spawn(self._poll, self.poll_interval)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._state = "closed"
        for scope in list(self._scopes):
            scope.cancel()
        group, self._group = self._group, None
        try:
            if group is None:
                return None
            group.cancel_scope.cancel()
            # Only a cancellation is handed to the task group (it absorbs its own); anything
            # else the body raised goes on as it is, never wrapped in an ExceptionGroup.
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                return await group.__aexit__(exc_type, exc, tb)
            await group.__aexit__(None, None, None)
            return None
        finally:
            # A drain running in another task was cancelled above: wait until it let go.
            with anyio.CancelScope(shield=True):
                await self._idle_wait()

    async def aclose(self) -> None:
        """Close the inbox, from any task: every pull and handler in flight is cancelled (a
        message whose handler did not return stays unmarked, so it is handled again) and every
        lease let go; no task of the inbox outlives this call, and the ``async with`` body goes
        on undisturbed (its exit then finishes at once). Idempotent."""
        self._state = "closed"
        for scope in list(self._scopes):
            scope.cancel()
        await self._idle_wait()

    async def _idle_wait(self) -> None:
        if self._scopes:
            if self._idle is None or self._idle.is_set():
                self._idle = anyio.Event()
            await self._idle.wait()

    @property
    def closed(self) -> bool:
        """True once the inbox was closed."""
        return self._state == "closed"

    def _check_open(self) -> None:
        if self._state == "new":
            raise RuntimeError("open the inbox first: async with Inbox(...) as inbox")
        if self._state != "open":
            raise ClientClosedError("the inbox is closed")

    def _spawn(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        assert self._group is not None
        scope = anyio.CancelScope()
        self._scopes.add(scope)

        async def run() -> None:
            try:
                with scope:
                    await function(*args)
            finally:
                self._settled(scope)

        self._group.start_soon(run)

    def _settled(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)
        if not self._scopes and self._idle is not None:
            self._idle.set()

    # -- what the caller does ----------------------------------------------------------------

    async def notify(self, event: Any) -> None:
        """Record that ``event.open_kfid`` has news (a ``KfMsgOrEvent``, or anything with
        ``open_kfid`` and ``token``), with its callback ``token`` for the pulls of the next 10
        minutes, and return: the pull runs in the background. A store write only, bounded by
        the store's command timeout; when the store cannot be reached the pull is still
        scheduled here (a WARNING says so). Never raises for load; many notifications for one
        account make one more pull. An event of another corp than the client's is a
        ``ValueError``."""
        open_kfid, token, expires_at = news_of(event)
        corpid = getattr(event, "corpid", None)
        if isinstance(corpid, str) and corpid and self.client.corpid not in (None, corpid):
            # Pulls would ask this corp for another corp's account, failing until they give up.
            raise ValueError(f"the event is for corp {corpid!r}, this inbox's client is not")
        self._check_open()
        account = self._account(open_kfid)
        if token is not None:
            account.remember(token, expires_at)
        try:
            with anyio.fail_after(_NOTIFY_BOUND):
                await self.store.notify(self.namespace, open_kfid, token, expires_at)
            account.unrecorded = False
        except Exception as exc:
            account.unrecorded = True
            self._unrecorded += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY:  # once a burst: the store may be down
                logger.warning(
                    "inbox: could not record news of %s in the store (%s); pulling here "
                    "(%d notification(s) unrecorded since the last warning)",
                    open_kfid,
                    describe(exc),
                    self._unrecorded,
                )
                self._warned_at, self._unrecorded = now, 0
        self._schedule(open_kfid, wake=True)

    async def drain(self, open_kfid: str) -> int:
        """Pull ``open_kfid`` now: take its lease (waiting while another process holds it),
        pull until ``has_more`` is 0 (and again if news arrived meanwhile) and return how many
        messages this call handed to the handler. A failed pull raises (a ``RateLimitError``
        without a callback token, a ``TokenStoreError`` when the store cannot be reached); a
        failing handler does not (``on_failure``)."""
        open_kfid = open_kfid_of(open_kfid)
        self._check_open()
        if handling() is self._engine:
            # It would wait for a lease (or a slot) that this very handler's pull holds.
            raise RuntimeError("drain cannot be called from this inbox's own handler")
        account = self._account(open_kfid)
        assert self._limiter is not None
        handled: int | None = None
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                async with self._limiter:
                    handled = await self._engine.cycle(open_kfid, account, wait=True)
        finally:
            self._settled(scope)
        if handled is None:
            raise ClientClosedError("the inbox was closed while it drained")
        return handled

    async def reply(self, message: KfMessage, content: Content, index: int = 0) -> SentMessage:
        """Send ``content`` to the customer who sent ``message``, as reply number ``index`` to
        it, with a msgid derived from (message.msgid, index): skipped when its outbox mark says
        it was sent, marked after it was; if the mark was lost, WeChat refuses the repeated
        msgid (the refusal is raised), so a redelivered message is never answered twice."""
        if not isinstance(message, KfMessage):
            raise TypeError(f"message must be a KfMessage, not {type(message).__name__}")
        if not (message.msgid and message.open_kfid and message.external_userid):
            raise ValueError("the message has no msgid, open_kfid or customer to reply to")
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("index must be an int")
        if index < 0:
            raise ValueError("index must be >= 0")
        if not callable(getattr(content, "wecom_json", None)):
            raise TypeError(
                f"content must be a wechat_kf content (Text, Image...), not {content!r}"
            )
        open_kfid, msgid = message.open_kfid, reply_msgid(message.msgid, index)
        try:
            if await self.store.replied(self.namespace, open_kfid, msgid):
                return SentMessage(msgid)
        except Exception as exc:
            # The derived msgid still keeps WeChat from delivering a second copy.
            logger.warning("inbox: could not read the outbox (%s); sending", describe(exc))
        sent = await self.client.messages.send(
            open_kfid, message.external_userid, content, msgid=msgid
        )
        await call_quietly(
            "marking a reply sent", self.store.mark_replied(self.namespace, open_kfid, msgid)
        )
        return sent

    # -- the background ----------------------------------------------------------------------

    def _account(self, open_kfid: str) -> Account:
        account = self._accounts.get(open_kfid)
        if account is None:
            account = self._accounts[open_kfid] = Account()
        return account

    def _schedule(self, open_kfid: str, *, wake: bool) -> None:
        """Mark the account as having news and make sure a task works on it."""
        if self._state != "open":
            return
        account = self._account(open_kfid)
        if wake:
            account.gone = False  # news for it: WeChat may know it again
        elif account.gone:
            return
        account.dirty = True
        if wake and account.wake is not None:
            account.wake.set()
        if not account.running:
            account.running = True
            self._spawn(self._work, open_kfid, account)

    async def _work(self, open_kfid: str, account: Account) -> None:
        """Cycle the account while it has news; after a failure wait (1 s, 2 s... 60 s, or until
        a notification) and try again."""
        failures = 0
        try:
            while account.dirty:
                account.dirty = False
                try:
                    assert self._limiter is not None
                    async with self._limiter:
                        handled = await self._engine.cycle(open_kfid, account, wait=False)
                    if handled is None and account.unrecorded:
                        # Another process holds the account but may not know of our news.
                        account.unrecorded = not await call_quietly(
                            "recording news",
                            self.store.notify(self.namespace, open_kfid, None, None),
                        )
                    failures = 0
                except OpenKfidError as exc:
                    logger.error(  # deleted, or never one: retrying cannot help
                        "inbox: WeChat knows no 微信客服 account %s (%s); not pulled again "
                        "until a notification for it",
                        open_kfid,
                        exc.errcode,
                    )
                    account.gone = True
                    return
                except Exception as exc:
                    failures += 1
                    delay = min(2.0 ** (failures - 1), _MAX_RETRY_DELAY)
                    log_failure(open_kfid, exc, delay)
                    account.dirty = True
                    account.wake = anyio.Event()
                    with anyio.move_on_after(delay):
                        await account.wake.wait()
        finally:
            account.running = False

    async def _sweep(self) -> None:
        """Take up the accounts whose news no pull settled: left by a process that died after
        recording it, or by a holder that died mid-pull (once its lease runs out)."""
        interval = max(self.store.lease / _SWEEPS_PER_LEASE, 0.05)
        failing = False
        while True:
            try:
                pending = await self.store.pending(self.namespace)
            except Exception as exc:
                if not failing:
                    logger.warning("inbox: could not list pending accounts (%s)", describe(exc))
                failing = True
            else:
                failing = False
                for open_kfid in pending:
                    if not _valid(open_kfid):
                        continue  # not an account's: a hand-written or foreign entry
                    if not self._account(open_kfid).running:
                        self._schedule(open_kfid, wake=False)
            await anyio.sleep(interval)

    async def _poll(self, interval: float) -> None:
        """Pull every known account (notified, drained or found pending) every ``interval``."""
        while True:
            await anyio.sleep(interval)
            for open_kfid, account in list(self._accounts.items()):
                if not account.running:
                    self._schedule(open_kfid, wake=False)

    def __repr__(self) -> str:
        return (
            f"Inbox(namespace={getattr(self, 'namespace', None)!r}, "
            f"store={getattr(self, 'store', None)!r}, state={getattr(self, '_state', None)!r})"
        )


def _valid(open_kfid: str) -> bool:
    try:
        open_kfid_of(open_kfid)
    except (TypeError, ValueError):
        return False
    return open_kfid.isprintable()


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if value < 1:
        raise ValueError(f"{name} must be >= 1")


def _namespace(client: WeComClient, namespace: object) -> str:
    if namespace is None:
        if not client.corpid:
            raise ValueError(
                "this client has no corpid (it was made with a token_provider): "
                "give namespace= (the corpid its token is for)"
            )
        namespace = client.corpid
    if not isinstance(namespace, str):
        raise TypeError("namespace must be a str")
    if not namespace or any(ch.isspace() for ch in namespace):
        raise ValueError("namespace must be non-empty and contain no whitespace")
    return namespace
