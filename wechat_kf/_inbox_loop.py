"""The inbox's engine: one cycle of an account under its lease (pull, settle each message, release
against the generation, pull again while news came), the handler's retries, and what the hooks
hear. :mod:`wechat_kf.inbox` schedules the cycles; this module does one."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import anyio
import attrs

from ._inbox_handler import asyncio_task, call_handler, handling_for
from ._inbox_lease import Lease, LeaseLost, call_quietly, describe, log_failure
from ._inbox_stores import InboxStore, PullStart
from .clients import DEFAULT_RETRY_BACKOFF
from .errors import APIError, InvalidResponseError, RateLimitError
from .hooks import HandledMessage, Hooks, InboxPull
from .kf_messages import KfMessage
from .models import SyncPage
from .wecom import Messages

__all__ = [
    "Account",
    "Engine",
    "call_quietly",
    "describe",
    "log_failure",
    "reply_msgid",
]

logger = logging.getLogger("wechat_kf.inbox")

#: sync_msg's answer to a callback token it does not accept (expired, or another account's).
_INVALID_SYNC_TOKEN = 95007
#: A token is not used in its last seconds: the request may reach WeChat after it expired.
_TOKEN_MARGIN = 10.0
#: The handler's retries wait 0.5 s, 1 s, 2 s... at most this (times the clients' retry backoff).
_MAX_HANDLER_DELAY = 30.0
#: A mark the store did not take is written again after 0.1 s, 0.2 s... up to this, then the
#: pull fails (and the next one writes it before anything else).
_MARK_RETRY, _MAX_MARK_RETRY = 0.1, 3.2
#: How long a cancelled or failed holder may take to let its lease go (s): it runs out anyway.
_RELEASE_GRACE = 0.5
#: How long a cancelled pull may take to write the marks of handlers that returned (s).
_RESCUE_GRACE = 2.0
#: How long ``drain`` waits between attempts to take a held lease (s): from the first to the last.
_LEASE_POLL = (0.02, 0.5)

Handler = Callable[[KfMessage], Any]
OnFailure = Callable[[KfMessage, Exception], Any]


def reply_msgid(msgid: str, index: int) -> str:
    """The msgid of reply ``index`` to the message ``msgid``: 32 hex characters, the same in every
    process and every time, so WeChat refuses a second copy even when the outbox mark was lost."""
    seed = f"wechat_kf.reply\x00{msgid}\x00{index}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(seed)
    return digest.hexdigest()[:32]


#: Empty pages in a row, each with has_more, after which a pull stops and backs off.
MAX_EMPTY_PAGES = 100
SYNC_PATH = "/cgi-bin/kf/sync_msg"


@attrs.define(eq=False)
class Account:
    """What this process knows of one account: whether news arrived since its last pull started
    (``dirty``), whether a task works on it (``running``), the latest callback token it was given
    (kept here too, for when the store could not take it), the last token WeChat refused (not
    offered again, wherever it comes from), whether that notification failed to reach the store
    (``unrecorded``), and the event that ends a backoff early."""

    dirty: bool = False
    running: bool = False
    unrecorded: bool = False
    #: WeChat said the account does not exist (95000/95004): pulled again only when notified.
    gone: bool = False
    token: str | None = attrs.field(default=None, repr=False)
    token_expires_at: float = 0.0
    refused: str | None = attrs.field(default=None, repr=False)
    wake: anyio.Event | None = None

    def remember(self, token: str, expires_at: float) -> None:
        if expires_at >= self.token_expires_at:
            self.token, self.token_expires_at = token, expires_at


@attrs.define
class Engine:
    """Pulls accounts for one inbox: the client's messages, the store and its namespace, the
    handler and what to do when it fails, and the settings that shape a pull."""

    messages: Messages
    store: InboxStore
    namespace: str
    handler: Handler
    on_failure: OnFailure | None
    max_attempts: int
    limit: int
    start: str
    hooks: Hooks
    #: open_kfid -> the msgids whose handler returned but whose mark the store has not taken yet
    #: (with their status): written before anything else is handed over, never handed again.
    unwritten: dict[str, dict[str, str]] = attrs.Factory(dict)

    # -- one cycle under the lease -------------------------------------------------------------

    async def cycle(self, open_kfid: str, account: Account, *, wait: bool) -> int | None:
        """Take the account's lease (``wait``: until it is free), pull until ``has_more`` is 0,
        and again while news arrived meanwhile; return how many messages went to the handler, or
        None when another holder has the lease (``wait=False``). A lease lost midway ends the
        cycle quietly: the new holder pulls on."""
        lease = Lease(self.store, self.namespace, open_kfid, secrets.token_hex(16), owned=not wait)
        start = await self._acquire(lease, wait=wait)
        if start is None:
            return None
        handled = 0
        released = False
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(lease.keep, group.cancel_scope)
                try:
                    while True:
                        account.dirty = False
                        handled += await self._pull(lease, start, account)
                        since = time.monotonic()
                        following = await self.store.release(
                            self.namespace, open_kfid, lease.owner, start.generation
                        )
                        if following is None:
                            released = True
                            break
                        lease.stamp(since)  # renewed with it
                        start = following  # news arrived while we pulled: pull it before leaving
                except LeaseLost:
                    lease.lost = True
                except Exception as exc:
                    failure = exc  # raised below: the task group would wrap it in a group
                finally:
                    group.cancel_scope.cancel()
        finally:
            if not released and not lease.lost:
                await self._let_go(open_kfid, lease.owner)
        if failure is not None:
            raise failure
        return handled

    async def _acquire(self, lease: Lease, *, wait: bool) -> PullStart | None:
        delay, longest = _LEASE_POLL
        while True:
            since = time.monotonic()
            start = await self.store.acquire(self.namespace, lease.open_kfid, lease.owner)
            if start is not None:
                lease.stamp(since)
                return start
            if not wait:
                return None
            await anyio.sleep(delay)
            delay = min(delay * 2, longest)

    async def _let_go(self, open_kfid: str, owner: str) -> None:
        # Shielded, so a cancelled holder still frees the account at once; bounded, so a store
        # that does not answer keeps no one waiting (the lease runs out by itself then).
        with anyio.move_on_after(_RELEASE_GRACE, shield=True):
            try:
                await self.store.release(self.namespace, open_kfid, owner, None)
            except Exception as exc:
                logger.warning("inbox: could not release %s (%s)", open_kfid, describe(exc))

    # -- one pull: pages until has_more is 0 ---------------------------------------------------

    async def _pull(self, lease: Lease, start: PullStart, account: Account) -> int:
        open_kfid = lease.open_kfid
        began = time.perf_counter()
        pages = received = handled = 0
        token = self._token(start, account)
        with_token = token is not None
        outcome, error = "failed", None
        cursor = start.cursor
        # "latest" with nothing stored: read to the end, handing nothing to the handler.
        skipping = cursor is None and self.start == "latest"
        empty = 0
        try:
            while True:
                page, token = await self._sync(open_kfid, cursor, token, account)
                pages += 1
                received += len(page.messages)
                empty = empty + 1 if page.has_more and not page.messages else 0
                following = page.next_cursor or cursor
                if skipping:
                    if not page.has_more:
                        await self._commit(lease, following)
                else:
                    handled += await self._settle(lease, page.messages, following)
                cursor = following
                if not page.has_more:
                    outcome = "ok"
                    return handled
                if empty >= MAX_EMPTY_PAGES:
                    # Empty pages without end would hold the lease for ever: stop, back off.
                    raise InvalidResponseError(
                        f"{empty} empty pages in a row, each saying has_more", path=SYNC_PATH
                    )
        except LeaseLost:
            outcome = "lease_lost"
            raise
        except RateLimitError as exc:
            outcome, error = "rate_limited", type(exc).__name__
            raise
        except anyio.get_cancelled_exc_class():
            outcome = "lease_lost" if lease.lost else "cancelled"
            raise
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            record = InboxPull(
                open_kfid=open_kfid,
                pages=pages,
                messages=received,
                handled=handled,
                with_token=with_token,
                duration=time.perf_counter() - began,
                outcome=outcome,
                error=error,
            )
            self.hooks.inbox_pull(record)

    def _token(self, start: PullStart, account: Account) -> str | None:
        """The callback token with the longest validity left, if any is still valid."""
        now = time.time()
        best: tuple[float, str] | None = None
        if start.token and start.token_expires_at is not None and start.token != account.refused:
            best = (start.token_expires_at, start.token)
        if account.token and (best is None or account.token_expires_at > best[0]):
            best = (account.token_expires_at, account.token)
        if best is None or best[0] - _TOKEN_MARGIN <= now:
            return None
        return best[1]

    async def _sync(
        self, open_kfid: str, cursor: str | None, token: str | None, account: Account
    ) -> tuple[SyncPage, str | None]:
        try:
            page = await self.messages.sync(open_kfid, cursor=cursor, token=token, limit=self.limit)
        except APIError as exc:
            if token is None or exc.errcode != _INVALID_SYNC_TOKEN:
                raise
            # WeChat no longer takes it (its clock, or another account's token): pull without,
            # and never offer it again (the store may keep it until it expires).
            account.refused = token
            if account.token == token:
                account.token, account.token_expires_at = None, 0.0
            page = await self.messages.sync(open_kfid, cursor=cursor, token=None, limit=self.limit)
            return page, None
        return page, token

    async def _settle(self, lease: Lease, messages: Sequence[KfMessage], cursor: str | None) -> int:
        """Hand the page's unmarked messages to the handler in order, marking each as it settles;
        the last mark carries the page's cursor (or, with nothing to hand over, the cursor goes
        alone). Before each handler call the lease must be known to be ours: past its trusted
        time it is renewed first (the pull stops if it is gone) and the marks looked at again.
        Returns how many were handed over."""
        open_kfid = lease.open_kfid
        await self._commit(lease, None)  # the marks a store hiccup kept back, first
        ids = list(dict.fromkeys(m.msgid for m in messages if m.msgid))
        seen = await self.store.marked(self.namespace, open_kfid, ids) if ids else set()
        todo: list[KfMessage] = []
        for message in messages:
            if message.msgid:
                if message.msgid in seen or message.msgid in self.unwritten.get(open_kfid, ()):
                    continue  # done already: by this process or another, from any cursor
                seen.add(message.msgid)
            todo.append(message)
        with handling_for(self):  # for the handlers: drain() knows it is called from one
            return await self._hand_over(lease, todo, cursor, asyncio_task())

    async def _hand_over(
        self, lease: Lease, todo: list[KfMessage], cursor: str | None, task: Any
    ) -> int:
        try:
            return await self._hand_over_each(lease, todo, cursor, task)
        except anyio.get_cancelled_exc_class():
            # Closing, or cancelled: the marks of handlers that returned are still written
            # (bounded), or their messages would be handled again though no process died.
            marks = dict(self.unwritten.get(lease.open_kfid, {}))
            with anyio.move_on_after(_RESCUE_GRACE, shield=True):
                if marks and await call_quietly(
                    "writing marks",
                    self.store.commit(self.namespace, lease.open_kfid, lease.owner, marks, None),
                ):
                    for msgid in marks:
                        self.unwritten.get(lease.open_kfid, {}).pop(msgid, None)
            raise

    async def _hand_over_each(
        self, lease: Lease, todo: list[KfMessage], cursor: str | None, task: Any
    ) -> int:
        open_kfid = lease.open_kfid
        handled = 0
        with_cursor = False
        done: set[str] = set()
        async with self._early_marks(open_kfid, len(todo)) as early:
            for index, message in enumerate(todo):
                if not lease.valid:
                    if not await lease.renew():
                        raise LeaseLost(open_kfid)
                    rest = [m.msgid for m in todo[index:] if m.msgid]
                    done = (
                        await self.store.marked(self.namespace, open_kfid, rest) if rest else set()
                    )
                if message.msgid in done:
                    continue  # another holder settled it while this one could not tell
                status = await self._handle(lease, message, task)
                handled += 1
                with_cursor = index == len(todo) - 1
                if message.msgid:
                    self.unwritten.setdefault(open_kfid, {})[message.msgid] = status
                if with_cursor:
                    await self._commit(lease, cursor)
                elif not message.msgid:
                    continue
                # A mark sent early is written again, for sure, by the page's commit.
                elif early is None or not await early.write(message.msgid, status):
                    await self._commit(lease, None)
        if not with_cursor:
            await self._commit(lease, cursor)
        return handled

    def _early_marks(self, open_kfid: str, count: int) -> AbstractAsyncContextManager[Any]:
        """The store's early marks for a page of ``count`` messages to hand over (see
        ``InboxStore``), or None: then each mark is committed before the next handler."""
        # Looked up on the class: a proxy answering any attribute does not offer it by accident.
        if count < 2 or not callable(getattr(type(self.store), "open_marks", None)):
            return contextlib.nullcontext(None)
        opened = self.store.open_marks(self.namespace, open_kfid)  # type: ignore[attr-defined]
        return cast("AbstractAsyncContextManager[Any]", opened)

    async def _commit(self, lease: Lease, cursor: str | None) -> None:
        """Write the account's unwritten marks, with ``cursor`` if given, in one commit; tried
        again with backoff while the lease is kept (a store hiccup must not hand a message whose
        handler returned to the handler again), then raised: the next pull writes them first."""
        ns, open_kfid = self.namespace, lease.open_kfid
        marks = self.unwritten.get(open_kfid, {})
        if not marks and cursor is None:
            return
        delay = _MARK_RETRY
        while True:
            batch = dict(marks)
            try:
                committed = await self.store.commit(ns, open_kfid, lease.owner, batch, cursor)
                break
            except Exception:
                if delay > _MAX_MARK_RETRY or lease.lost:
                    raise
                await anyio.sleep(delay * DEFAULT_RETRY_BACKOFF.get())
                delay *= 2
        for msgid in batch:
            marks.pop(msgid, None)  # written, whoever holds the lease now
        if not marks:
            self.unwritten.pop(open_kfid, None)
        if not committed and cursor is not None:
            raise LeaseLost(open_kfid)

    # -- one message ---------------------------------------------------------------------------

    async def _handle(self, lease: Lease, message: KfMessage, task: Any) -> str:
        """Run the handler until it returns ("done") or has raised ``max_attempts`` times
        ("failed", after ``on_failure``). A cancellation goes straight through: the message is
        then left unmarked."""
        open_kfid = lease.open_kfid
        began = time.perf_counter()
        attempts = 0
        outcome, error = "cancelled", None
        watched = self.hooks.watching_messages()
        try:
            while True:
                attempts += 1
                try:
                    await call_handler(self.handler, message, task, owned=lease.owned)
                except Exception as exc:
                    error = type(exc).__name__
                    if attempts >= self.max_attempts:
                        await self._failed(open_kfid, message, exc, attempts)
                        outcome = "failed"
                        return "failed"
                    delay = min(0.5 * 2 ** (attempts - 1), _MAX_HANDLER_DELAY)
                    await anyio.sleep(delay * DEFAULT_RETRY_BACKOFF.get())
                else:
                    outcome = "done"
                    return "done"
        finally:
            if watched:
                record = HandledMessage(
                    open_kfid=open_kfid,
                    msgid=message.msgid,
                    msgtype=message.msgtype,
                    attempts=attempts,
                    duration=time.perf_counter() - began,
                    outcome=outcome,
                    error=error,
                )
                self.hooks.inbox_message(record)

    async def _failed(
        self, open_kfid: str, message: KfMessage, error: Exception, attempts: int
    ) -> None:
        if self.on_failure is None:
            logger.error(
                "inbox: the handler failed %d times on msgid=%s (msgtype=%s, open_kfid=%s); "
                "marked failed: %s",
                attempts,
                message.msgid,
                message.msgtype,
                open_kfid,
                describe(error),
            )
            return
        try:
            result = self.on_failure(message, error)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            logger.error(
                "inbox: on_failure raised on msgid=%s (%s); marked failed anyway",
                message.msgid,
                describe(exc),
            )
