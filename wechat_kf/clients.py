"""The clients: compose transport, token provider and resources, and own their lifecycle."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from ._secrets import hide
from ._transport import Transport
from .customer_service import KfAccounts
from .errors import ClientClosedError
from .hooks import Hooks
from .servicers import Servicers
from .stores import TokenStore
from .tokens import OfficialAccountTokenProvider, TokenProvider, WeComTokenProvider
from .wecom_kf_accounts import WeComKfAccounts

__all__ = ["OfficialAccountClient", "WeComClient"]

_L = TypeVar("_L", bound="Lifecycle")


def _check_options(timeout: object, max_retries: object, http_client: object) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds")
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError("max_retries must be an int")
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")
    if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
        raise TypeError("http_client must be an httpx.AsyncClient")


def _check_auth(
    id_name: str, app_id: object, secret: object, provider: object, store: object
) -> bool:
    """Whether credentials were given (else a token_provider); ValueError for any other mix."""
    has_credentials = app_id is not None or secret is not None
    if provider is not None:
        if has_credentials:
            raise ValueError(f"give either {id_name} and secret, or token_provider, not both")
        if store is not None:
            raise ValueError("token_store only applies to credentials, not to a token_provider")
        if not isinstance(provider, TokenProvider):
            raise TypeError("token_provider must have async get_token() and invalidate(token)")
        return False
    if app_id is None or secret is None:
        raise ValueError(f"give both {id_name} and secret, or a token_provider")
    if store is not None and not isinstance(store, TokenStore):
        raise TypeError("token_store must implement the TokenStore protocol")
    return True


class Lifecycle(abc.ABC):
    """What the clients and the platforms share: ``async with`` (refused once closed) or
    ``aclose()``; closed means closed."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once closed."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close, for good."""

    #: What the "closed" error calls it.
    _noun = "client"

    async def __aenter__(self: _L) -> _L:
        if self.closed:
            raise ClientClosedError(f"the {self._noun} is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Client(Lifecycle):
    """Lifecycle shared by both clients: ``async with`` or ``aclose()``; closed means closed."""

    _transport: Transport

    async def aclose(self) -> None:
        """Close the client: further calls raise ``ClientClosedError``; an ``http_client`` you
        passed in stays open (it is yours)."""
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        """True once the client was closed."""
        return self._transport.closed

    @property
    def exchange(self) -> str:
        """Which library carries the requests: "httpx" or "aiohttp" (``exchange=`` pins it;
        ``"auto"`` takes aiohttp when the client is made on asyncio with aiohttp installed)."""
        return self._transport.exchange

    @property
    def token_provider(self) -> TokenProvider:
        """The provider that authenticates this client's calls."""
        return self._provider

    _provider: TokenProvider


class OfficialAccountClient(_Client):
    """An Official Account (公众号) client: ``kf_accounts`` manages its customer-service accounts.
    Give ``appid`` and ``secret`` (tokens from stable_token, or the classic endpoint with
    ``use_stable_token=False``, cached in ``token_store``), or a ``token_provider`` of your own.
    ``http_client`` is an httpx.AsyncClient you own (and the seam for tests). ``timeout`` bounds
    each attempt as a whole, so a call takes at most ``(max_retries + 1) x timeout`` plus
    backoff. ``allow_insecure_http=True`` accepts a plain ``http://`` base_url off loopback (a
    fake server in another container; never WeChat), with a WARNING. ``hooks`` observe every
    attempt, retry and token fetch (default: ``[LoggingHook()]``, see :mod:`wechat_kf.hooks`)."""

    def __init__(
        self,
        appid: str | None = None,
        secret: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        token_store: TokenStore | None = None,
        use_stable_token: bool = True,
        http_client: httpx.AsyncClient | None = None,
        base_url: str = "https://api.weixin.qq.com",
        timeout: float = 10.0,
        max_retries: int = 3,
        exchange: str = "auto",
        allow_insecure_http: bool = False,
        hooks: Iterable[Any] | None = None,
    ) -> None:
        secret = hide(secret)  # this frame shows in the traceback of a refused argument
        uses_credentials = _check_auth("appid", appid, secret, token_provider, token_store)
        _check_options(timeout, max_retries, http_client)
        self._transport = Transport(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            allow_insecure_http=allow_insecure_http,
            hooks=Hooks(hooks),
        )
        if uses_credentials:
            assert appid is not None
            assert secret is not None
            token_provider = OfficialAccountTokenProvider(
                appid,
                secret,
                fetch=self._transport.fetch_token,
                store=token_store,
                use_stable_token=use_stable_token,
                hooks=self._transport.hooks,
            )
        assert token_provider is not None
        self.appid = appid
        self._provider = token_provider
        self._transport.bind(token_provider)
        self.kf_accounts = KfAccounts(self._transport)

    def __repr__(self) -> str:
        return f"OfficialAccountClient(appid={getattr(self, 'appid', None)!r})"


class WeComClient(_Client):
    """A WeCom (企业微信) client for one app: ``servicers`` manages the servicers of its 微信客服
    accounts. Give ``corpid`` and the app's ``secret`` (tokens cached per pair in ``token_store``)
    or a ``token_provider``; batch requests run at most ``max_concurrency`` at a time. ``timeout``
    bounds each attempt as a whole, so a request takes at most ``(max_retries + 1) x timeout``
    plus backoff. ``allow_insecure_http`` and ``hooks`` are as for
    :class:`OfficialAccountClient`; hooks also see each batch request."""

    def __init__(
        self,
        corpid: str | None = None,
        secret: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        token_store: TokenStore | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str = "https://qyapi.weixin.qq.com",
        timeout: float = 10.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        exchange: str = "auto",
        allow_insecure_http: bool = False,
        hooks: Iterable[Any] | None = None,
    ) -> None:
        secret = hide(secret)  # this frame shows in the traceback of a refused argument
        uses_credentials = _check_auth("corpid", corpid, secret, token_provider, token_store)
        _check_options(timeout, max_retries, http_client)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError("max_concurrency must be an int")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self._transport = Transport(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            allow_insecure_http=allow_insecure_http,
            hooks=Hooks(hooks),
        )
        if uses_credentials:
            assert corpid is not None
            assert secret is not None
            token_provider = WeComTokenProvider(
                corpid,
                secret,
                fetch=self._transport.fetch_token,
                store=token_store,
                hooks=self._transport.hooks,
            )
        assert token_provider is not None
        self.corpid = corpid
        self.max_concurrency = max_concurrency
        self._provider = token_provider
        self._transport.bind(token_provider)
        self.servicers = Servicers(self._transport, anyio.CapacityLimiter(max_concurrency))
        self.kf_accounts = WeComKfAccounts(self._transport)

    def __repr__(self) -> str:
        return f"WeComClient(corpid={getattr(self, 'corpid', None)!r})"
