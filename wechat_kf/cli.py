"""The ``wechat-kf`` command: the demo, kf accounts, servicers, and a fake server (extra "cli").

Exit codes: 0 all ok, 1 some items or the call failed, 2 usage or configuration error. Expected
failures print one line with errcode, errmsg and rid; secrets are never printed.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from typing import Any, BinaryIO, TypeVar

import anyio
import attrs
import click
import httpx
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from ._serde import converter
from .clients import OfficialAccountClient, WeComClient
from .errors import APIError, BatchError, CredentialError, SyncError, WeChatError
from .models import (
    BatchResult,
    KfAccount,
    OnlineKfAccount,
    RequestOutcome,
    Servicer,
    ServicerResult,
    SyncResult,
    WeComKfAccount,
)
from .servicers import MAX_SERVICERS_PER_KF_ACCOUNT
from .testing import Faults, Sandbox, sandbox

F = TypeVar("F", bound=Callable[..., Any])


class _Exit(Exception):
    """Leave with ``code`` after ``message`` was printed (a usage or configuration error)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False, markup=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str, code: int) -> _Exit:
    # The message may quote WeChat's errmsg: never let it be read as markup.
    _err().print(f"[red]error:[/red] {escape(message)}", markup=True)
    return _Exit(code, message)


def _describe(error: Exception) -> str:
    if isinstance(error, APIError):
        rid = error.rid or "-"
        return f"errcode={error.errcode} errmsg={error.errmsg!r} rid={rid} path={error.path}"
    if isinstance(error, WeChatError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _error_data(error: BaseException) -> dict[str, Any]:
    """An error as JSON: its type and message, and WeChat's errcode, errmsg and rid when it gave
    them (the message is redacted like every WeChatError's)."""
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for field in ("errcode", "errmsg", "rid", "path", "status_code", "maybe_applied"):
        value = getattr(error, field, None)
        if value is not None:
            data[field] = value
    return data


def _run(
    main: Callable[[], Awaitable[int]],
    *,
    as_json: bool = False,
    interrupted: Callable[[], None] | None = None,
) -> None:
    """Run ``main`` on anyio and turn expected failures into one line (and, with --json, one
    JSON document on stdout) and an exit code; Ctrl-C exits 130 after ``interrupted`` reports
    what was done."""
    try:
        code = anyio.run(main)
    except _Exit as stop:
        code = stop.code
        if as_json:
            _print_json({"ok": False, "error": {"type": "UsageError", "message": stop.message}})
    except KeyboardInterrupt:
        code = _after_ctrl_c(as_json, interrupted)
    except (ValueError, TypeError) as exc:
        code = _report_error(exc, 2, as_json)
    except CredentialError as exc:
        code = _report_error(exc, 2, as_json, "credentials refused: ")
    except WeChatError as exc:
        code = _report_error(exc, 1, as_json)
    sys.exit(code)


_PRINTED = "wechat_kf.printed"
_FINISHED = "wechat_kf.finished"
_WANTS_JSON = "wechat_kf.json"


def _meta() -> dict[str, Any]:
    """What this run has printed and decided, shared by every level of the command."""
    context = click.get_current_context(silent=True)
    return {} if context is None else context.find_root().meta


def _after_ctrl_c(as_json: bool, interrupted: Callable[[], None] | None) -> int:
    """The exit code after a Ctrl-C. Once the work finished and its report is out the Ctrl-C
    interrupted nothing, and the run keeps its own code; otherwise 130, after ``interrupted``
    said what was done, and with --json one document whatever the moment."""
    meta = _meta()
    if not meta.get(_PRINTED) and _FINISHED not in meta and interrupted is not None:
        # It may find the work finished after all (the Ctrl-C came while the client closed)
        # and report it as such.
        interrupted()
    if _FINISHED in meta:
        return int(meta[_FINISHED])
    if as_json and not meta.get(_PRINTED):
        _print_json(
            {
                "ok": False,
                "interrupted": True,
                "error": {"type": "Interrupted", "message": "interrupted by Ctrl-C"},
            }
        )
    _err().print("interrupted")
    return 130


def _final_report(code: int, write: Callable[[], None]) -> int:
    """Write the report of work that finished, whole: a Ctrl-C meanwhile is held back until it
    is out, and the run exits with ``code`` whatever follows."""
    with _sigint_deferred():
        write()
        _meta()[_FINISHED] = code
    return code


def _report_error(error: Exception, code: int, as_json: bool, prefix: str = "") -> int:
    if as_json:
        _print_json({"ok": False, "error": _error_data(error)})
    message = str(error) if isinstance(error, (ValueError, TypeError)) else _describe(error)
    return _fail(prefix + message, code).code


def _set_verbosity(ctx: click.Context, _: click.Parameter, value: int) -> None:
    # -v may come before the subcommand, after it, or both: the most verbose wins.
    root = ctx.find_root()
    verbose = max(root.meta.get("wechat_kf.verbose", 0), value)
    root.meta["wechat_kf.verbose"] = verbose
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("wechat_kf").setLevel(logging.WARNING if verbose == 0 else logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose > 1 else logging.WARNING)


_verbose = click.option(
    "-v",
    "--verbose",
    count=True,
    expose_value=False,
    callback=_set_verbosity,
    help="-v: each retry and request; -vv: httpx too. Anywhere on the line.",
)


def _common(func: F) -> F:
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
        _verbose,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _print_json(data: Any) -> None:
    """One whole JSON document on stdout: a Ctrl-C while it is made or written waits until it is
    out, and the run prints no other."""
    with _sigint_deferred():
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        _meta()[_PRINTED] = True


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """SIGINT held back for the block (where the platform allows): delivered after it. Nested
    blocks release it only at the outermost one's end."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = mask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, before)


def _asks_for_json(args: Sequence[str]) -> bool:
    """Whether --json is on the command line (before a ``--``), even one click could not
    parse."""
    args = list(args)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _usage_error_json(error: click.ClickException) -> None:
    if not _meta().get(_PRINTED):
        message = error.format_message()
        _print_json({"ok": False, "error": {"type": "UsageError", "message": message}})


class _Command(click.Group):
    """The root group: with --json on the line, a usage error click reports (a bad option or
    value, a missing argument, an unknown command) is also one JSON document on stdout."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = _asks_for_json(args)
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if as_json:
                _usage_error_json(exc)
            raise
        context.meta[_WANTS_JSON] = as_json
        return context

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.meta.get(_WANTS_JSON):
                _usage_error_json(exc)
            raise


Client = TypeVar("Client", OfficialAccountClient, WeComClient)

# Per client class: the option naming the app, the environment variables, sandbox credentials.
_PLATFORMS: dict[type[Any], tuple[str, str, Callable[[Sandbox], tuple[str, str]]]] = {
    OfficialAccountClient: ("appid", "WECHAT_APPID", lambda box: (box.appid, box.oa_secret)),
    WeComClient: ("corpid", "WECOM_CORPID", lambda box: (box.corpid, box.wecom_secret)),
}


async def _open_client(stack: AsyncExitStack, cls: type[Client], opts: dict[str, Any]) -> Client:
    """The client a command asked for: the sandbox's, or one from the credentials given."""
    id_name, env_name, sandbox_credentials = _PLATFORMS[cls]
    options: dict[str, Any] = {}
    secret: str | None
    if opts["sandbox"]:
        box = sandbox()
        app_id, secret = sandbox_credentials(box)
        http = httpx.AsyncClient(transport=box.fake.transport)
        options["http_client"] = await stack.enter_async_context(http)
    else:
        app_id, secret = opts[id_name], _secret(opts)
        if not app_id or not secret:
            secret_env = env_name.split("_")[0] + "_SECRET"
            raise _fail(
                f"give --{id_name} and --secret-file or --secret (or {env_name} / {secret_env})",
                2,
            )
        if opts["base_url"]:
            options["base_url"] = opts["base_url"]
        options["allow_insecure_http"] = opts["allow_insecure_http"]
    return await stack.enter_async_context(cls(app_id, secret, **options))


def _listing(
    opts: dict[str, Any],
    cls: type[Client],
    fetch: Callable[[Client], Awaitable[Sequence[Any]]],
    render: Callable[[Any], Table],
) -> None:
    """Fetch a list and print it as a table, or as JSON with --json."""

    async def main_() -> int:
        async with AsyncExitStack() as stack:
            items = await fetch(await _open_client(stack, cls, opts))
        if opts["as_json"]:
            return _final_report(0, lambda: _print_json(converter.unstructure(list(items))))
        return _final_report(0, lambda: _out().print(render(items)))

    _run(main_, as_json=opts["as_json"])


def _credentials(id_name: str, id_help: str, env_name: str, secret_env: str) -> Callable[[F], F]:
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


def _secret(opts: dict[str, Any]) -> str | None:
    """The secret from --secret-file, else --secret or its environment variable; both given on
    the command line is a usage error."""
    secret_file = opts.get("secret_file")
    if secret_file is None:
        return opts["secret"]  # type: ignore[no-any-return]
    source = click.get_current_context().get_parameter_source("secret")
    if opts["secret"] and source is click.core.ParameterSource.COMMANDLINE:
        raise _fail("give --secret or --secret-file, not both", 2)
    line = str(secret_file.readline()).strip()
    if not line:
        raise _fail(f"{secret_file.name}: the first line holds no secret", 2)
    return line


# -- rendering ---------------------------------------------------------------------------------


def _accounts_table(accounts: Sequence[KfAccount]) -> Table:
    table = Table("kf_account", "nickname", "kf_id", "bound WeChat", "invitation")
    for a in accounts:
        invitation = "-"
        if a.invite_status is not None:
            invitation = f"{a.invite_wx} ({a.invite_status.value})"
        table.add_row(a.kf_account, a.kf_nick or "", a.kf_id or "", a.kf_wx or "-", invitation)
    return table


def _online_table(accounts: Sequence[OnlineKfAccount]) -> Table:
    table = Table("kf_account", "status", "kf_id", "sessions")
    for a in accounts:
        table.add_row(a.kf_account, str(a.status), a.kf_id or "", str(a.accepted_case))
    return table


def _servicers_table(servicers: Sequence[Servicer]) -> Table:
    table = Table("userid", "department_id", "status", "stop_type")
    for s in servicers:
        status = s.status.name.lower() if s.status is not None else "-"
        table.add_row(
            s.userid or "-",
            str(s.department_id) if s.department_id is not None else "-",
            status,
            str(s.stop_type) if s.stop_type is not None else "-",
        )
    return table


def _wecom_accounts_table(accounts: Sequence[WeComKfAccount]) -> Table:
    table = Table("open_kfid", "name", "manageable", "avatar")
    for a in accounts:
        manageable = "-" if a.manage_privilege is None else ("yes" if a.manage_privilege else "no")
        table.add_row(a.open_kfid, a.name or "", manageable, a.avatar or "-")
    return table


def _result_table(result: BatchResult, *, only_failed: bool = False) -> Table:
    table = Table("id", "errcode", "errmsg")
    for item in result.failed if only_failed else result.items:
        ident = item.userid if item.userid is not None else f"department {item.department_id}"
        code = "-" if item.errcode is None else str(item.errcode)
        style = None if item.ok else "red"
        table.add_row(ident, code, item.errmsg, style=style)
    return table


_FIRST_IDS = 5
_MAX_ERRCODES = 20
# WeChat's errmsg reaches the terminal: no escape sequence of its own.
_CONTROL = {code: "?" for code in [*range(32), 127]}


def _ident(item: ServicerResult) -> str:
    return item.userid if item.userid is not None else f"department {item.department_id}"


def _write_outcomes(out: Console, result: BatchResult, show_all: bool) -> None:
    """A row per id with --show-all; else the failures grouped by errcode, a few lines however
    large the batch: a table row per failure took over 30 s for 150,000 ids."""
    if show_all:
        _write_rows(result.items)
        return
    failed = result.failed
    if failed:
        out.print(_failures_table(failed))
        out.print("every failed id: --json, or a row per id with --show-all")


@attrs.define
class _Group:
    errmsg: str
    count: int = 0
    first: list[str] = attrs.Factory(list)


def _failures_table(failed: Sequence[ServicerResult]) -> Table:
    groups: dict[int | None, _Group] = {}
    for item in failed:
        group = groups.get(item.errcode)
        if group is None:
            group = groups[item.errcode] = _Group(item.errmsg)
        group.count += 1
        if len(group.first) < _FIRST_IDS:
            group.first.append(_ident(item))
    table = Table("errcode", "ids", "errmsg (the first's)", "first ids")
    ordered = sorted(groups.items(), key=lambda pair: pair[1].count, reverse=True)
    for errcode, group in ordered[:_MAX_ERRCODES]:
        first = ", ".join(group.first) + (", ..." if group.count > len(group.first) else "")
        code = "-" if errcode is None else str(errcode)
        table.add_row(code, str(group.count), group.errmsg.translate(_CONTROL), first, style="red")
    if len(ordered) > _MAX_ERRCODES:
        rest = ordered[_MAX_ERRCODES:]
        count = sum(group.count for _, group in rest)
        table.add_row("...", str(count), f"{len(rest)} other errcodes", "", style="red")
    return table


def _write_rows(items: Sequence[ServicerResult]) -> None:
    """Every id, errcode and errmsg in aligned plain text, failures in red on a terminal: a rich
    table measures each cell and takes minutes for 150,000 rows."""
    rows = [
        (_ident(i), "-" if i.errcode is None else str(i.errcode), i.errmsg.translate(_CONTROL))
        for i in items
    ]
    id_width = max([cell_len("id"), *(cell_len(row[0]) for row in rows)])
    code_width = max([len("errcode"), *(len(row[1]) for row in rows)])

    def line(ident: str, code: str, errmsg: str) -> str:
        return f"{ident}{' ' * (id_width - cell_len(ident))}  {code:<{code_width}}  {errmsg}"

    lines = [line("id", "errcode", "errmsg")]
    for item, row in zip(items, rows, strict=True):
        lines.append(line(*row) if item.ok else click.style(line(*row), fg="red"))
    click.echo("\n".join(lines))


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A live progress bar on stderr, fed by ``on_progress(done, total)``."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_err(), transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _read_userids(stream: BinaryIO, encoding: str) -> list[str]:
    """The userids of a file, one per line (blank lines and # comments skipped): decoded with
    ``encoding``, a byte-order mark dropped; a file that does not decode, or holds control
    characters, is one line naming it and exit 2."""
    name = getattr(stream, "name", "-")
    name = "standard input" if name in ("-", "<stdin>") else name
    raw = stream.read()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise _fail(f"unknown --encoding {encoding!r}", 2) from None
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        raise _fail(
            f"{name}: not {encoding} text (byte 0x{byte:02x} at offset {exc.start}); "
            "give its encoding with --encoding, such as --encoding gbk",
            2,
        ) from None
    ids = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise _fail(f"{name}: line {number} holds control characters: not a list of ids", 2)
        ids.append(line)
    return ids


# -- commands ----------------------------------------------------------------------------------


@click.group(cls=_Command)
@click.version_option(__version__, prog_name="wechat-kf")
@_verbose
def main() -> None:
    """Manage WeChat customer service: Official Account kf accounts and WeCom servicers.

    Credentials: the environment (WECHAT_APPID / WECHAT_SECRET, WECOM_CORPID / WECOM_SECRET) is
    the recommended way; --secret-file next; --secret on the command line is visible in ps.
    """


@main.group()
def oa() -> None:
    """Official Account (公众号) customer service."""


@oa.group("accounts")
def oa_accounts() -> None:
    """Customer-service (kf) accounts."""


def _oa_command(name: str, help_text: str) -> Callable[[F], F]:
    """An ``oa accounts`` subcommand with credentials and the common options."""

    def decorate(func: F) -> F:
        func = _credentials("appid", "Official Account appid.", "WECHAT_APPID", "WECHAT_SECRET")(
            _common(func)
        )
        return oa_accounts.command(name, help=help_text)(func)  # type: ignore[return-value]

    return decorate


def _oa_action(
    opts: dict[str, Any],
    action: Callable[[OfficialAccountClient], Awaitable[Any]],
    done: str,
) -> None:
    async def main_() -> int:
        async with AsyncExitStack() as stack:
            await action(await _open_client(stack, OfficialAccountClient, opts))
        if opts["as_json"]:
            return _final_report(0, lambda: _print_json({"ok": True}))
        return _final_report(0, lambda: _out().print(done))

    _run(main_, as_json=opts["as_json"])


@_oa_command("list", "List the kf accounts.")
def oa_list(**opts: Any) -> None:
    _listing(opts, OfficialAccountClient, lambda c: c.kf_accounts.list(), _accounts_table)


@_oa_command("online", "List the kf accounts that are online.")
def oa_online(**opts: Any) -> None:
    _listing(opts, OfficialAccountClient, lambda c: c.kf_accounts.list_online(), _online_table)


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


@main.group()
def wecom() -> None:
    """WeCom (企业微信) 微信客服."""


@wecom.group("servicers")
def wecom_servicers() -> None:
    """The servicers of a 微信客服 account."""


@wecom.group("kf-accounts")
def wecom_kf_accounts() -> None:
    """The 微信客服 accounts of the corp."""


def _wecom_command(
    name: str, help_text: str, group: click.Group = wecom_servicers, open_kfid: bool = True
) -> Callable[[F], F]:
    """A ``wecom`` subcommand with credentials, --open-kfid (for servicers) and the common
    options."""

    def decorate(func: F) -> F:
        func = _common(func)
        if open_kfid:
            func = click.option("--open-kfid", required=True, help="The 微信客服 account.")(func)
        func = _credentials("corpid", "The corp id.", "WECOM_CORPID", "WECOM_SECRET")(func)
        return group.command(name, help=help_text)(func)  # type: ignore[return-value]

    return decorate


@_wecom_command(
    "list", "List the 微信客服 accounts and their open_kfid.", wecom_kf_accounts, open_kfid=False
)
def kf_accounts_list(**opts: Any) -> None:
    _listing(opts, WeComClient, lambda c: c.kf_accounts.list(), _wecom_accounts_table)


@_wecom_command("list", "List the servicers of a 微信客服 account.")
def servicers_list(open_kfid: str, **opts: Any) -> None:
    _listing(opts, WeComClient, lambda c: c.servicers.list(open_kfid), _servicers_table)


def _batch_options(func: F) -> F:
    options = [
        click.option("--userid", "userids", multiple=True, help="Repeatable."),
        click.option(
            "--userids-file",
            type=click.File("rb"),
            help="One userid per line ('#' comments, blank lines skipped); '-' reads stdin.",
        ),
        click.option(
            "--encoding",
            default="utf-8",
            show_default=True,
            help="The file's encoding, such as gbk (a UTF-8 byte-order mark is dropped).",
        ),
        click.option(
            "--department-id", "department_ids", multiple=True, type=int, help="Repeatable."
        ),
        click.option(
            "--show-all", is_flag=True, help="A row for every id, not only the failed ones."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _target(
    userids: tuple[str, ...],
    userids_file: BinaryIO | None,
    encoding: str,
    department_ids: tuple[int, ...],
) -> tuple[list[str], list[int]]:
    ids = list(userids) + (_read_userids(userids_file, encoding) if userids_file else [])
    return ids, list(department_ids)


@attrs.define
class _Journal:
    """Every request's outcome as it arrives, so that an interrupted run can say what was
    done."""

    outcomes: list[RequestOutcome] = attrs.Factory(list)

    def __call__(self, outcome: RequestOutcome) -> None:
        self.outcomes.append(outcome)

    def result(self, action: str) -> BatchResult:
        """What WeChat answered for the requests of ``action``, so far."""
        return BatchResult(
            [item for o in self.outcomes if o.action == action for item in o.results]
        )

    def unprocessed(self, action: str, userids: list[str], departments: list[int]) -> _Rest:
        """The ids of ``action`` with no answer yet: unsent, failed, or in flight."""
        done = self.result(action).items
        users = {item.userid for item in done}
        depts = {item.department_id for item in done}
        return (
            [u for u in userids if u not in users],
            [d for d in departments if d not in depts],
        )


_Rest = tuple[list[str], list[int]]


def _batch_command(delete: bool) -> Callable[..., None]:
    action = "delete" if delete else "add"

    def command(
        open_kfid: str,
        userids: tuple[str, ...],
        userids_file: BinaryIO | None,
        encoding: str,
        department_ids: tuple[int, ...],
        show_all: bool,
        **opts: Any,
    ) -> None:
        journal = _Journal()
        ids: list[str] = []
        departments: list[int] = []
        finished: list[tuple[BatchResult, _Rest | None, Sequence[Exception]]] = []

        async def main_() -> int:
            ids[:], departments[:] = _target(userids, userids_file, encoding, department_ids)
            if not ids and not departments:
                raise _fail("nothing to do: give --userid, --userids-file or --department-id", 2)
            async with AsyncExitStack() as stack:
                client = await _open_client(stack, WeComClient, opts)
                call = client.servicers.delete if delete else client.servicers.add
                label = "deleting servicers" if delete else "adding servicers"
                error: BatchError | None = None
                with _progress(not opts["as_json"], label) as on_progress:
                    try:
                        result = await call(
                            open_kfid,
                            ids,
                            department_ids=departments,
                            on_progress=on_progress,
                            on_request=journal,
                        )
                    except BatchError as exc:
                        error, result = exc, exc.result
                    rest = (
                        (error.unprocessed_userids, error.unprocessed_department_ids)
                        if error
                        else None
                    )
                    finished.append((result, rest, error.errors if error else []))
            return _report_batch(*finished[0], as_json=opts["as_json"], show_all=show_all)

        def interrupted() -> None:
            if finished:
                _report_batch(*finished[0], as_json=opts["as_json"], show_all=show_all)
                return
            rest = journal.unprocessed(action, ids, departments)
            _report_batch(
                journal.result(action),
                rest,
                [],
                as_json=opts["as_json"],
                show_all=show_all,
                interrupted=True,
            )

        _run(main_, as_json=opts["as_json"], interrupted=interrupted)

    return command


def _batch_data(
    result: BatchResult, rest: _Rest | None, errors: Sequence[Exception], interrupted: bool
) -> dict[str, Any]:
    data = {
        "ok": rest is None and not interrupted and result.ok,
        "items": converter.unstructure(list(result.items)),
        "unprocessed_userids": rest[0] if rest else [],
        "unprocessed_department_ids": rest[1] if rest else [],
        "errors": [_error_data(e) for e in errors],
    }
    if interrupted:
        data["interrupted"] = True
    return data


def _report_batch(
    result: BatchResult,
    rest: _Rest | None,
    errors: Sequence[Exception],
    *,
    as_json: bool,
    show_all: bool,
    interrupted: bool = False,
) -> int:
    """The outcome of a batch: with --json one document; else the failures grouped by errcode
    (every id with --show-all) and a summary naming what was left unprocessed."""
    code = 0 if rest is None and result.ok else 1

    def write() -> None:
        if as_json:
            _print_json(_batch_data(result, rest, errors, interrupted))
            return
        out = _out()
        _write_outcomes(out, result, show_all)
        summary = f"{len(result.succeeded)} ok, {len(result.failed)} failed"
        if rest is not None:
            summary += f", {len(rest[0]) + len(rest[1])} unprocessed"
        if interrupted:
            summary += " (interrupted: the unprocessed ids may include requests in flight)"
        out.print(summary)
        for failure in errors:
            out.print(f"  {_describe(failure)}")

    if interrupted:
        write()
        return code
    return _final_report(code, write)


def _sync_command(
    open_kfid: str,
    userids: tuple[str, ...],
    userids_file: BinaryIO | None,
    encoding: str,
    department_ids: tuple[int, ...],
    show_all: bool,
    dry_run: bool,
    **opts: Any,
) -> None:
    journal = _Journal()
    plans: list[SyncResult] = []
    finished: list[tuple[SyncResult, SyncError | None]] = []

    async def main_() -> int:
        ids, departments = _target(userids, userids_file, encoding, department_ids)
        if not ids and not departments:
            # An empty file is far more often a mistake than a wish to remove every servicer.
            raise _fail(
                "the target lists no userid and no department: give ids, or remove servicers "
                "with 'wechat-kf wecom servicers delete'",
                2,
            )
        async with AsyncExitStack() as stack:
            client = await _open_client(stack, WeComClient, opts)
            plans.append(
                await client.servicers.sync(
                    open_kfid, ids, department_ids=departments, dry_run=True
                )
            )
            if dry_run or not plans[0].changes:
                finished.append((plans[0], None))
                return _report_sync(plans[0], None, as_json=opts["as_json"], show_all=show_all)
            error: SyncError | None = None
            with _progress(not opts["as_json"], "syncing servicers") as bar:
                try:
                    result = await client.servicers.sync(
                        open_kfid,
                        ids,
                        department_ids=departments,
                        on_progress=bar,
                        on_request=journal,
                    )
                except SyncError as exc:
                    error, result = exc, exc.result
                finished.append((result, error))
        return _report_sync(*finished[0], as_json=opts["as_json"], show_all=show_all)

    def interrupted() -> None:
        if finished:
            _report_sync(*finished[0], as_json=opts["as_json"], show_all=show_all)
            return
        if not plans:
            # Only the current servicers were being read: nothing was changed, and _run says
            # that it was interrupted.
            return
        plan = plans[0]
        done = attrs.evolve(plan, added=journal.result("add"), removed=journal.result("delete"))
        adds = journal.unprocessed("add", plan.to_add, plan.departments_to_add)
        removes = journal.unprocessed("delete", plan.to_remove, plan.departments_to_remove)
        error = SyncError(
            done,
            unprocessed_to_add=adds[0],
            unprocessed_departments_to_add=adds[1],
            unprocessed_to_remove=removes[0],
            unprocessed_departments_to_remove=removes[1],
        )
        _report_sync(done, error, as_json=opts["as_json"], show_all=show_all, interrupted=True)

    _run(main_, as_json=opts["as_json"], interrupted=interrupted)


def _report_sync(
    result: SyncResult,
    error: SyncError | None,
    *,
    as_json: bool,
    show_all: bool,
    interrupted: bool = False,
) -> int:
    ok = error is None and result.ok
    code = 0 if ok else 1

    def write() -> None:
        if as_json:
            _print_json(_sync_data(result, error, ok, interrupted))
        else:
            _write_sync(result, error, show_all, interrupted)

    if interrupted:
        write()
        return code
    return _final_report(code, write)


def _sync_data(
    result: SyncResult, error: SyncError | None, ok: bool, interrupted: bool
) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(result)
    data["ok"] = ok and not interrupted
    data["unprocessed"] = {
        "to_add": error.unprocessed_to_add if error else [],
        "to_remove": error.unprocessed_to_remove if error else [],
        "departments_to_add": error.unprocessed_departments_to_add if error else [],
        "departments_to_remove": error.unprocessed_departments_to_remove if error else [],
    }
    data["errors"] = [_error_data(e) for e in error.errors] if error else []
    if interrupted:
        data["interrupted"] = True
    return data


def _write_sync(
    result: SyncResult, error: SyncError | None, show_all: bool, interrupted: bool
) -> None:
    out = _out()
    verb = "would" if result.dry_run else "to"
    out.print(
        f"plan for {result.open_kfid}: {verb} add {len(result.to_add)} members and "
        f"{len(result.departments_to_add)} departments, {verb} remove {len(result.to_remove)} "
        f"members and {len(result.departments_to_remove)} departments"
    )
    for label, ids in (
        ("add", [*result.to_add, *map(str, result.departments_to_add)]),
        ("remove", [*result.to_remove, *map(str, result.departments_to_remove)]),
    ):
        if ids and result.dry_run:
            shown = ids if show_all else ids[:20]
            more = f" ... ({len(ids)} in all)" if len(shown) < len(ids) else ""
            out.print(f"  {label}: {', '.join(shown)}{more}")
    if result.dry_run or not result.changes:
        out.print("dry run: nothing sent" if result.dry_run else "already in sync")
        return
    for label, batch in (("added", result.added), ("removed", result.removed)):
        if batch is not None:
            out.print(f"{label}: {len(batch.succeeded)} ok, {len(batch.failed)} failed")
            _write_outcomes(out, batch, show_all)
    if error is not None:
        unprocessed = (
            len(error.unprocessed_to_add)
            + len(error.unprocessed_to_remove)
            + len(error.unprocessed_departments_to_add)
            + len(error.unprocessed_departments_to_remove)
        )
        note = " (interrupted: they may include requests in flight)" if interrupted else ""
        out.print(f"{unprocessed} unprocessed{note}: run the same sync again to finish")
        for failure in error.errors:
            out.print(f"  {_describe(failure)}")


servicers_sync = _batch_options(
    click.option("--dry-run", is_flag=True, help="Print the plan; send nothing.")(
        _wecom_command(
            "sync", "Make the servicers exactly the ids given: add the missing, remove the rest."
        )(_sync_command)
    )
)

servicers_add = _batch_options(
    _wecom_command("add", "Add servicers, in concurrent batches.")(_batch_command(delete=False))
)
servicers_delete = _batch_options(
    _wecom_command("delete", "Remove servicers.")(_batch_command(delete=True))
)


@main.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0: every interface.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@_verbose
def fake_server(host: str, port: int) -> None:
    """Serve a seeded FakeWeChat over HTTP for your other services (needs uvicorn)."""
    try:
        import uvicorn
    except ImportError:
        raise click.UsageError("fake-server needs uvicorn: pip install 'wechat-kf[cli]'") from None
    # Bound here, so a busy port is one line and exit 2, before any banner.
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        sys.exit(_fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2).code)
    box = sandbox()
    base, loopback = _reachable_url(host, listener.getsockname()[1])
    click.echo("FakeWeChat (in memory; state is lost when it stops)")
    click.echo(f"  base_url      {base}")
    if not loopback:
        click.echo(
            "                (plain http off loopback: clients need allow_insecure_http=True, "
            "the command --allow-insecure-http)"
        )
    click.echo(
        f"  OA appid      {box.appid}    secret {box.oa_secret}    WeChat ID {box.wechat_id}"
    )
    click.echo(f"  WeCom corpid  {box.corpid}    secret {box.wecom_secret}")
    click.echo(f"  open_kfid     {box.open_kfid}    members user0001..user1000, departments 1..10")
    click.echo(
        f"  open platform component_appid {box.component_appid}    secret "
        f"{box.component_appsecret}    verify ticket {box.verify_ticket}"
    )
    click.echo(
        f"                authorizer {box.appid}    refresh token {box.authorizer_refresh_token}"
    )
    click.echo(
        f"  service provider suite_id {box.suite_id}    secret {box.suite_secret}    "
        f"suite ticket {box.suite_ticket}"
    )
    click.echo(f"                corp {box.corpid}    permanent code {box.permanent_code}")
    click.echo("For the wechat-kf command and the examples in another shell:")
    insecure = "" if loopback else " WECHAT_KF_ALLOW_INSECURE_HTTP=1"
    click.echo(
        f"  export WECHAT_KF_BASE_URL={base}{insecure} WECHAT_APPID={box.appid} "
        f"WECHAT_SECRET={box.oa_secret} WECOM_CORPID={box.corpid} WECOM_SECRET={box.wecom_secret}"
    )
    config = uvicorn.Config(box.fake.app, log_level="warning", interface="asgi3")
    uvicorn.Server(config).run(sockets=[listener])


def _reachable_url(host: str, port: int) -> tuple[str, bool]:
    """A base_url other programs can use for a server bound to ``host``, and whether it is on
    loopback: a wildcard address is named by this machine's host name."""
    if host in ("0.0.0.0", "::", ""):
        return f"http://{socket.gethostname()}:{port}", False
    shown = f"[{host}]" if ":" in host else host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return f"http://{shown}:{port}", loopback


@main.command()
@click.option(
    "--ids",
    default=1000,
    show_default=True,
    type=click.IntRange(1, MAX_SERVICERS_PER_KF_ACCOUNT),
    help="How many userids to onboard (a kf account holds at most 2,000 servicers).",
)
@_verbose
def demo(ids: int) -> None:
    """Walk through the whole SDK on an in-process FakeWeChat: no credentials, no network."""
    _run(functools.partial(_demo, ids))


async def _demo(count: int) -> int:
    out = _out()
    started = time.perf_counter()
    box = sandbox(seed=7)
    fake = box.fake
    fake.faults = Faults(latency=(0.005, 0.03), busy_rate=0.05)
    out.rule("Official Account customer service (公众号客服)")
    async with httpx.AsyncClient(transport=fake.transport) as http:
        async with OfficialAccountClient(box.appid, box.oa_secret, http_client=http) as oa:
            account = f"demo@{box.wechat_id}"
            await oa.kf_accounts.add(account, nickname="演示客服")
            await oa.kf_accounts.invite_worker(account, invite_wx="demo_wechat_user")
            out.print(f"added {account} and invited demo_wechat_user to bind it")
            out.print(_accounts_table(await oa.kf_accounts.list()))
            fake.set_online(box.appid, f"support@{box.wechat_id}", status=1, accepted_case=2)
            out.print("online now:")
            out.print(_online_table(await oa.kf_accounts.list_online()))
        out.rule(f"WeCom servicers (微信客服): onboarding {count} userids")
        fake.add_members(box.corpid, (f"user{i:04d}" for i in range(1, count + 1)))
        known = sorted(fake.corps[box.corpid].members)[: max(count - 5, 0)]
        ghosts = [f"ghost{i:03d}" for i in range(1, min(count, 5) + 1)]
        userids = known + ghosts
        async with WeComClient(box.corpid, box.wecom_secret, http_client=http) as wc:
            with _progress(True, "adding servicers") as on_progress:
                result = await wc.servicers.add(box.open_kfid, userids, on_progress=on_progress)
            listed = await wc.servicers.list(box.open_kfid)
    out.print(f"{len(result.failed)} ids refused by WeChat:")
    out.print(_result_table(result, only_failed=True))
    summary = Table(show_header=False)
    summary.add_row("servicers added", str(len(result.succeeded)))
    summary.add_row("refused (60111 not a member)", str(len(result.failed)))
    summary.add_row("servicers now listed", str(len([s for s in listed if s.userid])))
    summary.add_row("servicer requests", str(len(fake.calls_to("/cgi-bin/kf/servicer/add"))))
    summary.add_row("busy answers retried", str(sum(1 for c in fake.calls if c.errcode == -1)))
    summary.add_row("token fetches (one per app)", str(fake.token_fetches))
    summary.add_row("elapsed", f"{time.perf_counter() - started:.2f} s")
    out.rule("summary")
    out.print(summary)
    return 0
