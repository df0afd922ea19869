"""Serving a FakeWeChat: in-process to an httpx client, or as an ASGI 3 application."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx

from ._faults import Reply, Upload

__all__ = [
    "AsgiApp",
    "Handle",
    "InProcessTransport",
    "parse_multipart",
    "parse_uploads",
    "read_body",
    "reply_bytes",
]

#: What answers one request: (method, path, query, body, content type) -> the reply.
Handle = Callable[[str, str, dict[str, str], bytes, str], Awaitable[Reply]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _Drop(Exception):
    """Raised inside the ASGI app to drop the connection instead of answering."""


async def read_body(receive: Receive) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def parse_uploads(body: bytes, content_type: str) -> dict[str, Upload]:
    """The parts of a multipart/form-data body, by field name, with the filename and content
    type each part declared."""
    match = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if match is None:
        return {}
    boundary = b"--" + match.group(1).encode()
    uploads: dict[str, Upload] = {}
    for part in body.split(boundary):
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        name = re.search(rb'[; ]name="([^"]*)"', head)
        if name is None:
            continue
        filename = re.search(rb'filename="([^"]*)"', head)
        kind = re.search(rb"(?im)^content-type:[ \t]*([^\r\n]*)", head)
        uploads[name.group(1).decode()] = Upload(
            content.removesuffix(b"\r\n"),
            filename.group(1).decode("utf-8", "replace") if filename else "",
            kind.group(1).decode("latin-1").strip() if kind else "",
        )
    return uploads


def parse_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """The file parts of a multipart/form-data body, by field name (their bytes only)."""
    return {name: part.content for name, part in parse_uploads(body, content_type).items()}


def reply_bytes(reply: Reply) -> tuple[bytes, dict[str, str]]:
    """What goes over the wire for ``reply``: its raw bytes and headers, or its JSON body."""
    if reply.raw is not None:
        return reply.raw, {"content-type": "application/octet-stream", **reply.headers}
    payload = json.dumps(reply.body, ensure_ascii=False).encode()
    return payload, {"content-type": "application/json; charset=utf-8", **reply.headers}


class AsgiApp:
    """A FakeWeChat (its ``handle``) as an ASGI 3 callable (an instance with an async
    ``__call__``, as servers expect)."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        reply = await self._handle(
            scope["method"], scope["path"], query, body, headers.get("content-type", "")
        )
        if reply.stall:
            # Never answer; stop waiting once the client has given up and gone.
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        payload, headers = reply_bytes(reply)
        headers["content-length"] = str(len(payload))
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
            }
        )
        if reply.drop:
            # Failing after the headers makes the server close the connection mid-response.
            raise _Drop("connection dropped by FakeWeChat")
        await send({"type": "http.response.body", "body": payload})


class InProcessTransport(httpx.AsyncBaseTransport):
    """Serves a FakeWeChat (its ``handle``) to an httpx.AsyncClient without a socket."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        query = dict(parse_qsl(request.url.query.decode("latin-1")))
        reply = await self._handle(
            request.method,
            request.url.path,
            query,
            body,
            request.headers.get("content-type", ""),
        )
        if reply.stall:
            await anyio.sleep_forever()  # until the client's deadline cancels the request
        if reply.drop:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        payload, headers = reply_bytes(reply)
        return httpx.Response(reply.status, content=payload, headers=headers, request=request)
