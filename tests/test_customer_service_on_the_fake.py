"""The rest of customer service end to end, the SDK against FakeWeChat: what one writes the other
reads, and the platform's rules (states, windows, budgets, codes, record pages) come back as the
SDK's typed answers and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from wechat_kf import (
    APIError,
    BatchError,
    CustomerBatch,
    EnterSessionEvent,
    KfSessionError,
    Menu,
    MenuClick,
    MessageWindowError,
    MsgSendFailEvent,
    OfficialAccountClient,
    OpenKfidError,
    SessionState,
    SessionStateError,
    Text,
    TextMessage,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
CUSTOMER = "wmCUSTOMER000001"


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeWeChat, WeComClient, OfficialAccountClient, str]]:
    fake = FakeWeChat()
    corp = fake.register_wecom_app()
    app = fake.register_official_account()
    open_kfid = fake.create_kf_account(corp.corpid, "售前")
    fake.add_servicers(open_kfid, ["zhangsan"])
    http = httpx.AsyncClient(transport=fake.transport)
    async with (
        http,
        WeComClient(corp.corpid, corp.secret, http_client=http) as wc,
        OfficialAccountClient(app.appid, app.secret, http_client=http) as oa,
    ):
        yield fake, wc, oa, open_kfid


Setup = tuple[FakeWeChat, WeComClient, OfficialAccountClient, str]


async def test_a_kf_account_made_with_an_uploaded_avatar_is_listed_renamed_and_deleted(
    world: Setup,
) -> None:
    _fake, wc, _, _ = world
    media_id = await wc.media.upload(PNG, type="image", filename="logo.png")
    downloaded = await wc.media.download(media_id)
    assert downloaded.content == PNG
    assert downloaded.filename == "logo.png"
    open_kfid = await wc.kf_accounts.add("售后客服", media_id=media_id)
    assert open_kfid in {a.open_kfid for a in await wc.kf_accounts.list()}
    await wc.kf_accounts.update(open_kfid, name="售后")
    names = {a.open_kfid: a.name for a in await wc.kf_accounts.list()}
    assert names[open_kfid] == "售后"
    url = await wc.kf_accounts.contact_way(open_kfid, scene="web01")
    assert url.startswith("https://")
    await wc.kf_accounts.delete(open_kfid)
    with pytest.raises(OpenKfidError):
        await wc.kf_accounts.delete(open_kfid)


async def test_a_customer_s_message_is_pulled_typed_and_answered(world: Setup) -> None:
    fake, wc, _, open_kfid = world
    welcome = fake.customer_enters(open_kfid, CUSTOMER, scene="web01")
    msgid = fake.customer_says(open_kfid, CUSTOMER, "在吗")
    page = await wc.messages.sync(open_kfid, token=fake.latest_sync_token(open_kfid))
    enter, said = page.messages
    assert isinstance(enter, EnterSessionEvent)
    assert enter.welcome_code == welcome
    assert isinstance(said, TextMessage)
    assert (said.msgid, said.content, said.external_userid) == (msgid, "在吗", CUSTOMER)
    menu = Menu([MenuClick("1", "查询订单")], head_content="请选择")
    await wc.messages.send_on_event(welcome, menu)
    sent = await wc.messages.send(open_kfid, CUSTOMER, Text("您好"), msgid="reply-1")
    assert sent.msgid == "reply-1"
    kinds = [(m.msgid, m.msgtype) for m in fake.sent_messages(open_kfid, CUSTOMER)]
    assert kinds[-1] == ("reply-1", "text")
    assert next(m.msgtype for m in fake.sent_messages(open_kfid, CUSTOMER)) == "msgmenu"
    # The cursor moves on: the same page is not pulled twice.
    again = await wc.messages.sync(
        open_kfid, cursor=page.next_cursor, token=fake.latest_sync_token(open_kfid)
    )
    assert again.messages == []


async def test_a_sixth_message_in_the_window_is_accepted_then_reported_as_failed(
    world: Setup,
) -> None:
    fake, wc, _, open_kfid = world
    fake.customer_says(open_kfid, CUSTOMER, "hi")
    first = await wc.messages.sync(open_kfid, token=fake.latest_sync_token(open_kfid))
    sent = [await wc.messages.send(open_kfid, CUSTOMER, Text(f"{i}")) for i in range(6)]
    later = await wc.messages.sync(open_kfid, cursor=first.next_cursor, token=None)
    failures = [m for m in later.messages if isinstance(m, MsgSendFailEvent)]
    assert [f.fail_msgid for f in failures] == [sent[5].msgid]
    assert failures[0].fail_type == 6


async def test_a_session_handed_to_a_human_refuses_the_api_s_messages(world: Setup) -> None:
    fake, wc, _, open_kfid = world
    fake.customer_says(open_kfid, CUSTOMER, "人工")
    state = await wc.sessions.get(open_kfid, CUSTOMER)
    assert state.state is SessionState.UNTREATED
    await wc.sessions.transfer(open_kfid, CUSTOMER, SessionState.HUMAN, servicer_userid="zhangsan")
    state = await wc.sessions.get(open_kfid, CUSTOMER)
    assert (state.state, state.servicer_userid) == (SessionState.HUMAN, "zhangsan")
    with pytest.raises(SessionStateError):
        await wc.messages.send(open_kfid, CUSTOMER, Text("机器人"))
    code = await wc.sessions.transfer(open_kfid, CUSTOMER, SessionState.ENDED)
    assert code
    with pytest.raises(APIError) as refused:  # ended: nothing but the customer reopens it
        await wc.sessions.transfer(open_kfid, CUSTOMER, SessionState.ASSISTANT)
    assert refused.value.errcode == 95016


async def test_customers_of_the_last_48_hours_resolve_and_the_rest_are_invalid(
    world: Setup,
) -> None:
    fake, wc, _, open_kfid = world
    speakers = [f"wmSPEAKER{i:04d}" for i in range(150)]
    for userid in speakers:
        fake.customer_says(open_kfid, userid, "hi")
    asked = [*speakers[:120], "wmNOBODY", *speakers[120:]]
    found = await wc.customers.get(asked, enter_session_context=True)
    assert isinstance(found, CustomerBatch)
    assert [c.external_userid for c in found.customers] == speakers
    assert found.invalid == ["wmNOBODY"]
    fake.advance(49 * 3600)
    stale = await wc.customers.get(speakers[:3])
    assert (stale.customers, stale.invalid) == ([], speakers[:3])


async def test_customers_keep_every_id_when_a_request_fails(world: Setup) -> None:
    fake, wc, _, open_kfid = world
    for i in range(5):
        fake.customer_says(open_kfid, f"wmS{i}", "hi")
    fake.faults.http_error_rate = 1.0
    with pytest.raises(BatchError) as failed:
        await wc.customers.get([f"wmS{i}" for i in range(5)])
    assert failed.value.unprocessed_userids == [f"wmS{i}" for i in range(5)]


async def test_an_official_account_session_is_created_read_listed_closed_and_recorded(
    world: Setup,
) -> None:
    fake, _, oa, _ = world
    appid = next(iter(fake.official_accounts))
    fake.add_kf_account(appid, "alice@gh_fake", "Alice")
    fake.set_online(appid, "alice@gh_fake")
    fake.oa_customer_says(appid, "oOPENID1", "你好")
    await oa.sessions.create("alice@gh_fake", "oOPENID1")
    session = await oa.sessions.get("oOPENID1")
    assert session is not None
    assert session.kf_account == "alice@gh_fake"
    assert [s.openid for s in await oa.sessions.list("alice@gh_fake")] == ["oOPENID1"]
    await oa.messages.send("oOPENID1", Text("您好"), kf_account="alice@gh_fake")
    await oa.messages.typing("oOPENID1")
    await oa.sessions.close("alice@gh_fake", "oOPENID1")
    assert await oa.sessions.get("oOPENID1") is None
    with pytest.raises(KfSessionError):
        await oa.sessions.close("alice@gh_fake", "oOPENID1")
    now = datetime.now(timezone.utc)
    records = [r async for r in oa.sessions.records(now - timedelta(hours=30), now)]
    assert [(r.openid, r.text) for r in records] == [("oOPENID1", "你好"), ("oOPENID1", "您好")]
    assert [r.opercode for r in records] == [2003, 2002]


async def test_an_official_account_message_past_the_window_is_refused(world: Setup) -> None:
    fake, _, oa, _ = world
    appid = next(iter(fake.official_accounts))
    fake.oa_customer_says(appid, "oOPENID2", "hi")
    fake.advance(49 * 3600)
    with pytest.raises(MessageWindowError) as refused:
        await oa.messages.send("oOPENID2", Text("late"))
    assert refused.value.errcode == 45015
    assert (await oa.sessions.waiting()).count >= 0
