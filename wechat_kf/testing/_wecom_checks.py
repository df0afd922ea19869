"""The argument checks the fake's WeCom 微信客服 endpoints share: a JSON object, its required
fields, the open_kfid (95000 malformed, 95004 unknown) and the customer (40096)."""

from __future__ import annotations

import re
from typing import Any

from ._faults import Refusal, Request
from ._kf_state import Session
from ._state import Corp, KfAccountOfCorp

__all__ = ["ID_CHARS", "OK", "fields", "kf_account", "required", "session_of"]

OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
#: msgid and scene: 0..32 bytes of these.
ID_CHARS = re.compile(r"[0-9a-zA-Z_-]*")
_OPEN_KFID = re.compile(r"[0-9A-Za-z_@.-]{1,64}")


def fields(request: Request) -> dict[str, Any]:
    """The JSON object of the request; anything else is 40058."""
    if not isinstance(request.payload, dict):
        raise Refusal(40058, "invalid parameter, the body is not a JSON object")
    return request.payload


def required(payload: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """The field ``name``, which must be there and of ``kind`` (a bool is never an int)."""
    value = payload.get(name)
    wrong_int = isinstance(value, bool) and kind is int
    if value is None or not isinstance(value, kind) or wrong_int:
        raise Refusal(40058, f"invalid parameter, {name} is missing or of the wrong type")
    return value


def kf_account(corp: Corp, open_kfid: object) -> KfAccountOfCorp:
    """The corp's 微信客服 account: a missing field is 40058, a malformed id 95000, an account
    that does not exist (or no longer) 95004."""
    if open_kfid is None:
        raise Refusal(40058, "invalid parameter, open_kfid is missing")
    if not isinstance(open_kfid, str) or not _OPEN_KFID.fullmatch(open_kfid):
        raise Refusal(95000, "invalid open_kfid")
    kf = corp.kf_accounts.get(open_kfid)
    if kf is None:
        raise Refusal(95004, "open_kfid not found")
    return kf


def session_of(kf: KfAccountOfCorp, external_userid: object) -> Session:
    """The customer's session with the account; a customer it never saw is 40096."""
    if external_userid is None:
        raise Refusal(40058, "invalid parameter, external_userid is missing")
    session = kf.sessions.get(external_userid) if isinstance(external_userid, str) else None
    if session is None:
        raise Refusal(40096, "invalid external_userid")
    return session
