"""The benchmarks: each comparison in one run against one server in another process, medians of
several repetitions, ratios rather than absolute times (the machines are noisy)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx

from benchmarks._server import APPID, CORPID, OA_SECRET, OPEN_KFID, WECOM_SECRET
from tests._redis import redis_process
from tests._servers import free_port, listening
from wechat_kf import OfficialAccountClient, WeComClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- plumbing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_server(members: int) -> Iterator[str]:
    """FakeWeChat under uvicorn in a separate process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks._server", "--port", str(port)]
    with listening([*command, "--members", str(members)], port, "the fake server", cwd=ROOT) as s:
        yield s.url


def admin(base_url: str, **config: Any) -> dict[str, Any]:
    response = httpx.post(f"{base_url}/_admin/config", json=config)
    return dict(response.json())


def oa_token(base_url: str) -> str:
    body = {"grant_type": "client_credential", "appid": APPID, "secret": OA_SECRET}
    return str(httpx.post(f"{base_url}/cgi-bin/stable_token", json=body).json()["access_token"])


def limits() -> httpx.Limits:
    # The limits the SDK gives its own client: as many idle connections as it may open.
    return httpx.Limits(max_connections=100, max_keepalive_connections=100)


@contextlib.contextmanager
def stopwatch(calls: int, into: list[dict[str, float]]) -> Iterator[None]:
    """Wall and CPU time of this process for the block, per call, appended to ``into``."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    into.append(
        {
            "wall_s": wall,
            "wall_us_per_call": wall / calls * 1e6,
            "cpu_us_per_call": cpu / calls * 1e6,
        }
    )


def median_of(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


async def gather(concurrency: int, total: int, one: Callable[[], Awaitable[Any]]) -> None:
    """Run ``one`` ``total`` times with ``concurrency`` workers."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    async with anyio.create_task_group() as group:
        for _ in range(min(concurrency, total)):
            group.start_soon(worker)


# -- 1. overhead against bare httpx ---------------------------------------------------------------


def bench_overhead(base_url: str, calls: int, concurrency: int, reps: int) -> dict[str, Any]:
    token = oa_token(base_url)
    url = f"{base_url}/cgi-bin/customservice/getonlinekflist"

    bare_samples: list[dict[str, float]] = []
    sdk_samples: list[dict[str, float]] = []

    async def bare() -> None:
        async with httpx.AsyncClient(limits=limits(), timeout=10) as http:

            async def one() -> None:
                response = await http.get(url, params={"access_token": token})
                body = response.json()
                if body.get("errcode", 0) != 0:
                    raise RuntimeError(body)

            await one()  # a connection, outside the timing
            with stopwatch(calls, bare_samples):
                await gather(concurrency, calls, one)

    async def sdk() -> None:
        async with OfficialAccountClient(APPID, OA_SECRET, base_url=base_url) as client:
            await client.kf_accounts.list_online()  # the token and a connection, untimed
            with stopwatch(calls, sdk_samples):
                await gather(concurrency, calls, client.kf_accounts.list_online)

    for _ in range(reps):  # interleaved, so drift on the machine hits both alike
        anyio.run(bare)
        anyio.run(sdk)
    bare_m, sdk_m = median_of(bare_samples), median_of(sdk_samples)
    return {
        "calls": calls,
        "concurrency": concurrency,
        "repetitions": reps,
        "bare_httpx": bare_m,
        "wechat_kf": sdk_m,
        "wall_ratio": sdk_m["wall_s"] / bare_m["wall_s"],
        "cpu_ratio": sdk_m["cpu_us_per_call"] / bare_m["cpu_us_per_call"],
        "target": "wall_ratio <= 1.10",
    }


# -- 2. fan-out against the floor ----------------------------------------------------------------


def bench_fanout(
    base_url: str, ids: int, latency: float, concurrencies: list[int | None], reps: int
) -> dict[str, Any]:
    userids = [f"user{i:06d}" for i in range(ids)]
    batches = math.ceil(ids / 100)
    rows = []
    for concurrency in concurrencies:
        options = {} if concurrency is None else {"max_concurrency": concurrency}
        effective = 8 if concurrency is None else concurrency
        walls = []
        for _ in range(reps):
            admin(base_url, latency=0.0, clear_servicers=True)

            async def run(options: dict[str, int] = options) -> float:
                async with WeComClient(CORPID, WECOM_SECRET, base_url=base_url, **options) as wc:
                    await wc.servicers.list(OPEN_KFID)  # the token, outside the timing
                    admin(base_url, latency=latency)
                    started = time.perf_counter()
                    result = await wc.servicers.add(OPEN_KFID, userids)
                    elapsed = time.perf_counter() - started
                    assert result.ok, "the fan-out benchmark expects every id to succeed"
                    return elapsed

            walls.append(anyio.run(run))
        floor = math.ceil(batches / effective) * latency
        wall = statistics.median(walls)
        rows.append(
            {
                "concurrency": effective,
                "default": concurrency is None,
                "wall_s": wall,
                "floor_s": floor,
                "over_floor": wall / floor - 1,
            }
        )
    admin(base_url, latency=0.0)
    return {
        "ids": ids,
        "batches": batches,
        "latency_s": latency,
        "repetitions": reps,
        "rows": rows,
        "target": "over_floor <= 0.25",
    }


# -- 3. token storm ------------------------------------------------------------------------------


def bench_token_storm(base_url: str, calls: int, processes: int) -> dict[str, Any]:
    admin(base_url, revoke=True)
    before = admin(base_url)["token_fetches"]

    async def storm() -> None:
        async with OfficialAccountClient(APPID, OA_SECRET, base_url=base_url) as client:
            await gather(calls, calls, client.kf_accounts.list_online)

    anyio.run(storm)
    single = admin(base_url)["token_fetches"] - before
    result: dict[str, Any] = {"calls": calls, "one_process_fetches": single}
    with redis_process() as redis_url:
        if redis_url is None:
            result["redis"] = "skipped: redis-server not installed"
            return result
        admin(base_url, revoke=True)
        before = admin(base_url)["token_fetches"]
        command = [
            sys.executable,
            "-m",
            "benchmarks._storm_worker",
            "--base-url",
            base_url,
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
            "fetches": admin(base_url)["token_fetches"] - before,
        }
    return result


# -- 4. against wechatpy -------------------------------------------------------------------------


def bench_wechatpy(
    base_url: str, calls: int, concurrency: int, reps: int, latency: float = 0.0
) -> dict[str, Any]:
    try:
        from wechatpy import WeChatClient
    except ImportError:
        return {"skipped": "wechatpy is not installed (pip install -e '.[bench]')"}
    admin(base_url, latency=0.0)
    token = oa_token(base_url)
    admin(base_url, latency=latency)
    legacy = WeChatClient(APPID, OA_SECRET, access_token=token)
    legacy.API_BASE_URL = f"{base_url}/cgi-bin/"
    legacy.customservice.get_accounts()  # connection warm-up

    rows: dict[str, list[dict[str, float]]] = {"wechatpy": [], "sequential": [], "concurrent": []}

    async def ours(concurrency: int, into: list[dict[str, float]]) -> None:
        async with OfficialAccountClient(APPID, OA_SECRET, base_url=base_url) as client:
            await client.kf_accounts.list()  # the token and a connection, untimed
            with stopwatch(calls, into):
                await gather(concurrency, calls, client.kf_accounts.list)

    for _ in range(reps):
        with stopwatch(calls, rows["wechatpy"]):
            for _ in range(calls):
                legacy.customservice.get_accounts()
        anyio.run(ours, 1, rows["sequential"])
        anyio.run(ours, concurrency, rows["concurrent"])
    admin(base_url, latency=0.0)
    medians = {name: median_of(samples) for name, samples in rows.items()}
    base = medians["wechatpy"]
    return {
        "latency_s": latency,
        "calls": calls,
        "concurrency": concurrency,
        "repetitions": reps,
        "wechatpy_sequential": base,
        "wechat_kf_sequential": medians["sequential"],
        "wechat_kf_concurrent": medians["concurrent"],
        "sequential_wall_ratio": medians["sequential"]["wall_s"] / base["wall_s"],
        "sequential_cpu_ratio": medians["sequential"]["cpu_us_per_call"] / base["cpu_us_per_call"],
        "concurrent_speedup": base["wall_s"] / medians["concurrent"]["wall_s"],
    }


# -- 5. memory -----------------------------------------------------------------------------------


def bench_memory(base_url: str, ids: int) -> dict[str, Any]:
    admin(base_url, clear_servicers=True)
    command = [
        sys.executable,
        "-m",
        "benchmarks._memory_worker",
        "--base-url",
        base_url,
        "--ids",
        str(ids),
    ]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


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
        "storm_calls": 1000,
        "wechatpy_calls": 500,
        "memory_ids": 100_000,
        "reps": 5,
        "fanout_reps": 3,
        "latency": 0.05,
        "members": 100_000,
        "rtt": 0.02,
    },
    "tiny": {
        "overhead_calls": 20,
        "fanout_ids": 300,
        "storm_calls": 40,
        "wechatpy_calls": 10,
        "memory_ids": 500,
        "reps": 1,
        "fanout_reps": 1,
        "latency": 0.005,
        "members": 1000,
        "rtt": 0.002,
    },
}


def run_all(size: str) -> dict[str, Any]:
    s = SIZES[size]
    with fake_server(s["members"]) as base_url:
        results = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "size": size,
            "machine": machine(),
            "overhead": bench_overhead(base_url, s["overhead_calls"], 50, s["reps"]),
            "fanout": bench_fanout(
                base_url, s["fanout_ids"], s["latency"], [None, 1, 4, 16], s["fanout_reps"]
            ),
            "token_storm": bench_token_storm(base_url, s["storm_calls"], 4),
            "wechatpy": [
                bench_wechatpy(base_url, s["wechatpy_calls"], 50, s["reps"]),
                bench_wechatpy(
                    base_url, s["wechatpy_calls"], 50, s["fanout_reps"], latency=s["rtt"]
                ),
            ],
            "memory": bench_memory(base_url, s["memory_ids"]),
        }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"wechat_kf benchmarks, {results['date']}, {results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores, Python {results['machine']['python']}"
    ]
    o = results["overhead"]
    lines.append(
        f"overhead  {o['calls']} list_online @ {o['concurrency']}: wall ratio "
        f"{o['wall_ratio']:.3f} (target <= 1.10); CPU/call {o['wechat_kf']['cpu_us_per_call']:.0f}"
        f" us vs bare httpx {o['bare_httpx']['cpu_us_per_call']:.0f} us ({o['cpu_ratio']:.2f}x)"
    )
    f = results["fanout"]
    for row in f["rows"]:
        label = f"{row['concurrency']}{' (default)' if row['default'] else ''}"
        lines.append(
            f"fan-out   {f['ids']} ids, {f['latency_s'] * 1000:.0f} ms latency, concurrency "
            f"{label}: {row['wall_s']:.3f} s vs floor {row['floor_s']:.3f} s "
            f"({row['over_floor'] * 100:+.1f}%, target <= +25%)"
        )
    t = results["token_storm"]
    redis = (
        t["redis"]
        if isinstance(t["redis"], str)
        else (
            f"{t['redis']['processes']} processes x {t['redis']['calls_per_process']} with Redis: "
            f"{t['redis']['fetches']} fetch(es)"
        )
    )
    lines.append(
        f"tokens    {t['calls']} concurrent calls, cold cache: "
        f"{t['one_process_fetches']} fetch(es); {redis}"
    )
    for w in results["wechatpy"]:
        if "skipped" in w:
            lines.append(f"wechatpy  {w['skipped']}")
            continue
        lines.append(
            f"wechatpy  getkflist x{w['calls']}, {w['latency_s'] * 1000:.0f} ms latency: "
            f"wechatpy sequential {w['wechatpy_sequential']['wall_us_per_call']:.0f} us/call "
            f"(CPU {w['wechatpy_sequential']['cpu_us_per_call']:.0f}); wechat_kf sequential "
            f"{w['wechat_kf_sequential']['wall_us_per_call']:.0f} us/call "
            f"(CPU {w['wechat_kf_sequential']['cpu_us_per_call']:.0f}), wall ratio "
            f"{w['sequential_wall_ratio']:.2f}, CPU ratio {w['sequential_cpu_ratio']:.2f}; "
            f"wechat_kf @ {w['concurrency']}: {w['concurrent_speedup']:.1f}x wechatpy's speed"
        )
    m = results["memory"]
    lines.append(
        f"memory    servicers.add of {m['ids']} ids: peak RSS +{m['rss_growth_bytes'] / 1e6:.1f}"
        f" MB, {m['bytes_per_id']:.0f} bytes/id"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    results = run_all(args.size)
    print(table(results))
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.output}")
