"""WeCom 微信客服 accounts: finding the ``open_kfid`` of each account a corp has."""

from __future__ import annotations

import builtins

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


class WeComKfAccounts:
    """The 微信客服 accounts of one WeCom corp (``client.kf_accounts``): ``list()`` returns every
    one with its ``open_kfid``, the id the servicer calls take."""

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
