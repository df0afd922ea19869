"""What the inbox keeps, and where: the :class:`InboxStore` protocol (a SQL store of yours can
implement it), the :class:`PullStart` a lease hands its holder, and :class:`MemoryInboxStore`, the
default. ``wechat_kf.stores`` re-exports them beside the token stores.

Everything is kept per account: a namespace (the corpid) and an open_kfid. For each, a store holds
the sync cursor; the msgids whose handler returned ("done") or gave up ("failed"), for 4 days
(WeChat keeps messages 3, so any message it can hand out again is still marked); the msgids of the
replies sent (the outbox); a lease, so one process pulls the account at a time; and the news: a
generation counter that every notification raises, with the latest callback token. The holder
reads the generation when it starts and releases only if it is unchanged, so news that arrives
during a pull, from any process, is pulled before the lease is let go.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ._secrets import hide

__all__ = [
    "CURSOR_TTL",
    "DEFAULT_LEASE",
    "MARK_TTL",
    "NEWS_TTL",
    "InboxStore",
    "MemoryInboxStore",
    "PullStart",
]

#: How long a done-mark and an outbox mark are kept (s): a day longer than WeChat keeps messages.
MARK_TTL = 4 * 86400
#: How long a cursor is kept after its last write (s); an account silent for longer starts over
#: (``start``), and its marks say what was handled already.
CURSOR_TTL = 30 * 86400
#: How long the news of an account (generation, token) is kept after the last notification (s).
NEWS_TTL = 4 * 86400
#: How long a lease lasts unless renewed (s); its holder renews it every third of that.
DEFAULT_LEASE = 20.0


def _hidden(token: str | None) -> str | None:
    return hide(token)


@attrs.frozen
class PullStart:
    """What the holder of an account's lease pulls from: the stored ``cursor`` (None: never
    pulled), the news ``generation`` it saw (to hand back to ``release``), and the latest callback
    ``token`` with the unix time it stops being valid (``token_expires_at``). The token is never
    shown in a repr."""

    cursor: str | None
    generation: int
    token: str | None = attrs.field(default=None, converter=_hidden, repr=False)
    token_expires_at: float | None = None


@runtime_checkable
class InboxStore(Protocol):
    """What an :class:`~wechat_kf.Inbox` needs from a store; implement it to keep the inbox in a
    database of yours. Every method is about one account, named by a ``namespace`` (the corpid)
    and an ``open_kfid``; ``pending`` lists a namespace's accounts. ``commit``, ``release`` and
    ``notify`` must each be atomic (one transaction), ``acquire`` must be exclusive across every
    process sharing the store, and a lease must end by itself ``lease`` seconds after it was taken
    or last renewed, so that a holder that dies is taken over. Raise ``TokenStoreError`` when the
    store cannot be reached: the inbox then backs off and tries again. The inbox commits each
    mark before it calls the next handler, unless the store's class also offers
    ``open_marks(namespace, open_kfid)``: an async context manager for one page, yielding None or
    an object whose ``async write(msgid, status) -> bool`` has the mark on its way to the store
    (beyond the reach of this process dying) when it returns True; the page then ends with one
    commit of all its marks and its cursor (RedisInboxStore does this)."""

    #: How long a lease lasts unless renewed (seconds); the holder renews it every third.
    lease: float

    async def notify(
        self,
        namespace: str,
        open_kfid: str,
        token: str | None,
        token_expires_at: float | None,
    ) -> None:
        """Record news for the account: raise its generation by one, keep ``token`` if it stays
        valid longer (``token_expires_at``, unix seconds) than the one kept, and list the
        account as pending in its namespace."""

    async def pending(self, namespace: str) -> list[str]:
        """The open_kfids of ``namespace`` with news that no pull has settled yet."""

    async def acquire(self, namespace: str, open_kfid: str, owner: str) -> PullStart | None:
        """Take the account's lease for ``owner`` (a random token) if nobody holds it, and return
        what to pull from; None while another owner holds it."""

    async def renew(self, namespace: str, open_kfid: str, owner: str) -> bool:
        """Extend ``owner``'s lease by ``lease`` seconds; False when it is no longer theirs."""

    async def release(
        self, namespace: str, open_kfid: str, owner: str, generation: int | None
    ) -> PullStart | None:
        """Compare-and-release. With ``generation`` (what the pull started from): if news arrived
        since (the generation differs), keep and renew the lease and return what to pull next;
        else end the lease, take the account off the pending list and return None. Without
        (a pull that failed or was cancelled): end the lease and leave the news pending. Does
        nothing and returns None when the lease is not ``owner``'s."""

    async def get_cursor(self, namespace: str, open_kfid: str) -> str | None:
        """The account's stored cursor, or None."""

    async def marked(self, namespace: str, open_kfid: str, msgids: Sequence[str]) -> set[str]:
        """Which of ``msgids`` are marked (done or failed), in one query."""

    async def commit(
        self,
        namespace: str,
        open_kfid: str,
        owner: str,
        marks: Mapping[str, str],
        cursor: str | None,
    ) -> bool:
        """Mark each msgid of ``marks`` with its status ("done" or "failed"), kept 4 days, and,
        when ``cursor`` is given, store it, in one transaction. The marks are written whoever
        holds the lease (their handlers returned); the cursor only while ``owner`` holds it, so a
        holder that lost its lease never moves it back. False when the cursor was refused."""

    async def replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> bool:
        """Whether the reply ``reply_msgid`` was sent (its outbox mark exists)."""

    async def mark_replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> None:
        """Record that the reply ``reply_msgid`` was sent (kept 4 days)."""


@attrs.define
class _Account:
    cursor: str | None = None
    generation: int = 0
    token: str | None = None
    token_expires_at: float | None = None
    owner: str | None = None
    lease_until: float = 0.0
    # msgid -> (status, expiry); every mark lives as long, so the oldest are first.
    marks: OrderedDict[str, tuple[str, float]] = attrs.Factory(OrderedDict)
    replies: OrderedDict[str, float] = attrs.Factory(OrderedDict)

    def start(self) -> PullStart:
        return PullStart(self.cursor, self.generation, self.token, self.token_expires_at)

    def mark(self, msgid: str, status: str, now: float) -> None:
        self.marks.pop(msgid, None)  # re-marked: it now lives from now, at the end
        self.marks[msgid] = (status, now + MARK_TTL)


def _prune(entries: OrderedDict[str, Any], now: float) -> None:
    """Drop the expired entries (value: an expiry, or a tuple ending in one); all live as long,
    so the expired ones are at the front."""
    while entries:
        value = next(iter(entries.values()))
        expires = value[-1] if isinstance(value, tuple) else value
        if expires > now:
            return
        entries.popitem(last=False)


class MemoryInboxStore:
    """The default inbox store: everything in this process's memory, shared by the inboxes given
    the same instance and by no other (nothing is module-level). Leases and marks are timed on a
    monotonic ``clock``; token validity is unix time, as WeChat gives it. Use
    ``RedisInboxStore`` when several processes serve one app."""

    def __init__(
        self, *, lease: float = DEFAULT_LEASE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:
            raise ValueError("lease must be a positive number of seconds")
        self.lease: float = float(lease)
        self._clock = clock
        self._accounts: dict[tuple[str, str], _Account] = {}
        # namespace -> open_kfids with unsettled news, in the order they first had some.
        self._pending: dict[str, dict[str, None]] = {}

    def _account(self, namespace: str, open_kfid: str) -> _Account:
        key = (namespace, open_kfid)
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = _Account()
        return account

    def _holds(self, account: _Account, owner: str) -> bool:
        return account.owner == owner and account.lease_until > self._clock()

    async def notify(
        self,
        namespace: str,
        open_kfid: str,
        token: str | None,
        token_expires_at: float | None,
    ) -> None:
        """Raise the generation, keep the longer-lived token, list the account as pending."""
        account = self._account(namespace, open_kfid)
        account.generation += 1
        if token and token_expires_at is not None:
            kept = account.token_expires_at
            if kept is None or token_expires_at >= kept:
                account.token, account.token_expires_at = hide(token), token_expires_at
        self._pending.setdefault(namespace, {})[open_kfid] = None

    async def pending(self, namespace: str) -> list[str]:
        """The accounts of ``namespace`` with unsettled news."""
        return list(self._pending.get(namespace, ()))

    async def acquire(self, namespace: str, open_kfid: str, owner: str) -> PullStart | None:
        """The lease if it is free or ran out, with what to pull from; else None."""
        account = self._account(namespace, open_kfid)
        now = self._clock()
        if account.owner is not None and account.lease_until > now:
            return None
        account.owner, account.lease_until = owner, now + self.lease
        return account.start()

    async def renew(self, namespace: str, open_kfid: str, owner: str) -> bool:
        """Extend the lease if it is still ``owner``'s."""
        account = self._account(namespace, open_kfid)
        if not self._holds(account, owner):
            return False
        account.lease_until = self._clock() + self.lease
        return True

    async def release(
        self, namespace: str, open_kfid: str, owner: str, generation: int | None
    ) -> PullStart | None:
        """Compare-and-release against the generation (see :class:`InboxStore`)."""
        account = self._account(namespace, open_kfid)
        if not self._holds(account, owner):
            return None
        if generation is not None:
            if account.generation != generation:
                account.lease_until = self._clock() + self.lease
                return account.start()
            self._pending.get(namespace, {}).pop(open_kfid, None)
        account.owner, account.lease_until = None, 0.0
        return None

    async def get_cursor(self, namespace: str, open_kfid: str) -> str | None:
        """The stored cursor, or None."""
        return self._account(namespace, open_kfid).cursor

    async def marked(self, namespace: str, open_kfid: str, msgids: Sequence[str]) -> set[str]:
        """The marked ones among ``msgids``."""
        account = self._account(namespace, open_kfid)
        _prune(account.marks, self._clock())
        return {msgid for msgid in msgids if msgid in account.marks}

    async def commit(
        self,
        namespace: str,
        open_kfid: str,
        owner: str,
        marks: Mapping[str, str],
        cursor: str | None,
    ) -> bool:
        """Write the marks; move the cursor only for the lease's holder."""
        account = self._account(namespace, open_kfid)
        now = self._clock()
        _prune(account.marks, now)
        for msgid, status in marks.items():
            account.mark(msgid, status, now)
        if cursor is None:
            return True
        if not self._holds(account, owner):
            return False
        account.cursor = cursor
        return True

    async def replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> bool:
        """Whether the reply's outbox mark exists."""
        account = self._account(namespace, open_kfid)
        _prune(account.replies, self._clock())
        return reply_msgid in account.replies

    async def mark_replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> None:
        """Set the reply's outbox mark."""
        account = self._account(namespace, open_kfid)
        now = self._clock()
        _prune(account.replies, now)
        account.replies.pop(reply_msgid, None)
        account.replies[reply_msgid] = now + MARK_TTL

    @contextlib.asynccontextmanager
    async def open_marks(self, namespace: str, open_kfid: str) -> AsyncIterator[_EarlyMarks]:
        """A page's marks written as each handler returns (see ``InboxStore``): in this
        process's memory that is all a commit would do for them, without its bookkeeping."""
        yield _EarlyMarks(self._account(namespace, open_kfid), self._clock)

    def __repr__(self) -> str:
        return f"MemoryInboxStore(accounts={len(getattr(self, '_accounts', ()))})"


class _EarlyMarks:
    def __init__(self, account: _Account, clock: Callable[[], float]) -> None:
        self._account, self._clock = account, clock

    async def write(self, msgid: str, status: str) -> bool:
        self._account.mark(msgid, status, self._clock())
        return True
