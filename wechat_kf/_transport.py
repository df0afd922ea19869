"""The transport: the one httpx client, token injection, errcode -> exception, and retries.

It knows nothing of kf accounts or servicers: a resource calls :meth:`Transport.request` with a
path and gets the decoded JSON body of a successful answer, or a typed :class:`WeChatError`.
Each attempt runs under one deadline (connect, send, headers and the whole body); whatever goes
wrong in it becomes a WeChatError, and one place decides whether to try again.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
import attrs
import httpx

from ._body import ACCEPT_ENCODING, MAX_BODY_BYTES, read_body
from ._retry import BASE_DELAY, RETRYABLE_ERRCODES, Failure, retry_delay
from ._secrets import hide, hide_fields, install_log_redaction, redact
from ._serde import as_int
from .errors import (
    TOKEN_ERRCODES,
    AccessTokenError,
    ClientClosedError,
    InvalidResponseError,
    TransportError,
    WeChatError,
    api_error,
    token_endpoint_error,
)
from .tokens import TokenProvider

__all__ = ["MAX_BODY_BYTES", "Transport", "check_base_url", "redact"]

logger = logging.getLogger("wechat_kf.transport")

#: Connections the client opens (and keeps idle) when it owns the httpx client.
DEFAULT_CONNECTIONS = 100

install_log_redaction()


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash; ValueError unless it is https, or http on loopback."""
    if not isinstance(base_url, str):
        raise TypeError("base_url must be a str")
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"invalid base_url: {exc}") from None
    if url.scheme == "https" and url.host:
        return base_url.rstrip("/")
    if url.scheme == "http" and _is_loopback(url.host):
        return base_url.rstrip("/")
    raise ValueError("base_url must be https:// (plain http:// only on a loopback host)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_UNFIXABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


def _classify(exc: Exception) -> Failure | None:
    """Which retryable failure an exception of the exchange is; None for one that retrying
    cannot fix (and for anything that is not a network error)."""
    if isinstance(exc, _NEVER_SENT):
        return Failure.NOT_SENT
    if isinstance(exc, httpx.TransportError) and not isinstance(exc, _UNFIXABLE):
        return Failure.MAYBE_SENT
    return None


@attrs.frozen
class _Failed:
    """An attempt that failed: what the retry policy sees (None: never retried) and what the
    caller receives once the policy gives up."""

    failure: Failure | None
    error: WeChatError
    reason: str


@attrs.frozen
class _TokenRejected:
    """A business call answered 40001 / 40014 / 42001: the token must be replaced."""

    errcode: int
    errmsg: str


class Transport:
    """Sends API calls for one client: builds the URL, adds the access token on every attempt,
    bounds each attempt by ``timeout``, decodes the body, maps errcodes to exceptions and retries
    per :func:`retry_delay`."""

    #: The first retry waits about this long; each further one twice as long.
    backoff_base: float = BASE_DELAY

    def __init__(
        self,
        *,
        base_url: str,
        http_client: httpx.AsyncClient | None,
        timeout: float,
        max_retries: int,
    ) -> None:
        install_log_redaction()  # again: loggers created since import need the filter too
        self.base_url = check_base_url(base_url)
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self._owns_client = http_client is None
        if http_client is None:
            limits = httpx.Limits(
                max_connections=DEFAULT_CONNECTIONS,
                max_keepalive_connections=DEFAULT_CONNECTIONS,
            )
            http_client = httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
        self._http = http_client
        self._token_provider: TokenProvider | None = None
        self.closed = False

    def bind(self, token_provider: TokenProvider) -> None:
        """Use ``token_provider`` for every business call."""
        self._token_provider = token_provider

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """Call a business API with the access token and return the JSON body of its success;
        ``idempotent`` (default: True for GET) allows repeating a request that may have been
        applied (a 5xx, a lost answer, an expired deadline)."""
        if self._token_provider is None:  # pragma: no cover - the clients always bind one
            raise RuntimeError("no token provider bound to this transport")
        return await self._send(
            method,
            path,
            params=params,
            json=json,
            files=files,
            idempotent=method == "GET" if idempotent is None else idempotent,
            once=False,
            provider=self._token_provider,
        )

    async def fetch_token(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool,
        once: bool = False,
    ) -> Mapping[str, Any]:
        """Call a token endpoint (a :class:`~wechat_kf.tokens.TokenFetcher`): same retries, and an
        errcode that means wrong configuration raises ``CredentialError`` at once; ``once``
        sends the request again only if it never left (a forced refresh). The credentials in the
        answer come back as Secrets."""
        body = await self._send(
            method,
            path,
            params=params,
            json=json,
            files=None,
            idempotent=idempotent,
            once=once,
            provider=None,
        )
        hide_fields(body)
        return body

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Mapping[str, Any] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        idempotent: bool,
        once: bool,
        provider: TokenProvider | None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        attempt = 0
        refreshed = False
        while True:
            if self.closed:
                raise ClientClosedError("the client is closed")
            attempt += 1
            query = dict(params or {})
            token = None
            if provider is not None:
                token = hide(await provider.get_token())
                query["access_token"] = token
            outcome = await self._attempt(method, url, path, query, json, files, attempt, token)
            if isinstance(outcome, dict):
                return outcome
            if isinstance(outcome, _TokenRejected):
                assert provider is not None
                assert token is not None
                if refreshed:
                    raise AccessTokenError(outcome.errcode, outcome.errmsg, path=path)
                # A rejected token costs a refresh, not one of the retries.
                refreshed = True
                attempt -= 1
                logger.warning(
                    "%s %s: token rejected (%d), refreshing", method, path, outcome.errcode
                )
                await provider.invalidate(token)
                continue
            delay = None
            if outcome.failure is not None:
                delay = retry_delay(
                    outcome.failure,
                    attempt,
                    max_retries=self.max_retries,
                    idempotent=idempotent,
                    once=once,
                    base=self.backoff_base,
                )
            if delay is None:
                # Raised here, in a frame that holds no request and no plain secret, with no
                # traceback of its own: what an error tracker records of it shows nothing secret.
                raise outcome.error.with_traceback(None)
            logger.warning(
                "%s %s attempt=%d failed (%s); retrying in %.2fs",
                method,
                path,
                attempt,
                outcome.reason,
                delay,
            )
            await anyio.sleep(delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        query: Mapping[str, str],
        json: Mapping[str, Any] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        attempt: int,
        token: str | None,
    ) -> dict[str, Any] | _Failed | _TokenRejected:
        """One request under the deadline: the body of a success, or what went wrong (never
        raised from here: this frame holds the request, whose URL carries the token)."""
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        content = None
        if json is not None:
            content = json_body(json)
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(
            method, url, params=query, content=content, files=files, headers=headers
        )
        try:
            return await self._answer(request, method, path, attempt, token)
        except InvalidResponseError as exc:
            exc.__context__ = None
            return _Failed(None, exc, "unreadable answer")

    async def _answer(
        self, request: httpx.Request, method: str, path: str, attempt: int, token: str | None
    ) -> dict[str, Any] | _Failed | _TokenRejected:
        started = time.perf_counter()
        answer: tuple[int, bytes] | None = None
        with anyio.move_on_after(self.timeout):
            try:
                answer = await self._exchange(request, path)
            except InvalidResponseError:
                raise
            except Exception as exc:
                return self._exchange_failed(exc, method, path)
        elapsed = (time.perf_counter() - started) * 1000
        if answer is None:
            error = TransportError(
                f"no complete answer to {method} {path} within {self.timeout:g} s",
                path=path,
                maybe_applied=True,
            )
            return _Failed(Failure.DEADLINE, error, f"no answer within {self.timeout:g} s")
        status, raw = answer
        if status == 429 or status >= 500:
            logger.debug(
                "%s %s attempt=%d status=%d ms=%.1f", method, path, attempt, status, elapsed
            )
            error = TransportError(
                f"HTTP {status} on {method} {path}",
                path=path,
                # 429 is a refusal before processing; a 5xx may come after the request applied.
                maybe_applied=status != 429,
                status_code=status,
            )
            return _Failed(
                Failure.HTTP_429 if status == 429 else Failure.HTTP_5XX, error, f"HTTP {status}"
            )
        body = _decode(raw, status, path)
        errcode, errmsg = _errcode(body, path)
        if token is not None:
            errmsg = errmsg.replace(token, "<redacted>")
        logger.debug("%s %s attempt=%d errcode=%d ms=%.1f", method, path, attempt, errcode, elapsed)
        if errcode == 0:
            return body
        if token is not None and errcode in TOKEN_ERRCODES:
            return _TokenRejected(errcode, errmsg)
        if token is None:
            api = token_endpoint_error(errcode, errmsg, path)
        else:
            api = api_error(errcode, errmsg, path)
        return _Failed(RETRYABLE_ERRCODES.get(errcode), api, f"errcode {errcode}")

    def _exchange_failed(self, exc: Exception, method: str, path: str) -> _Failed:
        """What an exception raised by the exchange means; nothing but a WeChatError leaves."""
        if self.closed:
            return _Failed(None, ClientClosedError("the client is closed"), "closed")
        if isinstance(exc, httpx.DecodingError):
            error: WeChatError = InvalidResponseError("the body does not decode", path=path)
            return _Failed(None, error, "undecodable body")
        failure = _classify(exc)
        # Summarised, not chained: httpx's exception holds the request, whose URL (and the
        # frames of its traceback) carry the token or the corpsecret.
        detail = redact(str(exc))[:200]
        error = TransportError(
            f"{type(exc).__name__} on {method} {path}" + (f": {detail}" if detail else ""),
            path=path,
            maybe_applied=failure is not Failure.NOT_SENT,
        )
        return _Failed(failure, error, type(exc).__name__)

    async def _exchange(self, request: httpx.Request, path: str) -> tuple[int, bytes]:
        """Send ``request`` and read its answer, bounded in size and decoded by us (httpx's own
        decoding has no bound on what it inflates)."""
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            status = response.status_code
            # The stream itself, not aiter_raw(): a response a transport built in memory was
            # already read (and decoded, without a bound) by httpx, but its stream still holds
            # the raw bytes.
            stream = response.stream
            if not isinstance(stream, httpx.AsyncByteStream):
                raise TypeError("the http_client's transport returned a sync stream")
            body = await read_body(
                stream,
                content_encoding=response.headers.get("content-encoding", ""),
                decode=200 <= status < 300,
                path=path,
                status=status,
            )
        finally:
            await response.aclose()
        return status, body

    async def aclose(self) -> None:
        """Refuse further calls and close the httpx client if this transport created it."""
        self.closed = True
        if self._owns_client:
            await self._http.aclose()


def json_body(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as the bytes of a request body: UTF-8 JSON, never ``\\u`` escapes (WeChat has
    shown such escapes literally), whatever the installed httpx would do with ``json=``."""
    text = jsonlib.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _decode(raw: bytes, status: int, path: str) -> dict[str, Any]:
    if not 200 <= status < 300:
        raise InvalidResponseError(
            f"unexpected HTTP status {status}", path=path, status_code=status
        )
    try:
        body = jsonlib.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidResponseError(
            f"body is not JSON ({len(raw)} bytes)", path=path, status_code=status
        ) from None
    if not isinstance(body, dict):
        raise InvalidResponseError("body is not a JSON object", path=path, status_code=status)
    return body


def _errcode(body: Mapping[str, Any], path: str) -> tuple[int, str]:
    errcode = as_int(body.get("errcode", 0))
    if errcode is None:
        raise InvalidResponseError("errcode is not an integer", path=path)
    errmsg = body.get("errmsg", "")
    return errcode, errmsg if isinstance(errmsg, str) else str(errmsg)
