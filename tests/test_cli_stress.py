"""The command under stress: --json keeps its one document on usage errors and on Ctrl-C at any
moment, a Ctrl-C after a batch finished does not turn it into an interrupted one, and the
failures of a very large batch are reported in a few lines."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner, Result

from tests._servers import serve
from wechat_kf import (
    BatchResult,
    RateLimitError,
    RequestOutcome,
    ServicerResult,
    TransportError,
    WeComClient,
)
from wechat_kf.cli import main
from wechat_kf.cli.batch_reports import BatchRun, report_batch
from wechat_kf.cli.ids import Skipped, Target
from wechat_kf.cli.progress import Journal
from wechat_kf.testing import Sandbox, sandbox

CLEAN = {"WECHAT_APPID": "", "WECHAT_SECRET": "", "WECOM_CORPID": "", "WECOM_SECRET": ""}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=CLEAN)


def one_document(stdout: str) -> dict[str, object]:
    """The one JSON document ``stdout`` holds (json.loads refuses a second one after it)."""
    data = json.loads(stdout)
    assert isinstance(data, dict)
    return data


@contextmanager
def command(
    tmp_path: Path, box: Sandbox, *args: str, **popen: object
) -> Iterator[subprocess.Popen[bytes]]:
    """The command as a real process against ``box`` served over loopback, WeCom credentials
    in its environment."""
    env = {**os.environ, **CLEAN, "WECOM_CORPID": box.corpid, "WECOM_SECRET": box.wecom_secret}
    with serve(box.fake.app) as base_url:
        process = subprocess.Popen(
            [sys.executable, "-m", "wechat_kf", *args, "--base-url", base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
            **popen,  # type: ignore[call-overload]
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


def interrupt_once_the_token_is_in(box: Sandbox, process: subprocess.Popen[bytes]) -> None:
    """SIGINT once the command holds its token and its first business call is on the wire (the
    fake answers after ``box``'s latency)."""
    deadline = time.monotonic() + 20
    while not [c for c in box.fake.calls_to("/cgi-bin/gettoken") if c.status == 200]:
        assert time.monotonic() < deadline, "the command never fetched its token"
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)


# -- --json: one document on every exit ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("wecom", "servicers", "list", "--sandbox"), "--open-kfid"),
        (("wecom", "servicers", "add", "--open-kfid", "wk1", "--department-id", "two"), "two"),
        (("oa", "accounts", "add", "--nickname", "x", "--sandbox"), "KF_ACCOUNT"),
        (("oa", "accounts", "list", "--no-such-option"), "--no-such-option"),
        (("wecom", "servicer", "list"), "servicer"),
        (("wecom", "servicers", "add", "--userids-file", "/no/such/file"), "/no/such/file"),
    ],
    ids=[
        "missing-option",
        "bad-value",
        "missing-argument",
        "unknown-option",
        "unknown-command",
        "missing-file",
    ],
)
def test_a_usage_error_with_json_prints_one_document_and_exits_2(
    args: tuple[str, ...], named: str
) -> None:
    result = run(*args, "--json")
    assert result.exit_code == 2, result.output
    data = one_document(result.stdout)
    assert data["ok"] is False
    error = data["error"]
    assert isinstance(error, dict)
    assert error["type"] == "UsageError"
    assert named in error["message"]
    assert named in result.stderr  # the usage text still tells a person what went wrong


def test_a_usage_error_without_json_prints_no_document() -> None:
    result = run("wecom", "servicers", "list", "--sandbox")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--open-kfid" in result.stderr


def test_a_usage_error_with_json_in_a_real_process_prints_one_document() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wechat_kf", "wecom", "servicers", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **CLEAN},
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert one_document(done.stdout)["ok"] is False
    assert "Traceback" not in done.stderr


def test_ctrl_c_during_a_listing_with_json_prints_one_document_and_exits_130(
    tmp_path: Path,
) -> None:
    box = sandbox()
    box.fake.faults.latency = 1.0
    args = ("wecom", "servicers", "list", "--open-kfid", box.open_kfid, "--json")
    with command(tmp_path, box, *args) as process:
        interrupt_once_the_token_is_in(box, process)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    data = one_document(stdout.decode())
    assert data["ok"] is False
    assert data["interrupted"] is True
    assert b"interrupted" in stderr


def test_ctrl_c_before_a_sync_has_its_plan_prints_one_document_and_exits_130(
    tmp_path: Path,
) -> None:
    box = sandbox()
    box.fake.faults.latency = 1.0
    args = ("wecom", "servicers", "sync", "--open-kfid", box.open_kfid, "--userid", "user0001",
            "--json")  # fmt: skip
    with command(tmp_path, box, *args) as process:
        interrupt_once_the_token_is_in(box, process)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    data = one_document(stdout.decode())
    assert data["ok"] is False
    assert data["interrupted"] is True
    assert not box.fake.calls_to("/cgi-bin/kf/servicer/add")
    assert box.fake.servicers(box.open_kfid) == {}


# -- a Ctrl-C after the batch finished -------------------------------------------------------


def test_ctrl_c_while_a_finished_batch_is_reported_keeps_its_outcome(tmp_path: Path) -> None:
    box = sandbox()
    # 1,000 members and 1,000 strangers: a --json report larger than a pipe holds, so the
    # command is still writing it, blocked on the pipe, when the SIGINT arrives. (The text
    # report is a few lines, written before any Ctrl-C could come.)
    ids = [f"user{i:04d}" for i in range(1, 1001)] + [f"stranger{i:04d}" for i in range(1000)]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    args = ("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
            str(path), "--json")  # fmt: skip
    with command(tmp_path, box, *args) as process:
        assert process.stdout is not None
        first = os.read(process.stdout.fileno(), 1)  # the report has begun
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=20)
    stdout = (first + rest).decode()
    assert process.returncode == 1, stderr  # the batch's own outcome: some ids were refused
    assert b"interrupted" not in stderr
    data = one_document(stdout)
    assert "interrupted" not in data
    assert data["ok"] is False
    assert len(data["items"]) == 2000  # type: ignore[arg-type]
    assert data["unprocessed_userids"] == []


@pytest.mark.parametrize("action", ["add", "sync"])
def test_a_ctrl_c_while_the_client_closes_after_the_work_reports_it_finished(
    monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    closing = WeComClient.__aexit__

    async def interrupted_while_closing(self: WeComClient, *exc_info: Any) -> None:
        await closing(self, *exc_info)
        raise KeyboardInterrupt  # as anyio.run raises it for a SIGINT there

    monkeypatch.setattr(WeComClient, "__aexit__", interrupted_while_closing)
    result = run("wecom", "servicers", action, "--open-kfid", sandbox().open_kfid,
                 "--userid", "user0001", "--sandbox", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = one_document(result.stdout)
    assert data["ok"] is True
    assert "interrupted" not in data
    assert "interrupted" not in result.stderr


# -- the failures of a very large batch ------------------------------------------------------

TOKEN = "/cgi-bin/gettoken"
ADD = "/cgi-bin/kf/servicer/add"


def large_run(*, interrupted: bool = False) -> BatchRun:
    """150,000 ids: 1,000 added; 144,900 refused with two errcodes, 100 departments not
    reported; 30 requests failed as a whole (20 by one failed token fetch, 10 by 45033) leaving
    3,000 ids unprocessed, then 1,000 never sent; and a file with 2,000 lines skipped."""
    items = [ServicerResult(f"user{i:04d}", None, 0, "ok") for i in range(1, 1001)]
    refused = ServicerResult(None, None, 60111, "userid not found")
    items += [attrs.evolve(refused, userid=f"ghost{i:06d}") for i in range(144000)]
    items += [ServicerResult(f"left{i:04d}", None, 95013, "servicer limit") for i in range(900)]
    items += [ServicerResult(None, d, None, "not reported by the server") for d in range(100)]
    journal = Journal()
    token = TransportError(f"HTTP 500 on GET {TOKEN}", path=TOKEN, maybe_applied=False)
    busy = RateLimitError(45033, "api concurrent out of limit, hint: [r1]", path=ADD)
    failed = [f"late{i:05d}" for i in range(3000)]
    for n in range(30):
        error = token if n < 20 else busy
        ids = failed[n * 100 : (n + 1) * 100]
        journal(RequestOutcome("add", "wk", ids, [], [], error))
    unsent = [f"unsent{i:04d}" for i in range(1000)]
    skipped = [Skipped(i + 2, f"bad id {i}", f"not a userid: 'bad id {i}' holds ' '")
               for i in range(2000)]  # fmt: skip
    target = Target([], [], skipped, "hr.csv")
    errors = [token] * 20 + [busy] * 10
    return BatchRun("add", target, journal, BatchResult(items), ([*failed, *unsent], []), errors,
                    interrupted=interrupted)  # fmt: skip


NAMED = re.compile(r"\b(?:user|ghost|left|late|unsent)\d+|department \d+|bad id \d+")


def test_the_report_of_150000_ids_is_a_few_lines_naming_a_few_ids_of_each_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = report_batch(large_run(), as_json=False, failures_file=None)
    assert code == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 40, out
    named = NAMED.findall(out)
    assert len(named) <= 5 * 6 + 10, named  # the first 5 of each group, 10 skipped lines
    assert "1000 ok, 145000 failed, 4000 unprocessed, 2000 lines with no usable id" in out
    for errcode, count in (("60111", "144000"), ("95013", "900"), ("-", "100")):
        assert any(errcode in line and count in line for line in lines), out
    assert "ghost000000" in out  # the first ids of each errcode, to look into
    assert "ghost000005" not in out
    # One failed token fetch is one line: how many requests it failed, which ids it left.
    fetch = [line for line in lines if "HTTP 500 on GET /cgi-bin/gettoken" in line]
    assert len(fetch) == 1
    assert "(20 requests); 2000 ids left unprocessed: late00000, late00001" in fetch[0]
    busy = [line for line in lines if "errcode=45033" in line]
    assert len(busy) == 1
    assert "(10 requests); 1000 ids left unprocessed: late02000" in busy[0]
    assert "1000 ids never sent: the batch stopped: unsent0000" in out
    assert "2000 lines of hr.csv skipped:" in out
    assert "line 2: not a userid: 'bad id 0' holds ' '" in out
    assert "--json" in out  # where the full lists are
    assert "--failures-file" in out


def test_the_json_of_150000_ids_names_every_id_and_the_ids_each_error_left(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report_batch(large_run(), as_json=True, failures_file=None)
    data = one_document(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["summary"] == {"ok": 1000, "failed": 145000, "unprocessed": 4000, "skipped": 2000}
    assert len(data["items"]) == 146000  # type: ignore[arg-type]
    errors = data["errors"]
    assert isinstance(errors, list)
    assert [(e["type"], e["requests"], len(e["unprocessed_userids"])) for e in errors] == [
        ("TransportError", 20, 2000),
        ("RateLimitError", 10, 1000),
    ]
    assert errors[0]["unprocessed_userids"][:2] == ["late00000", "late00001"]
    assert data["unsent_userids"] == [f"unsent{i:04d}" for i in range(1000)]
    assert len(data["unprocessed_userids"]) == 4000  # type: ignore[arg-type]
    assert len(data["skipped"]) == 2000  # type: ignore[arg-type]


def test_the_failures_file_of_150000_ids_has_a_row_per_id_that_did_not_go_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "failures.csv"
    report_batch(large_run(), as_json=False, failures_file=path)
    with path.open(encoding="utf-8", newline="") as stream:
        rows = [tuple(row) for row in csv.reader(stream)]
    assert rows[0] == ("action", "userid", "department_id", "outcome", "errcode", "reason")
    assert len(rows) == 1 + 145000 + 4000 + 2000
    assert ("add", "ghost000000", "", "failed", "60111", "userid not found") in rows
    assert ("add", "", "0", "failed", "", "not reported by the server") in rows
    by_id = {row[1]: row for row in rows}
    assert by_id["late00000"][3:5] == ("unprocessed", "")
    assert by_id["late00000"][5].startswith("HTTP 500 on GET /cgi-bin/gettoken")
    assert by_id["late02000"][3:5] == ("unprocessed", "45033")
    assert by_id["late02000"][5].startswith("errcode=45033")
    assert by_id["unsent0999"][3:] == (
        "unprocessed", "", "not sent: the batch stopped (or was interrupted) first"
    )  # fmt: skip
    assert by_id["bad id 0"][3:] == ("skipped", "", "line 2: not a userid: 'bad id 0' holds ' '")
    assert len(capsys.readouterr().out.splitlines()) <= 40


def test_a_batch_of_3000_failures_prints_a_bounded_report(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(f"ghost{i:04d}" for i in range(3000)) + "\n")
    result = run("wecom", "servicers", "add", "--open-kfid", sandbox().open_kfid,
                 "--userids-file", str(path), "--sandbox")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert len(result.stdout.splitlines()) < 20
    assert "0 ok, 3000 failed" in result.stdout
    assert "60111" in result.stdout
    assert "ghost0000" in result.stdout
