"""The ``wechat-kf`` command: the demo, kf accounts, servicers, and a fake server (extra "cli").

Exit codes: 0 all ok, 1 some items or the call failed, 2 usage or configuration error. Expected
failures print one line with errcode, errmsg and rid; secrets are never printed.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from typing import Any, TextIO, TypeVar

import anyio
import click
import httpx
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
    Servicer,
    SyncResult,
    WeComKfAccount,
)
from .testing import Faults, Sandbox, sandbox

F = TypeVar("F", bound=Callable[..., Any])


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False, markup=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str, code: int) -> _Exit:
    # The message may quote WeChat's errmsg: never let it be read as markup.
    _err().print(f"[red]error:[/red] {escape(message)}", markup=True)
    return _Exit(code)


def _describe(error: Exception) -> str:
    if isinstance(error, APIError):
        rid = error.rid or "-"
        return f"errcode={error.errcode} errmsg={error.errmsg!r} rid={rid} path={error.path}"
    if isinstance(error, WeChatError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _run(main: Callable[[], Awaitable[int]]) -> None:
    """Run ``main`` on anyio and turn expected failures into one line and an exit code."""
    try:
        code = anyio.run(main)
    except _Exit as stop:
        code = stop.code
    except (ValueError, TypeError) as exc:
        code = _fail(str(exc), 2).code
    except CredentialError as exc:
        code = _fail(f"credentials refused: {_describe(exc)}", 2).code
    except WeChatError as exc:
        code = _fail(_describe(exc), 1).code
    sys.exit(code)


def _common(func: F) -> F:
    """--json, --base-url and --sandbox, on every command that talks to WeChat."""
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON."),
        click.option("--base-url", default=None, help="API host (default: WeChat's)."),
        click.option(
            "--sandbox", is_flag=True, help="Use an in-process FakeWeChat seeded with demo data."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


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
    if opts["sandbox"]:
        box = sandbox()
        app_id, secret = sandbox_credentials(box)
        http = httpx.AsyncClient(transport=box.fake.transport)
        options["http_client"] = await stack.enter_async_context(http)
    else:
        app_id, secret = opts[id_name], opts["secret"]
        if not app_id or not secret:
            secret_env = env_name.split("_")[0] + "_SECRET"
            raise _fail(f"give --{id_name} and --secret (or {env_name} / {secret_env})", 2)
        if opts["base_url"]:
            options["base_url"] = opts["base_url"]
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
            _print_json(converter.unstructure(list(items)))
        else:
            _out().print(render(items))
        return 0

    _run(main_)


def _credentials(id_name: str, id_help: str, env_name: str, secret_env: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        func = click.option("--secret", envvar=secret_env, help="The app's secret.")(func)
        return click.option(f"--{id_name}", envvar=env_name, help=id_help)(func)

    return decorate


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


def _batch_data(result: BatchResult, error: BatchError | None) -> dict[str, Any]:
    return {
        "ok": error is None and result.ok,
        "items": converter.unstructure(list(result.items)),
        "unprocessed_userids": error.unprocessed_userids if error else [],
        "unprocessed_department_ids": error.unprocessed_department_ids if error else [],
        "errors": [_describe(e) for e in error.errors] if error else [],
    }


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


def _read_userids(stream: TextIO) -> list[str]:
    lines = (line.strip() for line in stream)
    return [line for line in lines if line and not line.startswith("#")]


# -- commands ----------------------------------------------------------------------------------


@click.group()
@click.version_option(__version__, prog_name="wechat-kf")
@click.option("-v", "--verbose", count=True, help="-v: each retry and request; -vv: httpx too.")
def main(verbose: int) -> None:
    """Manage WeChat customer service: Official Account kf accounts and WeCom servicers."""
    level = logging.WARNING if verbose == 0 else logging.DEBUG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("wechat_kf").setLevel(level)
    if verbose > 1:
        logging.getLogger("httpx").setLevel(logging.INFO)


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
            _print_json({"ok": True})
        else:
            _out().print(done)
        return 0

    _run(main_)


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
    func = click.option(
        "--department-id", "department_ids", multiple=True, type=int, help="Repeatable."
    )(func)
    func = click.option(
        "--userids-file",
        type=click.File("r", encoding="utf-8"),
        help="One userid per line; '-' reads standard input.",
    )(func)
    return click.option("--userid", "userids", multiple=True, help="Repeatable.")(func)


def _batch_command(delete: bool) -> Callable[..., None]:
    def command(
        open_kfid: str,
        userids: tuple[str, ...],
        userids_file: TextIO | None,
        department_ids: tuple[int, ...],
        **opts: Any,
    ) -> None:
        ids = list(userids) + (_read_userids(userids_file) if userids_file else [])

        async def main_() -> int:
            async with AsyncExitStack() as stack:
                client = await _open_client(stack, WeComClient, opts)
                call = client.servicers.delete if delete else client.servicers.add
                label = "deleting servicers" if delete else "adding servicers"
                error: BatchError | None = None
                with _progress(not opts["as_json"], label) as on_progress:
                    try:
                        result = await call(
                            open_kfid, ids, department_ids=department_ids, on_progress=on_progress
                        )
                    except BatchError as exc:
                        error, result = exc, exc.result
            return _report_batch(result, error, opts["as_json"])

        _run(main_)

    return command


def _report_batch(result: BatchResult, error: BatchError | None, as_json: bool) -> int:
    if as_json:
        _print_json(_batch_data(result, error))
    else:
        out = _out()
        out.print(_result_table(result))
        out.print(f"{len(result.succeeded)} ok, {len(result.failed)} failed", end="")
        if error is not None:
            unprocessed = len(error.unprocessed_userids) + len(error.unprocessed_department_ids)
            out.print(f", {unprocessed} unprocessed")
            for failure in error.errors:
                out.print(f"  {_describe(failure)}")
        else:
            out.print()
    return 0 if error is None and result.ok else 1


def _sync_command(
    open_kfid: str,
    userids: tuple[str, ...],
    userids_file: TextIO | None,
    department_ids: tuple[int, ...],
    dry_run: bool,
    **opts: Any,
) -> None:
    ids = list(userids) + (_read_userids(userids_file) if userids_file else [])
    if not ids and not department_ids:
        # An empty file is far more often a mistake than a wish to remove every servicer.
        message = (
            "the target lists no userid and no department: give ids, or remove servicers "
            "with 'wechat-kf wecom servicers delete'"
        )
        sys.exit(_fail(message, 2).code)

    async def main_() -> int:
        async with AsyncExitStack() as stack:
            client = await _open_client(stack, WeComClient, opts)
            error: SyncError | None = None
            with _progress(not opts["as_json"] and not dry_run, "syncing servicers") as bar:
                try:
                    result = await client.servicers.sync(
                        open_kfid,
                        ids,
                        department_ids=department_ids,
                        dry_run=dry_run,
                        on_progress=bar,
                    )
                except SyncError as exc:
                    error, result = exc, exc.result
        return _report_sync(result, error, opts["as_json"])

    _run(main_)


def _report_sync(result: SyncResult, error: SyncError | None, as_json: bool) -> int:
    ok = error is None and result.ok
    if as_json:
        data = converter.unstructure(result)
        data["ok"] = ok
        data["unprocessed"] = {
            "to_add": error.unprocessed_to_add if error else [],
            "to_remove": error.unprocessed_to_remove if error else [],
            "departments_to_add": error.unprocessed_departments_to_add if error else [],
            "departments_to_remove": error.unprocessed_departments_to_remove if error else [],
        }
        data["errors"] = [_describe(e) for e in error.errors] if error else []
        _print_json(data)
        return 0 if ok else 1
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
            shown = ", ".join(ids[:20]) + (f" ... ({len(ids)} in all)" if len(ids) > 20 else "")
            out.print(f"  {label}: {shown}")
    if result.dry_run or not result.changes:
        out.print("dry run: nothing sent" if result.dry_run else "already in sync")
        return 0
    for label, batch in (("added", result.added), ("removed", result.removed)):
        if batch is not None:
            out.print(f"{label}: {len(batch.succeeded)} ok, {len(batch.failed)} failed")
            if batch.failed:
                out.print(_result_table(batch, only_failed=True))
    if error is not None:
        unprocessed = (
            len(error.unprocessed_to_add)
            + len(error.unprocessed_to_remove)
            + len(error.unprocessed_departments_to_add)
            + len(error.unprocessed_departments_to_remove)
        )
        out.print(f"{unprocessed} unprocessed: run the same sync again to finish")
        for failure in error.errors:
            out.print(f"  {_describe(failure)}")
    return 0 if ok else 1


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
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
def fake_server(host: str, port: int) -> None:
    """Serve a seeded FakeWeChat over HTTP for your other services (needs uvicorn)."""
    try:
        import uvicorn
    except ImportError:
        raise click.UsageError("fake-server needs uvicorn: pip install 'wechat-kf[cli]'") from None
    box = sandbox()
    base = f"http://{host}:{port}"
    click.echo("FakeWeChat (in memory; state is lost when it stops)")
    click.echo(f"  base_url      {base}")
    click.echo(
        f"  OA appid      {box.appid}    secret {box.oa_secret}    WeChat ID {box.wechat_id}"
    )
    click.echo(f"  WeCom corpid  {box.corpid}    secret {box.wecom_secret}")
    click.echo(f"  open_kfid     {box.open_kfid}    members user0001..user1000, departments 1..10")
    uvicorn.run(box.fake.app, host=host, port=port, log_level="warning", interface="asgi3")


@main.command()
@click.option("--ids", default=1000, show_default=True, help="How many userids to onboard.")
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
        known = box.members[: max(count - 5, 0)]
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
