"""FakeWeChat's token endpoints: ``stable_token`` and the classic ``token`` of Official
Accounts, WeCom's ``gettoken``."""

from __future__ import annotations

from typing import Any

from ._faults import Refusal, Request
from ._state import OfficialAccountApp, World

__all__ = ["classic_token", "stable_token", "wecom_token"]

#: How long a classic OA token keeps working after the next fetch replaced it.
CLASSIC_GRACE = 300.0


def _oa_app(world: World, appid: Any, secret: Any) -> OfficialAccountApp:
    app = world.official_accounts.get(appid) if isinstance(appid, str) else None
    if app is None:
        raise Refusal(40013, "invalid appid")
    if secret != app.secret:
        raise Refusal(40125, "invalid appsecret")
    return app


def stable_token(world: World, _: None, request: Request) -> dict[str, Any]:
    payload = request.payload
    if not isinstance(payload, dict) or payload.get("grant_type") != "client_credential":
        raise Refusal(40002, "invalid grant_type")
    app = _oa_app(world, payload.get("appid"), payload.get("secret"))
    now = world.now()
    current = world.tokens.get(app.stable_token or "")
    if payload.get("force_refresh") is True:
        if app.last_forced_refresh is not None and now - app.last_forced_refresh < 30:
            raise Refusal(45009, "force_refresh too frequent")
        app.last_forced_refresh = now
        if app.stable_token:
            world.tokens.pop(app.stable_token, None)
        current = None
    # The platform renews the stable token 5 minutes before it expires.
    if current is None or current.expires_at - now <= 300:
        app.stable_token = world.issue("oa", app.appid)
    return world.token_body(app.stable_token or "")


def classic_token(world: World, _: None, request: Request) -> dict[str, Any]:
    query = request.query
    if query.get("grant_type") != "client_credential":
        raise Refusal(40002, "invalid grant_type")
    app = _oa_app(world, query.get("appid"), query.get("secret"))
    # Each classic fetch replaces the previous tokens, which keep working for a grace period.
    cutoff = world.now() + CLASSIC_GRACE
    for state in world.tokens.values():
        if state.kind == "classic" and state.owner == app.appid:
            state.expires_at = min(state.expires_at, cutoff)
    token = world.issue("oa", app.appid)
    world.tokens[token].kind = "classic"
    return world.token_body(token)


def wecom_token(world: World, _: None, request: Request) -> dict[str, Any]:
    corpid, secret = request.query.get("corpid"), request.query.get("corpsecret")
    if not corpid:
        raise Refusal(41002, "corpid missing")
    if not secret:
        raise Refusal(41004, "corpsecret missing")
    if corpid not in world.corps:
        raise Refusal(40013, "invalid corpid")
    app = world.wecom_apps.get((corpid, secret))
    if app is None:
        raise Refusal(40001, "invalid credential, secret is invalid")
    token = app.token
    state = world.tokens.get(token or "")
    if token is None or state is None or state.expires_at <= world.now():
        token = app.token = world.issue("wecom", corpid)
    return world.token_body(token)
