"""The wechat-kf command: demo, oa accounts, wecom servicers, fake-server; exit codes and --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from tests._servers import free_port, listening, serve
from wechat_kf import WeComClient
from wechat_kf.cli import main
from wechat_kf.testing import sandbox
from wechat_kf.testing._sandbox import (
    SANDBOX_CORPID,
    SANDBOX_OA_SECRET,
    SANDBOX_OPEN_KFID,
    SANDBOX_WECOM_SECRET,
)

KFID = ["--open-kfid", SANDBOX_OPEN_KFID]


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    clean = {"WECHAT_APPID": "", "WECHAT_SECRET": "", "WECOM_CORPID": "", "WECOM_SECRET": ""}
    return CliRunner().invoke(main, list(args), input=stdin, env={**clean, **(env or {})})


def no_secrets(result: Result) -> None:
    for secret in (SANDBOX_OA_SECRET, SANDBOX_WECOM_SECRET):
        assert secret not in result.output


def test_demo_runs_the_whole_tour_and_exits_0() -> None:
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "995" in result.stdout  # servicers added
    assert "60111" in result.stdout  # the unknown ids, listed
    assert "demo@gh_sandbox" in result.stdout
    # Last, a customer conversation through the Inbox: the message, then the handler's reply.
    conversation = result.stdout[result.stdout.index("a customer conversation") :]
    assert "wmDEMOCUSTOMER0001" in conversation
    assert "你好，我的订单 1024 到哪了？" in conversation
    assert "inbox.reply" in conversation
    assert "收到「你好，我的订单 1024 到哪了？」，正在为您查询" in conversation
    assert "pulled and handled 1 message" in conversation
    no_secrets(result)


def test_oa_list_json_in_the_sandbox() -> None:
    result = run("oa", "accounts", "list", "--sandbox", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["ok"], data["count"]) == (True, 2)
    accounts = data["kf_accounts"]
    assert [a["kf_account"] for a in accounts] == ["support@gh_sandbox", "sales@gh_sandbox"]


def test_oa_add_prints_a_confirmation() -> None:
    result = run("oa", "accounts", "add", "new@gh_sandbox", "--nickname", "新人", "--sandbox")
    assert result.exit_code == 0, result.output
    assert "added new@gh_sandbox" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("oa", "accounts", "online"),
        ("oa", "accounts", "update", "support@gh_sandbox", "--nickname", "x"),
        ("oa", "accounts", "delete", "sales@gh_sandbox"),
        ("oa", "accounts", "invite", "sales@gh_sandbox", "--invite-wx", "someone"),
    ],
)
def test_oa_commands_succeed_in_the_sandbox(args: tuple[str, ...]) -> None:
    result = run(*args, "--sandbox", "--json")
    assert result.exit_code == 0, result.output


def test_oa_avatar_uploads_a_file(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    result = run("oa", "accounts", "avatar", "support@gh_sandbox", str(image), "--sandbox")
    assert result.exit_code == 0, result.output


def test_bad_argument_exits_2_with_one_line_and_no_traceback() -> None:
    result = run("oa", "accounts", "add", "a@gh_sandbox", "--nickname", "x" * 17, "--sandbox")
    assert result.exit_code == 2
    assert "nickname" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_credentials_exit_2() -> None:
    result = run("oa", "accounts", "list")
    assert result.exit_code == 2
    assert "WECHAT_APPID" in result.stderr


def test_api_error_exits_1_with_errcode_errmsg_and_rid() -> None:
    result = run("oa", "accounts", "add", "support@gh_sandbox", "--nickname", "x", "--sandbox")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "errcode=65406" in line
    assert "rid=" in line
    assert "Traceback" not in result.output


def test_servicers_add_from_a_file_of_250_ids(tmp_path: Path) -> None:
    ids = [f"user{i:04d}" for i in range(1, 246)] + [f"ghost{i}" for i in range(5)]
    path = tmp_path / "ids.txt"
    path.write_text("# onboarding\n" + "\n".join(ids) + "\n\n", encoding="utf-8")
    result = run("wecom", "servicers", "add", *KFID, "--userids-file", str(path), "--sandbox")
    assert result.exit_code == 1  # five ids are not members
    assert "245 ok, 5 failed" in result.stdout
    assert "ghost0" in result.stdout


def test_servicers_add_reads_stdin_and_prints_json() -> None:
    ids = "\n".join(f"user{i:04d}" for i in range(1, 251))
    result = run(
        "wecom", "servicers", "add", *KFID, "--userids-file", "-", "--department-id", "3",
        "--sandbox", "--json", stdin=ids,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert len(data["items"]) == 251
    assert data["items"][-1] == {
        "userid": None,
        "department_id": 3,
        "errcode": 0,
        "errmsg": "success",
        "already": False,
    }


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_a_userid_repeated_in_another_case_is_reported_not_dropped_silently(as_json: bool) -> None:
    flags = ["--json"] if as_json else []
    result = run(
        "wecom", "servicers", "add", *KFID, "--userids-file", "-", "--sandbox", *flags,
        stdin="user0001\nUSER0001\nuser0002\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    if as_json:
        data = json.loads(result.stdout)
        assert [item["userid"] for item in data["items"]] == ["user0001", "user0002"]
        assert data["case_duplicates"] == {"USER0001": "user0001"}
    else:
        assert "1 repeated in another case" in result.stdout
        assert "USER0001 is user0001" in result.stdout


def test_servicers_with_no_ids_is_a_usage_error() -> None:
    result = run("wecom", "servicers", "add", *KFID, "--sandbox")
    assert result.exit_code == 2


def test_unknown_open_kfid_reports_every_id_unprocessed() -> None:
    result = run(
        "wecom", "servicers", "delete", "--open-kfid", "wknope", "--userid", "user0001",
        "--sandbox", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["unprocessed_userids"] == ["user0001"]
    error = data["errors"][0]
    assert (error["type"], error["errcode"], error["path"]) == (
        "OpenKfidError", 95000, "/cgi-bin/kf/servicer/del"
    )  # fmt: skip
    assert error["rid"]
    assert error["errmsg"].startswith("invalid open_kfid")


def test_servicers_list_table() -> None:
    result = run("wecom", "servicers", "list", *KFID, "--sandbox")
    assert result.exit_code == 0, result.output
    assert "userid" in result.stdout


def test_credentials_from_the_environment_against_a_base_url() -> None:
    box = sandbox()
    env = {"WECOM_CORPID": SANDBOX_CORPID, "WECOM_SECRET": SANDBOX_WECOM_SECRET}
    with serve(box.fake.app) as base_url:
        added = run(
            "wecom", "servicers", "add", *KFID, "--userid", "user0001", "--base-url", base_url,
            env=env,
        )  # fmt: skip
        refused = run(
            "wecom", "servicers", "list", *KFID, "--base-url", base_url,
            env={**env, "WECOM_SECRET": "wrong-secret-value"},
        )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert box.fake.servicers(SANDBOX_OPEN_KFID) == {"user0001": 0}
    assert refused.exit_code == 2
    assert "credentials refused" in refused.stderr
    assert "wrong-secret-value" not in refused.output
    no_secrets(added)


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wechat_kf", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "wechat-kf" in done.stdout


@pytest.fixture
def fake_server() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "wechat_kf", "fake-server", "--port", str(port)]
    with listening(
        command,
        port,
        "fake-server",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as server:
        yield server.url
    assert SANDBOX_OPEN_KFID in server.output
    assert SANDBOX_WECOM_SECRET in server.output  # it prints what it accepts, for clients
    box = sandbox()
    for seeded in (box.component_appid, box.verify_ticket, box.authorizer_refresh_token,
                   box.suite_id, box.suite_ticket, box.permanent_code):  # fmt: skip
        assert seeded in server.output
    assert "export WECHAT_KF_BASE_URL=http://127.0.0.1:" in server.output


def test_fake_server_serves_the_sdk_over_loopback(fake_server: str) -> None:
    async def main_() -> int:
        async with WeComClient(
            SANDBOX_CORPID, SANDBOX_WECOM_SECRET, base_url=fake_server
        ) as client:
            result = await client.servicers.add(SANDBOX_OPEN_KFID, ["user0001", "user0002"])
            assert result.ok
            return len(await client.servicers.list(SANDBOX_OPEN_KFID))

    assert anyio.run(main_) == 2


def test_wecom_kf_accounts_list_shows_each_open_kfid() -> None:
    result = run("wecom", "kf-accounts", "list", "--sandbox")
    assert result.exit_code == 0, result.output
    assert SANDBOX_OPEN_KFID in result.stdout
    data = json.loads(run("wecom", "kf-accounts", "list", "--sandbox", "--json").stdout)
    assert data == {
        "ok": True,
        "kf_accounts": [
            {
                "open_kfid": SANDBOX_OPEN_KFID,
                "name": "沙盒客服",
                "avatar": "",
                "manage_privilege": True,
            }
        ],
        "count": 1,
    }


def test_servicers_sync_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(f"user{i:04d}" for i in range(1, 31)) + "\n", encoding="utf-8")
    result = run(
        "wecom", "servicers", "sync", *KFID, "--userids-file", str(path), "--department-id",
        "2", "--dry-run", "--sandbox",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "would add 30 members and 1 departments" in result.stdout
    assert "would remove 0 members" in result.stdout
    assert "user0001, user0002" in result.stdout
    assert "(31 in all: --json)" in result.stdout
    assert "dry run: nothing sent" in result.stdout


def test_servicers_sync_applies_the_plan_and_reports_it_as_json(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(f"user{i:04d}" for i in range(1, 251)) + "\n", encoding="utf-8")
    result = run(
        "wecom", "servicers", "sync", *KFID, "--userids-file", str(path), "--sandbox", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["dry_run"] is False
    assert len(data["to_add"]) == 250
    assert data["to_remove"] == []
    assert len(data["added"]["items"]) == 250
    assert data["removed"] is None
    assert data["unprocessed"]["to_add"] == []
    assert data["errors"] == []

    table = run("wecom", "servicers", "sync", *KFID, "--userids-file", str(path), "--sandbox")
    assert "added: 250 ok, 0 failed" in table.stdout


def test_servicers_sync_with_an_empty_target_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("# nobody\n", encoding="utf-8")
    result = run("wecom", "servicers", "sync", *KFID, "--userids-file", str(path), "--sandbox")
    assert result.exit_code == 2
    assert "lists no userid" in result.stderr


def test_the_install_exposes_the_package_and_not_the_checkouts_other_folders(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = (
        "import importlib.util, wechat_kf\n"
        "print([n for n in ('examples', 'tests', 'benchmarks') if importlib.util.find_spec(n)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
