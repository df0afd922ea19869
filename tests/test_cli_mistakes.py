"""The command as a new user meets it: real files with byte-order marks and other encodings, Ctrl-C
in the middle of a batch, large batches, --json on failures, options in any place, demo and
fake-server mistakes, a fake server in another container."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from tests._servers import serve
from wechat_kf import WeComClient
from wechat_kf.cli import main
from wechat_kf.cli.fake_server import reachable_url as _reachable_url
from wechat_kf.testing import Sandbox, sandbox

ROOT = Path(__file__).resolve().parent.parent
CLEAN = {"WECHAT_APPID": "", "WECHAT_SECRET": "", "WECOM_CORPID": "", "WECOM_SECRET": ""}


def run(*args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env={**CLEAN, **(env or {})})


@pytest.fixture
def box_kfid() -> list[str]:
    return ["--open-kfid", sandbox().open_kfid]


# -- 1, 2: files -----------------------------------------------------------------------------


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_id(
    tmp_path: Path, box_kfid: list[str]
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfuser0101\r\nuser0102\r\n")
    result = run("wecom", "servicers", "add", *box_kfid, "--userids-file", str(path),
                 "--sandbox", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [item["userid"] for item in json.loads(result.stdout)["items"]] == [
        "user0101",
        "user0102",
    ]


def test_a_gbk_file_is_one_line_and_exit_2_until_its_encoding_is_given(
    tmp_path: Path, box_kfid: list[str]
) -> None:
    path = tmp_path / "gbk.txt"
    path.write_bytes("# 客服名单\nuser0001\nuser0002\n".encode("gbk"))
    refused = run("wecom", "servicers", "add", *box_kfid, "--userids-file", str(path), "--sandbox")
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0]
    assert "utf-8" in lines[0]
    assert "--encoding" in lines[0]
    assert "Traceback" not in refused.output
    accepted = run("wecom", "servicers", "add", *box_kfid, "--userids-file", str(path),
                   "--encoding", "gbk", "--sandbox")  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    assert "2 ok, 0 failed" in accepted.stdout


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", b"user0001\nuser\x000002\n"],
    ids=["binary", "nul"],
)
def test_a_binary_file_is_one_line_and_exit_2(
    tmp_path: Path, box_kfid: list[str], content: bytes
) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(content)
    result = run("wecom", "servicers", "add", *box_kfid, "--userids-file", str(path), "--sandbox")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(path) in result.stderr


def test_an_unknown_encoding_is_a_usage_error(tmp_path: Path, box_kfid: list[str]) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("user0001\n")
    result = run("wecom", "servicers", "add", *box_kfid, "--userids-file", str(path),
                 "--encoding", "klingon", "--sandbox")  # fmt: skip
    assert result.exit_code == 2
    assert "klingon" in result.stderr


# -- 3: Ctrl-C ---------------------------------------------------------------------------------


def interrupt_after_first_wave(
    tmp_path: Path, box: Sandbox, *args: str, wave: int = 8
) -> tuple[int, str, str]:
    """Run the command against ``box`` served with a 0.5 s latency, send SIGINT once the first
    ``wave`` add requests were answered and the rest are in flight; its code and output."""
    box.fake.faults.latency = 0.5
    env = {**os.environ, "WECOM_CORPID": box.corpid, "WECOM_SECRET": box.wecom_secret}
    add = "/cgi-bin/kf/servicer/add"
    with serve(box.fake.app) as base_url:
        command = [sys.executable, "-m", "wechat_kf", *args, "--base-url", base_url]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 20
        while len([c for c in box.fake.calls_to(add) if c.status == 200]) < wave:
            assert time.monotonic() < deadline, "the batch never started"
            time.sleep(0.01)
        time.sleep(0.2)  # the first wave's answers reach the command; the second is in flight
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    return process.returncode, stdout, stderr


def ids_file(tmp_path: Path, count: int) -> tuple[list[str], Path]:
    ids = [f"user{i:04d}" for i in range(1, count + 1)]
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return ids, path


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_ctrl_c_in_a_batch_exits_130_and_says_what_was_applied(
    tmp_path: Path, as_json: bool
) -> None:
    box = sandbox()
    ids, path = ids_file(tmp_path, 1000)
    code, stdout, stderr = interrupt_after_first_wave(
        tmp_path, box, "wecom", "servicers", "add", "--open-kfid", box.open_kfid,
        "--userids-file", str(path), *(["--json"] if as_json else []),
    )  # fmt: skip
    assert code == 130, stderr
    assert "interrupted" in stderr
    state = set(box.fake.servicers(box.open_kfid))
    if as_json:
        data = json.loads(stdout)
        assert data["interrupted"] is True
        assert data["ok"] is False
        reported = {item["userid"] for item in data["items"]}
        assert reported
        assert reported <= state  # every id reported processed was applied
        assert sorted(reported | set(data["unprocessed_userids"])) == sorted(ids)
        assert not reported & set(data["unprocessed_userids"])
    else:
        assert "unprocessed" in stdout
        assert "interrupted" in stdout


def test_ctrl_c_in_a_sync_exits_130_and_says_what_was_and_was_not_done(tmp_path: Path) -> None:
    box = sandbox()
    box.fake.add_servicers(box.open_kfid, ["user0999", "user1000"])
    ids, path = ids_file(tmp_path, 998)
    code, stdout, stderr = interrupt_after_first_wave(
        tmp_path, box, "wecom", "servicers", "sync", "--open-kfid", box.open_kfid,
        "--userids-file", str(path), "--json", wave=7,  # the removal takes the eighth place
    )  # fmt: skip
    assert code == 130, stderr
    data = json.loads(stdout)
    assert data["interrupted"] is True
    assert data["to_add"] == ids
    assert data["to_remove"] == ["user0999", "user1000"]
    added = {item["userid"] for item in data["added"]["items"]}
    assert added
    assert added <= set(box.fake.servicers(box.open_kfid))
    assert sorted(added | set(data["unprocessed"]["to_add"])) == sorted(ids)


# -- 4: large batches ------------------------------------------------------------------------


def test_a_batch_prints_the_failures_and_a_summary_and_every_failed_id_in_the_failures_file(
    tmp_path: Path, box_kfid: list[str]
) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join([f"user{i:04d}" for i in range(1, 301)] + ["ghost1", "ghost2"]))
    failures = tmp_path / "failures.csv"
    args = ["wecom", "servicers", "add", *box_kfid, "--userids-file", str(path), "--sandbox"]
    short = run(*args, "--failures-file", str(failures))
    assert "300 ok, 2 failed" in short.stdout
    assert "ghost1" in short.stdout
    assert "user0001" not in short.stdout
    assert len(short.stdout.splitlines()) < 20
    rows = failures.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "action,userid,department_id,outcome,errcode,reason"
    assert [row.split(" rid: ")[0] for row in rows[1:]] == [
        "add,ghost1,,failed,60111,userid not found",
        "add,ghost2,,failed,60111,userid not found",
    ]
    # 60111 comes with what to do about it.
    assert "60111: not a member of the corp, or outside the app's visible range" in short.stdout
    gone = run(*args, "--show-all")
    assert gone.exit_code == 2
    assert "--failures-file" in gone.stderr


# -- 5: --json on failures -------------------------------------------------------------------


def test_a_failed_listing_with_json_prints_one_document_with_errcode_and_rid() -> None:
    result = run("wecom", "servicers", "list", "--open-kfid", "wknope", "--sandbox", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["error"]["errcode"] == 95000
    assert data["error"]["rid"]
    assert data["error"]["type"] == "OpenKfidError"


def test_an_oa_refusal_with_json_prints_one_document() -> None:
    box = sandbox()
    result = run("oa", "accounts", "add", f"support@{box.wechat_id}", "--nickname", "n",
                 "--sandbox", "--json")  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["errcode"] == 65406


def test_missing_credentials_with_json_still_prints_one_document() -> None:
    result = run("wecom", "servicers", "list", "--open-kfid", "wk1", "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "--corpid" in data["error"]["message"]


def test_bad_input_with_json_prints_one_document(tmp_path: Path, box_kfid: list[str]) -> None:
    path = tmp_path / "ids.txt"
    path.write_bytes(b"\xff\xfe\xfa")
    result = run("wecom", "servicers", "add", *box_kfid, "--userids-file", str(path),
                 "--sandbox", "--json")  # fmt: skip
    assert result.exit_code == 2
    assert json.loads(result.stdout)["ok"] is False


# -- 6: options, help, secrets ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_or_after_the_subcommand(where: str, box_kfid: list[str]) -> None:
    command = ["wecom", "servicers", "list", *box_kfid, "--sandbox"]
    args = ["-v", *command] if where == "before" else [*command, "-v"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert logging.getLogger("wechat_kf").level == logging.DEBUG


def test_help_names_the_environment_variables_and_recommends_them() -> None:
    text = run("wecom", "servicers", "add", "--help").stdout
    assert "WECOM_CORPID" in text
    assert "WECOM_SECRET" in text
    assert "--secret-file" in text
    assert "ps" in text
    assert "WECHAT_SECRET" in run("oa", "accounts", "list", "--help").stdout


def test_a_secret_file_carries_the_secret(tmp_path: Path, box_kfid: list[str]) -> None:
    box = sandbox()
    secret_file = tmp_path / "secret"
    secret_file.write_text(box.wecom_secret + "\n")
    with serve(box.fake.app) as base_url:
        args = ["wecom", "servicers", "list", *box_kfid, "--corpid", box.corpid,
                "--secret-file", str(secret_file), "--base-url", base_url]  # fmt: skip
        ok = run(*args)
        both = run(*args, "--secret", "x")
    assert ok.exit_code == 0, ok.output
    assert both.exit_code == 2
    assert "not both" in both.stderr
    assert box.wecom_secret not in ok.output + both.output


# -- 7: demo and fake-server -----------------------------------------------------------------


@pytest.mark.parametrize("ids", ["5000", "-5", "0"])
def test_demo_refuses_counts_it_cannot_onboard(ids: str) -> None:
    result = run("demo", "--ids", ids)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_demo_onboards_the_number_it_announces() -> None:
    result = run("demo", "--ids", "1500")
    assert result.exit_code == 0, result.output
    assert "onboarding 1500 userids" in result.stdout
    assert "1495" in result.stdout  # servicers added: every member, the 5 ghosts refused


def test_nothing_to_do_is_said_before_any_progress_bar(box_kfid: list[str]) -> None:
    result = run("wecom", "servicers", "add", *box_kfid, "--sandbox")
    assert result.exit_code == 2
    assert "nothing to do" in result.stderr
    assert "adding servicers" not in result.output


def test_fake_server_on_a_busy_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("fake-server", "--port", str(port))
    assert result.exit_code == 2
    assert result.stdout == ""  # no banner for a server that never started
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(port) in result.stderr


# -- 8: a fake server in another container ---------------------------------------------------


def test_a_wildcard_host_is_announced_by_a_name_other_hosts_can_use() -> None:
    url, loopback = _reachable_url("0.0.0.0", 8765)
    assert url == f"http://{socket.gethostname()}:8765"
    assert not loopback
    assert _reachable_url("127.0.0.1", 8765) == ("http://127.0.0.1:8765", True)


def test_plain_http_off_loopback_needs_the_opt_in_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        WeComClient("ww", "s", base_url="http://fakewechat:8765")
    with caplog.at_level(logging.WARNING, logger="wechat_kf"):
        client = WeComClient("ww", "s", base_url="http://fakewechat:8765", allow_insecure_http=True)
    anyio.run(client.aclose)
    warnings = [r for r in caplog.records if "allow_insecure_http" in r.getMessage()]
    assert len(warnings) == 1
    assert "fakewechat" in warnings[0].getMessage()
    with pytest.raises(TypeError):
        WeComClient("ww", "s", base_url="http://fakewechat:8765", allow_insecure_http="yes")  # type: ignore[arg-type]


def test_the_command_passes_the_opt_in_to_the_client(box_kfid: list[str]) -> None:
    env = {"WECOM_CORPID": "ww", "WECOM_SECRET": "s" * 16}
    refused = run("wecom", "servicers", "list", *box_kfid, "--base-url", "http://fakewechat.invalid:1",
                  env=env)  # fmt: skip
    assert refused.exit_code == 2
    assert "allow_insecure_http" in refused.stderr
    tried = run("wecom", "servicers", "list", *box_kfid, "--base-url", "http://fakewechat.invalid:1",
                "--allow-insecure-http", env=env)  # fmt: skip
    assert tried.exit_code == 1  # accepted, then the host does not resolve
    assert "TransportError" in tried.stderr or "connect" in tried.stderr.lower()


def test_a_ctrl_c_after_the_report_was_printed_adds_no_second_document() -> None:
    import click

    from wechat_kf.cli.exits import run as _run
    from wechat_kf.cli.output import print_json as _print_json

    @click.command()
    def finished_then_interrupted() -> None:
        async def main_() -> int:
            _print_json({"ok": True, "items": []})
            raise KeyboardInterrupt  # as a SIGINT held back until the report was out

        _run(main_, as_json=True, interrupted=lambda: _print_json({"interrupted": True}))

    result = CliRunner().invoke(finished_then_interrupted, [])
    assert result.exit_code == 130
    assert json.loads(result.stdout) == {"ok": True, "items": []}
