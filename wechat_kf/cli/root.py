"""The command's root: the ``wechat-kf`` group, its global options, and the command families
under it (see the package's docstring)."""

from __future__ import annotations

import click

from wechat_kf import __version__

from .demo import demo
from .exits import RootGroup
from .fake_server import fake_server
from .oa import oa
from .oa_sessions import sessions as oa_sessions
from .options import root_options
from .wecom_customers import customers
from .wecom_kf_accounts import kf_accounts
from .wecom_media import media
from .wecom_messages import messages
from .wecom_servicers import servicers
from .wecom_sessions import sessions as wecom_sessions


@click.group(cls=RootGroup)
@click.version_option(__version__, prog_name="wechat-kf")
@root_options
def main() -> None:
    """Manage WeChat customer service: Official Account kf accounts and sessions, WeCom 微信客服
    accounts, servicers, sessions, customers and messages.

    Credentials: the environment (WECHAT_APPID / WECHAT_SECRET, WECOM_CORPID / WECOM_SECRET) is
    the recommended way; --secret-file next; --secret on the command line is visible in ps.

    --json, --sandbox, --base-url, --allow-insecure-http and -v go before the command or after
    it. Exit codes: 0 ok, 1 something failed, 2 usage, configuration or refused credentials,
    130 interrupted.
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
