"""The httpx exchanges: over an ``httpx.AsyncClient`` of the caller's, used as given, or over the
pool the SDK owns, which keeps the cost of a call flat as concurrency grows.

httpcore's connection pool does work in proportion to its requests times its connections at
every arrival and completion, so one pool of 100 connections costs several times the CPU per
call at 50 calls in flight. The owned pool is therefore cut into ``POOLS`` small transports that
never queue: each request goes to the one with the fewest in flight, and past
``DEFAULT_CONNECTIONS`` in flight the others wait their turn here, in arrival order. A request
goes straight to its transport: an ``AsyncClient`` would add, on every call, work the SDK has
no use for (merging default headers and cookies, a cookie jar fed from every answer, an
authentication flow, a redirect loop, a log line).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import anyio
import httpx

from ._exchanges import (
    DEFAULT_CONNECTIONS,
    KEEPALIVE_SECONDS,
    Answer,
    ExchangeFailed,
    Outgoing,
    env_proxy,
    file_headers,
    read_answer,
    request_headers,
)
from ._retry import Failure
from .errors import InvalidResponseError

__all__ = ["POOLS", "HttpxExchange", "PooledHttpxExchange"]

#: The transports the owned pool is cut into (``DEFAULT_CONNECTIONS`` shared equally): enough
#: that none holds more than a few requests at 50 in flight, few enough that a request finds an
#: idle connection in the one it is given (benchmarks: "concurrency").
POOLS = 20

#: What an AsyncClient sends on every request, sent alike (the Accept-Encoding is ours).
_CLIENT_HEADERS = {
    "Accept": "*/*",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_UNFIXABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


class HttpxExchange:
    """The exchange over an httpx.AsyncClient of the caller's, used as given (its limits, its
    pool, its proxies, its hooks) and never closed."""

    name = "httpx"

    def __init__(self, http_client: httpx.AsyncClient) -> None:
        self._http = http_client

    async def send(self, request: Outgoing) -> Answer:
        try:
            built = self._http.build_request(
                request.method,
                request.target,
                content=request.content,
                files=request.files,
                headers=request_headers(request),
            )
        except Exception as exc:  # such as a part's name that does not encode
            raise ExchangeFailed(None, exc, sent=False) from None
        try:
            response = await self._http.send(built, stream=True, follow_redirects=False)
        except Exception as exc:
            raise _failed(exc, request) from None
        return await _answer(response, request)

    async def aclose(self) -> None:
        pass


class PooledHttpxExchange:
    """The httpx exchange the SDK owns, for one base URL: ``DEFAULT_CONNECTIONS`` connections
    kept alive ``KEEPALIVE_SECONDS``, cut into ``POOLS`` transports of an equal share (one TLS
    context, verified; the environment's proxy for the base URL, found once; no redirects),
    each request on the least busy one, and at most ``DEFAULT_CONNECTIONS`` in flight."""

    name = "httpx"

    def __init__(self, base_url: str) -> None:
        share = DEFAULT_CONNECTIONS // POOLS
        limits = httpx.Limits(
            max_connections=share,
            max_keepalive_connections=share,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        # What an AsyncClient would build (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built
        # once: loading the authorities costs milliseconds a context.
        context = httpx.create_ssl_context()
        proxy = env_proxy(base_url)
        self._transports = tuple(
            httpx.AsyncHTTPTransport(verify=context, limits=limits, proxy=proxy)
            for _ in range(POOLS)
        )
        # No bound of httpcore's own on reads and writes: the transport's deadline, entered
        # before any step, always expires first, and an unbounded step costs httpcore no timer
        # (a third of its CPU per call on asyncio). A connect is the exception (_Timeouts).
        self._timeouts = _Timeouts(httpx.Timeout(None).as_dict())
        self._in_flight = [0] * POOLS
        self._turns = _Turns(DEFAULT_CONNECTIONS)
        self._closed = False

    async def send(self, request: Outgoing) -> Answer:
        try:
            if self._closed:
                raise RuntimeError("the connection pool is closed")
            headers = {**_CLIENT_HEADERS, **request_headers(request)}
            built = httpx.Request(
                request.method,
                request.target,
                content=request.content,
                files=request.files,
                headers=headers,
                extensions={"timeout": self._timeouts},
            )
        except Exception as exc:  # such as a part's name that does not encode
            raise ExchangeFailed(None, exc, sent=False) from None
        await self._turns.take()
        in_flight = self._in_flight
        # The least busy transport, the first of equals: a caller calling one at a time keeps
        # using one kept-alive connection.
        index = in_flight.index(min(in_flight))
        in_flight[index] += 1
        try:
            try:
                response = await self._transports[index].handle_async_request(built)
            except Exception as exc:
                raise _failed(exc, request) from None
            return await _answer(response, request)
        finally:
            in_flight[index] -= 1
            self._turns.give()

    async def aclose(self) -> None:
        self._closed = True
        failed: BaseException | None = None
        for transport in self._transports:  # every one, even after one failed to close
            try:
                await transport.aclose()
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed


class _Timeouts(dict[str, "float | None"]):
    """httpcore's per-step timeouts for the owned pool: none, but a connect (TCP and TLS) ends
    just inside the attempt's deadline, worked out when httpcore asks, so only when it makes a
    connection. Cancelled mid-handshake, httpcore would leave the socket to the garbage
    collector; its own timeout makes it close the socket (and a connect that timed out was
    never sent)."""

    def get(self, key: str, default: Any = None) -> Any:
        if key == "connect":
            deadline = anyio.current_effective_deadline()
            if deadline != math.inf:
                return max((deadline - anyio.current_time()) * 0.9, 0.001)
        return super().get(key, default)


class _Turns:
    """At most ``total`` requests in flight; the others wait in arrival order. Taking a free turn
    does not pass through the event loop (the cost of a call that need not wait)."""

    def __init__(self, total: int) -> None:
        self._free = total
        self._waiting: deque[anyio.Event] = deque()

    async def take(self) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        handed = anyio.Event()
        self._waiting.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():  # handed a turn while being cancelled: the next waiter takes it
                self.give()
            else:
                self._waiting.remove(handed)
            raise

    def give(self) -> None:
        if self._waiting:
            self._waiting.popleft().set()  # the turn passes on, never back to the free count
        else:
            self._free += 1


async def _answer(response: httpx.Response, request: Outgoing) -> Answer:
    """The status, the body read through ``_body`` and (raw requests) the file headers of
    ``response``, which is closed in all cases; ExchangeFailed if the body cannot be had."""
    try:
        try:
            status = response.status_code
            # The stream itself, not aiter_raw(): a response a transport built in memory was
            # already read (and decoded, without a bound) by httpx, but its stream still holds
            # the raw bytes.
            stream = response.stream
            if not isinstance(stream, httpx.AsyncByteStream):
                raise TypeError("the http_client's transport returned a sync stream")
            codings = response.headers.get_list("Content-Encoding")
            body = await read_answer(stream, status, codings, request)
            headers = file_headers(response.headers) if request.raw else None
        finally:
            await response.aclose()
    except InvalidResponseError:
        raise
    except Exception as exc:
        raise _failed(exc, request) from None
    return status, body, headers


def _failed(exc: Exception, request: Outgoing) -> Exception:
    """What a library's exception is raised as: an answer httpx could not decode is an
    InvalidResponseError; anything else an ExchangeFailed, classified."""
    if isinstance(exc, httpx.DecodingError):
        return InvalidResponseError("the body does not decode", path=request.path)
    return ExchangeFailed(_classify(exc), exc)


def _classify(exc: Exception) -> Failure | None:
    if isinstance(exc, _NEVER_SENT):
        return Failure.NOT_SENT
    if isinstance(exc, httpx.TransportError) and not isinstance(exc, _UNFIXABLE):
        return Failure.MAYBE_SENT
    return None
