"""The exchanges: how one request's bytes go over the wire and its answer comes back, with httpx or
with aiohttp (asyncio only). Both honour one contract: the answer is read and decoded through
``_body`` (capped, bounded decompression), redirects are never followed, TLS is verified, and a
network failure is raised as :class:`ExchangeFailed`, classified as never sent, maybe sent or not
retryable, with a summary that holds no secret. The deadline of an attempt is the transport's.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import attrs
import sniffio

from ._body import ACCEPT_ENCODING, MAX_BODY_BYTES, read_body
from ._retry import Failure
from ._secrets import install_log_redaction, redact
from .errors import InvalidResponseError

__all__ = [
    "DEFAULT_CONNECTIONS",
    "KEEPALIVE_SECONDS",
    "AiohttpExchange",
    "Answer",
    "Exchange",
    "ExchangeFailed",
    "Outgoing",
    "env_proxy",
    "file_headers",
    "read_answer",
    "request_headers",
    "with_query",
]

#: Connections an exchange opens (and keeps alive) when the SDK owns its pool.
DEFAULT_CONNECTIONS = 100
#: How long both exchanges keep an idle connection. Over TLS with a 50 ms round trip a new
#: connection costs a round trip more and about 4 ms of CPU, several times a whole call, so idle
#: connections are kept longer than httpx's 5 s default; but not much past it, because a server
#: that drops an idle connection just as a request goes out leaves that request maybe-applied,
#: and front ends commonly drop idle connections after 30 to 75 s (benchmarks: "handshake").
KEEPALIVE_SECONDS = 15.0


@attrs.define
class Outgoing:
    """One request, as the transport hands it to an exchange (the query holds the token, as a
    Secret). Never changed once made; not frozen only because one is made per attempt and a
    frozen class costs three times as much to make."""

    method: str
    url: str
    path: str
    query: Mapping[str, str]
    #: Not in the repr: a token fetch's body holds the secret.
    content: bytes | None = attrs.field(default=None, repr=False)
    content_type: str | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    #: The most bytes the answer may have, before and after decoding.
    max_body: int = MAX_BODY_BYTES
    #: The caller wants a file, not JSON: the exchange hands back the headers that describe it.
    raw: bool = False
    #: The URL with its query when the sender has it already (see :attr:`target`).
    built_target: str | None = attrs.field(default=None, kw_only=True, repr=False)

    @property
    def target(self) -> str:
        """The URL with its query, whole, so that neither library merges a query into a parsed
        URL (for httpx that is a second parse; yarl caches a whole string)."""
        if self.built_target is not None:
            return self.built_target
        return with_query(self.url, self.query)


def with_query(url: str, query: Mapping[str, str]) -> str:
    """``url`` with ``query`` encoded onto it (none: ``url`` as it is)."""
    return f"{url}?{urlencode(query)}" if query else url


class ExchangeFailed(Exception):
    """The network failed: ``failure`` is how the retry policy sees it (None: never retried),
    ``kind`` the library's exception type and ``detail`` its message, redacted."""

    def __init__(self, failure: Failure | None, cause: BaseException, *, sent: bool = True) -> None:
        self.failure = failure
        self.kind = type(cause).__name__
        self.detail = redact(str(cause))[:200]
        #: False when the request could not even be built: nothing left this process.
        self.sent = sent
        super().__init__(self.kind)


#: What came back: the status, the bounded and decoded body, and for a ``raw`` request the
#: headers that describe a file (``content-type``, ``content-disposition``), else None.
Answer = tuple[int, bytes, "dict[str, str] | None"]
_FILE_HEADERS = ("content-type", "content-disposition")


class Exchange(Protocol):
    """Sends one request and returns its status and its bounded, decoded body."""

    name: str

    async def send(self, request: Outgoing) -> Answer:
        """The status, body and (raw requests) file headers of the answer;
        InvalidResponseError for an unreadable body, ExchangeFailed for a network failure."""

    async def aclose(self) -> None:
        """Close what the exchange owns."""


_ASYNCIO_ONLY = "exchange='aiohttp' runs on asyncio only, not on {}; use exchange='httpx'"


class AiohttpExchange:
    """The exchange over an aiohttp session the SDK owns (asyncio only: made on another event
    loop it is a ValueError at once; extra ``aiohttp``): 100 connections kept alive, no
    decompression, redirects or timeouts of aiohttp's own (the transport's deadline bounds each
    attempt), the proxy from the environment as httpx does."""

    name = "aiohttp"

    def __init__(self, base_url: str) -> None:
        try:
            running = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            running = "asyncio"  # made outside an event loop: the first call checks again
        if running != "asyncio":
            raise ValueError(_ASYNCIO_ONLY.format(running))
        try:
            import aiohttp
        except ImportError as exc:
            raise ImportError("exchange='aiohttp' needs: pip install 'wechat-kf[aiohttp]'") from exc
        self._aiohttp = aiohttp
        self._session: Any = None
        self._proxy = env_proxy(base_url)
        install_log_redaction()  # aiohttp's loggers exist now

    def _open(self) -> Any:
        if self._session is None:
            running = sniffio.current_async_library()
            if running != "asyncio":
                raise ValueError(_ASYNCIO_ONLY.format(running))
            aiohttp = self._aiohttp
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=DEFAULT_CONNECTIONS,
                    limit_per_host=0,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                ),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
                auto_decompress=False,
                # Sent on every request without merging a mapping of ours into each one.
                headers={"Accept-Encoding": ACCEPT_ENCODING},
                # Not trust_env: aiohttp then looks the proxy up in a thread on every request,
                # about 1 ms of CPU each; the client's one host has one proxy, found once.
                trust_env=False,
            )
            # aiohttp >= 3.10 silently sends an idempotent request again when a kept-alive
            # connection drops; only our policy may decide what is sent again, and how often.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def send(self, request: Outgoing) -> Answer:
        session = self._open()
        data: Any = request.content
        ct = request.content_type
        if request.files:
            try:
                data = _form(self._aiohttp, request.files)()
            except Exception as exc:
                raise ExchangeFailed(None, exc, sent=False) from None
        try:
            async with session.request(
                request.method,
                request.target,
                data=data,
                # Besides the session's: a body's type (a multipart body brings its own).
                headers=None if ct is None else {"Content-Type": ct},
                allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                status = response.status
                chunks: AsyncIterable[bytes] = response.content.iter_any()
                codings = response.headers.getall("Content-Encoding", [])
                body = await read_answer(chunks, status, codings, request)
                headers = file_headers(response.headers) if request.raw else None
        except InvalidResponseError:
            raise
        except Exception as exc:
            raise ExchangeFailed(self._classify(exc), exc) from None
        return status, body, headers

    def _classify(self, exc: Exception) -> Failure | None:
        aiohttp = self._aiohttp
        # Connecting failed (refused, DNS, TLS, proxy): the request never left. Checked first:
        # ClientConnectorError is also a ClientOSError.
        if isinstance(exc, aiohttp.ClientConnectorError):
            return Failure.NOT_SENT
        if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
            return Failure.MAYBE_SENT
        if isinstance(exc, (aiohttp.ClientOSError, aiohttp.ClientResponseError)):
            return Failure.MAYBE_SENT
        if isinstance(exc, (ConnectionError, OSError)):
            return Failure.MAYBE_SENT
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def read_answer(
    chunks: AsyncIterable[bytes], status: int, codings: Sequence[str], request: Outgoing
) -> bytes:
    """The answer's body, decoded only for a 2xx (anything else is only drained). ``codings`` is
    every Content-Encoding line of the answer, in order: a header sent on several lines means its
    values joined by commas (RFC 9110, 5.3), so both exchanges must hand over every line, not
    whichever one their library's ``get`` returns."""
    return await read_body(
        chunks,
        content_encoding=", ".join(codings),
        decode=200 <= status < 300,
        path=request.path,
        status=status,
        limit=request.max_body,
    )


def file_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers that say what a downloaded file is (both libraries' header maps are
    case-insensitive), the first line of each."""
    return {name: headers[name] for name in _FILE_HEADERS if name in headers}


def _form(aiohttp: Any, files: Mapping[str, tuple[str, bytes, str]]) -> Any:
    """What builds the multipart body of ``files`` for aiohttp (its form is built lazily, when
    sent: calling the result makes it now, so that a part that cannot be written fails here)."""

    def build() -> Any:
        # Not percent-encoded: a UTF-8 filename, as httpx and browsers send it.
        form = aiohttp.FormData(quote_fields=False)
        for field, (filename, payload, content_type) in files.items():
            form.add_field(field, payload, filename=filename, content_type=content_type)
        return form()

    return build


def env_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, and
    NO_PROXY to bypass), or None."""
    url = urlsplit(base_url)
    if url.hostname is None or proxy_bypass(url.hostname):
        return None
    proxies = getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


def request_headers(request: Outgoing) -> dict[str, str]:
    headers = {"Accept-Encoding": ACCEPT_ENCODING}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    return headers
