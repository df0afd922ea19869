"""What the FastAPI and aiohttp examples share: the clients, the message loop that answers
customers (:func:`open_inbox`, :func:`answer`), and WeChat outcomes as HTTP answers.

Configuration comes from the environment, as for the ``wechat-kf`` command: WECHAT_APPID /
WECHAT_SECRET and WECOM_CORPID / WECOM_SECRET, and WECHAT_KF_BASE_URL to send both clients to
another host, such as ``wechat-kf fake-server`` (whose banner prints the values to export;
WECHAT_KF_ALLOW_INSECURE_HTTP=1 when that fake runs in another container); REDIS_URL to share
the inbox (cursors, done-marks, leases) between every process of the app. These variables are
read here, by the examples; the library itself reads none.
"""

from __future__ import annotations

import logging
import os
from contextlib import AsyncExitStack
from typing import Any

import httpx

from wechat_kf import (
    APIError,
    BatchError,
    BatchResult,
    CredentialError,
    EnterSessionEvent,
    Inbox,
    InboxStore,
    KfMessage,
    MemoryInboxStore,
    MessageOrigin,
    OfficialAccountClient,
    OpenPlatform,
    RateLimitError,
    SessionStateError,
    Text,
    TextMessage,
    TransportError,
    WeChatError,
    WeComClient,
    to_data,
)

Answer = tuple[int, dict[str, str], dict[str, Any]]

logger = logging.getLogger("examples.inbox")

#: What a customer who opens the chat is told (``send_on_event`` takes a ``Text`` or a ``Menu``).
WELCOME = Text("欢迎光临！请问有什么可以帮您？")
#: send_msg_on_event's answer to a code that was used already or is past its 20 s.
CODE_USED_OR_EXPIRED = 95010


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


async def answer(inbox: Inbox, message: KfMessage) -> None:
    """The examples' handler, one for both apps, called by the inbox once per message, in order
    per kf account. A customer's text is answered with ``inbox.reply`` (its msgid derived from the
    message's, so a message handed over again is never answered twice); a customer who opens the
    chat is welcomed with the event's ``welcome_code`` (one message per code: a second send is
    refused, so it is never sent twice either). Everything else (images, a servicer's own
    messages, other events) is left alone.

    Nothing worth trying again is raised: a session the API may not write in (a human servicer
    or the pool has it, or it ended) and a welcome code already used or past its 20 s are logged
    and let go. Any other failure raises, and the inbox tries the message again (up to
    ``max_attempts``), then logs it as failed."""
    if isinstance(message, TextMessage) and message.origin == MessageOrigin.CUSTOMER:
        try:
            await inbox.reply(message, Text(f"收到: {message.content}"))
        except SessionStateError as exc:
            logger.info("not answering %s: the session is not the API's (%s)", message.msgid, exc)
    elif isinstance(message, EnterSessionEvent) and message.welcome_code:
        try:
            await inbox.client.messages.send_on_event(message.welcome_code, WELCOME)
        except APIError as exc:
            if exc.errcode != CODE_USED_OR_EXPIRED:
                raise
            logger.info("no welcome for %s: its code was used or expired", message.msgid)


async def open_inbox(stack: AsyncExitStack, wc: WeComClient) -> Inbox:
    """The message loop of ``wc`` for the life of ``stack`` (the app), answering with
    :func:`answer`: the callback route hands it each ``kf_msg_or_event`` (``inbox.notify``) and
    the pulls run in its background. With REDIS_URL set, its store is a ``RedisInboxStore``
    (its Redis client opened and closed with the app), shared by every process of the app: one
    of them pulls each kf account at a time, and a message is answered once wherever its push
    landed (``redis.asyncio``: asyncio only); else a ``MemoryInboxStore``, for this process
    alone."""
    store: InboxStore
    url = os.environ.get("REDIS_URL")
    if url:
        from redis.asyncio import Redis  # the redis extra, needed only then

        from wechat_kf.stores import RedisInboxStore

        redis = Redis.from_url(url)
        stack.push_async_callback(redis.aclose)
        store = RedisInboxStore(redis)
    else:
        store = MemoryInboxStore()

    async def handle(message: KfMessage) -> None:
        await answer(inbox, message)

    inbox = Inbox(wc, handle, store=store)
    return await stack.enter_async_context(inbox)


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
