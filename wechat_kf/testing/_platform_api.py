"""FakeWeChat's third-party platform endpoints: the open platform's component and authorizer
tokens, the WeCom service provider's suite and corp tokens."""

from __future__ import annotations

import secrets
from typing import Any

from ._faults import Refusal, Request
from ._state import OpenPlatformState, World

#: A verify or suite ticket is accepted this long after it was pushed.
TICKET_LIFETIME = 12 * 3600.0


def _payload(request: Request) -> dict[str, Any]:
    if not isinstance(request.payload, dict):
        raise Refusal(40058, "invalid parameter")
    return request.payload


def _platform_token(world: World, request: Request, name: str, kind: str, owner: str) -> None:
    """Refuse a missing, unknown, foreign or expired platform token in the query."""
    presented = request.query.get(name, "")
    if not presented:
        raise Refusal(41001, f"{name} missing")
    token = world.tokens.get(presented)
    if token is None or token.platform != kind or token.owner != owner:
        raise Refusal(40001, f"invalid credential, {name} is invalid")
    if token.expires_at <= world.now():
        raise Refusal(42001, f"{name} expired")


def _ticketed(
    world: World,
    body: dict[str, Any],
    secret: str,
    ticket: str | None,
    expires_at: float,
    *,
    fields: tuple[str, str],
    errcodes: tuple[int, int],
) -> None:
    """Refuse a wrong secret, or a ticket that is missing, not the latest or expired."""
    secret_field, ticket_field = fields
    if body.get(secret_field) != secret:
        raise Refusal(errcodes[0], f"invalid {secret_field}")
    presented = body.get(ticket_field)
    if not presented or presented != ticket or expires_at <= world.now():
        raise Refusal(errcodes[1], f"{ticket_field} is invalid or expired")


def _issued(world: World, field: str, kind: str, owner: str) -> dict[str, Any]:
    token = world.issue(kind, owner)
    return {field: token, "expires_in": world.token_body(token)["expires_in"]}


def _open_platform(world: World, body: dict[str, Any]) -> OpenPlatformState:
    platform = world.open_platforms.get(body.get("component_appid"))  # type: ignore[arg-type]
    if platform is None:
        raise Refusal(40013, "invalid component_appid")
    return platform


def component_token(world: World, _: None, request: Request) -> dict[str, Any]:
    body = _payload(request)
    platform = _open_platform(world, body)
    _ticketed(
        world, body, platform.component_appsecret, platform.ticket, platform.ticket_expires_at,
        fields=("component_appsecret", "component_verify_ticket"), errcodes=(40125, 61006),
    )  # fmt: skip
    return _issued(world, "component_access_token", "component", platform.component_appid)


def authorizer_token(world: World, _: None, request: Request) -> dict[str, Any]:
    body = _payload(request)
    platform = _open_platform(world, body)
    _platform_token(world, request, "component_access_token", "component", platform.component_appid)
    appid = str(body.get("authorizer_appid", ""))
    current = platform.refresh_tokens.get(appid)
    if current is None:
        raise Refusal(61003, "component is not authorized by this account")
    if body.get("authorizer_refresh_token") != current:
        raise Refusal(61023, "refresh_token is invalid")
    if world.rotate_refresh_tokens:
        current = platform.refresh_tokens[appid] = "refreshtoken@@@" + secrets.token_urlsafe(24)
    # An Official Account token: the OA APIs take it.
    issued = _issued(world, "authorizer_access_token", "oa", appid)
    return {**issued, "authorizer_refresh_token": current}


def suite_token(world: World, _: None, request: Request) -> dict[str, Any]:
    body = _payload(request)
    suite = world.service_providers.get(body.get("suite_id"))  # type: ignore[arg-type]
    if suite is None:
        raise Refusal(40082, "invalid suite_id")
    _ticketed(
        world, body, suite.suite_secret, suite.ticket, suite.ticket_expires_at,
        fields=("suite_secret", "suite_ticket"), errcodes=(40083, 40085),
    )  # fmt: skip
    return _issued(world, "suite_access_token", "suite", suite.suite_id)


def corp_token(world: World, _: None, request: Request) -> dict[str, Any]:
    body = _payload(request)
    presented = world.tokens.get(request.query.get("suite_access_token", ""))
    owner = presented.owner if presented is not None and presented.platform == "suite" else ""
    _platform_token(world, request, "suite_access_token", "suite", owner)
    suite = world.service_providers[owner]
    corpid = body.get("auth_corpid")
    code = suite.permanent_codes.get(corpid)  # type: ignore[arg-type]
    if code is None or body.get("permanent_code") != code:
        raise Refusal(40084, "invalid permanent_code")
    return _issued(world, "access_token", "wecom", str(corpid))  # the WeCom APIs take it
