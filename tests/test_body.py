"""Reading an answer's body (``wechat_kf._body``), fed chunks directly: the decoded body never
depends on how the bytes were split, nothing a coding yields escapes the cap, bytes after the end
of a coding are refused, and decoding hands the event loop back so a deadline can cut it. The
same promises over real sockets and both exchanges are in test_hostile_wire.py."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from tests._wire import loop_watch
from wechat_kf import InvalidResponseError
from wechat_kf._body import MAX_BODY_BYTES, read_body

pytestmark = pytest.mark.anyio

PAYLOAD = b'{"errcode": 0, "errmsg": "ok", "kf_list": [{"kf_account": "a@gh_body"}]}'


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper, as some servers send ``deflate``."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


async def chunks(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(parts: Sequence[bytes], encoding: str, limit: int = MAX_BODY_BYTES) -> bytes:
    return await read_body(
        chunks(parts), content_encoding=encoding, decode=True, path="/p", status=200, limit=limit
    )


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


# Content-Encoding lists codings in the order they were applied: "gzip, deflate" is gzip first.
ENCODED = {
    "gzip": ("gzip", gzip.compress(PAYLOAD)),
    "zlib deflate": ("deflate", zlib.compress(PAYLOAD)),
    "raw deflate": ("deflate", raw_deflate(PAYLOAD)),
    "gzip then raw deflate": ("gzip, deflate", raw_deflate(gzip.compress(PAYLOAD))),
    "zlib deflate then gzip": ("deflate, gzip", gzip.compress(zlib.compress(PAYLOAD))),
    "gzip twice": ("gzip, gzip", gzip.compress(gzip.compress(PAYLOAD))),
    "two gzip members": ("gzip", gzip.compress(PAYLOAD[:30]) + gzip.compress(PAYLOAD[30:])),
}


@pytest.mark.parametrize("name", ENCODED)
async def test_an_encoded_body_decodes_the_same_at_every_split_point(name: str) -> None:
    encoding, body = ENCODED[name]
    for split in range(len(body) + 1):
        parts = [body[:split], b"", body[split:]]
        assert await read(parts, encoding) == PAYLOAD, f"split at byte {split}"
    assert await read(bytewise(body), encoding) == PAYLOAD


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("deflate", zlib.compress(PAYLOAD) + b"x"),
        ("deflate", raw_deflate(PAYLOAD) + b"\x00"),
        ("gzip", gzip.compress(PAYLOAD) + b"garbage"),
        # Zero padding after the last member, which tape tools tolerate: an HTTP body has an
        # exact length, so it is refused like any other byte that is not a member.
        ("gzip", gzip.compress(PAYLOAD) + bytes(8)),
        # The inner stream ends while the outer one goes on producing.
        ("gzip, gzip", gzip.compress(gzip.compress(PAYLOAD) + bytes(1000))),
        ("gzip, deflate", zlib.compress(gzip.compress(PAYLOAD)) + b"x"),
    ],
    ids=["zlib", "raw", "gzip-garbage", "gzip-zeros", "inner-gzip", "outer-deflate"],
)
async def test_bytes_after_the_end_of_a_coding_make_the_body_undecodable(
    encoding: str, body: bytes
) -> None:
    for parts in ([body], bytewise(body)):
        with pytest.raises(InvalidResponseError):
            await read(parts, encoding)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(PAYLOAD)[:-4]),
        ("gzip", gzip.compress(PAYLOAD) + b"\x1f\x8b"),  # a second member that never comes
        ("deflate", zlib.compress(PAYLOAD)[:-4]),
        ("deflate", raw_deflate(PAYLOAD)[:-2]),
        ("deflate", b"\x78"),  # not even enough to tell zlib from raw deflate
        ("gzip, gzip", gzip.compress(gzip.compress(PAYLOAD)[:-4])),
    ],
    ids=["gzip", "gzip-member", "zlib", "raw", "one-byte", "inner-gzip"],
)
async def test_a_body_that_ends_inside_its_coding_is_undecodable(
    encoding: str, body: bytes
) -> None:
    with pytest.raises(InvalidResponseError, match="ends inside"):
        await read([body], encoding)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, deflate"])
async def test_an_empty_body_is_empty_whatever_its_announced_coding(encoding: str) -> None:
    assert await read([], encoding) == b""
    assert await read([b""], encoding) == b""


async def test_a_body_may_decode_to_exactly_the_cap_and_not_one_byte_more() -> None:
    limit = 4096
    assert await read([gzip.compress(bytes(limit))], "gzip", limit=limit) == bytes(limit)
    with pytest.raises(InvalidResponseError, match="larger than"):
        await read([gzip.compress(bytes(limit + 1))], "gzip", limit=limit)


async def test_what_an_inner_coding_is_fed_counts_against_the_cap() -> None:
    """The outer gzip inflates to twice the cap of valid, empty gzip members: the body itself is
    empty, but producing it cost more than the cap, so it is refused."""
    limit = 4096
    empty_member = gzip.compress(b"")
    body = gzip.compress(empty_member * (2 * limit // len(empty_member)))
    with pytest.raises(InvalidResponseError, match="larger than"):
        await read([body], "gzip, gzip", limit=limit)


async def test_more_codings_than_a_server_would_apply_are_refused() -> None:
    body = PAYLOAD
    for _ in range(5):
        body = gzip.compress(body)
    with pytest.raises(InvalidResponseError, match="content codings"):
        await read([body], ", ".join(["gzip"] * 5))
    assert await read([gzip.decompress(body)], ", ".join(["gzip"] * 4)) == PAYLOAD


async def test_decoding_hands_the_loop_back_so_a_deadline_cuts_it() -> None:
    """64 MiB of valid, empty gzip members, handed over by an iterator that never waits: only
    the decoder's own checkpoints let the sleeping task run and the deadline fire (on a
    decoder without them, the loop is held for the whole 64 MiB)."""
    member = gzip.compress(b"")
    chunk = member * (64 * 1024 // len(member))
    deadline = 0.05

    with anyio.fail_after(30):
        async with loop_watch() as watch:
            started = anyio.current_time()
            with anyio.move_on_after(deadline) as scope:
                await read_body(
                    chunks([chunk] * 1024),
                    content_encoding="gzip",
                    decode=True,
                    path="/p",
                    status=200,
                    limit=2**40,
                )
            elapsed = anyio.current_time() - started
    assert scope.cancelled_caught
    assert elapsed < deadline + 0.2
    assert watch.longest_stall() < 0.1
