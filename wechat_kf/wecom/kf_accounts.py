"""WeCom 微信客服 accounts: list, add, rename, delete, and the links that open a chat with one."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from .. import _validate
from .._serde import structure_list
from .._transport import Transport
from ..errors import InvalidResponseError
from ..models import WeComKfAccount

__all__ = ["WeComKfAccounts"]

#: ``kf/account/list`` answers at most 100 accounts per page.
PAGE_SIZE = 100
#: More pages than any corp can fill (WeCom allows a few thousand accounts): a server that keeps
#: answering full pages must not keep the caller looping for ever.
_MAX_PAGES = 1000
_PATH = "/cgi-bin/kf/account/list"
_ADD = "/cgi-bin/kf/account/add"
_UPDATE = "/cgi-bin/kf/account/update"
_DELETE = "/cgi-bin/kf/account/del"
_CONTACT_WAY = "/cgi-bin/kf/add_contact_way"


class WeComKfAccounts:
    """The 微信客服 accounts of one WeCom corp (``client.kf_accounts``): ``list()`` returns every
    one with its ``open_kfid``, the id the servicer, session and message calls take; ``add``,
    ``update`` and ``delete`` manage them and ``contact_way`` makes the link that opens a chat.
    Every argument is checked before a request is sent; ``add`` is never sent twice (a second
    copy would be a second account), the others are retried after a lost answer."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self) -> builtins.list[WeComKfAccount]:
        """Every 微信客服 account of the corp, read page by page (``kf/account/list``, 100 per
        page, until a page comes back short)."""
        accounts: builtins.list[WeComKfAccount] = []
        for page in range(_MAX_PAGES):
            payload = {"offset": page * PAGE_SIZE, "limit": PAGE_SIZE}
            body = await self._transport.request("POST", _PATH, json=payload, idempotent=True)
            batch = structure_list(body, "account_list", WeComKfAccount, path=_PATH)
            accounts.extend(batch)
            if len(batch) < PAGE_SIZE:
                return accounts
        raise InvalidResponseError(f"more than {_MAX_PAGES} full pages of kf accounts", path=_PATH)

    async def add(self, name: str, *, media_id: str) -> str:
        """Create a kf account named ``name`` (1..16 characters) with the avatar ``media_id``
        (from ``media.upload``) and return its ``open_kfid``. Not idempotent: after an answer
        that was lost it is not sent again, and ``TransportError(maybe_applied=True)`` says the
        account may exist (look for it with :meth:`list`). 95027: an unverified corp has its 10
        accounts; 95005: the corp's count is out of range; 95006: the name was refused."""
        payload = {
            "name": _validate.kf_name(name),
            "media_id": _validate.token_like("media_id", media_id),
        }
        body = await self._transport.request("POST", _ADD, json=payload, idempotent=False)
        return _required_str(body, "open_kfid", _ADD)

    async def update(
        self, open_kfid: str, *, name: str | None = None, media_id: str | None = None
    ) -> None:
        """Rename ``open_kfid`` and/or give it the avatar ``media_id``; at least one of them
        (else ``ValueError``), only those given are sent. Idempotent, so retried after a lost
        answer."""
        payload: dict[str, Any] = {"open_kfid": _validate.token_like("open_kfid", open_kfid)}
        if name is not None:
            payload["name"] = _validate.kf_name(name)
        if media_id is not None:
            payload["media_id"] = _validate.token_like("media_id", media_id)
        if len(payload) == 1:
            raise ValueError("nothing to update: give name, media_id or both")
        await self._transport.request("POST", _UPDATE, json=payload, idempotent=True)

    async def delete(self, open_kfid: str) -> None:
        """Delete the kf account ``open_kfid``. Retried after a lost answer; an account that is
        already gone raises ``OpenKfidError`` (95004), even when it was an earlier attempt of
        this very call that deleted it: the SDK cannot tell that apart from a wrong open_kfid,
        so it does not pretend to. Either way, the account no longer exists."""
        payload = {"open_kfid": _validate.token_like("open_kfid", open_kfid)}
        await self._transport.request("POST", _DELETE, json=payload, idempotent=True)

    async def contact_way(self, open_kfid: str, *, scene: str | None = None) -> str:
        """The link (``add_contact_way``) that opens a chat with ``open_kfid``, tagged with
        ``scene`` (0..32 characters of ``[0-9a-zA-Z_-]``; None or "" sends none), which comes
        back in the ``enter_session`` event. The url is returned exactly as WeChat sent it: it
        carries the scene encoded, so never parse or rebuild it (appending
        ``&scene_param=...`` is how a link carries more). Retried after a lost answer."""
        payload = {"open_kfid": _validate.token_like("open_kfid", open_kfid)}
        if scene is not None and _validate.scene(scene):
            payload["scene"] = scene
        body = await self._transport.request("POST", _CONTACT_WAY, json=payload, idempotent=True)
        return _required_str(body, "url", _CONTACT_WAY)


def _required_str(body: Mapping[str, Any], key: str, path: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidResponseError(f"the answer has no {key}", path=path)
    return value
