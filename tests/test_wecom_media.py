"""wc.media: upload (bytes or a path, checked before sending, re-sent after a lost answer) and
download (bytes, content type, both Content-Disposition forms, WeChat's JSON error, the cap)."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests._scripted import SECRET, Scripted
from tests._servers import serve
from wechat_kf import APIError, InvalidResponseError, MediaFile, WeComClient
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

UPLOAD = "/cgi-bin/media/upload"
GET = "/cgi-bin/media/get"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 60
AMR = b"#!AMR\n" + b"\x3c" * 60
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 60
PDF = b"%PDF-1.7\n" + b"x" * 60
MB = 1024 * 1024
UPLOADED = {"errcode": 0, "errmsg": "ok", "type": "image", "media_id": "MEDIA_1", "created_at": "1"}


@pytest.fixture
def script(secret_watch: set[str]) -> Scripted:
    secret_watch.add(SECRET)  # every token the script issues contains it
    return Scripted()


@asynccontextmanager
async def wecom(script: Scripted, **options: Any) -> AsyncIterator[WeComClient]:
    async with (
        script.client() as http,
        WeComClient("ww", SECRET, http_client=http, **options) as wc,
    ):
        with anyio.fail_after(20):
            yield wc


def parts(request: httpx.Request) -> dict[str, tuple[str | None, str, bytes]]:
    """The multipart fields of ``request``: name -> (filename, content type, bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.content, policy=email.policy.HTTP)
    fields = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
    return fields


async def test_upload_sends_type_in_the_query_and_the_file_as_multipart_field_media(
    script: Scripted,
) -> None:
    script.business.append(UPLOADED)
    async with wecom(script) as wc:
        media_id = await wc.media.upload(PNG, type="image", filename="logo.png")
    assert media_id == "MEDIA_1"
    (request,) = script.business_requests
    assert (request.method, request.url.path) == ("POST", UPLOAD)
    assert request.url.params["type"] == "image"
    assert set(request.url.params) == {"type", "access_token"}
    assert parts(request) == {"media": ("logo.png", "image/png", PNG)}


@pytest.mark.parametrize(
    ("data", "kind", "filename", "sent_name", "content_type"),
    [
        (JPEG, "image", None, "image.jpg", "image/jpeg"),
        (PNG, "image", None, "image.png", "image/png"),
        (AMR, "voice", None, "voice.amr", "audio/amr"),
        (b"#!AMR-WB\n" + b"\x00" * 20, "voice", None, "voice.amr", "audio/amr"),
        (MP4, "video", None, "video.mp4", "video/mp4"),
        (PDF, "file", None, "file.bin", "application/octet-stream"),
        (PDF, "file", "report.pdf", "report.pdf", "application/pdf"),
        (PDF, "file", "notes.unknown-ext", "notes.unknown-ext", "application/octet-stream"),
        # the bytes, checked, say what an image is, whatever its name claims
        (JPEG, "image", "photo.png", "photo.png", "image/jpeg"),
    ],
)
async def test_upload_names_the_file_and_types_it_from_its_signature_or_extension(
    script: Scripted,
    data: bytes,
    kind: Any,
    filename: str | None,
    sent_name: str,
    content_type: str,
) -> None:
    script.business.append(UPLOADED)
    async with wecom(script) as wc:
        assert await wc.media.upload(data, type=kind, filename=filename) == "MEDIA_1"
    (request,) = script.business_requests
    assert request.url.params["type"] == kind
    assert parts(request) == {"media": (sent_name, content_type, data)}


async def test_upload_from_a_path_sends_the_files_bytes_under_its_name(
    script: Scripted, tmp_path: Path
) -> None:
    clip = tmp_path / "intro.mp4"
    clip.write_bytes(MP4)
    script.business.extend([UPLOADED] * 3)
    async with wecom(script) as wc:
        await wc.media.upload(clip, type="video")
        await wc.media.upload(str(clip), type="video")
        await wc.media.upload(clip, type="video", filename="renamed.mp4")
    sent = [parts(r)["media"] for r in script.business_requests]
    assert sent == [
        ("intro.mp4", "video/mp4", MP4),
        ("intro.mp4", "video/mp4", MP4),
        ("renamed.mp4", "video/mp4", MP4),
    ]


async def test_a_non_ascii_filename_is_sent_as_utf8(script: Scripted) -> None:
    script.business.append(UPLOADED)
    async with wecom(script) as wc:
        await wc.media.upload(PDF, type="file", filename="报告.pdf")
    assert 'filename="报告.pdf"'.encode() in script.business_requests[0].content


@pytest.mark.parametrize(
    "failure", [httpx.Response(502), httpx.RemoteProtocolError("Server disconnected")]
)
async def test_an_upload_whose_answer_was_lost_is_sent_again(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.extend([failure, UPLOADED])
    async with wecom(script) as wc:
        assert await wc.media.upload(JPEG, type="image") == "MEDIA_1"
    first, second = script.business_requests
    assert parts(first) == parts(second) == {"media": ("image.jpg", "image/jpeg", JPEG)}


@pytest.mark.parametrize("errcode", [40004, 40005, 40006, 40009, 40011])
async def test_a_refused_upload_raises_its_errcode_once(script: Scripted, errcode: int) -> None:
    script.business.append({"errcode": errcode, "errmsg": "invalid media, hint: [h-1]"})
    async with wecom(script) as wc:
        with pytest.raises(APIError) as info:
            await wc.media.upload(JPEG, type="image")
    assert info.value.errcode == errcode
    assert info.value.path == UPLOAD
    assert len(script.business_requests) == 1


@pytest.mark.parametrize("answer", [{"errcode": 0}, {"media_id": ""}, {"media_id": 7}])
async def test_an_upload_answer_without_a_media_id_is_an_invalid_response(
    script: Scripted, answer: dict[str, Any]
) -> None:
    script.business.append(answer)
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError, match="media_id"):
            await wc.media.upload(JPEG, type="image")


BAD_UPLOADS: list[tuple[str, Any, dict[str, Any], type[Exception], str]] = [
    ("unknown type", JPEG, {"type": "gif"}, ValueError, "type"),
    ("type not str", JPEG, {"type": None}, TypeError, "type"),
    ("data not bytes", 42, {"type": "image"}, TypeError, "bytes or a path"),
    ("empty", b"", {"type": "file"}, ValueError, "empty"),
    ("5 bytes", b"12345", {"type": "file"}, ValueError, "more than 5 bytes"),
    ("image over 10 MB", JPEG + b"\x00" * (10 * MB), {"type": "image"}, ValueError, "10 MB"),
    ("voice over 2 MB", AMR + b"\x00" * (2 * MB), {"type": "voice"}, ValueError, "2 MB"),
    ("video over 10 MB", MP4 + b"\x00" * (10 * MB), {"type": "video"}, ValueError, "10 MB"),
    ("file over 20 MB", b"\x00" * (20 * MB + 1), {"type": "file"}, ValueError, "20 MB"),
    ("gif as image", b"GIF89a" + b"\x00" * 20, {"type": "image"}, ValueError, "JPEG or a PNG"),
    ("jpeg as voice", JPEG, {"type": "voice"}, ValueError, "AMR"),
    ("no ftyp box", b"\x00\x00\x00\x18moov" + b"\x00" * 20, {"type": "video"}, ValueError, "MP4"),
    ("a path as filename", JPEG, {"type": "image", "filename": "a/b.jpg"}, ValueError, "bare"),
    ("a quote in the filename", JPEG, {"type": "image", "filename": 'a"b.jpg'}, ValueError, "bare"),
    ("backslash", JPEG, {"type": "image", "filename": "a\\b.jpg"}, ValueError, "bare"),
    ("newline", JPEG, {"type": "image", "filename": "a\r\nb.jpg"}, ValueError, "bare"),
    ("empty filename", JPEG, {"type": "image", "filename": ""}, ValueError, "name a file"),
    ("dot dot", JPEG, {"type": "image", "filename": ".."}, ValueError, "name a file"),
    ("filename not str", JPEG, {"type": "image", "filename": 1}, TypeError, "filename"),
    ("not UTF-8", JPEG, {"type": "image", "filename": "\ud800.jpg"}, ValueError, "UTF-8"),
    ("missing file", "/no/such/file.jpg", {"type": "image"}, ValueError, "cannot read"),
]


@pytest.mark.parametrize(
    ("data", "kwargs", "exc", "match"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
async def test_bad_uploads_raise_before_any_request(
    script: Scripted, data: Any, kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    async with wecom(script) as wc:
        with pytest.raises(exc, match=match):
            await wc.media.upload(data, **kwargs)
    assert script.requests == []


async def test_the_limits_themselves_are_accepted(script: Scripted) -> None:
    script.business.extend([UPLOADED] * 2)
    async with wecom(script) as wc:
        await wc.media.upload(JPEG + b"\x00" * (10 * MB - len(JPEG)), type="image")
        await wc.media.upload(b"123456", type="file")
    assert len(script.business_requests) == 2


async def test_a_file_over_its_limit_is_refused_without_being_read(
    script: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.amr"
    with big.open("wb") as handle:
        handle.truncate(2 * MB + 1)

    async def never(self: anyio.Path) -> bytes:
        raise AssertionError("read a file that its size already refused")

    monkeypatch.setattr(anyio.Path, "read_bytes", never)
    async with wecom(script) as wc:
        with pytest.raises(ValueError, match="2 MB"):
            await wc.media.upload(big, type="voice")
    assert script.requests == []


def file_answer(content: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=content, headers=headers)


async def test_download_returns_the_bytes_content_type_and_filename(script: Scripted) -> None:
    script.business.append(
        file_answer(
            JPEG,
            **{
                "content-type": "image/jpeg",
                "content-disposition": 'attachment; filename="a b.jpg"',
            },
        )
    )
    async with wecom(script) as wc:
        media = await wc.media.download("MEDIA_1")
    assert media == MediaFile(JPEG, "image/jpeg", "a b.jpg")
    assert "bytes" in repr(media)
    (request,) = script.business_requests
    assert (request.method, request.url.path) == ("GET", GET)
    assert request.url.params["media_id"] == "MEDIA_1"
    assert set(request.url.params) == {"media_id", "access_token"}


@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        ("attachment; filename*=UTF-8''%E4%BD%A0%E5%A5%BD.png", "你好.png"),
        # RFC 6266: the extended form wins over the plain fallback, in either order
        ("attachment; filename=\"fallback.png\"; filename*=UTF-8''%E4%BD%A0.png", "你.png"),
        ("attachment; filename*=utf-8''%E4%BD%A0.png; filename=\"fallback.png\"", "你.png"),
        ("attachment; filename=plain.amr", "plain.amr"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\temp\\\\x.jpg"', "x.jpg"),
        ('attachment; filename=".."', None),
        ("attachment", None),
        ("inline", None),
        ("", None),
    ],
)
async def test_download_reads_the_filename_of_either_content_disposition_form(
    script: Scripted, disposition: str, filename: str | None
) -> None:
    headers = {"content-type": "image/png"}
    if disposition:
        headers["content-disposition"] = disposition
    script.business.append(file_answer(PNG, **headers))
    async with wecom(script) as wc:
        media = await wc.media.download("MEDIA_1")
    assert (media.content, media.filename) == (PNG, filename)


async def test_download_without_file_headers_has_none(script: Scripted) -> None:
    script.business.append(file_answer(AMR))
    async with wecom(script) as wc:
        assert await wc.media.download("m") == MediaFile(AMR, None, None)


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/json; charset=utf-8"]
)
async def test_a_json_error_in_place_of_the_file_raises_it(
    script: Scripted, content_type: str
) -> None:
    error = json.dumps({"errcode": 40007, "errmsg": "invalid media_id, hint: [h-40007]"})
    script.business.append(file_answer(error.encode(), **{"content-type": content_type}))
    async with wecom(script) as wc:
        with pytest.raises(APIError) as info:
            await wc.media.download("EXPIRED")
    assert info.value.errcode == 40007
    assert info.value.rid == "h-40007"
    assert info.value.path == GET
    assert len(script.business_requests) == 1


async def test_a_file_over_max_bytes_is_an_invalid_response(script: Scripted) -> None:
    script.business.extend([file_answer(b"x" * 101), file_answer(b"x" * 100)])
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError):
            await wc.media.download("m", max_bytes=100)
        assert (await wc.media.download("m", max_bytes=100)).content == b"x" * 100
    assert len(script.business_requests) == 2


async def test_a_gzip_encoded_file_is_decoded(script: Scripted) -> None:
    body = gzip.compress(PDF * 100)
    script.business.append(
        file_answer(body, **{"content-encoding": "gzip", "content-type": "application/pdf"})
    )
    async with wecom(script) as wc:
        media = await wc.media.download("m")
    assert media.content == PDF * 100
    assert media.content_type == "application/pdf"


async def test_a_gzip_file_that_inflates_over_max_bytes_is_an_invalid_response(
    script: Scripted,
) -> None:
    script.business.append(
        file_answer(gzip.compress(b"\x00" * 10_000), **{"content-encoding": "gzip"})
    )
    async with wecom(script) as wc:
        with pytest.raises(InvalidResponseError):
            await wc.media.download("m", max_bytes=1000)


@pytest.mark.parametrize(
    "failure", [httpx.Response(502), httpx.RemoteProtocolError("Server disconnected")]
)
async def test_a_download_whose_answer_was_lost_is_retried(
    script: Scripted, failure: httpx.Response | Exception
) -> None:
    script.business.extend([failure, file_answer(PNG, **{"content-type": "image/png"})])
    async with wecom(script) as wc:
        assert (await wc.media.download("m")).content == PNG
    assert len(script.business_requests) == 2


@pytest.mark.parametrize(
    ("media_id", "kwargs", "exc"),
    [
        ("", {}, ValueError),
        ("a b", {}, ValueError),
        (None, {}, TypeError),
        ("m", {"max_bytes": 0}, ValueError),
        ("m", {"max_bytes": True}, TypeError),
        ("m", {"max_bytes": "10"}, TypeError),
    ],
)
async def test_bad_downloads_raise_before_any_request(
    script: Scripted, media_id: Any, kwargs: dict[str, Any], exc: type[Exception]
) -> None:
    async with wecom(script) as wc:
        with pytest.raises(exc):
            await wc.media.download(media_id, **kwargs)
    assert script.requests == []


@pytest.mark.parametrize("filename", ["logo.png", "标志 1.png"])
async def test_a_file_goes_up_and_comes_back_the_same_over_either_exchange(
    exchange: str, filename: str, request: pytest.FixtureRequest
) -> None:
    # Over a real loopback socket: each exchange's multipart and its file headers.
    fake = FakeWeChat()
    app = fake.register_wecom_app()
    with serve(fake.app) as base_url:
        async with WeComClient(app.corpid, app.secret, base_url=base_url, exchange=exchange) as wc:
            with anyio.fail_after(20):
                media_id = await wc.media.upload(PNG, type="image", filename=filename)
                media = await wc.media.download(media_id)
    assert media == MediaFile(PNG, "image/png", filename)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
async def test_a_path_that_is_not_a_regular_file_is_refused_without_waiting(
    script: Scripted, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    async with wecom(script) as wc:
        for path in (fifo, Path("/dev/zero"), tmp_path):
            with anyio.fail_after(5), pytest.raises(ValueError, match="not a regular file"):
                await wc.media.upload(path, type="image")
    assert script.requests == []


async def test_a_huge_file_is_read_only_up_to_one_byte_past_the_cap(
    script: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wechat_kf import _validate

    reads: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        chunk = real_read(fd, n)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(_validate.os, "read", counting_read)
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\x00" * (11 * 1024 * 1024))
    async with wecom(script) as wc:
        with pytest.raises(ValueError, match="at most 10 MB"):
            await wc.media.upload(big, type="image")
    assert sum(reads) == 10 * 1024 * 1024 + 1
    assert script.requests == []


@pytest.mark.parametrize("name", ['say "hi".png', "new\nline.png"])
async def test_a_path_whose_name_cannot_travel_is_sent_under_a_default_name(
    script: Scripted, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(PNG)
    script.business.append({"errcode": 0, "type": "image", "media_id": "m1", "created_at": "1"})
    async with wecom(script) as wc:
        assert await wc.media.upload(path, type="image") == "m1"
    (request,) = script.business_requests
    assert b'filename="image.png"' in request.content
