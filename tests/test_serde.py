"""WeChat JSON -> models: the type quirks the platform documents, and nothing looser."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from wechat_kf import (
    BatchResult,
    InvalidResponseError,
    InviteStatus,
    KfAccount,
    OnlineKfAccount,
    Servicer,
    ServicerResult,
    ServicerStatus,
)
from wechat_kf._serde import structure_list

EXPIRY = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def one(item: dict[str, Any], cls: type[Any], key: str = "items") -> Any:
    (model,) = structure_list({key: [item]}, key, cls, path="/test")
    return model


@pytest.mark.parametrize("kf_id", [1001, "1001"])
def test_kf_id_is_always_a_str(kf_id: object) -> None:
    assert one({"kf_account": "a@b", "kf_id": kf_id}, KfAccount).kf_id == "1001"
    assert one({"kf_account": "a@b", "kf_id": kf_id}, OnlineKfAccount).kf_id == "1001"


@pytest.mark.parametrize("value", [1700000000, "1700000000", 1700000000.0])
def test_invite_expire_time_is_an_aware_utc_datetime(value: object) -> None:
    account = one({"kf_account": "a@b", "invite_expire_time": value}, KfAccount)
    assert account.invite_expire_time == EXPIRY
    assert account.invite_expire_time.tzinfo is timezone.utc


def test_missing_fields_are_none_and_unknown_fields_ignored() -> None:
    account = one({"kf_account": "a@b", "surprise": {"x": 1}}, KfAccount)
    assert account == KfAccount(kf_account="a@b")


def test_full_kf_account_item() -> None:
    item = {
        "kf_account": "a@gh",
        "kf_nick": "n",
        "kf_id": "1",
        "kf_headimgurl": "http://img",
        "kf_wx": "wx",
        "invite_wx": "iw",
        "invite_expire_time": 1700000000,
        "invite_status": "rejected",
        "kf_openid": "o",
    }
    account = one(item, KfAccount)
    assert account.invite_status is InviteStatus.REJECTED
    assert account.kf_openid == "o"


def test_legacy_kf_headimg_field_is_read_as_kf_headimgurl() -> None:
    assert one({"kf_account": "a@b", "kf_headimg": "u"}, KfAccount).kf_headimgurl == "u"


def test_unknown_invite_status_does_not_break_the_listing() -> None:
    assert one({"kf_account": "a@b", "invite_status": "new"}, KfAccount).invite_status is None


@pytest.mark.parametrize("status", [["waiting"], {"s": 1}, 1, None, "WAITING"])
def test_an_invite_status_of_no_member_s_value_or_shape_is_none(status: object) -> None:
    assert one({"kf_account": "a@b", "invite_status": status}, KfAccount).invite_status is None


def test_a_servicer_status_is_its_member_by_value_and_none_for_anything_else() -> None:
    assert one({"userid": "u", "status": 0}, Servicer).status is ServicerStatus.SERVING
    for odd in ("1", [1], 7):
        assert one({"userid": "u", "status": odd}, Servicer).status is None


def test_servicer_items_of_both_shapes() -> None:
    member = one({"userid": "u", "status": 1, "stop_type": 1}, Servicer)
    department = one({"department_id": 3}, Servicer)
    assert member == Servicer(userid="u", status=ServicerStatus.STOPPED, stop_type=1)
    assert department == Servicer(department_id=3)


@pytest.mark.parametrize(
    "item",
    [
        {"kf_account": None},
        {"kf_account": "a@b", "kf_id": True},
        {"kf_account": "a@b", "kf_id": [1]},
        {"kf_account": "a@b", "invite_expire_time": "soon"},
        {"kf_account": "a@b", "invite_expire_time": 10**30},
        {},
    ],
)
def test_wrong_types_raise_invalid_response(item: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponseError):
        one(item, KfAccount)


@pytest.mark.parametrize("body", [{"items": {}}, {"items": [1, 2]}, {"items": "x"}])
def test_wrong_shape_raises_invalid_response(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponseError):
        structure_list(body, "items", KfAccount, path="/test")


def test_missing_list_is_empty() -> None:
    assert structure_list({}, "kf_list", KfAccount, path="/t") == []


def test_batch_result_views() -> None:
    good = ServicerResult(userid="a", errcode=0, errmsg="success")
    ignored = ServicerResult(userid="b", errcode=0, errmsg="ignored")
    bad = ServicerResult(department_id=2, errcode=60003, errmsg="no")
    unknown = ServicerResult(userid="c", errcode=None)
    result = BatchResult([good, ignored, bad, unknown])
    assert result.items == [good, ignored, bad, unknown]
    assert result.succeeded == [good, ignored]
    assert result.failed == [bad, unknown]
    assert not result.ok
    assert BatchResult([good]).ok
