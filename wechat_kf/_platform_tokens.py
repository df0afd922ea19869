"""The third-party platforms' tokens: the open platform's component and authorizer tokens, the
WeCom service provider's suite and corp tokens. Each is cached, fetched once however many callers
wait, compare-and-invalidated and kept in the token store, like the apps' own
(:class:`~wechat_kf.tokens.CachingTokenProvider`); :mod:`wechat_kf.platforms` builds them."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from ._secrets import hide
from .errors import (
    TOKEN_ERRCODES,
    CredentialError,
    InvalidResponseError,
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
    "Source",
    "SuiteTokenProvider",
]

#: Where a value the platform receives elsewhere comes from: the value itself, or a function
#: (plain or async) that returns the latest one (None when there is none yet), such as a read of
#: the key your callback writes.
Source: TypeAlias = "str | Callable[[], str | Awaitable[str | None] | None]"


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
        verify_ticket = hide(verify_ticket)  # this frame shows in the traceback of a refusal
        component_appsecret = hide(component_appsecret)
        self.component_appid: str = check_credential("component_appid", component_appid)
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
                "minutes; hand it to save_verify_ticket (or give verify_ticket=)"
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
        suite_ticket = hide(suite_ticket)  # this frame shows in the traceback of a refusal
        suite_secret = hide(suite_secret)
        self.suite_id: str = check_credential("suite_id", suite_id)
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
                "no suite_ticket yet: WeChat pushes one to your callback every 10 minutes; hand "
                "it to save_suite_ticket (or give suite_ticket=)"
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
        refresh_token = hide(refresh_token)  # this frame shows in the traceback of a refusal
        if not isinstance(component, ComponentTokenProvider):
            raise TypeError("component must be a ComponentTokenProvider")
        if save_refresh_token is not None and not callable(save_refresh_token):
            raise TypeError("save_refresh_token must be a function")
        self._parent = self._component = component
        self.authorizer_appid: str = check_credential("authorizer_appid", authorizer_appid)
        self._refresh_source = _check_source("refresh_token", refresh_token)
        self._save = save_refresh_token
        # Only for a plain str source, which cannot learn of a rotation: what WeChat handed back.
        self._rotated: str | None = None
        key = f"authorizer:{component.component_appid}:{authorizer_appid}"
        super().__init__(key=key, fetch=fetch, store=store, clock=clock, hooks=hooks)

    def _app_id(self) -> str:
        return self.authorizer_appid

    def use(self, refresh_token: Source, save_refresh_token: Callable[[str], Any] | None) -> None:
        """Take a refresh-token source handed over again (the platform asked for a client
        again): a new one replaces the old, as after the account authorised the platform anew;
        the one already in use, or the rotation already learnt from WeChat, changes nothing."""
        refresh_token = hide(refresh_token)
        if save_refresh_token is not None and not callable(save_refresh_token):
            raise TypeError("save_refresh_token must be a function")
        current = self._refresh_source
        if isinstance(refresh_token, str) and refresh_token in (current, self._rotated):
            refresh_token = current
        if refresh_token is not current:
            self._refresh_source = _check_source("refresh_token", refresh_token)
            self._rotated = None
        if save_refresh_token is not None:
            self._save = save_refresh_token

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
        except InvalidResponseError as exc:
            # An answer that came but cannot be read may still have rotated the refresh token.
            raise InvalidResponseError(
                f"{exc}; {self._recovery()}", path=exc.path, status_code=exc.status_code
            ) from None
        # Saved before anything else of the answer is judged: WeChat retired the old one.
        new = body.get("authorizer_refresh_token")
        if isinstance(new, str) and new and new != refresh:
            if isinstance(self._refresh_source, str):
                self._rotated = hide(new)
            if self._save is not None:
                saved = self._save(hide(new))
                if inspect.isawaitable(saved):
                    await saved
        return self._token_of(body)

    def _recovery(self) -> str:
        return (
            f"WeChat may have rotated the authorizer_refresh_token of {self.authorizer_appid} in "
            "an answer that was lost. If the next fetch is refused with 61023, read the current "
            "refresh token with /cgi-bin/component/api_get_authorizer_info (authorization_info."
            "authorizer_refresh_token), hand it to refresh_token, or have the account authorise "
            "the platform again"
        )

    def _maybe_rotated(self, error: TransportError) -> TransportError:
        return TransportError(
            f"{error} - not sent again: {self._recovery()}",
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
        permanent_code = hide(permanent_code)  # this frame shows in the traceback of a refusal
        if not isinstance(suite, SuiteTokenProvider):
            raise TypeError("suite must be a SuiteTokenProvider")
        self._parent = suite
        self.auth_corpid: str = check_credential("auth_corpid", auth_corpid)
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
