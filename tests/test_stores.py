"""MemoryTokenStore: compare-and-invalidate, newest token wins, a lock per key."""

from __future__ import annotations

import anyio
import pytest

from wechat_kf import AccessToken, MemoryTokenStore, TokenStore

pytestmark = pytest.mark.anyio


async def test_put_never_replaces_a_later_expiring_token() -> None:
    store = MemoryTokenStore()
    newer = AccessToken("new", expires_at=200.0)
    assert await store.put("k", newer) is newer
    assert await store.put("k", AccessToken("old", expires_at=100.0)) is newer
    assert await store.get("k") is newer


async def test_invalidate_is_compare_and_delete() -> None:
    store = MemoryTokenStore()
    await store.put("k", AccessToken("current", expires_at=1.0))
    assert not await store.invalidate("k", "stale")
    assert (await store.get("k")) is not None
    assert await store.invalidate("k", "current")
    assert await store.get("k") is None


async def test_refresh_lock_is_exclusive_per_key() -> None:
    store = MemoryTokenStore()
    inside: list[str] = []
    peak = 0

    async def hold(key: str) -> None:
        nonlocal peak
        async with store.refresh_lock(key):
            inside.append(key)
            peak = max(peak, inside.count("a"))
            await anyio.sleep(0.01)
            inside.remove(key)

    async with anyio.create_task_group() as group:
        for key in ["a", "a", "a", "b"]:
            group.start_soon(hold, key)
    assert peak == 1


def test_memory_store_implements_the_protocol() -> None:
    assert isinstance(MemoryTokenStore(), TokenStore)


async def test_a_claim_holds_for_its_seconds_on_a_monotonic_clock_per_store() -> None:
    now = [100.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    assert await store.claim("force", 30)
    assert not await store.claim("force", 30)
    assert await store.claim("other", 30)
    now[0] += 29.9
    assert not await store.claim("force", 30)
    now[0] += 0.2
    assert await store.claim("force", 30)
    assert await MemoryTokenStore().claim("force", 30)  # another store knows nothing of it
