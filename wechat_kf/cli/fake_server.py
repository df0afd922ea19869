"""``wechat-kf fake-server``: a seeded FakeWeChat over HTTP for other services, with the
credentials it accepts and the line to export; optionally pushing its ``kf_msg_or_event``
callbacks, encrypted as WeChat does, to a URL of yours (``--callback-url``), with sandbox
customers writing while it runs (``--customer-every``), a corp of ``--members`` members, a
servicer ``--cap`` and ``--faults`` drawn from ``--seed``."""

from __future__ import annotations

import ipaddress
import itertools
import socket
import sys
from typing import Any

import anyio
import attrs
import click
import httpx
from rich.markup import escape

from wechat_kf.testing import Faults, Sandbox, sandbox

from .exits import OK, USAGE, fail, run
from .options import verbose
from .output import err

#: What the sandbox's customers say with --customer-every, in turn (numbered, so each differs).
_LINES = ("请问我的订单发货了吗？", "好的，谢谢", "还在吗？", "我想改一下收货地址")
#: How often the deliveries made are looked at, to report a callback that failed (s).
_WATCH = 0.25
#: The --faults keys that are rates (0 to 1), and the Faults field each sets.
_RATES = {
    "busy": "busy_rate",
    "http5xx": "http_error_rate",
    "http5xx_after": "http_error_after_rate",
    "drop": "drop_rate",
    "drop_after": "drop_after_rate",
    "stall": "stall_rate",
}
_KEYS = (*_RATES, "http5xx_status", "latency", "revoke_every", "ERRCODE[@PATH]")


@attrs.frozen
class FaultSpec:
    """What --faults asked for: the fake's random faults (``faults``, keyword arguments of
    :class:`Faults`) and errcodes answered at a rate (``errcodes``: errcode, path or None for
    every business path, rate), in the order given."""

    faults: dict[str, Any]
    errcodes: tuple[tuple[int, str | None, float], ...]
    text: str

    def apply(self, box: Sandbox) -> None:
        """Switch them on in the sandbox's fake; a path it does not serve is a usage error."""
        box.fake.faults = Faults(**self.faults)
        for errcode, path, rate in self.errcodes:
            try:
                box.fake.inject_errcode(errcode, path=path, rate=rate)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="'--faults'") from None


def parse_faults(text: str) -> FaultSpec:
    """The faults ``KEY=VALUE,...`` asks for: rates from 0 to 1 of busy, http5xx,
    http5xx_after, drop, drop_after, stall, or of an ERRCODE (every business path) or
    ERRCODE@PATH; ``latency`` seconds or LOW-HIGH; ``revoke_every`` N calls; ``http5xx_status``
    500..599. Anything else is a ValueError saying what is wrong."""
    faults: dict[str, Any] = {}
    errcodes: list[tuple[int, str | None, float]] = []
    seen: set[str] = set()
    for item in text.split(","):
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or not key or not raw:
            raise ValueError(f"{item.strip()!r} is not KEY=VALUE (keys: {', '.join(_KEYS)})")
        if key in seen:
            raise ValueError(f"{key} is given twice")
        seen.add(key)
        code, _, path = key.partition("@")
        if key in _RATES:
            faults[_RATES[key]] = _rate(key, raw)
        elif key == "latency":
            faults["latency"] = _latency(raw)
        elif key == "revoke_every":
            faults["revoke_every"] = _whole(key, raw, 1, None)
        elif key == "http5xx_status":
            faults["http_error_status"] = _whole(key, raw, 500, 599)
        elif code.removeprefix("-").isdigit():
            rate = _rate(key, raw)
            if int(code) == 0 or rate == 0:
                raise ValueError(f"{key}={raw}: an errcode other than 0, at a rate above 0")
            errcodes.append((int(code), path or None, rate))
        else:
            raise ValueError(f"unknown fault {key!r} (keys: {', '.join(_KEYS)})")
    return FaultSpec(faults, tuple(errcodes), text)


def _rate(key: str, raw: str) -> float:
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ValueError(f"{key}={raw}: a rate is a number from 0 to 1")
    return rate


def _latency(raw: str) -> float | tuple[float, float]:
    low, sep, high = raw.partition("-")
    try:
        bounds = (float(low), float(high)) if sep else (float(raw), float(raw))
    except ValueError:
        bounds = (-1.0, -1.0)
    if not 0 <= bounds[0] <= bounds[1] <= 60:
        raise ValueError(f"latency={raw}: seconds from 0 to 60, or LOW-HIGH")
    return bounds if sep else bounds[0]


def _whole(key: str, raw: str, low: int, high: int | None) -> int:
    number = int(raw) if raw.isdigit() else -1
    if number < low or (high is not None and number > high):
        limits = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ValueError(f"{key}={raw}: a whole number {limits}")
    return number


def _faults_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_faults(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


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
@click.option(
    "--members",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Members of the sandbox corp: user0001, user0002, ...",
)
@click.option(
    "--cap",
    type=click.IntRange(min=0),
    help="Servicers a 微信客服 account may have (WeChat: 2,000); past it, add answers 95005.",
)
@click.option(
    "--faults",
    callback=_faults_option,
    help="Faults to inject, such as busy=0.2,http5xx=0.05,drop=0.02: rates from 0 to 1 of "
    "busy (-1), http5xx, http5xx_after, drop, drop_after, stall, or of an errcode on every "
    "business path (45033=0.1) or one (45009@/cgi-bin/kf/send_msg=0.5); latency=S or LOW-HIGH; "
    "revoke_every=N; http5xx_status=503.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seeds the faults' draws: the same seed, the same faults for the same calls.",
)
@verbose
def fake_server(
    host: str,
    port: int,
    callback_url: str | None,
    callback_token: str | None,
    callback_aes_key: str | None,
    customer_every: float | None,
    members: int,
    cap: int | None,
    faults: FaultSpec | None,
    seed: int,
) -> None:
    """Serve a seeded FakeWeChat over HTTP for your other services (needs uvicorn). With
    --callback-url it pushes kf_msg_or_event callbacks to your route as WeChat does (needs the
    callbacks extra); with --customer-every its customers keep writing; --members, --cap and
    --faults shape it for load and failure tests. Ctrl-C stops it."""
    try:
        import uvicorn
    except ImportError:
        raise click.UsageError("fake-server needs uvicorn: pip install 'wechat-kf[cli]'") from None
    callback = _callback(callback_url, callback_token, callback_aes_key)
    box = sandbox(seed=seed, members=members)
    if cap is not None:
        box.fake.servicer_cap = cap
    if faults is not None:
        faults.apply(box)
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
    bound = listener.getsockname()[1]
    _banner(box, host, bound, callback_url, customer_every)
    _shape(cap, faults, seed)
    click.echo(_export_line(box, host, bound))
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
    last = box.member(box.seeded_members)
    click.echo(
        f"  open_kfid     {box.open_kfid}    members {box.member(1)}..{last}, departments 1..10"
    )
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


def _shape(cap: int | None, faults: FaultSpec | None, seed: int) -> None:
    """The banner's lines for a servicer cap and faults other than the defaults."""
    if cap is not None:
        click.echo(f"  servicer cap  {cap} per 微信客服 account (then 95005)")
    if faults is not None:
        click.echo(f"  faults        {faults.text}    seed {seed}")


def _export_line(box: Sandbox, host: str, port: int) -> str:
    base, loopback = reachable_url(host, port)
    insecure = "" if loopback else " WECHAT_KF_ALLOW_INSECURE_HTTP=1"
    return (
        "For the wechat-kf command and the examples in another shell:\n"
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
