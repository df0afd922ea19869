"""``wechat-kf fake-server``: a seeded FakeWeChat over HTTP for other services, with the
credentials it accepts and the line to export."""

from __future__ import annotations

import ipaddress
import socket
import sys

import click

from wechat_kf.testing import sandbox

from .exits import USAGE, fail
from .options import verbose


@click.command("fake-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0: every interface.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@verbose
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
        sys.exit(fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", USAGE).code)
    box = sandbox()
    base, loopback = reachable_url(host, listener.getsockname()[1])
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
