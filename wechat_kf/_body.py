"""Reading an answer's body: at most a cap of bytes off the wire and, after undoing its
Content-Encoding, at most the same cap of decoded bytes, whatever the headers claim.

Decompression runs in small steps as the bytes arrive, so a gzip bomb (or two layers of one) costs
the cap plus a step, never what it would inflate to. It knows no HTTP library: an exchange hands it
the raw chunks it receives.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, Iterator

from .errors import InvalidResponseError

__all__ = ["ACCEPT_ENCODING", "MAX_BODY_BYTES", "read_body"]

#: A WeChat answer is a few kilobytes; anything this large is not one.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: What we ask for: exactly the encodings this module can undo.
ACCEPT_ENCODING = "gzip, deflate"
#: The most one decompression step may produce before the cap is checked again.
_STEP = 64 * 1024


class _Undecodable(Exception):
    """The body cannot be read as the headers say; becomes an InvalidResponseError."""


class _Inflater:
    """One gzip or deflate layer, undone in bounded steps."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._raw_fallback = coding == "deflate"
        # deflate is meant to be zlib-wrapped, but some servers send raw deflate.
        wbits = zlib.MAX_WBITS if coding == "deflate" else zlib.MAX_WBITS | 16
        self._obj = zlib.decompressobj(wbits)

    def decompress(self, data: bytes) -> Iterator[bytes]:
        try:
            while True:
                out = self._obj.decompress(data, _STEP)
                self._raw_fallback = False
                yield out
                data = self._obj.unconsumed_tail
                # A full step may leave output pending even when all input was consumed.
                if not data and len(out) < _STEP:
                    return
        except zlib.error:
            if not self._raw_fallback:
                raise _Undecodable(f"body does not decode as {self.coding}") from None
            self._raw_fallback = False
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self.decompress(data)

    def flush(self) -> bytes:
        try:
            return self._obj.flush()
        except zlib.error:
            raise _Undecodable(f"body does not decode as {self.coding}") from None


_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


class _Decoder:
    """Undoes the codings of a Content-Encoding header (last applied, first undone) and keeps at
    most ``limit`` decoded bytes."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        for coding in codings:
            if coding not in _CODINGS:
                raise _Undecodable(f"unsupported Content-Encoding {coding!r}")
        self._layers = [_Inflater(_CODINGS[c]) for c in reversed(codings)]
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._push(0, data)

    def finish(self) -> bytes:
        for index, layer in enumerate(self._layers):
            self._push(index + 1, layer.flush())
        return b"".join(self._parts)

    def _push(self, index: int, data: bytes) -> None:
        if not data:
            return
        if index == len(self._layers):
            self._size += len(data)
            if self._size > self._limit:
                raise _Undecodable(f"decoded body larger than {self._limit} bytes")
            self._parts.append(data)
            return
        for piece in self._layers[index].decompress(data):
            self._push(index + 1, piece)


async def read_body(
    chunks: AsyncIterable[bytes],
    *,
    content_encoding: str,
    decode: bool,
    path: str,
    status: int,
    limit: int = MAX_BODY_BYTES,
) -> bytes:
    """The body from ``chunks`` (raw, as received), decoded per ``content_encoding`` when
    ``decode`` (otherwise only drained, so the connection can be reused); InvalidResponseError
    when more than ``limit`` bytes arrive or decode, or the body does not decode as announced."""
    received = 0
    iterator = aiter(chunks)
    try:
        decoder = _Decoder(content_encoding if decode else "", limit)
        async for chunk in iterator:
            received += len(chunk)
            if received > limit:
                raise _Undecodable(f"response body larger than {limit} bytes")
            if decode:
                decoder.feed(chunk)
        return decoder.finish() if decode else b""
    except _Undecodable as exc:
        raise InvalidResponseError(str(exc), path=path, status_code=status) from None
    finally:
        # Left early, an async generator must be closed here, not by the garbage collector.
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
