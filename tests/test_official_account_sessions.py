"""oa.sessions: the exact requests, the typed answers, the errcodes, which calls are retried, and
the chat records read over any span in 24-hour windows and opaque-msgid pages."""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import (
    APIError,
    InvalidResponseError,
    KfSession,
    KfSessionError,
    MessageRecord,
    OfficialAccountClient,
    TransportError,
    WaitingCase,
    WaitingCases,
)
from wechat_kf.official_account import MessageRecords

pytestmark = pytest.mark.anyio

SECRET = "oa-secret-never-shown"
TOKEN = "oa-token-" + "x" * 40
KF = "alice@gh_test"
OPENID = "oDF3iY9WMaswOPWjCIp_f3Bnpljk"
T0 = 1_700_000_000
DAY = 86_400
RECORDS = "/customservice/msgrecord/getmsglist"
NOW = int(time.time())

Reply = dict[str, Any] | httpx.Response
Answer = Callable[[httpx.Request], Reply | Awaitable[Reply]]


class WeChat:
    """A mock of api.weixin.qq.com: issues a token, records every business request, answers
    each with ``answer(request)`` (a JSON body or a Response)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 7200})
        self.requests.append(request)
        reply = self.answer(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """(method, path, query without the token, JSON body) of every business request."""
        return [
            (
                r.method,
                r.url.path,
                {k: v for k, v in r.url.params.items() if k != "access_token"},
                json.loads(r.content) if r.content else None,
            )
            for r in self.requests
        ]


@contextlib.asynccontextmanager
async def client(
    answer: Answer, secret_watch: set[str]
) -> AsyncIterator[tuple[OfficialAccountClient, WeChat]]:
    secret_watch.update([SECRET, TOKEN])
    wechat = WeChat(answer)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(wechat)) as http,
        OfficialAccountClient("wx_test", SECRET, http_client=http) as oa,
    ):
        yield oa, wechat


def ok(**fields: Any) -> Answer:
    return lambda request: {"errcode": 0, "errmsg": "ok", **fields}


def failing(errcode: int) -> Answer:
    return lambda request: {"errcode": errcode, "errmsg": f"refused rid: 65a-{errcode}"}


def bad_gateway_then(answer: Answer) -> Answer:
    """A 502 on the first request (after WeChat may have applied it), then ``answer``."""
    count = 0

    def reply(request: httpx.Request) -> Reply | Awaitable[Reply]:
        nonlocal count
        count += 1
        return httpx.Response(502) if count == 1 else answer(request)

    return reply


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


# --- create / close ---------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["create", "close"])
async def test_create_and_close_post_the_kf_account_and_openid(
    secret_watch: set[str], action: str
) -> None:
    async with client(ok(), secret_watch) as (oa, wechat):
        assert await getattr(oa.sessions, action)(KF, OPENID) is None
    assert wechat.seen == [
        ("POST", f"/customservice/kfsession/{action}", {}, {"kf_account": KF, "openid": OPENID})
    ]


@pytest.mark.parametrize(
    ("action", "errcode"),
    [("create", 65414), ("create", 65415), ("close", 65413), ("create", 65416)],
)
async def test_session_refusals_raise_kf_session_error(
    secret_watch: set[str], action: str, errcode: int
) -> None:
    async with client(failing(errcode), secret_watch) as (oa, wechat):
        with pytest.raises(KfSessionError) as info:
            await getattr(oa.sessions, action)(KF, OPENID)
    assert (info.value.errcode, info.value.rid) == (errcode, f"65a-{errcode}")
    assert len(wechat.requests) == 1


async def test_an_invalid_openid_raises_a_plain_api_error(secret_watch: set[str]) -> None:
    async with client(failing(40003), secret_watch) as (oa, _):
        with pytest.raises(APIError) as info:
            await oa.sessions.create(KF, OPENID)
    assert type(info.value) is APIError
    assert info.value.errcode == 40003


@pytest.mark.parametrize("action", ["create", "close"])
async def test_create_and_close_are_never_sent_twice_once_they_may_have_applied(
    secret_watch: set[str], action: str
) -> None:
    async with client(bad_gateway_then(ok()), secret_watch) as (oa, wechat):
        with pytest.raises(TransportError) as info:
            await getattr(oa.sessions, action)(KF, OPENID)
    assert info.value.maybe_applied is True
    assert info.value.status_code == 502
    assert len(wechat.requests) == 1


# --- get / list / waiting -----------------------------------------------------------------------


async def test_get_returns_the_session_with_an_aware_creation_time(secret_watch: set[str]) -> None:
    async with client(ok(kf_account=KF, createtime=T0), secret_watch) as (oa, wechat):
        session = await oa.sessions.get(OPENID)
    assert session == KfSession(KF, OPENID, utc(T0))
    assert session is not None
    assert session.created_at is not None
    assert session.created_at.tzinfo is timezone.utc
    assert wechat.seen == [("GET", "/customservice/kfsession/getsession", {"openid": OPENID}, None)]


@pytest.mark.parametrize("body", [{"kf_account": "", "createtime": 0}, {}, {"kf_account": None}])
async def test_get_returns_none_when_no_kf_account_serves_the_user(
    secret_watch: set[str], body: dict[str, Any]
) -> None:
    async with client(ok(**body), secret_watch) as (oa, _):
        assert await oa.sessions.get(OPENID) is None


async def test_list_returns_the_kf_accounts_sessions(secret_watch: set[str]) -> None:
    items = [{"openid": "o1", "createtime": T0}, {"openid": "o2", "createtime": str(T0 + 5)}]
    async with client(ok(sessionlist=items), secret_watch) as (oa, wechat):
        sessions = await oa.sessions.list(KF)
    assert sessions == [KfSession(KF, "o1", utc(T0)), KfSession(KF, "o2", utc(T0 + 5))]
    assert wechat.seen == [
        ("GET", "/customservice/kfsession/getsessionlist", {"kf_account": KF}, None)
    ]


async def test_list_of_a_kf_account_without_sessions_is_empty(secret_watch: set[str]) -> None:
    async with client(ok(), secret_watch) as (oa, _):
        assert await oa.sessions.list(KF) == []


async def test_waiting_returns_the_count_and_the_cases(secret_watch: set[str]) -> None:
    cases = [{"openid": "o1", "latest_time": T0}, {"openid": "o2", "latest_time": T0 + 9}]
    async with client(ok(count=150, waitcaselist=cases), secret_watch) as (oa, wechat):
        waiting = await oa.sessions.waiting()
    assert waiting == WaitingCases(
        150, [WaitingCase("o1", utc(T0)), WaitingCase("o2", utc(T0 + 9))]
    )
    assert wechat.seen == [("GET", "/customservice/kfsession/getwaitcase", {}, None)]


@pytest.mark.parametrize(
    ("call", "body"),
    [
        ("list", {"sessionlist": {"openid": "o1"}}),
        ("list", {"sessionlist": [{"createtime": T0}]}),
        ("waiting", {"count": "many", "waitcaselist": []}),
        ("waiting", {"count": 1, "waitcaselist": [{"latest_time": T0}]}),
        ("get", {"kf_account": KF, "createtime": "yesterday"}),
    ],
)
async def test_an_answer_of_another_shape_is_an_invalid_response(
    secret_watch: set[str], call: str, body: dict[str, Any]
) -> None:
    args = {"list": (KF,), "waiting": (), "get": (OPENID,)}[call]
    async with client(ok(**body), secret_watch) as (oa, _):
        with pytest.raises(InvalidResponseError):
            await getattr(oa.sessions, call)(*args)


@pytest.mark.parametrize(
    ("call", "args", "body"),
    [
        ("get", (OPENID,), {"kf_account": KF, "createtime": T0}),
        ("list", (KF,), {"sessionlist": []}),
        ("waiting", (), {"count": 0, "waitcaselist": []}),
    ],
)
async def test_reads_are_retried_after_a_lost_answer(
    secret_watch: set[str], call: str, args: tuple[str, ...], body: dict[str, Any]
) -> None:
    async with client(bad_gateway_then(ok(**body)), secret_watch) as (oa, wechat):
        await getattr(oa.sessions, call)(*args)
    assert len(wechat.requests) == 2


BAD_CALLS: list[tuple[str, str, tuple[Any, ...], type[Exception]]] = [
    ("empty openid", "create", (KF, ""), ValueError),
    ("spaced openid", "close", (KF, "o 1"), ValueError),
    ("openid with a newline", "get", ("o1\n",), ValueError),
    ("openid not str", "get", (42,), TypeError),
    ("openid not UTF-8", "create", (KF, "o\udc80"), ValueError),
    ("kf_account without at sign", "create", ("alice", OPENID), ValueError),
    ("kf_account prefix too long", "close", ("abcdefghijk@gh", OPENID), ValueError),
    ("kf_account not str", "list", (None,), TypeError),
]


@pytest.mark.parametrize(
    ("call", "args", "exc"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_arguments_raise_before_any_request(
    secret_watch: set[str], call: str, args: tuple[Any, ...], exc: type[Exception]
) -> None:
    async with client(ok(), secret_watch) as (oa, wechat):
        with pytest.raises(exc):
            await getattr(oa.sessions, call)(*args)
    assert wechat.requests == []


# --- records ------------------------------------------------------------------------------------


def record(i: int, time: int) -> dict[str, Any]:
    return {"openid": f"o{i % 7}", "opercode": 2002 + i % 2, "text": f"m{i}", "time": time,
            "worker": KF}  # fmt: skip


class RecordServer:
    """getmsglist over ``records`` (dicts with a ``time``): filters by [starttime, endtime]
    (``inclusive_end=False``: [starttime, endtime)), pages them, and hands out opaque next msgids
    (``issued``; strings when ``strings``) that are neither the last id + 1 nor msgid + number,
    so a client computing them would fail: an unknown msgid is 65416, as WeChat answers."""

    def __init__(
        self, records: list[dict[str, Any]], *, inclusive_end: bool = True, strings: bool = False
    ) -> None:
        self.records = records
        self.inclusive_end = inclusive_end
        self.strings = strings
        self.cursors: dict[Any, int] = {1: 0}
        self.issued: list[Any] = []
        self.windows: list[tuple[int, int]] = []

    def __call__(self, request: httpx.Request) -> dict[str, Any]:
        ask = json.loads(request.content)
        start, end, number, msgid = ask["starttime"], ask["endtime"], ask["number"], ask["msgid"]
        if end - start > DAY:
            return {"errcode": 65417, "errmsg": "over 24 hours"}
        if msgid not in self.cursors:
            return {"errcode": 65416, "errmsg": f"param invalid: msgid {msgid!r}"}
        if msgid == 1:
            self.windows.append((start, end))
        offset = self.cursors[msgid]
        chosen = [r for r in self.records if start <= r["time"] < end or (
                  self.inclusive_end and r["time"] == end)]  # fmt: skip
        page = chosen[offset : offset + number]
        n = len(self.issued)
        opaque = f"cursor-{n * 7919 % 1000}" if self.strings else 9_000_000 + 37 * n
        self.issued.append(opaque)
        self.cursors[opaque] = offset + len(page)
        return {"errcode": 0, "recordlist": page, "number": len(page), "msgid": opaque}


async def collect(records: MessageRecords) -> list[MessageRecord]:
    with anyio.fail_after(20):
        return [r async for r in records]


async def test_a_60_hour_span_is_read_in_windows_of_24_24_and_12_hours(
    secret_watch: set[str],
) -> None:
    server = RecordServer([])
    async with client(server, secret_watch) as (oa, wechat):
        assert await collect(oa.sessions.records(utc(T0), utc(T0 + 60 * 3600))) == []
    assert [body for *_, body in wechat.seen] == [
        {"starttime": T0, "endtime": T0 + DAY, "msgid": 1, "number": 10_000},
        {"starttime": T0 + DAY, "endtime": T0 + 2 * DAY, "msgid": 1, "number": 10_000},
        {"starttime": T0 + 2 * DAY, "endtime": T0 + 60 * 3600, "msgid": 1, "number": 10_000},
    ]
    assert {(m, p) for m, p, *_ in wechat.seen} == {("POST", RECORDS)}


@pytest.mark.parametrize("strings", [False, True], ids=["int msgid", "str msgid"])
async def test_25000_records_come_in_pages_of_10000_passing_back_the_servers_msgid(
    secret_watch: set[str], strings: bool
) -> None:
    server = RecordServer([record(i, T0 + i // 10) for i in range(25_000)], strings=strings)
    async with client(server, secret_watch) as (oa, wechat):
        records = await collect(oa.sessions.records(T0, T0 + 3600))
    assert [r.text for r in records] == [f"m{i}" for i in range(25_000)]
    assert [body for *_, body in wechat.seen] == [
        {"starttime": T0, "endtime": T0 + 3600, "msgid": msgid, "number": 10_000}
        for msgid in [1, *server.issued[:2]]
    ]
    assert records[1] == MessageRecord("o1", 2003, "m1", utc(T0), KF)
    assert all(r.time.tzinfo is timezone.utc for r in records)


async def test_records_are_typed_from_numbers_sent_as_strings(secret_watch: set[str]) -> None:
    item = {"openid": "o1", "opercode": "2002", "text": "hi", "time": str(T0 + 1), "worker": KF}
    async with client(ok(recordlist=[item], number=1, msgid=2), secret_watch) as (oa, _):
        (only,) = await collect(oa.sessions.records(T0, T0 + 10))
    assert only == MessageRecord("o1", 2002, "hi", utc(T0 + 1), KF)
    assert isinstance(only.opercode, int)


async def test_breaking_out_early_stops_fetching_and_closes_cleanly(
    secret_watch: set[str],
) -> None:
    server = RecordServer([record(i, T0 + 1) for i in range(25_000)])
    async with client(server, secret_watch) as (oa, wechat):
        records = oa.sessions.records(T0, T0 + 3 * DAY)
        with anyio.fail_after(10):
            async for got in records:
                if got.text == "m2":
                    break
            await records.aclose()
            assert [r async for r in records] == []
            async with oa.sessions.records(T0, T0 + 3 * DAY) as again:
                async for _ in again:
                    break
            assert [r async for r in again] == []
    assert len(wechat.requests) == 2  # one page for each iterator, nothing fetched after


async def test_a_server_repeating_the_same_msgid_is_refused_not_looped_on(
    secret_watch: set[str],
) -> None:
    full = [record(i, T0) for i in range(10)]
    answer = ok(recordlist=full, number=10, msgid=5)
    async with client(answer, secret_watch) as (oa, wechat):
        with pytest.raises(InvalidResponseError, match="msgid 5 again"):
            await collect(oa.sessions.records(T0, T0 + 60, page_size=10))
    assert [body["msgid"] for *_, body in wechat.seen] == [1, 5]


async def test_a_server_answering_full_pages_forever_is_cut_off(secret_watch: set[str]) -> None:
    pages = 0

    def endless(request: httpx.Request) -> dict[str, Any]:
        nonlocal pages
        pages += 1
        return {"errcode": 0, "recordlist": [record(pages, T0)], "number": 1, "msgid": pages + 1}

    async with client(endless, secret_watch) as (oa, _):
        with pytest.raises(InvalidResponseError, match="full pages"):
            await collect(oa.sessions.records(T0, T0 + 60, page_size=1))
    assert pages == 1000


async def test_a_full_page_without_a_next_msgid_is_an_invalid_response(
    secret_watch: set[str],
) -> None:
    async with client(ok(recordlist=[record(0, T0)], number=1), secret_watch) as (oa, _):
        with pytest.raises(InvalidResponseError, match="without the msgid"):
            await collect(oa.sessions.records(T0, T0 + 60, page_size=1))


@pytest.mark.parametrize("inclusive_end", [True, False], ids=["end included", "end excluded"])
async def test_a_record_at_the_second_two_windows_share_is_yielded_once(
    secret_watch: set[str], inclusive_end: bool
) -> None:
    times = [T0, T0 + DAY - 1, T0 + DAY, T0 + DAY, T0 + DAY + 1, T0 + 2 * DAY]
    rows = [record(i, t) for i, t in enumerate(times)]
    rows[3] = {**rows[2]}  # two identical records in the shared second: both kept
    server = RecordServer(rows, inclusive_end=inclusive_end)
    async with client(server, secret_watch) as (oa, _):
        got = await collect(oa.sessions.records(T0, T0 + 2 * DAY))
    expected = rows if inclusive_end else rows[:-1]  # the span's own end, as the server says
    assert [r.text for r in got] == [row["text"] for row in expected]
    assert server.windows == [(T0, T0 + DAY), (T0 + DAY, T0 + 2 * DAY)]


async def test_fractional_datetimes_ask_for_the_whole_seconds_between_them(
    secret_watch: set[str],
) -> None:
    start = utc(T0) + timedelta(microseconds=1)
    end = utc(T0 + 90).astimezone(timezone(timedelta(hours=8))) + timedelta(milliseconds=999)
    async with client(ok(recordlist=[]), secret_watch) as (oa, wechat):
        await collect(oa.sessions.records(start, end))
    assert [(b["starttime"], b["endtime"]) for *_, b in wechat.seen] == [(T0 + 1, T0 + 90)]


async def test_float_seconds_as_time_time_gives_ask_for_the_whole_seconds_between_them(
    secret_watch: set[str],
) -> None:
    async with client(ok(recordlist=[]), secret_watch) as (oa, wechat):
        await collect(oa.sessions.records(T0 + 0.25, T0 + 90.75))
    assert [(b["starttime"], b["endtime"]) for *_, b in wechat.seen] == [(T0 + 1, T0 + 90)]


async def test_a_record_without_a_worker_has_none(secret_watch: set[str]) -> None:
    row = {**record(0, T0), "worker": ""}
    async with client(ok(recordlist=[row], number=1), secret_watch) as (oa, _):
        (got,) = await collect(oa.sessions.records(T0, T0 + 60, page_size=2))
    assert got.worker is None


async def test_a_span_inside_one_second_asks_for_nothing(secret_watch: set[str]) -> None:
    start = utc(T0) + timedelta(milliseconds=100)
    async with client(ok(), secret_watch) as (oa, wechat):
        assert await collect(oa.sessions.records(start, start + timedelta(milliseconds=5))) == []
    assert wechat.requests == []


@pytest.mark.parametrize("errcode", [65416, 65417])
async def test_record_refusals_raise_kf_session_error_and_end_the_iteration(
    secret_watch: set[str], errcode: int
) -> None:
    async with client(failing(errcode), secret_watch) as (oa, wechat):
        records = oa.sessions.records(T0, T0 + 60)
        with pytest.raises(KfSessionError) as info:
            await collect(records)
        assert await collect(records) == []
    assert info.value.errcode == errcode
    assert len(wechat.requests) == 1


async def test_record_pages_are_retried_after_a_lost_answer(secret_watch: set[str]) -> None:
    answer = bad_gateway_then(ok(recordlist=[record(0, T0)], number=1))
    async with client(answer, secret_watch) as (oa, wechat):
        assert [r.text for r in await collect(oa.sessions.records(T0, T0 + 60))] == ["m0"]
    assert len(wechat.requests) == 2
    assert wechat.seen[0] == wechat.seen[1]


async def test_one_records_iterator_is_read_by_one_task_at_a_time(secret_watch: set[str]) -> None:
    arrived, release = anyio.Event(), anyio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await release.wait()
        return httpx.Response(200, json={"errcode": 0, "recordlist": [record(0, T0)]})

    async with client(held, secret_watch) as (oa, _):
        records = oa.sessions.records(T0, T0 + 60)
        got: list[MessageRecord] = []

        async def read() -> None:
            got.extend(await collect(records))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read)
                await arrived.wait()
                with pytest.raises(RuntimeError, match="another task"):
                    await records.__anext__()
                release.set()
    assert [r.text for r in got] == ["m0"]


BAD_SPANS: list[tuple[str, Any, Any, dict[str, Any], type[Exception]]] = [
    ("naive start", datetime(2024, 1, 1), utc(T0), {}, ValueError),
    ("naive end", utc(T0), datetime(2030, 1, 1), {}, ValueError),
    ("end equal to start", T0, T0, {}, ValueError),
    ("end before start", utc(T0 + 5), utc(T0), {}, ValueError),
    ("infinite seconds", float("inf"), T0 + 5, {}, ValueError),
    ("nan seconds", T0, float("nan"), {}, ValueError),
    ("bool", True, T0, {}, TypeError),
    ("string", "2024-01-01", T0, {}, TypeError),
    ("milliseconds", T0, T0 * 1000, {}, ValueError),
    ("before 1970", -5, T0, {}, ValueError),
    ("page_size 0", T0, T0 + 5, {"page_size": 0}, ValueError),
    ("page_size 10001", T0, T0 + 5, {"page_size": 10_001}, ValueError),
    ("page_size bool", T0, T0 + 5, {"page_size": True}, TypeError),
    ("end at datetime.max", utc(T0), datetime.max.replace(tzinfo=timezone.utc), {}, ValueError),
    ("end two days ahead", NOW, NOW + 2 * DAY, {}, ValueError),
    ("span of 366 days and a second", T0, T0 + 366 * DAY + 1, {}, ValueError),
    ("span of 30 years", 0, T0, {}, ValueError),
]


@pytest.mark.parametrize(
    ("start", "end", "kwargs", "exc"), [c[1:] for c in BAD_SPANS], ids=[c[0] for c in BAD_SPANS]
)
async def test_bad_spans_raise_when_records_is_called_before_any_request(
    secret_watch: set[str], start: Any, end: Any, kwargs: dict[str, Any], exc: type[Exception]
) -> None:
    async with client(ok(), secret_watch) as (oa, wechat):
        with pytest.raises(exc):
            oa.sessions.records(start, end, **kwargs)
    assert wechat.requests == []


async def test_an_end_up_to_a_day_ahead_and_a_span_of_366_days_are_read(
    secret_watch: set[str],
) -> None:
    async with client(ok(recordlist=[]), secret_watch) as (oa, wechat):
        ahead = datetime.now(timezone.utc) + timedelta(hours=23)
        await collect(oa.sessions.records(ahead - timedelta(hours=30), ahead))
        assert len(wechat.requests) == 2
        await collect(oa.sessions.records(T0, T0 + 366 * DAY))
    windows = [(b["starttime"], b["endtime"]) for *_, b in wechat.seen[2:]]
    assert len(windows) == 366
    assert (windows[0][0], windows[-1][1]) == (T0, T0 + 366 * DAY)


async def test_records_dated_outside_the_window_asked_for_are_left_out(
    secret_watch: set[str],
) -> None:
    def at(seconds: int) -> dict[str, Any]:
        return {"openid": "o1", "opercode": 2003, "text": f"at {seconds - T0}", "time": seconds,
                "worker": KF}  # fmt: skip

    def answer(request: httpx.Request) -> dict[str, Any]:
        ask = json.loads(request.content)
        start, end = ask["starttime"], ask["endtime"]
        rows = [
            at(start - 1),  # before the window: before the span, or the window before's
            at(start),
            at(start + 10),
            at(end),
            at(end + 1),  # after it: the next window's, or past the span
            at(5),  # 1970
            at(NOW + 400 * DAY),
        ]
        return {"errcode": 0, "recordlist": rows, "number": len(rows), "msgid": 9}

    async with client(answer, secret_watch) as (oa, wechat):
        got = await collect(oa.sessions.records(T0, T0 + DAY + 60))
    assert [r.text for r in got] == [
        "at 0",
        "at 10",
        f"at {DAY}",  # the second both windows share, sent by both, yielded once
        f"at {DAY + 10}",
        f"at {DAY + 60}",
    ]
    assert len(wechat.requests) == 2


@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
@pytest.mark.parametrize("inclusive_end", [True, False], ids=["end included", "end excluded"])
async def test_72_hours_are_read_in_3_windows_with_every_record_once_across_pages_and_boundaries(
    secret_watch: set[str], inclusive_end: bool, page_size: int
) -> None:
    end = T0 + 3 * DAY
    # Each window's first and last second (the shared ones, T0 + DAY and T0 + 2 * DAY, are the
    # last of one window and the first of the next), the seconds next to them, and the middle;
    # several records in a second, so that pages break inside it.
    seconds = {T0: 3, T0 + 1: 1, T0 + DAY // 2: 2, T0 + DAY - 1: 2, T0 + DAY: 5, T0 + DAY + 1: 1}
    seconds |= {T0 + 2 * DAY - 1: 1, T0 + 2 * DAY: 4, T0 + 2 * DAY + 1: 2, end - 1: 3, end: 2}
    times = [t for t, n in sorted(seconds.items()) for _ in range(n)]
    rows = [record(i, t) for i, t in enumerate(times)]
    for shared in (T0 + DAY, T0 + 2 * DAY):  # two identical records there: both kept, once each
        first = times.index(shared)
        rows.insert(first + 1, dict(rows[first]))
        times.insert(first + 1, shared)
    server = RecordServer(rows, inclusive_end=inclusive_end)
    async with client(server, secret_watch) as (oa, wechat):
        got = await collect(oa.sessions.records(T0, end, page_size=page_size))
    expected = [r for r in rows if inclusive_end or r["time"] != end]  # as the server counts end
    assert [(r.text, int(r.time.timestamp())) for r in got] == [
        (r["text"], r["time"]) for r in expected
    ]
    assert len(got) == len(expected) == len(rows) - (0 if inclusive_end else 2)
    assert server.windows == [(T0, T0 + DAY), (T0 + DAY, T0 + 2 * DAY), (T0 + 2 * DAY, end)]
    assert all(b["endtime"] - b["starttime"] <= DAY for *_, b in wechat.seen)
    starts = [b["starttime"] for *_, b in wechat.seen]
    assert max(starts.count(start) for start, _ in server.windows) > 1  # pages in a window
