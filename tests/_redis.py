"""A real redis-server on a free loopback port, for the tests that need one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests._servers import free_port, wait_for_port


@contextmanager
def redis_server() -> Iterator[str]:
    """Start redis-server in a temporary directory; yield its URL; stop it afterwards. Skips when
    the binary is missing, unless WECHAT_KF_REQUIRE_REDIS=1 (CI), where that is a failure."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("WECHAT_KF_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is required (WECHAT_KF_REQUIRE_REDIS=1) but not installed")
        pytest.skip("redis-server is not installed")
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, process, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)
