"""The lease of one account as its holder sees it: renewed in the background, and trusted only
as long as the store last said it was ours, so that a holder frozen (SIGSTOP, a blocked event
loop) or cut off from the store past that point stops before another holder and it both handle a
message."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

import anyio
import attrs

from ._inbox_stores import InboxStore
from .errors import RateLimitError, TokenStoreError, WeChatError

__all__ = ["Lease", "LeaseLost", "call_quietly", "describe", "log_failure"]

logger = logging.getLogger("wechat_kf.inbox")

#: A lease is trusted here until this share of it has passed since the store last took or renewed
#: it (timed from before the call): the rest is a margin for clocks and scheduling.
_LEASE_TRUST = 0.8


def describe(error: BaseException) -> str:
    """An exception for a log line: its class, and its text only when it is the SDK's own (which
    never holds a secret); a handler's exception may quote anything."""
    if isinstance(error, WeChatError):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


class LeaseLost(Exception):
    """Another process holds the account now (our lease ran out): stop, it pulls on."""


@attrs.define
class Lease:
    """One holding of an account's lease: its random ``owner`` token, and until when (monotonic
    clock) it is known to be ours: a share of its length from just before the store last took or
    renewed it. A process frozen (SIGSTOP, a blocked event loop) or cut off from the store past
    that point hands nothing more to the handler before the store says the lease is still ours."""

    store: InboxStore
    namespace: str
    open_kfid: str
    owner: str
    valid_until: float = 0.0
    lost: bool = False
    #: The pull runs in a task of the inbox's own (not a caller's of ``drain``).
    owned: bool = True

    def stamp(self, since: float) -> None:
        self.valid_until = since + self.store.lease * _LEASE_TRUST

    @property
    def valid(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until

    async def renew(self) -> bool:
        """Renew it in the store; False (and ``lost``) when it is no longer ours."""
        since = time.monotonic()
        if not await self.store.renew(self.namespace, self.open_kfid, self.owner):
            self.lost = True
            return False
        self.stamp(since)
        return True

    async def keep(self, scope: anyio.CancelScope) -> None:
        """Renew every third of the lease; cancel ``scope`` once it is gone, or once renewals
        failed until it can no longer be trusted (another process may hold it by then)."""
        period = self.store.lease / 3
        while True:
            await anyio.sleep(period)
            try:
                if not await self.renew():
                    break
                period = self.store.lease / 3
            except Exception as exc:
                left = self.valid_until - time.monotonic()
                if left <= 0:
                    self.lost = True
                    logger.warning(
                        "inbox: could not renew the lease of %s in time (%s); its pull stops",
                        self.open_kfid,
                        describe(exc),
                    )
                    break
                period = min(self.store.lease / 3, left)  # once more before it runs out
        scope.cancel()


def log_failure(open_kfid: str, error: Exception, delay: float) -> None:
    """Log a failed pull of ``open_kfid`` and when it is tried again, at the level it deserves:
    a WARNING for what waiting mends (no token, the store), an ERROR for the rest."""
    if isinstance(error, RateLimitError):
        logger.warning(
            "inbox: pulling %s was rate-limited (%s): no valid callback token; again in %.0f s",
            open_kfid,
            error.errcode,
            delay,
        )
    elif isinstance(error, TokenStoreError):
        logger.warning("inbox: the store failed (%s); %s again in %.0f s", error, open_kfid, delay)
    elif isinstance(error, WeChatError):
        logger.error(
            "inbox: pulling %s failed (%s); again in %.0f s", open_kfid, describe(error), delay
        )
    else:
        logger.error(
            "inbox: pulling %s failed (%s); again in %.0f s",
            open_kfid,
            describe(error),
            delay,
            exc_info=True,
        )


async def call_quietly(what: str, call: Awaitable[Any]) -> bool:
    """Await a store call whose failure must not stop the caller; False (and a WARNING) when it
    failed."""
    try:
        await call
    except Exception as exc:
        logger.warning("inbox: %s failed (%s)", what, describe(exc))
        return False
    return True
