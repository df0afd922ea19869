"""wc.customers.get: any number of ids in requests of 100, run concurrently under the client's
limiter (shared with the servicer batches), answers in input order, invalid ids reported, and
no id lost when a request fails."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from tests._scripted import SECRET, Scripted
from wechat_kf import (
    BatchError,
    ClientClosedError,
    Customer,
    CustomerBatch,
    InvalidResponseError,
    PermissionDeniedError,
    StaticTokenProvider,
    TransportError,
    WeComClient,
)

pytestmark = pytest.mark.anyio

PATH = "/cgi-bin/kf/customer/batchget"
SERVICERS = "/cgi-bin/kf/servicer/add"
TOKEN = "static-token-" + SECRET


def customer(external_userid: str) -> dict[str, Any]:
    return {
        "external_userid": external_userid,
        "nickname": f"nick-{external_userid}",
        "avatar": f"https://wx.qlogo.cn/{external_userid}",
        "gender": 1,
        "unionid": f"union-{external_userid}",
    }


class Server:
    """A batchget endpoint: ids starting with "bad" are listed invalid, ids starting with "silent"
    are not mentioned at all, the others are customers, returned in reverse order; requests that
    carry ``poison`` (every request: "*") answer ``reply``; each request takes a random time, so
    they finish out of order; the peak of requests in flight (batchget and servicer calls alike)
    is recorded."""

    def __init__(self, poison: str | None = None, reply: Any = None, latency: float = 0.01):
        self.poison = poison
        self.reply = reply
        self.latency = latency
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak = 0
        self.random = random.Random(7)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await anyio.sleep(self.latency * self.random.random())
        finally:
            self.in_flight -= 1
        if request.url.path == SERVICERS:
            return httpx.Response(200, json={"errcode": 0, "result_list": []})
        ids = body["external_userid_list"]
        if self.poison is not None and (self.poison == "*" or self.poison in ids):
            if isinstance(self.reply, int):
                return httpx.Response(self.reply)
            return httpx.Response(200, json=self.reply)
        answer = {
            "errcode": 0,
            "errmsg": "ok",
            "customer_list": [customer(i) for i in reversed(ids) if i[:3] not in ("bad", "sil")],
            "invalid_external_userid": [i for i in ids if i.startswith("bad")],
        }
        return httpx.Response(200, json=answer)

    def sent_ids(self) -> list[list[str]]:
        return [b["external_userid_list"] for b in self.bodies if "external_userid_list" in b]


@pytest.fixture(autouse=True)
def _watch(secret_watch: set[str]) -> None:
    secret_watch.add(SECRET)


@asynccontextmanager
async def wecom(handler: Any, **options: Any) -> AsyncIterator[WeComClient]:
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        WeComClient(token_provider=StaticTokenProvider(TOKEN), http_client=http, **options) as wc,
    ):
        with anyio.fail_after(20):
            yield wc


async def test_one_request_sends_the_ids_and_the_flag_and_reads_every_field() -> None:
    context = {"scene": "web01", "scene_param": "p=1", "wechat_channels": {"nickname": "ch"}}
    item = {**customer("wm1"), "gender": 2, "enter_session_context": context}
    answer = {"errcode": 0, "customer_list": [item], "invalid_external_userid": ["wm2"]}
    script = Scripted(answer)
    async with script.client() as http, WeComClient("ww", SECRET, http_client=http) as wc:
        found = await wc.customers.get(["wm1", "wm2"], enter_session_context=True)
    assert found == CustomerBatch(
        [
            Customer(
                "wm1",
                "nick-wm1",
                "https://wx.qlogo.cn/wm1",
                2,
                "union-wm1",
                context,
            )
        ],
        ["wm2"],
    )
    (request,) = script.business_requests
    assert (request.method, request.url.path) == ("POST", PATH)
    assert json.loads(request.content) == {
        "external_userid_list": ["wm1", "wm2"],
        "need_enter_session_context": 1,
    }


async def test_without_context_the_flag_is_0_and_missing_fields_are_none() -> None:
    script = Scripted({"customer_list": [{"external_userid": "wm1"}]})
    async with script.client() as http, WeComClient("ww", SECRET, http_client=http) as wc:
        found = await wc.customers.get(iter(["wm1"]))
    assert found == CustomerBatch([Customer("wm1")], [])
    assert json.loads(script.business_requests[0].content)["need_enter_session_context"] == 0


async def test_250_ids_go_in_3_requests_of_100_100_50_and_come_back_in_input_order() -> None:
    ids = [f"wm{i}" for i in range(250)]
    random.Random(3).shuffle(ids)
    server = Server()
    async with wecom(server) as wc:
        found = await wc.customers.get(ids)
    sent = server.sent_ids()
    # consecutive slices of the input, in its order, whatever order they were sent in
    assert sorted(map(tuple, sent)) == sorted(map(tuple, [ids[:100], ids[100:200], ids[200:]]))
    assert sorted(len(chunk) for chunk in sent) == [50, 100, 100]
    assert [c.external_userid for c in found.customers] == ids
    assert found.customers[0] == Customer(**customer(ids[0]))
    assert found.invalid == []


async def test_invalid_and_unmentioned_ids_are_reported_invalid_in_input_order() -> None:
    ids = ["wm1", "bad1", "silent1", "wm2", "bad2", "silent2"]
    ids += [f"wm{i}" for i in range(3, 200)] + ["bad3"]
    server = Server()
    async with wecom(server) as wc:
        found = await wc.customers.get(ids)
    assert found.invalid == ["bad1", "silent1", "bad2", "silent2", "bad3"]
    assert [c.external_userid for c in found.customers] == [i for i in ids if i.startswith("wm")]


async def test_duplicates_are_dropped_first_kept() -> None:
    server = Server()
    async with wecom(server) as wc:
        found = await wc.customers.get(["wm2", "wm1", "wm2", "bad1", "wm1", "bad1"])
    assert server.sent_ids() == [["wm2", "wm1", "bad1"]]
    assert [c.external_userid for c in found.customers] == ["wm2", "wm1"]
    assert found.invalid == ["bad1"]


@pytest.mark.parametrize(("max_concurrency", "expected"), [(1, 1), (2, 2), (8, 8)])
async def test_at_most_max_concurrency_requests_are_in_flight(
    max_concurrency: int, expected: int
) -> None:
    server = Server(latency=0.05)
    async with wecom(server, max_concurrency=max_concurrency) as wc:
        await wc.customers.get([f"wm{i}" for i in range(1500)])
    assert len(server.sent_ids()) == 15
    assert server.peak == expected


async def test_customers_and_servicer_batches_share_the_clients_limit() -> None:
    server = Server(latency=0.05)
    async with wecom(server, max_concurrency=3) as wc, anyio.create_task_group() as group:
        group.start_soon(wc.customers.get, [f"wm{i}" for i in range(600)])
        group.start_soon(wc.servicers.add, "wk1", [f"u{i}" for i in range(600)])
    assert len(server.bodies) == 12
    assert server.peak == 3


@pytest.mark.parametrize("reply", [502, {"errcode": -1, "errmsg": "busy"}])
async def test_a_request_failing_for_good_leaves_exactly_its_100_ids_unprocessed(
    reply: Any,
) -> None:
    ids = [f"wm{i}" for i in range(240)] + ["bad1"] + [f"wm{i}" for i in range(240, 249)]
    server = Server(poison="wm150", reply=reply)
    async with wecom(server, max_retries=2) as wc:
        with pytest.raises(BatchError) as info:
            await wc.customers.get(ids)
    error = info.value
    assert error.unprocessed_userids == ids[100:200]
    assert error.unprocessed_department_ids == []
    assert isinstance(error.result, CustomerBatch)
    assert [c.external_userid for c in error.result.customers] == [
        i for i in ids[:100] + ids[200:] if i != "bad1"
    ]
    assert error.result.invalid == ["bad1"]
    assert len(error.errors) == 1
    assert len([c for c in server.sent_ids() if "wm150" in c]) == 3  # retried, then given up
    assert "100 of 250 ids unprocessed" in str(error)
    if reply == 502:
        assert isinstance(error.errors[0], TransportError)
        assert error.errors[0].status_code == 502


async def test_a_fatal_failure_stops_the_requests_not_yet_sent() -> None:
    ids = [f"wm{i}" for i in range(500)]
    server = Server(poison="*", reply={"errcode": 48001, "errmsg": "api unauthorized"})
    async with wecom(server, max_concurrency=1) as wc:
        with pytest.raises(BatchError) as info:
            await wc.customers.get(ids)
    assert info.value.unprocessed_userids == ids
    assert info.value.result == CustomerBatch()
    assert isinstance(info.value.errors[0], PermissionDeniedError)
    assert len(server.sent_ids()) == 1


async def test_an_answer_of_another_shape_leaves_its_request_unprocessed() -> None:
    ids = [f"wm{i}" for i in range(150)]
    server = Server(poison="wm120", reply={"errcode": 0, "customer_list": "not a list"})
    async with wecom(server) as wc:
        with pytest.raises(BatchError) as info:
            await wc.customers.get(ids)
    assert info.value.unprocessed_userids == ids[100:]
    assert isinstance(info.value.errors[0], InvalidResponseError)
    assert len(info.value.result.customers) == 100


@pytest.mark.parametrize(
    "answer",
    [
        {"customer_list": [{"nickname": "no id"}]},
        {"customer_list": [{"external_userid": "wm1", "gender": "male"}]},
        {"customer_list": [{"external_userid": "wm1", "enter_session_context": [1]}]},
        {"invalid_external_userid": "wm1"},
        {"invalid_external_userid": [1]},
    ],
)
async def test_every_malformed_answer_is_an_invalid_response_for_its_ids(
    answer: dict[str, Any],
) -> None:
    script = Scripted(answer)
    async with script.client() as http, WeComClient("ww", SECRET, http_client=http) as wc:
        with pytest.raises(BatchError) as info:
            await wc.customers.get(["wm1"])
    assert info.value.unprocessed_userids == ["wm1"]
    assert isinstance(info.value.errors[0], InvalidResponseError)


async def test_a_customer_not_asked_for_is_ignored() -> None:
    script = Scripted({"customer_list": [customer("wmOTHER"), customer("wm1")]})
    async with script.client() as http, WeComClient("ww", SECRET, http_client=http) as wc:
        found = await wc.customers.get(["wm1", "wm2"])
    assert [c.external_userid for c in found.customers] == ["wm1"]
    assert found.invalid == ["wm2"]


@pytest.mark.parametrize(
    "failure", [httpx.Response(502), httpx.RemoteProtocolError("Server disconnected")]
)
async def test_a_request_whose_answer_was_lost_is_sent_again(
    failure: httpx.Response | Exception,
) -> None:
    script = Scripted(failure, {"customer_list": [customer("wm1")]})
    async with script.client() as http, WeComClient("ww", SECRET, http_client=http) as wc:
        found = await wc.customers.get(["wm1"])
    assert [c.external_userid for c in found.customers] == ["wm1"]
    first, second = script.business_requests
    assert first.content == second.content


async def test_a_closed_client_refuses_before_sending() -> None:
    server = Server()
    async with wecom(server) as wc:
        await wc.aclose()
        with pytest.raises(ClientClosedError):
            await wc.customers.get(["wm1"])
    assert server.bodies == []


@pytest.mark.parametrize(
    ("ids", "kwargs", "exc"),
    [
        ("wm1", {}, TypeError),
        (b"wm1", {}, TypeError),
        (42, {}, TypeError),
        ([], {}, ValueError),
        (iter(()), {}, ValueError),
        ([""], {}, ValueError),
        (["wm 1"], {}, ValueError),
        (["wm1", None], {}, TypeError),
        (["\ud800"], {}, ValueError),
        (["wm1"], {"enter_session_context": 1}, TypeError),
        (["wm1"], {"enter_session_context": "yes"}, TypeError),
    ],
)
async def test_bad_arguments_raise_before_any_request(
    ids: Any, kwargs: dict[str, Any], exc: type[Exception]
) -> None:
    server = Server()
    async with wecom(server) as wc:
        with pytest.raises(exc):
            await wc.customers.get(ids, **kwargs)
    assert server.bodies == []


async def test_each_request_is_reported_as_it_settles_with_progress_after_each() -> None:
    ids = [f"wm{i}" for i in range(240)] + ["bad1"]
    server = Server(poison="wm150", reply=502)
    settled: list[tuple[list[str], CustomerBatch | None, type[Exception] | None]] = []
    progress: list[tuple[int, int]] = []

    def on_request(chunk: list[str], answer: CustomerBatch | None, error: Exception | None) -> None:
        settled.append((chunk, answer, type(error) if error else None))

    async with wecom(server, max_retries=0) as wc:
        with pytest.raises(BatchError):
            await wc.customers.get(
                ids,
                on_progress=lambda done, total: progress.append((done, total)),
                on_request=on_request,
            )
    by_first = {chunk[0]: (chunk, answer, error) for chunk, answer, error in settled}
    assert sorted(by_first) == ["wm0", "wm100", "wm200"]
    chunk, answer, error = by_first["wm100"]
    assert (chunk, answer, error) == (ids[100:200], None, TransportError)
    chunk, answer, error = by_first["wm200"]
    assert answer is not None
    assert error is None
    assert [c.external_userid for c in answer.customers] == ids[200:240]
    assert answer.invalid == ["bad1"]
    assert progress[-1] == (241, 241)
    assert [done for done, _ in progress] == sorted({done for done, _ in progress})
    assert [total for _, total in progress] == [241] * 3


async def test_a_raising_callback_stops_the_batch_and_keeps_every_id() -> None:
    ids = [f"wm{i}" for i in range(500)]

    def explode(chunk: list[str], answer: CustomerBatch | None, error: Exception | None) -> None:
        raise RuntimeError("journal full")

    async with wecom(Server(), max_concurrency=1) as wc:
        with pytest.raises(BatchError) as info:
            await wc.customers.get(ids, on_request=explode)
    error = info.value
    assert isinstance(error.__cause__, RuntimeError)
    processed = [c.external_userid for c in error.result.customers]
    # Which request ran first is the scheduler's choice (trio's is random): one did, no more.
    assert sorted(processed + error.unprocessed_userids) == sorted(ids)
    assert len(processed) == 100


async def test_25000_ids_go_in_250_requests_of_100_under_the_limit_and_none_is_lost() -> None:
    rng = random.Random(25_000)
    ids = [f"wm{i}" for i in range(24_000)] + [f"bad{i}" for i in range(600)]
    ids += [f"silent{i}" for i in range(400)]
    rng.shuffle(ids)
    server = Server(latency=0.004)
    async with wecom(server, max_concurrency=5) as wc:
        found = await wc.customers.get(ids)
    sent = server.sent_ids()
    assert len(sent) == 250
    assert all(len(chunk) == 100 for chunk in sent)
    # consecutive slices of the input, each sent once, whatever order they were sent in
    slices = [tuple(ids[i : i + 100]) for i in range(0, 25_000, 100)]
    assert sorted(map(tuple, sent)) == sorted(slices)
    assert server.peak == wc.max_concurrency == 5  # reached, never passed
    valid = [i for i in ids if i.startswith("wm")]
    assert [c.external_userid for c in found.customers] == valid
    assert found.invalid == [i for i in ids if not i.startswith("wm")]
    assert len(found.customers) + len(found.invalid) == len(ids) == 25_000
    assert sorted([c.external_userid for c in found.customers] + found.invalid) == sorted(ids)
    assert found.customers[-1] == Customer(**customer(valid[-1]))
