"""The options every command that talks to WeChat shares: --json, --base-url,
--allow-insecure-http, --sandbox and -v (anywhere on the line); and the parameter types that
refuse an identifier or a kf name before any request."""

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


def common(func: F, *, json_lines: bool = False) -> F:
    """--json, --base-url, --allow-insecure-http, --sandbox and -v, on every command that talks
    to WeChat. With ``json_lines`` (a command that streams, ``messages tail``), --json prints
    one JSON object per line, its errors included."""
    json_help = (
        "Print JSON Lines on stdout: one JSON object per line, each message as it arrives, "
        'then a last line {"ok": false, ...} saying why it stopped.'
        if json_lines
        else "Print one JSON document on stdout, on success and on failure."
    )
    options = [
        click.option("--json", "as_json", is_flag=True, help=json_help),
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


def identifier_problem(value: str) -> str | None:
    """What keeps ``value`` from being a WeChat identifier (an open_kfid, an external_userid,
    a userid), as the SDK checks it: None when it is one. Commands that send a request before
    the SDK would check (an upload first, many batches) check ids with it up front."""
    if not value or any(ch.isspace() for ch in value):
        return "must be non-empty and contain no whitespace"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "does not encode as UTF-8"
    return None


def identifier(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A parameter callback refusing a value that is not an identifier (see
    :func:`identifier_problem`): a usage error, exit 2, before any request."""
    if value is not None:
        problem = identifier_problem(value)
        if problem is not None:
            raise click.BadParameter(f"{value!r} {problem}", ctx, param)
    return value


def kf_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A parameter callback refusing a WeCom kf account name that is not 1 to 16 characters
    (checked here because an avatar may be uploaded before the SDK would check it)."""
    if value is not None and not 1 <= len(value) <= 16:
        raise click.BadParameter(f"must be 1-16 characters, got {len(value)}", ctx, param)
    return value
