"""Where token providers keep access tokens: in this process, or shared through Redis.

A store holds one :class:`~wechat_kf.models.AccessToken` per key and a refresh lock per key, so that
however many tasks (or, with a shared store, processes) find the token stale, exactly one of them
fetches a new one while the others wait and then read it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable

import anyio

from .models import AccessToken

__all__ = ["MemoryTokenStore", "TokenStore"]


@runtime_checkable
class TokenStore(Protocol):
    """What a token provider needs from a store; implement it to share tokens your own way."""

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None."""
        ...

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` unless a token that expires later is already there; return the token
        that is stored afterwards (so a slow fetch never replaces a newer token)."""
        ...

    async def invalidate(self, key: str, value: str) -> bool:
        """Drop the token under ``key`` only if its value is ``value``; True if it was dropped."""
        ...

    def refresh_lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """A lock held by whoever fetches the token for ``key``."""
        ...


class MemoryTokenStore:
    """The default store: tokens in this process's memory, refresh locks as anyio locks, shared by
    every client that is given the same instance."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, anyio.Lock] = {}

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None."""
        return self._tokens.get(key)

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` unless a later-expiring one is there; return what is stored."""
        current = self._tokens.get(key)
        if current is None or current.expires_at <= token.expires_at:
            self._tokens[key] = token
            return token
        return current

    async def invalidate(self, key: str, value: str) -> bool:
        """Drop the token under ``key`` if it is still ``value``."""
        current = self._tokens.get(key)
        if current is not None and current.value == value:
            del self._tokens[key]
            return True
        return False

    @asynccontextmanager
    async def refresh_lock(self, key: str) -> AsyncIterator[None]:
        """An anyio lock per key."""
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            yield

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(self._tokens)})"
