"""The benchmark harness runs end to end at a tiny size, so it never rots; no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.run import main


def test_every_benchmark_runs_once_at_tiny_size_and_writes_its_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    main(["--size", "tiny", "--output", str(output)])
    results = json.loads(output.read_text())
    assert set(results) >= {"overhead", "fanout", "token_storm", "wechatpy", "memory", "machine"}
    assert results["overhead"]["wall_ratio"] > 0
    assert [row["concurrency"] for row in results["fanout"]["rows"]] == [8, 1, 4, 16]
    assert results["token_storm"]["one_process_fetches"] == 1
    assert results["memory"]["ok"] is True
    assert all("skipped" not in run for run in results["wechatpy"])
