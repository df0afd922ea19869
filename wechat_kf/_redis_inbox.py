"""The inbox's state in Redis (extra ``redis``), shared by every process and machine of an app:
:class:`RedisInboxStore`. ``wechat_kf.stores`` re-exports it.

Keys, under ``{prefix}:inbox:{namespace}``, every one of them expiring:

- ``:{open_kfid}:cursor``        the sync cursor (30 days from its last write)
- ``:{open_kfid}:done:{msgid}``  "done" or "failed" (4 days)
- ``:{open_kfid}:reply:{msgid}`` the outbox mark of a reply (4 days)
- ``:{open_kfid}:lease``         the owner token of the lease (the lease's length)
- ``:{open_kfid}:news``          a hash: generation, token, expires_at (4 days from the last news)
- ``:pending``                   a sorted set of the open_kfids with unsettled news (4 days)

A part that is not plain (``[A-Za-z0-9_.@-]``, at most 64 characters) is replaced by a digest, so
no open_kfid or msgid can reach into another's keys. Whatever needs more than one key to agree is
a Lua script, so each call is one round trip and atomic: taking a lease reads the cursor and the
news with it; a commit writes its marks and the cursor together; a release compares the
generation, and either renews the lease and answers what to pull next or lets go.

A page's marks are also sent early (:meth:`RedisInboxStore.open_marks`): each as its handler
returns, on a connection whose replies are switched off (``CLIENT REPLY OFF``), so the mark is in
the kernel on its way to Redis before the next handler starts, without a round trip; the page's
commit writes them all again with the cursor, and only then are they counted as written.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anyio

from ._inbox_stores import CURSOR_TTL, DEFAULT_LEASE, MARK_TTL, NEWS_TTL, PullStart
from ._redis_marks import EarlyMarks, Lender, key_part
from .errors import TokenStoreError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisInboxStore"]

#: Commands in flight at once when the client's pool size cannot be read; with a pool, a fifth of
#: it is left to the client's other users, and never more than the most below.
_IN_FLIGHT, _MOST_IN_FLIGHT = 50, 256
#: The share of the store's connections that may be lent for early marks at once: each is held
#: for a whole page; the rest (``max_in_flight``) carry leases, commits and notifications.
_EARLY_SHARE = 4

# A key of another type (a tool's leftover, a hand-made value) is read as absent, never as an
# error that would stop every pull of the account.
_READ = """
local function kind(key) return redis.call('TYPE', key)['ok'] end

local function start(news_key, cursor_key)
  local generation, token, expires_at = '0', false, false
  if kind(news_key) == 'hash' then
    local f = redis.call('HMGET', news_key, 'generation', 'token', 'expires_at')
    -- Normalised, so that release compares like with like even over a hand-written value.
    generation = string.format('%d', tonumber(f[1]) or 0)
    token, expires_at = f[2], f[3]
  end
  local cursor = false
  if kind(cursor_key) == 'string' then cursor = redis.call('GET', cursor_key) end
  return {generation, token, expires_at, cursor}
end
"""

# KEYS: lease, news, cursor. ARGV: owner, lease ms. A lease key without a TTL is nobody's.
_ACQUIRE = (
    _READ
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('PTTL', KEYS[1]) ~= -1 then return false end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return start(KEYS[2], KEYS[3])
"""
)

# KEYS: lease. ARGV: owner, lease ms.
_RENEW = """
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease, news, cursor, pending. ARGV: owner, generation ('' for a plain release),
# open_kfid, lease ms.
_RELEASE = (
    _READ
    + """
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return false end
if ARGV[2] ~= '' then
  local now = start(KEYS[2], KEYS[3])
  if now[1] ~= ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return now
  end
  redis.pcall('ZREM', KEYS[4], ARGV[3])
end
redis.call('DEL', KEYS[1])
return false
"""
)

# KEYS: news, pending. ARGV: open_kfid, token ('' for none), its expiry (unix s), ttl s, now ms.
_NOTIFY = """
local function kind(key) return redis.call('TYPE', key)['ok'] end
local k = kind(KEYS[1])
if k ~= 'hash' and k ~= 'none' then redis.call('DEL', KEYS[1]) end
local raised = redis.pcall('HINCRBY', KEYS[1], 'generation', 1)
if type(raised) == 'table' and raised['err'] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'generation', 1)
end
if ARGV[2] ~= '' then
  local kept = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
  if not kept or tonumber(ARGV[3]) >= kept then
    redis.call('HSET', KEYS[1], 'token', ARGV[2], 'expires_at', ARGV[3])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
k = kind(KEYS[2])
if k ~= 'zset' and k ~= 'none' then redis.call('DEL', KEYS[2]) end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: lease, cursor, then one key per mark. ARGV: owner, cursor ('' for none), cursor ttl s,
# mark ttl s, then one status per mark.
_COMMIT = """
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ARGV[4])
end
if ARGV[2] == '' then return 1 end
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


# KEYS: the mark keys. A "0" or "1" per key.
_MARKED = """
local found = {}
for i = 1, #KEYS do
  found[i] = redis.call('EXISTS', KEYS[i]) == 1 and '1' or '0'
end
return table.concat(found)
"""


def _text(item: object) -> str | None:
    # Bytes, or str from a client made with decode_responses=True; None for nil.
    if item is None or isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    return str(item)


class RedisInboxStore:
    """The inbox's state shared through Redis (extra ``redis``, a ``redis.asyncio.Redis``) by
    every process and machine that serves an app: cursors, done and outbox marks (4 days), one
    lease per account (``lease`` seconds, renewed by its holder every third, so a holder that
    dies is taken over that long after), and the notifications with their generation. Keys live
    under ``{prefix}:inbox:{namespace}:{open_kfid}`` and all expire; whatever must agree is one
    Lua script (one round trip per call). A page costs one query of its msgids, its marks sent
    early as each handler returns (:meth:`open_marks`: no round trip each) and one commit of them
    all with the cursor. Every command is bounded by ``command_timeout``; an unreachable, frozen
    or refusing Redis raises ``TokenStoreError``."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "wechat_kf",
        *,
        lease: float = DEFAULT_LEASE,
        command_timeout: float = 2.0,
    ) -> None:
        try:
            from redis import exceptions
        except ImportError as exc:  # pragma: no cover - only without the extra
            raise ImportError("RedisInboxStore needs: pip install 'wechat-kf[redis]'") from exc
        if not prefix or not isinstance(prefix, str):
            raise ValueError("prefix must be a non-empty string")
        for name, value in (("lease", lease), ("command_timeout", command_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        self._redis = redis
        self.prefix = prefix
        self.lease: float = float(lease)
        self.command_timeout: float = float(command_timeout)
        self._unreachable = (exceptions.ConnectionError, exceptions.TimeoutError, OSError)
        self._errors = exceptions.RedisError
        # redis-py's asyncio pool raises at once when all its connections are busy: a burst of
        # notifications waits here for a free one instead.
        # The connections lent for early marks come out of the same budget.
        pool = getattr(redis, "connection_pool", None)
        size = getattr(pool, "max_connections", None)
        connections, lent = _IN_FLIGHT, 0
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            connections = max(1, min(size - size // 5, _MOST_IN_FLIGHT))
            lent = connections // _EARLY_SHARE
        self._lender = Lender(
            redis,
            most=lent,
            timeout=self.command_timeout,
            failures=(*self._unreachable, self._errors),
            refused=exceptions.ResponseError,
        )
        self.max_in_flight: int = connections - (lent if self._lender.lends else 0)
        self._limiter: anyio.CapacityLimiter | None = None
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._notify = redis.register_script(_NOTIFY)
        self._commit = redis.register_script(_COMMIT)
        self._marked = redis.register_script(_MARKED)

    # -- keys --------------------------------------------------------------------------------

    def _base(self, namespace: str) -> str:
        return f"{self.prefix}:inbox:{key_part(namespace)}"

    def _key(self, namespace: str, open_kfid: str, what: str) -> str:
        return f"{self._base(namespace)}:{key_part(open_kfid)}:{what}"

    def _mark_key(self, namespace: str, open_kfid: str, kind: str, msgid: str) -> str:
        return self._key(namespace, open_kfid, f"{kind}:{key_part(msgid)}")

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    async def _call(self, command: Awaitable[Any]) -> Any:
        # Bounded here, not by the client's socket timeout (redis-py has none by default); the
        # wait for a connection counts.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_in_flight)
        started = False
        try:
            with anyio.fail_after(self.command_timeout):
                async with self._limiter:
                    started = True
                    return await command
        except TimeoutError:
            problem = f"Redis did not answer within {self.command_timeout:g} s"
        except self._unreachable as exc:
            problem = f"Redis unreachable: {type(exc).__name__}"
        except self._errors as exc:
            problem = f"Redis refused a command: {type(exc).__name__}"
        finally:
            if not started and inspect.iscoroutine(command):
                command.close()  # never sent: no "never awaited" warning
        # Raised out here, with no context: redis-py's frames hold the arguments, a sync token
        # among them.
        raise TokenStoreError(problem)

    # -- the protocol ------------------------------------------------------------------------

    async def notify(
        self,
        namespace: str,
        open_kfid: str,
        token: str | None,
        token_expires_at: float | None,
    ) -> None:
        """One script: raise the generation, keep the longer-lived token, list as pending."""
        keys = [self._key(namespace, open_kfid, "news"), f"{self._base(namespace)}:pending"]
        token_text, expiry = "", "0"
        if token and token_expires_at is not None:
            token_text, expiry = token, repr(float(token_expires_at))
        args: list[str | int] = [open_kfid, token_text, expiry, NEWS_TTL, int(time.time() * 1000)]
        await self._call(self._notify(keys=keys, args=args))

    async def pending(self, namespace: str) -> list[str]:
        """``ZRANGE`` of the namespace's pending set."""
        found = await self._call(self._redis.zrange(f"{self._base(namespace)}:pending", 0, -1))
        return [text for text in (_text(item) for item in found or ()) if text]

    async def acquire(self, namespace: str, open_kfid: str, owner: str) -> PullStart | None:
        """One script: ``SET NX PX`` the lease, and read the cursor and the news."""
        keys = [self._key(namespace, open_kfid, k) for k in ("lease", "news", "cursor")]
        reply = await self._call(self._acquire(keys=keys, args=[owner, self._lease_ms]))
        return _start_of(reply)

    async def renew(self, namespace: str, open_kfid: str, owner: str) -> bool:
        """Compare-and-``PEXPIRE``."""
        key = self._key(namespace, open_kfid, "lease")
        return bool(await self._call(self._renew(keys=[key], args=[owner, self._lease_ms])))

    async def release(
        self, namespace: str, open_kfid: str, owner: str, generation: int | None
    ) -> PullStart | None:
        """One script: compare the owner and the generation; renew and answer what to pull next,
        or delete the lease (and, after a settled pull, the pending entry)."""
        keys = [self._key(namespace, open_kfid, k) for k in ("lease", "news", "cursor")]
        keys.append(f"{self._base(namespace)}:pending")
        wanted = "" if generation is None else str(generation)
        args: list[str | int] = [owner, wanted, open_kfid, self._lease_ms]
        return _start_of(await self._call(self._release(keys=keys, args=args)))

    async def get_cursor(self, namespace: str, open_kfid: str) -> str | None:
        """``GET`` of the cursor key."""
        return _text(await self._call(self._redis.get(self._key(namespace, open_kfid, "cursor"))))

    async def marked(self, namespace: str, open_kfid: str, msgids: Sequence[str]) -> set[str]:
        """One script: a character per msgid, "1" where its mark exists (cheaper to read than an
        ``MGET``'s value or nil per msgid)."""
        if not msgids:
            return set()
        ids = list(msgids)
        done = self._key(namespace, open_kfid, "done") + ":"
        found = _text(await self._call(self._marked(keys=[done + key_part(m) for m in ids]))) or ""
        return {msgid for msgid, flag in zip(ids, found, strict=False) if flag == "1"}

    async def commit(
        self,
        namespace: str,
        open_kfid: str,
        owner: str,
        marks: Mapping[str, str],
        cursor: str | None,
    ) -> bool:
        """One script: ``SET EX`` each mark, then the cursor if ``owner`` holds the lease."""
        if not marks and cursor is None:
            return True
        keys = [self._key(namespace, open_kfid, "lease"), self._key(namespace, open_kfid, "cursor")]
        done = self._key(namespace, open_kfid, "done") + ":"
        keys += [done + key_part(msgid) for msgid in marks]
        args: list[str | int] = [owner, cursor or "", CURSOR_TTL, MARK_TTL, *marks.values()]
        return bool(await self._call(self._commit(keys=keys, args=args)))

    async def replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> bool:
        """``EXISTS`` of the reply's outbox mark."""
        key = self._mark_key(namespace, open_kfid, "reply", reply_msgid)
        return bool(await self._call(self._redis.exists(key)))

    async def mark_replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> None:
        """``SET EX`` of the reply's outbox mark."""
        key = self._mark_key(namespace, open_kfid, "reply", reply_msgid)
        await self._call(self._redis.set(key, "1", ex=MARK_TTL))

    def open_marks(
        self, namespace: str, open_kfid: str
    ) -> AbstractAsyncContextManager[EarlyMarks | None]:
        """A connection of the client's pool lent for the marks of one page, its replies
        switched off (see :class:`~wechat_kf._redis_marks.EarlyMarks`); None when none can be
        had (every share of the pool in use, a Redis or proxy that refuses ``CLIENT REPLY``):
        the inbox then commits each mark."""
        return self._lender.lend(self._key(namespace, open_kfid, "done"))

    def __repr__(self) -> str:
        prefix, lease = getattr(self, "prefix", None), getattr(self, "lease", None)
        return f"RedisInboxStore(prefix={prefix!r}, lease={lease!r})"


def _start_of(reply: object) -> PullStart | None:
    """The PullStart a script answered (nil: none)."""
    if not reply:
        return None
    if not isinstance(reply, list) or len(reply) != 4:
        del reply  # it may hold a token: no frame of the error below shows it
        raise TokenStoreError("Redis answered an inbox script in an unknown shape")
    generation, token, expires_at, cursor = (_text(item) for item in reply)
    try:
        number = int(generation or "0")
    except ValueError:
        number = 0  # the scripts normalise it: not reached with them
    try:
        expiry = float(expires_at) if expires_at else None
    except ValueError:
        expiry = None  # a token of unknown validity is not used
    return PullStart(cursor or None, number, token if expiry else None, expiry)
