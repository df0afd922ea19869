"""Serving an ASGI app on a real loopback socket for the duration of a test."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], what: str) -> None:
    """Block until ``process`` accepts connections on ``port``; fail if it dies or takes 20 s."""
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.02)


@attrs.define
class Running:
    """A server process started by :func:`listening`; ``output`` is what it printed, once it
    has stopped (when its stdout was piped)."""

    process: subprocess.Popen[Any]
    url: str
    output: str = ""


@contextmanager
def listening(
    command: list[str], port: int, what: str, scheme: str = "http", **popen: Any
) -> Iterator[Running]:
    """Start ``command`` (a server that will listen on ``port``), wait until it accepts
    connections, and stop it afterwards."""
    process = subprocess.Popen(command, **popen)
    running = Running(process, f"{scheme}://127.0.0.1:{port}")
    try:
        wait_for_port(port, process, what)
        yield running
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
        running.output = output or ""


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on 127.0.0.1 and a free port; yield its base URL."""
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on what it accepts (with protocol 0
    # it does not, and every answer waits for the peer's delayed ACK: about 40 ms a request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="error", lifespan="off", access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
