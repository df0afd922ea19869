"""Access tokens: the provider protocol and the providers wechat_kf ships.

A provider hands out a token (:meth:`TokenProvider.get_token`) and is told when WeChat rejected one
(:meth:`TokenProvider.invalidate`). The shipped providers cache in a ``TokenStore``
until 300 s before expiry, let exactly one caller fetch on a cold or stale cache, and drop a token
only if it is still the one that was rejected, so a burst of rejections causes one re-fetch.

This is the only module that calls the token endpoints. It does so through a :class:`TokenFetcher`,
which the transport supplies with its retry policy for busy answers, 5xx and network failures.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import anyio

from ._secrets import hide
from .errors import InvalidResponseError, TokenStoreError, WeChatError
from .hooks import Hooks, TokenFetch
from .models import AccessToken
from .stores import MemoryTokenStore, TokenStore

__all__ = [
    "AccessToken",
    "CachingTokenProvider",
    "OfficialAccountTokenProvider",
    "StaticTokenProvider",
    "TokenFetcher",
    "TokenProvider",
    "WeComTokenProvider",
    "check_credential",
]

#: How long before expiry a cached token is replaced.
REFRESH_MARGIN = 300.0
#: A token that arrives with less than ten margins to live is replaced when this share of its
#: lifetime is left (WeCom hands out the same token, with what it has left, until it expires).
SHORT_LIFETIME_MARGIN = 0.1
#: However short a token's life, it is not re-fetched sooner than this after it arrived.
MIN_REFETCH_INTERVAL = 5.0
#: However long a token endpoint says a token lives, it is replaced within a day (WeChat says
#: 7200 s; a huge figure must not reach a store's arithmetic).
MAX_LIFETIME = 86400.0
#: The platform allows a forced stable_token refresh at most once per 30 s per appid.
FORCE_REFRESH_INTERVAL = 30.0
#: After a shared store failed, how long to use the in-process fallback before trying it again.
STORE_RETRY = 5.0

logger: logging.Logger = logging.getLogger("wechat_kf.tokens")


@runtime_checkable
class TokenProvider(Protocol):
    """What the transport needs to authenticate calls; third-party platforms implement it to hand
    in an ``authorizer_access_token``."""

    async def get_token(self) -> str:
        """A token that is valid now, fetching one if need be."""

    async def invalidate(self, token: str) -> None:
        """WeChat rejected ``token``: drop it, but only if it is still the cached one."""


class TokenFetcher(Protocol):
    """Sends one request to a token endpoint, with retries, and returns the decoded JSON; raises
    ``CredentialError`` for an errcode that means the configuration is wrong."""

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool,
        once: bool = False,
    ) -> Mapping[str, Any]: ...


class StaticTokenProvider:
    """A token someone else manages (a third-party platform's authorizer_access_token, a test):
    always handed out as is; ``invalidate`` has nothing to drop."""

    def __init__(self, token: str) -> None:
        token = hide(token)  # this frame shows in the traceback of the errors below
        if not isinstance(token, str):
            raise TypeError("token must be a str")
        if not token.strip():
            raise ValueError("token must not be empty")
        self._token = token

    async def get_token(self) -> str:
        """The token given at construction."""
        return self._token

    async def invalidate(self, token: str) -> None:
        """Nothing to do: the owner of the token must replace it."""

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=<redacted>)"


class CachingTokenProvider(abc.ABC):
    """Caching, single flight and compare-and-invalidate, shared by the shipped providers (the
    apps' own and the platforms'); a subclass says how to fetch (``_fetch``), which endpoint
    (``_path``) and which field of its answer holds the token (``_token_field``)."""

    _path: str = ""

    def __init__(
        self,
        *,
        key: str,
        fetch: TokenFetcher,
        store: TokenStore | None,
        clock: Callable[[], float],
        hooks: Hooks | None = None,
    ) -> None:
        self._key = key
        self._hooks = hooks
        self._fetcher = fetch
        self._store: TokenStore = store if store is not None else MemoryTokenStore()
        self._fallback = MemoryTokenStore()
        self._outage_since: float | None = None
        self._cached: AccessToken | None = None
        self._clock = clock
        self._lock: anyio.Lock | None = None
        # The token WeChat last rejected here: never taken back from the store, where it may
        # linger until the compare-and-delete lands (a normal stable_token fetch returning it
        # again is what triggers a forced refresh).
        self._rejected: str | None = None
        # Why the next fetch happens, for the hooks: set when a rejection dropped the token.
        self._dropped = False
        # The last failed refresh, shared with the callers that waited for it.
        self._failures = 0
        self._last_failure: WeChatError | None = None
        self.fetch_count: int = 0

    async def get_token(self) -> str:
        """A cached token while it is fresh; otherwise one fetch, however many callers wait."""
        # The token this process last saw is kept here too, so a shared store is read only on
        # refresh, not once per call.
        cached = self._cached
        if cached is not None and cached.is_fresh(self._clock(), REFRESH_MARGIN):
            return cached.value
        store = self._current_store()
        try:
            return await self._refresh(store)
        except TokenStoreError:
            await self._store_failed(store)
            return await self._refresh(self._fallback)

    async def invalidate(self, token: str) -> None:
        """Drop ``token`` from the cache and the store if it is still the one held there."""
        self._rejected = token
        if self._cached is None or self._cached.value != token:
            return  # already dropped (a burst of rejections reaches the store once) or replaced
        self._cached = None
        self._dropped = True
        store = self._current_store()
        try:
            await store.invalidate(self._key, token)
        except TokenStoreError:
            await self._store_failed(store)
            await self._fallback.invalidate(self._key, token)

    async def _refresh(self, store: TokenStore) -> str:
        if self._lock is None:
            self._lock = anyio.Lock()
        failures = self._failures
        # Two levels: the local lock keeps this process's callers off the store while one of them
        # refreshes; the store's lock does the same across processes when the store is shared.
        async with self._lock:
            if self._failures != failures and self._last_failure is not None:
                # The refresh this caller waited for failed: share its outcome rather than queue
                # another full fetch behind it (each is bounded, but 20 in a row are not).
                raise copy.copy(self._last_failure)
            try:
                token = await self._refresh_locked(store)
            except WeChatError as exc:
                self._failures += 1
                self._last_failure = copy.copy(exc)  # no traceback kept alive
                raise
            self._last_failure = None
            return token

    async def _refresh_locked(self, store: TokenStore) -> str:
        while True:
            token = await self._fresh_token(store)
            if token is not None:
                return token
            async with store.refresh_lock(self._key) as held:
                token = await self._fresh_token(store)
                if token is not None:
                    return token
                if not held:
                    continue  # a new token arrived but is not usable: wait for the lock
                reason = (
                    "rejected" if self._dropped else "cold" if self._cached is None else "stale"
                )
                self._observe(reason)
                fetched = await self._fetch(store)
                self._dropped = False
                self.fetch_count += 1
                stored = await store.put(self._key, fetched)
                return self._keep(store, stored)

    async def _fresh_token(self, store: TokenStore) -> str | None:
        now = self._clock()
        if self._cached is not None and self._cached.is_fresh(now, REFRESH_MARGIN):
            return self._cached.value
        token = await store.get(self._key)
        if token is not None and token.value != self._rejected and token.is_fresh(now):
            return self._keep(store, token)
        return None

    def _keep(self, store: TokenStore, token: AccessToken) -> str:
        self._cached = token
        self._store_ok(store)
        return token.value

    # A shared store that cannot be reached: fetching on our own is harmless for tokens that
    # several holders may share (stable_token, WeCom), so those fall back to this process's
    # memory, warning once per outage and trying the store again after a pause.

    _local_fallback = True

    def _current_store(self) -> TokenStore:
        if self._outage_since is not None and self._clock() - self._outage_since < STORE_RETRY:
            return self._fallback
        return self._store

    async def _store_failed(self, store: TokenStore) -> None:
        if store is self._fallback or not self._local_fallback:
            raise TokenStoreError(
                "the token store is unreachable and this token kind must not be fetched "
                "without it (a classic fetch would invalidate every other process's token)"
            )
        if self._outage_since is None:
            logger.warning(
                "token store unreachable; using an in-process token cache for %s until it is back",
                self._key,
            )
        self._outage_since = self._clock()

    def _store_ok(self, store: TokenStore) -> None:
        if store is self._store and self._outage_since is not None:
            logger.warning("token store reachable again for %s", self._key)
            self._outage_since = None

    #: For the hooks: "oa" or "wecom", and the appid or corpid.
    _platform = ""

    def _app_id(self) -> str:
        return ""

    def _observe(self, reason: str) -> None:
        if self._hooks is not None:
            self._hooks.token_fetch(TokenFetch(self._platform, self._app_id(), reason))

    @abc.abstractmethod
    async def _fetch(self, store: TokenStore) -> AccessToken:
        """Fetch a new token from the platform (``store`` is the one being refreshed)."""

    async def _call(
        self,
        method: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        once: bool = False,
    ) -> AccessToken:
        body = await self._fetcher(
            method, self._path, params=params, json=json, idempotent=idempotent, once=once
        )
        return self._token_of(body)

    #: The field of the answer that holds the token.
    _token_field = "access_token"

    def _token_of(self, body: Mapping[str, Any]) -> AccessToken:
        """The token in a token endpoint's answer, with its lifetime."""
        value = body.get(self._token_field)
        expires_in = body.get("expires_in")
        # A token goes into URLs and stores as it is: printable ASCII, no space (a lone
        # surrogate would otherwise fail later, outside any WeChatError, holding the token).
        if not isinstance(value, str) or not (value.isascii() and value.isprintable()):
            value = ""
        if not value or " " in value:
            raise InvalidResponseError(
                f"token response has no usable {self._token_field}", path=self._path
            )
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, (int, float))
            or not math.isfinite(expires_in)
            or expires_in <= 0
        ):
            raise InvalidResponseError(
                "token response's expires_in is not a finite positive number", path=self._path
            )
        return _expiring(value, float(expires_in), self._clock())


def _expiring(value: str, lifetime: float, now: float) -> AccessToken:
    """A token that lives ``lifetime`` seconds from ``now``: replaced REFRESH_MARGIN before it
    expires or, when it came with little time left, shortly before, but never re-fetched sooner
    than MIN_REFETCH_INTERVAL (so a short-lived token costs a few fetches, not one per call)."""
    lifetime = min(lifetime, MAX_LIFETIME)
    expires_at = now + lifetime
    margin = min(REFRESH_MARGIN, lifetime * SHORT_LIFETIME_MARGIN)
    refresh_at = max(expires_at - margin, min(now + MIN_REFETCH_INTERVAL, expires_at))
    return AccessToken(value=hide(value), expires_at=expires_at, refresh_at=refresh_at)


def _secret_digest(secret: str) -> str:
    # Keys may be visible (Redis): identify the secret without revealing it.
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def check_credential(name: str, value: object) -> str:
    """``value`` if it is a usable credential (a non-empty str without whitespace that encodes
    as UTF-8), else a TypeError or ValueError that names ``name`` and never shows the value."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value or value != value.strip() or any(ch.isspace() for ch in value):
        raise ValueError(f"{name} must be a non-empty string without whitespace")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} does not encode as UTF-8") from None
    return value


class OfficialAccountTokenProvider(CachingTokenProvider):
    """The Official Account token: ``POST /cgi-bin/stable_token`` by default (one token shared by
    every holder; a rejected token is answered with a normal fetch, and only if that returns the
    same token with a forced refresh, at most once per 30 s per appid), or the classic
    ``GET /cgi-bin/token`` with ``use_stable_token=False`` (each fetch replaces the last token)."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        fetch: TokenFetcher,
        store: TokenStore | None = None,
        use_stable_token: bool = True,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        secret = hide(secret)  # this frame shows in the traceback of a refused argument
        self.appid: str = check_credential("appid", appid)
        self._secret = check_credential("secret", secret)
        self.use_stable_token: bool = bool(use_stable_token)
        kind = "stable" if self.use_stable_token else "classic"
        self._path = "/cgi-bin/stable_token" if self.use_stable_token else "/cgi-bin/token"
        super().__init__(
            key=f"oa:{appid}:{kind}", fetch=fetch, store=store, clock=clock, hooks=hooks
        )
        # A classic fetch replaces the token every other process holds: never fetch blind.
        self._local_fallback = self.use_stable_token

    async def _fetch(self, store: TokenStore) -> AccessToken:
        if not self.use_stable_token:
            params = {"grant_type": "client_credential", "appid": self.appid}
            return await self._call("GET", params={**params, "secret": self._secret})
        token = await self._stable(force=False)
        # The claim goes through the store, so every process sharing it forces at most once per
        # interval for this appid, whichever of them decides first.
        if token.value == self._rejected and await store.claim(
            f"force-refresh:{self._key}", FORCE_REFRESH_INTERVAL
        ):
            self._observe("forced")
            token = await self._stable(force=True)
        self._rejected = None
        return token

    async def _stable(self, *, force: bool) -> AccessToken:
        body: dict[str, Any] = {
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self._secret,
        }
        if force:
            body["force_refresh"] = True
        # A forced refresh invalidates the previous token: sent again only if it never left.
        return await self._call("POST", json=body, idempotent=not force, once=force)

    _platform = "oa"

    def _app_id(self) -> str:
        return self.appid

    def __repr__(self) -> str:
        # Never fails, even half-built: error trackers take reprs of the frames of a refusal.
        kind = "stable" if getattr(self, "use_stable_token", True) else "classic"
        appid = getattr(self, "appid", None)
        return f"OfficialAccountTokenProvider(appid={appid!r}, kind={kind!r})"


class WeComTokenProvider(CachingTokenProvider):
    """The WeCom app token, ``GET /cgi-bin/gettoken``, cached per (corpid, secret) pair; a 40001
    from gettoken means a wrong secret and raises ``CredentialError``."""

    _path = "/cgi-bin/gettoken"

    def __init__(
        self,
        corpid: str,
        secret: str,
        *,
        fetch: TokenFetcher,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        secret = hide(secret)  # this frame shows in the traceback of a refused argument
        self.corpid: str = check_credential("corpid", corpid)
        self._secret = check_credential("secret", secret)
        key = f"wecom:{corpid}:{_secret_digest(secret)}"
        super().__init__(key=key, fetch=fetch, store=store, clock=clock, hooks=hooks)

    async def _fetch(self, store: TokenStore) -> AccessToken:
        return await self._call("GET", params={"corpid": self.corpid, "corpsecret": self._secret})

    _platform = "wecom"

    def _app_id(self) -> str:
        return self.corpid

    def __repr__(self) -> str:
        return f"WeComTokenProvider(corpid={getattr(self, 'corpid', None)!r})"
