"""Instant retries for tests: the retry policy runs as in production, without its waits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .._retry import INSTANT_RETRIES

__all__ = ["instant_retries"]


@contextlib.contextmanager
def instant_retries() -> Iterator[None]:
    """Inside the ``with``, a call that the policy retries (busy answers, 429, lost answers of
    idempotent calls...) retries at once instead of backing off: the same attempts, the same
    outcome, no real waiting. It holds for the code in the block and the tasks it starts, and for
    nothing else, so parallel tests never see it. As a pytest fixture::

        @pytest.fixture(autouse=True)
        def _instant_retries():
            with instant_retries():
                yield
    """
    token = INSTANT_RETRIES.set(True)
    try:
        yield
    finally:
        INSTANT_RETRIES.reset(token)
