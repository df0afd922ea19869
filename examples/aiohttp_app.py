"""wechat_kf in an aiohttp service: the clients and the inbox open and close with the app
(``cleanup_ctx``). ``POST /callbacks/wecom`` hands each ``kf_msg_or_event`` to the inbox and
answers "success" at once; the inbox pulls in the background and answers customers
(``examples.common.answer``); with REDIS_URL set, every process shares its store.

wechat-kf fake-server --port 8765
python -m examples.aiohttp_app          # after exporting what `wechat-kf fake-server` prints
curl localhost:8080/kf-accounts
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
from aiohttp import web

from examples.callbacks import Callbacks, read_push
from examples.common import (
    Answer,
    batch_answer,
    error_answer,
    open_clients,
    open_inbox,
    open_platform,
)
from wechat_kf import BatchError, Inbox, OfficialAccountClient, WeChatError, WeComClient, to_data

OA = web.AppKey("oa", OfficialAccountClient)
WECOM = web.AppKey("wecom", WeComClient)
INBOX = web.AppKey("inbox", Inbox)
CALLBACKS = web.AppKey("callbacks", Callbacks)


def respond(answer: Answer) -> web.Response:
    status, headers, body = answer
    return web.json_response(body, status=status, headers=headers)


async def kf_accounts(request: web.Request) -> web.Response:
    return web.json_response(to_data(await request.app[OA].kf_accounts.list()))


async def add_servicers(request: web.Request) -> web.Response:
    change = await request.json()
    if not isinstance(change, dict):
        raise TypeError("the body must be a JSON object")
    try:
        result = await request.app[WECOM].servicers.add(
            request.match_info["open_kfid"],
            change.get("userids", []),
            department_ids=change.get("department_ids", []),
        )
    except BatchError as exc:
        return respond(batch_answer(exc.result, exc))
    return respond(batch_answer(result))


async def callback_check(request: web.Request) -> web.Response:
    route = request.match_info["route"]
    status, text = request.app[CALLBACKS].check(route, request.query)
    return web.Response(text=text, status=status)


async def callback_push(request: web.Request) -> web.Response:
    # Answered at once: WeChat delivers again after 5 s, so nothing slow happens in here.
    route = request.match_info["route"]
    # Read to its end, however many TCP segments it came in, with a cap as it streams in (its
    # Content-Length checked first): content.read(n) would return only what has arrived.
    body = await read_push(request.content.iter_any(), request.content_length)
    if body is None:
        return web.Response(text="too large", status=413)
    status, text = await request.app[CALLBACKS].receive(route, request.query, body)
    return web.Response(text=text, status=status)


@web.middleware
async def wechat_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ValueError, TypeError, WeChatError) as exc:
        return respond(error_answer(exc))


def create_app(transport: httpx.AsyncBaseTransport | None = None) -> web.Application:
    """The service; ``transport`` sends every WeChat call to a FakeWeChat (tests)."""

    async def clients(app: web.Application) -> AsyncIterator[None]:
        # One client of each kind per process, and the inbox pulling and answering in the
        # background, for the life of the app (the inbox closes first).
        async with AsyncExitStack() as stack:
            app[OA], app[WECOM] = await open_clients(stack, transport)
            platform = await open_platform(stack, transport)
            app[INBOX] = await open_inbox(stack, app[WECOM])
            app[CALLBACKS] = Callbacks.from_env(app[WECOM].corpid, platform, app[INBOX])
            yield

    app = web.Application(middlewares=[wechat_errors])
    app.cleanup_ctx.append(clients)
    app.router.add_get("/kf-accounts", kf_accounts)
    app.router.add_post("/servicers/{open_kfid}", add_servicers)
    app.router.add_get("/callbacks/{route}", callback_check)
    app.router.add_post("/callbacks/{route}", callback_push)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
