"""wechat_kf: an async, typed SDK for WeChat customer service.

Official Account (公众号) customer-service accounts through :class:`OfficialAccountClient`, and
WeCom (企业微信) 微信客服 servicers through :class:`WeComClient`, on asyncio or trio.
"""

from __future__ import annotations

from ._serde import from_data, to_data
from ._version import __version__
from .clients import OfficialAccountClient, WeComClient
from .errors import (
    AccessTokenError,
    APIError,
    BatchError,
    CallbackError,
    ClientClosedError,
    CredentialError,
    CustomServiceNotEnabledError,
    InvalidKfAccountError,
    InvalidNicknameError,
    InvalidResponseError,
    InviteError,
    KfAccountError,
    KfAccountExistsError,
    KfAccountLimitError,
    OpenKfidError,
    PermissionDeniedError,
    PlatformTicketError,
    RateLimitError,
    SyncError,
    TokenStoreError,
    TransportError,
    WeChatError,
)
from .models import (
    AccessToken,
    BatchResult,
    InviteStatus,
    KfAccount,
    OnlineKfAccount,
    RequestOutcome,
    Servicer,
    ServicerResult,
    ServicerStatus,
    SyncResult,
    WeComKfAccount,
)
from .platforms import OpenPlatform, ServiceProvider
from .stores import MemoryTokenStore, TokenStore
from .tokens import (
    OfficialAccountTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    WeComTokenProvider,
)

__all__ = [
    "APIError",
    "AccessToken",
    "AccessTokenError",
    "BatchError",
    "BatchResult",
    "CallbackError",
    "ClientClosedError",
    "CredentialError",
    "CustomServiceNotEnabledError",
    "InvalidKfAccountError",
    "InvalidNicknameError",
    "InvalidResponseError",
    "InviteError",
    "InviteStatus",
    "KfAccount",
    "KfAccountError",
    "KfAccountExistsError",
    "KfAccountLimitError",
    "MemoryTokenStore",
    "OfficialAccountClient",
    "OfficialAccountTokenProvider",
    "OnlineKfAccount",
    "OpenKfidError",
    "OpenPlatform",
    "PermissionDeniedError",
    "PlatformTicketError",
    "RateLimitError",
    "RequestOutcome",
    "ServiceProvider",
    "Servicer",
    "ServicerResult",
    "ServicerStatus",
    "StaticTokenProvider",
    "SyncError",
    "SyncResult",
    "TokenProvider",
    "TokenStore",
    "TokenStoreError",
    "TransportError",
    "WeChatError",
    "WeComClient",
    "WeComKfAccount",
    "WeComTokenProvider",
    "__version__",
    "from_data",
    "to_data",
]
