"""What the FastAPI and aiohttp examples share: the clients, and WeChat outcomes as HTTP answers.

Configuration comes from the environment, as for the ``wechat-kf`` command: WECHAT_APPID /
WECHAT_SECRET and WECOM_CORPID / WECOM_SECRET, and WECHAT_KF_BASE_URL to send both clients to
another host, such as ``wechat-kf fake-server`` (whose banner prints the values to export;
WECHAT_KF_ALLOW_INSECURE_HTTP=1 when that fake runs in another container). These variables are
read here, by the examples; the library itself reads none.
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
    OpenPlatform,
    RateLimitError,
    TransportError,
    WeChatError,
    WeComClient,
    to_data,
)

Answer = tuple[int, dict[str, str], dict[str, Any]]


async def _options(
    stack: AsyncExitStack, transport: httpx.AsyncBaseTransport | None
) -> dict[str, Any]:
    """What every client and platform of the app is built with: the base URL the environment
    names, and for tests an http_client over ``transport``."""
    env = os.environ
    options: dict[str, Any] = {}
    if env.get("WECHAT_KF_BASE_URL"):
        options["base_url"] = env["WECHAT_KF_BASE_URL"]
        options["allow_insecure_http"] = env.get("WECHAT_KF_ALLOW_INSECURE_HTTP") == "1"
    if transport is not None:
        http = httpx.AsyncClient(transport=transport)
        options["http_client"] = await stack.enter_async_context(http)
    return options


async def open_clients(
    stack: AsyncExitStack, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[OfficialAccountClient, WeComClient]:
    """Open one client of each kind for the life of ``stack`` (the app): every request shares
    their connection pools and token caches. ``transport`` (a FakeWeChat's) is for tests."""
    env = os.environ
    options = await _options(stack, transport)
    oa = OfficialAccountClient(env["WECHAT_APPID"], env["WECHAT_SECRET"], **options)
    wc = WeComClient(env["WECOM_CORPID"], env["WECOM_SECRET"], **options)
    return await stack.enter_async_context(oa), await stack.enter_async_context(wc)


async def open_platform(
    stack: AsyncExitStack, transport: httpx.AsyncBaseTransport | None = None
) -> OpenPlatform | None:
    """The open platform WECHAT_COMPONENT_APPID / WECHAT_COMPONENT_SECRET name, for the life of
    ``stack``, or None when they are not set. It has no ticket of its own: its callback saves
    the ones WeChat pushes (``examples.callbacks``)."""
    env = os.environ
    if not (env.get("WECHAT_COMPONENT_APPID") and env.get("WECHAT_COMPONENT_SECRET")):
        return None
    options = await _options(stack, transport)
    platform = OpenPlatform(
        env["WECHAT_COMPONENT_APPID"], env["WECHAT_COMPONENT_SECRET"], **options
    )
    return await stack.enter_async_context(platform)


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
