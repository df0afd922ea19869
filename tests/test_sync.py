"""servicers.sync: the plan, applying it exactly, caps, never interleaving, and what a partial
failure reports; against FakeWeChat, also under busy and lost answers."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import (
    PermissionDeniedError,
    RequestOutcome,
    SyncError,
    SyncResult,
    WeChatError,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat
from wechat_kf.wecom import over_caps

pytestmark = pytest.mark.anyio

Corp = tuple[str, str, str]
SERVICER_PATHS = ("/cgi-bin/kf/servicer/add", "/cgi-bin/kf/servicer/del")


def writes(fake: FakeWeChat) -> list[Any]:
    return [call for call in fake.calls if call.path in SERVICER_PATHS]


async def test_a_dry_run_reports_the_exact_plan_and_sends_nothing(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.add_servicers(corp[2], ["u1", "u2", "u3"], [1, 2])
    result = await wc.servicers.sync(
        corp[2], ["u3", "u4", "u1", "u5"], department_ids=[2, 7], dry_run=True
    )
    assert result == SyncResult(
        corp[2],
        to_add=["u4", "u5"],
        to_remove=["u2"],
        departments_to_add=[7],
        departments_to_remove=[1],
        dry_run=True,
    )
    assert result.added is None
    assert result.removed is None
    assert result.ok
    assert writes(fake) == []
    assert fake.servicers(corp[2]).keys() == {"u1", "u2", "u3"}


async def test_sync_compares_userids_without_case_and_never_swaps_alice_for_alice(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.add_servicers(corp[2], ["alice", "bob", "carol"])
    fake.add_members(corp[0], ["dave"])
    result = await wc.servicers.sync(corp[2], ["Alice", "BOB", "dave", "DAVE"])
    assert result.to_add == ["dave"]
    assert result.to_remove == ["carol"]
    assert result.case_duplicates == {"DAVE": "dave"}
    assert result.ok
    removed = [u for c in writes(fake) if c.path.endswith("/del") for u in c.json["userid_list"]]
    added = [u for c in writes(fake) if c.path.endswith("/add") for u in c.json["userid_list"]]
    assert (added, removed) == (["dave"], ["carol"])
    assert fake.servicers(corp[2]).keys() == {"alice", "bob", "dave"}


async def test_sync_makes_the_servicers_exactly_the_target_and_a_rerun_sends_nothing(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.add_servicers(corp[2], [f"u{i}" for i in range(150)], [1, 2, 3])
    target = [f"u{i}" for i in range(100, 400)]
    result = await wc.servicers.sync(corp[2], target, department_ids=[3, 4])
    assert result.ok
    assert not result.dry_run
    assert result.to_add == [f"u{i}" for i in range(150, 400)]
    assert result.to_remove == [f"u{i}" for i in range(100)]
    assert result.added is not None
    assert result.removed is not None
    assert [i.userid or i.department_id for i in result.added.items] == [*result.to_add, 4]
    assert [i.userid or i.department_id for i in result.removed.items] == [*result.to_remove, 1, 2]
    assert set(fake.servicers(corp[2])) == set(target)
    assert sorted(fake.servicer_departments(corp[2])) == [3, 4]

    fake.calls.clear()
    again = await wc.servicers.sync(corp[2], reversed(target), department_ids=[4, 3])
    assert again.changes == 0
    assert again.added is None
    assert again.removed is None
    assert writes(fake) == []


async def test_syncing_to_nothing_removes_every_servicer(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.add_servicers(corp[2], ["u1", "u2"], [5])
    result = await wc.servicers.sync(corp[2])
    assert result.to_remove == ["u1", "u2"]
    assert result.departments_to_remove == [5]
    assert fake.servicers(corp[2]) == {}
    assert fake.servicer_departments(corp[2]) == []


@pytest.mark.parametrize(
    ("userids", "departments", "message"),
    [
        ([f"u{i}" for i in range(2001)], [], "at most 2000 servicers"),
        ([], list(range(1, 22)), "at most 20 departments"),
    ],
)
async def test_a_target_over_wechats_caps_is_refused_before_any_request(
    fake: FakeWeChat,
    wc: WeComClient,
    corp: Corp,
    userids: list[str],
    departments: list[int],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        await wc.servicers.sync(corp[2], userids, department_ids=departments)
    assert fake.calls == []


async def test_a_dry_run_over_the_caps_returns_the_plan_and_says_what_is_over(
    fake: FakeWeChat, wc: WeComClient, corp: Corp, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_servicers(corp[2], ["u1", "u2"], [1])
    target = [f"u{i}" for i in range(1, 2151)] + ["U1"]  # "U1" is u1: 2,150 members
    departments = list(range(2, 24))
    with caplog.at_level(logging.WARNING, logger="wechat_kf"):
        plan = await wc.servicers.sync(corp[2], target, department_ids=departments, dry_run=True)
    assert plan.dry_run
    assert plan.to_add == [f"u{i}" for i in range(3, 2151)]
    assert plan.to_remove == []
    assert plan.departments_to_add == departments
    assert plan.departments_to_remove == [1]
    assert plan.case_duplicates == {"U1": "u1"}
    assert over_caps(target, departments) == [
        "2150 userids: a kf account holds at most 2000 servicers",
        "22 department ids: a kf account holds at most 20 departments",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2150 userids" in w and "22 department ids" in w for w in warnings), warnings
    assert writes(fake) == []
    with pytest.raises(ValueError, match=r"2150 userids.*22 department ids"):
        await wc.servicers.sync(corp[2], target, department_ids=departments)
    assert writes(fake) == []


def test_over_caps_is_empty_at_the_caps_and_counts_userids_without_case() -> None:
    at_the_cap = [f"u{i}" for i in range(2000)]
    assert over_caps(at_the_cap, range(1, 21)) == []
    assert over_caps([*at_the_cap, "U0", "U1999"]) == []
    assert over_caps([*at_the_cap, "x"]) == [
        "2001 userids: a kf account holds at most 2000 servicers"
    ]
    with pytest.raises(ValueError):
        over_caps(["bad id"])


async def test_bad_arguments_are_refused_before_any_request(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    with pytest.raises(TypeError):
        await wc.servicers.sync(corp[2], "u1")  # a string is not a list of ids
    with pytest.raises(TypeError):
        await wc.servicers.sync(corp[2], ["u1"], dry_run="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await wc.servicers.sync("", ["u1"])
    assert fake.calls == []


async def test_at_the_cap_removals_go_first_so_the_swap_succeeds(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.add_members(corp[0], [f"v{i}" for i in range(2000)])
    fake.add_servicers(corp[2], [f"v{i}" for i in range(2000)])
    target = [f"v{i}" for i in range(300, 2000)] + [f"u{i}" for i in range(300)]
    fake.faults.latency = (0.001, 0.02)  # requests in flight together finish in any order
    result = await wc.servicers.sync(corp[2], target)
    assert result.ok, [i for i in result.added.failed] if result.added else result
    assert set(fake.servicers(corp[2])) == set(target)
    paths = [call.path for call in writes(fake)]
    assert paths == sorted(paths, key=lambda p: p != "/cgi-bin/kf/servicer/del")


async def test_two_syncs_of_one_kf_account_never_interleave(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.add_servicers(corp[2], [f"u{i}" for i in range(300)])
    fake.faults.latency = 0.005
    first = [f"u{i}" for i in range(200, 600)]
    second = [f"u{i}" for i in range(0, 250)]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(wc.servicers.sync, corp[2], first)
            await anyio.sleep(0.001)
            group.start_soon(wc.servicers.sync, corp[2], second)
    # Each sync's listing comes after every write of the one before it.
    order = [c.path for c in fake.calls if c.path.startswith("/cgi-bin/kf/servicer/")]
    lists = [i for i, path in enumerate(order) if path.endswith("/list")]
    assert len(lists) == 2
    assert all(path.endswith("/list") or i < lists[1] for i, path in enumerate(order[: lists[1]]))
    assert set(fake.servicers(corp[2])) == set(second)


async def test_syncs_of_different_kf_accounts_run_at_the_same_time(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    other = fake.create_kf_account(corp[0], "other")
    fake.faults.latency = 0.05
    started: list[str] = []

    def note(outcome: RequestOutcome) -> None:
        started.append(outcome.open_kfid)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: wc.servicers.sync(corp[2], ["u1"], on_request=note))
            group.start_soon(lambda: wc.servicers.sync(other, ["u2"], on_request=note))
    listings = [c for c in fake.calls if c.path == "/cgi-bin/kf/servicer/list"]
    writes_ = writes(fake)
    # Both listings were read before either account was written to.
    assert fake.calls.index(listings[1]) < fake.calls.index(writes_[0])
    assert sorted(started) == sorted([corp[2], other])


def refusing(fake: FakeWeChat, path: str, errcode: int) -> httpx.AsyncClient:
    """An httpx client on ``fake`` whose requests to ``path`` WeChat refuses with ``errcode``."""
    inner = fake.transport

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            return httpx.Response(200, json={"errcode": errcode, "errmsg": "api forbidden rid: r9"})
        return await inner.handle_async_request(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_plan_applied_in_part_raises_sync_error_naming_what_was_and_was_not_done(
    fake: FakeWeChat, corp: Corp
) -> None:
    fake.add_servicers(corp[2], ["u1", "u2", "u3"])
    async with (
        refusing(fake, "/cgi-bin/kf/servicer/add", 95017) as http,
        WeComClient(corp[0], corp[1], http_client=http) as wc,
    ):
        with pytest.raises(SyncError) as info:
            await wc.servicers.sync(corp[2], ["u3", "u4", "u5"], department_ids=[9])
    error = info.value
    assert error.result.to_add == ["u4", "u5"]
    assert error.result.to_remove == ["u1", "u2"]
    assert error.result.removed is not None
    assert error.result.removed.ok
    assert error.result.added is not None
    assert error.result.added.items == []
    assert error.unprocessed_to_add == ["u4", "u5"]
    assert error.unprocessed_departments_to_add == [9]
    assert error.unprocessed_to_remove == []
    assert error.unprocessed_departments_to_remove == []
    assert isinstance(error.errors[0], PermissionDeniedError)
    assert "0 of 3 additions and 2 of 2 removals processed" in str(error)
    assert set(fake.servicers(corp[2])) == {"u3"}


@pytest.mark.parametrize(
    "faults",
    [{"busy_rate": 0.3}, {"drop_after_rate": 0.3}, {"stall_rate": 0.2}],
    ids=["busy", "lost", "stalled"],
)
async def test_sync_under_faults_converges_to_the_target(
    fake: FakeWeChat, corp: Corp, faults: dict[str, float]
) -> None:
    fake.add_servicers(corp[2], [f"u{i}" for i in range(0, 600)], [1, 2, 3])
    target = [f"u{i}" for i in range(300, 900)]
    for name, rate in faults.items():
        setattr(fake.faults, name, rate)
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(corp[0], corp[1], http_client=http, timeout=0.2) as wc,
    ):
        with anyio.fail_after(60):
            for _ in range(10):
                try:
                    result = await wc.servicers.sync(corp[2], target, department_ids=[3, 4])
                except WeChatError:  # applied in part, or the listing failed after its retries
                    continue
                if result.ok:
                    break
    fake.faults = type(fake.faults)()
    assert set(fake.servicers(corp[2])) == set(target)
    assert sorted(fake.servicer_departments(corp[2])) == [3, 4]
