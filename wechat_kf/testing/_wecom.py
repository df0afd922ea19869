"""FakeWeChat's WeCom 微信客服 API: servicers and the kf account list."""

from __future__ import annotations

from typing import Any

from ._faults import Refusal, Request
from ._state import Corp, KfAccountOfCorp, World

MAX_IDS_PER_CALL = 100
MAX_SERVICER_DEPARTMENTS = 20
MAX_ACCOUNTS_PER_PAGE = 100


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _servicer_request(corp: Corp, payload: Any) -> tuple[KfAccountOfCorp, list[Any], list[Any]]:
    if not isinstance(payload, dict):
        raise Refusal(40058, "invalid parameter")
    kf = corp.kf_accounts.get(payload.get("open_kfid"))  # type: ignore[arg-type]
    if kf is None:
        raise Refusal(95000, "invalid open_kfid")
    users = payload.get("userid_list") or []
    departments = payload.get("department_id_list") or []
    if not isinstance(users, list) or not isinstance(departments, list):
        raise Refusal(40058, "invalid parameter")
    if not users and not departments:
        raise Refusal(40058, "userid_list and department_id_list are both empty")
    if len(users) > MAX_IDS_PER_CALL or len(departments) > MAX_IDS_PER_CALL:
        raise Refusal(40058, "too many ids in one call")
    return kf, users, departments


def _refused_userid(world: World, corp: Corp, userid: Any) -> tuple[dict[str, Any] | None, str]:
    """The result item for a malformed or unknown userid (None for a member), and the member."""
    if not isinstance(userid, str) or not userid:
        return {"userid": userid, **world.error_body(40003, "invalid userid")}, ""
    member = corp.member(userid)
    if member is None:
        return {"userid": userid, **world.error_body(60111, "userid not found")}, ""
    return None, member


def _injected(world: World, request: Request, key: str, value: Any) -> dict[str, Any] | None:
    """The item a test chose to fail for this id (``fail_servicer_ids``), if any."""
    fault = world.faults.servicer_id_fault(request.path, value)
    if fault is None:
        return None
    return {key: value, **world.error_body(fault.errcode, fault.text())}


def servicer_add(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    kf, users, departments = _servicer_request(corp, request.payload)
    results: list[dict[str, Any]] = []
    for userid in users:
        if injected := _injected(world, request, "userid", userid):
            results.append(injected)
            continue
        refused, member = _refused_userid(world, corp, userid)
        if refused:
            results.append(refused)
        elif member in kf.servicers:
            results.append({"userid": userid, "errcode": 0, "errmsg": "ignored"})
        elif len(kf.servicers) >= world.servicer_cap:
            results.append({"userid": userid, **world.error_body(95005, "servicer limit reached")})
        else:
            kf.servicers[member] = 0
            results.append({"userid": userid, "errcode": 0, "errmsg": "success"})
    for department in departments:
        if injected := _injected(world, request, "department_id", department):
            results.append(injected)
            continue
        if not _positive_int(department):
            item = world.error_body(60123, "invalid department id")
        elif department not in corp.departments:
            item = world.error_body(60003, "department not found")
        elif department in kf.departments:
            item = {"errcode": 0, "errmsg": "ignored"}
        elif len(kf.departments) >= MAX_SERVICER_DEPARTMENTS:
            item = world.error_body(95005, "servicer department limit reached")
        else:
            kf.departments.append(department)
            item = {"errcode": 0, "errmsg": "success"}
        results.append({"department_id": department, **item})
    return {"errcode": 0, "errmsg": "ok", "result_list": results}


def servicer_delete(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    kf, users, departments = _servicer_request(corp, request.payload)
    results: list[dict[str, Any]] = []
    for userid in users:
        if injected := _injected(world, request, "userid", userid):
            results.append(injected)
            continue
        refused, member = _refused_userid(world, corp, userid)
        if refused:
            results.append(refused)
        elif kf.servicers.pop(member, None) is None:
            results.append({"userid": userid, **world.error_body(95014, "not a servicer")})
        else:
            results.append({"userid": userid, "errcode": 0, "errmsg": "success"})
    for department in departments:
        if injected := _injected(world, request, "department_id", department):
            results.append(injected)
            continue
        if not _positive_int(department):
            item = world.error_body(60123, "invalid department id")
        elif department in kf.departments:
            kf.departments.remove(department)
            item = {"errcode": 0, "errmsg": "success"}
        else:
            item = world.error_body(95014, "not a servicer")
        results.append({"department_id": department, **item})
    return {"errcode": 0, "errmsg": "ok", "result_list": results}


def servicer_list(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    kf = corp.kf_accounts.get(request.query.get("open_kfid", ""))
    if kf is None:
        raise Refusal(95000, "invalid open_kfid")
    items: list[dict[str, Any]] = [
        {"userid": userid, "status": status, "stop_type": 0}
        for userid, status in kf.servicers.items()
    ]
    items.extend({"department_id": department} for department in kf.departments)
    return {"errcode": 0, "errmsg": "ok", "servicer_list": items}


def account_list(world: World, corp: Corp, request: Request) -> dict[str, Any]:
    payload = request.payload if isinstance(request.payload, dict) else {}
    offset, limit = payload.get("offset", 0), payload.get("limit", MAX_ACCOUNTS_PER_PAGE)
    for value in (offset, limit):
        if not isinstance(value, int) or isinstance(value, bool):
            raise Refusal(40058, "invalid offset or limit")
    if offset < 0 or not 1 <= limit <= MAX_ACCOUNTS_PER_PAGE:
        raise Refusal(40058, "invalid offset or limit")
    page = list(corp.kf_accounts.values())[offset : offset + limit]
    accounts = [
        {
            "open_kfid": kf.open_kfid,
            "name": kf.name,
            "avatar": kf.avatar,
            "manage_privilege": kf.manage_privilege,
        }
        for kf in page
    ]
    return {"errcode": 0, "errmsg": "ok", "account_list": accounts}
