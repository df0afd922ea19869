"""The options every command that talks to WeChat shares: --json, --base-url,
--allow-insecure-http, --sandbox and -v, given after the subcommand or before it (``wechat-kf
--sandbox --json wecom servicers list ...``: the root takes them too); --timeout, --max-retries
and --concurrency of the batch commands; and the parameter types that refuse an identifier, a
userid or a kf name before any request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from wechat_kf.wecom import userid_problem

from .output import VERBOSE

F = TypeVar("F", bound=Callable[..., Any])
#: The root context's meta key of the global options given before the subcommand.
GIVEN = "wechat_kf.globals"
#: The global options by parameter name: (flag, whether it takes a value).
GLOBALS = {
    "as_json": ("--json", False),
    "sandbox": ("--sandbox", False),
    "base_url": ("--base-url", True),
    "allow_insecure_http": ("--allow-insecure-http", False),
}


def _set_verbosity(ctx: click.Context, _: click.Parameter, value: int) -> None:
    # -v may come before the subcommand, after it, or both: the most verbose wins.
    root = ctx.find_root()
    verbose = max(root.meta.get(VERBOSE, 0), value)
    root.meta[VERBOSE] = verbose
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("wechat_kf").setLevel(logging.WARNING if verbose == 0 else logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 1 else logging.WARNING)


verbose: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    callback=_set_verbosity,
    help="-v: each retry and request; -vv: httpx too. Anywhere on the line.",
)


def _global(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global option's value: on the root, remembered when given; on a subcommand, its own
    when given on the line, else the root's when given there, else its default or variable."""
    root = ctx.find_root()
    given: dict[str, Any] = root.meta.setdefault(GIVEN, {})
    name = param.name or ""
    from_line = ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    if ctx is root:
        if from_line:
            given[name] = value
        return value
    return value if from_line or name not in given else given[name]


def _global_options(json_help: str, *, root: bool) -> list[Callable[[F], F]]:
    """The global options, as the root takes them (remembered for the subcommand) or as a
    subcommand does (its own, else the root's)."""
    keep: dict[str, Any] = {"expose_value": False} if root else {}
    base_url_env: dict[str, Any] = {} if root else {"envvar": "WECHAT_KF_BASE_URL"}
    insecure_env: dict[str, Any] = {} if root else {"envvar": "WECHAT_KF_ALLOW_INSECURE_HTTP"}
    return [
        click.option("--json", "as_json", is_flag=True, help=json_help, callback=_global, **keep),
        click.option(
            "--base-url",
            default=None,
            show_envvar=not root,
            help="API host (default: WeChat's), such as a fake server's.",
            callback=_global,
            **base_url_env,
            **keep,
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            show_envvar=not root,
            help="Accept a plain http:// --base-url off loopback (a fake server in another "
            "container; never WeChat).",
            callback=_global,
            **insecure_env,
            **keep,
        ),
        click.option(
            "--sandbox",
            is_flag=True,
            help="Use an in-process FakeWeChat seeded with demo data.",
            callback=_global,
            **keep,
        ),
    ]


def root_options(func: F) -> F:
    """The global options on the root group, for the subcommand that follows: ``wechat-kf
    --sandbox --json wecom ...`` is ``wechat-kf wecom ... --sandbox --json``."""
    json_help = "Print JSON on stdout (see each command's --json). Here or after the command."
    for option in reversed([*_global_options(json_help, root=True), verbose]):
        func = option(func)
    return func


def leaf_command(group: click.Group, args: list[str]) -> tuple[click.Command, str] | None:
    """The command ``args`` (the line after the root's name) run, with its path, when it can be
    told without parsing: the root's own options skipped."""
    command: click.Command = group
    path: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            break
        if word.startswith("-"):
            flag = word.partition("=")[0]
            if "=" not in word and any(f == flag and v for f, v in GLOBALS.values()):
                next(words, None)  # the option's value
            continue
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
        path.append(word)
    return (command, " ".join(path)) if path else None


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
    for option in reversed([*_global_options(json_help, root=False), verbose]):
        func = option(func)
    return func


def tuning(func: F) -> F:
    """--timeout, --max-retries and --concurrency: the client's own knobs, for a batch."""
    options = [
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Seconds each attempt of a request may take, all of it  [default: 10].",
        ),
        click.option(
            "--max-retries",
            type=click.IntRange(min=0),
            default=None,
            help="Attempts after the first, for what may be sent again  [default: 3].",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 100),
            default=None,
            help="Requests of 100 ids in flight at once, 1-100  [default: 8].",
        ),
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


def userids_given(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    """A parameter callback refusing a --userid that is not a WeCom userid: a usage error, exit
    2, before any request (the lines of a file are skipped instead, each said)."""
    for value in values:
        problem = userid_problem(value)
        if problem is not None:
            raise click.BadParameter(f"{value!r} {problem}", ctx, param)
    return values


def kf_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A parameter callback refusing a WeCom kf account name that is not 1 to 16 characters
    (checked here because an avatar may be uploaded before the SDK would check it)."""
    if value is not None and not 1 <= len(value) <= 16:
        raise click.BadParameter(f"must be 1-16 characters, got {len(value)}", ctx, param)
    return value
