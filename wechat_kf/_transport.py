"""The transport: the one httpx client, token injection, errcode -> exception, and retries.

It knows nothing of kf accounts or servicers: a resource calls :meth:`Transport.request` with a
path and gets the decoded JSON body of a successful answer, or a typed :class:`WeChatError`.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import logging
import re
import time
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

import anyio
import httpx

from ._retry import BASE_DELAY, RETRYABLE_ERRCODES, Failure, retry_delay
from .errors import (
    TOKEN_ERRCODES,
    AccessTokenError,
    APIError,
    ClientClosedError,
    InvalidResponseError,
    TransportError,
    api_error,
    token_endpoint_error,
)
from .tokens import TokenProvider

__all__ = ["MAX_BODY_BYTES", "Transport", "check_base_url", "redact"]

logger = logging.getLogger("wechat_kf.transport")

#: A WeChat answer is a few kilobytes; anything this large is not one.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Connections the client opens (and keeps idle) when it owns the httpx client.
DEFAULT_CONNECTIONS = 100

_SECRET_PARAMS = re.compile(r"((?:access_token|corpsecret|secret)=)[^&\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the values of access_token, secret and corpsecret query parameters masked."""
    return _SECRET_PARAMS.sub(r"\1<redacted>", text)


class _RedactingFilter(logging.Filter):
    """Masks secrets in records of loggers we do not own (httpx logs every URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in target.filters):
            target.addFilter(_RedactingFilter())


_install_redaction()


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


def _classify(exc: httpx.TransportError) -> Failure | None:
    """Which retryable failure a network error is; None for one that retrying cannot fix."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure.NOT_SENT
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)):
        return None
    return Failure.MAYBE_SENT


class Transport:
    """Sends API calls for one client: builds the URL, adds the access token on every attempt,
    decodes the body, maps errcodes to exceptions and retries per :func:`retry_delay`."""

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
        self.base_url = check_base_url(base_url)
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
        ``idempotent`` (default: True for GET) allows retrying a request that may have arrived."""
        if self._token_provider is None:  # pragma: no cover - the clients always bind one
            raise RuntimeError("no token provider bound to this transport")
        return await self._send(
            method,
            path,
            params=params,
            json=json,
            files=files,
            idempotent=method == "GET" if idempotent is None else idempotent,
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
    ) -> Mapping[str, Any]:
        """Call a token endpoint (a :class:`~wechat_kf.tokens.TokenFetcher`): same retries, and an
        errcode that means wrong configuration raises ``CredentialError`` at once."""
        return await self._send(
            method, path, params=params, json=json, files=None, idempotent=idempotent, provider=None
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Mapping[str, Any] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        idempotent: bool,
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
                token = await provider.get_token()
                query["access_token"] = token
            started = time.perf_counter()
            failure: Failure | None
            try:
                status, raw = await self._exchange(method, url, path, query, json, files)
            except httpx.TransportError as exc:
                failure = _classify(exc)
                maybe_applied = failure is not Failure.NOT_SENT
                reason = f"{type(exc).__name__} on {method} {path}"
                delay = self._delay(failure, attempt, idempotent)
                if delay is None:
                    raise TransportError(reason, path=path, maybe_applied=maybe_applied) from exc
                self._log_retry(method, path, attempt, reason, delay)
                await anyio.sleep(delay)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if status == 429 or status >= 500:
                failure = Failure.HTTP_429 if status == 429 else Failure.HTTP_5XX
                logger.debug(
                    "%s %s attempt=%d status=%d ms=%.1f", method, path, attempt, status, elapsed
                )
                delay = self._delay(failure, attempt, idempotent)
                if delay is None:
                    raise TransportError(
                        f"HTTP {status} on {method} {path}",
                        path=path,
                        maybe_applied=status != 429,
                        status_code=status,
                    )
                self._log_retry(method, path, attempt, f"HTTP {status}", delay)
                await anyio.sleep(delay)
                continue
            body = _decode(raw, status, path)
            errcode, errmsg = _errcode(body, path)
            if token is not None:
                errmsg = errmsg.replace(token, "<redacted>")
            logger.debug(
                "%s %s attempt=%d errcode=%d ms=%.1f", method, path, attempt, errcode, elapsed
            )
            if errcode == 0:
                return body
            if provider is not None and token is not None and errcode in TOKEN_ERRCODES:
                if refreshed:
                    raise AccessTokenError(errcode, errmsg, path=path)
                # A rejected token costs a refresh, not one of the retries.
                refreshed = True
                attempt -= 1
                logger.warning("%s %s: token rejected (%d), refreshing", method, path, errcode)
                await provider.invalidate(token)
                continue
            failure = RETRYABLE_ERRCODES.get(errcode)
            delay = None if failure is None else self._delay(failure, attempt, idempotent)
            if delay is None:
                raise self._error(errcode, errmsg, path, provider)
            self._log_retry(method, path, attempt, f"errcode {errcode}", delay)
            await anyio.sleep(delay)

    async def _exchange(
        self,
        method: str,
        url: str,
        path: str,
        query: Mapping[str, str],
        json: Mapping[str, Any] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
    ) -> tuple[int, bytes]:
        request = self._http.build_request(method, url, params=query, json=json, files=files)
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            async with aclosing(response.aiter_bytes()) as stream:  # type: ignore[type-var]
                async for chunk in stream:
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise InvalidResponseError(
                            f"response body larger than {MAX_BODY_BYTES} bytes",
                            path=path,
                            status_code=response.status_code,
                        )
                    chunks.append(chunk)
        finally:
            await response.aclose()
        return response.status_code, b"".join(chunks)

    def _delay(self, failure: Failure | None, attempt: int, idempotent: bool) -> float | None:
        if failure is None:
            return None
        return retry_delay(
            failure,
            attempt,
            max_retries=self.max_retries,
            idempotent=idempotent,
            base=self.backoff_base,
        )

    @staticmethod
    def _error(errcode: int, errmsg: str, path: str, provider: TokenProvider | None) -> APIError:
        if provider is None:
            return token_endpoint_error(errcode, errmsg, path)
        return api_error(errcode, errmsg, path)

    @staticmethod
    def _log_retry(method: str, path: str, attempt: int, reason: str, delay: float) -> None:
        logger.warning(
            "%s %s attempt=%d failed (%s); retrying in %.2fs", method, path, attempt, reason, delay
        )

    async def aclose(self) -> None:
        """Refuse further calls and close the httpx client if this transport created it."""
        self.closed = True
        if self._owns_client:
            await self._http.aclose()


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
    errcode = body.get("errcode", 0)
    if isinstance(errcode, str) and errcode.strip().lstrip("-").isdigit():
        errcode = int(errcode)
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        raise InvalidResponseError("errcode is not an integer", path=path)
    errmsg = body.get("errmsg", "")
    return errcode, errmsg if isinstance(errmsg, str) else str(errmsg)
