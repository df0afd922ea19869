"""Third-party platforms: an Official Account open platform (component) acting for its authorizers,
and a WeCom service provider (suite) acting for its authorised corps. Their tokens are fetched,
refreshed and shared like the app's own: cached, one fetch however many callers wait,
compare-and-invalidate, and the same token store (Redis across processes).

    async with OpenPlatform(appid, appsecret, verify_ticket=latest_ticket, token_store=store) as p:
        oa = p.official_account(authorizer_appid, refresh_token=load, save_refresh_token=save)
        await oa.kf_accounts.list()

Every client a platform hands out shares its one connection (pool, timeout, retries, hooks: made
the way a client makes its own) and its one component (or suite) token.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx

from ._platform_tokens import (
    AuthorizerTokenProvider,
    ComponentTokenProvider,
    CorpTokenProvider,
    Source,
    SuiteTokenProvider,
)
from ._secrets import hide
from .clients import Connection, ExchangeName, Lifecycle, OfficialAccountClient, WeComClient
from .errors import ClientClosedError, PlatformTicketError
from .models import AccessToken
from .stores import MemoryTokenStore, TokenStore
from .tokens import check_credential

__all__ = [
    "AuthorizerTokenProvider",
    "ComponentTokenProvider",
    "CorpTokenProvider",
    "OpenPlatform",
    "PlatformTicketError",
    "ServiceProvider",
    "Source",
    "SuiteTokenProvider",
]

_C = TypeVar("_C", OfficialAccountClient, WeComClient)
_P = TypeVar("_P", bound="_Platform")
#: How long WeChat accepts a pushed ticket (wechat-api.md section 8).
_VERIFY_TICKET_LIFETIME = 12 * 3600.0
_SUITE_TICKET_LIFETIME = 30 * 60.0


class _Platform(Lifecycle):
    """One connection (made as a client makes its own) and one platform token for every client
    handed out."""

    _noun = "platform"

    _default_base_url = ""

    def __init__(
        self,
        *,
        token_store: TokenStore | None,
        http_client: httpx.AsyncClient | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        exchange: ExchangeName,
        hooks: Iterable[Any] | None,
        allow_insecure_http: bool,
        retry_backoff: float | None,
    ) -> None:
        if token_store is not None and not isinstance(token_store, TokenStore):
            raise TypeError("token_store must implement the TokenStore protocol")
        # The connection every client shares, and the platform token's own fetches go over.
        self._connection = Connection(
            base_url=base_url or self._default_base_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            allow_insecure_http=allow_insecure_http,
            hooks=hooks,
            retry_backoff=retry_backoff,
        )
        self.base_url: str = self._connection.base_url
        self._transport = self._connection.transport()
        # One store for the platform's tokens and its tickets (Redis: every process's).
        self._store: TokenStore = token_store if token_store is not None else MemoryTokenStore()
        # What every token provider of the platform is made with.
        self._provider_options: dict[str, Any] = {
            "fetch": self._transport.fetch_token,
            "store": self._store,
            "hooks": self._connection.hooks,
        }
        # The clients handed out, closed with the platform (weakly held: a dropped client goes).
        self._clients: weakref.WeakSet[OfficialAccountClient | WeComClient] = weakref.WeakSet()
        self._closed = False

    async def _save_ticket(
        self, key: str, ticket: object, owner: tuple[str, str], lifetime: float
    ) -> None:
        """Keep ``ticket`` (a str, or a callback model with ``.ticket``) under ``key`` until it
        expires; a newer one replaces it. ``owner`` is the model's field naming whose it is,
        and the value it must have."""
        field, owner_id = owner
        named = getattr(ticket, field, None)
        if named is not None and named != owner_id:
            raise ValueError(f"that ticket is for {named!r}, not {owner_id!r}")
        value = hide(check_credential("ticket", getattr(ticket, "ticket", ticket)))
        await self._store.put(key, AccessToken(value, expires_at=time.time() + lifetime))

    def _stored_ticket(self, key: str) -> Callable[[], Awaitable[str | None]]:
        async def read() -> str | None:
            stored = await self._store.get(key)
            return stored.value if stored is not None and stored.expires_at > time.time() else None

        return read

    def _hand_out(self, client: _C) -> _C:
        if self.closed:
            raise ClientClosedError("the platform is closed")
        self._clients.add(client)
        return client

    @property
    def closed(self) -> bool:
        """True once the platform was closed."""
        return self._closed

    @property
    def exchange(self) -> str:
        """Which library carries the requests of the platform and its clients."""
        return self._connection.exchange

    async def __aenter__(self: _P) -> _P:
        if self.closed:
            raise ClientClosedError("the platform is closed")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the clients handed out and the shared connection (never your
        ``http_client``)."""
        self._closed = True
        for client in list(self._clients):
            await client.aclose()
        await self._transport.aclose()
        await self._connection.aclose()


class OpenPlatform(_Platform):
    """An Official Account open platform (第三方平台): ``official_account(authorizer_appid, ...)``
    hands out an :class:`OfficialAccountClient` acting for that authorizer. The component token
    is fetched with the latest ``verify_ticket`` and shared by every authorizer; authorizer tokens
    are fetched with it, one per authorizer; all are kept in ``token_store`` (share a
    ``RedisTokenStore`` between processes: one fetch per token for all of them)."""

    _default_base_url = "https://api.weixin.qq.com"

    def __init__(
        self,
        component_appid: str,
        component_appsecret: str,
        *,
        verify_ticket: Source | None = None,
        token_store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        exchange: ExchangeName = "auto",
        hooks: Iterable[Any] | None = None,
        allow_insecure_http: bool = False,
        retry_backoff: float | None = None,
    ) -> None:
        # These frames show in the traceback of a refused argument: no secret in them.
        component_appsecret, verify_ticket = hide(component_appsecret), hide(verify_ticket)
        super().__init__(
            token_store=token_store,
            http_client=http_client,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            hooks=hooks,
            allow_insecure_http=allow_insecure_http,
            retry_backoff=retry_backoff,
        )
        self._ticket_key = f"ticket:component:{component_appid}"
        self.component: ComponentTokenProvider = ComponentTokenProvider(
            component_appid,
            component_appsecret,
            verify_ticket=(
                self._stored_ticket(self._ticket_key) if verify_ticket is None else verify_ticket
            ),
            **self._provider_options,
        )
        self._authorizers: dict[str, AuthorizerTokenProvider] = {}

    async def save_verify_ticket(self, ticket: Any) -> None:
        """Keep the ``component_verify_ticket`` your callback received (the str, or the
        ``ComponentVerifyTicket`` that ``CallbackCrypto.decrypt`` returned) in the platform's
        token store for 12 hours, its lifetime; a platform made without ``verify_ticket=`` on
        the same store (with Redis: in any process) fetches its component token with it."""
        owner = ("component_appid", self.component.component_appid)
        await self._save_ticket(self._ticket_key, ticket, owner, _VERIFY_TICKET_LIFETIME)

    def official_account(
        self,
        authorizer_appid: str,
        *,
        refresh_token: Source,
        save_refresh_token: Callable[[str], Any] | None = None,
    ) -> OfficialAccountClient:
        """A client acting for ``authorizer_appid``, its token fetched with ``refresh_token`` (the
        value or a function returning the latest); a new refresh token WeChat hands back goes to
        ``save_refresh_token``. One token provider per authorizer, however many clients; asked
        again with another refresh token (the account authorised the platform anew), it uses
        that one from then on, while the one it has, or a rotation WeChat handed back, changes
        nothing."""
        refresh_token = hide(refresh_token)  # this frame shows in the traceback of a refusal
        provider = self._authorizers.get(authorizer_appid)
        if provider is None:
            provider = self._authorizers[authorizer_appid] = AuthorizerTokenProvider(
                self.component,
                authorizer_appid,
                refresh_token=refresh_token,
                save_refresh_token=save_refresh_token,
                **self._provider_options,
            )
        else:  # a refresh token of a new authorisation replaces the old one
            provider.use(refresh_token, save_refresh_token)
        client = OfficialAccountClient.over(self._connection, token_provider=provider)
        return self._hand_out(client)

    def __repr__(self) -> str:
        # Never fails, even half-built: error trackers take reprs of the frames of a refusal.
        appid = getattr(getattr(self, "component", None), "component_appid", None)
        return f"OpenPlatform(component_appid={appid!r})"


class ServiceProvider(_Platform):
    """A WeCom service provider (第三方应用): ``wecom(auth_corpid, permanent_code=...)`` hands out a
    :class:`WeComClient` acting for that corp. The suite token is fetched with the latest
    ``suite_ticket`` and shared by every corp; corp tokens are fetched with it, one per corp; all
    are kept in ``token_store``."""

    _default_base_url = "https://qyapi.weixin.qq.com"

    def __init__(
        self,
        suite_id: str,
        suite_secret: str,
        *,
        suite_ticket: Source | None = None,
        token_store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        exchange: ExchangeName = "auto",
        hooks: Iterable[Any] | None = None,
        allow_insecure_http: bool = False,
        retry_backoff: float | None = None,
    ) -> None:
        suite_secret, suite_ticket = hide(suite_secret), hide(suite_ticket)
        super().__init__(
            token_store=token_store,
            http_client=http_client,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            hooks=hooks,
            allow_insecure_http=allow_insecure_http,
            retry_backoff=retry_backoff,
        )
        self._ticket_key = f"ticket:suite:{suite_id}"
        self.suite: SuiteTokenProvider = SuiteTokenProvider(
            suite_id,
            suite_secret,
            suite_ticket=(
                self._stored_ticket(self._ticket_key) if suite_ticket is None else suite_ticket
            ),
            **self._provider_options,
        )
        self._corps: dict[str, CorpTokenProvider] = {}

    async def save_suite_ticket(self, ticket: Any) -> None:
        """Keep the ``suite_ticket`` your callback received (the str, or the ``SuiteTicket`` that
        ``CallbackCrypto.decrypt`` returned) in the provider's token store for 30 minutes, its
        lifetime; a provider made without ``suite_ticket=`` on the same store (with Redis: in
        any process) fetches its suite token with it."""
        owner = ("suite_id", self.suite.suite_id)
        await self._save_ticket(self._ticket_key, ticket, owner, _SUITE_TICKET_LIFETIME)

    def wecom(
        self, auth_corpid: str, *, permanent_code: Source, max_concurrency: int = 8
    ) -> WeComClient:
        """A client acting for the authorised corp ``auth_corpid`` with its ``permanent_code``
        (the value or a function returning it). One token provider per corp."""
        permanent_code = hide(permanent_code)  # this frame shows in the traceback of a refusal
        if auth_corpid not in self._corps:
            self._corps[auth_corpid] = CorpTokenProvider(
                self.suite, auth_corpid, permanent_code=permanent_code, **self._provider_options
            )
        provider = self._corps[auth_corpid]
        client = WeComClient.over(
            self._connection, token_provider=provider, max_concurrency=max_concurrency
        )
        return self._hand_out(client)

    def __repr__(self) -> str:
        suite_id = getattr(getattr(self, "suite", None), "suite_id", None)
        return f"ServiceProvider(suite_id={suite_id!r})"
