"""The Redis inbox store's early marks: a connection of the client's pool lent for one page, its
replies switched off (``CLIENT REPLY OFF``), on which each mark is written as its handler
returns. A mark written there is in the kernel on its way to Redis before the next handler
starts, so a process killed after it loses no mark, and it costs no round trip; the page's commit
writes every mark again with the cursor, which is why a refused write may go unnoticed here.
:class:`Lender` lends (one per store), :class:`EarlyMarks` writes; ``key_part`` makes a key of
any text."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio

from ._inbox_stores import MARK_TTL

__all__ = ["EarlyMarks", "Lender", "key_part"]

_PLAIN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def key_part(text: str) -> str:
    """``text`` as a part of a key: itself when plain (``[A-Za-z0-9_.@-]``, at most 64
    characters), else a digest, so that no open_kfid or msgid reaches into another's keys."""
    if _PLAIN.fullmatch(text):
        return text
    return "~" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class EarlyMarks:
    """The marks of one page on a lent connection whose replies are off: :meth:`write` returns
    once the command is written to the socket, or False when the connection failed (then the
    inbox commits each mark itself)."""

    def __init__(self, connection: Any, done_key: str, failures: tuple[type[Exception], ...]):
        self._connection = connection
        # The command is assembled here rather than by redis-py's packer, which costs more than
        # the rest of a mark: only the msgid's key and the status change.
        self._head = b"*5\r\n$3\r\nSET\r\n"
        self._key = (done_key + ":").encode()
        self._tail = b"$2\r\nEX\r\n" + _bulk(str(MARK_TTL).encode())
        self._failures = failures
        self.broken = False
        #: Marks written to the socket.
        self.sent = 0

    async def write(self, msgid: str, status: str) -> bool:
        """Send ``SET {done}:{msgid} status EX 4 days``, without waiting for Redis. Not bounded
        here: a write held up by a frozen Redis ends with the pull, which stops when its lease
        can no longer be trusted."""
        if self.broken:
            return False
        key = self._key + key_part(msgid).encode()
        command = b"".join((self._head, _bulk(key), _bulk(status.encode()), self._tail))
        try:
            await self._connection.send_packed_command(command, check_health=False)
        except self._failures:
            self.broken = True  # redis-py closed it: the pool gets it back closed
            return False
        self.sent += 1
        return True


class Lender:
    """Lends connections of a ``redis.asyncio`` client's pool for early marks, at most ``most``
    at once (each is held for a page; the rest of the pool stays for leases and commits), and
    none after a server refused ``CLIENT REPLY``. A client of another kind lends nothing."""

    def __init__(
        self,
        redis: Any,
        *,
        most: int,
        timeout: float,
        failures: tuple[type[Exception], ...],
        refused: type[Exception],
    ) -> None:
        from redis.asyncio.connection import ConnectionPool

        pool = getattr(redis, "connection_pool", None)
        self._pool: Any = pool if isinstance(pool, ConnectionPool) else None
        self.most = most
        self._open = 0
        self._timeout = timeout
        self._failures = failures
        self._unlent: tuple[type[Exception], ...] = (TimeoutError, *failures)
        self._refused = refused
        # redis-py 5.0 needs a command name to lend a connection; later ones warn when given one.
        named = self._pool is not None and _needs_name(self._pool.get_connection)
        self._lend_args: tuple[str, ...] = ("CLIENT",) if named else ()

    @property
    def lends(self) -> bool:
        """Whether it may lend at all (a ``redis.asyncio`` pool, a share of it to lend)."""
        return self._pool is not None and self.most > 0

    @contextlib.asynccontextmanager
    async def lend(self, done_key: str) -> AsyncIterator[EarlyMarks | None]:
        """A connection for the marks under ``done_key``, or None. On leaving, its replies are
        switched on again and the one answer checked, or it is closed: the pool never gets it
        back in another state."""
        pool = self._pool
        if pool is None or self._open >= self.most:
            yield None
            return
        self._open += 1
        connection: Any = None
        timeout: float | None = None
        nagle = clean = False
        try:
            try:
                with anyio.fail_after(self._timeout):
                    connection = await pool.get_connection(*self._lend_args)
                    # Unbounded while lent: with a socket_timeout (redis-py 8 sets 5 s) each
                    # write would go through asyncio.wait_for, a task a mark. The page's pull
                    # and its lease bound them; the setting is put back before the pool has it.
                    timeout, connection.socket_timeout = connection.socket_timeout, None
                    # Small writes gather in the kernel (Nagle) while lent: a mark is as safe
                    # from this process dying there, and costs a third less CPU. Switched back
                    # before the last command, which that sends at once.
                    nagle = _no_delay(connection, False)
                    off = connection.pack_command("CLIENT", "REPLY", "OFF")
                    await connection.send_packed_command(off, check_health=False)
            except self._unlent:
                marks = None
            else:
                marks = EarlyMarks(connection, done_key, self._failures)
            yield marks
            if marks is not None and not marks.broken:
                with anyio.move_on_after(self._timeout):
                    try:
                        if nagle:
                            nagle = not _no_delay(connection, True)
                        on = connection.pack_command("CLIENT", "REPLY", "ON")
                        await connection.send_packed_command(on, check_health=False)
                        answer = await connection.read_response()
                        clean = answer in (b"OK", "OK") and not nagle
                    except self._refused:
                        self.most = 0  # an error answer: this server will not take it later
                    except self._failures:
                        pass  # the connection failed: closed below; the next page lends anew
        finally:
            self._open -= 1
            if connection is not None:
                connection.socket_timeout = timeout
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
                    try:
                        if not clean:
                            await connection.disconnect()
                    finally:
                        await pool.release(connection)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _no_delay(connection: Any, on: bool) -> bool:
    """Set TCP_NODELAY on a redis-py connection's socket; False when it cannot be reached (the
    stream writer is redis-py's own attribute) or is refused."""
    try:
        sock = connection._writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))
    except Exception:
        return False
    return True


def _needs_name(getter: Any) -> bool:
    try:
        parameter = inspect.signature(getter).parameters.get("command_name")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty
