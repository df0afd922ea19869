"""``wechat-kf wecom media upload``: a file uploaded as temporary media (kept 3 days by WeCom),
for the media_id that messages and kf account avatars take."""

from __future__ import annotations

from typing import Any, Literal

import click

from wechat_kf import WeComClient

from .credentials import wecom_command
from .reports import one_call


@click.group("media")
def media() -> None:
    """Temporary media (kept 3 days): the files messages and avatars refer to."""


@wecom_command(
    media, "upload", "Upload a file as temporary media; prints its media_id.", open_kfid=False
)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--type",
    "kind",
    required=True,
    type=click.Choice(["image", "voice", "video", "file"]),
    help="image: JPEG/PNG, 10 MB; voice: AMR, 2 MB; video: MP4, 10 MB; file: 20 MB.",
)
@click.option("--filename", help="The name WeCom keeps (default: the file's own).")
def media_upload(
    path: str, kind: Literal["image", "voice", "video", "file"], filename: str | None, **opts: Any
) -> None:
    """Upload the file at ``path`` and print its media_id. The SDK checks the size and the
    first bytes (a JPEG or PNG image, an AMR voice, an MP4 video) before sending: a file that
    does not fit its --type is a usage error."""
    one_call(
        opts,
        WeComClient,
        lambda c: c.media.upload(path, type=kind, filename=filename),
        lambda media_id: media_id,
        lambda media_id: {"media_id": media_id, "type": kind},
    )
