"""What the FastAPI and aiohttp examples share: the clients, and WeChat outcomes as HTTP answers.

Configuration comes from the environment: WECHAT_APPID / WECHAT_SECRET and WECOM_CORPID /
WECOM_SECRET for WeChat, or WECHAT_KF_FAKE=http://127.0.0.1:8765 for ``wechat-kf fake-server``
(which accepts the sandbox credentials).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import httpx

from wechat_kf import (
    BatchError,
    BatchResult,
    CredentialError,
    OfficialAccountClient,
    RateLimitError,
    TransportError,
    WeChatError,
    WeComClient,
    to_data,
)
from wechat_kf.testing._sandbox import (
    SANDBOX_APPID,
    SANDBOX_CORPID,
    SANDBOX_OA_SECRET,
    SANDBOX_WECOM_SECRET,
)

Answer = tuple[int, dict[str, str], dict[str, Any]]


async def open_clients(
    stack: AsyncExitStack, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[OfficialAccountClient, WeComClient]:
    """Open one client of each kind for the life of ``stack`` (the app): every request shares
    their connection pools and token caches. ``transport`` (a FakeWeChat's) is for tests."""
    fake = os.environ.get("WECHAT_KF_FAKE")
    if transport is not None or fake:
        options: dict[str, Any] = {"base_url": fake} if fake else {}
        if transport is not None:
            http = httpx.AsyncClient(transport=transport)
            options["http_client"] = await stack.enter_async_context(http)
        oa = OfficialAccountClient(SANDBOX_APPID, SANDBOX_OA_SECRET, **options)
        wc = WeComClient(SANDBOX_CORPID, SANDBOX_WECOM_SECRET, **options)
    else:
        oa = OfficialAccountClient(os.environ["WECHAT_APPID"], os.environ["WECHAT_SECRET"])
        wc = WeComClient(os.environ["WECOM_CORPID"], os.environ["WECOM_SECRET"])
    return await stack.enter_async_context(oa), await stack.enter_async_context(wc)


def batch_answer(result: BatchResult, error: BatchError | None = None) -> Answer:
    """A servicer batch as HTTP: 200 when every id succeeded, else 207 with what failed and what
    was left unprocessed."""
    body = {
        "ok": error is None and result.ok,
        **to_data(result),
        "unprocessed_userids": error.unprocessed_userids if error else [],
        "unprocessed_department_ids": error.unprocessed_department_ids if error else [],
        "errors": [str(e) for e in error.errors] if error else [],
    }
    return (200 if body["ok"] else 207), {}, body


def error_answer(exc: Exception) -> Answer:
    """A failure as HTTP: bad input 422; our credentials refused 502; WeChat asks us to slow down
    429 with Retry-After; WeChat unreachable 503; any other WeChat error 502."""
    body: dict[str, Any] = {"error": type(exc).__name__, "detail": str(exc)}
    if isinstance(exc, (ValueError, TypeError)):
        return 422, {}, body
    for field in ("errcode", "errmsg", "rid"):
        if hasattr(exc, field):
            body[field] = getattr(exc, field)
    if isinstance(exc, RateLimitError):
        return 429, {"Retry-After": "60"}, body
    if isinstance(exc, TransportError):
        return 503, {}, body
    if isinstance(exc, (CredentialError, WeChatError)):
        return 502, {}, body
    raise exc
