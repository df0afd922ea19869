"""``wechat-kf fake-server``: a seeded FakeWeChat over HTTP for other services, with the
credentials it accepts and the line to export; optionally pushing its ``kf_msg_or_event``
callbacks, encrypted as WeChat does, to a URL of yours (``--callback-url``), and with sandbox
customers writing while it runs (``--customer-every``)."""

from __future__ import annotations

import ipaddress
import itertools
import socket
import sys
from typing import Any

import anyio
import click
import httpx
from rich.markup import escape

from wechat_kf.testing import Sandbox, sandbox

from .exits import OK, USAGE, fail, run
from .options import verbose
from .output import err

#: What the sandbox's customers say with --customer-every, in turn (numbered, so each differs).
_LINES = ("请问我的订单发货了吗？", "好的，谢谢", "还在吗？", "我想改一下收货地址")
#: How often the deliveries made are looked at, to report a callback that failed (s).
_WATCH = 0.25


@click.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0: every interface.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--callback-url",
    help="Push every kf_msg_or_event (a customer wrote, an event) to this URL, encrypted and "
    "signed as WeChat does, retried up to 3 times when the answer is not 200 within 5 s.",
)
@click.option(
    "--callback-token",
    envvar="WECHAT_KF_CALLBACK_TOKEN",
    show_envvar=True,
    help="The callback's Token (3 to 32 characters), as your route's CallbackCrypto has it.",
)
@click.option(
    "--callback-aes-key",
    envvar="WECHAT_KF_CALLBACK_AES_KEY",
    show_envvar=True,
    help="The callback's EncodingAESKey (43 characters).",
)
@click.option(
    "--customer-every",
    type=click.FloatRange(min=0, min_open=True),
    help="A sandbox customer writes to the 微信客服 account every S seconds, in turn.",
)
@verbose
def fake_server(
    host: str,
    port: int,
    callback_url: str | None,
    callback_token: str | None,
    callback_aes_key: str | None,
    customer_every: float | None,
) -> None:
    """Serve a seeded FakeWeChat over HTTP for your other services (needs uvicorn). With
    --callback-url it pushes kf_msg_or_event callbacks to your route as WeChat does (needs the
    callbacks extra); with --customer-every its customers keep writing. Ctrl-C stops it."""
    try:
        import uvicorn
    except ImportError:
        raise click.UsageError("fake-server needs uvicorn: pip install 'wechat-kf[cli]'") from None
    callback = _callback(callback_url, callback_token, callback_aes_key)
    box = sandbox()
    if callback is not None:
        _set_callback(box, *callback)
    # Bound here, so a busy port is one line and exit 2, before any banner.
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        sys.exit(fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", USAGE).code)
    _banner(box, host, listener.getsockname()[1], callback_url, customer_every)
    server = uvicorn.Server(uvicorn.Config(box.fake.app, log_level="warning", interface="asgi3"))

    async def serve() -> int:
        async with anyio.create_task_group() as group:
            if customer_every is not None:
                group.start_soon(_customers_write, box, customer_every)
            if callback is None:
                await server.serve(sockets=[listener])
            else:
                group.start_soon(_report_failed_pushes, box, callback[0])
                async with box.fake.pushing():
                    await server.serve(sockets=[listener])
            group.cancel_scope.cancel()
        return OK

    run(serve)


def _callback(
    url: str | None, token: str | None, aes_key: str | None
) -> tuple[str, str, str] | None:
    """The callback to push to (URL, token, EncodingAESKey): a usage error unless the three
    come together and the URL is http(s)."""
    context = click.get_current_context()
    if url is None:
        for name in ("callback_token", "callback_aes_key"):
            if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
                option = "--" + name.replace("_", "-")
                raise click.UsageError(f"{option} goes with --callback-url")
        return None
    if not token or not aes_key:
        raise click.UsageError(
            "--callback-url needs --callback-token and --callback-aes-key "
            "(or WECHAT_KF_CALLBACK_TOKEN and WECHAT_KF_CALLBACK_AES_KEY)"
        )
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"{url!r} is not an http:// or https:// URL", context,
                                 param_hint="--callback-url")  # fmt: skip
    return url, token, aes_key


def _set_callback(box: Sandbox, url: str, token: str, aes_key: str) -> None:
    """Point the fake's pushes at ``url``; a token or key CallbackCrypto refuses, or a missing
    callbacks extra, is a usage error."""
    try:
        box.fake.set_callback(url, token=token, encoding_aes_key=aes_key)
    except ImportError:
        raise click.UsageError(
            "--callback-url needs the callbacks extra: pip install 'wechat-kf[callbacks]'"
        ) from None
    except ValueError as exc:
        message = str(exc).replace("encoding_aes_key", "--callback-aes-key")
        raise click.UsageError(message.replace("token", "--callback-token", 1)) from None


def _banner(
    box: Sandbox, host: str, port: int, callback_url: str | None, customer_every: float | None
) -> None:
    base, loopback = reachable_url(host, port)
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
    if callback_url is not None:
        click.echo(
            f"  callbacks     every kf_msg_or_event of corp {box.corpid} is POSTed to "
            f"{callback_url}"
        )
        click.echo(
            "                encrypted with the --callback-token and --callback-aes-key given, "
            f"receive id {box.corpid}; a failed delivery is reported on stderr"
        )
    if customer_every is not None:
        first, last = box.customers[0], box.customers[-1]
        click.echo(
            f"  customers     {first}..{last[-2:]} write to {box.open_kfid} in turn, "
            f"one every {customer_every:g} s"
        )
    click.echo("For the wechat-kf command and the examples in another shell:")
    insecure = "" if loopback else " WECHAT_KF_ALLOW_INSECURE_HTTP=1"
    click.echo(
        f"  export WECHAT_KF_BASE_URL={base}{insecure} WECHAT_APPID={box.appid} "
        f"WECHAT_SECRET={box.oa_secret} WECOM_CORPID={box.corpid} WECOM_SECRET={box.wecom_secret}"
    )


async def _customers_write(box: Sandbox, every: float) -> None:
    """The sandbox's customers write in turn, one message every ``every`` seconds; each
    message is pushed to the callback, when there is one, as WeChat does."""
    for number in itertools.count(1):
        await anyio.sleep(every)
        customer = box.customers[(number - 1) % len(box.customers)]
        line = _LINES[(number - 1) % len(_LINES)]
        box.fake.customer_says(box.open_kfid, customer, f"{line} (#{number})")


async def _report_failed_pushes(box: Sandbox, url: str) -> None:
    """A line on stderr for each delivery the callback did not answer with a 200."""
    seen = 0
    while True:
        await anyio.sleep(_WATCH)
        deliveries = box.fake.callback_deliveries
        for delivery in deliveries[seen:]:
            if not delivery.ok:
                answer: Any = delivery.status if delivery.status is not None else delivery.error
                err().print(
                    f"[yellow]push failed:[/yellow] {delivery.kind} to {escape(url)}, attempt "
                    f"{delivery.attempt}: {escape(str(answer))}",
                    markup=True,
                    highlight=False,
                )
        seen = len(deliveries)


def reachable_url(host: str, port: int) -> tuple[str, bool]:
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
