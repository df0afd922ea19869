"""Reading an answer's body: at most a cap of bytes off the wire and, after undoing its
Content-Encoding, at most the same cap of bytes out of every coding layer, whatever the headers
claim.

Decoding runs in steps of at most ``_STEP`` bytes in and out of zlib and hands the event loop back
between them at least every ``_SLICE`` seconds, so a bomb costs the cap or the attempt's deadline,
whichever comes first, and never freezes the loop. The result never depends on how the bytes were
split on the way. It knows no HTTP library: an exchange hands it the raw chunks it receives.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterable, Iterator
from typing import Any

import anyio.lowlevel

from .errors import InvalidResponseError

__all__ = ["ACCEPT_ENCODING", "MAX_BODY_BYTES", "read_body"]

#: A WeChat answer is a few kilobytes; anything this large is not one.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: What we ask for: exactly the encodings this module can undo.
ACCEPT_ENCODING = "gzip, deflate"
#: The most one zlib call may take in, and give out, before the caps and the clock are checked:
#: small enough that even the costliest input (empty blocks, each with its own Huffman tables to
#: build) keeps one call within a few milliseconds.
_STEP = 16 * 1024
#: The most decoding may hold the event loop before it lets other tasks, and the deadline, run.
_SLICE = 0.005
#: Servers apply one coding, rarely two; each layer may cost the cap again, so their number is
#: bounded too (a header of thousands of "gzip" would otherwise cost thousands of caps).
_MAX_CODINGS = 4
_GZIP_WBITS = zlib.MAX_WBITS | 16


class _Undecodable(Exception):
    """The body cannot be read as the headers say; becomes an InvalidResponseError."""


def _is_zlib_header(head: bytes) -> bool:
    """Whether the two bytes open a stream zlib accepts (RFC 1950: method 8, window at most 32 KiB,
    check bits, no preset dictionary): exactly the test zlib itself applies to them."""
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0 and not flg & 0x20


class _Layer:
    """One gzip or deflate coding, undone in bounded steps.

    A gzip layer may hold several members one after the other (RFC 1952, 2.2), as Python's gzip
    module and urllib3 read them; a deflate layer holds one stream. Any other byte after the end
    makes the body undecodable rather than being ignored: ignored bytes would still have cost
    the work of producing them, and no cap would count it.
    """

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.produced = 0
        self._obj: Any = None
        # deflate only: the first bytes, kept until there are two to tell zlib from raw deflate.
        self._head = b""

    def steps(self, data: bytes) -> Iterator[bytes]:
        """The output of ``data``, one zlib call at a time; each call takes at most ``_STEP``
        bytes and gives at most ``_STEP`` (possibly none)."""
        if self._obj is None and data:
            data = self._open(data)
        for start in range(0, len(data), _STEP):
            yield from self._inflate(data[start : start + _STEP])

    def finish(self) -> None:
        """Raises unless the body ended exactly at the end of a stream (or carried none)."""
        if self._head or (self._obj is not None and not self._obj.eof):
            raise _Undecodable(f"body ends inside its {self.coding} stream")

    def _open(self, data: bytes) -> bytes:
        if self.coding == "gzip":
            self._obj = zlib.decompressobj(_GZIP_WBITS)
            return data
        # deflate is meant to be zlib-wrapped (RFC 9110, 8.4.1.2), but some servers send it raw.
        # Deciding on the first two bytes, whatever chunks carried them, keeps the result
        # independent of how TCP split the body.
        self._head += data
        if len(self._head) < 2:
            return b""
        data, self._head = self._head, b""
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS)
        return data

    def _inflate(self, pending: bytes) -> Iterator[bytes]:
        obj = self._obj
        while True:
            if obj.eof:
                if not pending:
                    return
                if self.coding != "gzip":
                    raise _Undecodable("data after the end of the deflate stream")
                obj = self._obj = zlib.decompressobj(_GZIP_WBITS)  # the next member
            try:
                out = obj.decompress(pending, _STEP)
            except zlib.error:
                raise _Undecodable(f"body does not decode as {self.coding}") from None
            pending = obj.unused_data if obj.eof else obj.unconsumed_tail
            yield out
            # A full step may leave output pending even when all input was consumed.
            if not pending and not obj.eof and len(out) < _STEP:
                return


_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


class _Decoder:
    """Undoes the codings of a Content-Encoding header (last applied, first undone); every layer
    may give out at most ``limit`` bytes, the last one's being the body."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        for coding in codings:
            if coding not in _CODINGS:
                raise _Undecodable(f"unsupported Content-Encoding {coding!r}")
        if len(codings) > _MAX_CODINGS:
            raise _Undecodable(f"more than {_MAX_CODINGS} content codings")
        self._layers = [_Layer(_CODINGS[c]) for c in reversed(codings)]
        self._limit = limit
        self._parts: list[bytes] = []
        # Decoding time since the loop last ran other tasks, across chunks: a library may hand
        # over buffered chunks without yielding in between.
        self._busy = 0.0
        self._entered = 0.0

    async def feed(self, data: bytes) -> None:
        self._entered = time.perf_counter()
        await self._push(0, data)
        self._busy += time.perf_counter() - self._entered

    def finish(self) -> bytes:
        for layer in self._layers:
            layer.finish()
        return b"".join(self._parts)

    async def _push(self, index: int, data: bytes) -> None:
        if index == len(self._layers):
            self._parts.append(data)
            return
        layer = self._layers[index]
        for piece in layer.steps(data):
            if piece:
                layer.produced += len(piece)
                if layer.produced > self._limit:
                    raise _Undecodable(f"decoded body larger than {self._limit} bytes")
                await self._push(index + 1, piece)
            await self._pace()

    async def _pace(self) -> None:
        now = time.perf_counter()
        if self._busy + now - self._entered >= _SLICE:
            # Also where the attempt's deadline (a cancel scope) takes effect.
            await anyio.lowlevel.checkpoint()
            self._busy = 0.0
            self._entered = time.perf_counter()


async def read_body(
    chunks: AsyncIterable[bytes],
    *,
    content_encoding: str,
    decode: bool,
    path: str,
    status: int,
    limit: int = MAX_BODY_BYTES,
) -> bytes:
    """The body from ``chunks`` (raw, as received), decoded per ``content_encoding`` (every
    Content-Encoding line of the answer, joined by commas in order) when ``decode``, otherwise
    only drained so the connection can be reused. InvalidResponseError when more than ``limit``
    bytes arrive or come out of any coding, or the body does not decode as announced; decoding
    lets other tasks run between bounded steps, so a deadline around the call stays effective."""
    received = 0
    iterator = aiter(chunks)
    try:
        if not decode or _is_identity(content_encoding):
            # Nothing to undo (WeChat's JSON is sent as it is): the chunks, counted.
            parts = []
            async for chunk in iterator:
                received += len(chunk)
                if received > limit:
                    raise _Undecodable(f"response body larger than {limit} bytes")
                if decode:
                    parts.append(chunk)
            return b"".join(parts)
        decoder = _Decoder(content_encoding, limit)
        async for chunk in iterator:
            received += len(chunk)
            if received > limit:
                raise _Undecodable(f"response body larger than {limit} bytes")
            await decoder.feed(chunk)
        return decoder.finish()
    except _Undecodable as exc:
        raise InvalidResponseError(str(exc), path=path, status_code=status) from None
    finally:
        # Left early, an async generator must be closed here, not by the garbage collector.
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _is_identity(content_encoding: str) -> bool:
    """Whether the header names no coding to undo (none, or only ``identity``)."""
    return not content_encoding or all(
        c.strip().lower() in ("", "identity") for c in content_encoding.split(",")
    )
