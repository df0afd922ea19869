"""KfAccounts against the fake: every call, every validation rule, the errcode mapping."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from wechat_kf import (
    InviteError,
    InviteStatus,
    KfAccountExistsError,
    KfAccountLimitError,
    OfficialAccountClient,
)
from wechat_kf.errors import CustomServiceNotEnabledError, InvalidKfAccountError
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2048


async def test_add_then_list_returns_the_account_with_a_string_kf_id(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="客服1")
    (account,) = await oa.kf_accounts.list()
    assert account.kf_account == "alice@gh_fake"
    assert account.kf_nick == "客服1"
    assert isinstance(account.kf_id, str)
    assert account.kf_wx is None
    assert fake.calls_to("/customservice/kfaccount/add")[0].json == {
        "kf_account": "alice@gh_fake",
        "nickname": "客服1",
    }


async def test_update_renames(fake: FakeWeChat, oa: OfficialAccountClient) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="old")
    await oa.kf_accounts.update("alice@gh_fake", nickname="new")
    assert [a.kf_nick for a in await oa.kf_accounts.list()] == ["new"]


async def test_delete_removes(fake: FakeWeChat, oa: OfficialAccountClient) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    await oa.kf_accounts.delete("alice@gh_fake")
    assert await oa.kf_accounts.list() == []
    (call,) = fake.calls_to("/customservice/kfaccount/del")
    assert (call.method, call.json) == ("POST", {"kf_account": "alice@gh_fake"})


async def test_invite_shows_a_waiting_invitation_with_an_aware_expiry(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    await oa.kf_accounts.invite_worker("alice@gh_fake", invite_wx="alice_wx")
    (account,) = await oa.kf_accounts.list()
    assert account.invite_wx == "alice_wx"
    assert account.invite_status is InviteStatus.WAITING
    assert account.invite_expire_time is not None
    assert account.invite_expire_time.tzinfo is timezone.utc
    assert account.invite_expire_time > datetime.now(timezone.utc)


async def test_a_second_invite_while_one_is_pending_raises_invite_error(
    oa: OfficialAccountClient,
) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    await oa.kf_accounts.invite_worker("alice@gh_fake", invite_wx="alice_wx")
    with pytest.raises(InviteError) as info:
        await oa.kf_accounts.invite_worker("alice@gh_fake", invite_wx="bob_wx")
    assert info.value.errcode == 65411


async def test_list_online_reports_status_and_load(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    await oa.kf_accounts.add("bob@gh_fake", nickname="b")
    appid = next(iter(fake.official_accounts))
    fake.set_online(appid, "bob@gh_fake", status=1, accepted_case=3)
    (online,) = await oa.kf_accounts.list_online()
    assert (online.kf_account, online.status, online.accepted_case) == ("bob@gh_fake", 1, 3)
    assert isinstance(online.kf_id, str)


async def test_upload_avatar_from_bytes_sends_multipart_field_media(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    await oa.kf_accounts.upload_avatar("alice@gh_fake", JPEG)
    (account,) = await oa.kf_accounts.list()
    assert account.kf_headimgurl is not None
    assert account.kf_headimgurl.endswith(f"/{len(JPEG)}")
    (call,) = fake.calls_to("/customservice/kfaccount/uploadheadimg")
    assert call.params["kf_account"] == "alice@gh_fake"


async def test_upload_avatar_from_a_path(
    fake: FakeWeChat, oa: OfficialAccountClient, tmp_path: Path
) -> None:
    image = tmp_path / "face.jpg"
    image.write_bytes(JPEG)
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    await oa.kf_accounts.upload_avatar("alice@gh_fake", image)
    await oa.kf_accounts.upload_avatar("alice@gh_fake", str(image))
    assert len(fake.calls_to("/customservice/kfaccount/uploadheadimg")) == 2


async def test_duplicate_add_raises_kf_account_exists(oa: OfficialAccountClient) -> None:
    await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    with pytest.raises(KfAccountExistsError) as info:
        await oa.kf_accounts.add("alice@gh_fake", nickname="a")
    assert info.value.errcode == 65406
    assert info.value.rid


async def test_the_101st_account_raises_kf_account_limit(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    for i in range(100):
        await oa.kf_accounts.add(f"k{i}@gh_fake", nickname=f"n{i}")
    with pytest.raises(KfAccountLimitError):
        await oa.kf_accounts.add("k100@gh_fake", nickname="one too many")


async def test_account_of_another_wechat_id_raises_invalid_kf_account(
    oa: OfficialAccountClient,
) -> None:
    with pytest.raises(InvalidKfAccountError):
        await oa.kf_accounts.add("alice@gh_other", nickname="a")


async def test_feature_not_enabled_raises_custom_service_not_enabled(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account("wxdisabled", customer_service_enabled=False)
    async with OfficialAccountClient(app.appid, app.secret, http_client=http) as client:
        with pytest.raises(CustomServiceNotEnabledError):
            await client.kf_accounts.list()


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception]]] = [
    ("empty account", "add", ("",), {"nickname": "n"}, ValueError),
    ("no at sign", "add", ("alice",), {"nickname": "n"}, ValueError),
    ("prefix too long", "add", ("abcdefghijk@gh_fake",), {"nickname": "n"}, ValueError),
    ("prefix bad char", "add", ("al-ice@gh_fake",), {"nickname": "n"}, ValueError),
    ("empty prefix", "add", ("@gh_fake",), {"nickname": "n"}, ValueError),
    ("empty wechat id", "add", ("alice@",), {"nickname": "n"}, ValueError),
    ("wechat id too long", "add", ("alice@" + "g" * 31,), {"nickname": "n"}, ValueError),
    ("space in wechat id", "add", ("alice@gh fake",), {"nickname": "n"}, ValueError),
    ("trailing newline", "add", ("alice@gh_fake\n",), {"nickname": "n"}, ValueError),
    ("account not str", "add", (123,), {"nickname": "n"}, TypeError),
    ("empty nickname", "add", ("alice@gh_fake",), {"nickname": ""}, ValueError),
    ("account not UTF-8", "add", ("alice@gh_\udc80",), {"nickname": "n"}, ValueError),
    ("nickname not UTF-8", "update", ("alice@gh_fake",), {"nickname": "\ud800"}, ValueError),
    (
        "invite_wx not UTF-8",
        "invite_worker",
        ("alice@gh_fake",),
        {"invite_wx": "\udfff"},
        ValueError,
    ),
    ("17 char nickname", "add", ("alice@gh_fake",), {"nickname": "x" * 17}, ValueError),
    ("nickname not str", "update", ("alice@gh_fake",), {"nickname": None}, TypeError),
    ("delete bad account", "delete", ("nope",), {}, ValueError),
    ("empty invite_wx", "invite_worker", ("alice@gh_fake",), {"invite_wx": ""}, ValueError),
    ("spaced invite_wx", "invite_worker", ("alice@gh_fake",), {"invite_wx": "a b"}, ValueError),
    ("empty avatar", "upload_avatar", ("alice@gh_fake", b""), {}, ValueError),
    (
        "avatar over 5 MB",
        "upload_avatar",
        ("alice@gh_fake", b"\xff" * (5 * 1024 * 1024 + 1)),
        {},
        ValueError,
    ),
    ("avatar wrong type", "upload_avatar", ("alice@gh_fake", 42), {}, TypeError),
    (
        "avatar missing file",
        "upload_avatar",
        ("alice@gh_fake", "/no/such/file.jpg"),
        {},
        ValueError,
    ),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "exc"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
async def test_bad_arguments_raise_before_any_request(
    fake: FakeWeChat,
    oa: OfficialAccountClient,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    exc: type[Exception],
) -> None:
    with pytest.raises(exc):
        await getattr(oa.kf_accounts, method)(*args, **kwargs)
    assert fake.calls == []


async def test_boundary_values_are_accepted(fake: FakeWeChat, oa: OfficialAccountClient) -> None:
    await oa.kf_accounts.add("abcdefghij@gh_fake", nickname="x" * 16)
    await oa.kf_accounts.add("a@gh_fake", nickname="一二三四五六七八九十一二三四五六")
    assert len(fake.kf_accounts(next(iter(fake.official_accounts)))) == 2


async def test_avatar_file_over_5_mb_is_refused_without_reading_it(
    fake: FakeWeChat, oa: OfficialAccountClient, tmp_path: Path
) -> None:
    big = tmp_path / "big.jpg"
    with big.open("wb") as handle:
        handle.truncate(5 * 1024 * 1024 + 1)
    with pytest.raises(ValueError, match="5 MB"):
        await oa.kf_accounts.upload_avatar("alice@gh_fake", big)
    assert fake.calls == []
