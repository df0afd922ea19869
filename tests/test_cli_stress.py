"""The command under stress: --json keeps its one document on usage errors and on Ctrl-C at any
moment, a Ctrl-C after a batch finished does not turn it into an interrupted one, and the
failures of a very large batch are reported in a few lines."""

from __future__ import annotations

import json
import os
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
from wechat_kf import BatchResult, ServicerResult, WeComClient
from wechat_kf.cli import main
from wechat_kf.cli.reports import report_batch
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


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_ctrl_c_while_a_finished_batch_is_reported_keeps_its_outcome(
    tmp_path: Path, as_json: bool
) -> None:
    box = sandbox()
    # 1,000 members and 1,000 strangers: a report larger than a pipe holds, so the command is
    # still writing it, blocked on the pipe, when the SIGINT arrives.
    ids = [f"user{i:04d}" for i in range(1, 1001)] + [f"stranger{i:04d}" for i in range(1000)]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    args = ("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
            str(path), "--json" if as_json else "--show-all")  # fmt: skip
    with command(tmp_path, box, *args) as process:
        assert process.stdout is not None
        first = os.read(process.stdout.fileno(), 1)  # the report has begun
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=20)
    stdout = (first + rest).decode()
    assert process.returncode == 1, stderr  # the batch's own outcome: some ids were refused
    assert b"interrupted" not in stderr
    if as_json:
        data = one_document(stdout)
        assert "interrupted" not in data
        assert data["ok"] is False
        assert len(data["items"]) == 2000  # type: ignore[arg-type]
        assert data["unprocessed_userids"] == []
    else:
        assert "interrupted" not in stdout
        assert stdout.count("1000 ok, 1000 failed") == 1
        assert "stranger0999" in stdout


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


def large_batch() -> BatchResult:
    """150,000 ids: 1,000 added, the rest refused with three errcodes or not reported."""
    items = [ServicerResult(f"user{i:04d}", None, 0, "ok") for i in range(1, 1001)]
    refused = ServicerResult(None, None, 60111, "userid not found")
    items += [attrs.evolve(refused, userid=f"ghost{i:06d}") for i in range(148000)]
    items += [ServicerResult(f"left{i:04d}", None, 95013, "servicer limit") for i in range(900)]
    items += [ServicerResult(None, d, None, "not reported by the server") for d in range(100)]
    return BatchResult(items)


def test_the_failures_of_150000_ids_are_a_few_lines_grouped_by_errcode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = report_batch(large_batch(), None, [], as_json=False, show_all=False)
    assert code == 1
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 30
    assert "1000 ok, 149000 failed" in out
    for errcode, count in (("60111", "148000"), ("95013", "900"), ("-", "100")):
        assert any(errcode in line and count in line for line in out.splitlines()), out
    assert "ghost000000" in out  # the first ids of each errcode, to look into
    assert "department 0" in out
    assert "ghost100000" not in out
    assert "--json" in out  # and where the full list is


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
