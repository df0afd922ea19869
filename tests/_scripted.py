"""A scripted WeChat for transport tests: token endpoints issue tok-1, tok-2, ...; business calls
answer from a queue of replies (a dict body, an httpx.Response, or an exception to raise)."""

from __future__ import annotations

from collections import deque
from typing import Any

import httpx

Reply = dict[str, Any] | httpx.Response | Exception

TOKEN_PATHS = {"/cgi-bin/stable_token", "/cgi-bin/token", "/cgi-bin/gettoken"}
SECRET = "s3cr3t-value-never-logged"


class Scripted:
    """Records every request; ``business`` holds what the next business calls answer (then
    ``{"errcode": 0}``), ``token_replies`` what the next token fetches answer."""

    def __init__(self, *business: Reply, token_replies: tuple[Reply, ...] = ()) -> None:
        self.business: deque[Reply] = deque(business)
        self.token_replies: deque[Reply] = deque(token_replies)
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0

    @property
    def business_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path not in TOKEN_PATHS]

    @property
    def token_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path in TOKEN_PATHS]

    def issued(self) -> list[str]:
        return [f"tok-{i}-{SECRET}" for i in range(1, self.tokens_issued + 1)]

    def _answer(self, reply: Reply, request: httpx.Request) -> httpx.Response:
        if isinstance(reply, Exception):
            if isinstance(reply, httpx.RequestError):
                reply._request = request
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return httpx.Response(200, json=reply)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path in TOKEN_PATHS:
            if self.token_replies:
                return self._answer(self.token_replies.popleft(), request)
            self.tokens_issued += 1
            token = f"tok-{self.tokens_issued}-{SECRET}"
            return httpx.Response(200, json={"access_token": token, "expires_in": 7200})
        if self.business:
            return self._answer(self.business.popleft(), request)
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))
