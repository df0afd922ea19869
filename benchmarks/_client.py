"""One measurement in a fresh process, run by ``python benchmarks/_client.py JOB`` with the
interpreter of the venv being measured: it imports only the standard library and what that venv
holds (wechat_kf and its runtime dependencies, plus aiohttp where measured), never this checkout.
The job is a JSON object; the result is one JSON line on stdout."""

from __future__ import annotations

import contextlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

from wechat_kf import OfficialAccountClient, WeComClient


async def spread(concurrency: int, total: int, one: Callable[[], Awaitable[Any]]) -> None:
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


async def timed(calls: int, concurrency: int, one: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Wall and CPU time of this process for ``calls`` calls, after ``concurrency`` untimed ones
    (the token and one connection per worker: the steady state of a service)."""
    await spread(concurrency, concurrency, one)
    wall, cpu = time.perf_counter(), time.process_time()
    await spread(concurrency, calls, one)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per_call = {"wall_us_per_call": wall / calls * 1e6, "cpu_us_per_call": cpu / calls * 1e6}
    return {"wall_s": wall, **per_call}


async def calls(job: dict[str, Any]) -> dict[str, Any]:
    """``job["method"]`` ("list" or "list_online") called ``job["calls"]`` times at
    ``job["concurrency"]``, through the SDK on ``job["exchange"]`` ("httpx_client": over an
    httpx.AsyncClient of 100 connections given as ``http_client``) or through bare httpx."""
    n, concurrency = job["calls"], job["concurrency"]
    if job["exchange"] == "bare_httpx":
        path = {"list": "getkflist", "list_online": "getonlinekflist"}[job["method"]]
        url = f"{job['base_url']}/cgi-bin/customservice/{path}"
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:

            async def one() -> None:
                response = await http.get(url, params={"access_token": job["token"]})
                if response.json().get("errcode", 0) != 0:
                    raise RuntimeError(response.text)

            return await timed(n, concurrency, one)
    if job["exchange"] == "bare_aiohttp":
        return await bare_aiohttp(job)
    if job["exchange"] == "httpx_client":  # the SDK over one httpx client of the caller's
        limits = httpx.Limits(
            max_connections=100, max_keepalive_connections=100, keepalive_expiry=15
        )
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            return await sdk_calls(job, http_client=http)
    return await sdk_calls(job, exchange=job["exchange"])


async def bare_aiohttp(job: dict[str, Any]) -> dict[str, Any]:
    """The calls of :func:`calls` through a bare aiohttp session set up as the SDK's (100
    connections kept alive 15 s, no decompression): what aiohttp itself costs."""
    import aiohttp

    path = {"list": "getkflist", "list_online": "getonlinekflist"}[job["method"]]
    url = f"{job['base_url']}/cgi-bin/customservice/{path}"
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=0, keepalive_timeout=15)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def one() -> None:
            async with session.get(url, params={"access_token": job["token"]}) as response:
                if json.loads(await response.read()).get("errcode", 0) != 0:
                    raise RuntimeError(response.status)

        return {**await timed(job["calls"], job["concurrency"], one), "exchange": "aiohttp"}


async def sdk_calls(job: dict[str, Any], **options: Any) -> dict[str, Any]:
    async with OfficialAccountClient(
        job["appid"], job["secret"], base_url=job["base_url"], **options
    ) as client:
        method = getattr(client.kf_accounts, job["method"])
        timing = await timed(job["calls"], job["concurrency"], method)
        return {**timing, "exchange": client.exchange}


#: The answer the in-process transport gives to ``getonlinekflist``: what FakeWeChat answers
#: for the benchmark's five accounts, so the SDK structures as much as it does on the wire.
ONLINE = json.dumps(
    {
        "kf_online_list": [
            {
                "kf_account": f"kf{i}@gh_bench",
                "status": 1,
                "kf_id": str(1001 + i),
                "accepted_case": i,
            }
            for i in range(5)
        ]
    }
).encode()


def _online(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=ONLINE, headers={"Content-Type": "application/json"})


async def own_work(job: dict[str, Any]) -> dict[str, Any]:
    """The SDK's own work per call: ``list_online`` through a client over an ``http_client`` on
    ``httpx.MockTransport`` (no socket, no server) against the same GET through that bare
    ``http_client``, in ``job["rounds"]`` interleaved rounds of ``job["calls"]`` sequential
    calls each; the median over the rounds of the difference in CPU per call, for the default
    hooks and for ``hooks=[]``. The difference is what the SDK adds to httpx: building the
    request, the token, the deadline, the hooks, reading the body and structuring the answer."""
    from wechat_kf import StaticTokenProvider

    n = job["calls"]
    url = "https://api.weixin.qq.com/cgi-bin/customservice/getonlinekflist"
    samples: dict[str, list[float]] = {"bare_httpx": [], "sdk": [], "sdk_no_hooks": []}
    async with httpx.AsyncClient(transport=httpx.MockTransport(_online)) as http:

        async def bare() -> None:
            response = await http.get(url, params={"access_token": job["token"]})
            if response.json().get("errcode", 0) != 0:
                raise RuntimeError(response.text)

        provider = StaticTokenProvider(job["token"])
        async with (
            OfficialAccountClient(token_provider=provider, http_client=http) as sdk,
            OfficialAccountClient(token_provider=provider, http_client=http, hooks=[]) as quiet,
        ):
            variants = {
                "bare_httpx": bare,
                "sdk": sdk.kf_accounts.list_online,
                "sdk_no_hooks": quiet.kf_accounts.list_online,
            }
            for one in variants.values():  # imports, caches, the first allocations
                for _ in range(min(n, 200)):
                    await one()
            for _ in range(job["rounds"]):
                for name, one in variants.items():
                    cpu = time.process_time()
                    for _ in range(n):
                        await one()
                    samples[name].append((time.process_time() - cpu) / n * 1e6)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    # Each round's SDK figure less the bare figure of the same round: drift on the machine
    # (load, frequency, caches) hits both sides of a difference alike.
    own = [s - b for s, b in zip(samples["sdk"], samples["bare_httpx"], strict=True)]
    quiet = [s - b for s, b in zip(samples["sdk_no_hooks"], samples["bare_httpx"], strict=True)]
    return {
        "cpu_us_per_call": medians,
        "rounds_cpu_us_per_call": samples,
        "own_us_per_call": statistics.median(own),
        "own_no_hooks_us_per_call": statistics.median(quiet),
    }


async def fanout(job: dict[str, Any]) -> dict[str, Any]:
    """One ``servicers.add`` of ``job["ids"]`` ids; its wall time."""
    options = {} if job["concurrency"] is None else {"max_concurrency": job["concurrency"]}
    userids = [f"user{i:06d}" for i in range(job["ids"])]
    async with WeComClient(
        job["corpid"], job["secret"], base_url=job["base_url"], exchange=job["exchange"], **options
    ) as client:
        await client.servicers.list(job["open_kfid"])  # the token, outside the timing
        started = time.perf_counter()
        result = await client.servicers.add(job["open_kfid"], userids)
        wall = time.perf_counter() - started
        if not result.ok:
            raise RuntimeError("the fan-out benchmark expects every id to succeed")
        return {"wall_s": wall, "exchange": client.exchange, "concurrency": client.max_concurrency}


async def customers(job: dict[str, Any]) -> dict[str, Any]:
    """One ``customers.get`` of ``job["ids"]`` ids (``job["prefix"]`` and six digits, as the
    server seeded them) at ``max_concurrency=job["concurrency"]``; its wall time and what it
    read."""
    ids = [f"{job['prefix']}{i:06d}" for i in range(job["ids"])]
    async with WeComClient(
        job["corpid"], job["secret"], base_url=job["base_url"], exchange=job["exchange"],
        max_concurrency=job["concurrency"],
    ) as client:  # fmt: skip
        await client.customers.get(ids[:1])  # the token, outside the timing
        started = time.perf_counter()
        result = await client.customers.get(ids)
        wall = time.perf_counter() - started
        return {
            "wall_s": wall,
            "exchange": client.exchange,
            "concurrency": client.max_concurrency,
            "customers": len(result.customers),
            "invalid": len(result.invalid),
        }


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> int:
    """The resident set size now, after resetting the recorded peak to it where the system
    allows (Linux): a process inherits its parent's peak across fork and exec, so the peak alone
    says nothing about this process."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    now = _status_kib("VmRSS")
    return peak_rss_bytes() if now is None else now * 1024


def peak_rss_bytes() -> int:
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


async def memory(job: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS growth of one ``servicers.add`` of ``job["ids"]`` ids."""
    async with WeComClient(
        job["corpid"], job["secret"], base_url=job["base_url"], exchange=job["exchange"]
    ) as client:
        await client.servicers.add(job["open_kfid"], ["user000000"])  # imports, token, pool
        userids = [f"user{i:06d}" for i in range(job["ids"])]
        before = reset_peak_rss()
        result = await client.servicers.add(job["open_kfid"], userids)
        growth = peak_rss_bytes() - before
        return {
            "ids": job["ids"],
            "ok": result.ok,
            "exchange": client.exchange,
            "rss_growth_bytes": growth,
            "bytes_per_id": growth / job["ids"],
        }


async def handshake(job: dict[str, Any]) -> dict[str, Any]:
    """What a connection closed while idle costs: ``job["calls"]`` sequential calls through the
    bare library, on one kept-alive connection and on a new connection each."""
    url = f"{job['base_url']}/cgi-bin/customservice/getonlinekflist"
    params = {"access_token": job["token"]}
    rows = {}
    for reuse in (True, False):
        if job["library"] == "httpx":
            # keepalive_expiry=0: a connection is closed as soon as it is idle.
            limits = httpx.Limits(keepalive_expiry=None if reuse else 0)
            async with httpx.AsyncClient(limits=limits, timeout=10) as http:

                async def one() -> None:
                    (await http.get(url, params=params)).raise_for_status()

                rows["reused" if reuse else "new"] = await timed(job["calls"], 1, one)
        else:
            import aiohttp

            connector = aiohttp.TCPConnector(force_close=not reuse)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def one() -> None:
                    async with session.get(url, params=params) as response:
                        response.raise_for_status()
                        await response.read()

                rows["reused" if reuse else "new"] = await timed(job["calls"], 1, one)
    return rows


JOBS = {
    "calls": calls,
    "own_work": own_work,
    "fanout": fanout,
    "customers": customers,
    "memory": memory,
    "handshake": handshake,
}


def main() -> None:
    job = json.loads(sys.argv[1])
    backend = "trio" if job.get("backend") == "trio" else "asyncio"
    result = anyio.run(JOBS[job["job"]], job, backend=backend)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
