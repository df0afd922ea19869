"""The options every command that talks to WeChat shares: --json, --base-url,
--allow-insecure-http, --sandbox and -v (anywhere on the line)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .output import VERBOSE

F = TypeVar("F", bound=Callable[..., Any])


def _set_verbosity(ctx: click.Context, _: click.Parameter, value: int) -> None:
    # -v may come before the subcommand, after it, or both: the most verbose wins.
    root = ctx.find_root()
    verbose = max(root.meta.get(VERBOSE, 0), value)
    root.meta[VERBOSE] = verbose
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("wechat_kf").setLevel(logging.WARNING if verbose == 0 else logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 1 else logging.WARNING)


verbose = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    callback=_set_verbosity,
    help="-v: each retry and request; -vv: httpx too. Anywhere on the line.",
)


def common(func: F) -> F:
    """--json, --base-url, --allow-insecure-http, --sandbox and -v, on every command that talks
    to WeChat."""
    options = [
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print one JSON document on stdout, on success and on failure.",
        ),
        click.option(
            "--base-url",
            default=None,
            envvar="WECHAT_KF_BASE_URL",
            show_envvar=True,
            help="API host (default: WeChat's), such as a fake server's.",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            envvar="WECHAT_KF_ALLOW_INSECURE_HTTP",
            show_envvar=True,
            help="Accept a plain http:// --base-url off loopback (a fake server in another "
            "container; never WeChat).",
        ),
        click.option(
            "--sandbox", is_flag=True, help="Use an in-process FakeWeChat seeded with demo data."
        ),
        verbose,
    ]
    for option in reversed(options):
        func = option(func)
    return func
