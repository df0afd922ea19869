"""Where token providers keep access tokens: in this process, or shared through Redis.

A store holds one :class:`~wechat_kf.models.AccessToken` per key and a refresh lock per key, so that
however many tasks (or, with a shared store, processes) find the token stale, exactly one of them
fetches a new one while the others wait and then read it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from ._inbox_stores import InboxStore, MemoryInboxStore, PullStart
from ._redis_inbox import RedisInboxStore
from ._secrets import hide
from .errors import TokenStoreError
from .models import AccessToken

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "InboxStore",
    "MemoryInboxStore",
    "MemoryTokenStore",
    "PullStart",
    "RedisInboxStore",
    "RedisTokenStore",
    "TokenStore",
]


@runtime_checkable
class TokenStore(Protocol):
    """What a token provider needs from a store; implement it to share tokens your own way."""

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None."""

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` unless another token that expires later is already there (a copy of
        the same token is always replaced: the new copy is the newer word on it); return the
        token that is stored afterwards (so a slow fetch never replaces a newer token)."""

    async def invalidate(self, key: str, value: str) -> bool:
        """Drop the token under ``key`` only if its value is ``value``; True if it was dropped."""

    def refresh_lock(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Wait for the right to fetch the token for ``key``; yields True while it is held, or
        False when another holder stored a new token meanwhile (read it instead of fetching).
        Raises ``TokenStoreError`` when the store cannot be reached."""

    async def claim(self, key: str, seconds: float) -> bool:
        """Claim ``key`` for ``seconds``: True for the first claim in that time among everyone
        sharing the store, False while an earlier claim holds (the forced stable_token refresh,
        allowed once per 30 s per appid, is rationed this way). Time it with a clock that never
        steps back. Raises ``TokenStoreError`` when the store cannot be reached."""


class MemoryTokenStore:
    """The default store: tokens in this process's memory, refresh locks as anyio locks, claims
    on a monotonic clock, all shared by every client that is given the same instance and by no
    other."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._claims: dict[str, float] = {}
        self._clock = clock

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None."""
        return self._tokens.get(key)

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` unless another, later-expiring token is there; return what is
        stored."""
        current = self._tokens.get(key)
        # A copy of the same token replaces the stored one even when it expires a little
        # sooner (WeCom hands a token back with its floored remaining life): its refresh time
        # is the newer, and keeping the old one would refetch on every call until expiry.
        if (
            current is None
            or current.value == token.value
            or current.expires_at <= token.expires_at
        ):
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

    async def claim(self, key: str, seconds: float) -> bool:
        """True unless ``key`` was claimed less than ``seconds`` ago on this store."""
        now = self._clock()
        last = self._claims.get(key)
        if last is not None and now - last < seconds:
            return False
        self._claims[key] = now
        return True

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(getattr(self, '_tokens', ()))})"


# What Redis may hold under a token key is anything (another tool's value, another type, a value
# half written by hand). This is the one definition of a stored token, and only Lua applies it:
# readers get the fields it accepted and never parse the value themselves, and a writer replaces
# whatever it refuses. Two judges (Lua's lenient cjson and Python's json) disagreed on values
# like an empty string or a refresh_at of "soon": readers saw no token and fetched, writers saw
# one expiring later and kept it, so every process fetched and the garbage stayed.
# A token is a JSON object with:
#   value       a non-empty string of printable ASCII without spaces (what WeChat hands out, and
#               what goes into a URL as it is),
#   expires_at  a finite number (unix seconds), never a string or a bool,
#   refresh_at  absent, null, or a finite number.
# Other fields are ignored.
_TOKEN_RULES = """
local function finite(n)
  return type(n) == 'number' and n == n and n ~= math.huge and n ~= -math.huge
end

local function parse_token(raw)
  if type(raw) ~= 'string' then return nil end
  local ok, t = pcall(cjson.decode, raw)
  if not ok or type(t) ~= 'table' then return nil end
  local value, expires_at, refresh_at = t['value'], t['expires_at'], t['refresh_at']
  if type(value) ~= 'string' or value == '' or string.find(value, '[^!-~]') then return nil end
  if not finite(expires_at) then return nil end
  if refresh_at == cjson.null then refresh_at = nil end
  if refresh_at ~= nil and not finite(refresh_at) then return nil end
  return {value = value, expires_at = expires_at, refresh_at = refresh_at}
end

-- Numbers go back as text that reads back exactly: Redis would cut a Lua number to an integer.
local function reply(token)
  if not token then return false end
  local refresh_at = false
  if token.refresh_at then refresh_at = string.format('%.17g', token.refresh_at) end
  return {token.value, string.format('%.17g', token.expires_at), refresh_at}
end
"""

_GET = (
    _TOKEN_RULES
    + """
return reply(parse_token(redis.pcall('GET', KEYS[1])))
"""
)

# Keep the later-expiring token: a fetch that outlived its lease must not replace a newer one.
# The new token is judged by the same rules: one a reader could not use is never written.
_PUT = (
    _TOKEN_RULES
    + """
local new = parse_token(ARGV[1])
local current = parse_token(redis.pcall('GET', KEYS[1]))
if not new or (current and current.value ~= new.value and current.expires_at > new.expires_at) then
  return reply(current)
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return reply(new)
"""
)

_INVALIDATE = (
    _TOKEN_RULES
    + """
local current = parse_token(redis.pcall('GET', KEYS[1]))
if current and current.value == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)

# A lock key without a TTL (a crashed tool, a manual SET) is nobody's lease: take it over.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RENEW = """
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Longest TTL written to Redis: whatever a caller's token says, Redis arithmetic stays sane.
_MAX_TTL_MS = 30 * 86400 * 1000
#: How long releasing a lease may keep a caller past its deadline or its cancellation (s).
_RELEASE_GRACE = 0.25


class RedisTokenStore:
    """Tokens shared through Redis by every process and machine of an app (extra ``redis``): one
    key per token, with its TTL; a refresh lock with a lease (``SET NX PX``) that only its owner
    releases and that is renewed while its owner fetches, so one process fetches while the
    others poll the store and then read; claims (``SET NX PX``) that every process sees; writes,
    reads and invalidation as Lua scripts (compare-and-delete, newest token wins, and one
    definition of a stored token, so what no reader can use no writer keeps). Every command is
    bounded by ``command_timeout``: an unreachable or frozen Redis raises ``TokenStoreError``,
    which the providers turn into a local fallback where that is safe."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "wechat_kf",
        *,
        lease: float = 15.0,
        poll_interval: float = 0.02,
        max_poll_interval: float = 0.25,
        command_timeout: float = 2.0,
    ) -> None:
        try:
            from redis import exceptions
        except ImportError as exc:  # pragma: no cover - only without the extra
            raise ImportError("RedisTokenStore needs: pip install 'wechat-kf[redis]'") from exc
        if not prefix or not isinstance(prefix, str):
            raise ValueError("prefix must be a non-empty string")
        if not (lease > 0 and poll_interval > 0 and command_timeout > 0):
            raise ValueError("lease, poll_interval and command_timeout must be positive")
        self._redis = redis
        self.prefix = prefix
        self.lease = lease
        self.command_timeout = command_timeout
        self._poll = poll_interval
        self._max_poll = max(max_poll_interval, poll_interval)
        self._unreachable = (exceptions.ConnectionError, exceptions.TimeoutError, OSError)
        self._errors = exceptions.RedisError
        self._get = redis.register_script(_GET)
        self._put = redis.register_script(_PUT)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _token_key(self, key: str) -> str:
        return f"{self.prefix}:token:{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}:lock:{key}"

    async def _call(self, command: Awaitable[Any]) -> Any:
        # Bounded here, not by the client's socket timeout: a redis client without one (the
        # default of redis-py 5) would otherwise hang on a frozen server, and no fallback engages.
        try:
            with anyio.fail_after(self.command_timeout):
                return await command
        except TimeoutError:
            problem = f"Redis did not answer within {self.command_timeout:g} s"
        except self._unreachable as exc:
            problem = f"Redis unreachable: {type(exc).__name__}"
        except self._errors as exc:
            problem = f"Redis refused a command: {type(exc).__name__}"
        # Raised out here, with no context: redis-py's frames hold the command's arguments,
        # a token among them.
        raise TokenStoreError(problem)

    async def get(self, key: str) -> AccessToken | None:
        """The token stored under ``key``, or None (also for a value that is not a token)."""
        return _token_of(await self._call(self._get(keys=[self._token_key(key)])))

    async def put(self, key: str, token: AccessToken) -> AccessToken:
        """Store ``token`` with a TTL to its expiry, unless a later-expiring one is there; a
        token this store cannot hold (a value that is not printable ASCII, an expiry that is not
        finite) is handed back as it is and not stored."""
        lifetime_ms = (token.expires_at - time.time()) * 1000
        if not lifetime_ms >= 1:  # NaN as well, which the script refuses to store anyway
            lifetime_ms = 1
        ttl_ms = int(min(lifetime_ms, _MAX_TTL_MS))
        data: dict[str, Any] = {"value": token.value, "expires_at": token.expires_at}
        if token.refresh_at is not None:
            data["refresh_at"] = token.refresh_at
        # NaN and infinities are written as cjson reads them, for the script to refuse.
        payload = hide(json.dumps(data))
        put = self._put(keys=[self._token_key(key)], args=[payload, ttl_ms])
        return _token_of(await self._call(put)) or token

    async def invalidate(self, key: str, value: str) -> bool:
        """Compare-and-delete, atomically in Redis."""
        deleted = await self._call(self._invalidate(keys=[self._token_key(key)], args=[value]))
        return bool(deleted)

    async def claim(self, key: str, seconds: float) -> bool:
        """``SET NX PX`` on ``{prefix}:claim:{key}``: one claim per ``seconds`` across every
        process, timed by Redis."""
        ms = max(1, int(seconds * 1000))
        claim_key = f"{self.prefix}:claim:{key}"
        return bool(await self._call(self._redis.set(claim_key, "1", nx=True, px=ms)))

    @asynccontextmanager
    async def refresh_lock(self, key: str) -> AsyncIterator[bool]:
        """The lease lock: poll with backoff until it is ours (True) or a new token appeared in
        the store meanwhile (False); renewed every third of the lease while held, so a fetch
        that outlasts the lease keeps it; a holder that dies loses it when the lease ends, and
        so does one that is cancelled while Redis does not answer (the release then waits at
        most a quarter of a second past the caller's deadline)."""
        owner = secrets.token_hex(16)
        lock_key = self._lock_key(key)
        lease_ms = max(1, int(self.lease * 1000))
        seen = await self.get(key)
        delay = self._poll
        while not await self._call(self._acquire(keys=[lock_key], args=[owner, lease_ms])):
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_poll)
            current = await self.get(key)
            if current is not None and current != seen:
                yield False
                return
        failure: Exception | None = None
        cancelled = False
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep_lease, lock_key, owner, lease_ms)
                try:
                    yield True
                except Exception as exc:
                    failure = exc  # raised below: the task group would wrap it in a group
                finally:
                    group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        finally:
            await self._release_lock(lock_key, owner, cancelled=cancelled)
        if failure is not None:
            raise failure

    async def _release_lock(self, lock_key: str, owner: str, *, cancelled: bool) -> None:
        # Released even when the caller is cancelled, hence shielded; but a shielded wait on a
        # frozen Redis would hold the caller past its own deadline (by a whole command timeout).
        # So the release may outlast the caller's deadline, or its cancellation (an anyio scope,
        # or asyncio's own, which no anyio deadline shows), by a short grace only: a healthy
        # release takes milliseconds, and a lease that could not be released runs out by itself.
        left = 0.0 if cancelled else anyio.current_effective_deadline() - anyio.current_time()
        bound = min(self.command_timeout, max(left, 0.0) + _RELEASE_GRACE)
        with anyio.move_on_after(bound, shield=True), suppress(TokenStoreError):
            await self._call(self._release(keys=[lock_key], args=[owner]))

    async def _keep_lease(self, lock_key: str, owner: str, lease_ms: int) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                if not await self._call(self._renew(keys=[lock_key], args=[owner, lease_ms])):
                    return  # no longer ours (it ran out during an outage): nothing to keep
            except TokenStoreError:
                continue  # try again; if Redis stays away, the lease runs out on its own

    def __repr__(self) -> str:
        prefix, lease = getattr(self, "prefix", None), getattr(self, "lease", None)
        return f"RedisTokenStore(prefix={prefix!r}, lease={lease!r})"


def _token_of(reply: object) -> AccessToken | None:
    """The token a script answered (false: none). The script already judged the stored value by
    ``_TOKEN_RULES``; nothing is judged again here, so readers and writers cannot disagree."""
    if not reply:
        return None
    token = _fields(reply)
    if token is None:
        del reply  # it may hold a token: no frame of the error below shows it
        raise TokenStoreError("Redis answered a token script in an unknown shape")
    return token


def _fields(reply: object) -> AccessToken | None:
    if not isinstance(reply, list) or len(reply) != 3:
        return None
    with suppress(ValueError):
        value, expires_at, refresh_at = (_text(item) for item in reply)
        if value and expires_at:
            return AccessToken(
                value=hide(value),
                expires_at=float(expires_at),
                refresh_at=None if refresh_at is None else float(refresh_at),
            )
    return None


def _text(item: object) -> str | None:
    # Bytes, or str from a client made with decode_responses=True; None for Lua's false.
    if item is None or isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("ascii")
    raise ValueError("not a bulk string")
