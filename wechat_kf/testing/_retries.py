"""Instant retries for tests: the retry policy runs as in production, without its waits (the
clients' own ``retry_backoff`` setting, made 0 for the clients that leave it unset)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..clients import DEFAULT_RETRY_BACKOFF

__all__ = ["instant_retries"]


@contextlib.contextmanager
def instant_retries() -> Iterator[None]:
    """Inside the ``with``, a call that the policy retries (busy answers, 429, lost answers of
    idempotent calls...) retries at once instead of backing off: the same attempts, the same
    outcome, no real waiting, for every client that leaves ``retry_backoff`` unset. It holds for
    the code in the block and the tasks it starts, and for nothing else, so parallel tests never
    see it. As a pytest fixture::

        @pytest.fixture(autouse=True)
        def _instant_retries():
            with instant_retries():
                yield
    """
    token = DEFAULT_RETRY_BACKOFF.set(0.0)
    try:
        yield
    finally:
        DEFAULT_RETRY_BACKOFF.reset(token)
