"""``wechat-kf demo``: the whole SDK on an in-process FakeWeChat, no credentials, no network:
Official Account kf accounts, WeCom servicers onboarded in batches, then a customer conversation
through the Inbox (a customer writes, the inbox pulls it, the handler replies)."""

from __future__ import annotations

import functools
import time

import click
import httpx
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from wechat_kf import (
    Inbox,
    KfMessage,
    MessageOrigin,
    OfficialAccountClient,
    Text,
    TextMessage,
    WeComClient,
)
from wechat_kf.testing import Faults, Sandbox, sandbox
from wechat_kf.wecom import MAX_SERVICERS_PER_KF_ACCOUNT

from .exits import FAILED, OK, run
from .options import verbose
from .output import out
from .progress import progress
from .tables import accounts_table, online_table, result_table


@click.command()
@click.option(
    "--ids",
    default=1000,
    show_default=True,
    type=click.IntRange(1, MAX_SERVICERS_PER_KF_ACCOUNT),
    help="How many userids to onboard (a kf account holds at most 2,000 servicers).",
)
@verbose
def demo(ids: int) -> None:
    """Walk through the whole SDK on an in-process FakeWeChat: no credentials, no network."""
    run(functools.partial(_demo, ids))


def _rule(console: Console, title: str = "") -> None:
    """A titled rule no wider than a terminal's, however wide a piped stdout is."""
    console.print(Rule(title), width=min(console.width, 100))


async def _demo(count: int) -> int:
    console = out()
    started = time.perf_counter()
    box = sandbox(seed=7)
    fake = box.fake
    fake.faults = Faults(latency=(0.005, 0.03), busy_rate=0.05)
    _rule(console, "Official Account customer service (公众号客服)")
    async with httpx.AsyncClient(transport=fake.transport) as http:
        async with OfficialAccountClient(box.appid, box.oa_secret, http_client=http) as oa:
            account = f"demo@{box.wechat_id}"
            await oa.kf_accounts.add(account, nickname="演示客服")
            await oa.kf_accounts.invite_worker(account, invite_wx="demo_wechat_user")
            console.print(f"added {account} and invited demo_wechat_user to bind it")
            console.print(accounts_table(await oa.kf_accounts.list()))
            fake.set_online(box.appid, f"support@{box.wechat_id}", status=1, accepted_case=2)
            console.print("online now:")
            console.print(online_table(await oa.kf_accounts.list_online()))
        _rule(console, f"WeCom servicers (微信客服): onboarding {count} userids")
        fake.add_members(box.corpid, (f"user{i:04d}" for i in range(1, count + 1)))
        known = sorted(fake.corps[box.corpid].members)[: max(count - 5, 0)]
        ghosts = [f"ghost{i:03d}" for i in range(1, min(count, 5) + 1)]
        userids = known + ghosts
        async with WeComClient(box.corpid, box.wecom_secret, http_client=http) as wc:
            with progress(True, "adding servicers") as on_progress:
                result = await wc.servicers.add(box.open_kfid, userids, on_progress=on_progress)
            listed = await wc.servicers.list(box.open_kfid)
    console.print(f"{len(result.failed)} ids refused by WeChat:")
    console.print(result_table(result, only_failed=True))
    summary = Table(show_header=False)
    summary.add_row("servicers added", str(len(result.succeeded)))
    summary.add_row("refused (60111 not a member)", str(len(result.failed)))
    summary.add_row("servicers now listed", str(len([s for s in listed if s.userid])))
    summary.add_row("servicer requests", str(len(fake.calls_to("/cgi-bin/kf/servicer/add"))))
    summary.add_row("busy answers retried", str(sum(1 for c in fake.calls if c.errcode == -1)))
    summary.add_row("token fetches (one per app)", str(fake.token_fetches))
    summary.add_row("elapsed", f"{time.perf_counter() - started:.2f} s")
    _rule(console, "summary")
    console.print(summary)
    _rule(console, "a customer conversation (微信客服, through the Inbox)")
    return await _conversation(box, console)


async def _conversation(box: Sandbox, console: Console) -> int:
    """A customer writes; an Inbox pulls the account (``sync_msg`` from its cursor) and hands
    the message to the handler, which replies with ``inbox.reply``; the reply is read back from
    what the fake's API sent."""
    fake, open_kfid, customer = box.fake, box.open_kfid, "wmDEMOCUSTOMER0001"
    said = "你好，我的订单 1024 到哪了？"

    async def handle(message: KfMessage) -> None:
        if isinstance(message, TextMessage) and message.origin == MessageOrigin.CUSTOMER:
            await inbox.reply(message, Text(f"收到「{message.content}」，正在为您查询"))

    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(box.corpid, box.wecom_secret, http_client=http) as wc,
        Inbox(wc, handle, start="latest") as inbox,
    ):
        await inbox.drain(open_kfid)  # "latest": the sandbox's earlier messages are skipped
        fake.customer_says(open_kfid, customer, said)
        handled = await inbox.drain(open_kfid)
    replies = fake.sent_messages(open_kfid, customer)
    exchange = Table(show_header=False)
    exchange.add_row(customer, said)
    for reply in replies:
        exchange.add_row("inbox.reply", str(reply.content.get("content", "")))
    console.print(exchange)
    msgids = ", ".join(reply.msgid for reply in replies) or "none"
    console.print(
        f"the inbox pulled and handled {handled} message; the reply's msgid ({msgids}) is "
        "derived from the message's, so a redelivered message is never answered twice"
    )
    return OK if replies else FAILED
