"""FakeWeChat's WeCom 微信客服 API beyond servicers: accounts (add, del, update, contact way),
temporary media (upload, get), session states and customers.

Choices where the documentation is silent: a bad ``type`` of media/upload is 40005 (WeCom's
"invalid type parameter"), a request without the ``media`` part 40004; an image over 10 MB is
40009, a video over 10 MB 40011, a voice over 2 MB, a file over 20 MB or any file of 5 bytes or
less 40006. A state change to 3 names a ``servicer_userid`` (40058 without one) who is a member
(60111), a servicer of the account (95014) and serving (95019). ``msg_code`` comes back when a
change allows a message: entering the pool (48 h, text), pool -> human (48 h, text) and the end
(20 s, text or msgmenu)."""

from __future__ import annotations

import hashlib
import secrets
import string
from typing import Any

from ._faults import Refusal, Reply, Request
from ._kf_state import MEDIA_LIFETIME, WINDOW, Media, customer_profile
from ._state import Corp, KfAccountOfCorp, World
from ._wecom_checks import ID_CHARS, OK, fields, kf_account, required, session_of

#: Accounts per corp, and per corp that is not verified.
MAX_ACCOUNTS = 5000
MAX_UNVERIFIED_ACCOUNTS = 10
#: Each media type's largest size and the errcode of a file over it.
MEDIA_LIMITS: dict[str, tuple[int, int]] = {
    "image": (10 << 20, 40009),
    "voice": (2 << 20, 40006),
    "video": (10 << 20, 40011),
    "file": (20 << 20, 40006),
}
#: Every file is more than this many bytes.
MIN_MEDIA_BYTES = 5
#: The session changes WeCom allows (doc 94669), from -> to.
TRANSITIONS: dict[int, frozenset[int]] = {
    0: frozenset({1, 2, 3}),
    1: frozenset({2, 3, 4}),
    2: frozenset({3, 4}),
    3: frozenset({3, 4}),
    4: frozenset(),
}
MAX_CUSTOMERS_PER_CALL = 100
#: What RFC 5987 lets through unquoted (a subset: letters, digits and ._-).
_ATTR_CHARS = frozenset(string.ascii_letters + string.digits + "._-")


def live_media(world: World, corp: Corp, media_id: object) -> Media:
    """A media the corp stored and that has not expired (3 days); else 40007."""
    media = corp.media.get(media_id) if isinstance(media_id, str) else None
    if media is None or media.created_at + MEDIA_LIFETIME <= world.now():
        raise Refusal(40007, "invalid media_id")
    return media


def _name(payload: dict[str, Any]) -> str:
    name = payload["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= 16:
        raise Refusal(95006, "invalid kf account name")
    return name


def account_add(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    if "name" not in payload or "media_id" not in payload:
        raise Refusal(40058, "invalid parameter, name and media_id are required")
    name = _name(payload)
    media = live_media(world, corp, payload["media_id"])
    if len(corp.kf_accounts) >= MAX_ACCOUNTS:
        raise Refusal(95005, "kf account count out of range")
    if not corp.verified and len(corp.kf_accounts) >= MAX_UNVERIFIED_ACCOUNTS:
        raise Refusal(95027, "an unverified corp may have at most 10 kf accounts")
    open_kfid = "wk" + secrets.token_urlsafe(22)
    kf = KfAccountOfCorp(open_kfid, name, _avatar(media), media_id=media.media_id)
    corp.kf_accounts[open_kfid] = kf
    return {**OK, "open_kfid": open_kfid}


def _avatar(media: Media) -> str:
    return f"https://wework.qpic.cn/wwpic/{hashlib.sha1(media.content).hexdigest()}/0"


def account_delete(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    kf = kf_account(corp, fields(request).get("open_kfid"))
    del corp.kf_accounts[kf.open_kfid]
    return OK


def account_update(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    kf = kf_account(corp, payload.get("open_kfid"))
    if payload.get("name") is None and payload.get("media_id") is None:
        raise Refusal(40058, "invalid parameter, name or media_id is required")
    name = _name(payload) if payload.get("name") is not None else kf.name
    if payload.get("media_id") is not None:
        media = live_media(world, corp, payload["media_id"])
        kf.media_id, kf.avatar = media.media_id, _avatar(media)
    kf.name = name
    return OK


def contact_way(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    kf = kf_account(corp, payload.get("open_kfid"))
    scene = payload.get("scene", "")
    if not isinstance(scene, str) or len(scene) > 32 or not ID_CHARS.fullmatch(scene):
        raise Refusal(40058, "invalid parameter, scene is 0..32 bytes of [0-9a-zA-Z_-]")
    link = "kfc" + hashlib.sha1(kf.open_kfid.encode()).hexdigest()[:16]
    url = f"https://work.weixin.qq.com/kfid/{link}"
    if scene:
        # Opaque on purpose: a client must hand the URL on, never read the scene out of it.
        url += "?enc_scene=ENC" + secrets.token_urlsafe(18)
    return {**OK, "url": url}


def media_upload(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    kind = request.query.get("type", "")
    if kind not in MEDIA_LIMITS:
        raise Refusal(40005, "invalid type parameter")
    upload = request.uploads.get("media")
    if upload is None:
        raise Refusal(40004, "invalid media file: no media part")
    limit, errcode = MEDIA_LIMITS[kind]
    size = len(upload.content)
    if size > limit:
        raise Refusal(errcode, f"invalid {kind} size")
    if size <= MIN_MEDIA_BYTES:
        raise Refusal(40006, "invalid file size: 5 bytes or less")
    media_id = "3" + secrets.token_urlsafe(40)
    now = world.now()
    corp.media[media_id] = Media(
        media_id,
        kind,
        upload.content,
        upload.filename or "media",
        upload.content_type or "application/octet-stream",
        now,
    )
    # WeCom sends created_at as a string of unix seconds.
    return {**OK, "type": kind, "media_id": media_id, "created_at": str(int(now))}


def _disposition(filename: str) -> str:
    """An ASCII Content-Disposition; a name outside ASCII also goes in RFC 5987 form."""
    plain = filename.encode("ascii", "replace").decode().replace("\\", "_").replace('"', "_")
    if plain == filename:
        return f'attachment; filename="{plain}"'
    quoted = "".join(
        chr(b) if chr(b) in _ATTR_CHARS else f"%{b:02X}"
        for b in filename.encode("utf-8", "surrogatepass")
    )
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quoted}"


def media_get(world: World, corp: Corp, request: Request) -> Reply:
    media = live_media(world, corp, request.query.get("media_id"))
    headers = {
        "content-type": media.content_type,
        "content-disposition": _disposition(media.filename),
    }
    return Reply(200, {}, raw=media.content, headers=headers)


def state_get(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    session = session_of(kf_account(corp, payload.get("open_kfid")), payload.get("external_userid"))
    answer: dict[str, Any] = {**OK, "service_state": session.state}
    if session.state == 3:
        answer["servicer_userid"] = session.servicer_userid
    return answer


def _check_servicer(corp: Corp, kf: KfAccountOfCorp, userid: object) -> str:
    if not isinstance(userid, str) or not userid:
        raise Refusal(40058, "invalid parameter, servicer_userid is required for state 3")
    member = corp.member(userid)
    if member is None:
        raise Refusal(60111, "userid not found")
    if member not in kf.servicers:
        raise Refusal(95014, "user is not a servicer")
    if kf.servicers[member] != 0:
        raise Refusal(95019, "servicer stopped or suspended")
    return member


def state_trans(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    kf = kf_account(corp, payload.get("open_kfid"))
    session = session_of(kf, payload.get("external_userid"))
    new = required(payload, "service_state", int)
    if new not in TRANSITIONS:
        raise Refusal(40058, "invalid parameter, service_state is 0..4")
    old = session.state
    if new not in TRANSITIONS[old]:
        raise Refusal(95016, f"the session state change {old} -> {new} is not allowed")
    servicer = _check_servicer(corp, kf, payload.get("servicer_userid")) if new == 3 else None
    session.state, session.servicer_userid = new, servicer
    kind = {2: "pool", 4: "end"}.get(new) or ("human" if (old, new) == (2, 3) else None)
    if kind is None:
        return OK
    code = world.issue_code(corp, kind, kf.open_kfid, session.external_userid)
    return {**OK, "msg_code": code}


def customer_batchget(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = fields(request)
    ids = required(payload, "external_userid_list", list)
    if not 1 <= len(ids) <= MAX_CUSTOMERS_PER_CALL or not all(isinstance(i, str) for i in ids):
        raise Refusal(40058, "invalid parameter, external_userid_list takes 1..100 ids")
    context = payload.get("need_enter_session_context", 0)
    if context not in (0, 1) or isinstance(context, bool):
        raise Refusal(40058, "invalid parameter, need_enter_session_context is 0 or 1")
    since = world.now() - WINDOW
    found: list[dict[str, Any]] = []
    invalid: list[str] = []
    for external_userid in dict.fromkeys(ids):
        customer = corp.customers.get(external_userid)
        if customer is None or customer.last_seen_at < since:
            invalid.append(external_userid)
            continue
        item: dict[str, Any] = {
            "external_userid": external_userid,
            "nickname": customer.nickname,
            "avatar": customer.avatar,
            "gender": customer.gender,
            "unionid": customer.unionid,
        }
        if context:
            empty = {"scene": "", "scene_param": "", "wechat_channels": {}}
            item["enter_session_context"] = customer.enter_session_context or empty
        found.append(item)
    return {**OK, "customer_list": found, "invalid_external_userid": invalid}


def known_customer(world: World, corp: Corp, external_userid: str) -> None:
    """Record that the customer was seen now (created with a made-up profile if new)."""
    customer = corp.customers.get(external_userid)
    if customer is None:
        customer = corp.customers[external_userid] = customer_profile(external_userid)
    customer.last_seen_at = world.now()
