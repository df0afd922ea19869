"""OfficialAccountSessions: an Official Account's customer-service sessions, its waiting queue and
its chat records (``MessageRecords``, read over any span in 24-hour windows)."""

from __future__ import annotations

import builtins
import math
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from .. import _validate
from .._serde import as_int, structure_list
from .._transport import Transport
from ..errors import InvalidResponseError
from ..models import KfSession, MessageRecord, WaitingCase, WaitingCases

__all__ = [
    "MAX_PAGES_PER_WINDOW",
    "MAX_RECORD_END_AHEAD",
    "MAX_RECORD_PAGE_SIZE",
    "MAX_RECORD_SPAN",
    "MAX_RECORD_WINDOW",
    "MessageRecords",
    "OfficialAccountSessions",
]

#: The most records ``msgrecord/getmsglist`` returns in one page (its ``number``).
MAX_RECORD_PAGE_SIZE = 10_000
#: The longest span one ``getmsglist`` request may cover, in seconds: WeChat refuses more than
#: 24 hours with 65417, so every window keeps ``endtime - starttime <= 86400``.
MAX_RECORD_WINDOW = 86_400
#: Full pages one window may return before the server is taken to be answering forever (10
#: million records a day at the default page size, far beyond any account's traffic).
MAX_PAGES_PER_WINDOW = 1_000
#: The longest span ``records(start, end)`` reads, in seconds: 366 days. WeChat does not say
#: how long it keeps chat records; a year (a leap one included) is more than an account asks
#: for in one go, and at most 367 windows, where a mistaken span (a year typed wrong) would
#: otherwise be thousands of requests. Read a longer history as several spans.
MAX_RECORD_SPAN = 366 * 86_400
#: How far past now (this machine's clock) ``end`` may lie, in seconds: a day, room for a
#: skewed clock or a time zone taken wrong; records cannot come from further ahead, and an end
#: such as ``datetime.max`` would otherwise be millions of requests.
MAX_RECORD_END_AHEAD = 86_400

_RECORDS_PATH = "/customservice/msgrecord/getmsglist"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# 9999-12-31T23:59:59Z: a larger int is almost surely milliseconds passed as seconds, which would
# otherwise turn into millions of 24-hour requests.
_MAX_UNIX_SECONDS = 253_402_300_799


class OfficialAccountSessions:
    """The customer-service sessions of one Official Account (``client.sessions``): open one
    between a kf account and a user, close it, see who serves a user, list a kf account's
    sessions, read the waiting queue and iterate the chat records of any span. Arguments are
    checked before a request is sent; WeChat's refusals raise ``KfSessionError`` (65413..65417)
    or another ``APIError``. ``create`` and ``close`` are never sent twice once they may have
    applied (a lost answer raises ``TransportError(maybe_applied=True)``); every read is
    retried."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def create(self, kf_account: str, openid: str) -> None:
        """Have ``kf_account`` (``prefix@wechat_id``) serve the user ``openid`` now (65414: another
        kf account serves them; 65415: the kf account is offline)."""
        payload = {
            "kf_account": _validate.kf_account(kf_account),
            "openid": _validate.token_like("openid", openid),
        }
        await self._transport.request("POST", "/customservice/kfsession/create", json=payload)

    async def close(self, kf_account: str, openid: str) -> None:
        """End the session of ``kf_account`` with the user ``openid`` (65413: there is none)."""
        payload = {
            "kf_account": _validate.kf_account(kf_account),
            "openid": _validate.token_like("openid", openid),
        }
        await self._transport.request("POST", "/customservice/kfsession/close", json=payload)

    async def get(self, openid: str) -> KfSession | None:
        """The session serving the user ``openid``, or None when no kf account serves them
        (WeChat answers an empty or absent ``kf_account``)."""
        openid = _validate.token_like("openid", openid)
        path = "/customservice/kfsession/getsession"
        body = await self._transport.request("GET", path, params={"openid": openid})
        if body.get("kf_account") in (None, ""):
            return None
        item = {
            "kf_account": body["kf_account"],
            "openid": openid,
            "created_at": body.get("createtime"),
        }
        return structure_list({"session": [item]}, "session", KfSession, path=path)[0]

    async def list(self, kf_account: str) -> builtins.list[KfSession]:
        """The sessions ``kf_account`` is serving now, as WeChat lists them."""
        kf_account = _validate.kf_account(kf_account)
        path = "/customservice/kfsession/getsessionlist"
        body = await self._transport.request("GET", path, params={"kf_account": kf_account})
        items = [
            {
                "kf_account": kf_account,
                "openid": item.get("openid"),
                "created_at": item.get("createtime"),
            }
            for item in _objects(body, "sessionlist", path)
        ]
        return structure_list({"sessionlist": items}, "sessionlist", KfSession, path=path)

    async def waiting(self) -> WaitingCases:
        """The users waiting for a kf account: how many (``count``) and the 100 who have waited
        longest (``cases``, with the time of each one's latest message)."""
        path = "/customservice/kfsession/getwaitcase"
        body = await self._transport.request("GET", path)
        cases = structure_list(body, "waitcaselist", WaitingCase, path=path)
        if body.get("count") is None:
            return WaitingCases(len(cases), cases)
        count = as_int(body["count"])
        if count is None or count < 0:
            raise InvalidResponseError("'count' is not a non-negative integer", path=path)
        return WaitingCases(count, cases)

    def records(
        self,
        start: datetime | float,
        end: datetime | float,
        *,
        page_size: int = MAX_RECORD_PAGE_SIZE,
    ) -> MessageRecords:
        """The chat records whose time falls between ``start`` and ``end``, as an async
        iterator: ``async for record in oa.sessions.records(start, end)``. Each bound is an
        aware datetime or unix seconds (an int, or a float such as ``time.time()``; a naive
        datetime or milliseconds are refused); records carry whole seconds, so a fractional
        ``start`` is rounded up and a fractional ``end`` down. ``end`` must be after
        ``start``, at most a day past now
        (:data:`MAX_RECORD_END_AHEAD`: an ``end`` further ahead is refused with ``ValueError``,
        not cut back to now) and at most 366 days after ``start`` (:data:`MAX_RECORD_SPAN`;
        read a longer history as several spans). Whether WeChat counts the records at exactly
        ``start`` and ``end`` is undocumented; a record it sends dated outside the span (or
        outside the 24-hour window it was asked for) is left out. Any span is read in windows
        of at most 24 hours, each in pages of ``page_size`` (1..10,000) records; arguments are
        checked here, before anything is sent. See :class:`MessageRecords`."""
        first = _unix_seconds("start", start, round_up=True)
        last = _unix_seconds("end", end, round_up=False)
        if _instant(end) <= _instant(start):
            raise ValueError(f"end ({end!r}) must be after start ({start!r})")
        latest = int(time.time()) + MAX_RECORD_END_AHEAD
        if last > latest:
            raise ValueError(
                f"end ({end!r}) lies more than a day in the future: records cannot come from "
                "there (pass now, or a time before it)"
            )
        if last - first > MAX_RECORD_SPAN:
            raise ValueError(
                f"the span from start ({start!r}) to end ({end!r}) is longer than 366 days: "
                "read a longer history as several spans"
            )
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError(f"page_size must be an int, not {type(page_size).__name__}")
        if not 1 <= page_size <= MAX_RECORD_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_RECORD_PAGE_SIZE}, got {page_size}")
        return MessageRecords(self._transport, first, last, page_size)


class MessageRecords:
    """An async iterator over an Official Account's chat records (``MessageRecord``, time aware
    UTC), made by ``sessions.records(start, end)``. It cuts the span into consecutive windows of
    at most 24 hours (``endtime - starttime <= 86400``, WeChat's limit; 60 hours are read as 24,
    24 and 12) and reads each window with ``msgrecord/getmsglist`` from msgid 1, passing back
    the msgid each answer gives, unchanged, until a page holds fewer than ``page_size`` records.
    Reads are retried like every read. A record at the very second where two windows meet is
    yielded once, whether WeChat counts that second in one window or in both; a record dated
    outside the window it came in (so outside the span) is left out. A server that
    hands back a msgid already used in the window, or full pages past 1,000, raises
    ``InvalidResponseError`` instead of looping. Pages are fetched only as the caller iterates,
    and nothing is left running between two records, so breaking out early is safe; ``aclose()``
    (or ``async with``) ends it for good. Like an async generator it is finished once it has
    raised, and it may be iterated by one task at a time."""

    def __init__(self, transport: Transport, first: int, last: int, page_size: int) -> None:
        self._transport = transport
        self._page_size = page_size
        self._end = last
        # The window being read: its start, and the msgid of its next page (None: not begun).
        self._window_start = first
        self._msgid: int | str | None = None
        self._used: set[int | str] = set()
        self._pages = 0
        # Records at the second shared with the previous window (to yield once), and those of
        # this window at the second it shares with the next one.
        self._shared_before: Counter[MessageRecord] = Counter()
        self._shared_after: Counter[MessageRecord] = Counter()
        self._ready: deque[MessageRecord] = deque()
        self._done = first > last  # a span within one second holds no whole second
        self._busy = False

    def __aiter__(self) -> MessageRecords:
        return self

    async def __anext__(self) -> MessageRecord:
        if self._busy:
            raise RuntimeError("these message records are already being read by another task")
        self._busy = True
        try:
            while not self._ready:
                if self._done:
                    raise StopAsyncIteration
                await self._read_page()
            return self._ready.popleft()
        except BaseException:
            self._finish()
            raise
        finally:
            self._busy = False

    async def aclose(self) -> None:
        """Stop reading: nothing more is fetched and the iteration ends."""
        self._finish()

    async def __aenter__(self) -> MessageRecords:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"MessageRecords(window_start={self._window_start}, end={self._end}, "
            f"page_size={self._page_size}, done={self._done})"
        )

    def _finish(self) -> None:
        self._done = True
        self._ready.clear()

    async def _read_page(self) -> None:
        if self._msgid is None:
            self._msgid, self._pages = 1, 0
            self._used = {1}
        window_end = min(self._window_start + MAX_RECORD_WINDOW, self._end)
        payload = {
            "starttime": self._window_start,
            "endtime": window_end,
            "msgid": self._msgid,
            "number": self._page_size,
        }
        body = await self._transport.request("POST", _RECORDS_PATH, json=payload, idempotent=True)
        if self._done:  # closed by another task while this page was on its way
            return
        records = structure_list(body, "recordlist", MessageRecord, path=_RECORDS_PATH)
        self._pages += 1
        self._keep(records, window_end)
        if len(records) < self._page_size:
            self._next_window(window_end)
        else:
            self._msgid = self._next_msgid(body)

    def _keep(self, records: builtins.list[MessageRecord], window_end: int) -> None:
        """Queue the page's records, leaving out those dated outside the window asked for (a
        server's mistake must not show records of another span, nor one twice across windows)
        and a record already yielded at the end of the previous window: WeChat does not say
        whether ``endtime`` and ``starttime`` are included, so the second two windows share may
        come back in both."""
        shared_second = _at(self._window_start)
        last_second = _at(window_end)
        for record in records:
            if not shared_second <= record.time <= last_second:
                continue
            if record.time == shared_second and self._shared_before[record] > 0:
                self._shared_before[record] -= 1
                continue
            if record.time == last_second:
                self._shared_after[record] += 1
            self._ready.append(record)

    def _next_window(self, window_end: int) -> None:
        if window_end >= self._end:
            self._done = True
            return
        self._window_start, self._msgid = window_end, None
        self._shared_before, self._shared_after = self._shared_after, Counter()

    def _next_msgid(self, body: Mapping[str, Any]) -> int | str:
        msgid = body.get("msgid")
        if isinstance(msgid, bool) or not isinstance(msgid, (int, str)) or msgid == "":
            raise InvalidResponseError(
                "a full page of records came without the msgid of the next page",
                path=_RECORDS_PATH,
            )
        if msgid in self._used:
            raise InvalidResponseError(
                f"the server sent msgid {msgid!r} again in the same window: paging would loop",
                path=_RECORDS_PATH,
            )
        if self._pages >= MAX_PAGES_PER_WINDOW:
            raise InvalidResponseError(
                f"the server kept answering full pages ({MAX_PAGES_PER_WINDOW} in one 24-hour "
                "window): stopped rather than read forever",
                path=_RECORDS_PATH,
            )
        self._used.add(msgid)
        return msgid


def _objects(body: Mapping[str, Any], key: str, path: str) -> builtins.list[Mapping[str, Any]]:
    items = body.get(key)
    if items is None:
        return []
    if not isinstance(items, builtins.list) or not all(isinstance(i, Mapping) for i in items):
        raise InvalidResponseError(f"{key!r} is not a list of objects", path=path)
    return items


def _instant(value: datetime | float) -> int:
    """``value`` (already checked) in microseconds since the epoch (a float's to the
    microsecond)."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MICROSECOND
    if isinstance(value, float):
        return round(value * 1_000_000)
    return value * 1_000_000


def _unix_seconds(name: str, value: object, *, round_up: bool) -> int:
    """The whole second WeChat is asked for: records carry whole seconds, so a fractional
    ``start`` is rounded up and a fractional ``end`` down, and exactly the records between the
    two instants are asked for."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{name} must be an aware datetime (with a tzinfo), not the naive {value!r}"
            )
        micros = _instant(value)
        seconds = -(-micros // 1_000_000) if round_up else micros // 1_000_000
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, float):  # time.time(): as a datetime's fraction is
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number of unix seconds, got {value!r}")
        seconds = math.ceil(value) if round_up else math.floor(value)
    else:
        raise TypeError(
            f"{name} must be an aware datetime or unix seconds, not {type(value).__name__}"
        )
    if not 0 <= seconds <= _MAX_UNIX_SECONDS:
        raise ValueError(
            f"{name} must lie between 1970 and 9999 (unix seconds, not milliseconds), got {value!r}"
        )
    return seconds


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
