"""FakeWeChat: an in-memory, stateful fake of the WeChat APIs wechat_kf calls. This module holds
the seeding, inspection, faults and routing; the state is a ``_state.World``, which the endpoint
modules (one per family: ``_token_api``, ``_official``, ``_wecom``, ``_platform_api``) take in
place of the fake, and the serving is in ``_serving``."""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, cast

import anyio
import attrs
import httpx

from . import _official, _platform_api, _token_api, _wecom
from ._faults import Call, Faults, Refusal, Reply, Request
from ._serving import AsgiApp, InProcessTransport, parse_multipart
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
)
Handler = Callable[[World, Any, Request], dict[str, Any]]
T = TypeVar("T")


@attrs.frozen
class _Route:
    """Who may call an endpoint ("token": anyone; "oa" / "wecom": a token of that platform)."""

    platform: str
    handler: Handler


#: Every endpoint the fake serves, built once.
_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/cgi-bin/stable_token"): _Route("token", _token_api.stable_token),
    ("GET", "/cgi-bin/token"): _Route("token", _token_api.classic_token),
    ("GET", "/cgi-bin/gettoken"): _Route("token", _token_api.wecom_token),
    ("POST", "/cgi-bin/component/api_component_token"): _Route(
        "token", _platform_api.component_token
    ),
    ("POST", "/cgi-bin/component/api_authorizer_token"): _Route(
        "token", _platform_api.authorizer_token
    ),
    ("POST", "/cgi-bin/service/get_suite_token"): _Route("token", _platform_api.suite_token),
    ("POST", "/cgi-bin/service/get_corp_token"): _Route("token", _platform_api.corp_token),
    ("GET", "/cgi-bin/customservice/getkflist"): _Route("oa", _official.kf_list),
    ("GET", "/cgi-bin/customservice/getonlinekflist"): _Route("oa", _official.kf_online),
    ("POST", "/customservice/kfaccount/add"): _Route("oa", _official.kf_add),
    ("POST", "/customservice/kfaccount/update"): _Route("oa", _official.kf_update),
    ("POST", "/customservice/kfaccount/del"): _Route("oa", _official.kf_delete),
    ("GET", "/customservice/kfaccount/del"): _Route("oa", _official.kf_delete),
    ("POST", "/customservice/kfaccount/inviteworker"): _Route("oa", _official.kf_invite),
    ("POST", "/customservice/kfaccount/uploadheadimg"): _Route("oa", _official.kf_avatar),
    ("POST", "/cgi-bin/kf/servicer/add"): _Route("wecom", _wecom.servicer_add),
    ("POST", "/cgi-bin/kf/servicer/del"): _Route("wecom", _wecom.servicer_delete),
    ("GET", "/cgi-bin/kf/servicer/list"): _Route("wecom", _wecom.servicer_list),
    ("POST", "/cgi-bin/kf/account/list"): _Route("wecom", _wecom.account_list),
}


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


class FakeWeChat:
    """An in-memory, stateful fake of the Official Account customer-service and WeCom servicer
    APIs, with their documented rules and errcodes. Seed it (``register_official_account``,
    ``register_wecom_app``, ``add_members``, ``create_kf_account``), hand ``fake.transport`` to a
    client's ``http_client`` (or serve ``fake.app`` over loopback), inject ``faults``, and assert on
    ``calls``, ``token_fetches`` and the state it keeps."""

    def __init__(self, *, seed: int = 0, token_ttl: int = 7200) -> None:
        self.faults = Faults()
        self._random = random.Random(seed)
        #: What the endpoints read and change (and the properties below show).
        self.world = World(self._random, token_ttl=token_ttl)
        self.calls: list[Call] = []
        self.token_fetches = 0
        self._business_calls = 0

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

    # -- seeding ---------------------------------------------------------------------------

    def register_official_account(
        self,
        appid: str = "wxfakeappid0001",
        secret: str | None = None,
        *,
        wechat_id: str = "gh_fake",
        customer_service_enabled: bool = True,
    ) -> OfficialAccountApp:
        """Register an Official Account that the token endpoints accept; returns its state."""
        app = OfficialAccountApp(
            appid=appid,
            secret=secret or secrets.token_hex(16),
            wechat_id=wechat_id,
            customer_service_enabled=customer_service_enabled,
        )
        self.official_accounts[appid] = app
        return app

    def register_wecom_app(
        self, corpid: str = "wwfakecorp0001", secret: str | None = None
    ) -> WeComApp:
        """Register a WeCom app (a corpid + secret pair); creates the corp if it is new."""
        app = WeComApp(corpid=corpid, secret=secret or secrets.token_urlsafe(32))
        self.wecom_apps[(corpid, app.secret)] = app
        self.corps.setdefault(corpid, Corp(corpid))
        return app

    def add_members(self, corpid: str, userids: Iterable[str]) -> None:
        """Make ``userids`` members of the corp (only members can become servicers)."""
        self._corp(corpid).members.update(userids)

    def add_departments(self, corpid: str, department_ids: Iterable[int]) -> None:
        """Create departments in the corp."""
        self._corp(corpid).departments.update(department_ids)

    def create_kf_account(
        self,
        corpid: str,
        name: str = "客服",
        *,
        open_kfid: str | None = None,
        avatar: str = "",
        manage_privilege: bool = True,
    ) -> str:
        """Create a 微信客服 account in the corp (as ``kf/account/list`` will list it: ``name``,
        ``avatar`` URL, whether this app may manage it) and return its open_kfid."""
        open_kfid = open_kfid or "wk" + secrets.token_hex(15)
        account = KfAccountOfCorp(open_kfid, name, avatar, manage_privilege)
        self._corp(corpid).kf_accounts[open_kfid] = account
        return open_kfid

    def add_servicers(
        self, open_kfid: str, userids: Iterable[str] = (), department_ids: Iterable[int] = ()
    ) -> None:
        """Seed servicers of a 微信客服 account directly, as if they had been added: the
        userids (made members of the corp if they are not) and the departments (created if
        new). Nothing is checked against WeChat's caps: seed what the test needs."""
        corp = next(c for c in self.corps.values() if open_kfid in c.kf_accounts)
        kf = corp.kf_accounts[open_kfid]
        for userid in userids:
            corp.members.add(userid)
            kf.servicers.setdefault(userid, 0)
        for department in department_ids:
            corp.departments.add(department)
            if department not in kf.departments:
                kf.departments.append(department)

    def register_open_platform(
        self, component_appid: str = "wxcomponent00001", component_appsecret: str | None = None
    ) -> OpenPlatformState:
        """Register an Official Account open platform (第三方平台); push it a verify ticket with
        :meth:`push_verify_ticket` before it can fetch its component token."""
        state = OpenPlatformState(component_appid, component_appsecret or secrets.token_hex(16))
        self.open_platforms[component_appid] = state
        return state

    def push_verify_ticket(self, component_appid: str) -> str:
        """What WeChat pushes to the platform's callback every 10 minutes: a new
        component_verify_ticket, accepted for 12 hours; returns it."""
        platform = self.open_platforms[component_appid]
        platform.ticket = "ticket@@@" + secrets.token_urlsafe(24)
        platform.ticket_expires_at = self.now() + _platform_api.TICKET_LIFETIME
        return platform.ticket

    def authorize(self, component_appid: str, authorizer_appid: str) -> str:
        """An Official Account authorises the platform (registered here if new); returns its
        authorizer_refresh_token."""
        if authorizer_appid not in self.official_accounts:
            self.register_official_account(authorizer_appid)
        token = "refreshtoken@@@" + secrets.token_urlsafe(24)
        self.open_platforms[component_appid].refresh_tokens[authorizer_appid] = token
        return token

    def register_service_provider(
        self, suite_id: str = "wwsuite000000001", suite_secret: str | None = None
    ) -> ServiceProviderState:
        """Register a WeCom service provider's suite (第三方应用); push it a suite ticket with
        :meth:`push_suite_ticket` before it can fetch its suite token."""
        state = ServiceProviderState(suite_id, suite_secret or secrets.token_urlsafe(32))
        self.service_providers[suite_id] = state
        return state

    def push_suite_ticket(self, suite_id: str) -> str:
        """A new suite_ticket, as WeChat pushes every 10 minutes; returns it."""
        suite = self.service_providers[suite_id]
        suite.ticket = secrets.token_urlsafe(32)
        suite.ticket_expires_at = self.now() + _platform_api.TICKET_LIFETIME
        return suite.ticket

    def authorize_corp(self, suite_id: str, corpid: str) -> str:
        """A corp installs the suite (the corp is created here if new); returns its
        permanent_code."""
        self._corp(corpid)
        code = secrets.token_urlsafe(32)
        self.service_providers[suite_id].permanent_codes[corpid] = code
        return code

    def add_kf_account(self, appid: str, kf_account: str, nickname: str) -> KfAccountState:
        """Seed a kf account of an Official Account directly, as if it had been added."""
        return self.world.add_kf_account(appid, kf_account, nickname)

    def accept_invite(self, appid: str, kf_account: str) -> None:
        """The invited WeChat user accepts: the kf account becomes bound to them."""
        account = self.official_accounts[appid].kf_accounts[kf_account]
        account.kf_wx, account.invite_wx = account.invite_wx, None
        account.invite_status = account.invite_expire_time = None

    def set_online(
        self, appid: str, kf_account: str, status: int = 1, accepted_case: int = 0
    ) -> None:
        """Mark a kf account online (status 1) or offline (0) with its number of sessions."""
        account = self.official_accounts[appid].kf_accounts[kf_account]
        account.online_status, account.accepted_case = status, accepted_case

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
        """Move the fake's clock forward, so tokens expire without waiting."""
        self.world.offset += seconds

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far, as WeChat may do at any time."""
        self.world.revoke_tokens()

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
        files: dict[str, bytes] = {}
        if content_type.startswith("multipart/form-data"):
            files = parse_multipart(body, content_type)
        elif body:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        request = Request(method, path, query, payload, files)
        faults = self.faults
        await self._sleep()
        route = _ROUTES.get((method, path))
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
        route = _ROUTES.get((request.method, request.path))
        if route is None:
            return Reply(404, {"errcode": 404, "errmsg": "not found"})
        try:
            if route.platform == "token":
                self.token_fetches += 1
                return Reply(200, route.handler(self.world, None, request))
            caller = self._caller(route.platform, request)
            return Reply(200, route.handler(self.world, caller, request))
        except Refusal as refusal:
            return Reply(200, self.error_body(refusal.errcode, refusal.text))

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

    def _corp(self, corpid: str) -> Corp:
        return self.world.corp(corpid)

    def _kf_of_corp(self, open_kfid: str) -> KfAccountOfCorp:
        for corp in self.corps.values():
            if open_kfid in corp.kf_accounts:
                return corp.kf_accounts[open_kfid]
        raise KeyError(open_kfid)
