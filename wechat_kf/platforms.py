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

import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

import httpx

from ._secrets import hide
from .clients import Connection, Lifecycle, OfficialAccountClient, WeComClient
from .errors import (
    TOKEN_ERRCODES,
    ClientClosedError,
    CredentialError,
    PlatformTicketError,
    TransportError,
)
from .hooks import Hooks
from .models import AccessToken
from .stores import TokenStore
from .tokens import CachingTokenProvider, TokenFetcher, check_credential

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

#: Where a value the platform receives elsewhere comes from: the value itself, or a function
#: (plain or async) that returns the latest one (None when there is none yet), such as a read of
#: the key your callback writes.
Source: TypeAlias = "str | Callable[[], str | Awaitable[str | None] | None]"

_C = TypeVar("_C", OfficialAccountClient, WeComClient)


async def _read(source: Source, what: str) -> str | None:
    value: Any = source() if callable(source) else source
    if inspect.isawaitable(value):
        value = await value
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"the {what} source returned {type(value).__name__}, not a str")
    return hide(value) if value else None


def _check_source(name: str, source: object) -> Source:
    if isinstance(source, str):
        check_credential(name, source)
        return hide(source)
    if not callable(source):
        raise TypeError(f"{name} must be a str or a function returning the latest one")
    return source


class ComponentTokenProvider(CachingTokenProvider):
    """The open platform's ``component_access_token`` (``POST
    /cgi-bin/component/api_component_token`` with the latest ``component_verify_ticket``, read
    from ``verify_ticket`` at each fetch). One per platform, shared by all its authorizers."""

    _path = "/cgi-bin/component/api_component_token"
    _token_field = "component_access_token"
    _platform = "component"

    def __init__(
        self,
        component_appid: str,
        component_appsecret: str,
        *,
        verify_ticket: Source,
        fetch: TokenFetcher,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        component_appsecret = hide(component_appsecret)
        self.component_appid = check_credential("component_appid", component_appid)
        self._secret = check_credential("component_appsecret", component_appsecret)
        self._ticket = _check_source("verify_ticket", verify_ticket)
        key = f"component:{component_appid}"
        super().__init__(key=key, fetch=fetch, store=store, clock=clock, hooks=hooks)

    def _app_id(self) -> str:
        return self.component_appid

    async def _fetch(self, store: TokenStore) -> AccessToken:
        ticket = await _read(self._ticket, "verify_ticket")
        if ticket is None:
            raise PlatformTicketError(
                "no component_verify_ticket yet: WeChat pushes one to your callback every 10 "
                "minutes; the verify_ticket source returned none"
            )
        body = {
            "component_appid": self.component_appid,
            "component_appsecret": self._secret,
            "component_verify_ticket": ticket,
        }
        # Not idempotent in effect: a new component token replaces the previous one.
        return await self._call("POST", json=body, idempotent=False)

    def __repr__(self) -> str:
        appid = getattr(self, "component_appid", None)
        return f"ComponentTokenProvider(component_appid={appid!r})"


class SuiteTokenProvider(CachingTokenProvider):
    """A WeCom service provider's ``suite_access_token`` (``POST /cgi-bin/service/get_suite_token``
    with the latest ``suite_ticket``, read from ``suite_ticket`` at each fetch). One per suite,
    shared by all its authorised corps."""

    _path = "/cgi-bin/service/get_suite_token"
    _token_field = "suite_access_token"
    _platform = "suite"

    def __init__(
        self,
        suite_id: str,
        suite_secret: str,
        *,
        suite_ticket: Source,
        fetch: TokenFetcher,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        suite_secret = hide(suite_secret)
        self.suite_id = check_credential("suite_id", suite_id)
        self._secret = check_credential("suite_secret", suite_secret)
        self._ticket = _check_source("suite_ticket", suite_ticket)
        super().__init__(
            key=f"suite:{suite_id}", fetch=fetch, store=store, clock=clock, hooks=hooks
        )

    def _app_id(self) -> str:
        return self.suite_id

    async def _fetch(self, store: TokenStore) -> AccessToken:
        ticket = await _read(self._ticket, "suite_ticket")
        if ticket is None:
            raise PlatformTicketError(
                "no suite_ticket yet: WeChat pushes one to your callback every 10 minutes; the "
                "suite_ticket source returned none"
            )
        body = {"suite_id": self.suite_id, "suite_secret": self._secret, "suite_ticket": ticket}
        return await self._call("POST", json=body)

    def __repr__(self) -> str:
        return f"SuiteTokenProvider(suite_id={getattr(self, 'suite_id', None)!r})"


class _OnBehalf(CachingTokenProvider):
    """A token obtained with the platform's own token (component or suite): a rejection of that
    token by the endpoint drops it and the fetch is tried once more with a new one."""

    _parent: CachingTokenProvider
    _parent_param = ""

    #: Whether the fetch may be sent again after it may have applied.
    _idempotent = True

    async def _with_parent(self, json: Mapping[str, Any]) -> Mapping[str, Any]:
        for last in (False, True):
            parent = await self._parent.get_token()
            try:
                return await self._fetcher(
                    "POST", self._path, params={self._parent_param: parent}, json=json,
                    idempotent=self._idempotent,
                )  # fmt: skip
            except CredentialError as exc:
                if last or exc.errcode not in TOKEN_ERRCODES:
                    raise
                await self._parent.invalidate(parent)
        raise AssertionError("unreachable")  # pragma: no cover


class AuthorizerTokenProvider(_OnBehalf):
    """An authorizer's ``authorizer_access_token`` (``POST
    /cgi-bin/component/api_authorizer_token`` with the component token and the authorizer's
    refresh token). The refresh token is read from ``refresh_token`` at every fetch, so a
    rotation another process saved is what this one presents next; a refresh token that comes
    back different is handed to ``save_refresh_token`` (plain or async) before the token is used
    (with a plain str source, the newest one this provider saw is used from then on). The fetch
    is never sent again once it may have reached WeChat: WeChat may have rotated the refresh
    token in it, and the retired one would be refused (61023)."""

    _path = "/cgi-bin/component/api_authorizer_token"
    _token_field = "authorizer_access_token"
    _platform = "oa"
    _parent_param = "component_access_token"
    _idempotent = False

    def __init__(
        self,
        component: ComponentTokenProvider,
        authorizer_appid: str,
        *,
        refresh_token: Source,
        save_refresh_token: Callable[[str], Any] | None = None,
        fetch: TokenFetcher,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        if not isinstance(component, ComponentTokenProvider):
            raise TypeError("component must be a ComponentTokenProvider")
        if save_refresh_token is not None and not callable(save_refresh_token):
            raise TypeError("save_refresh_token must be a function")
        self._parent = self._component = component
        self.authorizer_appid = check_credential("authorizer_appid", authorizer_appid)
        self._refresh_source = _check_source("refresh_token", refresh_token)
        self._save = save_refresh_token
        # Only for a plain str source, which cannot learn of a rotation: what WeChat handed back.
        self._rotated: str | None = None
        key = f"authorizer:{component.component_appid}:{authorizer_appid}"
        super().__init__(key=key, fetch=fetch, store=store, clock=clock, hooks=hooks)

    def _app_id(self) -> str:
        return self.authorizer_appid

    async def _refresh_token(self) -> str | None:
        if isinstance(self._refresh_source, str):
            return self._rotated or self._refresh_source
        return await _read(self._refresh_source, "refresh_token")

    async def _fetch(self, store: TokenStore) -> AccessToken:
        refresh = await self._refresh_token()
        if refresh is None:
            raise PlatformTicketError(
                f"no authorizer_refresh_token for {self.authorizer_appid}: the refresh_token "
                "source returned none"
            )
        request = {
            "component_appid": self._component.component_appid,
            "authorizer_appid": self.authorizer_appid,
            "authorizer_refresh_token": refresh,
        }
        try:
            body = await self._with_parent(request)
        except TransportError as exc:
            if exc.maybe_applied:
                raise self._maybe_rotated(exc) from None
            raise
        token = self._token_of(body)
        new = body.get("authorizer_refresh_token")
        if isinstance(new, str) and new and new != refresh:
            if isinstance(self._refresh_source, str):
                self._rotated = hide(new)
            if self._save is not None:
                saved = self._save(hide(new))
                if inspect.isawaitable(saved):
                    await saved
        return token

    def _maybe_rotated(self, error: TransportError) -> TransportError:
        return TransportError(
            f"{error} - not sent again: WeChat may have rotated the authorizer_refresh_token of "
            f"{self.authorizer_appid} in an answer that was lost. If the next fetch is refused "
            "with 61023, read the current refresh token with "
            "/cgi-bin/component/api_get_authorizer_info (authorization_info."
            "authorizer_refresh_token), hand it to refresh_token, or have the account authorise "
            "the platform again",
            path=error.path,
            maybe_applied=True,
            status_code=error.status_code,
        )

    def __repr__(self) -> str:
        appid = getattr(self, "authorizer_appid", None)
        return f"AuthorizerTokenProvider(authorizer_appid={appid!r})"


class CorpTokenProvider(_OnBehalf):
    """An authorised corp's ``access_token`` (``POST /cgi-bin/service/get_corp_token`` with the
    suite token and the corp's permanent code)."""

    _path = "/cgi-bin/service/get_corp_token"
    _platform = "wecom"
    _parent_param = "suite_access_token"

    def __init__(
        self,
        suite: SuiteTokenProvider,
        auth_corpid: str,
        *,
        permanent_code: Source,
        fetch: TokenFetcher,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        hooks: Hooks | None = None,
    ) -> None:
        if not isinstance(suite, SuiteTokenProvider):
            raise TypeError("suite must be a SuiteTokenProvider")
        self._parent = suite
        self.auth_corpid = check_credential("auth_corpid", auth_corpid)
        self._code = _check_source("permanent_code", permanent_code)
        key = f"corp:{suite.suite_id}:{auth_corpid}"
        super().__init__(key=key, fetch=fetch, store=store, clock=clock, hooks=hooks)

    def _app_id(self) -> str:
        return self.auth_corpid

    async def _fetch(self, store: TokenStore) -> AccessToken:
        code = await _read(self._code, "permanent_code")
        if code is None:
            raise PlatformTicketError(
                f"no permanent_code for {self.auth_corpid}: its source returned none"
            )
        body = await self._with_parent({"auth_corpid": self.auth_corpid, "permanent_code": code})
        return self._token_of(body)

    def __repr__(self) -> str:
        return f"CorpTokenProvider(auth_corpid={getattr(self, 'auth_corpid', None)!r})"


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
        exchange: str,
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
        self.base_url = self._connection.base_url
        self._transport = self._connection.transport()
        # What every token provider of the platform is made with.
        self._provider_options: dict[str, Any] = {
            "fetch": self._transport.fetch_token,
            "store": token_store,
            "hooks": self._connection.hooks,
        }
        # The clients handed out, closed with the platform (weakly held: a dropped client goes).
        self._clients: weakref.WeakSet[OfficialAccountClient | WeComClient] = weakref.WeakSet()
        self._closed = False

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
        verify_ticket: Source,
        token_store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        exchange: str = "auto",
        hooks: Iterable[Any] | None = None,
        allow_insecure_http: bool = False,
        retry_backoff: float | None = None,
    ) -> None:
        component_appsecret = hide(component_appsecret)
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
        self.component = ComponentTokenProvider(
            component_appid,
            component_appsecret,
            verify_ticket=verify_ticket,
            **self._provider_options,
        )
        self._authorizers: dict[str, AuthorizerTokenProvider] = {}

    def official_account(
        self,
        authorizer_appid: str,
        *,
        refresh_token: Source,
        save_refresh_token: Callable[[str], Any] | None = None,
    ) -> OfficialAccountClient:
        """A client acting for ``authorizer_appid``, its token fetched with ``refresh_token`` (the
        value or a function returning the latest); a new refresh token WeChat hands back goes to
        ``save_refresh_token``. One token provider per authorizer, however many clients."""
        if authorizer_appid not in self._authorizers:
            self._authorizers[authorizer_appid] = AuthorizerTokenProvider(
                self.component,
                authorizer_appid,
                refresh_token=refresh_token,
                save_refresh_token=save_refresh_token,
                **self._provider_options,
            )
        provider = self._authorizers[authorizer_appid]
        client = OfficialAccountClient.over(self._connection, token_provider=provider)
        return self._hand_out(client)

    def __repr__(self) -> str:
        return f"OpenPlatform(component_appid={self.component.component_appid!r})"


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
        suite_ticket: Source,
        token_store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        exchange: str = "auto",
        hooks: Iterable[Any] | None = None,
        allow_insecure_http: bool = False,
        retry_backoff: float | None = None,
    ) -> None:
        suite_secret = hide(suite_secret)
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
        self.suite = SuiteTokenProvider(
            suite_id, suite_secret, suite_ticket=suite_ticket, **self._provider_options
        )
        self._corps: dict[str, CorpTokenProvider] = {}

    def wecom(
        self, auth_corpid: str, *, permanent_code: Source, max_concurrency: int = 8
    ) -> WeComClient:
        """A client acting for the authorised corp ``auth_corpid`` with its ``permanent_code``
        (the value or a function returning it). One token provider per corp."""
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
        return f"ServiceProvider(suite_id={self.suite.suite_id!r})"
