"""FakeWeChat's Official Account customer-service API (``customservice`` and ``kfaccount``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._faults import Refusal, Request
from ._state import KfAccountState, OfficialAccountApp, World

MAX_KF_ACCOUNTS = 100
MAX_AVATAR_BYTES = 5 * 1024 * 1024
_KF_ACCOUNT = re.compile(r"([A-Za-z0-9_]{1,10})@(\S{1,30})")
OK = {"errcode": 0, "errmsg": "ok"}


def kf_list(world: World, app: OfficialAccountApp, _: Request) -> dict[str, Any]:
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


def kf_online(world: World, app: OfficialAccountApp, _: Request) -> dict[str, Any]:
    online = [
        {
            "kf_account": a.kf_account,
            "status": a.online_status,
            "kf_id": str(a.kf_id),
            "accepted_case": a.accepted_case,
        }
        for a in app.kf_accounts.values()
        if a.online_status
    ]
    return {"kf_online_list": online}


def _named(app: OfficialAccountApp, fields: Any, *, exists: bool) -> KfAccountState | None:
    """The account ``fields`` names (None when it must not exist yet); refuses a bad name."""
    name = fields.get("kf_account") if isinstance(fields, Mapping) else None
    match = _KF_ACCOUNT.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise Refusal(65404, "illegal kf account")
    if match.group(2) != app.wechat_id:
        raise Refusal(65401, "invalid kf account")
    account = app.kf_accounts.get(name) if isinstance(name, str) else None
    if exists and account is None:
        raise Refusal(65401, "invalid kf account")
    if not exists and account is not None:
        raise Refusal(65406, "kf account exists")
    return account


def _existing(app: OfficialAccountApp, fields: Any) -> KfAccountState:
    account = _named(app, fields, exists=True)
    assert account is not None
    return account


def _nickname(payload: Mapping[str, Any]) -> str:
    nick = payload.get("nickname")
    if not isinstance(nick, str) or not 1 <= len(nick) <= 16:
        raise Refusal(65403, "illegal nickname")
    return nick


def kf_add(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    _named(app, request.payload, exists=False)
    nickname = _nickname(request.payload)
    if len(app.kf_accounts) >= MAX_KF_ACCOUNTS:
        raise Refusal(65405, "account number exceeds limit")
    world.add_kf_account(app.appid, request.payload["kf_account"], nickname)
    return OK


def kf_update(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    account = _existing(app, request.payload)
    account.kf_nick = _nickname(request.payload)
    return OK


def kf_delete(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    # Older clients send the account in the query of a GET.
    account = _existing(app, request.payload if request.method == "POST" else request.query)
    del app.kf_accounts[account.kf_account]
    return OK


def kf_invite(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    account = _existing(app, request.payload)
    invitee = request.payload.get("invite_wx")
    if not isinstance(invitee, str) or not invitee or any(c.isspace() for c in invitee):
        raise Refusal(65409, "invalid wechat id")
    if account.kf_wx is not None:
        raise Refusal(65412, "kf account already bound")
    now = int(world.now())
    if account.invite_status == "waiting" and (account.invite_expire_time or 0) > now:
        if account.invite_wx == invitee:
            raise Refusal(65408, "invite already exists")
        raise Refusal(65411, "a pending invitation exists")
    account.invite_wx, account.invite_status = invitee, "waiting"
    account.invite_expire_time = now + 7 * 24 * 3600
    return OK


def kf_avatar(world: World, app: OfficialAccountApp, request: Request) -> dict[str, Any]:
    account = _existing(app, request.query)
    media = request.files.get("media")
    if media is None:
        raise Refusal(40005, "invalid file type, media field missing")
    if not media or len(media) > MAX_AVATAR_BYTES:
        raise Refusal(40009, "invalid image size")
    account.kf_headimgurl = f"https://world.weixin.qq.com/head/{account.kf_id}/{len(media)}"
    return OK
