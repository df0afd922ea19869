"""``wechat-kf wecom kf-accounts``: the corp's 微信客服 accounts and their open_kfid."""

from __future__ import annotations

from typing import Any

import click

from wechat_kf import WeComClient

from .credentials import wecom_command
from .reports import listing
from .tables import wecom_accounts_table


@click.group("kf-accounts")
def kf_accounts() -> None:
    """The 微信客服 accounts of the corp."""


@wecom_command(
    kf_accounts, "list", "List the 微信客服 accounts and their open_kfid.", open_kfid=False
)
def kf_accounts_list(**opts: Any) -> None:
    listing(opts, WeComClient, lambda c: c.kf_accounts.list(), wecom_accounts_table)
