"""A hostile HTTP/1.1 server on a raw loopback socket, stdlib only: each request is answered by a
script that can drip bytes, stall, lie in its headers or drop the connection after "applying".

It runs in threads, independent of the event loop under test, so the same server serves asyncio
and trio tests. Scripts get the parsed request and the connection::

    def script(request: WireRequest, conn: WireConn) -> None:
        conn.send(response(200, {"errcode": 0}))

    with WireServer(script) as server:
        ... OfficialAccountClient(..., base_url=server.url) ...

``loop_watch`` is the one piece that runs inside the event loop under test: it measures how long
the loop was held, for the tests that prove a hostile answer never freezes it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.lowlevel
import attrs

_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


@attrs.frozen
class WireRequest:
    """One request as the server read it off the socket."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class WireConn:
    """The server's side of one connection, for scripts."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self._sock = sock
        self._stopping = stopping
        self.closed = False

    def send(self, data: bytes) -> None:
        """Send ``data`` at once (ignored once the client is gone)."""
        try:
            self._sock.sendall(data)
        except OSError:
            self.close()

    def drip(self, data: bytes, every: float) -> None:
        """Send ``data`` one byte at a time, ``every`` seconds apart, until done, the client
        leaves or the server stops."""
        for index in range(len(data)):
            if self.closed or self._stopping.wait(every):
                return
            self.send(data[index : index + 1])

    def stall(self) -> None:
        """Answer nothing: wait until the client closes the connection or the server stops."""
        self._sock.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                if not self._sock.recv(65536):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.close()

    def close(self) -> None:
        """Drop the connection (after whatever was sent)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


Script = Callable[[WireRequest, WireConn], None]


def response(
    status: int = 200,
    body: bytes | Mapping[str, Any] = b"",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
) -> bytes:
    """The bytes of an HTTP/1.1 response; a mapping body is sent as JSON. Content-Length is the
    body's unless ``headers`` says otherwise (lying is allowed). ``headers`` given as (name,
    value) pairs are sent one line each, in order, so a header can be repeated on several lines."""
    payload = json.dumps(body).encode() if isinstance(body, Mapping) else body
    defaults = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
    if headers is None or isinstance(headers, Mapping):
        fields = list({**defaults, **(headers or {})}.items())
    else:
        named = {name.lower() for name, _ in headers}
        fields = [(n, v) for n, v in defaults.items() if n.lower() not in named] + list(headers)
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields)
    return head.encode("latin-1") + b"\r\n" + payload


class WireServer:
    """Serves ``script`` on 127.0.0.1 and a free port, one thread per connection, keep-alive
    included, over TLS when given a server context; ``requests`` lists every request read, in
    order, and ``handshakes_failed`` counts the clients that refused the certificate."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.handshakes_failed = 0
        self.requests: list[WireRequest] = []
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        scheme = "http" if tls is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def requests_to(self, path: str) -> list[WireRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> WireServer:
        self._start(self._accept)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._start(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        if self.tls is not None:
            try:
                sock.settimeout(5)
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                with self._lock:
                    self.handshakes_failed += 1
                sock.close()
                return
        conn = WireConn(sock, self._stopping)
        buffer = b""
        try:
            while not conn.closed and not self._stopping.is_set():
                request, buffer = self._read_request(sock, buffer)
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                self.script(request, conn)
        finally:
            conn.close()

    def _read_request(self, sock: socket.socket, buffer: bytes) -> tuple[WireRequest | None, bytes]:
        sock.settimeout(0.05)
        while b"\r\n\r\n" not in buffer:
            chunk = self._recv(sock)
            if not chunk:
                return None, b""
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            chunk = self._recv(sock)
            if not chunk:
                return None, b""
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]
        url = urlsplit(target)
        query = dict(parse_qsl(url.query))
        return WireRequest(method, url.path, query, headers, body), buffer

    def _recv(self, sock: socket.socket) -> bytes:
        while not self._stopping.is_set():
            try:
                return sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""


class LoopWatch:
    """What ``loop_watch`` measured so far."""

    def __init__(self) -> None:
        self.last_tick = time.perf_counter()
        self.longest_gap = 0.0
        self.stopped_at: float | None = None

    def longest_stall(self) -> float:
        """The longest time between two ticks, the one still open (until the block ended)
        included: how long the event loop was kept from running a task that only sleeps."""
        now = time.perf_counter() if self.stopped_at is None else self.stopped_at
        return max(self.longest_gap, now - self.last_tick)


@contextlib.asynccontextmanager
async def loop_watch(every: float = 0.01) -> AsyncIterator[LoopWatch]:
    """While the block runs, a concurrent task sleeps ``every`` seconds in a loop and records the
    longest gap between its wake-ups; a decoder that held the loop shows up as a long gap."""
    watch = LoopWatch()

    async def tick() -> None:
        while True:
            await anyio.sleep(every)
            now = time.perf_counter()
            watch.longest_gap = max(watch.longest_gap, now - watch.last_tick)
            watch.last_tick = now

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await anyio.lowlevel.checkpoint()  # the ticker is running before the block starts
        watch.last_tick = time.perf_counter()
        try:
            yield watch
        finally:
            watch.stopped_at = time.perf_counter()
            group.cancel_scope.cancel()
