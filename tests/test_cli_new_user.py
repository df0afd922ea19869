"""The command as a new user meets it with real files and real mistakes: CSV exports from HR,
ids that are not userids, refused credentials on every command, a token fetch that fails for
every request at once, the batch knobs, global options before the subcommand, ``| head``,
retries without -v, tables in a pipe, and advice for the errcodes people meet."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.table import Table

import wechat_kf.cli.credentials
from tests._servers import serve
from wechat_kf import APIError, WeComClient
from wechat_kf.cli import main
from wechat_kf.cli.exits import describe, error_data
from wechat_kf.cli.output import out
from wechat_kf.testing import Sandbox, sandbox

CLEAN = {"WECHAT_APPID": "", "WECHAT_SECRET": "", "WECOM_CORPID": "", "WECOM_SECRET": ""}
ADD = "/cgi-bin/kf/servicer/add"
LIST = "/cgi-bin/kf/servicer/list"


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env={**CLEAN, **(env or {})})


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox --sandbox runs on in this test, so that the test can seed it and read it."""
    box = sandbox()
    monkeypatch.setattr(wechat_kf.cli.credentials, "sandbox", lambda: box)
    return box


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return str(path)


def sent_userids(box: Sandbox, path: str = ADD) -> list[str]:
    return [u for c in box.fake.calls_to(path) for u in c.json.get("userid_list", [])]


# -- point 1: CSV files -------------------------------------------------------------------------


def test_a_header_userid_is_never_planned_nor_sent(tmp_path: Path, box: Sandbox) -> None:
    path = write(tmp_path, "team.csv", "userid,name\nuser0001,甲\nuser0002,乙\n")
    kfid = ["--open-kfid", box.open_kfid, "--userids-file", path, "--sandbox"]
    plan = run("wecom", "servicers", "sync", *kfid, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output  # a header is said, not a failure
    data = json.loads(plan.stdout)
    assert data["to_add"] == ["user0001", "user0002"]
    assert data["skipped"] == [
        {"file": path, "line": 1, "value": "userid,name", "reason": "the header"}
    ]
    added = run("wecom", "servicers", "add", *kfid)
    assert added.exit_code == 0, added.output
    assert sent_userids(box) == ["user0001", "user0002"]


def test_an_hr_export_is_read_by_its_header_and_its_bad_lines_are_said_by_number(
    tmp_path: Path, box: Sandbox
) -> None:
    path = write(
        tmp_path,
        "hr.csv",
        "\ufeff姓名,账号,部门\n张三,user0001,销售\n李四,user0002,研发\n"
        '王五,,研发\n赵六,bad id,研发\n"钱七, 经理",user0003,"研发,二组"\n张三,user0001,销售\n',
    )
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                 path, "--sandbox")  # fmt: skip
    assert result.exit_code == 1, result.output  # two lines held no usable userid
    assert sent_userids(box) == ["user0001", "user0002", "user0003"]
    assert "3 ok, 0 failed, 2 lines with no usable id" in result.stdout
    assert "4 lines of " in result.stdout
    assert "  line 1: the header" in result.stdout
    assert "  line 4: no value in column '账号'" in result.stdout
    assert "  line 5: not a userid: 'bad id' holds ' '" in result.stdout
    assert "  line 7: repeats line 2" in result.stdout


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("a,user0001\nb,user0002\n", ["--column", "2"], ["user0001", "user0002"]),
        ("name;login\nA;user0001\nB;user0002\n", ["--column", "LOGIN"], ["user0001", "user0002"]),
        ("name\tuserid\nA\tuser0001\nB\tuser0002\n", [], ["user0001", "user0002"]),
        ("members\nuser0001\nuser0002\n", ["--header"], ["user0001", "user0002"]),
        ("userid\nuser0002\n", ["--no-header"], ["userid", "user0002"]),
        ("x|user0001\n", ["--delimiter", ",", "--column", "1"], []),
        ("user0001 , note\n", ["--column", "1"], ["user0001"]),
    ],
    ids=["number", "name", "tsv", "header", "no-header", "delimiter", "spaces"],
)
def test_column_header_and_delimiter_choose_what_is_read(
    tmp_path: Path, box: Sandbox, text: str, options: list[str], expected: list[str]
) -> None:
    path = write(tmp_path, "ids.csv", text)
    result = run("wecom", "servicers", "sync", "--open-kfid", box.open_kfid, "--userids-file",
                 path, *options, "--dry-run", "--sandbox", "--json")  # fmt: skip
    if expected:
        assert json.loads(result.stdout)["to_add"] == expected, result.output
    else:
        assert result.exit_code == 2  # 'x|user0001' is no userid: nothing left to sync to
        assert "line 1: not a userid: 'x|user0001'" in result.stderr


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("a,b\nuser0001,x\n", [], "2 columns and no header: choose the column"),
        ("name,dept\nA,user0001\n", [], "none named userid ('name', 'dept')"),
        ("userid,name\nuser0001,A\n", ["--column", "login"], "no column 'login'"),
        ("userid\nuser0001\n", ["--column", "userid", "--no-header"], "drop --no-header"),
        ("a,user0001\n", ["--column", "3"], "--column 3, but its lines have at most 2"),
        ("user0001\n", ["--column", "0"], "--column counts from 1"),
    ],
    ids=[
        "no-header",
        "no-userid-column",
        "unknown-column",
        "name-without-header",
        "column-past-the-end",
        "column-0",
    ],
)
def test_a_file_whose_column_cannot_be_told_is_one_line_and_exit_2(
    tmp_path: Path, box: Sandbox, text: str, options: list[str], message: str
) -> None:
    path = write(tmp_path, "ids.csv", text)
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                 path, *options, "--sandbox")  # fmt: skip
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert box.fake.calls == []


# -- point 2: userids ---------------------------------------------------------------------------


def test_a_userid_on_the_line_that_is_not_one_is_exit_2_before_any_request(box: Sandbox) -> None:
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userid",
                 "user0001", "--userid", "bad id", "--sandbox", "--json")  # fmt: skip
    assert result.exit_code == 2
    assert "'bad id' holds ' '" in json.loads(result.stdout)["error"]["message"]
    assert box.fake.calls == []


def test_a_line_that_is_not_a_userid_is_skipped_with_its_number_and_the_rest_sent(
    tmp_path: Path, box: Sandbox
) -> None:
    path = write(tmp_path, "ids.txt", "# team\nuser0001\nbad id\n_lead\nuser0002\n")
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                 path, "--sandbox", "--json")  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [item["userid"] for item in data["items"]] == ["user0001", "user0002"]
    assert [(s["line"], s["value"]) for s in data["skipped"]] == [(3, "bad id"), (4, "_lead")]
    assert data["summary"]["skipped"] == 2
    assert sent_userids(box) == ["user0001", "user0002"]


# -- point 3: refused credentials, the same code everywhere -------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["wecom", "servicers", "list"],
        ["wecom", "servicers", "add", "--userid", "user0001"],
        ["wecom", "servicers", "delete", "--userid", "user0001", "--department-id", "2"],
        ["wecom", "servicers", "sync", "--userid", "user0001"],
        ["wecom", "servicers", "sync", "--userid", "user0001", "--dry-run"],
        ["wecom", "customers", "get", "wmAlice"],
        ["wecom", "kf-accounts", "list"],
        ["wecom", "sessions", "get", "wmAlice"],
    ],
    ids=lambda c: " ".join(c[1:3]) + (" --dry-run" if "--dry-run" in c else ""),
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_refused_credentials_exit_2_on_every_command(command: list[str], as_json: bool) -> None:
    box = sandbox()
    env = {"WECOM_CORPID": box.corpid, "WECOM_SECRET": "not-the-secret-0123"}
    if "kf-accounts" not in command and "customers" not in command:
        command = [*command, "--open-kfid", box.open_kfid]
    with serve(box.fake.app) as url:
        result = run(*command, "--base-url", url, *(["--json"] if as_json else []), env=env)
    assert result.exit_code == 2, result.output
    assert "not-the-secret-0123" not in result.output
    if as_json:
        data = json.loads(result.stdout)
        assert data["ok"] is False
        errors = data["errors"] if "errors" in data else [data["error"]]
        assert errors[0]["type"] == "CredentialError"
    else:
        assert "credentials refused" in result.stderr + result.stdout


# -- point 6: one failed token fetch, shown once ------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_token_fetch_failing_every_request_is_one_line_naming_the_ids_it_left(
    box: Sandbox, as_json: bool
) -> None:
    box.fake.inject_errcode(-1, path="/cgi-bin/gettoken")
    ids = [f"user{i:04d}" for i in range(1, 1001)]
    json_flag = ["--json"] if as_json else []
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                 "-", "--sandbox", *json_flag, stdin="\n".join(ids))  # fmt: skip
    assert result.exit_code == 1
    if as_json:
        data = json.loads(result.stdout)
        assert len(data["errors"]) == 1
        error = data["errors"][0]
        assert (error["errcode"], error["path"]) == (-1, "/cgi-bin/gettoken")
        assert error["requests"] == 10
        assert sorted(error["unprocessed_userids"]) == ids
        assert data["unsent_userids"] == []
    else:
        lines = [line for line in result.stdout.splitlines() if "gettoken" in line]
        assert len(lines) == 1, result.stdout
        assert "(10 requests); 1000 ids left unprocessed: " in lines[0]
        assert "0 ok, 0 failed, 1000 unprocessed" in result.stdout


# -- point 5: --timeout, --max-retries, --concurrency -------------------------------------------


def test_max_retries_bounds_the_attempts_of_each_request(box: Sandbox) -> None:
    box.fake.inject_errcode(-1, path=ADD)
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                 "-", "--max-retries", "1", "--sandbox", "--json",
                 stdin="\n".join(f"user{i:04d}" for i in range(1, 251)))  # fmt: skip
    assert result.exit_code == 1
    assert len(box.fake.calls_to(ADD)) == 3 * 2  # 3 requests, each sent twice
    assert json.loads(result.stdout)["errors"][0]["requests"] == 3


def test_timeout_bounds_each_attempt(box: Sandbox) -> None:
    box.fake.faults.latency = 5.0
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userid",
                 "user0001", "--timeout", "0.2", "--max-retries", "0", "--sandbox",
                 "--json")  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["unprocessed_userids"] == ["user0001"]
    assert data["errors"][0]["type"] == "TransportError"


def test_the_batch_knobs_reach_the_client_and_bad_values_are_usage_errors(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    made = WeComClient.__init__

    def recording(self: WeComClient, *args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        made(self, *args, **kwargs)

    monkeypatch.setattr(WeComClient, "__init__", recording)
    result = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userid",
                 "user0001", "--timeout", "2.5", "--max-retries", "0", "--concurrency", "2",
                 "--sandbox")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (seen["timeout"], seen["max_retries"], seen["max_concurrency"]) == (2.5, 0, 2)
    for bad in (["--concurrency", "0"], ["--concurrency", "101"], ["--timeout", "0"],
                ["--max-retries", "-1"]):  # fmt: skip
        refused = run("wecom", "customers", "get", "wmA", *bad, "--sandbox")
        assert refused.exit_code == 2, bad


# -- global options before the subcommand -------------------------------------------------------


def test_global_options_work_before_the_subcommand(box: Sandbox) -> None:
    result = run("--sandbox", "--json", "-v", "wecom", "servicers", "list", "--open-kfid",
                 box.open_kfid)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "servicers": [], "count": 0}
    assert logging.getLogger("wechat_kf").level == logging.DEBUG


def test_a_base_url_before_the_subcommand_wins_over_the_environment() -> None:
    box = sandbox()
    env = {"WECOM_CORPID": box.corpid, "WECOM_SECRET": box.wecom_secret,
           "WECHAT_KF_BASE_URL": "http://127.0.0.1:9"}  # fmt: skip
    with serve(box.fake.app) as url:
        result = run("--base-url", url, "wecom", "kf-accounts", "list", env=env)
    assert result.exit_code == 0, result.output
    assert box.open_kfid in result.stdout


def test_a_global_option_a_command_does_not_take_is_a_usage_error() -> None:
    result = run("--json", "demo")
    assert result.exit_code == 2
    assert "--json does not apply to 'demo'" in result.stderr
    assert json.loads(result.stdout)["error"]["type"] == "UsageError"


# -- --json of listings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["wecom", "servicers", "list", "--open-kfid", "wkSANDBOX0000000000000000000001"],
         "servicers"),
        (["wecom", "kf-accounts", "list"], "kf_accounts"),
        (["oa", "accounts", "list"], "kf_accounts"),
        (["oa", "accounts", "online"], "kf_accounts"),
        (["oa", "sessions", "list", "support@gh_sandbox"], "sessions"),
    ],
    ids=["servicers", "kf-accounts", "oa-accounts", "oa-online", "oa-sessions"],
)  # fmt: skip
def test_the_json_of_a_listing_is_one_object_with_named_fields(
    command: list[str], key: str
) -> None:
    result = run(*command, "--sandbox", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["ok", key, "count"]
    assert data["ok"] is True
    assert data["count"] == len(data[key])


# -- | head ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["wecom", "servicers", "list", "--open-kfid", "wkSANDBOX0000000000000000000001"], 0),
        (["oa", "accounts", "list", "--json"], 0),
        (["wecom", "servicers", "add", "--open-kfid", "wkSANDBOX0000000000000000000001",
          "--userid", "ghost1", "--json"], 1),
    ],
    ids=["table", "json", "batch"],
)  # fmt: skip
def test_a_reader_that_closes_the_pipe_ends_the_run_quietly_with_its_own_code(
    command: list[str], code: int
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "wechat_kf", *command, "--sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **CLEAN},
    )
    assert process.stdout is not None
    process.stdout.close()  # as `| head -0`: gone before the command writes
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == code
    assert b"Traceback" not in stderr
    assert b"BrokenPipe" not in stderr
    assert b"Exception ignored" not in stderr


# -- retries without -v -------------------------------------------------------------------------


@pytest.mark.parametrize("verbose", [False, True])
def test_retries_are_logged_only_with_v(
    box: Sandbox, caplog: pytest.LogCaptureFixture, verbose: bool
) -> None:
    box.fake.inject_errcode(-1, path=LIST, times=2)
    with caplog.at_level(logging.DEBUG):
        result = run("wecom", "servicers", "list", "--open-kfid", box.open_kfid, "--sandbox",
                     *(["-v"] if verbose else []))  # fmt: skip
    assert result.exit_code == 0, result.output
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == (2 if verbose else 0)
    # The quieting goes with the run: a program that runs the command keeps its own logging.
    assert logging.getLogger("wechat_kf.transport").filters == []


# -- tables in a pipe ---------------------------------------------------------------------------


def test_tables_are_not_cut_at_80_columns_when_stdout_is_not_a_terminal(box: Sandbox) -> None:
    avatar = "https://wework.qpic.cn/wwpic/" + "a1b2c3d4" * 15 + "/0"
    open_kfid = box.fake.create_kf_account(box.corpid, "售后客服", avatar=avatar)
    result = run("wecom", "kf-accounts", "list", "--sandbox")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if open_kfid in line)
    assert avatar in row
    assert "…" not in result.stdout
    console = out()
    table = Table("id", "text")
    table.add_row("x" * 150, "y" * 150)
    with console.capture() as captured:
        console.print(table)
    assert max(len(line) for line in captured.get().splitlines()) > 300


# -- advice for the errcodes people meet --------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "words"),
    [(45080, "30 s"), (95001, "without --msgid"), (95010, "used or has expired")],
)
def test_the_errcodes_people_meet_come_with_advice(errcode: int, words: str) -> None:
    error = APIError(errcode, "refused, hint: [x]", path="/cgi-bin/kf/send_msg")
    assert words in describe(error)
    assert words in error_data(error)["advice"]


def test_a_msgid_used_twice_says_what_to_do_in_the_commands_output(box: Sandbox) -> None:
    box.fake.customer_says(box.open_kfid, "wmAlice", "在吗")
    args = ["wecom", "messages", "send", "--open-kfid", box.open_kfid, "--to", "wmAlice",
            "--text", "在", "--msgid", "m1", "--sandbox"]  # fmt: skip
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 1
    assert "errcode=95001" in again.stderr
    assert "send anything new without --msgid" in again.stderr


# -- point 18: a sync over the caps still shows its plan ----------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_sync_over_the_caps_shows_the_plan_and_what_is_over_and_sends_nothing(
    box: Sandbox, as_json: bool
) -> None:
    ids = "\n".join(f"user{i:04d}" for i in range(1, 2101))
    departments = [arg for d in range(1, 23) for arg in ("--department-id", str(d))]
    for dry_run in ([], ["--dry-run"]):
        result = run("wecom", "servicers", "sync", "--open-kfid", box.open_kfid,
                     "--userids-file", "-", *departments, *dry_run, "--sandbox",
                     *(["--json"] if as_json else []), stdin=ids)  # fmt: skip
        assert result.exit_code == 2, result.output
        if as_json:
            data = json.loads(result.stdout)
            assert data["ok"] is False
            assert len(data["to_add"]) == 2100
            assert data["over_caps"] == [
                "2100 userids: a kf account holds at most 2000 servicers",
                "22 department ids: a kf account holds at most 20 departments",
            ]
        else:
            assert "would add 2100 members and 22 departments" in result.stdout
            assert "over WeChat's caps: 2100 userids" in result.stdout
            assert "nothing sent" in result.stdout
    assert box.fake.calls_to(ADD) == []


def test_the_failures_file_reads_back_as_the_next_runs_userids(
    tmp_path: Path, box: Sandbox
) -> None:
    box.fake.fail_servicer_ids(["user0002", "user0004"], errcode=60011, times=1)
    failures = tmp_path / "failures.csv"
    first = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file", "-",
                "--failures-file", str(failures), "--sandbox",
                stdin="user0001\nuser0002\nuser0003\nuser0004\n")  # fmt: skip
    assert first.exit_code == 1
    with failures.open(encoding="utf-8", newline="") as stream:
        assert [row["userid"] for row in csv.DictReader(stream)] == ["user0002", "user0004"]
    again = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                str(failures), "--sandbox")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert sent_userids(box)[-2:] == ["user0002", "user0004"]


def test_a_failures_file_with_skipped_lines_reads_back_clean(tmp_path: Path, box: Sandbox) -> None:
    box.fake.fail_servicer_ids(["user0002"], errcode=60011, times=1)
    failures = tmp_path / "failures.csv"
    hr = "姓名,userid,部门\n张三,user0001,1\n王五,,3\n李四,user0002,2\n赵六,bad id,2\n"
    first = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file", "-",
                "--failures-file", str(failures), "--sandbox", stdin=hr)  # fmt: skip
    assert first.exit_code == 1
    assert "1 ok, 1 failed, 2 lines with no usable id" in first.stdout
    with failures.open(encoding="utf-8", newline="") as stream:
        outcomes = [(row["userid"], row["outcome"]) for row in csv.DictReader(stream)]
    assert ("user0002", "failed") in outcomes
    assert [o for _, o in outcomes].count("skipped") == 2
    # The rerun retries what failed; the lines skipped before are said, not counted again.
    again = run("wecom", "servicers", "add", "--open-kfid", box.open_kfid, "--userids-file",
                str(failures), "--sandbox")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "skipped by the run that wrote this failures file" in again.stdout
    assert sent_userids(box)[-1:] == ["user0002"]
