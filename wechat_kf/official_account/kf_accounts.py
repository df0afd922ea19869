"""KfAccounts: the Official Account customer-service (kf) account resource."""

from __future__ import annotations

import builtins
import os

from .. import _validate
from .._serde import structure_list
from .._transport import Transport
from ..models import KfAccount, OnlineKfAccount

__all__ = ["KfAccounts"]

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


class KfAccounts:
    """The kf accounts of one Official Account (``client.kf_accounts``): list them, see who is
    online, add, rename, invite a WeChat user to bind, set the avatar, delete. Every argument is
    checked before a request is sent; WeChat's refusals raise the ``KfAccountError`` family."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self) -> builtins.list[KfAccount]:
        """Every kf account of the Official Account (``getkflist``)."""
        path = "/cgi-bin/customservice/getkflist"
        body = await self._transport.request("GET", path)
        return structure_list(body, "kf_list", KfAccount, path=path)

    async def list_online(self) -> builtins.list[OnlineKfAccount]:
        """The kf accounts that are online now, with their load (``getonlinekflist``)."""
        path = "/cgi-bin/customservice/getonlinekflist"
        body = await self._transport.request("GET", path)
        return structure_list(body, "kf_online_list", OnlineKfAccount, path=path)

    async def add(self, kf_account: str, *, nickname: str) -> None:
        """Create ``kf_account`` (``prefix@wechat_id``) with ``nickname`` (1..16 characters)."""
        payload = {
            "kf_account": _validate.kf_account(kf_account),
            "nickname": _validate.nickname(nickname),
        }
        await self._transport.request("POST", "/customservice/kfaccount/add", json=payload)

    async def update(self, kf_account: str, *, nickname: str) -> None:
        """Set the nickname of ``kf_account``; safe to retry, so it is retried on lost answers."""
        payload = {
            "kf_account": _validate.kf_account(kf_account),
            "nickname": _validate.nickname(nickname),
        }
        await self._transport.request(
            "POST", "/customservice/kfaccount/update", json=payload, idempotent=True
        )

    async def delete(self, kf_account: str) -> None:
        """Delete ``kf_account`` (the current API's POST with a JSON body)."""
        payload = {"kf_account": _validate.kf_account(kf_account)}
        await self._transport.request("POST", "/customservice/kfaccount/del", json=payload)

    async def invite_worker(self, kf_account: str, *, invite_wx: str) -> None:
        """Invite the WeChat user ``invite_wx`` to bind ``kf_account``; they must accept in
        WeChat, and ``list()`` shows the invitation's status until then."""
        payload = {
            "kf_account": _validate.kf_account(kf_account),
            "invite_wx": _validate.token_like("invite_wx", invite_wx),
        }
        await self._transport.request("POST", "/customservice/kfaccount/inviteworker", json=payload)

    async def upload_avatar(
        self, kf_account: str, image: bytes | bytearray | memoryview | str | os.PathLike[str]
    ) -> None:
        """Set the avatar of ``kf_account`` from image bytes or a file path (at most 5 MB; a
        640x640 JPEG is what WeChat advises), sent as the multipart field ``media``."""
        account = _validate.kf_account(kf_account)
        data, filename = await _read_image(image)
        await self._transport.request(
            "POST",
            "/customservice/kfaccount/uploadheadimg",
            params={"kf_account": account},
            files={"media": (filename, data, _content_type(data))},
        )


async def _read_image(image: _validate.FileInput) -> tuple[bytes, str]:
    data, name = await _validate.file_bytes("avatar", image, max_bytes=_validate.MAX_AVATAR_BYTES)
    return data, name or ("avatar.png" if data.startswith(_PNG) else "avatar.jpg")


def _content_type(data: bytes) -> str:
    if data.startswith(_JPEG):
        return "image/jpeg"
    if data.startswith(_PNG):
        return "image/png"
    return "application/octet-stream"
