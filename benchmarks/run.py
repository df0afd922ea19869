"""The benchmarks: each comparison in one run against one server in another process, medians of
several repetitions, ratios rather than absolute times (the machines are noisy).

Every figure about speed or memory comes from a client process in a venv that holds only what a
user installs: ``plain`` is ``pip install wechat-kf`` (the runtime dependencies), ``trio`` is
that and ``pip install trio`` (what a trio user has), ``aiohttp`` is
``pip install 'wechat-kf[aiohttp]'``, ``callbacks`` is ``pip install 'wechat-kf[callbacks]'``,
``redis`` is ``pip install 'wechat-kf[redis]'``, ``receiver`` (a callback receiver on aiohttp)
is ``pip install 'wechat-kf[aiohttp,callbacks]'``, ``wechatpy`` holds wechatpy alone (with
cryptography, which its crypto needs). The venvs the selected parts use are made fresh for
each run (``--envs current`` runs every client in this interpreter instead, for
the suite's smoke test, whose figures mean nothing)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import secrets
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import httpx
import trustme

from benchmarks._server import (
    APPID,
    CORPID,
    CUSTOMER_PREFIX,
    INBOX_KFID,
    OA_SECRET,
    OPEN_KFID,
    WECOM_SECRET,
)
from benchmarks._speaker import LATENCY_KFID
from tests._redis import redis_process
from tests._servers import free_port, listening, wait_for_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: What each client venv holds, as pip arguments.
ENVS = {
    "plain": [str(ROOT)],
    # What a trio user installs: the plain install, and trio.
    "trio": [str(ROOT), "trio"],
    "aiohttp": [f"{ROOT}[aiohttp]"],
    "callbacks": [f"{ROOT}[callbacks]"],
    "redis": [f"{ROOT}[redis]"],
    "receiver": [f"{ROOT}[aiohttp,callbacks]"],
    "wechatpy": ["wechatpy[cryptography]==1.8.18"],
}
#: The exchange each venv's clients use; a plain install has httpx only.
EXCHANGE_OF = {"plain": "httpx", "aiohttp": "aiohttp"}


# -- plumbing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def client_envs(kind: str, roles: tuple[str, ...] = tuple(ENVS)) -> Iterator[dict[str, Any]]:
    """The interpreter of each client venv of ``roles``, with what ``pip freeze`` lists in it."""
    if kind == "current":
        yield {role: {"python": sys.executable, "packages": "this interpreter"} for role in roles}
        return
    directory = Path(tempfile.mkdtemp(prefix="wechat-kf-bench-"))
    try:
        envs = {}
        for role in roles:
            requirements = ENVS[role]
            venv.create(directory / role, with_pip=True)
            python = str(directory / role / "bin" / "python")
            pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*pip, *requirements], check=True)
            frozen = subprocess.run(
                [python, "-m", "pip", "freeze"], check=True, capture_output=True, text=True
            ).stdout.splitlines()
            # This checkout is listed with its path; name it without one.
            frozen = [
                p if " @ " not in p else p.split(" @ ")[0] + " (this checkout)" for p in frozen
            ]
            envs[role] = {"python": python, "packages": frozen}
        yield envs
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@attrs.define
class Server:
    """A FakeWeChat under uvicorn in another process: its URL, and the CA file that makes its
    certificate trusted (None over plain http)."""

    url: str
    ca_file: str | None = None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        return dict(httpx.post(f"{self.url}{path}", json=body, verify=verify).json())

    def admin(self, **config: Any) -> dict[str, Any]:
        return self._post("/_admin/config", config)

    def token(self) -> str:
        body = {"grant_type": "client_credential", "appid": APPID, "secret": OA_SECRET}
        return str(self._post("/cgi-bin/stable_token", body)["access_token"])

    def client_env(self) -> dict[str, str]:
        """The environment a client process trusts the test CA with: httpx and OpenSSL (so
        aiohttp) read SSL_CERT_FILE, requests reads REQUESTS_CA_BUNDLE."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        if self.ca_file:
            env.update(SSL_CERT_FILE=self.ca_file, REQUESTS_CA_BUNDLE=self.ca_file)
        return env


@contextlib.contextmanager
def fake_server(
    members: int, tls: trustme.CA | None = None, customers: int = 0, messages: int = 0
) -> Iterator[Server]:
    """FakeWeChat in a separate process, over HTTPS with a certificate from ``tls`` if given,
    with the even ids of the first ``customers`` of the customers benchmark seeded as
    customers, and a backlog of ``messages`` customer messages on ``INBOX_KFID``."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks._server", "--port", str(port)]
    command += ["--members", str(members), "--customers", str(customers)]
    command += ["--messages", str(messages)]
    with contextlib.ExitStack() as stack:
        ca_file = None
        if tls is not None:
            issued = tls.issue_cert("127.0.0.1", "localhost")
            # One file holding the key and the chain: what ssl's load_cert_chain takes alone.
            certfile = stack.enter_context(issued.private_key_and_cert_chain_pem.tempfile())
            ca_file = stack.enter_context(tls.cert_pem.tempfile())
            command += ["--certfile", certfile]
        scheme = "http" if tls is None else "https"
        running = stack.enter_context(
            listening(command, port, "the fake server", scheme=scheme, cwd=ROOT)
        )
        yield Server(running.url, ca_file)


@contextlib.contextmanager
def delayed(server: Server, delay: float) -> Iterator[Server]:
    """``server`` behind a forwarder that holds every chunk ``delay`` seconds each way."""
    port = free_port()
    target = server.url.rsplit(":", 1)[1]
    command = [sys.executable, "-m", "benchmarks._delay", "--port", str(port)]
    command += ["--target", target, "--delay", str(delay)]
    scheme = server.url.split(":", 1)[0]
    with listening(command, port, "the delaying forwarder", scheme=scheme, cwd=ROOT) as running:
        yield Server(running.url, server.ca_file)


#: For the jobs that talk to no server (``own_work``).
NO_SERVER = Server("http://127.0.0.1:9")


def run_client(env: dict[str, Any], server: Server, **job: Any) -> dict[str, Any]:
    """One job of ``_client.py`` (or ``_wechatpy_client.py`` for job="wechatpy") in a fresh
    process of ``env``; ``-I`` keeps this checkout and PYTHON* variables out of it."""
    script = "_wechatpy_client.py" if job["job"] == "wechatpy" else "_client.py"
    job = {
        "base_url": server.url,
        "appid": APPID,
        "corpid": CORPID,
        "open_kfid": OPEN_KFID,
        **job,
    }
    wecom = ("fanout", "customers", "memory")
    job.setdefault("secret", WECOM_SECRET if job["job"] in wecom else OA_SECRET)
    done = subprocess.run(
        [env["python"], "-I", str(HERE / script), json.dumps(job)],
        capture_output=True,
        text=True,
        env=server.client_env(),
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark client {job['job']} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    numbers = [k for k, v in samples[0].items() if isinstance(v, (int, float))]
    return {**samples[0], **{k: statistics.median(s[k] for s in samples) for k in numbers}}


def throughput(row: dict[str, Any], calls: int) -> float:
    return calls / float(row["wall_s"])


# -- 1. overhead against bare httpx ---------------------------------------------------------------


def bench_overhead(
    envs: dict[str, Any], server: Server, calls: int, concurrency: int, reps: int
) -> dict[str, Any]:
    """The SDK on its httpx exchange against bare httpx, in the plain install, sequentially and
    at ``concurrency``."""
    token = server.token()
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(reps):  # interleaved, so drift on the machine hits every variant alike
        for c in (1, concurrency):
            n = calls if c > 1 else calls // 4
            for exchange in ("bare_httpx", "httpx"):
                row = run_client(
                    envs["plain"], server, job="calls", method="list_online", token=token,
                    exchange=exchange, calls=n, concurrency=c,
                )  # fmt: skip
                rows.setdefault(f"{exchange}@{c}", []).append(row)
    m = {name: median_of(samples) for name, samples in rows.items()}
    seq, conc = f"@{1}", f"@{concurrency}"
    return {
        "calls": calls,
        "concurrency": concurrency,
        "repetitions": reps,
        "medians": m,
        "sequential_cpu_ratio": m["httpx" + seq]["cpu_us_per_call"]
        / m["bare_httpx" + seq]["cpu_us_per_call"],
        "concurrent_wall_ratio": m["httpx" + conc]["wall_s"] / m["bare_httpx" + conc]["wall_s"],
        "concurrent_cpu_ratio": m["httpx" + conc]["cpu_us_per_call"]
        / m["bare_httpx" + conc]["cpu_us_per_call"],
        "target": "sequential_cpu_ratio <= 1.10, concurrent_wall_ratio <= 1.10",
    }


# -- 2. fan-out against the floor ----------------------------------------------------------------


def bench_fanout(
    envs: dict[str, Any],
    server: Server,
    ids: int,
    latency: float,
    concurrencies: list[int | None],
    reps: int,
) -> dict[str, Any]:
    batches = math.ceil(ids / 100)
    rows = []
    for role, exchange in EXCHANGE_OF.items():
        for concurrency in concurrencies:
            walls = []
            for _ in range(reps):
                server.admin(latency=latency, clear_servicers=True)
                row = run_client(
                    envs[role], server, job="fanout", exchange=exchange, ids=ids,
                    concurrency=concurrency,
                )  # fmt: skip
                walls.append(row["wall_s"])
            effective = row["concurrency"]
            floor = math.ceil(batches / effective) * latency
            wall = statistics.median(walls)
            rows.append(
                {
                    "exchange": row["exchange"],
                    "concurrency": effective,
                    "default": concurrency is None,
                    "wall_s": wall,
                    "floor_s": floor,
                    "over_floor": wall / floor - 1,
                }
            )
    server.admin(latency=0.0, clear_servicers=True)
    return {
        "ids": ids,
        "batches": batches,
        "latency_s": latency,
        "repetitions": reps,
        "rows": rows,
        "target": "over_floor <= 0.25",
    }


# -- 2b. customers fan-out against the ideal ------------------------------------------------------


def bench_customers(
    envs: dict[str, Any], server: Server, ids: int, latency: float, concurrency: int, reps: int
) -> dict[str, Any]:
    """``WeComClient(..., max_concurrency=concurrency).customers.get`` of ``ids`` ids (the even
    ones customers the server knows, the odd ones invalid) in each exchange's install, with
    ``latency`` before each answer: its wall against the ideal, ceil(requests / concurrency) x
    latency. Fails unless every run read every customer and every invalid id."""
    requests = math.ceil(ids / 100)
    ideal = math.ceil(requests / concurrency) * latency
    expected = {"customers": (ids + 1) // 2, "invalid": ids // 2}
    server.admin(latency=latency)
    samples: dict[str, list[dict[str, Any]]] = {}
    for _ in range(reps):  # interleaved, so drift on the machine hits both exchanges alike
        for role, exchange in EXCHANGE_OF.items():
            row = run_client(
                envs[role], server, job="customers", exchange=exchange, ids=ids,
                concurrency=concurrency, prefix=CUSTOMER_PREFIX,
            )  # fmt: skip
            read = {key: row[key] for key in expected}
            if read != expected:
                raise RuntimeError(f"customers.get on {exchange} read {read}, not {expected}")
            samples.setdefault(exchange, []).append(row)
    server.admin(latency=0.0)
    rows = []
    for exchange, runs in samples.items():
        wall = statistics.median(run["wall_s"] for run in runs)
        rows.append(
            {
                "exchange": exchange,
                "concurrency": runs[0]["concurrency"],
                "wall_s": wall,
                "walls_s": [run["wall_s"] for run in runs],
                "ideal_s": ideal,
                "ratio": wall / ideal,
                **expected,
            }
        )
    return {
        "ids": ids,
        "requests": requests,
        "latency_s": latency,
        "concurrency": concurrency,
        "repetitions": reps,
        "rows": rows,
        "target": "ratio <= 1.25",
    }


# -- 3. token storm ------------------------------------------------------------------------------


def bench_token_storm(server: Server, calls: int, processes: int) -> dict[str, Any]:
    """Token fetches, not speed: counted in this interpreter, which holds the redis client."""
    import anyio

    from wechat_kf import OfficialAccountClient

    server.admin(revoke=True)
    before = server.admin()["token_fetches"]

    async def storm() -> None:
        async with (
            OfficialAccountClient(APPID, OA_SECRET, base_url=server.url) as client,
            anyio.create_task_group() as group,
        ):
            for _ in range(calls):
                group.start_soon(client.kf_accounts.list_online)

    anyio.run(storm)
    single = server.admin()["token_fetches"] - before
    result: dict[str, Any] = {"calls": calls, "one_process_fetches": single}
    with redis_process() as redis_url:
        if redis_url is None:
            result["redis"] = "skipped: redis-server not installed"
            return result
        server.admin(revoke=True)
        before = server.admin()["token_fetches"]
        command = [
            sys.executable,
            "-m",
            "benchmarks._storm_worker",
            "--base-url",
            server.url,
            "--redis-url",
            redis_url,
            "--calls",
            str(calls // processes),
        ]
        workers = [subprocess.Popen(command, cwd=ROOT) for _ in range(processes)]
        for worker in workers:
            if worker.wait(timeout=120) != 0:
                raise RuntimeError("a token-storm worker failed")
        result["redis"] = {
            "processes": processes,
            "calls_per_process": calls // processes,
            "fetches": server.admin()["token_fetches"] - before,
        }
    return result


# -- 4. against wechatpy -------------------------------------------------------------------------


def bench_wechatpy(
    envs: dict[str, Any],
    server: Server,
    calls: int,
    concurrent_calls: int,
    concurrency: int,
    reps: int,
    latency: float,
) -> dict[str, Any]:
    """``getkflist``: wechatpy sequentially against each exchange in its own install,
    sequentially and at ``concurrency``, over ``server`` with ``latency`` before each answer."""
    server.admin(latency=0.0)
    token = server.token()
    server.admin(latency=latency)
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(reps):
        row = run_client(envs["wechatpy"], server, job="wechatpy", token=token, calls=calls)
        rows.setdefault("wechatpy", []).append(row)
        for role, exchange in EXCHANGE_OF.items():
            for c, n in ((1, calls), (concurrency, concurrent_calls)):
                row = run_client(
                    envs[role], server, job="calls", method="list", exchange=exchange,
                    calls=n, concurrency=c,
                )  # fmt: skip
                rows.setdefault(f"{exchange}@{c}", []).append(row)
    server.admin(latency=0.0)
    m = {name: median_of(samples) for name, samples in rows.items()}
    base = m["wechatpy"]
    ratios = {}
    for name, row in m.items():
        if name != "wechatpy":
            n = concurrent_calls if name.endswith(f"@{concurrency}") else calls
            ratios[name] = {
                "cpu_ratio": row["cpu_us_per_call"] / base["cpu_us_per_call"],
                "throughput_ratio": throughput(row, n) / throughput(base, calls),
            }
    return {
        "scheme": server.url.split(":", 1)[0],
        "latency_s": latency,
        "calls": calls,
        "concurrent_calls": concurrent_calls,
        "concurrency": concurrency,
        "repetitions": reps,
        "medians": m,
        "ratios": ratios,
    }


# -- 4b. every exchange and event loop at concurrency 1, 8, 50 and 200 --------------------------

#: The client setups of the concurrency part: (venv, exchange, event loop, the concurrencies
#: it runs at: None for all). "httpx_client" is the SDK over an httpx.AsyncClient of the
#: caller's with 100 connections (one pool), at the concurrencies where it still finishes soon;
#: "bare_aiohttp" is aiohttp alone, for reference.
SETUPS: tuple[tuple[str, str, str, tuple[int, ...] | None], ...] = (
    ("plain", "httpx", "asyncio", None),
    ("trio", "httpx", "trio", None),
    ("aiohttp", "aiohttp", "asyncio", None),
    ("plain", "httpx_client", "asyncio", (1, 8, 50)),
    ("aiohttp", "bare_aiohttp", "asyncio", (1, 50)),
)
#: What each setup's client reports as its exchange (the caller's client is httpx; bare aiohttp
#: is aiohttp set up as the SDK's, without the SDK: the floor of that exchange).
MEASURED_AS = {"httpx_client": "httpx", "bare_aiohttp": "aiohttp"}
CONCURRENCY_TARGETS = {
    "httpx": "at c=50: throughput >= 35x and CPU per call <= 1.0x wechatpy's sequential; "
    "sequential CPU <= 1.2x wechatpy's; CPU per call at c=200 <= 1.5x its c=8 figure",
    "aiohttp": "at c=50: throughput >= 45x wechatpy's sequential; sequential CPU <= 0.5x "
    "wechatpy's",
}


def bench_concurrency(
    envs: dict[str, Any],
    server: Server,
    calls: dict[int, int],
    wechatpy_calls: int,
    reps: int,
    latency: float,
) -> dict[str, Any]:
    """``getkflist`` through each exchange on each event loop it runs on (httpx on asyncio in
    the plain install and on trio with trio installed, aiohttp on asyncio in its own, and the
    SDK over a caller's httpx client), ``calls[c]`` calls at each concurrency ``c``, against
    wechatpy calling sequentially, all with ``latency`` before each answer; every variant once
    per repetition, interleaved, medians. Each row's ratios are to wechatpy's sequential
    throughput and CPU per call, and for each setup its CPU per call at the highest concurrency
    is compared with the figure at 8."""
    server.admin(latency=0.0)
    token = server.token()
    server.admin(latency=latency)
    load = [os.getloadavg()[0]]
    samples: dict[str, list[dict[str, Any]]] = {}
    plan = [
        (role, exchange, loop, c, n)
        for role, exchange, loop, only in SETUPS
        for c, n in calls.items()
        if only is None or c in only
    ]
    for _ in range(reps):
        row = run_client(
            envs["wechatpy"], server, job="wechatpy", token=token, calls=wechatpy_calls
        )
        samples.setdefault("wechatpy", []).append(row)
        for role, exchange, loop, c, n in plan:
            row = run_client(
                envs[role], server, job="calls", method="list", exchange=exchange,
                calls=n, concurrency=c, backend=loop, token=token,
            )  # fmt: skip
            if row["exchange"] != MEASURED_AS.get(exchange, exchange):
                raise RuntimeError(f"asked for {exchange}, measured {row['exchange']}")
            samples.setdefault(f"{exchange}/{loop}@{c}", []).append(row)
    load.append(os.getloadavg()[0])
    server.admin(latency=0.0)
    m = {name: median_of(runs) for name, runs in samples.items()}
    base = m["wechatpy"]
    base_rate = throughput(base, wechatpy_calls)
    rows = []
    for _, exchange, loop, c, n in plan:
        name = f"{exchange}/{loop}@{c}"
        row = m[name]
        rows.append(
            {
                "exchange": exchange,
                "loop": loop,
                "concurrency": c,
                "calls": n,
                "calls_per_s": throughput(row, n),
                "cpu_us_per_call": row["cpu_us_per_call"],
                "throughput_ratio": throughput(row, n) / base_rate,
                "cpu_ratio": row["cpu_us_per_call"] / base["cpu_us_per_call"],
                "cpu_us_per_call_runs": [r["cpu_us_per_call"] for r in samples[name]],
            }
        )
    top = max(calls)
    growth = {
        f"{exchange}/{loop}": m[f"{exchange}/{loop}@{top}"]["cpu_us_per_call"]
        / m[f"{exchange}/{loop}@8"]["cpu_us_per_call"]
        for _, exchange, loop, only in SETUPS
        if 8 in calls and (only is None or {8, top} <= set(only))
    }
    return {
        "scheme": server.url.split(":", 1)[0],
        "latency_s": latency,
        "repetitions": reps,
        "wechatpy": {
            "calls": wechatpy_calls,
            "calls_per_s": base_rate,
            "cpu_us_per_call": base["cpu_us_per_call"],
            "cpu_us_per_call_runs": [r["cpu_us_per_call"] for r in samples["wechatpy"]],
        },
        "rows": rows,
        f"cpu_at_{top}_vs_8": growth,
        "targets": CONCURRENCY_TARGETS,
        "load_average_1min": {"before": load[0], "after": load[1]},
    }


# -- 4c. the SDK's own work per call ---------------------------------------------------------------


def bench_own_work(envs: dict[str, Any], calls: int, rounds: int, reps: int) -> dict[str, Any]:
    """What the SDK adds to httpx per call, in process over ``httpx.MockTransport`` (see
    ``own_work`` in ``_client.py``), in the plain install on asyncio and with trio on trio: the
    medians of ``reps`` processes."""
    rows = {}
    for role, loop in (("plain", "asyncio"), ("trio", "trio")):
        runs = [
            run_client(envs[role], NO_SERVER, job="own_work", token="bench-token-0123456789",
                       calls=calls, rounds=rounds, backend=loop)
            for _ in range(reps)
        ]  # fmt: skip
        rows[loop] = {
            "bare_httpx_cpu_us_per_call": statistics.median(
                r["cpu_us_per_call"]["bare_httpx"] for r in runs
            ),
            "own_us_per_call": statistics.median(r["own_us_per_call"] for r in runs),
            "own_no_hooks_us_per_call": statistics.median(
                r["own_no_hooks_us_per_call"] for r in runs
            ),
            "runs": [
                {k: r[k] for k in ("own_us_per_call", "own_no_hooks_us_per_call")} for r in runs
            ],
        }
    return {
        "calls": calls,
        "rounds": rounds,
        "repetitions": reps,
        "work": "list_online (5 accounts) through OfficialAccountClient(token_provider="
        "StaticTokenProvider, http_client=httpx.AsyncClient(transport=httpx.MockTransport(h))) "
        "with the default hooks (LoggingHook, DEBUG off) and with hooks=[], minus the same GET "
        "through that bare client (http.get(url, params=) and response.json()); CPU time",
        "rows": rows,
        "target": "own_us_per_call <= 20",
    }


# -- 5. memory -----------------------------------------------------------------------------------


def bench_memory(envs: dict[str, Any], server: Server, ids: int) -> list[dict[str, Any]]:
    rows = []
    for role, exchange in EXCHANGE_OF.items():
        server.admin(latency=0.0, clear_servicers=True)
        rows.append(run_client(envs[role], server, job="memory", exchange=exchange, ids=ids))
    server.admin(clear_servicers=True)
    return rows


# -- 6. what a connection closed while idle costs ------------------------------------------------


def bench_handshake(
    envs: dict[str, Any], servers: list[Server], rtt: float, calls: int, reps: int
) -> list[dict[str, Any]]:
    """Each library bare, through a forwarder giving a real ``rtt``: sequential calls on one
    kept-alive connection against a new connection per call, over http and https."""
    rows = []
    for server in servers:
        token = server.token()
        with delayed(server, rtt / 2) as far:
            for role, library in EXCHANGE_OF.items():
                samples = [
                    run_client(envs[role], far, job="handshake", library=library, token=token,
                               calls=calls)
                    for _ in range(reps)
                ]  # fmt: skip
                reused = median_of([s["reused"] for s in samples])
                new = median_of([s["new"] for s in samples])
                rows.append(
                    {
                        "scheme": far.url.split(":", 1)[0],
                        "library": library,
                        "rtt_s": rtt,
                        "reused": reused,
                        "new": new,
                        "extra_wall_us_per_call": new["wall_us_per_call"]
                        - reused["wall_us_per_call"],
                        "extra_cpu_us_per_call": new["cpu_us_per_call"] - reused["cpu_us_per_call"],
                    }
                )
    return rows


# -- 7. decrypting a callback push ---------------------------------------------------------------

#: The callback URL's configuration (WeCom's admin console): its Token and EncodingAESKey.
CALLBACK_TOKEN = "benchToken0123"
CALLBACK_AES_KEY = "YmVuY2htYXJrLWtleS0wMTIzNDU2Nzg5YWJjZGVmZ2h"
CALLBACK_WORK = {
    "wechat_kf": "CallbackCrypto(token, encoding_aes_key, corpid) made once (max_age=300, the "
    "default: the timestamp is checked against the clock on each call); per call, decrypt(body "
    "bytes, msg_signature=, timestamp=, nonce=): the outer XML parsed by defusedxml (no DTDs or "
    "entities, size capped), the SHA-1 signature compared in constant time, the timestamp within "
    "300 s of now, base64 decoded, AES-256-CBC decrypted with the cipher made once, padding, "
    "length and corpid checked, the inner XML parsed by defusedxml into its fields and built "
    "into a typed KfMsgOrEvent (corpid, open_kfid, token, create_time as an aware datetime)",
    "wechatpy": "wechatpy.enterprise.crypto.WeChatCrypto(token, encoding_aes_key, corpid) made "
    "once; per call, decrypt_message(body bytes, msg_signature, timestamp, nonce): the outer XML "
    "parsed by xmltodict, the SHA-1 signature compared with !=, no timestamp check, a new AES "
    "cipher made, base64 decoded, AES-256-CBC decrypted, padding stripped unchecked, corpid "
    "checked, the XML text returned; then xmltodict.parse(xml)['xml'], the dict of str fields "
    "its callers read",
}


def run_callback_job(env: dict[str, Any], **job: Any) -> dict[str, Any]:
    """One job of ``_callback_decrypt.py`` in a fresh process of ``env`` (``-I``, as
    :func:`run_client`)."""
    job = {"token": CALLBACK_TOKEN, "encoding_aes_key": CALLBACK_AES_KEY, "corpid": CORPID, **job}
    done = subprocess.run(
        [env["python"], "-I", str(HERE / "_callback_decrypt.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"callback benchmark job {job['job']} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def kf_msg_or_event() -> tuple[str, dict[str, Any]]:
    """A WeCom ``kf_msg_or_event`` push as WeChat writes it, created now, and its fields."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    fields = {
        "corpid": CORPID,
        "open_kfid": OPEN_KFID,
        "token": "ENC" + "".join(secrets.choice(alphabet) for _ in range(44)),
        "create_time": int(time.time()),
    }
    xml = (
        f"<xml><ToUserName><![CDATA[{fields['corpid']}]]></ToUserName>"
        f"<CreateTime>{fields['create_time']}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
        f"<Token><![CDATA[{fields['token']}]]></Token>"
        f"<OpenKfId><![CDATA[{fields['open_kfid']}]]></OpenKfId></xml>"
    )
    return xml, fields


def same_push_read(expected: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Raise unless every side read back the fields that were sealed, Token above all: the
    comparison is of equal work only if both decrypted the same push."""
    for row in rows:
        if row["read"] != expected:
            wrong = sorted(k for k in expected if row["read"].get(k) != expected[k])
            raise RuntimeError(f"{row['side']} did not read the push that was sealed: {wrong}")


def bench_callback_decrypt(
    envs: dict[str, Any], calls: int, batches: int, reps: int
) -> dict[str, Any]:
    """``CallbackCrypto.decrypt`` in the ``callbacks`` install against wechatpy's WeCom crypto
    and xmltodict in its own, on the same push: sealed afresh for each repetition (its
    timestamp must be within 300 s of the clock) and handed to both sides."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(reps):
        plaintext, expected = kf_msg_or_event()
        push = run_callback_job(envs["callbacks"], job="seal", plaintext=plaintext)
        done = [
            run_callback_job(envs[role], job=side, push=push, calls=calls, batches=batches)
            for side, role in (("wechat_kf", "callbacks"), ("wechatpy", "wechatpy"))
        ]
        same_push_read(expected, done)
        for row in done:
            rows.setdefault(row["side"], []).append(row)
    m = {
        side: {
            key: statistics.median(row[key] for row in samples)
            for key in ("us_per_call", "cpu_us_per_call")
        }
        for side, samples in rows.items()
    }
    return {
        "push": "WeCom kf_msg_or_event",
        "push_body_bytes": len(push["body"].encode("utf-8")),
        "calls": calls,
        "batches": batches,
        "repetitions": reps,
        "work": CALLBACK_WORK,
        "same_token_read": True,
        "medians": m,
        "ratio": m["wechat_kf"]["us_per_call"] / m["wechatpy"]["us_per_call"],
        "cpu_ratio": m["wechat_kf"]["cpu_us_per_call"] / m["wechatpy"]["cpu_us_per_call"],
    }


# -- 8. the inbox: draining a backlog ------------------------------------------------------------

INBOX_WORK = {
    "bare": "a loop of client.messages.sync(open_kfid, cursor=, limit=) pages from the oldest "
    "until has_more is 0, awaiting the handler for each message: no store, no marks, no lease",
    "memory": "await inbox.drain(open_kfid) on Inbox(client, handler, store=MemoryInboxStore(), "
    "limit=): the lease taken, each page's msgids looked up among the done marks, each message "
    "handed to the handler and its done mark written as it returns, the page's marks committed "
    "again with its cursor, the lease released against the notification generation",
    "redis": "the same drain on RedisInboxStore(redis.asyncio.Redis, prefix=) against a "
    "redis-server on loopback started by the benchmark, under a new prefix each run (nothing "
    "marked done yet): each mark sent early (a one-way SET on a lent connection with replies "
    "off, no round trip), the page's msgids looked up and its marks and cursor committed by Lua "
    "scripts; its connection and Lua scripts made before the timing",
}
#: The fake's own limit on pulls without a callback token (per corp and minute), restored after.
FAKE_TOKENLESS_PULLS = 10
#: Commands a redis-py client sends only at the top level (the stores' Lua scripts never call
#: them): Redis's own counts of these must equal the client-side counter's.
TOP_LEVEL_ONLY = ("EVALSHA", "MGET", "ZRANGE")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def run_inbox_job(env: dict[str, Any], **job: Any) -> dict[str, Any]:
    """One job of ``_inbox_client.py`` in a fresh process of ``env`` (``-I``, as
    :func:`run_client`)."""
    job = {"corpid": CORPID, "secret": WECOM_SECRET, **job}
    done = subprocess.run(
        [env["python"], "-I", str(HERE / "_inbox_client.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"inbox benchmark job {job['job']} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def redis_commandstats(url: str, *, reset: bool = False) -> dict[str, int]:
    """Calls per command since the last reset, from Redis's ``INFO commandstats``; with
    ``reset``, ``CONFIG RESETSTAT`` instead (and nothing)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        if reset:
            client.config_resetstat()
            return {}
        stats = client.info("commandstats")
        return {
            name.removeprefix("cmdstat_").upper(): int(value["calls"])
            for name, value in stats.items()
        }
    finally:
        client.close()


def bench_inbox(
    envs: dict[str, Any], server: Server, messages: int, limit: int, reps: int
) -> dict[str, Any]:
    """The backlog of ``messages`` on ``INBOX_KFID`` drained in pages of ``limit`` with a handler
    that does nothing: a bare pull loop and ``Inbox.drain`` with the memory store in the plain
    install, with the Redis store in the redis install; interleaved, medians of ``reps``. Fails
    unless every run handed every message to the handler."""
    load = [os.getloadavg()[0]]
    server.admin(tokenless_pulls_per_minute=1_000_000)
    samples: dict[str, list[dict[str, Any]]] = {}
    try:
        with redis_process() as redis_url:
            variants = [("bare", "plain"), ("memory", "plain")]
            if redis_url is not None:
                variants.append(("redis", "redis"))
            for _ in range(reps):  # interleaved, so drift on the machine hits every variant alike
                for variant, role in variants:
                    job: dict[str, Any] = {
                        "job": "throughput",
                        "variant": variant,
                        "base_url": server.url,
                        "open_kfid": INBOX_KFID,
                        "limit": limit,
                        "exchange": EXCHANGE_OF["plain"],
                    }
                    if redis_url is not None and variant == "redis":
                        job.update(redis_url=redis_url, prefix=f"bench-{secrets.token_hex(6)}")
                        redis_commandstats(redis_url, reset=True)
                    row = run_inbox_job(envs[role], **job)
                    if row["messages"] != messages:
                        raise RuntimeError(
                            f"the {variant} drain handed {row['messages']} messages to the "
                            f"handler, not {messages}"
                        )
                    if redis_url is not None and variant == "redis":
                        row["server_calls"] = redis_commandstats(redis_url)
                    samples.setdefault(variant, []).append(row)
    finally:
        server.admin(tokenless_pulls_per_minute=FAKE_TOKENLESS_PULLS)
    load.append(os.getloadavg()[0])
    keys = ("messages_per_s", "wall_s", "cpu_us_per_message")
    medians = {
        variant: {
            **{key: statistics.median(row[key] for row in rows) for key in keys},
            "runs_messages_per_s": [row["messages_per_s"] for row in rows],
            "pages": rows[0]["pages"],
            "exchange": rows[0]["exchange"],
            "env": dict(variants)[variant],
        }
        for variant, rows in samples.items()
    }
    bare, memory = medians["bare"]["messages_per_s"], medians["memory"]["messages_per_s"]
    result: dict[str, Any] = {
        "messages": messages,
        "limit": limit,
        "repetitions": reps,
        "handler": "async def handler(message): return None",
        "pulls": "without a callback token, as a drain with no notification pulls (the fake's "
        f"token-less limit, {FAKE_TOKENLESS_PULLS} a minute, lifted for this part)",
        "work": INBOX_WORK,
        "medians": medians,
        "memory_vs_bare": memory / bare,
        "redis_vs_memory": None,
        "targets": {"memory_vs_bare": ">= 0.7", "redis_vs_memory": ">= 0.5"},
        "load_average_1min": {"before": load[0], "after": load[1]},
    }
    if "redis" not in samples:
        result["redis"] = "skipped: redis-server not installed"
        return result
    rows = samples["redis"]
    result["redis_vs_memory"] = medians["redis"]["messages_per_s"] / memory
    checks = [
        {
            command: {"client": row["redis_commands_whole_job"].get(command, 0),
                      "server": row["server_calls"].get(command, 0)}
            for command in TOP_LEVEL_ONLY
        }
        for row in rows
    ]  # fmt: skip
    result["redis"] = {
        "counted_by": "a wrapper around redis.asyncio.Redis.execute_command in the measured "
        "process (one command, one round trip: the store sends no pipelines), counting from "
        "the drain's start to its end; cross-checked against Redis's INFO commandstats after "
        "CONFIG RESETSTAT for the commands only ever sent at the top level (EVALSHA, MGET, "
        "ZRANGE; the Lua scripts' own SET/GET/... calls are counted there too, so the other "
        "commands cannot be compared)",
        "round_trips_per_page": statistics.median(row["round_trips_per_page"] for row in rows),
        "round_trips_per_message": statistics.median(
            row["round_trips_per_message"] for row in rows
        ),
        "round_trips_per_drain": [row["redis_round_trips"] for row in rows],
        "early_marks_per_page": statistics.median(
            row.get("early_marks_per_page", 0) for row in rows
        ),
        "commands_per_drain": rows[0]["redis_commands"],
        "cross_check": checks,
        "cross_check_agrees": all(
            c["client"] == c["server"] for check in checks for c in check.values()
        ),
    }
    return result


# -- 9. the inbox: from a customer's message to the handler ---------------------------------------

LATENCY_WORK = {
    "fake": "FakeWeChat served by uvicorn in its own process (benchmarks/_speaker.py), pushing "
    "with fake.set_callback(url, token=, encoding_aes_key=) inside fake.pushing(): one customer "
    "writes (fake.customer_says) rate times a second, each message on its own schedule; each "
    "message queues a kf_msg_or_event push with a new sync token, delivered one after another "
    "as WeChat does (a new httpx client per delivery)",
    "receiver": "an aiohttp app on loopback in the receiver install (benchmarks/_inbox_client.py"
    " receiver): its POST route reads the body, CallbackCrypto.decrypt()s it and awaits "
    "inbox.notify(event) (MemoryInboxStore), answering 'success'; the Inbox pulls in the "
    "background with the push's token (WeComClient on aiohttp); the handler records "
    "time.time() for each msgid",
    "latency": "the handler's time.time() minus the time.time() taken in the fake's process just "
    "before the customer wrote the message (both processes on this machine's clock)",
}


@contextlib.contextmanager
def speaking_fake(ca: trustme.CA) -> Iterator[Server]:
    """The latency benchmark's fake (``_speaker.py``) in a separate process. Each push it
    delivers makes a new httpx client, whose SSL context loads the CA file it is given: certifi's
    bundle takes about 23 ms, capping the fake at about 43 pushes a second, so it is given a
    file of one certificate (its pushes go over plain http: no certificate is ever checked)."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks._speaker", "--port", str(port)]
    with ca.cert_pem.tempfile() as ca_file:
        env = {**clean_env(), "SSL_CERT_FILE": ca_file}
        with listening(command, port, "the speaking fake", cwd=ROOT, env=env) as running:
            yield Server(running.url)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread_of(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values),
        "mean_ms": statistics.fmean(values),
    }


def rate_of(times: list[float]) -> float | None:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None


def bench_inbox_latency(
    envs: dict[str, Any], ca: trustme.CA, rate: float, seconds: float, warmup: int
) -> dict[str, Any]:
    """``warmup`` then ``rate * seconds`` customer messages at ``rate`` a second, each pushed to
    the receiver; latency from each message to its handler call, the warm-up left out. Fails
    unless every message reached the handler."""
    measured = round(rate * seconds)
    count = warmup + measured
    load = [os.getloadavg()[0]]
    port = free_port()
    with speaking_fake(ca) as fake:
        job = {
            "job": "receiver",
            "corpid": CORPID,
            "secret": WECOM_SECRET,
            "base_url": fake.url,
            "open_kfid": LATENCY_KFID,
            "exchange": EXCHANGE_OF["aiohttp"],
            "port": port,
            "token": CALLBACK_TOKEN,
            "encoding_aes_key": CALLBACK_AES_KEY,
            "count": count,
            "timeout": count / rate + 30,
        }
        command = [
            envs["receiver"]["python"],
            "-I",
            str(HERE / "_inbox_client.py"),
            json.dumps(job),
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_env(), cwd=tempfile.gettempdir(),
        )  # fmt: skip
        try:
            wait_for_port(port, process, "the inbox receiver")
            fake._post(
                "/_admin/speak",
                {"url": f"http://127.0.0.1:{port}/callback", "token": CALLBACK_TOKEN,
                 "encoding_aes_key": CALLBACK_AES_KEY, "rate": rate, "count": count},
            )  # fmt: skip
            out, err = process.communicate(timeout=job["timeout"] + 30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the inbox receiver failed:\n{err}")
        received = json.loads(out.strip().splitlines()[-1])
        spoken = fake._post("/_admin/spoken", {})
    load.append(os.getloadavg()[0])
    if not spoken["done"] or len(spoken["spoken"]) != count:
        raise RuntimeError(f"the fake wrote {len(spoken['spoken'])} of {count} messages")
    handled, arrived = received["handled"], received["arrived"]
    rows = spoken["spoken"][warmup:]
    missing = sum(1 for msgid, _, _ in rows if msgid not in handled)
    if missing:
        raise RuntimeError(f"{missing} of {len(rows)} messages never reached the handler")
    latencies = [(handled[msgid] - at) * 1000 for msgid, _, at in rows]
    pushed = [(arrived[token] - at) * 1000 for _, token, at in rows if token in arrived]
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "warmup_messages": warmup,
        "count": len(latencies),
        "work": LATENCY_WORK,
        "exchange": received["exchange"],
        "handler_latency": spread_of(latencies),
        "push_arrival_latency": spread_of(pushed) if pushed else None,
        "pushes_received": sum(1 for _, token, _ in rows if token in arrived),
        "handled_before_own_push": sum(
            1 for msgid, token, _ in rows if token in arrived and handled[msgid] < arrived[token]
        ),
        "spoken_per_s": rate_of([at for _, _, at in rows]),
        "callbacks_per_s": rate_of([arrived[token] for _, token, _ in rows if token in arrived]),
        "pulls": received["pulls"],
        "pages": received["pages"],
        "pull_outcomes": received["pull_outcomes"],
        "refused_pushes": received["refused"],
        "deliveries": spoken["deliveries"],
        "failed_deliveries": spoken["failed_deliveries"],
        "load_average_1min": {"before": load[0], "after": load[1]},
    }


# -- the run -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


SIZES = {
    "full": {
        "overhead_calls": 2000,
        "fanout_ids": 10_000,
        "customers_ids": 10_000,
        "storm_calls": 1000,
        "wechatpy_calls": 500,
        "far_calls": 100,
        "concurrent_calls": 2000,
        # At 50 ms a call: about 5 s of calls at 1, 2.5 s at 8 and 50, 4 s or so at 200.
        "concurrency_calls": {1: 100, 8: 400, 50: 2000, 200: 4000},
        # A sequential call's CPU is mostly waking from 50 ms asleep, which the machine's noise
        # moves by a third from one process to the next: more runs than the other parts.
        "concurrency_reps": 5,
        "own_calls": 2000,
        "own_rounds": 9,
        "memory_ids": 100_000,
        "handshake_calls": 20,
        "decrypt_calls": 5000,
        "decrypt_batches": 5,
        "inbox_messages": 10_000,
        "inbox_limit": 1000,
        # Each drain without Redis takes 0.2 s or so, where the machine's noise shows: more runs.
        "inbox_reps": 7,
        "latency_rate": 100,
        "latency_seconds": 10,
        "latency_warmup": 50,
        "reps": 3,
        "latency": 0.05,
        "members": 100_000,
    },
    "tiny": {
        "overhead_calls": 20,
        "fanout_ids": 300,
        "customers_ids": 300,
        "storm_calls": 40,
        "wechatpy_calls": 10,
        "far_calls": 4,
        "concurrent_calls": 20,
        "concurrency_calls": {1: 4, 8: 16, 50: 50, 200: 200},
        "concurrency_reps": 1,
        "own_calls": 20,
        "own_rounds": 2,
        "memory_ids": 500,
        "handshake_calls": 2,
        "decrypt_calls": 5,
        "decrypt_batches": 2,
        "inbox_messages": 300,
        "inbox_limit": 100,
        "inbox_reps": 1,
        "latency_rate": 100,
        "latency_seconds": 0.2,
        "latency_warmup": 5,
        "reps": 1,
        "latency": 0.005,
        "members": 1000,
    },
}
PARTS = (
    "overhead",
    "fanout",
    "customers",
    "token_storm",
    "wechatpy",
    "concurrency",
    "own_work",
    "memory",
    "handshake",
    "callback_decrypt",
    "inbox",
    "inbox_latency",
)
#: The venvs each part's clients run in (only those of the selected parts are made).
ROLES_OF = {
    "overhead": ("plain",),
    "fanout": ("plain", "aiohttp"),
    "customers": ("plain", "aiohttp"),
    "token_storm": (),
    "wechatpy": ("plain", "aiohttp", "wechatpy"),
    "concurrency": ("plain", "trio", "aiohttp", "wechatpy"),
    "own_work": ("plain", "trio"),
    "memory": ("plain", "aiohttp"),
    "handshake": ("plain", "aiohttp"),
    "callback_decrypt": ("callbacks", "wechatpy"),
    "inbox": ("plain", "redis"),
    "inbox_latency": ("receiver",),
}


def run_all(size: str, envs_kind: str, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    s = SIZES[size]
    ca = trustme.CA()
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "size": size,
        "machine": machine(),
        "orchestrator": {"wechat-kf": importlib.metadata.version("wechat-kf")},
    }
    roles = tuple(role for role in ENVS if any(role in ROLES_OF[part] for part in parts))
    with (
        client_envs(envs_kind, roles) as envs,
        fake_server(
            s["members"],
            customers=s["customers_ids"] if "customers" in parts else 0,
            messages=s["inbox_messages"] if "inbox" in parts else 0,
        ) as plain,
        fake_server(s["members"], tls=ca) as tls,
    ):
        results["envs"] = {role: env["packages"] for role, env in envs.items()}
        if "overhead" in parts:
            results["overhead"] = bench_overhead(envs, plain, s["overhead_calls"], 50, s["reps"])
        if "fanout" in parts:
            results["fanout"] = bench_fanout(
                envs, plain, s["fanout_ids"], s["latency"], [None, 1, 4, 16], s["reps"]
            )
        if "customers" in parts:
            results["customers"] = bench_customers(
                envs, plain, s["customers_ids"], s["latency"], 8, s["reps"]
            )
        if "token_storm" in parts:
            results["token_storm"] = bench_token_storm(plain, s["storm_calls"], 4)
        if "wechatpy" in parts:
            results["wechatpy"] = []
            for server in (plain, tls):
                for latency, calls in ((0.0, s["wechatpy_calls"]), (s["latency"], s["far_calls"])):
                    results["wechatpy"].append(
                        bench_wechatpy(
                            envs, server, calls, s["concurrent_calls"], 50, s["reps"], latency
                        )
                    )
        if "concurrency" in parts:
            results["concurrency"] = [
                bench_concurrency(
                    envs,
                    server,
                    s["concurrency_calls"],
                    s["far_calls"],
                    s["concurrency_reps"],
                    s["latency"],
                )
                for server in (plain, tls)
            ]
        if "own_work" in parts:
            results["own_work"] = bench_own_work(envs, s["own_calls"], s["own_rounds"], s["reps"])
        if "memory" in parts:
            results["memory"] = bench_memory(envs, plain, s["memory_ids"])
        if "handshake" in parts:
            results["handshake"] = bench_handshake(
                envs, [plain, tls], s["latency"], s["handshake_calls"], s["reps"]
            )
        if "callback_decrypt" in parts:
            results["callback_decrypt"] = bench_callback_decrypt(
                envs, s["decrypt_calls"], s["decrypt_batches"], s["reps"]
            )
        if "inbox" in parts:
            results["inbox"] = bench_inbox(
                envs, plain, s["inbox_messages"], s["inbox_limit"], s["inbox_reps"]
            )
        if "inbox_latency" in parts:
            results["inbox_latency"] = bench_inbox_latency(
                envs, ca, s["latency_rate"], s["latency_seconds"], s["latency_warmup"]
            )
    return results


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"wechat_kf benchmarks, {results['date']}, {m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']}"
    ]
    if "overhead" in results:
        o = results["overhead"]
        med, c = o["medians"], o["concurrency"]
        lines.append(
            f"overhead  list_online, httpx exchange vs bare httpx (plain install): sequential CPU"
            f"/call {med['httpx@1']['cpu_us_per_call']:.0f} vs "
            f"{med['bare_httpx@1']['cpu_us_per_call']:.0f} us ({o['sequential_cpu_ratio']:.2f}x,"
            f" target <= 1.10); @{c}: wall ratio {o['concurrent_wall_ratio']:.3f} (target <="
            f" 1.10), CPU ratio {o['concurrent_cpu_ratio']:.2f}"
        )
    if "fanout" in results:
        f = results["fanout"]
        for row in f["rows"]:
            label = f"{row['concurrency']}{' (default)' if row['default'] else ''}"
            lines.append(
                f"fan-out   {row['exchange']}: {f['ids']} ids, {f['latency_s'] * 1000:.0f} ms "
                f"latency, concurrency {label}: {row['wall_s']:.3f} s vs floor "
                f"{row['floor_s']:.3f} s ({row['over_floor'] * 100:+.1f}%, target <= +25%)"
            )
    if "customers" in results:
        c = results["customers"]
        for row in c["rows"]:
            lines.append(
                f"customers {row['exchange']}: customers.get of {c['ids']} ids "
                f"({row['customers']} customers, {row['invalid']} invalid), "
                f"{c['latency_s'] * 1000:.0f} ms latency, max_concurrency {row['concurrency']}: "
                f"{row['wall_s']:.3f} s vs ideal {row['ideal_s']:.3f} s ({row['ratio']:.2f}x, "
                f"target <= 1.25x)"
            )
    if "token_storm" in results:
        t = results["token_storm"]
        redis = t["redis"]
        if not isinstance(redis, str):
            redis = (
                f"{redis['processes']} processes x {redis['calls_per_process']} with Redis: "
                f"{redis['fetches']} fetch(es)"
            )
        lines.append(
            f"tokens    {t['calls']} concurrent calls, cold cache: "
            f"{t['one_process_fetches']} fetch(es); {redis}"
        )
    for w in results.get("wechatpy", []):
        base = w["medians"]["wechatpy"]
        head = (
            f"wechatpy  {w['scheme']}, {w['latency_s'] * 1000:.0f} ms latency: wechatpy "
            f"{base['wall_us_per_call']:.0f} us/call, CPU {base['cpu_us_per_call']:.0f} us;"
        )
        parts = [
            f"{name} throughput {r['throughput_ratio']:.1f}x, CPU {r['cpu_ratio']:.2f}x"
            for name, r in w["ratios"].items()
        ]
        lines.append(head + " " + "; ".join(parts))
    for run in results.get("concurrency", []):
        base = run["wechatpy"]
        lines.append(
            f"at c     {run['scheme']}, {run['latency_s'] * 1000:.0f} ms latency: wechatpy "
            f"sequential {base['calls_per_s']:.1f} calls/s, CPU {base['cpu_us_per_call']:.0f} us"
            f"/call (= 1.0x); load {run['load_average_1min']['before']:.1f} -> "
            f"{run['load_average_1min']['after']:.1f}"
        )
        for row in run["rows"]:
            lines.append(
                f"          {row['exchange']} on {row['loop']} at {row['concurrency']}: "
                f"{row['calls_per_s']:.0f} calls/s ({row['throughput_ratio']:.1f}x), CPU "
                f"{row['cpu_us_per_call']:.0f} us/call ({row['cpu_ratio']:.2f}x)"
            )
        growth = ", ".join(f"{k} {v:.2f}x" for k, v in next(
            v for k, v in run.items() if k.startswith("cpu_at_")).items())  # fmt: skip
        lines.append(f"          CPU per call at the highest concurrency vs at 8: {growth}")
    if "own_work" in results:
        o = results["own_work"]
        for loop, row in o["rows"].items():
            lines.append(
                f"own work  {loop}: the SDK adds {row['own_us_per_call']:.1f} us per call to "
                f"bare httpx ({row['bare_httpx_cpu_us_per_call']:.0f} us) over MockTransport, "
                f"{row['own_no_hooks_us_per_call']:.1f} us with hooks=[] (target <= 20)"
            )
    for row in results.get("memory", []):
        lines.append(
            f"memory    {row['exchange']}: servicers.add of {row['ids']} ids: peak RSS "
            f"+{row['rss_growth_bytes'] / 1e6:.1f} MB, {row['bytes_per_id']:.0f} bytes/id"
        )
    for row in results.get("handshake", []):
        lines.append(
            f"handshake {row['library']} over {row['scheme']}, {row['rtt_s'] * 1000:.0f} ms RTT: "
            f"a new connection per call costs +{row['extra_wall_us_per_call'] / 1000:.0f} ms "
            f"wall and +{row['extra_cpu_us_per_call']:.0f} us CPU per call"
        )
    if "callback_decrypt" in results:
        d = results["callback_decrypt"]
        ours, theirs = d["medians"]["wechat_kf"], d["medians"]["wechatpy"]
        lines.append(
            f"decrypt   {d['push']} ({d['push_body_bytes']} bytes): CallbackCrypto.decrypt "
            f"{ours['us_per_call']:.1f} us/call vs wechatpy decrypt_message + xmltodict.parse "
            f"{theirs['us_per_call']:.1f} us ({d['ratio']:.2f}x; CPU {d['cpu_ratio']:.2f}x)"
        )
    if "inbox" in results:
        i = results["inbox"]
        m = i["medians"]
        rates = ", ".join(f"{v} {row['messages_per_s']:,.0f}/s" for v, row in m.items())
        line = (
            f"inbox     drain of {i['messages']} messages, pages of {i['limit']}, handler doing "
            f"nothing: {rates}; memory/bare {i['memory_vs_bare']:.2f} (target >= 0.7)"
        )
        redis = i["redis"]
        if isinstance(redis, str):
            line += f"; redis {redis}"
        else:
            line += (
                f", redis/memory {i['redis_vs_memory']:.2f} (target >= 0.5); Redis round trips "
                f"{redis['round_trips_per_page']:.1f}/page, "
                f"{redis['round_trips_per_message']:.3f}/message, and "
                f"{redis.get('early_marks_per_page', 0):.0f} marks sent early a page"
            )
        lines.append(line)
    if "inbox_latency" in results:
        lat = results["inbox_latency"]
        h, p = lat["handler_latency"], lat["push_arrival_latency"] or {}
        lines.append(
            f"latency   customer message -> handler at {lat['rate_per_s']:g}/s "
            f"({lat['count']} messages, {lat['callbacks_per_s'] or 0:.0f} callbacks/s received): "
            f"p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms, max {h['max_ms']:.1f} ms; "
            f"push arrival p50 {p.get('p50_ms', 0):.1f} ms, p99 {p.get('p99_ms', 0):.1f} ms; "
            f"{lat['pulls']} pulls"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--envs",
        choices=["isolated", "current"],
        default="isolated",
        help="isolated (default): each client in a fresh venv holding only what users install; "
        "current: every client in this interpreter (a smoke test: its figures mean nothing)",
    )
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    results = run_all(args.size, args.envs, tuple(args.only))
    print(table(results))
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.output}")
