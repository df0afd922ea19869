"""``wechat-kf wecom messages send``: a text message to a 微信客服 customer, with a msgid that
makes sending again harmless."""

from __future__ import annotations

from typing import Any

import click

from wechat_kf import SentMessage, Text, TransportError, WeComClient

from .credentials import wecom_command
from .reports import one_call


@click.group("messages")
def messages() -> None:
    """Messages to 微信客服 customers."""


def _maybe_sent(error: TransportError) -> str:
    return (
        f"it may have been sent: look for msgid {error.msgid} in the conversation (or a "
        f"msg_send_fail event) before sending again, and send again only with --msgid "
        f"{error.msgid}: WeChat refuses a msgid it has seen, so no second copy can arrive"
    )


@wecom_command(messages, "send", "Send a text message to a customer; prints its msgid.")
@click.option("--to", "external_userid", required=True, help="The customer's external_userid.")
@click.option("--text", required=True, help="The text (at most 2,048 bytes of UTF-8).")
@click.option("--msgid", help="Up to 32 of [0-9a-zA-Z_-], unique per account (default: random).")
def messages_send(
    open_kfid: str, external_userid: str, text: str, msgid: str | None, **opts: Any
) -> None:
    """Send ``text`` to a customer and print the msgid. WeChat's success means accepted, not
    delivered: past the 48-hour window or its 5 messages, a msg_send_fail event names the
    msgid later. A send that may have reached WeChat before failing prints its msgid, so that
    the user checks, and sends again with the same --msgid if it must."""

    async def send(client: WeComClient) -> SentMessage:
        return await client.messages.send(open_kfid, external_userid, Text(text), msgid=msgid)

    one_call(
        opts,
        WeComClient,
        send,
        lambda sent: sent.msgid,
        lambda sent: {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "msgid": sent.msgid,
        },
        if_maybe_applied=_maybe_sent,
    )
