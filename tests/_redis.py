"""A real redis-server on a free loopback port, for the tests (and benchmarks) that need one, and
a client of it for either anyio backend."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio.to_thread

from tests._servers import Running, free_port, listening


@contextmanager
def redis_running() -> Iterator[Running | None]:
    """Start redis-server in a temporary directory and yield it (its ``url`` is ``redis://...``
    without a database; None when the binary is not installed); stop it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
                   "--save", "", "--appendonly", "no", "--protected-mode", "yes"]  # fmt: skip
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        with listening(command, port, "redis-server", scheme="redis", **quiet) as server:
            yield server


@contextmanager
def redis_process() -> Iterator[str | None]:
    """:func:`redis_running`, as the URL of its database 0 (None without the binary)."""
    with redis_running() as server:
        yield None if server is None else f"{server.url}/0"


@contextmanager
def redis_for_test() -> Iterator[Running]:
    """:func:`redis_running` for a test: skips when the binary is missing, unless
    WECHAT_KF_REQUIRE_REDIS=1 (CI), where that is a failure."""
    import pytest

    with redis_running() as server:
        if server is None:
            if os.environ.get("WECHAT_KF_REQUIRE_REDIS") == "1":
                pytest.fail("redis-server is required (WECHAT_KF_REQUIRE_REDIS=1), not installed")
            pytest.skip("redis-server is not installed")
        yield server


@contextmanager
def redis_server() -> Iterator[str]:
    """:func:`redis_for_test`, as the URL of its database 0."""
    with redis_for_test() as server:
        yield f"{server.url}/0"


class ThreadedRedis:
    """A redis-py client for trio, where ``redis.asyncio`` cannot run: the blocking client, each
    command in a worker thread, offering what ``RedisTokenStore`` and the tests use
    (``register_script`` and the plain commands, awaited). A cancelled command is abandoned to
    its thread, as a cancelled ``redis.asyncio`` command abandons its socket read, so the
    store's own time bounds are what is exercised."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def register_script(self, script: str) -> Callable[..., Awaitable[Any]]:
        blocking = self._client.register_script(script)

        async def run(keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
            return await _in_thread(blocking, keys=list(keys), args=list(args))

        return run

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        command = getattr(self._client, name)

        async def run(*args: Any, **kwargs: Any) -> Any:
            return await _in_thread(command, *args, **kwargs)

        return run

    async def aclose(self) -> None:
        await _in_thread(self._client.close)


async def _in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    call = functools.partial(function, *args, **kwargs)
    return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)


def redis_client(url: str, backend: str, **options: Any) -> Any:
    """A client of the Redis at ``url`` for the anyio ``backend`` the caller runs on:
    ``redis.asyncio.Redis`` on asyncio, a :class:`ThreadedRedis` on trio; ``options`` go to
    redis-py's ``from_url`` either way. Close it with ``await client.aclose()``."""
    if backend == "asyncio":
        from redis.asyncio import Redis

        return Redis.from_url(url, **options)
    import redis

    return ThreadedRedis(redis.Redis.from_url(url, **options))
