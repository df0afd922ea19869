"""FakeWeChat: an in-memory, stateful fake of the WeChat APIs wechat_kf calls. This module holds
the inspection, clock, faults and routing; the seeding, the conversations and the pushes are
mixins (``_seeding``, ``_conversation``, ``_pushing``); the state is a ``_state.World``, which
the endpoint modules (``_token_api``, ``_official``, ``_official_sessions``, ``_wecom``,
``_wecom_kf``, ``_wecom_messages``, ``_platform_api``, listed in ``_routes``) take in place of
the fake, and the serving is in ``_serving``."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar, cast

import anyio
import httpx

from ._conversation import Conversation
from ._faults import Call, Faults, Refusal, Reply, Request, Upload
from ._injected import ErrcodeFault, ServicerIdFault
from ._pushing import Pushing
from ._routes import ROUTES
from ._seeding import Seeding
from ._serving import AsgiApp, InProcessTransport, parse_uploads
from ._state import (
    Corp,
    KfAccountOfCorp,
    KfAccountState,
    OfficialAccountApp,
    OpenPlatformState,
    ServiceProviderState,
    TokenState,
    WeComApp,
    World,
)

__all__ = ["Call", "FakeWeChat", "Faults"]

_SECRET_KEYS = (
    "access_token",
    "secret",
    "corpsecret",
    "component_appsecret",
    "component_verify_ticket",
    "component_access_token",
    "authorizer_refresh_token",
    "suite_secret",
    "suite_ticket",
    "suite_access_token",
    "permanent_code",
    # sync_msg's token: a callback's, which lets its holder pull the account's messages.
    "token",
)
T = TypeVar("T")


class _OfWorld(Generic[T]):
    """An attribute of FakeWeChat that is its world's, read and written there."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, fake: FakeWeChat, owner: type | None = None) -> T:
        return cast(T, getattr(fake.world, self._name))

    def __set__(self, fake: FakeWeChat, value: T) -> None:
        setattr(fake.world, self._name, value)


def _redact(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("<redacted>" if k in _SECRET_KEYS else v) for k, v in data.items()}


class FakeWeChat(Seeding, Conversation, Pushing):
    """An in-memory, stateful fake of the Official Account and WeCom customer-service APIs, with
    their documented rules and errcodes, on its own clock (:meth:`advance`). Seed it
    (``register_official_account``, ``register_wecom_app``, ``add_members``,
    ``create_kf_account``), make customers speak (``customer_says``, ``oa_customer_says``),
    hand ``fake.transport`` to a client's ``http_client`` (or serve ``fake.app`` over loopback),
    inject random ``faults`` and chosen errcodes (``inject_errcode``, ``fail_servicer_ids``),
    point it at a callback (``set_callback``, then ``pushing()``), and assert
    on ``calls``, ``token_fetches``, ``sent_messages()`` and the state it keeps."""

    def __init__(self, *, seed: int = 0, token_ttl: int = 7200) -> None:
        self._random = random.Random(seed)
        #: What the endpoints read and change (and the properties below show).
        self.world: World = World(self._random, token_ttl=token_ttl)
        self.calls: list[Call] = []
        self.token_fetches: int = 0
        self._business_calls = 0

    #: What the fake injects: random faults, and errcodes on chosen paths and ids.
    faults: _OfWorld[Faults] = _OfWorld()
    token_ttl: _OfWorld[int] = _OfWorld()
    #: Servicers per 微信客服 account (2,000 by the current docs; 500 by an older one).
    servicer_cap: _OfWorld[int] = _OfWorld()
    #: Every token issued and still known, with whose it is and until when.
    tokens: _OfWorld[dict[str, TokenState]] = _OfWorld()
    official_accounts: _OfWorld[dict[str, OfficialAccountApp]] = _OfWorld()
    wecom_apps: _OfWorld[dict[tuple[str, str], WeComApp]] = _OfWorld()
    corps: _OfWorld[dict[str, Corp]] = _OfWorld()
    open_platforms: _OfWorld[dict[str, OpenPlatformState]] = _OfWorld()
    service_providers: _OfWorld[dict[str, ServiceProviderState]] = _OfWorld()
    #: Hand out a new authorizer refresh token with every authorizer token (the old one stops
    #: working), as WeChat may.
    rotate_refresh_tokens: _OfWorld[bool] = _OfWorld()
    #: sync_msg pulls without a push's token answered per corp and minute; then 45009.
    tokenless_pulls_per_minute: _OfWorld[int] = _OfWorld()
    #: How often (0..1) a sync_msg page comes back empty with has_more 1, as WeChat's may.
    empty_page_rate: _OfWorld[float] = _OfWorld()

    # -- inspection and time ---------------------------------------------------------------

    def servicers(self, open_kfid: str) -> dict[str, int]:
        """The servicer userids of a kf account, with their status (0 serving)."""
        return dict(self._kf_of_corp(open_kfid).servicers)

    def servicer_departments(self, open_kfid: str) -> list[int]:
        """The servicer departments of a kf account, in the order they were added."""
        return list(self._kf_of_corp(open_kfid).departments)

    def kf_accounts(self, appid: str) -> dict[str, KfAccountState]:
        """The kf accounts of an Official Account, by kf_account."""
        return dict(self.official_accounts[appid].kf_accounts)

    def calls_to(self, path: str) -> list[Call]:
        """The calls made to ``path``."""
        return [call for call in self.calls if call.path == path]

    def issued_tokens(self) -> list[str]:
        """Every token the fake ever issued (for asserting they never leak)."""
        return list(self.tokens)

    def now(self) -> float:
        """The fake's clock: wall time plus what :meth:`advance` added."""
        return self.world.now()

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward, so tokens, media, windows and codes expire without
        waiting; crossing a 10-minute mark of the clock pushes a new ticket to every platform
        that has a callback (:meth:`set_platform_callback`), as WeChat does every 10 minutes."""
        before = self.world.now()
        self.world.offset += seconds
        self._push_tickets_at_marks(before)

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far, as WeChat may do at any time."""
        self.world.revoke_tokens()

    # -- chosen errcodes -------------------------------------------------------------------

    def inject_errcode(
        self,
        errcode: int,
        *,
        path: str | None = None,
        times: int | None = None,
        rate: float = 1.0,
        after: int = 0,
        errmsg: str | None = None,
    ) -> ErrcodeFault:
        """Answer calls to ``path`` (one the fake serves, such as ``"/cgi-bin/kf/send_msg"``;
        None: every business path, never a token endpoint) with ``errcode`` instead of applying
        them, with WeChat's errmsg for it (or ``errmsg``) and a rid: once the token was
        accepted, after the first ``after`` such calls, each with probability ``rate`` (from the
        seeded generator), for ``times`` calls (None: until removed from
        ``fake.faults.errcodes``). The first fault that answers a call wins. Returns the fault,
        whose ``hits`` count the calls it answered. Bad arguments are a ValueError or TypeError."""
        fault = ErrcodeFault(errcode, path, times, rate, after, errmsg)
        if path is not None and path not in {p for _, p in ROUTES}:
            raise ValueError(f"the fake serves no path {path!r}")
        self.faults.errcodes.append(fault)
        return fault

    def fail_servicer_ids(
        self,
        userids: Iterable[str] = (),
        *,
        errcode: int,
        department_ids: Iterable[int] = (),
        on: str | None = None,
        times: int | None = None,
        errmsg: str | None = None,
    ) -> ServicerIdFault:
        """Answer ``userids`` (exactly as sent) and ``department_ids`` in servicer batches
        with ``errcode`` in their ``result_list`` item (WeChat's errmsg for it, or ``errmsg``,
        and a rid) and leave them unapplied, while the call and its other ids succeed: on
        ``on`` ("add", "delete", or None for both), each id ``times`` times (None: every time).
        Returns the fault, whose ``hits`` count the items it answered. Bad arguments are a
        ValueError or TypeError."""
        fault = ServicerIdFault(errcode, userids, department_ids, on, times, errmsg)
        self.faults.servicer_ids.append(fault)
        return fault

    # -- serving ---------------------------------------------------------------------------

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that serves this fake in-process:
        ``httpx.AsyncClient(transport=fake.transport)``."""
        return InProcessTransport(self.handle)

    @property
    def app(self) -> AsgiApp:
        """The fake as an ASGI 3 application, to serve over loopback (``wechat-kf fake-server``,
        or ``uvicorn`` in your own tests)."""
        return AsgiApp(self.handle)

    async def handle(
        self, method: str, path: str, query: dict[str, str], body: bytes, content_type: str
    ) -> Reply:
        """Answer one request (shared by the in-process transport and the ASGI app): the faults
        drawn before it is applied, the endpoint, the faults drawn after."""
        payload: Any = None
        uploads: dict[str, Upload] = {}
        if content_type.startswith("multipart/form-data"):
            uploads = parse_uploads(body, content_type)
        elif body:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        files = {name: upload.content for name, upload in uploads.items()}
        request = Request(method, path, query, payload, files, uploads)
        faults = self.faults
        await self._sleep()
        route = ROUTES.get((method, path))
        if faults.token_latency > 0 and route is not None and route.platform == "token":
            await anyio.sleep(faults.token_latency)
        rand = self._random.random
        if rand() < faults.drop_rate:
            return self._log(request, Reply(0, {}, drop=True))
        if rand() < faults.http_error_rate:
            return self._log(request, Reply(faults.http_error_status, {"error": "injected"}))
        if rand() < faults.busy_rate:
            return self._log(request, Reply(200, self.error_body(-1, "system error")))
        reply = self._route(request)
        if faults.http_error_after_rate and rand() < faults.http_error_after_rate:
            reply = Reply(faults.http_error_status, {"error": "injected after applying"})
        elif faults.stall_rate and rand() < faults.stall_rate:
            reply.stall = True
        else:
            reply.drop = rand() < faults.drop_after_rate
        return self._log(request, reply)

    # -- what tests build their own answers with --------------------------------------------

    def issue(self, platform: str, owner: str) -> str:
        """A new token of ``platform`` for ``owner``, valid for ``token_ttl`` seconds."""
        return self.world.issue(platform, owner)

    def token_body(self, token: str) -> dict[str, Any]:
        """The answer of a token endpoint handing out ``token``."""
        return self.world.token_body(token)

    def error_body(self, errcode: int, text: str) -> dict[str, Any]:
        """An errcode and an errmsg ending in a rid, as WeChat writes them."""
        return self.world.error_body(errcode, text)

    # -- internals -------------------------------------------------------------------------

    async def _sleep(self) -> None:
        latency = self.faults.latency
        if isinstance(latency, tuple):
            latency = self._random.uniform(*latency)
        if latency > 0:
            await anyio.sleep(latency)

    def _log(self, request: Request, reply: Reply) -> Reply:
        errcode = reply.body.get("errcode") if reply.status == 200 else None
        payload = request.payload
        body = _redact(payload) if isinstance(payload, dict) else payload
        call = Call(
            request.method,
            request.path,
            _redact(request.query),
            body,
            errcode,
            reply.status,
            reply.drop,
            reply.stall,
        )
        self.calls.append(call)
        return reply

    def _route(self, request: Request) -> Reply:
        route = ROUTES.get((request.method, request.path))
        if route is None:
            return Reply(404, {"errcode": 404, "errmsg": "not found"})
        try:
            if route.platform == "token":
                self.token_fetches += 1
                caller: OfficialAccountApp | Corp | None = None
            else:
                caller = self._caller(route.platform, request)
            injected = self.faults.errcode_for(request.path, route.platform, self._random.random)
            if injected is not None:
                raise Refusal(injected.errcode, injected.text(route.platform))
            answer = route.handler(self.world, caller, request)
        except Refusal as refusal:
            return Reply(200, self.error_body(refusal.errcode, refusal.text))
        return answer if isinstance(answer, Reply) else Reply(200, answer)

    def _caller(self, platform: str, request: Request) -> OfficialAccountApp | Corp:
        """The Official Account or corp whose token the business call carries; refuses a
        missing, foreign, expired or revoked token."""
        self._business_calls += 1
        every = self.faults.revoke_every
        if every and self._business_calls % every == 0:
            self.revoke_tokens()
        presented = request.query.get("access_token", "")
        if not presented:
            raise Refusal(41001, "access_token missing")
        token = self.tokens.get(presented)
        if token is None or token.platform != platform:
            code = 40001 if platform == "oa" else 40014
            raise Refusal(code, "invalid credential, access_token is invalid")
        if token.expires_at <= self.now():
            raise Refusal(42001, "access_token expired")
        if platform == "wecom":
            return self.corps[token.owner]
        app = self.official_accounts[token.owner]
        if not app.customer_service_enabled:
            raise Refusal(65400, "customer service not enabled")
        return app

    def _kf_of_corp(self, open_kfid: str) -> KfAccountOfCorp:
        for corp in self.corps.values():
            if open_kfid in corp.kf_accounts:
                return corp.kf_accounts[open_kfid]
        raise KeyError(open_kfid)
