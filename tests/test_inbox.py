"""The inbox in one process, on FakeWeChat, on asyncio and trio: order per account and
concurrency across them, empty pages, redelivered messages skipped, the cursor stored only after
its page is done, a restart from the cursor, ``start="latest"``, a failing handler retried then
handed to on_failure, cancellation, a notify that never waits for a pull, 50 notifications
costing one more pull, replies never sent twice, 45009 without a token, polling, the callback
token's lifetime, a store that cannot be reached, hooks and OpenTelemetry, and the arguments."""

from __future__ import annotations

import logging
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import anyio
import attrs
import httpx
import pytest

from tests._redis import redis_client, redis_server
from wechat_kf import (
    APIError,
    ClientClosedError,
    Inbox,
    KfMessage,
    MemoryInboxStore,
    SentMessage,
    StaticTokenProvider,
    Text,
    TextMessage,
    TokenStoreError,
    WeComClient,
)
from wechat_kf.callbacks import KfMsgOrEvent
from wechat_kf.hooks import HandledMessage, InboxPull, LoggingHook
from wechat_kf.kf_messages import parse_message
from wechat_kf.stores import RedisInboxStore
from wechat_kf.testing import DUPLICATE_MSGID, FakeWeChat

pytestmark = pytest.mark.anyio

Corp = tuple[str, str, str]
SYNC = "/cgi-bin/kf/sync_msg"
CUSTOMER = "wmCUSTOMER000001"


@attrs.define
class Recorder:
    """A hook that keeps what the inbox reports."""

    pulls: list[InboxPull] = attrs.Factory(list)
    messages: list[HandledMessage] = attrs.Factory(list)

    def on_inbox_pull(self, pull: InboxPull) -> None:
        self.pulls.append(pull)

    def on_inbox_message(self, message: HandledMessage) -> None:
        self.messages.append(message)


@pytest.fixture
def hook() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(corp: Corp, http: httpx.AsyncClient, hook: Recorder) -> AsyncIterator[WeComClient]:
    async with WeComClient(corp[0], corp[1], http_client=http, hooks=[hook, LoggingHook()]) as wc:
        yield wc


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Any]:
    """Each store in turn, for the proofs that rest on what the store keeps."""
    if request.param == "memory":
        yield MemoryInboxStore()
        return
    client = redis_client(request.getfixturevalue("redis_url"), anyio_backend)
    yield RedisInboxStore(client, prefix=f"t{uuid.uuid4().hex[:8]}")
    await client.aclose()


@pytest.fixture
def kf(corp: Corp) -> str:
    return corp[2]


def news(fake: FakeWeChat, open_kfid: str) -> SimpleNamespace:
    """A notification as the callback route hands it over (duck-typed: open_kfid and token)."""
    return SimpleNamespace(open_kfid=open_kfid, token=fake.latest_sync_token(open_kfid))


async def until(predicate: Callable[[], bool], step: float = 0.005) -> None:
    """Wait for state that nothing signals (the fake's log, a handler's list); every caller is
    under ``anyio.fail_after``."""
    while not predicate():  # noqa: ASYNC110 - polled: no event reports these
        await anyio.sleep(step)


def sync_calls(fake: FakeWeChat) -> int:
    return len(fake.calls_to(SYNC))


class Collect:
    """A handler that keeps the texts it was given (and may wait on a gate first)."""

    def __init__(self, gate: anyio.Event | None = None) -> None:
        self.texts: list[str] = []
        self.gate = gate
        self.entered = 0

    async def __call__(self, message: KfMessage) -> None:
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        assert isinstance(message, TextMessage)
        self.texts.append(message.content)


# -- order, pages, duplicates, cursor ------------------------------------------------------------


async def test_each_account_gets_its_messages_one_at_a_time_in_order_and_accounts_run_together(
    fake: FakeWeChat, client: WeComClient, corp: Corp
) -> None:
    accounts = [corp[2], fake.create_kf_account(corp[0]), fake.create_kf_account(corp[0])]
    seen: dict[str, list[str]] = {k: [] for k in accounts}
    busy: dict[str, int] = dict.fromkeys(accounts, 0)
    overlap = {"accounts": 0, "most": 0, "per_account": 0}

    async def handle(message: KfMessage) -> None:
        assert isinstance(message, TextMessage)
        assert message.open_kfid is not None
        busy[message.open_kfid] += 1
        overlap["per_account"] = max(overlap["per_account"], busy[message.open_kfid])
        running = sum(1 for v in busy.values() if v)
        overlap["most"] = max(overlap["most"], running)
        await anyio.sleep(0.002)
        seen[message.open_kfid].append(message.content)
        busy[message.open_kfid] -= 1

    for i in range(20):
        for k in accounts:
            fake.customer_says(k, CUSTOMER, f"{k[-4:]}-{i}")
    with anyio.fail_after(20):
        async with Inbox(client, handle, max_concurrency=2) as inbox:
            for k in accounts:
                await inbox.notify(news(fake, k))
            await until(lambda: all(len(v) == 20 for v in seen.values()))
    assert seen == {k: [f"{k[-4:]}-{i}" for i in range(20)] for k in accounts}
    assert overlap["per_account"] == 1  # one at a time per account
    assert overlap["most"] == 2  # accounts concurrently, at most max_concurrency


async def test_empty_pages_with_has_more_are_followed_until_has_more_is_0(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder
) -> None:
    fake.empty_page_rate = 0.5
    for i in range(20):
        fake.customer_says(kf, CUSTOMER, f"m{i}")
    handler = Collect()
    with anyio.fail_after(20):
        async with Inbox(client, handler, limit=3) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: len(handler.texts) == 20)
            await until(lambda: bool(hook.pulls))
    assert handler.texts == [f"m{i}" for i in range(20)]
    pull = hook.pulls[0]
    assert pull.outcome == "ok"
    assert pull.messages == pull.handled == 20
    assert pull.pages > 7  # 7 full pages, and the empty ones between them
    assert pull.pages == sync_calls(fake)


async def test_a_message_marked_done_is_never_handed_over_again_whatever_cursor_presents_it(
    fake: FakeWeChat, client: WeComClient, kf: str, store: Any
) -> None:
    handler = Collect()
    with anyio.fail_after(10):
        before = (await client.messages.sync(kf)).next_cursor  # a cursor from before them
        for i in range(3):
            fake.customer_says(kf, CUSTOMER, f"m{i}")
        async with Inbox(client, handler, store=store) as inbox:
            await inbox.drain(kf)
            # An older cursor presents the same messages again (and a new one after them).
            start = await store.acquire(inbox.namespace, kf, "rewinder")
            assert start is not None
            assert await store.commit(inbox.namespace, kf, "rewinder", {}, before)
            await store.release(inbox.namespace, kf, "rewinder", None)
            fake.customer_says(kf, CUSTOMER, "m3")
            assert await inbox.drain(kf) == 1
    assert handler.texts == ["m0", "m1", "m2", "m3"]


async def test_the_cursor_moves_only_after_every_message_of_its_page_is_done(
    fake: FakeWeChat, client: WeComClient, kf: str, store: Any
) -> None:
    gate = anyio.Event()
    handler = Collect(gate)
    for i in range(3):
        fake.customer_says(kf, CUSTOMER, f"m{i}")
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: handler.entered == 1)
            assert await store.get_cursor(inbox.namespace, kf) is None
            gate.set()
            await until(lambda: len(handler.texts) == 3)
            await until(lambda: not inbox._accounts[kf].running)
            assert await store.get_cursor(inbox.namespace, kf) is not None
            assert await store.marked(inbox.namespace, kf, ["x"]) == set()


async def test_a_new_inbox_on_the_same_store_continues_from_the_stored_cursor(
    fake: FakeWeChat, client: WeComClient, kf: str, store: Any
) -> None:
    first, second = Collect(), Collect()
    fake.customer_says(kf, CUSTOMER, "before")
    with anyio.fail_after(10):
        async with Inbox(client, first, store=store) as inbox:
            assert await inbox.drain(kf) == 1
        fake.customer_says(kf, CUSTOMER, "after")
        async with Inbox(client, second, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: second.texts == ["after"])
            assert await inbox.drain(kf) == 0
    assert first.texts == ["before"]
    call = fake.calls_to(SYNC)[1]
    assert call.json is not None
    assert call.json.get("cursor")


async def test_start_latest_skips_the_backlog_without_calling_the_handler(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    for i in range(5):
        fake.customer_says(kf, CUSTOMER, f"old{i}")
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler, start="latest", limit=2) as inbox:
            assert await inbox.drain(kf) == 0
            fake.customer_says(kf, CUSTOMER, "new")
            await inbox.notify(news(fake, kf))
            await until(lambda: handler.texts == ["new"])
        # A store with a cursor ignores start: the earliest inbox continues from it too.
    assert handler.texts == ["new"]


async def test_start_latest_interrupted_mid_skip_still_hands_no_old_message_over(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    class SecondCommitFails(MemoryInboxStore):
        commits = 0

        async def commit(self, *args: Any) -> bool:
            self.commits += 1
            if self.commits == 2:  # mid-skip, had the skip committed page by page
                raise TokenStoreError("Redis unreachable: ConnectionError")
            return await super().commit(*args)

    for i in range(7):
        fake.customer_says(kf, CUSTOMER, f"old{i}")
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(
            client, handler, store=SecondCommitFails(), start="latest", limit=2
        ) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: not inbox._accounts[kf].running)
            assert await inbox.drain(kf) == 0
            fake.customer_says(kf, CUSTOMER, "new")
            assert await inbox.drain(kf) == 1
    assert handler.texts == ["new"]


async def test_a_mark_the_store_failed_to_take_is_written_again_and_never_handled_twice(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder
) -> None:
    class MarksFail(MemoryInboxStore):
        failures = 0

        async def commit(
            self, namespace: str, open_kfid: str, owner: str, marks: Any, cursor: Any
        ) -> bool:
            if marks and self.failures:
                self.failures -= 1
                raise TokenStoreError("Redis did not answer within 2 s")
            return await super().commit(namespace, open_kfid, owner, marks, cursor)

    store = MarksFail()
    handler = Collect()
    for i in range(3):
        fake.customer_says(kf, CUSTOMER, f"m{i}")
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            store.failures = 1  # a hiccup: the next commit succeeds
            assert await inbox.drain(kf) == 3
            last = fake.customer_says(kf, CUSTOMER, "m3")
            store.failures = 100  # an outage: the pull fails, is retried, and writes it first
            await inbox.notify(news(fake, kf))
            await until(lambda: handler.texts[-1:] == ["m3"])
            await until(lambda: any(p.outcome == "failed" for p in hook.pulls))
            store.failures = 0
            await inbox.notify(news(fake, kf))
            await until(lambda: not inbox._engine.unwritten)
            assert await inbox.drain(kf) == 0
            assert await store.marked(inbox.namespace, kf, [last]) == {last}
    assert handler.texts == ["m0", "m1", "m2", "m3"]


# -- failures, cancellation ----------------------------------------------------------------------


async def test_a_failing_handler_is_retried_then_given_to_on_failure_and_the_inbox_goes_on(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder, store: Any
) -> None:
    attempts: dict[str, int] = {}
    failures: list[tuple[str, str]] = []

    async def handle(message: KfMessage) -> None:
        assert isinstance(message, TextMessage)
        attempts[message.content] = attempts.get(message.content, 0) + 1
        if message.content == "bad" or (message.content == "flaky" and attempts["flaky"] < 2):
            raise RuntimeError("secret customer text")

    def on_failure(message: KfMessage, error: Exception) -> None:  # a plain function
        assert isinstance(message, TextMessage)
        failures.append((message.content, type(error).__name__))

    bad = fake.customer_says(kf, CUSTOMER, "bad")
    fake.customer_says(kf, CUSTOMER, "flaky")
    fake.customer_says(kf, CUSTOMER, "good")
    with anyio.fail_after(10):
        async with Inbox(client, handle, store=store, on_failure=on_failure) as inbox:
            assert await inbox.drain(kf) == 3
            assert await store.marked(inbox.namespace, kf, [bad]) == {bad}
            assert await inbox.drain(kf) == 0  # a failed message is marked: not handed again
    assert attempts == {"bad": 3, "flaky": 2, "good": 1}
    assert failures == [("bad", "RuntimeError")]
    outcomes = [(m.outcome, m.attempts) for m in hook.messages]
    assert outcomes == [("failed", 3), ("done", 2), ("done", 1)]
    assert hook.messages[0].error == "RuntimeError"


async def test_the_default_on_failure_logs_an_error_without_the_message_or_the_error_text(
    fake: FakeWeChat, client: WeComClient, kf: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handle(message: KfMessage) -> None:
        raise ValueError("the customer's address")

    msgid = fake.customer_says(kf, CUSTOMER, "my address is ...")
    with anyio.fail_after(10):
        async with Inbox(client, handle, max_attempts=2) as inbox:
            assert await inbox.drain(kf) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert msgid in errors[0]
    assert "ValueError" in errors[0]
    assert "2 times" in errors[0]
    assert "address" not in errors[0]


async def test_an_async_on_failure_that_raises_is_logged_and_the_message_still_marked_failed(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    async def handle(message: KfMessage) -> None:
        raise RuntimeError

    async def on_failure(message: KfMessage, error: Exception) -> None:
        raise KeyError("oops")

    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        async with Inbox(client, handle, on_failure=on_failure, max_attempts=1) as inbox:
            assert await inbox.drain(kf) == 1
            assert await inbox.drain(kf) == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "how", ["raises CancelledError", "cancels its own task", "cancels its own task and returns"]
)
async def test_a_handler_that_cancels_itself_fails_like_any_error_and_the_body_goes_on(
    fake: FakeWeChat, client: WeComClient, kf: str, how: str
) -> None:
    import asyncio

    if how.endswith("returns") and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 runs the handler in a task of its own, which ends untouched")
    failed: list[tuple[str, str]] = []
    texts: list[str] = []

    async def handle(message: KfMessage) -> None:
        assert isinstance(message, TextMessage)
        if message.content == "bad":
            if how == "raises CancelledError":
                raise asyncio.CancelledError
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            if how == "cancels its own task and returns":
                return  # the cancellation is still to come, at the next await of the task
            await asyncio.sleep(1)
        texts.append(message.content)

    def on_failure(message: KfMessage, error: Exception) -> None:
        assert isinstance(message, TextMessage)
        failed.append((message.content, type(error).__name__))

    fake.customer_says(kf, CUSTOMER, "bad")
    fake.customer_says(kf, CUSTOMER, "good")
    reached = False
    with anyio.fail_after(10):
        async with Inbox(client, handle, on_failure=on_failure, max_attempts=2) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: texts == ["good"])
            assert await inbox.drain(kf) == 0  # the caller's task is not cancelled either
            await anyio.sleep(0.05)
            reached = True
    assert reached
    assert failed == [("bad", "HandlerCancelled")]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # a cancellation only asyncio has
async def test_drain_cancelled_by_its_caller_s_own_task_stops_and_marks_nothing(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    import asyncio

    failed: list[str] = []
    entered = anyio.Event()

    async def handle(message: KfMessage) -> None:
        entered.set()
        await asyncio.sleep(5)

    fake.customer_says(kf, CUSTOMER, "slow")
    store = MemoryInboxStore()
    with anyio.fail_after(10):
        async with Inbox(
            client,
            handle,
            store=store,
            max_attempts=1,
            on_failure=lambda m, e: failed.append(m.msgid),
        ) as inbox:
            # Not an anyio cancel scope: asyncio cancels the task itself, as timeouts and
            # frameworks do. The handler cannot be told from one that asked for it: it goes through.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(inbox.drain(kf), 0.2)
            assert entered.is_set()
            (message,) = (await client.messages.sync(kf)).messages
            assert await store.marked(inbox.namespace, kf, [message.msgid]) == set()
    assert failed == []


async def test_closing_mid_handler_leaves_that_message_unmarked_so_it_is_handled_again(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder, store: Any
) -> None:
    stuck = Collect(anyio.Event())  # never let through
    again = Collect()
    fake.customer_says(kf, CUSTOMER, "first")
    fake.customer_says(kf, CUSTOMER, "second")
    with anyio.fail_after(10):
        async with Inbox(client, stuck, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: stuck.entered == 1)
        assert hook.messages[-1].outcome == "cancelled"
        assert hook.pulls[-1].outcome == "cancelled"
        async with Inbox(client, again, store=store) as inbox:
            # The lease was let go at once (it lasts 20 s), nothing marked; the sweep of the
            # new inbox may take the account before drain does.
            assert await inbox.drain(kf) in (0, 2)
            await until(lambda: len(again.texts) == 2)
    assert again.texts == ["first", "second"]


async def test_aclose_from_another_task_ends_every_task_but_not_the_async_with_body(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    stuck = Collect(anyio.Event())
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        async with Inbox(client, stuck) as inbox, anyio.create_task_group() as group:
            await inbox.notify(news(fake, kf))
            await until(lambda: stuck.entered == 1)
            group.start_soon(inbox.aclose)
            await until(lambda: inbox.closed and not inbox._scopes)
            await anyio.sleep(0.01)  # the body is still alive
            with pytest.raises(ClientClosedError):
                await inbox.notify(news(fake, kf))
            with pytest.raises(ClientClosedError):
                await inbox.drain(kf)
        await inbox.aclose()  # idempotent


# -- notify: durable, never waiting, coalescing --------------------------------------------------


async def test_notify_returns_in_under_10_ms_while_a_pull_is_blocked(
    fake: FakeWeChat, client: WeComClient, kf: str, store: Any
) -> None:
    gate = anyio.Event()
    handler = Collect(gate)
    fake.customer_says(kf, CUSTOMER)
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: handler.entered == 1)
            took = []
            for _ in range(20):
                started = time.perf_counter()
                await inbox.notify(news(fake, kf))
                took.append(time.perf_counter() - started)
            assert statistics.median(took) < 0.010, took
            assert max(took) < 0.1, took
            gate.set()


async def test_fifty_notifications_during_a_pull_cost_exactly_one_more_pull(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder, store: Any
) -> None:
    gate = anyio.Event()
    handler = Collect(gate)
    fake.customer_says(kf, CUSTOMER, "m0")
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: handler.entered == 1)
            assert sync_calls(fake) == 1
            for _ in range(50):
                await inbox.notify(news(fake, kf))
            gate.set()
            await until(lambda: len(hook.pulls) == 2 and not inbox._accounts[kf].running)
            await anyio.sleep(0.1)  # nothing else follows
    assert sync_calls(fake) == 2
    assert [p.outcome for p in hook.pulls] == ["ok", "ok"]
    assert handler.texts == ["m0"]


async def test_an_unreachable_store_still_pulls_here_and_logs_a_warning(
    fake: FakeWeChat, client: WeComClient, kf: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Unreachable(MemoryInboxStore):
        async def notify(self, *args: Any) -> None:
            raise TokenStoreError("Redis unreachable: ConnectionError")

    handler = Collect()
    fake.customer_says(kf, CUSTOMER, "hello")
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=Unreachable()) as inbox:
            await inbox.notify(news(fake, kf))  # does not raise
            await until(lambda: handler.texts == ["hello"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("could not record news" in w and kf in w for w in warnings)


async def test_a_store_that_fails_mid_pull_is_retried_until_it_answers_again(
    fake: FakeWeChat, client: WeComClient, kf: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Flaky(MemoryInboxStore):
        down = True

        async def marked(self, *args: Any) -> set[str]:
            if self.down:
                raise TokenStoreError("Redis did not answer within 2 s")
            return await super().marked(*args)

    store = Flaky()
    handler = Collect()
    fake.customer_says(kf, CUSTOMER, "hello")
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: any("store failed" in r.getMessage() for r in caplog.records))
            store.down = False
            await inbox.notify(news(fake, kf))  # ends the backoff at once
            await until(lambda: handler.texts == ["hello"])


# -- replies -------------------------------------------------------------------------------------


async def test_a_reply_is_never_sent_twice_when_the_message_comes_again(
    fake: FakeWeChat, client: WeComClient, kf: str, store: Any
) -> None:
    replies: list[SentMessage] = []
    die = anyio.Event()

    async def handle(message: KfMessage) -> None:
        assert isinstance(message, TextMessage)
        replies.append(await inbox.reply(message, Text(f"re: {message.content}")))
        await die.wait()  # the process "dies" after the reply, before the done-mark

    fake.customer_says(kf, CUSTOMER, "hi")
    with anyio.fail_after(10):
        async with Inbox(client, handle, store=store) as inbox:
            await inbox.notify(news(fake, kf))
            await until(lambda: len(replies) == 1)
        die.set()
        async with Inbox(client, handle, store=store) as inbox:  # restarted: redelivered
            assert await inbox.drain(kf) == 1
    assert replies[0] == replies[1]
    sent = fake.sent_messages(kf)
    assert [(s.msgid, s.content) for s in sent] == [(replies[0].msgid, {"content": "re: hi"})]


async def test_a_reply_whose_outbox_mark_was_lost_is_refused_by_wechat_not_sent_again(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    fake.customer_says(kf, CUSTOMER, "hi")
    message = (await client.messages.sync(kf)).messages[0]
    assert isinstance(message, TextMessage)
    with anyio.fail_after(10):
        async with Inbox(client, Collect()) as first:
            sent = await first.reply(message, Text("one"))
            assert await first.reply(message, Text("one")) == sent  # the mark: no request
            other = await first.reply(message, Text("two"), index=1)
        async with Inbox(client, Collect()) as amnesiac:  # a new store: no outbox mark
            with pytest.raises(APIError) as refused:
                await amnesiac.reply(message, Text("one"))
            assert refused.value.errcode == DUPLICATE_MSGID
    assert len(sent.msgid) == 32
    assert set(sent.msgid) <= set("0123456789abcdef")
    assert other.msgid != sent.msgid
    assert [s.msgid for s in fake.sent_messages(kf)] == [sent.msgid, other.msgid]


async def test_reply_refuses_what_it_cannot_answer_before_any_request(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    fake.customer_says(kf, CUSTOMER)
    (text,) = (await client.messages.sync(kf)).messages
    unknown = parse_message({"msgid": "m1", "msgtype": "note", "origin": 4})
    before = len(fake.calls)
    with anyio.fail_after(10):
        async with Inbox(client, Collect()) as inbox:
            with pytest.raises(ValueError, match="customer"):
                await inbox.reply(unknown, Text("x"))
            with pytest.raises(TypeError):
                await inbox.reply("msg", Text("x"))  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await inbox.reply(text, "hello")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await inbox.reply(text, Text("x"), index=-1)
            with pytest.raises(TypeError):
                await inbox.reply(text, Text("x"), index=True)
    assert len(fake.calls) == before


# -- tokens, rate limits, polling ----------------------------------------------------------------


async def test_pulls_carry_the_callback_token_while_it_is_valid_and_none_after(
    fake: FakeWeChat, client: WeComClient, kf: str, corp: Corp
) -> None:
    handler = Collect()
    fake.customer_says(kf, CUSTOMER, "a")
    token = fake.latest_sync_token(kf)
    assert token is not None
    pushed = datetime.now(timezone.utc)
    with anyio.fail_after(10):
        async with Inbox(client, handler) as inbox:
            await inbox.notify(KfMsgOrEvent(corp[0], kf, token, pushed))
            await until(lambda: handler.texts == ["a"])
        fresh = len(fake.calls_to(SYNC))
        async with Inbox(client, handler) as inbox:  # a push 11 minutes old: its token is stale
            await inbox.notify(KfMsgOrEvent(corp[0], kf, token, pushed - timedelta(minutes=11)))
            await until(lambda: handler.texts == ["a", "a"])
    bodies = [c.json or {} for c in fake.calls_to(SYNC)]
    # The fake's call log redacts the token: present or not is what shows.
    assert [b.get("token") for b in bodies[:fresh]] == ["<redacted>"] * fresh
    assert [b.get("token") for b in bodies[fresh:]] == [None] * (len(bodies) - fresh)


async def test_a_token_wechat_refuses_is_dropped_and_the_pull_made_without_it(
    fake: FakeWeChat, client: WeComClient, kf: str, corp: Corp
) -> None:
    other = fake.create_kf_account(corp[0])
    fake.customer_says(other, CUSTOMER)
    foreign = fake.latest_sync_token(other)  # 95007 on kf
    fake.customer_says(kf, CUSTOMER, "mine")
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler) as inbox:
            await inbox.notify(SimpleNamespace(open_kfid=kf, token=foreign))
            await until(lambda: handler.texts == ["mine"])
            fake.customer_says(kf, CUSTOMER, "again")
            await inbox.notify(SimpleNamespace(open_kfid=kf, token=None))
            await until(lambda: handler.texts == ["mine", "again"])
    # The store keeps the refused token for its 10 minutes; it is not offered again.
    errcodes = [c.errcode for c in fake.calls_to(SYNC)]
    assert errcodes == [95007, 0, 0]


async def test_a_pull_without_a_token_that_meets_45009_backs_off_and_tries_again(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    fake.tokenless_pulls_per_minute = 0
    fake.customer_says(kf, CUSTOMER, "hello")
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler) as inbox:
            await inbox.notify(SimpleNamespace(open_kfid=kf, token=None))
            await until(lambda: bool(hook.pulls))
            assert hook.pulls[0].outcome == "rate_limited"
            assert not hook.pulls[0].with_token
            fake.tokenless_pulls_per_minute = 10  # the minute block ends
            await until(lambda: handler.texts == ["hello"])  # tried again on its own (1 s)
    assert [p.outcome for p in hook.pulls] == ["rate_limited", "ok"]
    assert any("rate-limited" in r.getMessage() for r in caplog.records)


async def test_poll_interval_pulls_known_accounts_without_any_callback(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    fake.tokenless_pulls_per_minute = 1000
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler, poll_interval=0.05) as inbox:
            assert await inbox.drain(kf) == 0  # now known to the inbox
            fake.customer_says(kf, CUSTOMER, "nobody told")
            await until(lambda: handler.texts == ["nobody told"])
            calls = sync_calls(fake)
            await anyio.sleep(0.2)
            assert sync_calls(fake) > calls  # and it goes on polling


async def test_news_left_pending_by_a_process_that_died_is_taken_up_by_the_sweep(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    store = MemoryInboxStore(lease=0.3)
    fake.customer_says(kf, CUSTOMER, "orphan")
    # The callback was recorded by a process that died before pulling, holding the lease.
    await store.notify(client.corpid or "", kf, fake.latest_sync_token(kf), time.time() + 600)
    assert await store.acquire(client.corpid or "", kf, "dead process") is not None
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store):
            await until(lambda: handler.texts == ["orphan"])
    assert await store.pending(client.corpid or "") == []


async def test_drain_waits_while_another_holder_pulls_and_counts_only_its_own(
    fake: FakeWeChat, client: WeComClient, kf: str, store: Any
) -> None:
    fake.customer_says(kf, CUSTOMER, "one")
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            assert await store.acquire(inbox.namespace, kf, "elsewhere") is not None
            async with anyio.create_task_group() as group:

                async def drain() -> None:
                    assert await inbox.drain(kf) == 1

                group.start_soon(drain)
                await anyio.sleep(0.1)
                assert handler.texts == []  # waiting for the lease
                await store.release(inbox.namespace, kf, "elsewhere", None)
            assert handler.texts == ["one"]


@pytest.fixture(params=["memory", "redis"])
async def short_store(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Any]:
    """Each store in turn with a lease of 0.3 s, for the proofs about a lease that ran out."""
    if request.param == "memory":
        yield MemoryInboxStore(lease=0.3)
        return
    client = redis_client(request.getfixturevalue("redis_url"), anyio_backend)
    yield RedisInboxStore(client, prefix=f"t{uuid.uuid4().hex[:8]}", lease=0.3)
    await client.aclose()


class CutOff:
    """A store as one inbox sees it: once ``on``, every call fails as an unreachable Redis. Its
    methods are the protocol's, each defined on the class (below), since Python 3.12 checks a
    runtime protocol without calling ``__getattr__``."""

    def __init__(self, store: Any) -> None:
        self.store, self.lease, self.on = store, store.lease, False


def _cut_off(name: str) -> Callable[..., Any]:
    async def call(self: CutOff, *args: Any) -> Any:
        if self.on:
            raise TokenStoreError("Redis did not answer within 2 s")
        return await getattr(self.store, name)(*args)

    return call


for _name in ("notify", "pending", "acquire", "renew", "release", "get_cursor", "marked",
              "commit", "replied", "mark_replied"):  # fmt: skip
    setattr(CutOff, _name, _cut_off(_name))


async def test_a_holder_whose_renewals_fail_past_its_lease_stops_before_another_takes_over(
    fake: FakeWeChat,
    client: WeComClient,
    kf: str,
    short_store: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cut_off = CutOff(short_store)
    first: list[str] = []
    second: list[str] = []

    async def slow(message: KfMessage) -> None:
        assert isinstance(message, TextMessage)
        cut_off.on = True  # this inbox can no longer reach the store, to renew or else
        await anyio.sleep(1.0)  # past the lease: the other inbox takes over meanwhile
        first.append(message.content)

    async def fast(message: KfMessage) -> None:
        assert isinstance(message, TextMessage)
        second.append(message.content)

    for i in range(3):
        fake.customer_says(kf, CUSTOMER, f"m{i}")
    with anyio.fail_after(10):
        async with Inbox(client, slow, store=cut_off) as a:
            await a.notify(news(fake, kf))
            await until(lambda: cut_off.on)
            async with Inbox(client, fast, store=short_store) as b:
                # The lease runs out: the other inbox's sweep takes the account over.
                await until(lambda: len(second) == 3)
                await b.drain(kf)
                await anyio.sleep(1.0)  # the first handler would have returned by now
            cut_off.on = False
    assert second == ["m0", "m1", "m2"]
    assert first == []  # cancelled once its lease could no longer be trusted: never both
    assert any("could not renew the lease" in r.getMessage() for r in caplog.records)


async def test_a_holder_frozen_past_its_lease_hands_nothing_more_to_its_handler(
    fake: FakeWeChat, client: WeComClient, kf: str, short_store: Any
) -> None:
    store = short_store
    started: dict[str, list[str]] = {"a": [], "b": []}
    finished: dict[str, list[str]] = {"a": [], "b": []}

    def handler(name: str) -> Callable[[KfMessage], Any]:
        async def handle(message: KfMessage) -> None:
            assert isinstance(message, TextMessage)
            started[name].append(message.content)
            await anyio.sleep(0.02)
            if message.content == "m0" and name == "a":
                time.sleep(0.6)  # noqa: ASYNC251 - the whole event loop freezes past the lease
            finished[name].append(message.content)

        return handle

    for i in range(5):
        fake.customer_says(kf, CUSTOMER, f"m{i}")
    with anyio.fail_after(10):
        async with (
            Inbox(client, handler("a"), store=store) as a,
            Inbox(client, handler("b"), store=store) as b,
            anyio.create_task_group() as group,
        ):
            group.start_soon(a.drain, kf)
            await until(lambda: started["a"] == ["m0"])
            group.start_soon(b.drain, kf)  # waits for the lease, takes it once it ran out
            await until(lambda: finished["b"][-1:] == ["m4"])
    assert started["a"] == finished["a"] == ["m0"]  # nothing handed over after the freeze
    # m0 too when its mark was on its way as the other took over: the freeze came mid-handler.
    assert started["b"] == finished["b"] in (["m1", "m2", "m3", "m4"], [f"m{i}" for i in range(5)])


async def test_drain_from_the_inbox_own_handler_raises_instead_of_waiting_forever(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    errors: list[str] = []
    holder: dict[str, Inbox] = {}

    async def handle(message: KfMessage) -> None:
        try:
            await holder["inbox"].drain(kf)
        except RuntimeError as exc:
            errors.append(str(exc))

    fake.customer_says(kf, CUSTOMER, "a")
    with anyio.fail_after(10):
        async with Inbox(client, handle) as inbox:
            holder["inbox"] = inbox
            assert await inbox.drain(kf) == 1
    assert errors == ["drain cannot be called from this inbox's own handler"]


async def test_the_sweep_skips_pending_entries_that_are_no_open_kfid(
    fake: FakeWeChat, client: WeComClient, kf: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryInboxStore(lease=0.3)
    for junk in ("a b", "\x00", kf):
        await store.notify(client.corpid or "", junk, None, None)
    fake.customer_says(kf, CUSTOMER, "hello")
    handler = Collect()
    with anyio.fail_after(10):
        async with Inbox(client, handler, store=store) as inbox:
            await until(lambda: handler.texts == ["hello"])
            await anyio.sleep(0.3)  # two more sweeps
            assert sorted(inbox._accounts) == [kf]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- hooks ---------------------------------------------------------------------------------------


async def test_hooks_hear_each_pull_and_each_message_and_no_token(
    fake: FakeWeChat, client: WeComClient, kf: str, hook: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wechat_kf")
    first = fake.customer_says(kf, CUSTOMER, "a")
    fake.customer_enters(kf, CUSTOMER)
    token = fake.latest_sync_token(kf)
    assert token is not None

    async def handle(message: KfMessage) -> None:
        await anyio.sleep(0.01)

    with anyio.fail_after(10):
        async with Inbox(client, handle) as inbox:
            await inbox.notify(SimpleNamespace(open_kfid=kf, token=token))
            await until(lambda: bool(hook.pulls))
            shown = repr(inbox) + repr(inbox._accounts)
    (pull,) = hook.pulls
    assert (pull.open_kfid, pull.pages, pull.messages, pull.handled) == (kf, 1, 2, 2)
    assert pull.with_token
    assert pull.outcome == "ok"
    assert pull.duration > 0.02
    assert [(m.msgid == first, m.msgtype, m.attempts, m.outcome) for m in hook.messages] == [
        (True, "text", 1, "done"),
        (False, "event", 1, "done"),
    ]
    assert all(m.duration >= 0.01 for m in hook.messages)
    everything = repr(hook.pulls) + repr(hook.messages) + shown + caplog.text
    assert token not in everything
    assert "pull " + kf in caplog.text  # the LoggingHook's DEBUG line


async def test_the_opentelemetry_hook_makes_spans_and_metrics_for_pulls_and_messages(
    fake: FakeWeChat, corp: Corp, http: httpx.AsyncClient, otel: tuple[Any, Any, Any]
) -> None:
    hook, spans, reader = otel
    kf = corp[2]
    fake.customer_says(kf, CUSTOMER, "ok")
    fake.customer_says(kf, CUSTOMER, "bad")
    token = fake.latest_sync_token(kf)
    assert token is not None

    async def handle(message: KfMessage) -> None:
        if isinstance(message, TextMessage) and message.content == "bad":
            raise RuntimeError

    with anyio.fail_after(10):
        async with (
            WeComClient(corp[0], corp[1], http_client=http, hooks=[hook]) as wc,
            Inbox(wc, handle, max_attempts=2, on_failure=lambda m, e: None) as inbox,
        ):
            await inbox.notify(SimpleNamespace(open_kfid=kf, token=token))
            await until(
                lambda: any(s.name == "wechat_kf.inbox.pull" for s in spans.get_finished_spans())
            )
    finished = spans.get_finished_spans()
    handles = [s for s in finished if s.name == "wechat_kf.inbox.handle"]
    (pull,) = [s for s in finished if s.name == "wechat_kf.inbox.pull"]
    assert pull.attributes["wechat.inbox.handled"] == 2
    assert pull.attributes["wechat.inbox.outcome"] == "ok"
    assert [s.attributes["wechat.inbox.outcome"] for s in handles] == ["done", "failed"]
    assert handles[1].attributes["wechat.inbox.attempts"] == 2
    assert handles[1].status.status_code.name == "ERROR"
    assert pull.end_time - pull.start_time > 0
    assert token not in repr([dict(s.attributes) for s in finished])
    points: dict[str, list[Any]] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    counted = {
        p.attributes["wechat.inbox.outcome"]: p.value for p in points["wechat_kf.inbox.messages"]
    }
    assert counted == {"done": 1, "failed": 1}
    assert sum(p.count for p in points["wechat_kf.inbox.pull.duration"]) == 1


# -- arguments -----------------------------------------------------------------------------------


async def test_the_constructor_refuses_bad_arguments(client: WeComClient) -> None:
    async def handle(message: KfMessage) -> None: ...

    bad: list[tuple[type[Exception], dict[str, Any]]] = [
        (ValueError, {"start": "now"}),
        (TypeError, {"max_attempts": 1.5}),
        (ValueError, {"max_attempts": 0}),
        (TypeError, {"on_failure": "log"}),
        (ValueError, {"max_concurrency": 0}),
        (TypeError, {"max_concurrency": True}),
        (ValueError, {"poll_interval": 0}),
        (ValueError, {"poll_interval": float("inf")}),
        (ValueError, {"limit": 1001}),
        (ValueError, {"limit": 0}),
        (TypeError, {"store": object()}),
        (ValueError, {"namespace": "has space"}),
    ]
    for error, options in bad:
        with pytest.raises(error):
            Inbox(client, handle, **options)
    with pytest.raises(TypeError):
        Inbox(object(), handle)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Inbox(client, "handler")  # type: ignore[arg-type]
    inbox = Inbox(client, handle)
    with pytest.raises(RuntimeError, match="async with"):
        await inbox.notify(SimpleNamespace(open_kfid="wk1", token=None))
    with anyio.fail_after(5):
        async with inbox:
            for event in (SimpleNamespace(token="t"), SimpleNamespace(open_kfid="a b", token=None)):
                with pytest.raises((TypeError, ValueError)):
                    await inbox.notify(event)
            with pytest.raises(TypeError):
                await inbox.notify(SimpleNamespace(open_kfid="wk1", token=b"bytes"))
            now = datetime.now(timezone.utc)
            with pytest.raises(ValueError, match="corp"):
                await inbox.notify(KfMsgOrEvent("wwANOTHER", "wk1", "t", now))
            with pytest.raises(TypeError):
                await inbox.drain(42)  # type: ignore[arg-type]
    with pytest.raises(ClientClosedError):
        async with inbox:
            pass


async def test_a_client_without_a_corpid_needs_a_namespace(http: httpx.AsyncClient) -> None:
    async def handle(message: KfMessage) -> None: ...

    async with WeComClient(token_provider=StaticTokenProvider("t"), http_client=http) as wc:
        with pytest.raises(ValueError, match="namespace"):
            Inbox(wc, handle)
        assert Inbox(wc, handle, namespace="wwcorp").namespace == "wwcorp"


async def test_an_error_in_the_async_with_body_comes_out_as_it_is_never_as_a_group(
    client: WeComClient,
) -> None:
    async def handle(message: KfMessage) -> None: ...

    with anyio.fail_after(5), pytest.raises(KeyError):
        async with Inbox(client, handle):
            raise KeyError("mine")


async def test_empty_pages_with_has_more_without_end_stop_the_pull_instead_of_holding_the_lease(
    fake: FakeWeChat, client: WeComClient, kf: str
) -> None:
    from wechat_kf import InvalidResponseError
    from wechat_kf._inbox_loop import MAX_EMPTY_PAGES

    fake.customer_says(kf, CUSTOMER, "hi")
    fake.empty_page_rate = 1.0  # every page empty, every page saying there is more
    fake.tokenless_pulls_per_minute = 10_000  # drain pulls without a callback's token
    handler = Collect()
    with anyio.fail_after(20):
        async with Inbox(client, handler) as inbox:
            with pytest.raises(InvalidResponseError, match="empty pages in a row"):
                await inbox.drain(kf)
            assert sync_calls(fake) == MAX_EMPTY_PAGES
            fake.empty_page_rate = 0.0  # WeChat answers again: the next pull goes on
            assert await inbox.drain(kf) == 1
    assert handler.texts == ["hi"]


async def test_an_account_wechat_no_longer_knows_is_not_pulled_again_until_notified(
    fake: FakeWeChat, client: WeComClient, corp: Corp, kf: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.customer_says(kf, CUSTOMER, "hi")
    notification = news(fake, kf)
    account = fake.corps[corp[0]].kf_accounts.pop(kf)  # deleted in the admin console
    handler = Collect()
    with anyio.fail_after(20):
        async with Inbox(client, handler) as inbox:
            await inbox.notify(notification)
            await until(lambda: "WeChat knows no" in caplog.text)
            calls = sync_calls(fake)
            await anyio.sleep(0.3)  # no retry loop: nothing more is pulled
            assert sync_calls(fake) == calls
            fake.corps[corp[0]].kf_accounts[kf] = account  # it is back, and news comes
            await inbox.notify(notification)
            await until(lambda: handler.texts == ["hi"])
    assert caplog.text.count("WeChat knows no") == 1
