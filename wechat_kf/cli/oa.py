"""``wechat-kf oa accounts``: an Official Account's customer-service (kf) accounts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import click

from wechat_kf import OfficialAccountClient

from .credentials import credentials, open_client
from .exits import OK, final_report, run
from .options import F, common
from .output import out, print_json
from .reports import listing
from .tables import accounts_table, online_table


@click.group()
def oa() -> None:
    """Official Account (公众号) customer service."""


@oa.group("accounts")
def accounts() -> None:
    """Customer-service (kf) accounts."""


def _oa_command(name: str, help_text: str) -> Callable[[F], F]:
    """An ``oa accounts`` subcommand with credentials and the common options."""

    def decorate(func: F) -> F:
        func = credentials("appid", "Official Account appid.", "WECHAT_APPID", "WECHAT_SECRET")(
            common(func)
        )
        return accounts.command(name, help=help_text)(func)  # type: ignore[return-value]

    return decorate


def _oa_action(
    opts: dict[str, Any],
    action: Callable[[OfficialAccountClient], Awaitable[Any]],
    done: str,
) -> None:
    async def main_() -> int:
        async with AsyncExitStack() as stack:
            await action(await open_client(stack, OfficialAccountClient, opts))
        if opts["as_json"]:
            return final_report(OK, lambda: print_json({"ok": True}))
        return final_report(OK, lambda: out().print(done))

    run(main_, as_json=opts["as_json"])


@_oa_command("list", "List the kf accounts.")
def oa_list(**opts: Any) -> None:
    listing(
        opts, OfficialAccountClient, lambda c: c.kf_accounts.list(), accounts_table, "kf_accounts"
    )


@_oa_command("online", "List the kf accounts that are online.")
def oa_online(**opts: Any) -> None:
    listing(
        opts,
        OfficialAccountClient,
        lambda c: c.kf_accounts.list_online(),
        online_table,
        "kf_accounts",
    )


@click.argument("kf_account")
@click.option("--nickname", required=True, help="1-16 characters.")
@_oa_command("add", "Add a kf account (prefix@wechat_id).")
def oa_add(kf_account: str, nickname: str, **opts: Any) -> None:
    _oa_action(
        opts, lambda c: c.kf_accounts.add(kf_account, nickname=nickname), f"added {kf_account}"
    )


@click.argument("kf_account")
@click.option("--nickname", required=True, help="1-16 characters.")
@_oa_command("update", "Rename a kf account.")
def oa_update(kf_account: str, nickname: str, **opts: Any) -> None:
    _oa_action(
        opts,
        lambda c: c.kf_accounts.update(kf_account, nickname=nickname),
        f"updated {kf_account}",
    )


@click.argument("kf_account")
@_oa_command("delete", "Delete a kf account.")
def oa_delete(kf_account: str, **opts: Any) -> None:
    _oa_action(opts, lambda c: c.kf_accounts.delete(kf_account), f"deleted {kf_account}")


@click.argument("kf_account")
@click.option("--invite-wx", required=True, help="The WeChat ID to invite.")
@_oa_command("invite", "Invite a WeChat user to bind a kf account.")
def oa_invite(kf_account: str, invite_wx: str, **opts: Any) -> None:
    _oa_action(
        opts,
        lambda c: c.kf_accounts.invite_worker(kf_account, invite_wx=invite_wx),
        f"invited {invite_wx} to bind {kf_account}",
    )


@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("kf_account")
@_oa_command("avatar", "Upload a kf account's avatar (JPEG, at most 5 MB).")
def oa_avatar(kf_account: str, image: str, **opts: Any) -> None:
    _oa_action(
        opts,
        lambda c: c.kf_accounts.upload_avatar(kf_account, image),
        f"avatar set for {kf_account}",
    )
