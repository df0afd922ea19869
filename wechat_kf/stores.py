"""Where token providers keep access tokens: in this process, or shared through Redis.

A store holds one :class:`~wechat_kf.models.AccessToken` per key and a refresh lock per key, so that
however many tasks (or, with a shared store, processes) find the token stale, exactly one of them
fetches a new one while the others wait and then read it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from .errors import TokenStoreError
from .models import AccessToken

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryTokenStore", "RedisTokenStore", "TokenStore"]


@runtime_checkable
class TokenStore(Protocol):
    """What a token provider needs from a store; implement it to share tokens your own way."""

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None."""

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` unless a token that expires later is already there; return the token
        that is stored afterwards (so a slow fetch never replaces a newer token)."""

    async def invalidate(self, key: str, value: str) -> bool:
        """Drop the token under ``key`` only if its value is ``value``; True if it was dropped."""

    def refresh_lock(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Wait for the right to fetch the token for ``key``; yields True while it is held, or
        False when another holder stored a new token meanwhile (read it instead of fetching).
        Raises ``TokenStoreError`` when the store cannot be reached."""


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
    async def refresh_lock(self, key: str) -> AsyncIterator[bool]:
        """An anyio lock per key; always held when it yields."""
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            yield True

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(self._tokens)})"


# Keep the later-expiring token: a fetch that outlived its lease must not replace a newer one.
_PUT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and tonumber(decoded['expires_at']) > tonumber(ARGV[2]) then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
"""

_INVALIDATE = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and decoded['value'] == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenStore:
    """Tokens shared through Redis by every process and machine of an app (extra ``redis``): one
    key per token, with its TTL; a refresh lock with a lease (``SET NX PX``) that only its owner
    releases, so one process fetches while the others poll the store and then read; invalidation
    and writes as Lua scripts (compare-and-delete, newest token wins). An unreachable Redis raises
    ``TokenStoreError``, which the providers turn into a local fallback where that is safe."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "wechat_kf",
        *,
        lease: float = 15.0,
        poll_interval: float = 0.02,
        max_poll_interval: float = 0.25,
    ) -> None:
        try:
            from redis import exceptions
        except ImportError as exc:  # pragma: no cover - only without the extra
            raise ImportError("RedisTokenStore needs: pip install 'wechat-kf[redis]'") from exc
        if not prefix or not isinstance(prefix, str):
            raise ValueError("prefix must be a non-empty string")
        if lease <= 0 or poll_interval <= 0:
            raise ValueError("lease and poll_interval must be positive")
        self._redis = redis
        self.prefix = prefix
        self.lease = lease
        self._poll = poll_interval
        self._max_poll = max(max_poll_interval, poll_interval)
        self._unreachable = (exceptions.ConnectionError, exceptions.TimeoutError, OSError)
        self._put = redis.register_script(_PUT)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._release = redis.register_script(_RELEASE)

    def _token_key(self, key: str) -> str:
        return f"{self.prefix}:token:{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}:lock:{key}"

    async def _call(self, command: Any) -> Any:
        try:
            return await command
        except self._unreachable as exc:
            raise TokenStoreError(f"Redis unreachable: {type(exc).__name__}") from exc

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None."""
        return _decode(await self._call(self._redis.get(self._token_key(key))))

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` with a TTL to its expiry, unless a later-expiring one is there."""
        ttl_ms = max(1, int((token.expires_at - time.time()) * 1000))
        data: dict[str, Any] = {"value": token.value, "expires_at": token.expires_at}
        if token.refresh_at is not None:
            data["refresh_at"] = token.refresh_at
        payload = json.dumps(data)
        stored = await self._call(
            self._put(keys=[self._token_key(key)], args=[payload, token.expires_at, ttl_ms])
        )
        return _decode(stored) or token

    async def invalidate(self, key: str, value: str) -> bool:
        """Compare-and-delete, atomically in Redis."""
        deleted = await self._call(self._invalidate(keys=[self._token_key(key)], args=[value]))
        return bool(deleted)

    @asynccontextmanager
    async def refresh_lock(self, key: str) -> AsyncIterator[bool]:
        """The lease lock: poll with backoff until it is ours (True) or a new token appeared in
        the store meanwhile (False); a holder that dies loses it when the lease ends."""
        owner = secrets.token_hex(16)
        lock_key = self._lock_key(key)
        lease_ms = max(1, int(self.lease * 1000))
        seen = await self.get(key)
        delay = self._poll
        while True:
            if await self._call(self._redis.set(lock_key, owner, nx=True, px=lease_ms)):
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_poll)
            current = await self.get(key)
            if current is not None and current != seen:
                yield False
                return
        try:
            yield True
        finally:
            # Release even when cancelled: a lease left behind would stall the others.
            with anyio.CancelScope(shield=True), suppress(TokenStoreError):
                # If Redis is gone the lease simply expires.
                await self._call(self._release(keys=[lock_key], args=[owner]))

    def __repr__(self) -> str:
        return f"RedisTokenStore(prefix={self.prefix!r}, lease={self.lease!r})"


def _decode(raw: object) -> AccessToken | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)  # type: ignore[arg-type]
        refresh_at = data.get("refresh_at")
        return AccessToken(
            value=str(data["value"]),
            expires_at=float(data["expires_at"]),
            refresh_at=None if refresh_at is None else float(refresh_at),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # an unreadable entry is as good as none: fetch a fresh token
