"""``wechat-kf wecom kf-accounts``: the corp's 微信客服 accounts and their open_kfid: list, add
(with an avatar already uploaded, or an image file uploaded first), update, delete, and the
contact link that opens a chat with one."""

from __future__ import annotations

from typing import Any

import click

from wechat_kf import TransportError, WeComClient

from .credentials import wecom_command
from .options import identifier, kf_name
from .reports import listing, one_call
from .tables import wecom_accounts_table


@click.group("kf-accounts")
def kf_accounts() -> None:
    """The 微信客服 accounts of the corp."""


@wecom_command(
    kf_accounts, "list", "List the 微信客服 accounts and their open_kfid.", open_kfid=False
)
def kf_accounts_list(**opts: Any) -> None:
    listing(opts, WeComClient, lambda c: c.kf_accounts.list(), wecom_accounts_table, "kf_accounts")


_media_id = click.option("--media-id", help="The avatar: a media_id from 'wecom media upload'.")
_avatar = click.option(
    "--avatar",
    type=click.Path(dir_okay=False),
    help="The avatar: a JPEG or PNG file, uploaded first (instead of --media-id).",
)


def _avatar_source(media_id: str | None, avatar: str | None, *, required: bool) -> None:
    """Refuse --media-id with --avatar, and neither when an avatar is ``required``."""
    if media_id is not None and avatar is not None:
        raise click.UsageError("give --media-id or --avatar, not both")
    if required and media_id is None and avatar is None:
        raise click.UsageError("give the avatar: --media-id ID, or --avatar IMAGE to upload one")


async def _media(client: WeComClient, media_id: str | None, avatar: str | None) -> str | None:
    """The avatar's media_id: the one given, or that of ``avatar`` uploaded as an image."""
    if avatar is None:
        return media_id
    return await client.media.upload(avatar, type="image")


@wecom_command(
    kf_accounts,
    "add",
    "Add a 微信客服 account named NAME (1-16 characters); prints its open_kfid. The avatar is "
    "--media-id, or --avatar IMAGE, which uploads the image first.",
    open_kfid=False,
)
@click.argument("name", callback=kf_name)
@_media_id
@_avatar
def kf_accounts_add(name: str, media_id: str | None, avatar: str | None, **opts: Any) -> None:
    """Add a kf account and print its open_kfid; with --avatar the image is uploaded first (its
    media_id is in the --json document too). Never sent twice: a lost answer says to look for
    the account before adding it again."""
    _avatar_source(media_id, avatar, required=True)
    adding: list[bool] = []

    async def add(client: WeComClient) -> tuple[str, str]:
        uploaded = await _media(client, media_id, avatar)
        assert uploaded is not None
        adding.append(True)
        return await client.kf_accounts.add(name, media_id=uploaded), uploaded

    def maybe_added(error: TransportError) -> str | None:
        if not adding:
            return None  # the upload failed: nothing was added
        return (
            "the account may have been created: look for it with "
            "'wechat-kf wecom kf-accounts list' before adding it again"
        )

    one_call(
        opts,
        WeComClient,
        add,
        lambda done: done[0],
        lambda done: {"open_kfid": done[0], "name": name, "media_id": done[1]},
        if_maybe_applied=maybe_added,
    )


@wecom_command(
    kf_accounts,
    "update",
    "Rename a 微信客服 account and/or change its avatar (--media-id, or --avatar IMAGE).",
    open_kfid=False,
)
@click.argument("open_kfid", callback=identifier)
@click.option("--name", callback=kf_name, help="The new name (1-16 characters).")
@_media_id
@_avatar
def kf_accounts_update(
    open_kfid: str, name: str | None, media_id: str | None, avatar: str | None, **opts: Any
) -> None:
    """Change a kf account's name and/or avatar; at least one of them."""
    _avatar_source(media_id, avatar, required=False)
    if name is None and media_id is None and avatar is None:
        raise click.UsageError("nothing to update: give --name, --media-id or --avatar")

    async def update(client: WeComClient) -> str | None:
        uploaded = await _media(client, media_id, avatar)
        await client.kf_accounts.update(open_kfid, name=name, media_id=uploaded)
        return uploaded

    def data(uploaded: str | None) -> dict[str, Any]:
        changed: dict[str, Any] = {"open_kfid": open_kfid}
        if name is not None:
            changed["name"] = name
        if uploaded is not None:
            changed["media_id"] = uploaded
        return changed

    one_call(opts, WeComClient, update, lambda _: f"updated {open_kfid}", data)


@wecom_command(kf_accounts, "delete", "Delete a 微信客服 account.", open_kfid=False)
@click.argument("open_kfid")
def kf_accounts_delete(open_kfid: str, **opts: Any) -> None:
    """Delete a kf account (95004 when it is already gone)."""
    one_call(
        opts,
        WeComClient,
        lambda c: c.kf_accounts.delete(open_kfid),
        lambda _: f"deleted {open_kfid}",
        lambda _: {"open_kfid": open_kfid},
    )


@wecom_command(
    kf_accounts,
    "contact-way",
    "Print the link that opens a chat with a 微信客服 account.",
    open_kfid=False,
)
@click.argument("open_kfid")
@click.option(
    "--scene", help="Tag the link: up to 32 of [0-9a-zA-Z_-], back in the enter_session event."
)
def kf_accounts_contact_way(open_kfid: str, scene: str | None, **opts: Any) -> None:
    """Print the contact link of a kf account, exactly as WeChat made it (never rebuild it:
    append ``&scene_param=...`` to carry more)."""
    one_call(
        opts,
        WeComClient,
        lambda c: c.kf_accounts.contact_way(open_kfid, scene=scene),
        lambda url: url,
        lambda url: {"open_kfid": open_kfid, "scene": scene, "url": url},
    )
