"""The command's customer-service families: WeCom kf accounts, media, sessions, customers and
messages, Official Account sessions and records. Each runs against a seeded FakeWeChat served
over loopback (a scripted layer in front of it where a test needs an answer the fake would not
give: a failed batch, a lost answer); the tests look at the output (text and --json), the exit
code and what reached the API, and check that no secret or token is ever printed."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from click.testing import CliRunner, Result

from tests._servers import serve
from wechat_kf.cli import main
from wechat_kf.testing import OaSession, Sandbox, sandbox

T0 = 1714521600  # 2024-05-01T00:00:00Z
TOKEN_PATHS = ("/cgi-bin/gettoken", "/cgi-bin/stable_token", "/cgi-bin/token")
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64
# A scripted answer: None passes the request to the fake; a dict is answered instead of it; an
# int is an HTTP status sent after the fake applied the request (an answer lost on the way); an
# awaitable is awaited first (a request held back), then read the same way.
Script = Callable[[str, Any], Any]


async def held(release: threading.Event) -> None:
    """A scripted answer that holds the request until the test sets ``release`` (waited for in a
    worker thread: the server's other requests go on), then passes it to the fake."""
    await anyio.to_thread.run_sync(release.wait, 20)


def _error(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": f"{errmsg} rid: 0a1b2c3d-scripted"}


class Switch:
    """The ASGI app a module-wide loopback server serves: whatever the current test set."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def scripted(app: Any, script: Script, seen: list[tuple[str, Any]]) -> Any:
    """``app`` behind ``script``; every request it sees is kept in ``seen``."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        payload = json.loads(body) if body.startswith(b"{") else None
        seen.append((scope["path"], payload))
        answer = script(scope["path"], payload)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, dict):
            return await _reply(send, 200, answer)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def swallow(message: Any) -> None:
            pass

        await app(scope, replay, send if answer is None else swallow)
        if isinstance(answer, int):
            await _reply(send, answer, {"error": "scripted"})

    return wrapped


async def _reply(send: Any, status: int, body: dict[str, Any]) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Switch, str]]:
    switch = Switch()
    with serve(switch) as url:
        yield switch, url


@attrs.define
class Api:
    """A fresh sandbox behind the loopback server, and the command run against it."""

    box: Sandbox
    url: str
    switch: Switch
    seen: list[tuple[str, Any]] = attrs.Factory(list)

    @property
    def env(self) -> dict[str, str]:
        box = self.box
        return {"WECOM_CORPID": box.corpid, "WECOM_SECRET": box.wecom_secret,
                "WECHAT_APPID": box.appid, "WECHAT_SECRET": box.oa_secret}  # fmt: skip

    def run(self, *args: str, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(
            main, [*args, "--base-url", self.url], input=stdin, env=self.env
        )
        for secret in (self.box.wecom_secret, self.box.oa_secret, *self.box.fake.issued_tokens()):
            assert secret not in result.output
        assert "Traceback" not in result.output
        return result

    def script(self, script: Script) -> None:
        self.switch.app = scripted(self.box.fake.app, script, self.seen)

    def sent(self, path: str) -> list[Any]:
        """The bodies of the requests to ``path`` the fake received."""
        return [call.json for call in self.box.fake.calls_to(path)]

    def requests(self) -> list[str]:
        """Every path that reached the API, token endpoints included."""
        return [call.path for call in self.box.fake.calls] + [path for path, _ in self.seen]


@pytest.fixture
def api(served: tuple[Switch, str]) -> Api:
    switch, url = served
    box = sandbox()
    switch.app = box.fake.app
    return Api(box, url, switch)


def one_line(result: Result, *parts: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0]


def kfid(api: Api) -> list[str]:
    return ["--open-kfid", api.box.open_kfid]


# -- kf accounts --------------------------------------------------------------------------------

ADD, UPLOAD = "/cgi-bin/kf/account/add", "/cgi-bin/media/upload"


def test_kf_accounts_add_with_a_media_id_prints_the_open_kfid(api: Api) -> None:
    media_id = api.box.fake.store_media(api.box.corpid)
    result = api.run("wecom", "kf-accounts", "add", "售后客服", "--media-id", media_id)
    assert result.exit_code == 0, result.output
    open_kfid = result.stdout.strip()
    assert api.sent(ADD) == [{"name": "售后客服", "media_id": media_id}]
    assert api.box.fake.corps[api.box.corpid].kf_accounts[open_kfid].name == "售后客服"


def test_kf_accounts_add_with_an_avatar_uploads_it_first(api: Api, tmp_path: Path) -> None:
    (tmp_path / "logo.jpg").write_bytes(JPEG)
    result = api.run("wecom", "kf-accounts", "add", "售后", "--avatar", str(tmp_path / "logo.jpg"),
                     "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["name"] == "售后"
    assert api.sent(ADD) == [{"name": "售后", "media_id": data["media_id"]}]
    assert [c.params["type"] for c in api.box.fake.calls_to(UPLOAD)] == ["image"]
    media = api.box.fake.corps[api.box.corpid].media[data["media_id"]]
    assert (media.content, media.filename) == (JPEG, "logo.jpg")
    assert data["open_kfid"] in api.box.fake.corps[api.box.corpid].kf_accounts


@pytest.mark.parametrize(
    "args",
    [
        ("x" * 17, "--avatar", "logo.jpg"),  # the name is checked before the upload
        ("售后",),  # no avatar
        ("售后", "--media-id", "m", "--avatar", "logo.jpg"),
    ],
    ids=["long-name", "no-avatar", "both"],
)
def test_kf_accounts_add_refuses_bad_input_before_any_request(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logo.jpg").write_bytes(JPEG)
    result = api.run("wecom", "kf-accounts", "add", *args, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["ok"] is False
    assert api.requests() == []


def test_kf_accounts_add_refused_is_one_line_and_exit_1(api: Api) -> None:
    text = api.run("wecom", "kf-accounts", "add", "售后", "--media-id", "3unknown")
    assert text.exit_code == 1
    one_line(text, "errcode=40007", "errmsg=", "rid=", f"path={ADD}")
    data = json.loads(api.run("wecom", "kf-accounts", "add", "售后", "--media-id", "3x",
                              "--json").stdout)  # fmt: skip
    assert (data["ok"], data["error"]["errcode"]) == (False, 40007)
    assert data["error"]["rid"]


def test_kf_accounts_add_after_a_lost_answer_says_to_look_before_adding_again(api: Api) -> None:
    media_id = api.box.fake.store_media(api.box.corpid)
    api.script(lambda path, body: 502 if path == ADD else None)
    result = api.run("wecom", "kf-accounts", "add", "售后", "--media-id", media_id, "--json")
    assert result.exit_code == 1
    one_line(result, "maybe_applied=True", "kf-accounts list")
    assert json.loads(result.stdout)["error"]["maybe_applied"] is True
    assert len(api.sent(ADD)) == 1  # never sent twice
    assert len(api.box.fake.corps[api.box.corpid].kf_accounts) == 2  # it was created


def test_kf_accounts_add_whose_upload_failed_added_nothing(api: Api, tmp_path: Path) -> None:
    (tmp_path / "logo.jpg").write_bytes(JPEG)
    api.script(lambda path, body: 502 if path == UPLOAD else None)
    result = api.run("wecom", "kf-accounts", "add", "售后", "--avatar", str(tmp_path / "logo.jpg"))
    assert result.exit_code == 1
    one_line(result, f"HTTP 502 on POST {UPLOAD}")
    assert "kf-accounts list" not in result.stderr
    assert api.sent(ADD) == []


def test_kf_accounts_update_delete_and_contact_way(api: Api, tmp_path: Path) -> None:
    (tmp_path / "new.jpg").write_bytes(JPEG)
    open_kfid = api.box.open_kfid
    updated = api.run("wecom", "kf-accounts", "update", open_kfid, "--name", "新名字",
                      "--avatar", str(tmp_path / "new.jpg"), "--json")  # fmt: skip
    assert updated.exit_code == 0, updated.output
    media_id = json.loads(updated.stdout)["media_id"]
    assert api.sent("/cgi-bin/kf/account/update") == [
        {"open_kfid": open_kfid, "name": "新名字", "media_id": media_id}
    ]
    assert api.box.fake.corps[api.box.corpid].kf_accounts[open_kfid].name == "新名字"
    link = api.run("wecom", "kf-accounts", "contact-way", open_kfid, "--scene", "web_01")
    assert link.exit_code == 0, link.output
    assert link.stdout.startswith("https://work.weixin.qq.com/kfid/")
    assert "enc_scene=" in link.stdout
    assert api.sent("/cgi-bin/kf/add_contact_way") == [{"open_kfid": open_kfid, "scene": "web_01"}]
    deleted = api.run("wecom", "kf-accounts", "delete", open_kfid)
    assert (deleted.exit_code, deleted.stdout.strip()) == (0, f"deleted {open_kfid}")
    again = api.run("wecom", "kf-accounts", "delete", open_kfid)
    assert again.exit_code == 1
    one_line(again, "errcode=95004", "rid=")


@pytest.mark.parametrize(
    "args",
    [
        ("update", "wk1"),
        ("update", "wk 1", "--name", "x"),
        ("contact-way", "wk1", "--scene", "a b"),
    ],
    ids=["nothing-to-update", "bad-open-kfid", "bad-scene"],
)
def test_kf_accounts_bad_input_is_exit_2_before_any_request(
    api: Api, args: tuple[str, ...]
) -> None:
    result = api.run("wecom", "kf-accounts", *args)
    assert result.exit_code == 2
    assert api.requests() == []


# -- media ------------------------------------------------------------------------------------


def test_media_upload_prints_the_media_id(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, world")
    text = api.run("wecom", "media", "upload", str(path), "--type", "file")
    assert text.exit_code == 0, text.output
    media = api.box.fake.corps[api.box.corpid].media[text.stdout.strip()]
    assert (media.type, media.content, media.filename) == ("file", b"hello, world", "notes.txt")
    data = json.loads(api.run("wecom", "media", "upload", str(path), "--type", "file",
                              "--filename", "readme.txt", "--json").stdout)  # fmt: skip
    assert data["ok"] is True
    assert data["type"] == "file"
    assert api.box.fake.corps[api.box.corpid].media[data["media_id"]].filename == "readme.txt"


def test_media_upload_checks_the_file_before_sending(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "not-an-image.jpg"
    path.write_bytes(b"GIF89a........")
    wrong = api.run("wecom", "media", "upload", str(path), "--type", "image")
    assert wrong.exit_code == 2
    one_line(wrong, "JPEG or a PNG")
    missing = api.run("wecom", "media", "upload", str(tmp_path / "gone.png"), "--type", "image")
    assert missing.exit_code == 2
    assert api.requests() == []


def test_media_upload_refused_is_one_line_and_exit_1(api: Api, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(JPEG)
    api.script(lambda path, body: _error(40009, "invalid image size") if path == UPLOAD else None)
    result = api.run("wecom", "media", "upload", str(tmp_path / "a.jpg"), "--type", "image")
    assert result.exit_code == 1
    one_line(result, "errcode=40009", "rid=0a1b2c3d-scripted")


# -- sessions ---------------------------------------------------------------------------------

STATE_GET, TRANS = "/cgi-bin/kf/service_state/get", "/cgi-bin/kf/service_state/trans"


def test_sessions_get_shows_the_state_and_the_servicer(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_says(open_kfid, "wmAlice", "你好")
    text = api.run("wecom", "sessions", "get", *kfid(api), "wmAlice")
    assert text.exit_code == 0, text.output
    assert text.stdout.split() == ["state", "untreated", "(0)", "servicer", "-"]
    fake.set_session_state(open_kfid, "wmAlice", 3, "user0001")
    data = json.loads(api.run("wecom", "sessions", "get", *kfid(api), "wmAlice", "--json").stdout)
    assert data == {"ok": True, "open_kfid": open_kfid, "external_userid": "wmAlice", "state": 3,
                    "state_name": "human", "servicer_userid": "user0001"}  # fmt: skip
    assert api.sent(STATE_GET)[-1] == {"open_kfid": open_kfid, "external_userid": "wmAlice"}
    unknown = api.run("wecom", "sessions", "get", *kfid(api), "wmNobody")
    assert unknown.exit_code == 1
    one_line(unknown, "errcode=40096", "rid=")


def test_sessions_transfer_by_name_or_number_prints_the_msg_code(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_says(open_kfid, "wmAlice")
    fake.add_servicers(open_kfid, ["user0001"])
    pool = api.run("wecom", "sessions", "transfer", *kfid(api), "wmAlice", "--state", "2")
    assert pool.exit_code == 0, pool.output
    assert "moved wmAlice to waiting (2)" in pool.stdout
    assert "msg_code" in pool.stdout
    human = api.run("wecom", "sessions", "transfer", *kfid(api), "wmAlice", "--state", "HUMAN",
                    "--servicer", "user0001", "--json")  # fmt: skip
    assert human.exit_code == 0, human.output
    data = json.loads(human.stdout)
    assert (data["state"], data["state_name"], data["servicer_userid"]) == (3, "human", "user0001")
    assert data["msg_code"]
    assert fake.session_state(open_kfid, "wmAlice") == 3
    assert api.sent(TRANS) == [
        {"open_kfid": open_kfid, "external_userid": "wmAlice", "service_state": 2},
        {"open_kfid": open_kfid, "external_userid": "wmAlice", "service_state": 3,
         "servicer_userid": "user0001"},
    ]  # fmt: skip
    fake.customer_says(open_kfid, "wmBob")
    quiet = api.run("wecom", "sessions", "transfer", *kfid(api), "wmBob", "--state", "assistant",
                    "--json")  # fmt: skip
    assert json.loads(quiet.stdout)["msg_code"] is None


@pytest.mark.parametrize(
    "args",
    [("--state", "human"), ("--state", "waiting", "--servicer", "user0001"), ("--state", "9")],
    ids=["human-without-servicer", "servicer-without-human", "unknown-state"],
)
def test_sessions_transfer_bad_input_is_exit_2_before_any_request(
    api: Api, args: tuple[str, ...]
) -> None:
    result = api.run("wecom", "sessions", "transfer", *kfid(api), "wmAlice", *args, "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False
    if "--state" in args and args[-1] != "9":  # named as the command names it, not the SDK
        assert "--servicer" in document["error"]["message"]
    assert api.requests() == []


def test_sessions_transfer_refused_and_lost(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_says(open_kfid, "wmAlice")
    fake.set_session_state(open_kfid, "wmAlice", 4)
    refused = api.run("wecom", "sessions", "transfer", *kfid(api), "wmAlice", "--state", "1")
    assert refused.exit_code == 1
    one_line(refused, "errcode=95016", "rid=")
    fake.customer_says(open_kfid, "wmBob")
    api.script(lambda path, body: 502 if path == TRANS else None)
    lost = api.run("wecom", "sessions", "transfer", *kfid(api), "wmBob", "--state", "waiting")
    assert lost.exit_code == 1
    one_line(lost, "maybe_applied=True", "wecom sessions get")
    assert fake.session_state(open_kfid, "wmBob") == 2  # it did apply, once
    assert len([path for path, _ in api.seen if path == TRANS]) == 1


# -- customers --------------------------------------------------------------------------------

BATCHGET = "/cgi-bin/kf/customer/batchget"


def test_customers_get_any_number_from_a_file_lists_the_invalid(api: Api, tmp_path: Path) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    known = [f"wmKnown{i:03d}" for i in range(120)]
    for external_userid in known:
        fake.customer_says(open_kfid, external_userid)
    ids = known + [f"wmGone{i:03d}" for i in range(130)]
    path = tmp_path / "ids.txt"
    path.write_text("# customers\n" + "\n".join(ids) + "\n" + known[0] + "\n", encoding="utf-8")
    result = api.run("wecom", "customers", "get", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("external_userid")
    nickname = fake.customers["wmKnown000"].nickname
    assert any(line.startswith("wmKnown000") and nickname in line
               for line in result.stdout.splitlines())  # fmt: skip
    assert "invalid (unknown, or silent for 48 hours): wmGone000, wmGone001" in result.stdout
    assert "(130 in all: --json or --failures-file)" in result.stdout
    assert "  line 252: repeats line 2" in result.stdout  # said, not sent twice
    assert "120 found, 130 invalid, 0 unprocessed" in result.stdout
    asked = [body["external_userid_list"] for body in api.sent(BATCHGET)]
    assert sorted(len(chunk) for chunk in asked) == [50, 100, 100]  # 250 distinct ids
    assert sorted(i for chunk in asked for i in chunk) == sorted(ids)


def test_customers_get_json_from_stdin_with_the_session_context(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_enters(open_kfid, "wmAlice", scene="web01", scene_param="order=42")
    fake.customer_says(open_kfid, "wmBob")
    result = api.run("wecom", "customers", "get", "wmBob", "--file", "-", "--context", "--json",
                     stdin="wmNobody\nwmAlice\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [c["external_userid"] for c in data["customers"]] == ["wmBob", "wmAlice"]
    assert data["customers"][1]["enter_session_context"]["scene_param"] == "order=42"
    assert (data["invalid"], data["unprocessed_external_userids"]) == (["wmNobody"], [])
    assert api.sent(BATCHGET)[0]["need_enter_session_context"] == 1
    table = api.run("wecom", "customers", "get", "wmAlice", "--context")
    assert "scene_param" in table.stdout
    assert "order=42" in table.stdout


def test_customers_get_a_failed_request_leaves_its_ids_unprocessed(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    ids = [f"wm{i:04d}" for i in range(300)]
    for external_userid in ids:
        fake.customer_says(open_kfid, external_userid)
    # The request holding wm0150 fails every time (after its retries); the others go on.
    api.script(lambda path, body: 502 if path == BATCHGET and "wm0150" in
               body["external_userid_list"] else None)  # fmt: skip
    stdin = "\n".join(ids)
    text = api.run("wecom", "customers", "get", "--file", "-", stdin=stdin)
    assert text.exit_code == 1
    assert "200 found, 0 invalid, 100 unprocessed" in text.stdout
    assert "ask for them again: wm0100, wm0101" in text.stdout
    assert "HTTP 502 on POST /cgi-bin/kf/customer/batchget" in text.stdout
    data = json.loads(api.run("wecom", "customers", "get", "--file", "-", "--json",
                              stdin=stdin).stdout)  # fmt: skip
    assert data["ok"] is False
    assert len(data["customers"]) == 200
    assert data["unprocessed_external_userids"] == ids[100:200]
    assert data["errors"][0]["status_code"] == 502


def test_customers_get_stops_after_a_fatal_refusal(api: Api) -> None:
    api.script(lambda path, body: _error(48001, "api forbidden") if path == BATCHGET else None)
    ids = "\n".join(f"wm{i:04d}" for i in range(2000))
    result = api.run("wecom", "customers", "get", "--file", "-", "--json", stdin=ids)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert len(data["unprocessed_external_userids"]) == 2000
    assert data["errors"][0]["errcode"] == 48001
    # At most one wave of the client's 8 concurrent requests, not 20.
    assert 1 <= len([path for path, _ in api.seen if path == BATCHGET]) <= 8


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("wm Bob", "--file", "-"), "wmAlice\n", "'wm Bob' must be non-empty"),
        (("--file", "-"), "# nobody\n", "nothing to do"),
        (("",), None, "must be non-empty"),
    ],
    ids=["space", "empty-file", "empty-id"],
)
def test_customers_get_bad_ids_are_exit_2_before_any_request(
    api: Api, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    result = api.run("wecom", "customers", "get", *args, stdin=stdin)
    assert result.exit_code == 2
    one_line(result, message)
    assert api.requests() == []


def test_customers_get_skips_a_line_that_is_no_id_says_its_number_and_asks_for_the_rest(
    api: Api, tmp_path: Path
) -> None:
    api.box.fake.customer_says(api.box.open_kfid, "wmAlice")
    path = tmp_path / "customers.csv"
    path.write_text("external_userid,note\nwmAlice,vip\nwm Bob,typo\n,no id\n", encoding="utf-8")
    failures = tmp_path / "failures.csv"
    result = api.run("wecom", "customers", "get", "--file", str(path), "--failures-file",
                     str(failures))  # fmt: skip
    assert result.exit_code == 1, result.output  # two lines gave no customer to ask for
    assert "line 3: not an external_userid: 'wm Bob' must be non-empty" in result.stdout
    assert "line 4: no value in column 'external_userid'" in result.stdout
    assert "1 found, 0 invalid, 0 unprocessed, 2 lines with no usable id" in result.stdout
    assert [body["external_userid_list"] for body in api.sent(BATCHGET)] == [["wmAlice"]]
    rows = failures.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "external_userid,outcome,errcode,reason"
    assert rows[1].startswith("wm Bob,skipped,,line 3: ")
    assert rows[2] == "\",no id\",skipped,,line 4: no value in column 'external_userid'"
    assert len(rows) == 3


def test_customers_get_from_a_file_with_no_usable_line_says_each_and_asks_nothing(
    api: Api,
) -> None:
    result = api.run("wecom", "customers", "get", "--file", "-", stdin="wm Bob\nwm Carol\n")
    assert result.exit_code == 1
    assert "line 1: not an external_userid: 'wm Bob'" in result.stdout
    assert "0 found, 0 invalid, 0 unprocessed, 2 lines with no usable id" in result.stdout
    assert api.sent(BATCHGET) == []


def test_customers_get_with_a_wrong_secret_is_exit_2(api: Api) -> None:
    result = CliRunner().invoke(
        main,
        ["wecom", "customers", "get", "wmAlice", "--base-url", api.url],
        env={**api.env, "WECOM_SECRET": "not-the-secret-0123"},
    )
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "credentials refused: errcode=40001" in errors[0]
    assert "not-the-secret-0123" not in result.output


# -- messages ---------------------------------------------------------------------------------

SEND = "/cgi-bin/kf/send_msg"


def test_messages_send_prints_the_msgid(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_says(open_kfid, "wmAlice")
    text = api.run("wecom", "messages", "send", *kfid(api), "--to", "wmAlice", "--text", "您好")
    assert text.exit_code == 0, text.output
    msgid = text.stdout.strip()
    assert len(msgid) == 32
    assert api.sent(SEND) == [{"touser": "wmAlice", "open_kfid": open_kfid, "msgid": msgid,
                               "msgtype": "text", "text": {"content": "您好"}}]  # fmt: skip
    assert [m.msgid for m in fake.sent_messages(open_kfid, "wmAlice")] == [msgid]
    again = api.run("wecom", "messages", "send", *kfid(api), "--to", "wmAlice", "--text", "再见",
                    "--msgid", "order-42", "--json")  # fmt: skip
    data = json.loads(again.stdout)
    assert data == {"ok": True, "open_kfid": open_kfid, "external_userid": "wmAlice",
                    "msgid": "order-42"}  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [("--text", "字" * 683), ("--text", "hi", "--msgid", "not valid!"), ("--text", "")],
    ids=["text-too-long", "bad-msgid", "empty-text"],
)
def test_messages_send_bad_input_is_exit_2_before_any_request(
    api: Api, args: tuple[str, ...]
) -> None:
    result = api.run("wecom", "messages", "send", *kfid(api), "--to", "wmAlice", *args, "--json")
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["type"] in ("ValueError", "TypeError")
    assert api.requests() == []


def test_messages_send_refused_is_one_line_and_exit_1(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_says(open_kfid, "wmAlice")
    fake.set_session_state(open_kfid, "wmAlice", 3, "user0001")
    result = api.run("wecom", "messages", "send", *kfid(api), "--to", "wmAlice", "--text", "hi")
    assert result.exit_code == 1
    one_line(result, "errcode=95018", "rid=", f"path={SEND}")


def test_messages_send_that_may_have_arrived_prints_its_msgid(api: Api) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    fake.customer_says(open_kfid, "wmAlice")
    attempts: list[int] = []

    def lose_the_first_answer(path: str, body: Any) -> int | None:
        if path != SEND:
            return None
        attempts.append(1)
        return 502 if len(attempts) == 1 else None  # the retry is refused: msgid seen

    api.script(lose_the_first_answer)
    args = ["wecom", "messages", "send", *kfid(api), "--to", "wmAlice", "--text", "hi"]
    result = api.run(*args, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    msgid = error["msgid"]
    assert error["maybe_applied"] is True
    assert f"--msgid {msgid}" in error["advice"]
    one_line(result, f"msgid {msgid}", "maybe_applied=True", f"--msgid {msgid}")
    assert [m.msgid for m in fake.sent_messages(open_kfid)] == [msgid]  # one copy arrived
    again = api.run(*args, "--msgid", msgid)
    assert again.exit_code == 1  # WeChat refuses the msgid it has seen: still one copy
    assert [m.msgid for m in fake.sent_messages(open_kfid)] == [msgid]


# -- Official Account sessions ----------------------------------------------------------------


def test_oa_sessions_list_and_waiting(api: Api) -> None:
    fake, appid = api.box.fake, api.box.appid
    for openid in ("oAlice", "oBob", "oCarol"):
        fake.oa_customer_says(appid, openid)
    conversation = fake.official_accounts[appid].conversation
    conversation.sessions["oAlice"] = OaSession("oAlice", "support@gh_sandbox", T0)
    conversation.customers["oAlice"].waiting = False
    listed = api.run("oa", "sessions", "list", "support@gh_sandbox")
    assert listed.exit_code == 0, listed.output
    assert "oAlice" in listed.stdout
    data = json.loads(api.run("oa", "sessions", "list", "support@gh_sandbox", "--json").stdout)
    assert data == {
        "ok": True,
        "sessions": [{"kf_account": "support@gh_sandbox", "openid": "oAlice", "created_at": T0}],
        "count": 1,
    }
    waiting = api.run("oa", "sessions", "waiting")
    assert waiting.exit_code == 0, waiting.output
    seeded = list(api.box.oa_users)  # the sandbox's own waiting users, then ours
    assert waiting.stdout.startswith(f"{len(seeded) + 2} waiting")
    assert "oBob" in waiting.stdout
    data = json.loads(api.run("oa", "sessions", "waiting", "--json").stdout)
    assert (data["ok"], data["count"]) == (True, len(seeded) + 2)
    assert [case["openid"] for case in data["cases"]] == [*seeded, "oBob", "oCarol"]
    bad = api.run("oa", "sessions", "list", "nobody@gh_sandbox")
    assert bad.exit_code == 1
    one_line(bad, "errcode=65401", "rid=")


RECORDS = "/customservice/msgrecord/getmsglist"


def seed_records(api: Api) -> None:
    conversation = api.box.fake.official_accounts[api.box.appid].conversation
    for offset, opercode, text in ((3600, 2003, "在吗"), (30 * 3600, 2002, "在的\n请讲"),
                                   (50 * 3600, 2003, "谢谢")):  # fmt: skip
        conversation.record("oAlice", opercode, text, T0 + offset, "support@gh_sandbox")


@pytest.fixture
def shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine's time zone is Asia/Shanghai (UTC+8) for the test."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("shanghai")
def test_oa_sessions_records_reads_any_span_in_windows_and_prints_each(api: Api) -> None:
    seed_records(api)
    # Naive times are this machine's: 08:00 in Shanghai is T0.
    span = ["--since", "2024-05-01T08:00", "--until", "2024-05-03T12:00Z"]
    text = api.run("oa", "sessions", "records", *span)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["time", "opercode", "worker", "openid", "text"]
    assert lines[1].startswith("2024-05-01T09:00:00+08:00  2003 received  support@gh_sandbox")
    assert lines[2].endswith("在的↵请讲")
    assert "3 records between 2024-05-01T08:00:00+08:00 and 2024-05-03T20:00:00+08:00" in lines[4]
    windows = [(body["starttime"], body["endtime"]) for body in api.sent(RECORDS)]
    assert windows == [(T0, T0 + 86400), (T0 + 86400, T0 + 172800), (T0 + 172800, T0 + 216000)]
    data = json.loads(api.run("oa", "sessions", "records", *span, "--json").stdout)
    assert (data["ok"], data["count"]) == (True, 3)
    assert [r["text"] for r in data["records"]] == ["在吗", "在的\n请讲", "谢谢"]
    assert data["records"][0] == {"openid": "oAlice", "opercode": 2003, "text": "在吗",
                                  "time": T0 + 3600, "worker": "support@gh_sandbox"}  # fmt: skip


def test_oa_sessions_records_failing_midway_still_prints_one_document(api: Api) -> None:
    seed_records(api)
    api.script(lambda path, body: _error(65416, "invalid parameter")
               if path == RECORDS and body["starttime"] > T0 else None)  # fmt: skip
    span = ["--since", "2024-05-01T00:00Z", "--until", "2024-05-03T00:00Z"]
    result = api.run("oa", "sessions", "records", *span, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["ok"], data["count"], data["error"]["errcode"]) == (False, 1, 65416)
    assert data["records"][0]["text"] == "在吗"
    one_line(result, "errcode=65416", "rid=0a1b2c3d-scripted")
    text = api.run("oa", "sessions", "records", *span)
    assert text.exit_code == 1
    assert "在吗" in text.stdout
    one_line(text, "errcode=65416")


@pytest.mark.parametrize(
    "span",
    [("--since", "2024-05-02", "--until", "2024-05-01"), ("--since", "yesterday")],
    ids=["backwards", "not-iso"],
)
def test_oa_sessions_records_bad_span_is_exit_2_before_any_request(
    api: Api, span: tuple[str, ...]
) -> None:
    result = api.run("oa", "sessions", "records", *span, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["ok"] is False
    assert api.requests() == []


def test_ctrl_c_in_a_stream_of_records_closes_the_one_document(api: Api, tmp_path: Path) -> None:
    seed_records(api)
    release = threading.Event()

    def hold_the_second_window(path: str, body: Any) -> Any:
        return held(release) if path == RECORDS and body["starttime"] > T0 else None

    api.script(hold_the_second_window)
    command = [sys.executable, "-m", "wechat_kf", "oa", "sessions", "records", "--json",
               "--since", "2024-05-01T00:00Z", "--until", "2024-05-03T00:00Z",
               "--base-url", api.url]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **api.env}, cwd=tmp_path)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len([p for p, b in api.seen if p == RECORDS]) < 2:
            assert time.monotonic() < deadline, "the second window was never asked for"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        release.set()
        process.kill()
    assert process.returncode == 130, stderr
    data = json.loads(stdout)
    assert (data["ok"], data["interrupted"], data["count"]) == (False, True, 1)
    assert data["records"][0]["text"] == "在吗"
    assert api.box.oa_secret not in stdout + stderr


def test_ctrl_c_in_customers_get_reports_what_was_read_and_the_rest(
    api: Api, tmp_path: Path
) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    ids = [f"wm{i:04d}" for i in range(300)]
    for external_userid in ids:
        fake.customer_says(open_kfid, external_userid)
    release = threading.Event()
    api.script(lambda path, body: held(release) if path == BATCHGET and "wm0200" in
               body["external_userid_list"] else None)  # fmt: skip
    (tmp_path / "ids.txt").write_text("\n".join(ids), encoding="utf-8")
    command = [sys.executable, "-m", "wechat_kf", "wecom", "customers", "get", "--json",
               "--file", "ids.txt", "--base-url", api.url]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **api.env}, cwd=tmp_path)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len(api.box.fake.calls_to(BATCHGET)) < 2 or len(api.seen) < 4:
            assert time.monotonic() < deadline, "the requests were never sent"
            time.sleep(0.02)
        time.sleep(0.2)  # the two answers reach the command; the third is held
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        release.set()
        process.kill()
    assert process.returncode == 130, stderr
    data = json.loads(stdout)
    assert (data["ok"], data["interrupted"]) == (False, True)
    assert [c["external_userid"] for c in data["customers"]] == ids[:200]
    assert data["unprocessed_external_userids"] == ids[200:]
