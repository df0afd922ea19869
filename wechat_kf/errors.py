"""The exceptions wechat_kf raises, and the one registry that maps WeChat errcodes to them.

Every failure the SDK reports is a :class:`WeChatError`::

    WeChatError
    ├── APIError                 .errcode, .errmsg, .rid, .hint, .path: an errcode != 0 given up on
    │   ├── CredentialError      the token endpoint rejected appid / corpid / secret / caller IP
    │   ├── AccessTokenError     40001 / 40014 / 42001 still failing after one refresh
    │   ├── RateLimitError       45009 / 45011 / 45033
    │   ├── PermissionDeniedError  48001, 60011, 95011, 95012, 95017
    │   ├── KfAccountError family  CustomServiceNotEnabledError 65400, InvalidKfAccountError
    │   │                          65401 / 65404, InvalidNicknameError 65403, KfAccountLimitError
    │   │                          65405, KfAccountExistsError 65406, InviteError 65407..65412
    │   ├── OpenKfidError        95000 / 95004
    │   ├── SessionStateError    95018 / 95013: the 微信客服 session does not let the API send now
    │   ├── MessageWindowError   45015 / 45047: outside the Official Account's window or budget
    │   └── KfSessionError       65413..65417: an Official Account session or record call refused
    ├── TransportError           the network failed after retries (.maybe_applied, .status_code)
    ├── InvalidResponseError     the body is not JSON or not the documented shape
    ├── BatchError               some servicer requests failed as a whole (.result, .unprocessed_*)
    ├── SyncError                a servicers.sync was applied in part (.result, .unprocessed_*)
    ├── PlatformTicketError      a third-party platform has no ticket, refresh token or code yet
    ├── TokenStoreError          a shared token store could not be used safely
    ├── CallbackError            a WeChat push was refused (.reason; also a ValueError)
    └── ClientClosedError        the client was closed (also a RuntimeError)

Bad arguments never reach WeChat: they raise ``ValueError`` or ``TypeError`` before any request.
No exception text or repr ever holds an access token or a secret: the transport redacts them and
only API paths, never full URLs, are stored.
"""

from __future__ import annotations

import attrs

from ._failures import (
    BatchError,
    CallbackError,
    ClientClosedError,
    InvalidResponseError,
    PlatformTicketError,
    SyncError,
    TokenStoreError,
    TransportError,
    WeChatError,
)
from ._requestid import parse_hint, parse_rid

__all__ = [
    "ERRCODES",
    "APIError",
    "AccessTokenError",
    "BatchError",
    "CallbackError",
    "ClientClosedError",
    "CredentialError",
    "CustomServiceNotEnabledError",
    "ErrcodeInfo",
    "InvalidKfAccountError",
    "InvalidNicknameError",
    "InvalidResponseError",
    "InviteError",
    "KfAccountError",
    "KfAccountExistsError",
    "KfAccountLimitError",
    "KfSessionError",
    "MessageWindowError",
    "OpenKfidError",
    "PermissionDeniedError",
    "PlatformTicketError",
    "RateLimitError",
    "SessionStateError",
    "SyncError",
    "TokenStoreError",
    "TransportError",
    "WeChatError",
    "api_error",
    "platform_of",
    "token_endpoint_error",
]


class APIError(WeChatError):
    """WeChat answered with an errcode other than 0 and the SDK gave up on the call; carries
    ``errcode``, ``errmsg`` (as sent, with its ``rid:`` suffix), ``rid`` (the request id WeChat
    support asks for, or None: the ``rid:`` value when errmsg has one, else its ``hint: [...]``),
    ``hint`` (the ``hint: [...]`` value, or None) and ``path`` (the API path, never a URL with
    its query); ``platform`` and ``description`` follow from the path and the errcode."""

    def __init__(self, errcode: int, errmsg: str = "", *, path: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.rid: str | None = parse_rid(errmsg)
        self.hint: str | None = parse_hint(errmsg)
        self.path = path
        super().__init__(errcode, errmsg, path)

    @property
    def platform(self) -> str | None:
        """Which API answered, as its path tells: ``"official_account"``, ``"wecom"``, or None
        for a path the SDK does not call."""
        return platform_of(self.path)

    @property
    def description(self) -> str | None:
        """What the platform that answered documents for this errcode (the two platforms give a
        few codes different meanings), or None for an unknown code."""
        info = ERRCODES.get(self.errcode)
        return info.meaning(self.platform) if info else None

    def __str__(self) -> str:
        parts = [f"errcode={self.errcode}", f"errmsg={self.errmsg!r}"]
        if self.rid:
            parts.append(f"rid={self.rid}")
        if self.path:
            parts.append(f"path={self.path}")
        text = " ".join(parts)
        return f"{text} ({self.description})" if self.description else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.errcode!r}, {self.errmsg!r}, path={self.path!r})"


class CredentialError(APIError):
    """A token endpoint rejected the configuration (appid, corpid, secret, caller IP, grant);
    retrying cannot help, so it is raised at once."""

    @property
    def description(self) -> str | None:
        """What the errcode means from a token endpoint: there 40001 is an invalid secret, on
        both platforms, except where the endpoint takes a platform's token instead of a secret
        (an authorizer's or a corp's token: then that token was rejected)."""
        if self.errcode == 40001 and self.path not in _ON_BEHALF_PATHS:
            return "invalid secret"
        return super().description


class AccessTokenError(APIError):
    """WeChat kept rejecting the access token (40001 / 40014 / 42001) even after one refresh."""


class RateLimitError(APIError):
    """A WeChat quota or concurrency limit was hit (45009 never retried; 45011 / 45033 raised
    once the retries are used up)."""


class PermissionDeniedError(APIError):
    """The account, app or token is not allowed to call this API or touch this member."""


class KfAccountError(APIError):
    """A business rule of Official Account customer-service accounts was broken."""


class CustomServiceNotEnabledError(KfAccountError):
    """The Official Account has not enabled the new customer-service feature (65400)."""


class InvalidKfAccountError(KfAccountError):
    """The kf account is invalid or illegal (65401 / 65404)."""


class InvalidNicknameError(KfAccountError):
    """The nickname was refused (65403)."""


class KfAccountLimitError(KfAccountError):
    """The Official Account already has its maximum of kf accounts (65405)."""


class KfAccountExistsError(KfAccountError):
    """The kf account already exists (65406)."""


class InviteError(KfAccountError):
    """Inviting a WeChat user to bind a kf account failed (65407..65412)."""


class OpenKfidError(APIError):
    """The WeCom open_kfid is invalid or does not exist (95000 / 95004)."""


class SessionStateError(APIError):
    """The 微信客服 session is in a state where the API may not send (95018: only states 0 and 1
    allow it, so a human servicer or the pool has it; 95013: the session has ended)."""


class MessageWindowError(APIError):
    """An Official Account message was refused by its window: more than 48 hours since the user's
    last message (45015), or the window's message budget is used up (45047)."""


class KfSessionError(APIError):
    """An Official Account session or record call was refused (65413 no session, 65414 the
    customer is served by another kf account, 65415 the kf account is offline, 65416 bad
    parameters, 65417 a span over 24 hours)."""


@attrs.frozen
class ErrcodeInfo:
    """One documented errcode: the exception class raised for it, what it means on both platforms
    (``description``), what it means on one of them where the two differ (``official_account``,
    ``wecom``; see :meth:`meaning`), and, for the few the retry policy sends again, the name of
    the failure it sees (``retry``)."""

    exception: type[APIError]
    description: str
    retry: str | None = None
    #: The meaning on that platform alone, where the two differ (``description`` holds for both).
    official_account: str | None = None
    wecom: str | None = None

    def meaning(self, platform: str | None) -> str:
        """What the errcode means on ``platform`` (``"official_account"``, ``"wecom"``), or the
        meaning that holds on both when the platform is not known."""
        if platform == "official_account" and self.official_account:
            return self.official_account
        if platform == "wecom" and self.wecom:
            return self.wecom
        return self.description


def _codes(
    exc: type[APIError], table: dict[int, str], retry: dict[int, str] | None = None
) -> dict[int, ErrcodeInfo]:
    retry = retry or {}
    return {code: ErrcodeInfo(exc, text, retry.get(code)) for code, text in table.items()}


ERRCODES: dict[int, ErrcodeInfo] = {
    **_codes(
        APIError,
        {
            -1: "system busy",
            40003: "invalid openid or userid",
            40005: "unsupported media type",
            40009: "invalid media size",
            60003: "department not found",
            60111: "userid does not exist or is outside the app's visibility",
            60123: "invalid department id",
            95005: "kf account count out of range",
            95006: "invalid kf account name",
            95014: "user is not a servicer",
            95019: "servicer stopped or suspended",
            95027: "an unverified corp may have at most 10 kf accounts",
            40004: "invalid media type",
            40006: "invalid file size",
            40007: "invalid media_id (unknown, or older than its 3 days)",
            40011: "invalid video size",
            40058: "invalid parameter",
            40096: "invalid external_userid",
            95007: "invalid message token (a callback's token lives 10 minutes)",
            95016: "the session state change is not allowed",
            45072: "invalid typing command",
            45080: "typing needs a message from the user within the last 30 seconds",
            45081: "typing is already shown",
        },
        retry={-1: "BUSY"},
    ),
    **_codes(
        CredentialError,
        {
            40002: "invalid grant_type",
            40013: "invalid appid or corpid",
            40091: "invalid WeCom secret",
            40125: "invalid appsecret",
            40164: "caller IP not whitelisted",
            40243: "AppSecret frozen",
            41002: "missing corpid",
            41004: "missing secret",
            60020: "caller IP not whitelisted (WeCom)",
            61004: "caller IP not whitelisted",
            89501: "caller IP awaiting admin approval",
            89503: "caller IP awaiting admin approval",
            89506: "caller IP refused by the admin",
            89507: "caller IP refused by the admin for now",
            61003: "the account has not authorised this platform",
            61006: "component_verify_ticket invalid or expired",
            61023: "authorizer refresh token invalid or retired: read the current one with "
            "api_get_authorizer_info (authorization_info.authorizer_refresh_token), or have the "
            "account authorise the platform again",
            40082: "invalid suite_id",
            40083: "invalid suite_secret",
            40084: "invalid permanent_code",
            40085: "invalid suite_ticket",
        },
    ),
    **_codes(
        AccessTokenError,
        {
            40001: "invalid credential: the access_token was rejected",
            40014: "invalid access_token",
            42001: "access_token expired",
        },
    ),
    **_codes(
        RateLimitError,
        {
            45009: "daily quota used up or frequency exceeded",
            45011: "per-minute quota hit",
            45033: "concurrency limit hit",
        },
        retry={45011: "MINUTE_QUOTA", 45033: "CONCURRENCY"},
    ),
    **_codes(
        PermissionDeniedError,
        {
            48001: "API not authorised for this account or token",
            60011: "no permission for that member or department",
            95011: "token from the wrong secret for the account's mode",
            95012: "token from the wrong secret for the account's mode",
            95017: "API switch off for this app",
        },
    ),
    **_codes(
        KfAccountError,
        {65402: "kf account has no WeChat ID bound"},
    ),
    **_codes(CustomServiceNotEnabledError, {65400: "customer-service feature not enabled"}),
    **_codes(InvalidKfAccountError, {65401: "invalid kf account", 65404: "illegal kf account"}),
    **_codes(InvalidNicknameError, {65403: "illegal nickname"}),
    **_codes(KfAccountLimitError, {65405: "kf account limit reached"}),
    **_codes(KfAccountExistsError, {65406: "kf account exists"}),
    **_codes(
        InviteError,
        {
            65407: "invitee is already a kf of this account",
            65408: "an invitation to this user already exists",
            65409: "invalid WeChat ID",
            65410: "invitee reached the binding cap",
            65411: "a pending invitation exists",
            65412: "kf account already bound",
        },
    ),
    **_codes(OpenKfidError, {95000: "invalid open_kfid", 95004: "open_kfid not found"}),
    **_codes(
        SessionStateError,
        {
            95013: "the session has ended",
            95018: "the session's state does not let the API send (only states 0 and 1 do)",
        },
    ),
    **_codes(
        MessageWindowError,
        {
            45015: "more than 48 hours since the user's last message",
            45047: "the window's message budget is used up",
        },
    ),
    **_codes(
        KfSessionError,
        {
            65413: "no such session",
            65414: "the customer is served by another kf account",
            65415: "the kf account is offline",
            65416: "invalid parameters",
            65417: "the span is over 24 hours",
        },
    ),
}

# The codes the two platforms document differently. An Official Account's 40001 is a token that
# is invalid or was replaced by a later fetch (the classic token); WeCom documents 40001 as an
# invalid secret and answers an invalid token with 40014.
_PLATFORM_MEANINGS = {
    40001: (
        "access_token invalid or not the latest: a later fetch of the token replaced it",
        "invalid credential: the secret, or a token made with it, is not valid",
    ),
    40003: ("invalid openid", "invalid userid"),
}
for _code, (_oa, _wecom) in _PLATFORM_MEANINGS.items():
    ERRCODES[_code] = attrs.evolve(ERRCODES[_code], official_account=_oa, wecom=_wecom)

_OFFICIAL_ACCOUNT_PATHS = ("/customservice/", "/cgi-bin/customservice/", "/cgi-bin/message/custom/")
_OFFICIAL_ACCOUNT_TOKENS = frozenset({"/cgi-bin/token", "/cgi-bin/stable_token"})
_WECOM_PATHS = ("/cgi-bin/kf/", "/cgi-bin/media/", "/cgi-bin/service/")
# Token endpoints that take a platform's own token rather than a secret.
_ON_BEHALF_PATHS = frozenset(
    {"/cgi-bin/component/api_authorizer_token", "/cgi-bin/service/get_corp_token"}
)


def platform_of(path: str | None) -> str | None:
    """The platform an API path belongs to: ``"official_account"`` (an Official Account's calls
    and tokens, an open platform's component calls), ``"wecom"`` (微信客服, media, gettoken, a
    service provider's calls), or None for a path the SDK does not call."""
    if not path:
        return None
    if path in _OFFICIAL_ACCOUNT_TOKENS or path.startswith(
        (*_OFFICIAL_ACCOUNT_PATHS, "/cgi-bin/component/")
    ):
        return "official_account"
    if path == "/cgi-bin/gettoken" or path.startswith(_WECOM_PATHS):
        return "wecom"
    return None


#: The errcodes that mean "this access token is no good": the call refreshes it and tries once more.
TOKEN_ERRCODES = frozenset(c for c, info in ERRCODES.items() if info.exception is AccessTokenError)


def api_error(errcode: int, errmsg: str, path: str | None) -> APIError:
    """The exception for an errcode a business API answered, chosen through :data:`ERRCODES`."""
    info = ERRCODES.get(errcode)
    return (info.exception if info else APIError)(errcode, errmsg, path=path)


def token_endpoint_error(errcode: int, errmsg: str, path: str | None) -> APIError:
    """The exception for an errcode a token endpoint answered: a quota is a RateLimitError, a busy
    platform (-1) an APIError, and anything else means the configuration is wrong (40001 from
    WeCom gettoken is a bad secret)."""
    info = ERRCODES.get(errcode)
    if info is not None and info.exception is RateLimitError:
        return RateLimitError(errcode, errmsg, path=path)
    if errcode == -1:  # busy, still after the retries: nothing wrong with the configuration
        return APIError(errcode, errmsg, path=path)
    return CredentialError(errcode, errmsg, path=path)
