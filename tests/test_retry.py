"""The retry policy as a pure function."""

from __future__ import annotations

import pytest

from wechat_kf._retry import Failure, retry_delay

ALL = list(Failure)


@pytest.mark.parametrize("failure", ALL)
def test_gives_up_after_max_retries(failure: Failure) -> None:
    assert retry_delay(failure, 3, max_retries=3, idempotent=True) is not None
    assert retry_delay(failure, 4, max_retries=3, idempotent=True) is None
    assert retry_delay(failure, 1, max_retries=0, idempotent=True) is None


def test_request_that_may_have_arrived_is_retried_only_when_idempotent() -> None:
    assert retry_delay(Failure.MAYBE_SENT, 1, max_retries=3, idempotent=False) is None
    assert retry_delay(Failure.MAYBE_SENT, 1, max_retries=3, idempotent=True) is not None
    assert retry_delay(Failure.NOT_SENT, 1, max_retries=3, idempotent=False) is not None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    def delays(rand: float) -> list[float | None]:
        return [
            retry_delay(Failure.BUSY, n, max_retries=10, idempotent=True, rand=lambda: rand)
            for n in range(1, 9)
        ]

    high, low = delays(1.0), delays(0.0)
    assert high[:4] == [0.2, 0.4, 0.8, 1.6]
    assert low[:2] == [0.1, 0.2]
    assert max(d for d in high if d is not None) == 5.0
