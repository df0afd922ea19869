"""The benchmark harness runs end to end at a tiny size, so it never rots; no timing is asserted
(and with every client in this interpreter, its figures mean nothing)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from benchmarks.run import (
    ENVS,
    PARTS,
    ROLES_OF,
    kf_msg_or_event,
    main,
    percentile,
    run_callback_job,
    same_push_read,
)

#: The exchanges and loops the SDK's own pools are measured on at every concurrency.
OWN_SETUPS = {("httpx", "asyncio"), ("httpx", "trio"), ("aiohttp", "asyncio")}


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
    assert set(results["callback_decrypt"]["medians"]) == {"wechat_kf", "wechatpy"}
    assert [run["scheme"] for run in results["concurrency"]] == ["http", "https"]
    for run in results["concurrency"]:
        measured = {(row["exchange"], row["loop"], row["concurrency"]) for row in run["rows"]}
        every = {1, 8, 50, 200}
        assert measured == {
            *((exchange, loop, c) for exchange, loop in OWN_SETUPS for c in every),
            *(("httpx_client", "asyncio", c) for c in (1, 8, 50)),
            *(("bare_aiohttp", "asyncio", c) for c in (1, 50)),
        }
        assert set(run["cpu_at_200_vs_8"]) == {f"{e}/{loop}" for e, loop in OWN_SETUPS}
        assert all(row["throughput_ratio"] > 0 < row["cpu_ratio"] for row in run["rows"])
    assert set(results["own_work"]["rows"]) == {"asyncio", "trio"}


def test_the_callback_decrypt_script_times_both_sides_on_one_push_in_this_interpreter() -> None:
    here = {"python": sys.executable}
    plaintext, expected = kf_msg_or_event()
    push = run_callback_job(here, job="seal", plaintext=plaintext)
    assert set(push) == {"body", "msg_signature", "timestamp", "nonce"}
    rows = [
        run_callback_job(here, job=side, push=push, calls=3, batches=2)
        for side in ("wechat_kf", "wechatpy")
    ]
    assert [row["side"] for row in rows] == ["wechat_kf", "wechatpy"]
    for row in rows:
        assert set(row) == {"side", "us_per_call", "cpu_us_per_call", "batch_us_per_call", "read"}
        assert row["us_per_call"] > 0
        assert len(row["batch_us_per_call"]) == 2
        assert row["read"] == expected
    same_push_read(expected, rows)


def test_the_callback_decrypt_benchmark_fails_loudly_unless_both_sides_read_the_same_token() -> (
    None
):
    _, expected = kf_msg_or_event()
    other = {**expected, "token": expected["token"][:-1] + "?"}
    rows = [{"side": "wechat_kf", "read": expected}, {"side": "wechatpy", "read": other}]
    with pytest.raises(RuntimeError, match=r"wechatpy did not read .*\['token'\]"):
        same_push_read(expected, rows)


def test_the_measured_decrypt_checks_the_timestamp() -> None:
    here = {"python": sys.executable}
    plaintext, _ = kf_msg_or_event()
    stale = str(int(time.time()) - 600)
    push = run_callback_job(here, job="seal", plaintext=plaintext, timestamp=stale)
    with pytest.raises(RuntimeError, match="more than 300 s from now"):
        run_callback_job(here, job="wechat_kf", push=push, calls=1, batches=1)


def test_only_the_callback_decrypt_part_runs_and_records_each_venv(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    main(
        [
            "--size",
            "tiny",
            "--envs",
            "current",
            "--only",
            "callback_decrypt",
            "--output",
            str(output),
        ]
    )
    results = json.loads(output.read_text())
    assert set(results) & set(PARTS) == {"callback_decrypt"}
    assert {"callbacks", "wechatpy"} <= set(results["envs"])
    decrypt = results["callback_decrypt"]
    assert set(decrypt["medians"]) == {"wechat_kf", "wechatpy"}
    assert set(decrypt["work"]) == {"wechat_kf", "wechatpy"}
    assert decrypt["same_token_read"] is True
    assert decrypt["ratio"] > 0


def test_only_the_customers_part_runs_both_exchanges_and_reads_every_id(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    main(["--size", "tiny", "--envs", "current", "--only", "customers", "--output", str(output)])
    results = json.loads(output.read_text())
    assert set(results) & set(PARTS) == {"customers"}
    customers = results["customers"]
    assert (customers["ids"], customers["requests"], customers["concurrency"]) == (300, 3, 8)
    assert customers["target"] == "ratio <= 1.25"
    rows = customers["rows"]
    assert [(row["exchange"], row["concurrency"]) for row in rows] == [
        ("httpx", 8),
        ("aiohttp", 8),
    ]
    for row in rows:
        assert (row["customers"], row["invalid"]) == (150, 150)
        assert row["ideal_s"] == customers["latency_s"]  # ceil(3 requests / 8) = 1 round
        assert len(row["walls_s"]) == customers["repetitions"]
        assert row["ratio"] == row["wall_s"] / row["ideal_s"] > 0


def test_every_part_names_the_venvs_its_clients_run_in() -> None:
    assert set(ROLES_OF) == set(PARTS)
    assert {role for roles in ROLES_OF.values() for role in roles} <= set(ENVS)
    assert ROLES_OF["inbox"] == ("plain", "redis")
    assert ROLES_OF["inbox_latency"] == ("receiver",)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def redis_row_missing() -> None:
    """The Redis row was skipped (no redis-server): a skip here, a failure where Redis is
    required (CI sets WECHAT_KF_REQUIRE_REDIS=1)."""
    assert shutil.which("redis-server") is None
    if os.environ.get("WECHAT_KF_REQUIRE_REDIS") == "1":
        pytest.fail("redis-server is required (WECHAT_KF_REQUIRE_REDIS=1), not installed")
    pytest.skip("redis-server is not installed: the inbox's Redis row was skipped")


def test_only_the_inbox_parts_run_drain_every_message_and_time_each_callback(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.json"
    main(["--size", "tiny", "--envs", "current", "--only", "inbox", "inbox_latency",
          "--output", str(output)])  # fmt: skip
    results = json.loads(output.read_text())
    assert set(results) & set(PARTS) == {"inbox", "inbox_latency"}
    assert set(results["envs"]) == {"plain", "redis", "receiver"}

    latency = results["inbox_latency"]
    assert (latency["rate_per_s"], latency["count"], latency["warmup_messages"]) == (100, 20, 5)
    handler = latency["handler_latency"]
    assert 0 < handler["p50_ms"] <= handler["p99_ms"] <= handler["max_ms"]
    assert 1 <= latency["pushes_received"] <= 20  # the pushes reached the route, decrypted
    assert latency["refused_pushes"] == 0
    assert latency["pulls"] >= 1
    assert set(latency["pull_outcomes"]) == {"ok"}
    assert latency["exchange"] == "aiohttp"
    assert set(latency["work"]) == {"fake", "receiver", "latency"}

    inbox = results["inbox"]
    assert (inbox["messages"], inbox["limit"]) == (300, 100)
    assert inbox["targets"] == {"memory_vs_bare": ">= 0.7", "redis_vs_memory": ">= 0.5"}
    medians = inbox["medians"]
    for variant in ("bare", "memory"):
        assert medians[variant]["env"] == "plain"
        assert medians[variant]["pages"] == 3
        assert medians[variant]["messages_per_s"] > 0
    ratio = medians["memory"]["messages_per_s"] / medians["bare"]["messages_per_s"]
    assert inbox["memory_vs_bare"] == pytest.approx(ratio)
    if isinstance(inbox["redis"], str):
        assert inbox["redis"].startswith("skipped")
        assert inbox["redis_vs_memory"] is None
        redis_row_missing()
    assert (medians["redis"]["env"], medians["redis"]["pages"]) == ("redis", 3)
    assert inbox["redis_vs_memory"] > 0
    redis = inbox["redis"]
    [drain] = redis["round_trips_per_drain"]
    commands = redis["commands_per_drain"]
    assert sum(commands.values()) == drain
    # At least the lease taken and let go, and one look-up of the done marks a page (a script
    # answering 0/1 per msgid, since the store stopped using MGET).
    assert commands["EVALSHA"] >= 2 + 3
    assert redis["round_trips_per_page"] == pytest.approx(drain / 3)
    assert redis["round_trips_per_message"] == pytest.approx(drain / 300)
    assert redis["cross_check_agrees"] is True
