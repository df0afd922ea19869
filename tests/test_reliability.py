"""Under faults, cancellation and timeouts: no id lost, the client stays usable, nothing outlives
the call."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._servers import serve
from wechat_kf import (
    BatchError,
    BatchResult,
    OfficialAccountClient,
    TransportError,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat, Faults, WeComApp

pytestmark = pytest.mark.anyio

ADD = "/cgi-bin/kf/servicer/add"
DEL = "/cgi-bin/kf/servicer/del"
SOAK_IDS = 5000


def outcome(exc_or_result: BatchResult | BatchError) -> tuple[BatchResult, list[str]]:
    if isinstance(exc_or_result, BatchError):
        return exc_or_result.result, exc_or_result.unprocessed_userids
    return exc_or_result, []


async def run_batch(
    client: WeComClient, delete: bool, kfid: str, ids: list[str]
) -> BatchResult | BatchError:
    call = client.servicers.delete if delete else client.servicers.add
    try:
        return await call(kfid, ids)
    except BatchError as exc:
        return exc


def delivered_ids(fake: FakeWeChat, path: str) -> Counter[str]:
    return Counter(
        userid
        for call in fake.calls_to(path)
        if call.delivered_ok
        for userid in call.json.get("userid_list", [])
    )


def soak_corp(seed: int) -> tuple[FakeWeChat, WeComApp, list[str], str]:
    """A fake whose corp has SOAK_IDS members and a kf account that may take them all."""
    fake = FakeWeChat(seed=seed)
    fake.servicer_cap = SOAK_IDS
    app = fake.register_wecom_app()
    ids = [f"user{i:05d}" for i in range(SOAK_IDS)]
    fake.add_members(app.corpid, ids)
    return fake, app, ids, fake.create_kf_account(app.corpid)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_fault_soak_every_id_has_one_outcome_and_the_state_matches(seed: int) -> None:
    fake, app, ids, kfid = soak_corp(seed)
    fake.faults = Faults(
        latency=(0.0, 0.01),
        busy_rate=0.20,
        http_error_rate=0.05,
        drop_rate=0.02,
        revoke_every=30,
    )
    with serve(fake.app) as base_url:
        async with WeComClient(app.corpid, app.secret, base_url=base_url) as client:
            added, unprocessed_add = outcome(await run_batch(client, False, kfid, ids))
            after_add = set(fake.servicers(kfid))
            # Offboarding loses answers after applying: the retries meet "not a servicer".
            fake.faults.drop_after_rate = 0.1
            deleted, unprocessed_del = outcome(await run_batch(client, True, kfid, ids))
            after_delete = set(fake.servicers(kfid))
            fake.faults = Faults()
            assert await client.servicers.list(kfid) is not None  # still usable

    # every id: exactly one definitive outcome per phase
    for result, unprocessed in ((added, unprocessed_add), (deleted, unprocessed_del)):
        processed = [item.userid for item in result.items]
        assert len(processed) == len(set(processed))
        assert sorted(processed + unprocessed) == ids
    # the fake's state is what the results say was applied
    assert after_add == {item.userid for item in added.succeeded}
    removed = {item.userid for item in deleted.succeeded}
    assert after_delete <= after_add - removed
    # An id left unprocessed has no known outcome: its answer may have been lost after applying.
    assert (after_add - removed) - after_delete <= set(unprocessed_del)
    assert {i.userid for i in deleted.failed} == {i.userid for i in deleted.failed} - after_add
    # no id lost, none sent twice in a request that succeeded
    for path, result in ((ADD, added), (DEL, deleted)):
        sent = delivered_ids(fake, path)
        assert max(sent.values(), default=1) == 1
        assert set(sent) == {item.userid for item in result.items}
    # lost answers on delete were retried into "already not a servicer", an ok outcome
    assert any(call.dropped for call in fake.calls_to(DEL))
    assert all(item.ok for item in deleted.items if item.errcode == 95014)


@pytest.mark.parametrize("seed", [4, 5])
async def test_fault_soak_with_a_raising_on_progress_keeps_every_applied_id(seed: int) -> None:
    fake, app, ids, kfid = soak_corp(seed)
    fake.faults = Faults(
        latency=(0.0, 0.01), busy_rate=0.2, http_error_rate=0.05, drop_after_rate=0.05
    )
    raise_at = 5 + seed * 3
    seen: list[int] = []

    def on_progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == raise_at:
            raise KeyError("the journal is gone")

    with serve(fake.app) as base_url:
        async with WeComClient(app.corpid, app.secret, base_url=base_url) as client:
            with pytest.raises(BatchError) as info:
                await client.servicers.add(kfid, ids, on_progress=on_progress)
            applied = set(fake.servicers(kfid))
    error = info.value
    processed = [item.userid for item in error.result.items]
    assert isinstance(error.__cause__, KeyError)
    assert len(seen) == raise_at
    assert sorted(processed + error.unprocessed_userids) == ids
    assert len(processed) == len(set(processed))
    succeeded = {item.userid for item in error.result.succeeded}
    assert succeeded <= applied
    assert applied - succeeded <= set(error.unprocessed_userids)  # answers lost after applying
    assert error.unprocessed_userids  # it stopped sending


async def test_a_per_call_timeout_is_honoured(fake: FakeWeChat, oa: OfficialAccountClient) -> None:
    await oa.kf_accounts.list()
    fake.faults.latency = 5.0
    started = anyio.current_time()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.2):
            await oa.kf_accounts.list()
    assert anyio.current_time() - started < 1.0
    fake.faults.latency = 0.0
    assert await oa.kf_accounts.list() == []


async def test_the_client_timeout_applies_to_each_request_over_a_socket() -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    with serve(fake.app) as base_url:
        async with OfficialAccountClient(
            app.appid, app.secret, base_url=base_url, timeout=0.2, max_retries=1
        ) as client:
            await client.kf_accounts.list()
            fake.faults.latency = 2.0
            started = anyio.current_time()
            with pytest.raises(TransportError) as listing:
                await client.kf_accounts.list()  # a GET: retried once, then given up
            with pytest.raises(TransportError) as adding:
                await client.kf_accounts.add("a@gh_fake", nickname="n")  # not retried
            elapsed = anyio.current_time() - started
    assert listing.value.maybe_applied
    assert adding.value.maybe_applied
    assert elapsed < 1.5


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cancel_after=st.floats(min_value=0.0, max_value=0.06), latency=st.floats(0.0, 0.02))
async def test_cancelling_a_batch_at_any_point_leaves_nothing_running_and_the_client_usable(
    cancel_after: float, latency: float
) -> None:
    fake = FakeWeChat(seed=3)
    app = fake.register_wecom_app()
    fake.add_members(app.corpid, [f"u{i}" for i in range(1000)])
    kfid = fake.create_kf_account(app.corpid)
    fake.faults.latency = (latency, latency * 2)
    fake.faults.token_latency = 0.01
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(app.corpid, app.secret, http_client=http) as client,
    ):
        with anyio.move_on_after(cancel_after):
            await client.servicers.add(kfid, [f"u{i}" for i in range(1000)])
        calls_at_cancel = len(fake.calls)
        await anyio.sleep(0.05)
        assert len(fake.calls) == calls_at_cancel  # no request outlived the call
        fake.faults = Faults()
        result = await client.servicers.add(kfid, ["u1", "u999"])
        assert result.ok


@settings(max_examples=10, deadline=None)
@given(cancel_after=st.floats(min_value=0.0, max_value=0.05))
async def test_cancelling_a_token_fetch_at_any_point_leaves_the_provider_usable(
    cancel_after: float,
) -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    fake.faults.token_latency = 0.03
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        OfficialAccountClient(app.appid, app.secret, http_client=http) as client,
    ):
        with anyio.move_on_after(cancel_after):
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(client.kf_accounts.list)
        fake.faults.token_latency = 0.0
        assert await client.kf_accounts.list() == []
        before = fake.token_fetches
        assert await client.kf_accounts.list() == []
        assert fake.token_fetches == before
