"""The ``wechat-kf`` command: the demo, Official Account kf accounts and sessions, WeCom kf
accounts, servicers, media, sessions, customers and messages (sent, and tailed as they arrive),
and a fake server that can push its callbacks and make its customers write (extra "cli").

Exit codes: 0 all ok, 1 some items or the call failed, 2 usage or configuration error, 130
interrupted. Expected failures print one line with errcode, errmsg and rid; with --json, every
run prints one JSON document on stdout (the chat records too: written as they arrive, closed
whatever stops the run), except ``wecom messages tail``, a stream that never ends: JSON Lines,
one object per line, the last saying why it stopped; secrets are never printed. A call that may
have applied before it failed (a kf account add, a session transfer, a message send) says what
to check before trying again.

A module per command family (``oa``, ``oa_sessions``, ``wecom_servicers``,
``wecom_kf_accounts``, ``wecom_media``, ``wecom_sessions``, ``wecom_customers``,
``wecom_messages``, ``fake_server``, ``demo``) over the shared pieces: ``ids`` (files of
userids), ``progress``, ``reports`` and ``tables``, ``exits`` (codes, errors, Ctrl-C),
``credentials`` and ``options``, ``output``, ``cursor_file`` (where a tail keeps its place).
Commands use the SDK's public names only.
"""

from __future__ import annotations

import click

from wechat_kf import __version__

from .demo import demo
from .exits import RootGroup
from .fake_server import fake_server
from .oa import oa
from .oa_sessions import sessions as oa_sessions
from .options import verbose
from .wecom_customers import customers
from .wecom_kf_accounts import kf_accounts
from .wecom_media import media
from .wecom_messages import messages
from .wecom_servicers import servicers
from .wecom_sessions import sessions as wecom_sessions

__all__ = ["main"]


@click.group(cls=RootGroup)
@click.version_option(__version__, prog_name="wechat-kf")
@verbose
def main() -> None:
    """Manage WeChat customer service: Official Account kf accounts and sessions, WeCom 微信客服
    accounts, servicers, sessions, customers and messages.

    Credentials: the environment (WECHAT_APPID / WECHAT_SECRET, WECOM_CORPID / WECOM_SECRET) is
    the recommended way; --secret-file next; --secret on the command line is visible in ps.
    """


@main.group()
def wecom() -> None:
    """WeCom (企业微信) 微信客服."""


main.add_command(oa)
oa.add_command(oa_sessions)
wecom.add_command(servicers)
wecom.add_command(kf_accounts)
wecom.add_command(media)
wecom.add_command(wecom_sessions)
wecom.add_command(customers)
wecom.add_command(messages)
main.add_command(fake_server)
main.add_command(demo)
