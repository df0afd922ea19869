"""A real redis-server on a free loopback port, for the tests that need one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)
