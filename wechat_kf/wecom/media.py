"""Media: the temporary media of a WeCom corp (``media/upload``, ``media/get``), the files 微信客服
messages and kf account avatars refer to by ``media_id``."""

from __future__ import annotations

import email.message
import email.utils
import mimetypes
from typing import Literal

from .. import _validate
from .._transport import Transport
from ..errors import InvalidResponseError
from ..models import MediaFile

__all__ = ["DEFAULT_MAX_DOWNLOAD_BYTES", "MAX_MEDIA_BYTES", "Media", "MediaType"]

#: The kinds of media WeCom stores.
MediaType = Literal["image", "voice", "video", "file"]

_MB = 1024 * 1024
#: The largest file WeCom takes for each type (image jpg/png, voice amr, video mp4, any file).
MAX_MEDIA_BYTES: dict[str, int] = {
    "image": 10 * _MB,
    "voice": 2 * _MB,
    "video": 10 * _MB,
    "file": 20 * _MB,
}
#: WeCom refuses a file of 5 bytes or fewer.
_MIN_MEDIA_BYTES = 6
#: What a download may weigh unless the caller says otherwise: the largest upload (20 MB) and
#: 1 MiB more, for a server that counts its megabytes differently than we do.
DEFAULT_MAX_DOWNLOAD_BYTES = 21 * _MB

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_AMR = b"#!AMR"
_UPLOAD = "/cgi-bin/media/upload"
_GET = "/cgi-bin/media/get"
# Python's own table only: the system's mime.types would make the content type differ between
# machines.
_MIME = mimetypes.MimeTypes()


class Media:
    """The temporary media of a WeCom corp (``client.media``): upload a file to get the
    ``media_id`` that messages and kf account avatars take (WeCom keeps it 3 days), and download
    what a media_id names, such as the image a customer sent. Every argument is checked before
    a request is sent; an upload may be re-sent after a lost answer (a second copy only makes
    another media_id)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def upload(
        self, data: _validate.FileInput, *, type: MediaType, filename: str | None = None
    ) -> str:
        """Upload ``data`` (bytes, or the path of a file) as a ``type`` medium and return its
        ``media_id``. Before sending, the size is checked (image and video at most 10 MB, voice
        2 MB, file 20 MB (MiB), and every file more than 5 bytes), and so is the signature at the
        start of the bytes, not the whole file: an image must open as JPEG or PNG, a voice with
        ``#!AMR`` (narrow- and wide-band AMR both pass), a video with an ISO ``ftyp`` box (the
        MP4 family; its brand is not checked); a ``file`` may hold anything. That catches the
        wrong file, not a broken one: WeCom has the last word (40004..40011). ``filename``
        defaults to the path's name, else ``image.jpg`` / ``image.png``, ``voice.amr``,
        ``video.mp4`` or ``file.bin``; the content type comes from the signature for image, voice
        and video, and from the filename's extension for a file."""
        kind = _media_type(type)
        if filename is not None:
            filename = _validate.filename(filename)
        content, name = await _validate.file_bytes(kind, data, max_bytes=MAX_MEDIA_BYTES[kind])
        if len(content) < _MIN_MEDIA_BYTES:
            raise ValueError(f"{kind} must be more than 5 bytes, got {len(content)}")
        content_type = _sniff(kind, content)
        filename = filename or name or f"{kind}{_EXTENSIONS.get(content_type, '.bin')}"
        if kind == "file":
            content_type = _MIME.guess_type(filename)[0] or "application/octet-stream"
        body = await self._transport.request(
            "POST",
            _UPLOAD,
            params={"type": kind},
            files={"media": (filename, content, content_type)},
            idempotent=True,
        )
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise InvalidResponseError("the answer has no media_id", path=_UPLOAD)
        return media_id

    async def download(
        self, media_id: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    ) -> MediaFile:
        """The file ``media_id`` names, read into memory: its bytes, the Content-Type WeCom gave
        and the filename of its Content-Disposition (``filename*=`` of RFC 5987 preferred over
        ``filename=``, reduced to its last path component; None without one). A body over
        ``max_bytes`` (default 21 MiB: the largest upload and a margin) is an
        ``InvalidResponseError``; WeChat's JSON error in place of the file raises as any call's
        would (40007: the media_id is unknown or older than 3 days). Retried like any read."""
        media_id = _validate.token_like("media_id", media_id)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError(f"max_bytes must be an int, not {type(max_bytes).__name__}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        content, headers = await self._transport.download(
            _GET, params={"media_id": media_id}, max_bytes=max_bytes
        )
        return MediaFile(
            content,
            headers.get("content-type") or None,
            _disposition_filename(headers.get("content-disposition")),
        )


_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "audio/amr": ".amr",
    "video/mp4": ".mp4",
}


def _media_type(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"type must be a str, not {type(value).__name__}")
    if value not in MAX_MEDIA_BYTES:
        raise ValueError(f"type must be one of image, voice, video, file; got {value!r}")
    return value


def _sniff(kind: str, data: bytes) -> str:
    """The content type the first bytes of ``data`` prove for ``kind``; ValueError when they
    prove it is not that kind."""
    if kind == "image":
        if data.startswith(_JPEG):
            return "image/jpeg"
        if data.startswith(_PNG):
            return "image/png"
        raise ValueError("an image must be a JPEG or a PNG, and these bytes start as neither")
    if kind == "voice":
        if data.startswith(_AMR):
            return "audio/amr"
        raise ValueError("a voice must be AMR (starting with #!AMR), and these bytes do not")
    if kind == "video":
        if data[4:8] == b"ftyp":
            return "video/mp4"
        raise ValueError("a video must be MP4 (an ftyp box first), and these bytes are not")
    return "application/octet-stream"


def _disposition_filename(value: str | None) -> str | None:
    """The filename a Content-Disposition names, read by the standard library's MIME parser:
    ``filename*=`` (RFC 5987 / 2231, decoded from its charset) before ``filename=``, as RFC
    6266 asks; only its last path component, since a caller may well save it under that name;
    None when there is none left or it holds a control character."""
    if not value:
        return None
    message = email.message.Message()
    message["content-disposition"] = value
    plain: str | None = None
    extended: str | None = None
    for key, param in message.get_params([], header="content-disposition")[1:]:
        if key.lower() != "filename":
            continue
        if isinstance(param, tuple):
            extended = extended or email.utils.collapse_rfc2231_value(param)
        else:
            plain = plain or param
    name = (extended or plain or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return None
    return name
