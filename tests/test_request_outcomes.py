"""on_request: each request's outcome as soon as it is known, so a journal knows exactly which ids
went through, whatever stops the batch."""

from __future__ import annotations

import anyio
import httpx
import pytest

from wechat_kf import BatchError, RequestOutcome, TransportError, WeComClient
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

Corp = tuple[str, str, str]


async def test_each_request_reports_its_ids_and_results_once(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    journal: list[RequestOutcome] = []
    ids = [f"u{i}" for i in range(250)] + ["nobody"]
    result = await wc.servicers.add(corp[2], ids, department_ids=[1, 2], on_request=journal.append)
    assert len(journal) == 3
    assert all(o.action == "add" and o.open_kfid == corp[2] and o.error is None for o in journal)
    assert sorted(u for o in journal for u in o.userids) == sorted(ids)
    assert sorted(d for o in journal for d in o.department_ids) == [1, 2]
    reported = [item for o in journal for item in o.results]
    assert sorted(reported, key=repr) == sorted(result.items, key=repr)
    refused = [item for item in reported if not item.ok]
    assert [(item.userid, item.errcode) for item in refused] == [("nobody", 60111)]

    journal.clear()
    await wc.servicers.delete(corp[2], ids[:10], on_request=journal.append)
    assert [(o.action, len(o.results)) for o in journal] == [("delete", 10)]


async def test_a_request_that_failed_as_a_whole_is_reported_with_its_error_and_no_results(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    fake.faults.drop_rate = 1.0  # every request fails before it is applied
    journal: list[RequestOutcome] = []
    with pytest.raises(BatchError) as info:
        await wc.servicers.add(corp[2], ["u1", "u2"], on_request=journal.append)
    assert [(o.userids, o.results) for o in journal] == [(["u1", "u2"], [])]
    assert isinstance(journal[0].error, TransportError)
    assert info.value.unprocessed_userids == ["u1", "u2"]


async def test_a_journal_kept_through_a_cancelled_batch_names_only_applied_ids(
    fake: FakeWeChat, corp: Corp
) -> None:
    fake.faults.latency = 0.02
    journal: list[RequestOutcome] = []
    ids = [f"u{i}" for i in range(1000)]
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(corp[0], corp[1], http_client=http, max_concurrency=2) as wc,
    ):
        with anyio.move_on_after(0.1):
            await wc.servicers.add(corp[2], ids, on_request=journal.append)
    applied = {item.userid for o in journal for item in o.results if item.ok}
    assert 0 < len(applied) < len(ids)
    state = set(fake.servicers(corp[2]))
    assert applied <= state
    # What the journal lacks is at most what was in flight when the batch was cancelled.
    assert len(state - applied) <= 2 * 100


async def test_a_raising_on_request_stops_the_batch_and_keeps_every_applied_id(
    fake: FakeWeChat, wc: WeComClient, corp: Corp
) -> None:
    def journal(outcome: RequestOutcome) -> None:
        raise OSError("disk full")

    ids = [f"u{i}" for i in range(900)]
    with pytest.raises(BatchError) as info:
        await wc.servicers.add(corp[2], ids, on_request=journal)
    error = info.value
    assert isinstance(error.__cause__, OSError)
    processed = {item.userid for item in error.result.items}
    assert processed | set(error.unprocessed_userids) == set(ids)
    assert processed == set(fake.servicers(corp[2]))
    assert error.unprocessed_userids  # the requests not yet sent were stopped
