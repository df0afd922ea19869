"""wechat_kf in a FastAPI service: the clients and the inbox open and close with the app (its
lifespan) and reach the routes through dependencies. ``POST /callbacks/wecom`` hands each
``kf_msg_or_event`` to the inbox and answers "success" at once; the inbox pulls in the
background and answers customers (``examples.common.answer``), on one process or many: with
REDIS_URL set, every process shares one ``RedisInboxStore``.

    wechat-kf fake-server --port 8765      # then export what its banner prints
    uvicorn examples.fastapi_app:app --port 8000
    REDIS_URL=redis://localhost:6379/0 uvicorn examples.fastapi_app:app --port 8000 --workers 4
    curl localhost:8000/kf-accounts
    curl -X POST localhost:8000/servicers/wkSANDBOX0000000000000000000001 \\
         -H 'content-type: application/json' -d '{"userids": ["user0001", "ghost"]}'
"""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at runtime,
# and the dependencies are local to create_app.
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from examples.callbacks import Callbacks, read_push
from examples.common import (
    Answer,
    batch_answer,
    error_answer,
    open_clients,
    open_inbox,
    open_platform,
)
from wechat_kf import BatchError, OfficialAccountClient, WeChatError, WeComClient, to_data


class ServicerChange(BaseModel):
    userids: list[str] = []
    department_ids: list[int] = []


def respond(answer: Answer) -> JSONResponse:
    status, headers, body = answer
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The service; ``transport`` sends every WeChat call to a FakeWeChat (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.oa, app.state.wecom = await open_clients(stack, transport)
            platform = await open_platform(stack, transport)
            # Pulls and answers in the background until the app stops (closed before the
            # clients: the stack unwinds in reverse).
            app.state.inbox = await open_inbox(stack, app.state.wecom)
            app.state.callbacks = Callbacks.from_env(
                app.state.wecom.corpid, platform, app.state.inbox
            )
            yield

    app = FastAPI(lifespan=lifespan)

    def official_account(request: Request) -> OfficialAccountClient:
        client: OfficialAccountClient = request.app.state.oa
        return client

    def wecom(request: Request) -> WeComClient:
        client: WeComClient = request.app.state.wecom
        return client

    @app.get("/kf-accounts")
    async def kf_accounts(
        oa: Annotated[OfficialAccountClient, Depends(official_account)],
    ) -> Any:
        return to_data(await oa.kf_accounts.list())

    @app.post("/servicers/{open_kfid}")
    async def add_servicers(
        open_kfid: str, change: ServicerChange, wc: Annotated[WeComClient, Depends(wecom)]
    ) -> JSONResponse:
        try:
            result = await wc.servicers.add(
                open_kfid, change.userids, department_ids=change.department_ids
            )
        except BatchError as exc:
            return respond(batch_answer(exc.result, exc))
        return respond(batch_answer(result))

    # WeChat's callbacks: the URL check, and pushes answered at once (never a pull in here:
    # a kf event goes to the inbox, which pulls in the background).
    @app.get("/callbacks/{route}")
    async def callback_check(route: str, request: Request) -> PlainTextResponse:
        callbacks: Callbacks = request.app.state.callbacks
        status, text = callbacks.check(route, request.query_params)
        return PlainTextResponse(text, status_code=status)

    @app.post("/callbacks/{route}")
    async def callback_push(route: str, request: Request) -> PlainTextResponse:
        callbacks: Callbacks = request.app.state.callbacks
        # Read with a cap as it streams in (its Content-Length checked first), never whole.
        async with aclosing(request.stream()) as chunks:
            body = await read_push(chunks, request.headers.get("content-length"))
        if body is None:
            return PlainTextResponse("too large", status_code=413)
        status, text = await callbacks.receive(route, request.query_params, body)
        return PlainTextResponse(text, status_code=status)

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return respond(error_answer(exc))

    for kind in (ValueError, TypeError, WeChatError):
        app.add_exception_handler(kind, failed)
    return app


app = create_app()
