"""Servicers: validation, batching, concurrency, partial failure, cancellation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests._scripted import SECRET, Scripted
from wechat_kf import (
    BatchError,
    ClientClosedError,
    OpenKfidError,
    RateLimitError,
    ServicerStatus,
    TransportError,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

ADD = "/cgi-bin/kf/servicer/add"
DEL = "/cgi-bin/kf/servicer/del"


def sent_userids(fake: FakeWeChat, path: str = ADD) -> list[str]:
    return [
        u for c in fake.calls_to(path) if c.status == 200 for u in c.json.get("userid_list", [])
    ]


async def test_250_ids_go_in_3_requests_each_id_once_in_input_order(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    ids = [f"u{i}" for i in range(245)] + ["ghost1", "ghost2", "ghost3", "ghost4", "ghost5"]
    result = await wc.servicers.add(corp[2], ids)
    calls = fake.calls_to(ADD)
    assert sorted(len(c.json["userid_list"]) for c in calls) == [50, 100, 100]
    assert sorted(sent_userids(fake)) == sorted(ids)
    assert [item.userid for item in result.items] == ids
    assert [item.userid for item in result.failed] == ids[-5:]
    assert {item.errcode for item in result.failed} == {60111}
    assert len(result.succeeded) == 245
    assert not result.ok
    assert set(fake.servicers(corp[2])) == set(ids[:245])


async def test_requests_run_concurrently_against_a_slow_server(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.faults.latency = 0.2
    started = anyio.current_time()
    await wc.servicers.add(corp[2], [f"u{i}" for i in range(800)])
    elapsed = anyio.current_time() - started
    # 8 requests at max_concurrency 8 take one round trip (+ the token), not eight.
    assert elapsed < 0.2 * 8 / 2


class InFlight:
    """An httpx transport around the fake that records the peak of concurrent servicer calls."""

    def __init__(self, fake: FakeWeChat, latency: float = 0.02) -> None:
        self.inner = fake.transport
        self.latency = latency
        self.now = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        business = "/servicer/" in request.url.path
        if business:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            await anyio.sleep(self.latency)
            return await self.inner.handle_async_request(request)
        finally:
            if business:
                self.now -= 1


def client_with(transport: Any, corp: tuple[str, str, str], **options: Any) -> WeComClient:
    http = httpx.AsyncClient(transport=transport)
    return WeComClient(corp[0], corp[1], http_client=http, **options)


async def test_max_concurrency_is_never_exceeded_even_across_concurrent_batches(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    counter = InFlight(fake)
    async with (
        client_with(counter, corp, max_concurrency=2) as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(client.servicers.add, corp[2], [f"u{i}" for i in range(500)])
        group.start_soon(client.servicers.add, corp[2], [f"u{i}" for i in range(500, 1000)])
    assert counter.peak == 2
    assert len(fake.calls_to(ADD)) == 10


async def test_more_than_one_request_is_in_flight_at_the_default_concurrency(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    counter = InFlight(fake)
    async with client_with(counter, corp) as client:
        await client.servicers.add(corp[2], [f"u{i}" for i in range(1000)])
    assert counter.peak == 8


async def test_userids_and_departments_share_requests(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    result = await wc.servicers.add(corp[2], ["u1", "u2", "u3"], department_ids=[5, 6])
    (call,) = fake.calls_to(ADD)
    assert call.json["userid_list"] == ["u1", "u2", "u3"]
    assert call.json["department_id_list"] == [5, 6]
    assert [(i.userid, i.department_id) for i in result.items] == [
        ("u1", None),
        ("u2", None),
        ("u3", None),
        (None, 5),
        (None, 6),
    ]
    assert result.ok


async def test_150_userids_and_120_departments_make_two_requests(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.add_departments(corp[0], range(1, 121))
    result = await wc.servicers.add(
        corp[2], [f"u{i}" for i in range(150)], department_ids=range(1, 121)
    )
    calls = fake.calls_to(ADD)
    shapes = sorted(
        (len(c.json.get("userid_list", [])), len(c.json.get("department_id_list", [])))
        for c in calls
    )
    assert shapes == [(50, 20), (100, 100)]
    assert len(result.items) == 270


async def test_duplicates_are_dropped_first_kept(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    result = await wc.servicers.add(corp[2], ["u2", "u1", "u2", "u1"], department_ids=[3, 3])
    assert sent_userids(fake) == ["u2", "u1"]
    assert [i.userid or i.department_id for i in result.items] == ["u2", "u1", 3]


async def test_ids_from_a_generator_are_accepted(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    result = await wc.servicers.add(corp[2], (f"u{i}" for i in range(3)))
    assert len(result.items) == 3


async def test_already_servicer_reported_as_ignored_counts_as_success(
    wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    await wc.servicers.add(corp[2], ["u1"])
    result = await wc.servicers.add(corp[2], ["u1"])
    (item,) = result.items
    assert item.ok
    assert item.errmsg == "ignored"


async def test_delete_removes_and_reports_non_servicers(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    await wc.servicers.add(corp[2], ["u1", "u2"], department_ids=[4])
    result = await wc.servicers.delete(corp[2], ["u1", "u3"], department_ids=[4, 5])
    assert [(i.userid or i.department_id, i.errcode, i.ok) for i in result.items] == [
        ("u1", 0, True),
        ("u3", 95014, True),  # already not a servicer: done, with WeChat's code kept
        (4, 0, True),
        (5, 95014, True),
    ]
    assert [i.already for i in result.items] == [False, True, False, True]
    assert result.ok
    assert fake.servicers(corp[2]) == {"u2": 0}


async def test_95014_is_a_failure_on_add_and_other_delete_errors_stay_failures(
    wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    result = await wc.servicers.delete(corp[2], ["u1", "not-a-member"])
    assert [(i.errcode, i.ok) for i in result.items] == [(95014, True), (60111, False)]
    script = Scripted(
        {"result_list": [{"userid": "u1", "errcode": 95014, "errmsg": "not a servicer"}]}
    )
    async with WeComClient("ww", SECRET, http_client=script.client()) as client:
        added = await client.servicers.add("wk", ["u1"])
    assert not added.ok
    assert not added.items[0].already


async def test_a_batch_on_a_closed_client_raises_client_closed_error(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    await wc.aclose()
    for call in (wc.servicers.add, wc.servicers.delete):
        with pytest.raises(ClientClosedError):
            await call(corp[2], ["u1"])
    assert fake.calls == []


async def test_a_department_item_with_an_empty_userid_is_the_departments_outcome(
    secret_watch: set[str],
) -> None:
    secret_watch.add(SECRET)
    items = [
        {"userid": "u1", "errcode": 0, "errmsg": "success"},
        {"userid": "", "department_id": 2, "errcode": 0, "errmsg": "success"},
        {"userid": "", "department_id": 3, "errcode": 60003, "errmsg": "department not found"},
    ]
    script = Scripted({"errcode": 0, "errmsg": "ok", "result_list": items})
    async with WeComClient("ww", SECRET, http_client=script.client()) as client:
        result = await client.servicers.add("wk", ["u1"], department_ids=[2, 3])
    secret_watch.update(script.issued())
    assert [(i.userid, i.department_id, i.errcode) for i in result.items] == [
        ("u1", None, 0),
        (None, 2, 0),
        (None, 3, 60003),
    ]


async def test_list_returns_members_with_status_and_departments(
    wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    await wc.servicers.add(corp[2], ["u1"], department_ids=[7])
    servicers = await wc.servicers.list(corp[2])
    member = next(s for s in servicers if s.userid == "u1")
    department = next(s for s in servicers if s.department_id == 7)
    assert member.status is ServicerStatus.SERVING
    assert member.department_id is None
    assert department.userid is None
    assert department.status is None


async def test_list_of_unknown_open_kfid_raises_open_kfid_error(wc: WeComClient) -> None:
    with pytest.raises(OpenKfidError) as info:
        await wc.servicers.list("wkdoesnotexist")
    assert info.value.errcode == 95000


async def test_busy_twice_then_success_processes_everything(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    calls: list[int] = []
    real = fake.transport

    class BusyTwice(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == ADD:
                calls.append(1)
                if len(calls) <= 2:
                    return httpx.Response(200, json={"errcode": -1, "errmsg": "busy"})
            return await real.handle_async_request(request)

    async with client_with(BusyTwice(), corp) as client:
        result = await client.servicers.add(corp[2], ["u1", "u2"])
    assert result.ok
    assert len(calls) == 3


class FailBatch(httpx.AsyncBaseTransport):
    """Fails every servicer request that carries ``poison`` with ``reply``; the rest go to the
    fake."""

    def __init__(self, fake: FakeWeChat, poison: str, reply: dict[str, Any] | int) -> None:
        self.real = fake.transport
        self.poison = poison
        self.reply = reply
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in (ADD, DEL) and self.poison.encode() in await request.aread():
            self.attempts += 1
            if isinstance(self.reply, int):
                return httpx.Response(self.reply)
            return httpx.Response(200, json=self.reply)
        return await self.real.handle_async_request(request)


async def test_a_batch_failing_for_good_leaves_exactly_its_ids_unprocessed(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    ids = [f"u{i}" for i in range(250)]
    failing = FailBatch(fake, '"u100"', 502)
    async with client_with(failing, corp, max_retries=2) as client:
        with pytest.raises(BatchError) as info:
            await client.servicers.add(corp[2], ids, department_ids=[1])
        error = info.value
        assert error.unprocessed_userids == ids[100:200]
        assert error.unprocessed_department_ids == []
        assert [i.userid or i.department_id for i in error.result.items] == [
            *ids[:100],
            *ids[200:],
            1,
        ]
        assert failing.attempts == 3
        assert len(error.errors) == 1
        assert isinstance(error.errors[0], TransportError)
        assert error.errors[0].status_code == 502
        assert set(fake.servicers(corp[2])) == set(ids[:100] + ids[200:])
        # the client stays usable after a BatchError, and the unprocessed ids can be resent
        failing.poison = "no longer failing"
        retry = await client.servicers.add(corp[2], error.unprocessed_userids)
        assert retry.ok


async def test_a_fatal_error_stops_the_requests_not_yet_sent(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    ids = [f"u{i}" for i in range(1000)]
    failing = FailBatch(fake, '"open_kfid"', {"errcode": 48001, "errmsg": "api unauthorized"})
    async with client_with(failing, corp, max_concurrency=1) as client:
        with pytest.raises(BatchError) as info:
            await client.servicers.add(corp[2], ids)
    assert info.value.unprocessed_userids == ids
    assert info.value.result.items == []
    assert failing.attempts == 1
    assert fake.calls_to(ADD) == []


async def test_a_used_up_daily_quota_stops_the_requests_not_yet_sent(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    # 45009: no further call goes through today, so sending the rest only burns requests.
    ids = [f"u{i}" for i in range(1000)]
    failing = FailBatch(fake, '"open_kfid"', {"errcode": 45009, "errmsg": "api freq out of limit"})
    async with client_with(failing, corp, max_concurrency=1) as client:
        with pytest.raises(BatchError) as info:
            await client.servicers.add(corp[2], ids)
    error = info.value
    assert error.result.items == []
    assert error.unprocessed_userids == ids
    assert failing.attempts == 1
    assert fake.calls_to(ADD) == []
    assert len(error.errors) == 1
    assert isinstance(error.errors[0], RateLimitError)
    assert error.errors[0].errcode == 45009
    assert "1000 of 1000 ids unprocessed" in str(error)
    assert "45009" in str(error)


async def test_a_per_minute_quota_does_not_stop_the_other_requests(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    ids = [f"u{i}" for i in range(300)]
    failing = FailBatch(fake, '"u100"', {"errcode": 45011, "errmsg": "minute quota"})
    async with client_with(failing, corp, max_concurrency=1, max_retries=1) as client:
        with pytest.raises(BatchError) as info:
            await client.servicers.add(corp[2], ids)
    assert info.value.unprocessed_userids == ids[100:200]
    assert len(fake.calls_to(ADD)) == 2


async def test_userids_differing_only_by_case_are_one_member_first_spelling_kept_others_reported(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.add_members(corp[0], ["alice", "bob"])
    result = await wc.servicers.add(corp[2], ["Alice", "bob", "ALICE", "alice", "Bob"])
    assert sent_userids(fake) == ["Alice", "bob"]
    assert [item.userid for item in result.items] == ["Alice", "bob"]
    assert result.ok
    assert result.case_duplicates == {"ALICE": "Alice", "alice": "Alice", "Bob": "bob"}
    assert set(fake.servicers(corp[2])) == {"alice", "bob"}


async def test_an_answer_spelling_a_userid_in_another_case_is_that_ids_outcome(
    corp: tuple[str, str, str],
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("gettoken"):
            return httpx.Response(200, json={"access_token": "T" * 20, "expires_in": 7200})
        items = [{"userid": "alice", "errcode": 0, "errmsg": "success"}]
        return httpx.Response(200, json={"errcode": 0, "result_list": items})

    async with client_with(httpx.MockTransport(handler), corp) as client:
        result = await client.servicers.add(corp[2], ["Alice"])
    assert [(i.userid, i.errcode) for i in result.items] == [("Alice", 0)]


async def test_every_id_is_either_processed_or_unprocessed_never_both(
    fake: FakeWeChat, corp: tuple[str, str, str]
) -> None:
    ids = [f"u{i}" for i in range(1000)]
    failing = FailBatch(fake, '"u300"', {"errcode": 40058, "errmsg": "invalid parameter"})
    async with client_with(failing, corp) as client:
        with pytest.raises(BatchError) as info:
            await client.servicers.add(corp[2], ids)
    processed = [i.userid for i in info.value.result.items]
    unprocessed = info.value.unprocessed_userids
    assert sorted(processed + unprocessed) == sorted(ids)
    assert not set(processed) & set(unprocessed)
    assert unprocessed == ids[300:400]


async def test_unreported_ids_get_errcode_none_and_count_as_failed(
    fake: FakeWeChat, corp: tuple[str, str, str], secret_watch: set[str]
) -> None:
    secret_watch.add(SECRET)
    script = Scripted(
        {"errcode": 0, "result_list": [{"userid": "a", "errcode": 0, "errmsg": "success"}]}
    )
    async with WeComClient("ww", SECRET, http_client=script.client()) as client:
        result = await client.servicers.add("wkid", ["a", "b"])
    secret_watch.update(script.issued())
    assert [(i.userid, i.errcode, i.ok) for i in result.items] == [
        ("a", 0, True),
        ("b", None, False),
    ]
    assert result.failed == [result.items[1]]


async def test_cancelling_the_caller_mid_batch_cancels_promptly_and_keeps_the_client(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.faults.latency = 5.0
    with anyio.move_on_after(0.2) as scope:
        await wc.servicers.add(corp[2], [f"u{i}" for i in range(1000)])
    assert scope.cancelled_caught
    fake.faults.latency = 0.0
    result = await wc.servicers.add(corp[2], ["u1"])
    assert result.ok


#: Not WeCom userids: 1..64 bytes of letters, digits and _-@., beginning with a letter or digit.
NOT_USERIDS = ["bad id", "_lead", "-lead", ".lead", "@lead", "a" * 65, "张三", "tab\tid",
               "new\nline", "semi;colon", "quo'te", "é"]  # fmt: skip
#: Userids at the edges of the rule, and third-party open_userids (of the same alphabet).
USERIDS = ["a", "7", "a" * 64, "Zhang.San-1_x@corp", "woAJ2GCAAAd1NPGHKSD4wKmE8Aabj9AAA"]


@pytest.mark.parametrize("bad", NOT_USERIDS)
async def test_a_string_that_is_not_a_userid_is_a_value_error_naming_it_and_its_place(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str], bad: str
) -> None:
    with pytest.raises(ValueError) as info:
        await wc.servicers.add(corp[2], ["u1", "u2", bad])
    assert repr(bad) in str(info.value)
    assert "userids[2]" in str(info.value)
    with pytest.raises(ValueError):
        await wc.servicers.sync(corp[2], ["u1", bad], dry_run=True)
    assert fake.calls == []


async def test_userids_at_the_edges_of_the_rule_and_open_userids_are_sent(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    result = await wc.servicers.add(corp[2], USERIDS)
    assert [item.userid for item in result.items] == USERIDS
    assert sent_userids(fake) == USERIDS


def bad_arguments() -> Iterator[Any]:
    yield pytest.param("", ["u1"], (), ValueError, id="empty open_kfid")
    yield pytest.param("wk x", ["u1"], (), ValueError, id="spaced open_kfid")
    yield pytest.param(None, ["u1"], (), TypeError, id="open_kfid None")
    yield pytest.param("wk", "u1", (), TypeError, id="bare str userids")
    yield pytest.param("wk", [""], (), ValueError, id="empty userid")
    yield pytest.param("wk", [1], (), TypeError, id="int userid")
    yield pytest.param("wk", None, (), TypeError, id="userids None")
    yield pytest.param("wk", ["u1"], [True], TypeError, id="bool department")
    yield pytest.param("wk", ["u1"], [0], ValueError, id="zero department")
    yield pytest.param("wk", ["u1"], [-3], ValueError, id="negative department")
    yield pytest.param("wk", ["u1"], ["2"], TypeError, id="str department")
    yield pytest.param("wk", ["u1"], 5, TypeError, id="department not iterable")
    yield pytest.param("wk", [], [], ValueError, id="nothing to do")
    surrogate = [f"u{i}" for i in range(250)] + ["bad\udc80id"]
    yield pytest.param("wk", surrogate, (), ValueError, id="userid not UTF-8 after 250")
    yield pytest.param("wk\ud800", ["u1"], (), ValueError, id="open_kfid not UTF-8")
    for bad in NOT_USERIDS:
        yield pytest.param("wk", ["u1", bad], (), ValueError, id=f"userid {bad[:12]!r}")


@pytest.mark.parametrize(("kfid", "userids", "departments", "exc"), list(bad_arguments()))
@pytest.mark.parametrize("method", ["add", "delete"])
async def test_bad_arguments_raise_before_any_request(
    fake: FakeWeChat,
    wc: WeComClient,
    method: str,
    kfid: Any,
    userids: Any,
    departments: Any,
    exc: type[Exception],
) -> None:
    with pytest.raises(exc):
        await getattr(wc.servicers, method)(kfid, userids, department_ids=departments)
    assert fake.calls == []


async def test_list_with_a_bad_open_kfid_sends_nothing(fake: FakeWeChat, wc: WeComClient) -> None:
    with pytest.raises(ValueError):
        await wc.servicers.list("")
    assert fake.calls == []


async def test_progress_is_reported_after_each_request_up_to_the_total(
    wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    seen: list[tuple[int, int]] = []
    await wc.servicers.add(
        corp[2], [f"u{i}" for i in range(250)], on_progress=lambda d, t: seen.append((d, t))
    )
    assert len(seen) == 3
    assert [t for _, t in seen] == [250, 250, 250]
    assert sorted(d for d, _ in seen) == [d for d, _ in seen]
    assert seen[-1] == (250, 250)
