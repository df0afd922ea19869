"""The clients, and the one place where a client is composed: a :class:`Connection` (the exchange
and its pool, the base URL, the per-attempt timeout, the retries, the hooks) gives each client
its transport, the token provider is bound to it, and the resources are built on it. The
platforms compose through the same :class:`Connection`, so a setting reaches every kind of
client alike."""

from __future__ import annotations

import abc
import functools
import importlib.util
import logging
import math
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import httpx
import sniffio

from ._base_url import check_base_url
from ._exchanges import AiohttpExchange, Exchange
from ._httpx_exchanges import HttpxExchange, PooledHttpxExchange
from ._secrets import hide
from ._transport import Transport
from .errors import ClientClosedError
from .hooks import Hooks
from .official_account import KfAccounts, OfficialAccountMessages, OfficialAccountSessions
from .stores import TokenStore
from .tokens import OfficialAccountTokenProvider, TokenProvider, WeComTokenProvider
from .wecom import Customers, Media, Messages, Servicers, Sessions, WeComKfAccounts

__all__ = [
    "DEFAULT_RETRY_BACKOFF",
    "EXCHANGES",
    "Connection",
    "ExchangeName",
    "Lifecycle",
    "OfficialAccountClient",
    "WeComClient",
]

logger: logging.Logger = logging.getLogger("wechat_kf.transport")

#: The values of the ``exchange`` option.
ExchangeName = Literal["auto", "httpx", "aiohttp"]
EXCHANGES: tuple[ExchangeName, ...] = ("auto", "httpx", "aiohttp")

#: What ``retry_backoff`` is for the clients that leave it unset, read at each wait between
#: retries: 1 (the policy's waits), or what ``wechat_kf.testing.instant_retries()`` sets (0). A
#: context variable, so it holds for exactly the code that set it and the tasks it starts, never
#: for another test, thread or event loop.
DEFAULT_RETRY_BACKOFF: ContextVar[float] = ContextVar("wechat_kf_retry_backoff", default=1.0)

#: A client's token provider, or how to make one once its transport exists (``fetch=``,
#: ``hooks=``).
_ProviderOrMaker = TokenProvider | Callable[..., TokenProvider]

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
        _checked_provider(provider)
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


class Connection:
    """What every call of a client goes over, and with: one exchange (httpx, or aiohttp on
    asyncio) and its connection pool, built with the per-attempt ``timeout``, the checked
    ``base_url``, ``max_retries`` and the ``hooks``. Each client makes its own; a platform makes
    one and hands it to every client it makes (``OfficialAccountClient.over``,
    ``WeComClient.over``), which then share its pool and close nothing of it. An ``http_client``
    of yours is used as given and never closed."""

    def __init__(
        self,
        *,
        base_url: str,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        exchange: ExchangeName = "auto",
        allow_insecure_http: bool = False,
        hooks: Iterable[Any] | None = None,
        retry_backoff: float | None = None,
    ) -> None:
        _check_options(timeout, max_retries, http_client)
        if retry_backoff is not None and (
            isinstance(retry_backoff, bool)
            or not isinstance(retry_backoff, (int, float))
            or not math.isfinite(retry_backoff)
            or retry_backoff < 0
        ):
            raise ValueError("retry_backoff must be a finite number >= 0, or None")
        self.retry_backoff = retry_backoff
        self.base_url: str = check_base_url(base_url, allow_insecure_http)
        self.timeout: float = float(timeout)
        self.max_retries = max_retries
        self.hooks: Hooks = Hooks(hooks)
        self._exchange = _choose_exchange(exchange, http_client, self.base_url)
        logger.debug("exchange: %s", self._exchange.name)
        self.closed: bool = False

    @property
    def exchange(self) -> str:
        """Which library carries the requests: "httpx" or "aiohttp"."""
        return self._exchange.name

    def transport(self) -> Transport:
        """A new transport over this connection's exchange, with its settings (one per client:
        closing a client closes its transport, not the connection)."""
        if self.closed:
            raise ClientClosedError("the connection is closed")
        return Transport(
            self._exchange,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            hooks=self.hooks,
            backoff=self._backoff,
        )

    def _backoff(self) -> float:
        return DEFAULT_RETRY_BACKOFF.get() if self.retry_backoff is None else self.retry_backoff

    async def aclose(self) -> None:
        """Close the pool the exchange owns (never your ``http_client``)."""
        self.closed = True
        await self._exchange.aclose()

    def __repr__(self) -> str:
        # Never fails, even half-built: error trackers take reprs of the frames of a refusal.
        exchange = getattr(getattr(self, "_exchange", None), "name", None)
        return f"Connection(base_url={getattr(self, 'base_url', None)!r}, exchange={exchange!r})"


def _choose_exchange(
    exchange: str, http_client: httpx.AsyncClient | None, base_url: str
) -> Exchange:
    """The exchange a connection uses, chosen once, when it is made: httpx over a caller's
    ``http_client``, as given; else as pinned; ``auto`` takes aiohttp when the client is made on
    asyncio and aiohttp is installed (about half the CPU per call of the SDK's own httpx pool),
    and that pool otherwise (trio, or no running event loop to tell)."""
    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {', '.join(EXCHANGES)}, not {exchange!r}")
    if http_client is not None:
        if exchange == "aiohttp":
            raise ValueError("an http_client is an httpx client: use exchange='httpx' or 'auto'")
        return HttpxExchange(http_client)
    if exchange == "aiohttp" or (exchange == "auto" and _aiohttp_fits()):
        return AiohttpExchange(base_url)
    return PooledHttpxExchange(base_url)


def _aiohttp_fits() -> bool:
    """Whether this runs on asyncio, and aiohttp is installed."""
    try:
        on_asyncio = sniffio.current_async_library() == "asyncio"
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return on_asyncio and importlib.util.find_spec("aiohttp") is not None


class _Client(Lifecycle):
    """What both clients share: a transport over a :class:`Connection` (their own, closed with
    them, or a platform's, left open), the token provider bound to it, and the lifecycle."""

    _transport: Transport
    _connection: Connection
    _owns_connection: bool
    _provider: TokenProvider

    def _compose(
        self, connection: Connection, provider: _ProviderOrMaker, *, owns_connection: bool
    ) -> None:
        self._connection = connection
        self._owns_connection = owns_connection
        self._transport = connection.transport()
        # A provider made here fetches through this client's transport: once the client is
        # closed, its token fetches are refused like its calls.
        if not isinstance(provider, TokenProvider):
            provider = provider(fetch=self._transport.fetch_token, hooks=connection.hooks)
        self._provider = provider
        self._transport.bind(provider)

    async def aclose(self) -> None:
        """Close the client: further calls raise ``ClientClosedError``; an ``http_client`` you
        passed in stays open (it is yours), and so does a platform's connection."""
        await self._transport.aclose()
        if self._owns_connection:
            await self._connection.aclose()

    @property
    def closed(self) -> bool:
        """True once the client was closed."""
        return self._transport.closed

    @property
    def exchange(self) -> str:
        """Which library carries the requests: "httpx" or "aiohttp" (``exchange=`` pins it;
        ``"auto"`` takes aiohttp when the client is made on asyncio with aiohttp installed)."""
        return self._connection.exchange

    @property
    def token_provider(self) -> TokenProvider:
        """The provider that authenticates this client's calls."""
        return self._provider


class OfficialAccountClient(_Client):
    """An Official Account (公众号) client: ``kf_accounts`` manages its customer-service accounts,
    ``sessions`` their sessions with users, the waiting queue and the chat records, ``messages``
    sends as them. Give ``appid`` and ``secret`` (tokens from stable_token, or the classic
    endpoint with ``use_stable_token=False``, cached in ``token_store``), or a
    ``token_provider`` of your own. ``http_client`` is an httpx.AsyncClient you own (and the
    seam for tests). ``timeout`` bounds each attempt as a whole, so a call takes at most
    ``(max_retries + 1) x timeout`` plus backoff. ``allow_insecure_http=True`` accepts a plain
    ``http://`` base_url off loopback (a fake server in another container; never WeChat), with a
    WARNING. ``hooks`` observe every attempt, retry and token fetch (default:
    ``[LoggingHook()]``, see :mod:`wechat_kf.hooks`). ``retry_backoff`` multiplies every wait
    between retries (0: at once, for tests; the default follows
    ``wechat_kf.testing.instant_retries()``)."""

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
        exchange: ExchangeName = "auto",
        allow_insecure_http: bool = False,
        hooks: Iterable[Any] | None = None,
        retry_backoff: float | None = None,
    ) -> None:
        secret = hide(secret)  # this frame shows in the traceback of a refused argument
        uses_credentials = _check_auth("appid", appid, secret, token_provider, token_store)
        connection = Connection(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            allow_insecure_http=allow_insecure_http,
            hooks=hooks,
            retry_backoff=retry_backoff,
        )
        provider: _ProviderOrMaker
        if not uses_credentials:
            assert token_provider is not None
            provider = token_provider
        else:
            assert appid is not None
            assert secret is not None
            provider = functools.partial(
                OfficialAccountTokenProvider,
                appid,
                secret,
                store=token_store,
                use_stable_token=use_stable_token,
            )
        self.appid = appid
        self._setup(connection, provider, owns_connection=True)

    @classmethod
    def over(
        cls, connection: Connection, *, token_provider: TokenProvider
    ) -> OfficialAccountClient:
        """A client whose calls go over ``connection`` (shared: closing the client leaves it
        open), authenticated by ``token_provider``; how the platforms make their clients."""
        client = cls.__new__(cls)
        client.appid = None
        client._setup(connection, _checked_provider(token_provider), owns_connection=False)
        return client

    def _setup(
        self, connection: Connection, provider: _ProviderOrMaker, *, owns_connection: bool
    ) -> None:
        self._compose(connection, provider, owns_connection=owns_connection)
        self.kf_accounts: KfAccounts = KfAccounts(self._transport)
        self.sessions: OfficialAccountSessions = OfficialAccountSessions(self._transport)
        self.messages: OfficialAccountMessages = OfficialAccountMessages(self._transport)

    def __repr__(self) -> str:
        return f"OfficialAccountClient(appid={getattr(self, 'appid', None)!r})"


class WeComClient(_Client):
    """A WeCom (企业微信) client for one app: ``servicers`` manages the servicers of its 微信客服
    accounts, ``kf_accounts`` the accounts, ``media`` the files messages refer to,
    ``sessions`` who serves a customer, ``customers`` what WeCom tells of them, and
    ``messages`` pulls what customers sent and answers them. Give ``corpid`` and the app's
    ``secret`` (tokens cached per pair in ``token_store``) or a ``token_provider``; batch requests
    run at most ``max_concurrency`` at a time. ``timeout`` bounds each attempt as a whole, so a
    request takes at most ``(max_retries + 1) x timeout`` plus backoff.
    ``allow_insecure_http``, ``hooks`` and ``retry_backoff`` are as for
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
        exchange: ExchangeName = "auto",
        allow_insecure_http: bool = False,
        hooks: Iterable[Any] | None = None,
        retry_backoff: float | None = None,
    ) -> None:
        secret = hide(secret)  # this frame shows in the traceback of a refused argument
        uses_credentials = _check_auth("corpid", corpid, secret, token_provider, token_store)
        _check_concurrency(max_concurrency)
        connection = Connection(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            exchange=exchange,
            allow_insecure_http=allow_insecure_http,
            hooks=hooks,
            retry_backoff=retry_backoff,
        )
        provider: _ProviderOrMaker
        if not uses_credentials:
            assert token_provider is not None
            provider = token_provider
        else:
            assert corpid is not None
            assert secret is not None
            provider = functools.partial(WeComTokenProvider, corpid, secret, store=token_store)
        self.corpid = corpid
        self._setup(connection, provider, max_concurrency, owns_connection=True)

    @classmethod
    def over(
        cls, connection: Connection, *, token_provider: TokenProvider, max_concurrency: int = 8
    ) -> WeComClient:
        """A client whose calls go over ``connection`` (shared: closing the client leaves it
        open), authenticated by ``token_provider``; how the platforms make their clients."""
        _check_concurrency(max_concurrency)
        client = cls.__new__(cls)
        client.corpid = None
        provider = _checked_provider(token_provider)
        client._setup(connection, provider, max_concurrency, owns_connection=False)
        return client

    def _setup(
        self,
        connection: Connection,
        provider: _ProviderOrMaker,
        max_concurrency: int,
        *,
        owns_connection: bool,
    ) -> None:
        self._compose(connection, provider, owns_connection=owns_connection)
        self.max_concurrency = max_concurrency
        # One limiter for every batched call, so that max_concurrency bounds them together.
        limiter = anyio.CapacityLimiter(max_concurrency)
        self.servicers: Servicers = Servicers(self._transport, limiter)
        self.customers: Customers = Customers(self._transport, limiter)
        self.kf_accounts: WeComKfAccounts = WeComKfAccounts(self._transport)
        self.media: Media = Media(self._transport)
        self.sessions: Sessions = Sessions(self._transport)
        self.messages: Messages = Messages(self._transport)

    def __repr__(self) -> str:
        return f"WeComClient(corpid={getattr(self, 'corpid', None)!r})"


def _checked_provider(provider: object) -> TokenProvider:
    if not isinstance(provider, TokenProvider):
        raise TypeError("token_provider must have async get_token() and invalidate(token)")
    return provider


def _check_concurrency(max_concurrency: object) -> None:
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError("max_concurrency must be an int")
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be >= 1")
