"""FakeWeChat: an in-memory, stateful fake of the WeChat APIs wechat_kf calls."""

from __future__ import annotations

import json
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import anyio
import attrs
import httpx

from ._state import (
    Corp,
    KfAccountOfCorp,
    KfAccountState,
    OfficialAccountApp,
    TokenState,
    WeComApp,
)

__all__ = ["Call", "FakeWeChat", "Faults"]

MAX_KF_ACCOUNTS = 100
MAX_IDS_PER_CALL = 100
MAX_SERVICERS = 2000
MAX_SERVICER_DEPARTMENTS = 20
MAX_AVATAR_BYTES = 5 * 1024 * 1024
#: How long a classic OA token keeps working after the next fetch replaced it.
CLASSIC_GRACE = 300.0
_KF_ACCOUNT = re.compile(r"([A-Za-z0-9_]{1,10})@(\S{1,30})")
_SECRET_KEYS = ("access_token", "secret", "corpsecret")
_TOKEN_PATHS = ("/cgi-bin/stable_token", "/cgi-bin/token", "/cgi-bin/gettoken")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@attrs.define
class Faults:
    """Failures the fake injects, drawn from its seeded random generator: ``latency`` seconds
    (a number, or a ``(low, high)`` range) plus ``token_latency`` on the token endpoints, the rate
    of ``-1`` busy answers, of HTTP ``http_error_status`` answers before the request is applied
    (``http_error_rate``) or after it was applied (``http_error_after_rate``, as a gateway that
    timed out on a slow backend), of connections dropped before the request is applied
    (``drop_rate``) or after it was applied (``drop_after_rate``), of answers that never come
    after the request was applied (``stall_rate``: the client's timeout must end the wait), and
    ``revoke_every`` N business calls all tokens are revoked. A rate left at 0 draws nothing
    from the generator, so adding a fault keeps the others' sequence for a seed."""

    latency: float | tuple[float, float] = 0.0
    token_latency: float = 0.0
    busy_rate: float = 0.0
    http_error_rate: float = 0.0
    http_error_after_rate: float = 0.0
    http_error_status: int = 502
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    stall_rate: float = 0.0
    revoke_every: int | None = None


@attrs.frozen
class Call:
    """One request the fake received, secrets redacted: method, path, query, JSON body, the
    errcode and HTTP status it answered, and whether the connection was dropped or the answer
    stalled instead (then the client never saw the answer; ``status`` is 0 when nothing was
    applied)."""

    method: str
    path: str
    params: dict[str, str]
    json: Any
    errcode: int | None
    status: int
    dropped: bool = False
    stalled: bool = False

    @property
    def delivered_ok(self) -> bool:
        """True when the client received a success: HTTP 200, errcode 0 or absent, not dropped,
        not stalled."""
        return self.status == 200 and not self.errcode and not self.dropped and not self.stalled


class _Drop(Exception):
    """Raised inside the fake to drop the connection instead of answering."""


@attrs.define
class _Reply:
    status: int
    body: dict[str, Any]
    drop: bool = False
    stall: bool = False


async def read_body(receive: Receive) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


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
        self.token_ttl = token_ttl
        #: Servicers per 微信客服 account (2,000 by the current docs; 500 by an older one).
        self.servicer_cap = MAX_SERVICERS
        self.calls: list[Call] = []
        self.token_fetches = 0
        self._random = random.Random(seed)
        self._offset = 0.0
        self._business_calls = 0
        self._next_kf_id = 1001
        self._tokens: dict[str, TokenState] = {}
        self.official_accounts: dict[str, OfficialAccountApp] = {}
        self.wecom_apps: dict[tuple[str, str], WeComApp] = {}
        self.corps: dict[str, Corp] = {}

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
        self, corpid: str, name: str = "客服", *, open_kfid: str | None = None
    ) -> str:
        """Create a 微信客服 account in the corp and return its open_kfid."""
        open_kfid = open_kfid or "wk" + secrets.token_hex(15)
        self._corp(corpid).kf_accounts[open_kfid] = KfAccountOfCorp(open_kfid, name)
        return open_kfid

    def add_kf_account(self, appid: str, kf_account: str, nickname: str) -> KfAccountState:
        """Seed a kf account of an Official Account directly, as if it had been added."""
        state = KfAccountState(kf_account, nickname, self._next_kf_id)
        self._next_kf_id += 1
        self.official_accounts[appid].kf_accounts[kf_account] = state
        return state

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

    def kf_accounts(self, appid: str) -> dict[str, KfAccountState]:
        """The kf accounts of an Official Account, by kf_account."""
        return dict(self.official_accounts[appid].kf_accounts)

    def calls_to(self, path: str) -> list[Call]:
        """The calls made to ``path``."""
        return [call for call in self.calls if call.path == path]

    def issued_tokens(self) -> list[str]:
        """Every token the fake ever issued (for asserting they never leak)."""
        return list(self._tokens)

    def now(self) -> float:
        """The fake's clock: wall time plus what :meth:`advance` added."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward, so tokens expire without waiting."""
        self._offset += seconds

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far, as WeChat may do at any time."""
        self._tokens.clear()
        for app in self.official_accounts.values():
            app.stable_token = None
        for wecom in self.wecom_apps.values():
            wecom.token = None

    # -- serving ---------------------------------------------------------------------------

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that serves this fake in-process:
        ``httpx.AsyncClient(transport=fake.transport)``."""
        return _InProcessTransport(self)

    @property
    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The fake as an ASGI 3 application, to serve over loopback (``wechat-kf fake-server``,
        or ``uvicorn`` in your own tests)."""
        return _AsgiApp(self)

    async def serve_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI connection (what :attr:`app` calls)."""
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
        reply = await self.handle(
            scope["method"], scope["path"], query, body, headers.get("content-type", "")
        )
        if reply.stall:
            # Never answer; stop waiting once the client has given up and gone.
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        payload = json.dumps(reply.body, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        if reply.drop:
            # Failing after the headers makes the server close the connection mid-response.
            raise _Drop("connection dropped by FakeWeChat")
        await send({"type": "http.response.body", "body": payload})

    async def handle(
        self, method: str, path: str, query: dict[str, str], body: bytes, content_type: str
    ) -> _Reply:
        """Answer one request (shared by the in-process transport and the ASGI app)."""
        payload: Any = None
        files: dict[str, bytes] = {}
        if content_type.startswith("multipart/form-data"):
            files = _parse_multipart(body, content_type)
        elif body:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        faults = self.faults
        await self._sleep()
        if faults.token_latency > 0 and path in _TOKEN_PATHS:
            await anyio.sleep(faults.token_latency)
        rand = self._random.random
        if rand() < faults.drop_rate:
            return self._log(method, path, query, payload, _Reply(0, {}, drop=True))
        if rand() < faults.http_error_rate:
            status = faults.http_error_status
            return self._log(method, path, query, payload, _Reply(status, {"error": "injected"}))
        if rand() < faults.busy_rate:
            reply = _Reply(200, self._error(-1, "system error"))
            return self._log(method, path, query, payload, reply)
        reply = self._route(method, path, query, payload, files)
        if faults.http_error_after_rate and rand() < faults.http_error_after_rate:
            reply = _Reply(faults.http_error_status, {"error": "injected after applying"})
        elif faults.stall_rate and rand() < faults.stall_rate:
            reply.stall = True
        else:
            reply.drop = rand() < faults.drop_after_rate
        return self._log(method, path, query, payload, reply)

    # -- internals -------------------------------------------------------------------------

    async def _sleep(self) -> None:
        latency = self.faults.latency
        if isinstance(latency, tuple):
            latency = self._random.uniform(*latency)
        if latency > 0:
            await anyio.sleep(latency)

    def _log(
        self, method: str, path: str, query: dict[str, str], payload: Any, reply: _Reply
    ) -> _Reply:
        errcode = reply.body.get("errcode") if reply.status == 200 else None
        body = _redact(payload) if isinstance(payload, dict) else payload
        self.calls.append(
            Call(method, path, _redact(query), body, errcode, reply.status, reply.drop, reply.stall)
        )
        return reply

    def _error(self, errcode: int, text: str) -> dict[str, Any]:
        rid = f"{self._random.getrandbits(32):08x}-{self._random.getrandbits(32):08x}"
        return {"errcode": errcode, "errmsg": f"{text} rid: {rid}"}

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        payload: Any,
        files: dict[str, bytes],
    ) -> _Reply:
        token_routes: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("POST", "/cgi-bin/stable_token"): lambda: self._stable_token(payload),
            ("GET", "/cgi-bin/token"): lambda: self._classic_token(query),
            ("GET", "/cgi-bin/gettoken"): lambda: self._wecom_token(query),
        }
        if (method, path) in token_routes:
            self.token_fetches += 1
            return _Reply(200, token_routes[(method, path)]())
        oa_routes: dict[tuple[str, str], Callable[[OfficialAccountApp], dict[str, Any]]] = {
            ("GET", "/cgi-bin/customservice/getkflist"): self._kf_list,
            ("GET", "/cgi-bin/customservice/getonlinekflist"): self._kf_online,
            ("POST", "/customservice/kfaccount/add"): lambda app: self._kf_add(app, payload),
            ("POST", "/customservice/kfaccount/update"): lambda app: self._kf_update(app, payload),
            ("POST", "/customservice/kfaccount/del"): lambda app: self._kf_del(app, payload),
            ("GET", "/customservice/kfaccount/del"): lambda app: self._kf_del(app, query),
            ("POST", "/customservice/kfaccount/inviteworker"): lambda app: self._kf_invite(
                app, payload
            ),
            ("POST", "/customservice/kfaccount/uploadheadimg"): lambda app: self._kf_avatar(
                app, query, files
            ),
        }
        wecom_routes: dict[tuple[str, str], Callable[[Corp], dict[str, Any]]] = {
            ("POST", "/cgi-bin/kf/servicer/add"): lambda corp: self._servicer_add(corp, payload),
            ("POST", "/cgi-bin/kf/servicer/del"): lambda corp: self._servicer_del(corp, payload),
            ("GET", "/cgi-bin/kf/servicer/list"): lambda corp: self._servicer_list(corp, query),
            ("POST", "/cgi-bin/kf/account/list"): lambda corp: self._account_list(corp, payload),
        }
        key = (method, path)
        if key not in oa_routes and key not in wecom_routes:
            return _Reply(404, {"errcode": 404, "errmsg": "not found"})
        self._business_calls += 1
        every = self.faults.revoke_every
        if every and self._business_calls % every == 0:
            self.revoke_tokens()
        token = self._tokens.get(query.get("access_token", ""))
        platform = "oa" if key in oa_routes else "wecom"
        if not query.get("access_token"):
            return _Reply(200, self._error(41001, "access_token missing"))
        if token is None or token.platform != platform:
            code = 40001 if platform == "oa" else 40014
            return _Reply(200, self._error(code, "invalid credential, access_token is invalid"))
        if token.expires_at <= self.now():
            return _Reply(200, self._error(42001, "access_token expired"))
        if platform == "oa":
            app = self.official_accounts[token.owner]
            if not app.customer_service_enabled:
                return _Reply(200, self._error(65400, "customer service not enabled"))
            return _Reply(200, oa_routes[key](app))
        return _Reply(200, wecom_routes[key](self.corps[token.owner]))

    # tokens

    def _issue(self, platform: str, owner: str) -> str:
        token = secrets.token_urlsafe(96)
        self._tokens[token] = TokenState(platform, owner, self.now() + self.token_ttl)
        return token

    def _token_body(self, token: str) -> dict[str, Any]:
        remaining = int(self._tokens[token].expires_at - self.now())
        return {"access_token": token, "expires_in": remaining}

    def _oa_app(self, appid: Any, secret: Any) -> OfficialAccountApp | dict[str, Any]:
        app = self.official_accounts.get(appid) if isinstance(appid, str) else None
        if app is None:
            return self._error(40013, "invalid appid")
        if secret != app.secret:
            return self._error(40125, "invalid appsecret")
        return app

    def _stable_token(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or payload.get("grant_type") != "client_credential":
            return self._error(40002, "invalid grant_type")
        app = self._oa_app(payload.get("appid"), payload.get("secret"))
        if not isinstance(app, OfficialAccountApp):
            return app
        now = self.now()
        current = self._tokens.get(app.stable_token or "")
        if payload.get("force_refresh") is True:
            if app.last_forced_refresh is not None and now - app.last_forced_refresh < 30:
                return self._error(45009, "force_refresh too frequent")
            app.last_forced_refresh = now
            if app.stable_token:
                self._tokens.pop(app.stable_token, None)
            current = None
        # The platform renews the stable token 5 minutes before it expires.
        if current is None or current.expires_at - now <= 300:
            app.stable_token = self._issue("oa", app.appid)
        assert app.stable_token is not None
        return self._token_body(app.stable_token)

    def _classic_token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            return self._error(40002, "invalid grant_type")
        app = self._oa_app(query.get("appid"), query.get("secret"))
        if not isinstance(app, OfficialAccountApp):
            return app
        # Each classic fetch replaces the previous tokens, which keep working for a grace period.
        cutoff = self.now() + CLASSIC_GRACE
        for state in self._tokens.values():
            if state.kind == "classic" and state.owner == app.appid:
                state.expires_at = min(state.expires_at, cutoff)
        token = self._issue("oa", app.appid)
        self._tokens[token].kind = "classic"
        return self._token_body(token)

    def _wecom_token(self, query: dict[str, str]) -> dict[str, Any]:
        corpid, secret = query.get("corpid"), query.get("corpsecret")
        if not corpid:
            return self._error(41002, "corpid missing")
        if not secret:
            return self._error(41004, "corpsecret missing")
        if corpid not in self.corps:
            return self._error(40013, "invalid corpid")
        app = self.wecom_apps.get((corpid, secret))
        if app is None:
            return self._error(40001, "invalid credential, secret is invalid")
        token = app.token
        state = self._tokens.get(token or "")
        if token is None or state is None or state.expires_at <= self.now():
            token = app.token = self._issue("wecom", corpid)
        return self._token_body(token)

    # Official Account customer service

    def _ok(self) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "ok"}

    def _kf_list(self, app: OfficialAccountApp) -> dict[str, Any]:
        items = []
        for account in app.kf_accounts.values():
            item: dict[str, Any] = {
                "kf_account": account.kf_account,
                "kf_nick": account.kf_nick,
                "kf_id": account.kf_id,
            }
            optional = {
                "kf_headimgurl": account.kf_headimgurl,
                "kf_wx": account.kf_wx,
                "invite_wx": account.invite_wx,
                "invite_expire_time": account.invite_expire_time,
                "invite_status": account.invite_status,
            }
            item.update({k: v for k, v in optional.items() if v is not None})
            items.append(item)
        return {"kf_list": items}

    def _kf_online(self, app: OfficialAccountApp) -> dict[str, Any]:
        return {
            "kf_online_list": [
                {
                    "kf_account": a.kf_account,
                    "status": a.online_status,
                    "kf_id": str(a.kf_id),
                    "accepted_case": a.accepted_case,
                }
                for a in app.kf_accounts.values()
                if a.online_status
            ]
        }

    def _check_account(
        self, app: OfficialAccountApp, payload: Any, *, exists: bool
    ) -> KfAccountState | dict[str, Any] | None:
        """The account named in ``payload`` (None when it must not exist yet), or an error."""
        name = payload.get("kf_account") if isinstance(payload, Mapping) else None
        match = _KF_ACCOUNT.fullmatch(name) if isinstance(name, str) else None
        if match is None:
            return self._error(65404, "illegal kf account")
        if match.group(2) != app.wechat_id:
            return self._error(65401, "invalid kf account")
        account = app.kf_accounts.get(name) if isinstance(name, str) else None
        if exists and account is None:
            return self._error(65401, "invalid kf account")
        if not exists and account is not None:
            return self._error(65406, "kf account exists")
        return account

    def _check_nickname(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        nick = payload.get("nickname")
        if not isinstance(nick, str) or not 1 <= len(nick) <= 16:
            return self._error(65403, "illegal nickname")
        return None

    def _kf_add(self, app: OfficialAccountApp, payload: Any) -> dict[str, Any]:
        checked = self._check_account(app, payload, exists=False)
        if isinstance(checked, dict):
            return checked
        error = self._check_nickname(payload)
        if error:
            return error
        if len(app.kf_accounts) >= MAX_KF_ACCOUNTS:
            return self._error(65405, "account number exceeds limit")
        self.add_kf_account(app.appid, payload["kf_account"], payload["nickname"])
        return self._ok()

    def _kf_update(self, app: OfficialAccountApp, payload: Any) -> dict[str, Any]:
        checked = self._check_account(app, payload, exists=True)
        if not isinstance(checked, KfAccountState):
            return checked or self._error(65401, "invalid kf account")
        error = self._check_nickname(payload)
        if error:
            return error
        checked.kf_nick = payload["nickname"]
        return self._ok()

    def _kf_del(self, app: OfficialAccountApp, payload: Any) -> dict[str, Any]:
        checked = self._check_account(app, payload, exists=True)
        if not isinstance(checked, KfAccountState):
            return checked or self._error(65401, "invalid kf account")
        del app.kf_accounts[checked.kf_account]
        return self._ok()

    def _kf_invite(self, app: OfficialAccountApp, payload: Any) -> dict[str, Any]:
        checked = self._check_account(app, payload, exists=True)
        if not isinstance(checked, KfAccountState):
            return checked or self._error(65401, "invalid kf account")
        invitee = payload.get("invite_wx")
        if not isinstance(invitee, str) or not invitee or any(c.isspace() for c in invitee):
            return self._error(65409, "invalid wechat id")
        if checked.kf_wx is not None:
            return self._error(65412, "kf account already bound")
        now = int(self.now())
        if checked.invite_status == "waiting" and (checked.invite_expire_time or 0) > now:
            if checked.invite_wx == invitee:
                return self._error(65408, "invite already exists")
            return self._error(65411, "a pending invitation exists")
        checked.invite_wx, checked.invite_status = invitee, "waiting"
        checked.invite_expire_time = now + 7 * 24 * 3600
        return self._ok()

    def _kf_avatar(
        self, app: OfficialAccountApp, query: dict[str, str], files: dict[str, bytes]
    ) -> dict[str, Any]:
        checked = self._check_account(app, query, exists=True)
        if not isinstance(checked, KfAccountState):
            return checked or self._error(65401, "invalid kf account")
        media = files.get("media")
        if media is None:
            return self._error(40005, "invalid file type, media field missing")
        if not media or len(media) > MAX_AVATAR_BYTES:
            return self._error(40009, "invalid image size")
        checked.kf_headimgurl = f"https://fake.weixin.qq.com/head/{checked.kf_id}/{len(media)}"
        return self._ok()

    # WeCom servicers

    def _corp(self, corpid: str) -> Corp:
        return self.corps.setdefault(corpid, Corp(corpid))

    def _kf_of_corp(self, open_kfid: str) -> KfAccountOfCorp:
        for corp in self.corps.values():
            if open_kfid in corp.kf_accounts:
                return corp.kf_accounts[open_kfid]
        raise KeyError(open_kfid)

    def _servicer_request(
        self, corp: Corp, payload: Any
    ) -> tuple[KfAccountOfCorp, list[Any], list[Any]] | dict[str, Any]:
        if not isinstance(payload, dict):
            return self._error(40058, "invalid parameter")
        kf = corp.kf_accounts.get(payload.get("open_kfid"))  # type: ignore[arg-type]
        if kf is None:
            return self._error(95000, "invalid open_kfid")
        users = payload.get("userid_list") or []
        departments = payload.get("department_id_list") or []
        if not isinstance(users, list) or not isinstance(departments, list):
            return self._error(40058, "invalid parameter")
        if not users and not departments:
            return self._error(40058, "userid_list and department_id_list are both empty")
        if len(users) > MAX_IDS_PER_CALL or len(departments) > MAX_IDS_PER_CALL:
            return self._error(40058, "too many ids in one call")
        return kf, users, departments

    def _refuse_userid(self, corp: Corp, userid: Any) -> dict[str, Any] | None:
        """The result item for a malformed or unknown userid, or None for a member."""
        if not isinstance(userid, str) or not userid:
            return {"userid": userid, **self._error(40003, "invalid userid")}
        if userid not in corp.members:
            return {"userid": userid, **self._error(60111, "userid not found")}
        return None

    def _servicer_add(self, corp: Corp, payload: Any) -> dict[str, Any]:
        checked = self._servicer_request(corp, payload)
        if isinstance(checked, dict):
            return checked
        kf, users, departments = checked
        results: list[dict[str, Any]] = []
        for userid in users:
            refused = self._refuse_userid(corp, userid)
            if refused:
                results.append(refused)
            elif userid in kf.servicers:
                results.append({"userid": userid, "errcode": 0, "errmsg": "ignored"})
            elif len(kf.servicers) >= self.servicer_cap:
                results.append({"userid": userid, **self._error(95005, "servicer limit reached")})
            else:
                kf.servicers[userid] = 0
                results.append({"userid": userid, "errcode": 0, "errmsg": "success"})
        for department in departments:
            if not _positive_int(department):
                item = self._error(60123, "invalid department id")
            elif department not in corp.departments:
                item = self._error(60003, "department not found")
            elif department in kf.departments:
                item = {"errcode": 0, "errmsg": "ignored"}
            elif len(kf.departments) >= MAX_SERVICER_DEPARTMENTS:
                item = self._error(95005, "servicer department limit reached")
            else:
                kf.departments.append(department)
                item = {"errcode": 0, "errmsg": "success"}
            results.append({"department_id": department, **item})
        return {"errcode": 0, "errmsg": "ok", "result_list": results}

    def _servicer_del(self, corp: Corp, payload: Any) -> dict[str, Any]:
        checked = self._servicer_request(corp, payload)
        if isinstance(checked, dict):
            return checked
        kf, users, departments = checked
        results: list[dict[str, Any]] = []
        for userid in users:
            refused = self._refuse_userid(corp, userid)
            if refused:
                results.append(refused)
            elif kf.servicers.pop(userid, None) is None:
                results.append({"userid": userid, **self._error(95014, "not a servicer")})
            else:
                results.append({"userid": userid, "errcode": 0, "errmsg": "success"})
        for department in departments:
            if not _positive_int(department):
                item = self._error(60123, "invalid department id")
            elif department in kf.departments:
                kf.departments.remove(department)
                item = {"errcode": 0, "errmsg": "success"}
            else:
                item = self._error(95014, "not a servicer")
            results.append({"department_id": department, **item})
        return {"errcode": 0, "errmsg": "ok", "result_list": results}

    def _servicer_list(self, corp: Corp, query: dict[str, str]) -> dict[str, Any]:
        kf = corp.kf_accounts.get(query.get("open_kfid", ""))
        if kf is None:
            return self._error(95000, "invalid open_kfid")
        items: list[dict[str, Any]] = [
            {"userid": userid, "status": status, "stop_type": 0}
            for userid, status in kf.servicers.items()
        ]
        items.extend({"department_id": department} for department in kf.departments)
        return {"errcode": 0, "errmsg": "ok", "servicer_list": items}

    def _account_list(self, corp: Corp, payload: Any) -> dict[str, Any]:
        offset = payload.get("offset", 0) if isinstance(payload, dict) else 0
        limit = payload.get("limit", 100) if isinstance(payload, dict) else 100
        if not isinstance(offset, int) or not isinstance(limit, int) or not 1 <= limit <= 100:
            return self._error(40058, "invalid offset or limit")
        accounts = list(corp.kf_accounts.values())[offset : offset + limit]
        return {
            "errcode": 0,
            "errmsg": "ok",
            "account_list": [
                {"open_kfid": kf.open_kfid, "name": kf.name, "avatar": "", "manage_privilege": True}
                for kf in accounts
            ],
        }


class _AsgiApp:
    """An ASGI 3 callable (an instance with an async ``__call__``, as servers expect)."""

    def __init__(self, fake: FakeWeChat) -> None:
        self._fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fake.serve_asgi(scope, receive, send)


class _InProcessTransport(httpx.AsyncBaseTransport):
    """Serves a FakeWeChat to an httpx.AsyncClient without a socket."""

    def __init__(self, fake: FakeWeChat) -> None:
        self._fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        query = dict(parse_qsl(request.url.query.decode("latin-1")))
        reply = await self._fake.handle(
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
        return httpx.Response(reply.status, json=reply.body, request=request)


def _parse_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """The file parts of a multipart/form-data body, by field name."""
    match = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if match is None:
        return {}
    boundary = b"--" + match.group(1).encode()
    files: dict[str, bytes] = {}
    for part in body.split(boundary):
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        name = re.search(rb'name="([^"]*)"', head)
        if name:
            files[name.group(1).decode()] = content.removesuffix(b"\r\n")
    return files
