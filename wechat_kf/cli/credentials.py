"""Credentials and the client a command talks through: the environment (recommended), a secret
file, or the command line; the sandbox's own; and the decorators that give a command its
credential options."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import click
import httpx

from wechat_kf import OfficialAccountClient, WeComClient
from wechat_kf.testing import Sandbox, sandbox

from .exits import USAGE, fail
from .options import F, common
from .output import JSON_LINES

Client = TypeVar("Client", OfficialAccountClient, WeComClient)

# Per client class: the option naming the app, the environment variables, sandbox credentials.
_PLATFORMS: dict[type[Any], tuple[str, str, Callable[[Sandbox], tuple[str, str]]]] = {
    OfficialAccountClient: ("appid", "WECHAT_APPID", lambda box: (box.appid, box.oa_secret)),
    WeComClient: ("corpid", "WECOM_CORPID", lambda box: (box.corpid, box.wecom_secret)),
}


def credentials(id_name: str, id_help: str, env_name: str, secret_env: str) -> Callable[[F], F]:
    """--<id_name>, --secret and --secret-file, read from the environment by default."""

    def decorate(func: F) -> F:
        func = click.option(
            "--secret-file",
            type=click.File("r", encoding="utf-8-sig"),
            help="A file whose first line is the secret.",
        )(func)
        func = click.option(
            "--secret",
            envvar=secret_env,
            show_envvar=True,
            help=f"The app's secret. Prefer {secret_env} or --secret-file: a secret on the "
            "command line is visible to every user of the machine in ps.",
        )(func)
        return click.option(f"--{id_name}", envvar=env_name, show_envvar=True, help=id_help)(func)

    return decorate


def wecom_command(
    group: click.Group,
    name: str,
    help_text: str,
    open_kfid: bool = True,
    *,
    json_lines: bool = False,
) -> Callable[[F], F]:
    """A ``wecom`` subcommand of ``group`` with credentials, --open-kfid (unless told not) and
    the common options (--json printing JSON Lines with ``json_lines``)."""

    def decorate(func: F) -> F:
        func = common(func, json_lines=json_lines)
        if open_kfid:
            func = click.option("--open-kfid", required=True, help="The 微信客服 account.")(func)
        func = credentials("corpid", "The corp id.", "WECOM_CORPID", "WECOM_SECRET")(func)
        command = group.command(name, help=help_text)(func)
        if json_lines:
            setattr(command, JSON_LINES, True)  # print_json writes each document on one line
        return command  # type: ignore[return-value]

    return decorate


def secret(opts: dict[str, Any]) -> str | None:
    """The secret from --secret-file, else --secret or its environment variable; both given on
    the command line is a usage error."""
    secret_file = opts.get("secret_file")
    if secret_file is None:
        return opts["secret"]  # type: ignore[no-any-return]
    source = click.get_current_context().get_parameter_source("secret")
    if opts["secret"] and source is click.core.ParameterSource.COMMANDLINE:
        raise fail("give --secret or --secret-file, not both", USAGE)
    line = str(secret_file.readline()).strip()
    if not line:
        raise fail(f"{secret_file.name}: the first line holds no secret", USAGE)
    return line


async def open_client(stack: AsyncExitStack, cls: type[Client], opts: dict[str, Any]) -> Client:
    """The client a command asked for: the sandbox's, or one from the credentials given."""
    id_name, env_name, sandbox_credentials = _PLATFORMS[cls]
    options: dict[str, Any] = {}
    app_secret: str | None
    if opts["sandbox"]:
        box = sandbox()
        app_id, app_secret = sandbox_credentials(box)
        http = httpx.AsyncClient(transport=box.fake.transport)
        options["http_client"] = await stack.enter_async_context(http)
    else:
        app_id, app_secret = opts[id_name], secret(opts)
        if not app_id or not app_secret:
            secret_env = env_name.split("_")[0] + "_SECRET"
            raise fail(
                f"give --{id_name} and --secret-file or --secret (or {env_name} / {secret_env})",
                USAGE,
            )
        if opts["base_url"]:
            options["base_url"] = opts["base_url"]
        options["allow_insecure_http"] = opts["allow_insecure_http"]
    # A batch command's --timeout, --max-retries and --concurrency (tuning), when given.
    for name, option in (
        ("timeout", "timeout"),
        ("max_retries", "max_retries"),
        ("concurrency", "max_concurrency"),
    ):
        if opts.get(name) is not None:
            options[option] = opts[name]
    return await stack.enter_async_context(cls(app_id, app_secret, **options))
