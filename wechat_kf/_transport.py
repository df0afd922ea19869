"""The transport: token injection, errcode -> exception, and retries, over one exchange (httpx, or
aiohttp on asyncio: see ``_exchanges``).

It knows nothing of kf accounts or servicers: a resource calls :meth:`Transport.request` with a
path and gets the decoded JSON body of a successful answer, or a typed :class:`WeChatError`.
Each attempt runs under one deadline (connect, send, headers and the whole body); whatever goes
wrong in it becomes a WeChatError, and one place decides whether to try again.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import anyio
import attrs
import httpx

from ._base_url import check_base_url
from ._body import MAX_BODY_BYTES
from ._exchanges import Answer, Exchange, ExchangeFailed, Outgoing, with_query
from ._json_body import FILE, FILE_HEADERS, JSON, decode, errcode_of, is_json, json_body
from ._requestid import parse_rid
from ._retry import RETRYABLE_ERRCODES, Failure, retry_delay
from ._secrets import Secret, hide, hide_fields, install_log_redaction, redact
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
from .hooks import Attempt, AttemptResult, Hooks, Retry
from .tokens import TokenProvider

__all__ = ["MAX_BODY_BYTES", "Transport", "check_base_url", "redact"]

install_log_redaction()


@attrs.frozen
class _Failed:
    """An attempt that failed: what the retry policy sees (None: never retried), what the
    caller receives once the policy gives up, and the HTTP status and errcode when there were."""

    failure: Failure | None
    error: WeChatError
    reason: str
    status: int | None = None
    errcode: int | None = None


@attrs.frozen
class _TokenRejected:
    """A business call answered 40001 / 40014 / 42001: the token must be replaced."""

    errcode: int
    errmsg: str


class CallKind(enum.Enum):
    """What a call is: an API call with the access token, or a token endpoint."""

    BUSINESS = "business"
    TOKEN = "token"


@attrs.define
class _Call:
    """One API call as the send loop sees it: a business call carries the access token, a token
    call fetches one (its refusals mean a wrong configuration). Never changed once made; not
    frozen only because one is made per call and a frozen class costs three times as much to
    make."""

    kind: CallKind
    method: str
    path: str
    params: Mapping[str, str] | None
    json: Mapping[str, Any] | None
    files: Mapping[str, tuple[str, bytes, str]] | None
    idempotent: bool
    once: bool = False
    #: A file download: the answer is bytes unless it is WeChat's JSON error.
    raw: bool = False
    max_body: int = MAX_BODY_BYTES
    #: The id that makes a repeat of this call harmless (a WeCom msgid): shown on its failures.
    idempotency_key: str | None = None


class Transport:
    """Sends API calls for one client over ``exchange``: builds the URL on ``base_url`` (already
    checked), adds the access token on every attempt, bounds each attempt by ``timeout``, decodes
    the body, maps errcodes to exceptions and retries per :func:`retry_delay`."""

    def __init__(
        self,
        exchange: Exchange,
        *,
        base_url: str,
        timeout: float,
        max_retries: int,
        hooks: Hooks | None = None,
        backoff: Callable[[], float] = lambda: 1.0,
    ) -> None:
        install_log_redaction()  # again: loggers created since import need the filter too
        self.base_url = base_url
        url = httpx.URL(self.base_url)
        # Where every attempt goes, for the hooks (OpenTelemetry's server.address / server.port).
        self._server = (url.host, url.port or (443 if url.scheme == "https" else 80))
        self.timeout: float = float(timeout)
        self.max_retries = max_retries
        self._exchange = exchange
        self.hooks: Hooks = hooks if hooks is not None else Hooks(None)
        # What every wait between retries is multiplied by, asked at each wait.
        self._backoff = backoff
        self._token_provider: TokenProvider | None = None
        self.closed: bool = False
        # The URLs with their queries built lately, by path and query: a client calls a few
        # paths with the same token for hours, and encoding the token is a good part of what
        # the SDK does per call. Secrets, like the token they hold.
        self._targets: dict[tuple[object, ...], str] = {}

    @property
    def exchange(self) -> str:
        """Which exchange carries the requests: "httpx" or "aiohttp"."""
        return self._exchange.name

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
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Call a business API with the access token and return the JSON body of its success;
        ``idempotent`` (default: True for GET) allows repeating a request that may have been
        applied (a 5xx, a lost answer, an expired deadline). ``idempotency_key`` is the id in the
        request that makes such a repeat harmless (WeChat refuses a second use of it): a failure
        carries it as ``msgid``, and a refusal after an attempt that may have applied is a
        ``TransportError(maybe_applied=True)``, since the refusal may be of the repeat."""
        if self._token_provider is None:  # pragma: no cover - the clients always bind one
            raise RuntimeError("no token provider bound to this transport")
        call = _Call(
            CallKind.BUSINESS,
            method,
            path,
            params,
            json,
            files,
            idempotent=method == "GET" if idempotent is None else idempotent,
            idempotency_key=idempotency_key,
        )
        return await self._send(call, self._token_provider)

    async def download(
        self, path: str, *, params: Mapping[str, str], max_bytes: int
    ) -> tuple[bytes, dict[str, str]]:
        """GET a file with the access token: its bytes (at most ``max_bytes``, read into memory
        as they arrive) and the headers that describe it (``content-type``,
        ``content-disposition``); an answer that is WeChat's JSON error raises as any call's
        would. Retried like any GET."""
        if self._token_provider is None:  # pragma: no cover - the clients always bind one
            raise RuntimeError("no token provider bound to this transport")
        call = _Call(
            CallKind.BUSINESS, "GET", path, params, None, None, True, raw=True, max_body=max_bytes
        )
        body = await self._send(call, self._token_provider)
        return body[FILE], body[FILE_HEADERS]

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
        call = _Call(CallKind.TOKEN, method, path, params, json, None, idempotent, once)
        body = await self._send(call, None)
        hide_fields(body)
        return body

    async def _send(self, call: _Call, provider: TokenProvider | None) -> dict[str, Any]:
        """Attempts until one succeeds or the policy gives up: each attempt returns an outcome,
        and this is the one place that decides what follows, tells the hooks and sleeps. The
        error a call ends with is told as its caller needs it (see :func:`_settled`) and raised
        from this frame with no traceback of the attempts' frames."""
        url = self.base_url + call.path
        attempt = retries = 0
        refreshed = maybe_applied = False
        try:
            while True:
                if self.closed:
                    raise ClientClosedError("the client is closed")
                attempt += 1
                token = None
                if call.kind is CallKind.BUSINESS:
                    assert provider is not None
                    token = hide(await provider.get_token())
                # The request is never a local of this frame, whose locals an error tracker
                # records with the error it raises: its body may hold a credential.
                if self.hooks.watching_attempts():
                    outcome = await self._watched(
                        self._outgoing(call, url, token), call, attempt, token
                    )
                else:
                    outcome = await self._answer(self._outgoing(call, url, token), call, token)
                if isinstance(outcome, tuple):
                    return outcome[0]
                if isinstance(outcome, _TokenRejected):
                    if refreshed:
                        raise AccessTokenError(outcome.errcode, outcome.errmsg, path=call.path)
                    # A rejected token costs a refresh, not one of the retries.
                    refreshed = True
                    reason, delay = "token rejected", 0.0
                    errcode: int | None = outcome.errcode
                else:
                    step = None
                    if outcome.failure is not None:
                        step = retry_delay(
                            outcome.failure,
                            retries + 1,
                            max_retries=self.max_retries,
                            idempotent=call.idempotent,
                            once=call.once,
                        )
                    if step is None:
                        raise outcome.error
                    error = outcome.error
                    if isinstance(error, TransportError) and error.maybe_applied:
                        maybe_applied = True
                    retries += 1
                    reason, errcode = outcome.reason, outcome.errcode
                    delay = step * self._backoff()
                self.hooks.retry(
                    Retry(call.method, call.path, attempt, call.kind.value, reason, delay, errcode)
                )
                if isinstance(outcome, _TokenRejected):
                    assert provider is not None
                    assert token is not None
                    await provider.invalidate(token)
                else:
                    await anyio.sleep(delay)
        except WeChatError as error:
            settled = _settled(error, call, maybe_applied)
            raise settled.with_traceback(None) from settled.__cause__

    def _outgoing(self, call: _Call, url: str, token: str | None) -> Outgoing:
        """The request of one attempt of ``call`` (the token is the attempt's own)."""
        query: Mapping[str, str] = call.params or {}
        if token is not None:
            query = {**query, "access_token": token}
        content = content_type = None
        if call.json is not None:
            content, content_type = json_body(call.json), JSON
        return Outgoing(
            call.method, url, call.path, query, content, content_type, call.files, call.max_body,
            call.raw, built_target=self._target(url, query),
        )  # fmt: skip

    async def _watched(
        self, request: Outgoing, call: _Call, attempt: int, token: str | None
    ) -> tuple[dict[str, Any], int] | _Failed | _TokenRejected:
        """:meth:`_answer` under the hooks, which hear of the attempt and its end."""
        hooks = self.hooks
        info = Attempt(
            call.method, call.path, attempt, call.idempotent, call.kind.value, *self._server,
            _shown_url(request.url, request.query),
        )  # fmt: skip
        started = time.perf_counter()
        with hooks.attempt(info):
            outcome = await self._answer(request, call, token)
            hooks.attempt_end(_result(info, time.perf_counter() - started, outcome))
        return outcome

    async def _answer(
        self, request: Outgoing, call: _Call, token: str | None
    ) -> tuple[dict[str, Any], int] | _Failed | _TokenRejected:
        """One request under the deadline: the body of a success (with its status, for the
        hooks), or what went wrong (never raised from here: this frame holds the request, whose
        URL carries the token)."""
        answer: Answer | None = None
        try:
            with anyio.move_on_after(self.timeout):
                answer = await self._exchange.send(request)
            if answer is None:
                error = TransportError(
                    f"no complete answer to {call.method} {call.path} within {self.timeout:g} s",
                    path=call.path,
                    maybe_applied=True,
                )
                return _Failed(Failure.DEADLINE, error, f"no answer within {self.timeout:g} s")
            return _judge(answer, call, token)
        except ExchangeFailed as exc:
            return self._exchange_failed(exc, call.method, call.path, token)
        except InvalidResponseError as exc:
            exc.__context__ = None
            return _Failed(None, exc, "unreadable answer", exc.status_code)

    def _target(self, url: str, query: Mapping[str, str]) -> str:
        """``url`` with ``query``, from the ones built lately when it is one of them."""
        # Kept only when every name and value is a plain str (or a Secret): a key matches by
        # ==, and an equal value of another type (True and 1, a str enum's member and its
        # value) is written otherwise.
        if not all(type(k) is str and type(v) in _PLAIN for k, v in query.items()):
            return hide(with_query(url, {k: _text(v) for k, v in query.items()}))
        key = (url, *query.items())
        try:
            return self._targets[key]
        except KeyError:
            pass
        if len(self._targets) >= _TARGETS_KEPT:
            self._targets.clear()
        target = self._targets[key] = hide(with_query(url, query))
        return target

    def _exchange_failed(
        self, exc: ExchangeFailed, method: str, path: str, token: str | None
    ) -> _Failed:
        """The failure the exchange classified, as the error the caller may receive: summarised,
        never chained (the library's exception holds the URL, token and all)."""
        if self.closed:
            return _Failed(None, ClientClosedError("the client is closed"), "closed")
        detail = f": {exc.detail}" if exc.detail else ""
        if token is not None:  # a server may echo it back in whatever it got wrong
            detail = detail.replace(token, "<redacted>")
        error = TransportError(
            f"{exc.kind} on {method} {path}{detail}",
            path=path,
            maybe_applied=exc.sent and exc.failure is not Failure.NOT_SENT,
        )
        return _Failed(exc.failure, error, exc.kind)

    async def aclose(self) -> None:
        """Refuse further calls (the exchange is its connection's to close)."""
        self.closed = True


#: How many URLs with their queries a transport keeps (a client's paths times its tokens and
#: per-account queries; past that the lot is dropped and built again).
_TARGETS_KEPT = 256
_PLAIN = frozenset({str, Secret})


def _text(value: str) -> str:
    """A query value as it goes on the wire: a str subclass (a str enum's member) by its text,
    never by what its ``str()`` says; anything else (an int a caller passed) as ``urlencode``
    writes it."""
    return str.__str__(value) if isinstance(value, str) else value


def _settled(error: WeChatError, call: _Call, maybe_applied: bool) -> WeChatError:
    """The error ``call`` ends with, as its caller must read it. A network failure of the call
    stays maybe-applied once any attempt may have applied (a later attempt that never left does
    not undo an earlier one), and names the call's key (a WeCom msgid) if it has one. After an
    attempt that may have applied, a keyed call's other endings (a refusal, a rejected token, an
    unreadable answer, the client closed) may be the repeat's: a
    ``TransportError(maybe_applied=True)`` with the error as its cause. A token fetch's own
    failure is left as it is (its ``path`` is the token endpoint's), but for a token fetched by
    GET, which nothing can have applied: it is never maybe-applied."""
    key = call.idempotency_key
    if isinstance(error, TransportError) and error.path == call.path:
        reads = call.kind is CallKind.TOKEN and call.method == "GET"
        error.maybe_applied = not reads and (error.maybe_applied or maybe_applied)
        error.msgid = key
        return error
    if key is None or not maybe_applied:
        return error
    wrapped = TransportError(
        f"{call.method} {call.path} ended with {type(error).__name__} after an attempt that may "
        "have applied",
        path=call.path,
        maybe_applied=True,
        status_code=getattr(error, "status_code", None),
        msgid=key,
    )
    wrapped.__cause__ = error.with_traceback(None)
    return wrapped


def _judge(
    answer: Answer, call: _Call, token: str | None
) -> tuple[dict[str, Any], int] | _Failed | _TokenRejected:
    """What an answer means: its body (with its status, for the hooks), a failure the policy
    weighs, or a rejected token; InvalidResponseError for a body that is not what it should be."""
    method, path = call.method, call.path
    status, raw, headers = answer
    if status == 429 or status >= 500:
        error = TransportError(
            f"HTTP {status} on {method} {path}",
            path=path,
            # 429 is a refusal before processing; a 5xx may come after the request applied.
            maybe_applied=status != 429,
            status_code=status,
        )
        failure = Failure.HTTP_429 if status == 429 else Failure.HTTP_5XX
        return _Failed(failure, error, f"HTTP {status}", status)
    downloaded = headers is not None and 200 <= status < 300
    if downloaded and not is_json(headers or {}, raw):
        return {FILE: raw, FILE_HEADERS: headers}, status
    try:
        body = decode(raw, status, path)
        errcode, errmsg = errcode_of(body, path)
    except InvalidResponseError:
        if downloaded:  # a file that merely looks like JSON
            return {FILE: raw, FILE_HEADERS: headers}, status
        raise
    if token is not None:
        errmsg = errmsg.replace(token, "<redacted>")
    if errcode == 0:
        # A download whose file is a JSON object (one a customer sent) is still the file.
        return ({FILE: raw, FILE_HEADERS: headers} if downloaded else body), status
    if call.kind is CallKind.BUSINESS and errcode in TOKEN_ERRCODES:
        return _TokenRejected(errcode, errmsg)
    if call.kind is CallKind.TOKEN:
        api = token_endpoint_error(errcode, errmsg, path)
    else:
        api = api_error(errcode, errmsg, path)
    return _Failed(RETRYABLE_ERRCODES.get(errcode), api, f"errcode {errcode}", status, errcode)


#: Query parameters whose values are credentials, whatever their type (a Secret always is one).
_SECRET_QUERY = re.compile(r"(token|secret|ticket|permanent_code)$")


def _shown_url(url: str, query: Mapping[str, str]) -> str:
    """``url`` with its query, each credential in it shown as ``REDACTED`` (what OpenTelemetry's
    ``url.full`` asks for: the key kept, the value replaced)."""
    if not query:
        return url
    shown = {
        key: "REDACTED" if isinstance(value, Secret) or _SECRET_QUERY.search(key) else value
        for key, value in query.items()
    }
    return f"{url}?{urlencode(shown)}"


def _result(
    attempt: Attempt,
    duration: float,
    outcome: tuple[dict[str, Any], int] | _Failed | _TokenRejected,
) -> AttemptResult:
    """What the hooks learn of an attempt: never the body, the token or the request."""
    if isinstance(outcome, tuple):
        return AttemptResult(attempt, duration, outcome[1], 0)
    if isinstance(outcome, _TokenRejected):
        rid = parse_rid(outcome.errmsg)
        return AttemptResult(attempt, duration, 200, outcome.errcode, rid, "token rejected")
    error = outcome.error
    rid = getattr(error, "rid", None)
    status = outcome.status if outcome.status is not None else getattr(error, "status_code", None)
    return AttemptResult(attempt, duration, status, outcome.errcode, rid, type(error).__name__)
