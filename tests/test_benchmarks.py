"""The benchmark harness runs end to end at a tiny size, so it never rots; no timing is asserted
(and with every client in this interpreter, its figures mean nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.run import PARTS, main


def test_every_benchmark_runs_once_at_tiny_size_and_writes_its_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    main(["--size", "tiny", "--envs", "current", "--output", str(output)])
    results = json.loads(output.read_text())
    assert set(results) >= {*PARTS, "machine", "envs"}
    assert results["overhead"]["concurrent_wall_ratio"] > 0
    rows = results["fanout"]["rows"]
    assert [(row["exchange"], row["concurrency"]) for row in rows] == [
        (exchange, c) for exchange in ("httpx", "aiohttp") for c in (8, 1, 4, 16)
    ]
    assert results["token_storm"]["one_process_fetches"] == 1
    assert [row["exchange"] for row in results["memory"]] == ["httpx", "aiohttp"]
    assert all(row["ok"] for row in results["memory"])
    runs = results["wechatpy"]
    assert [(run["scheme"], run["latency_s"] > 0) for run in runs] == [
        ("http", False), ("http", True), ("https", False), ("https", True)
    ]  # fmt: skip
    variants = {"httpx@1", "httpx@50", "aiohttp@1", "aiohttp@50"}
    assert all(set(run["ratios"]) == variants for run in runs)
    assert {(row["library"], row["scheme"]) for row in results["handshake"]} == {
        (library, scheme) for library in ("httpx", "aiohttp") for scheme in ("http", "https")
    }
