"""A real redis-server on a free loopback port, for the tests (and benchmarks) that need one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

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
