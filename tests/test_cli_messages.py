"""The command's message loop: ``wecom messages tail`` (the SDK's Inbox over a cursor file, text
and JSON Lines, Ctrl-C, rate limits, a closed stdout), ``fake-server`` pushing its callbacks to a
URL and making customers write, and the tail following such a server. A tail never ends by
itself, so it runs as a subprocess read line by line and is stopped with SIGINT; every wait is
bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

import anyio
import attrs
import httpx
import pytest
from click.testing import CliRunner, Result

from tests._servers import free_port, serve, wait_for_port
from wechat_kf import WeComClient
from wechat_kf.callbacks import CallbackCrypto, KfMsgOrEvent
from wechat_kf.cli import main, wecom_messages
from wechat_kf.cli.tables import message_line
from wechat_kf.kf_messages import parse_message
from wechat_kf.testing import Sandbox, sandbox

SYNC = "/cgi-bin/kf/sync_msg"
CALLBACK_TOKEN = "cbToken42"
CALLBACK_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SANDBOX_TEXTS = ["你好，我想查一下订单", "在吗", "我要退货，请转人工"]


class Switch:
    """The ASGI app a module-wide loopback server serves: the current test's fake."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Switch, str]]:
    switch = Switch()
    with serve(switch) as url:
        yield switch, url


@attrs.define
class Api:
    """A fresh sandbox behind the loopback server (pulls without a token unlimited, unless a
    test says otherwise), and the command run against it."""

    box: Sandbox
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {"WECOM_CORPID": self.box.corpid, "WECOM_SECRET": self.box.wecom_secret}

    def secrets(self) -> list[str]:
        return [self.box.wecom_secret, self.box.oa_secret, *self.box.fake.issued_tokens()]

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(main, [*args, "--base-url", self.url], env=self.env)
        for secret in self.secrets():
            assert secret not in result.output
        assert "Traceback" not in result.output
        return result

    def tail(self, *args: str, cwd: Path, out_lines: int | None = None, **env: str) -> Running:
        command = [sys.executable, "-m", "wechat_kf", "wecom", "messages", "tail",
                   "--open-kfid", self.box.open_kfid, "--base-url", self.url, *args]  # fmt: skip
        return Running.start(command, {**self.env, **env}, cwd, out_lines)

    def pulls(self) -> int:
        return len(self.box.fake.calls_to(SYNC))


@pytest.fixture
def api(served: tuple[Switch, str]) -> Api:
    switch, url = served
    box = sandbox()
    box.fake.tokenless_pulls_per_minute = 100_000
    switch.app = box.fake.app
    return Api(box, url)


@attrs.define
class Running:
    """A command running as a subprocess, its stdout and stderr read line by line as they come
    (threads, so that neither pipe fills up)."""

    process: subprocess.Popen[str]
    out: list[str] = attrs.Factory(list)
    err: list[str] = attrs.Factory(list)
    readers: list[threading.Thread] = attrs.Factory(list)

    @classmethod
    def start(
        cls, command: list[str], env: dict[str, str], cwd: Path, out_lines: int | None = None
    ) -> Running:
        """Start ``command``; with ``out_lines``, stdout is read only that far (then left
        unread, for the test to close)."""
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONIOENCODING": "utf-8", **env},
            cwd=cwd,
        )
        running = cls(process)
        assert process.stdout is not None
        assert process.stderr is not None
        for stream, lines, limit in (
            (process.stdout, running.out, out_lines),
            (process.stderr, running.err, None),
        ):
            reader = threading.Thread(target=_read, args=(stream, lines, limit), daemon=True)
            reader.start()
            running.readers.append(reader)
        return running

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"it stopped before {what}: {self.err}"
            assert time.monotonic() < deadline, f"{what} never came: {self.out} {self.err}"
            time.sleep(0.02)

    def interrupt(self) -> int:
        """SIGINT, as Ctrl-C sends; its exit code once it stopped and its output is read."""
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> int:
        code = self.process.wait(timeout=20)
        for reader in self.readers:
            reader.join(timeout=10)
        self.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=10)
        self.close()

    def close(self) -> None:
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _read(stream: IO[str], lines: list[str], limit: int | None) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))
        if limit is not None and len(lines) >= limit:
            return


@pytest.fixture
def stopped() -> Iterator[list[Running]]:
    """Whatever a test started is killed at its end, whatever happened."""
    started: list[Running] = []
    yield started
    for running in started:
        running.kill()


def texts(lines: list[str]) -> list[str]:
    """The text column of tail's message lines."""
    return [line.split("  ")[-1].strip() for line in lines]


# -- tail: text ---------------------------------------------------------------------------------


def test_tail_from_start_prints_the_backlog_then_each_new_message_and_ctrl_c_exits_130(
    api: Api, tmp_path: Path, stopped: list[Running]
) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    tail = api.tail("--from-start", "--interval", "0.1", cwd=tmp_path)
    stopped.append(tail)
    tail.wait_for(lambda: len(tail.out) >= 5, "the backlog")
    assert tail.out[0].split() == ["time", "origin", "external_userid", "type", "text"]
    assert tail.out[1].split()[1:4] == ["event", api.box.customers[0], "enter_session"]
    assert tail.out[1].endswith("scene=sandbox")
    assert texts(tail.out[2:5]) == SANDBOX_TEXTS
    assert tail.out[2].split()[1:4] == ["customer", api.box.customers[0], "text"]
    fake.customer_says(open_kfid, "wmNEWCUSTOMER", "第一行\n第二行")
    fake.servicer_says(open_kfid, "wmNEWCUSTOMER", "user0001", "您好")
    tail.wait_for(lambda: len(tail.out) >= 7, "the new messages")
    assert tail.out[5].split()[1:4] == ["customer", "wmNEWCUSTOMER", "text"]
    assert tail.out[5].endswith("第一行↵第二行")
    assert tail.out[6].split()[1] == "servicer"
    assert tail.out[6].endswith("user0001: 您好")
    assert tail.interrupt() == 130
    assert tail.out[-1] == "6 messages before the interrupt"
    assert tail.err[0].startswith(f"tailing {open_kfid} from the start")
    assert tail.err[-1] == "interrupted"
    output = "\n".join(tail.out + tail.err)
    assert "Traceback" not in output
    for secret in api.secrets():
        assert secret not in output


def test_tail_from_now_skips_the_backlog(api: Api, tmp_path: Path, stopped: list[Running]) -> None:
    tail = api.tail("--interval", "0.1", cwd=tmp_path)  # --from-now is the default
    stopped.append(tail)
    tail.wait_for(lambda: api.pulls() >= 1, "the first pull")
    api.box.fake.customer_says(api.box.open_kfid, "wmNEWCUSTOMER", "刚刚")
    tail.wait_for(lambda: len(tail.out) >= 2, "the new message")
    assert tail.interrupt() == 130
    assert texts(tail.out[1:2]) == ["刚刚"]
    assert tail.out[2] == "1 message before the interrupt"


_BASE = {"msgid": "m1", "open_kfid": "wkA", "external_userid": "wmC", "send_time": 1714521600,
         "origin": 3}  # fmt: skip


@pytest.mark.parametrize(
    ("item", "kind", "text"),
    [
        ({"msgtype": "image", "image": {"media_id": "MEDIA1"}}, "image", "media_id=MEDIA1"),
        ({"msgtype": "location", "location": {"latitude": 23.1, "longitude": 113.3,
          "name": "广州塔", "address": "阅江西路"}}, "location", "广州塔 阅江西路 (23.1, 113.3)"),
        ({"msgtype": "link", "link": {"title": "订单", "url": "https://x.test/o"}}, "link",
         "订单 https://x.test/o"),
        ({"msgtype": "business_card", "business_card": {"userid": "user0001"}}, "business_card",
         "userid=user0001"),
        ({"msgtype": "text", "text": {"content": "a\x1b[31mb"}}, "text", "a?[31mb"),
        ({"msgtype": "hologram", "hologram": {}}, "hologram", "(not read: "),
        ({"msgtype": "event", "origin": 4, "event": {"event_type": "msg_send_fail",
          "open_kfid": "wkA", "external_userid": "wmC", "fail_msgid": "F1", "fail_type": 6}},
         "msg_send_fail", "fail_msgid=F1 fail_type=6"),
        ({"msgtype": "event", "origin": 4, "event": {"event_type": "session_status_change",
          "open_kfid": "wkA", "external_userid": "wmC", "change_type": 2,
          "new_servicer_userid": "user0002"}}, "session_status_change",
         "change_type=2 - -> user0002"),
        ({"msgtype": "event", "origin": 4, "event": {"event_type": "user_recall_msg",
          "open_kfid": "wkA", "external_userid": "wmC", "recall_msgid": "R1"}},
         "user_recall_msg", "recall_msgid=R1"),
    ],
    ids=["image", "location", "link", "card", "control-chars", "unknown", "send-fail",
         "session-change", "recall"],
)  # fmt: skip
def test_each_kind_of_message_is_one_line_with_its_summary(
    item: dict[str, Any], kind: str, text: str
) -> None:
    line = message_line(parse_message({**_BASE, **item}))
    assert "\n" not in line
    assert "\x1b" not in line
    cells = line.split()
    assert cells[2:4] == ["wmC", kind]
    assert line.split(f"{kind}  ", 1)[1].strip().startswith(text)


# -- tail: JSON Lines ---------------------------------------------------------------------------


def test_tail_json_on_the_sandbox_is_one_object_per_line_closed_on_ctrl_c(
    tmp_path: Path, stopped: list[Running]
) -> None:
    box = sandbox()
    command = [sys.executable, "-m", "wechat_kf", "wecom", "messages", "tail", "--sandbox",
               "--open-kfid", box.open_kfid, "--from-start", "--json",
               "--interval", "0.2"]  # fmt: skip
    tail = Running.start(command, {}, tmp_path)
    stopped.append(tail)
    tail.wait_for(lambda: len(tail.out) >= 4, "the sandbox's messages")
    assert tail.interrupt() == 130
    lines = [json.loads(line) for line in tail.out]  # every line is one JSON document
    messages, last = lines[:-1], lines[-1]
    assert [m["msgtype"] for m in messages] == ["event", "text", "text", "text"]
    assert [m["content"] for m in messages[1:]] == SANDBOX_TEXTS
    assert messages[1]["external_userid"] == box.customers[0]
    assert messages[1]["origin"] == 3
    assert isinstance(messages[1]["send_time"], int)
    interrupted = {"type": "Interrupted", "message": "interrupted by Ctrl-C"}
    assert last == {"ok": False, "count": 4, "interrupted": True, "error": interrupted}
    assert box.wecom_secret not in "\n".join(tail.out + tail.err)


def test_tail_json_failure_is_a_last_line_with_the_error(api: Api) -> None:
    result = api.run("wecom", "messages", "tail", "--open-kfid", "wkUNKNOWN", "--json")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    data = json.loads(line)
    assert (data["ok"], data["count"], data["error"]["errcode"]) == (False, 0, 95004)
    assert data["error"]["rid"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert "errcode=95004" in errors[0]
    assert f"path={SYNC}" in errors[0]
    text = api.run("wecom", "messages", "tail", "--open-kfid", "wkUNKNOWN")
    assert text.exit_code == 1
    assert text.stdout == ""
    assert "errcode=95004" in text.stderr.strip().splitlines()[-1]


def test_tail_with_a_wrong_secret_is_exit_2(api: Api) -> None:
    result = CliRunner().invoke(
        main,
        ["wecom", "messages", "tail", "--open-kfid", api.box.open_kfid, "--json",
         "--base-url", api.url],
        env={**api.env, "WECOM_SECRET": "not-the-secret-0123"},
    )  # fmt: skip
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert (data["ok"], data["error"]["errcode"]) == (False, 40001)
    assert "credentials refused" in result.stderr
    assert "not-the-secret-0123" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from-start", "--from-now"), "not both"),
        (("--interval", "0"), "--interval"),
        (("--cursor-file", "other.json"), "follows open_kfid 'wkOTHER'"),
        (("--cursor-file", "notes.txt"), "is not a cursor file"),
        (("--cursor-file", "missing/dir/cursor.json"), "cannot write"),
        (("--bogus",), "No such option"),
    ],
    ids=[
        "both-starts",
        "zero-interval",
        "another-account",
        "not-a-cursor-file",
        "no-dir",
        "unknown-option",
    ],
)
def test_tail_usage_errors_are_exit_2_before_any_request(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.json").write_text(
        json.dumps({"kind": "wechat-kf tail cursor", "open_kfid": "wkOTHER", "cursor": None}),
        encoding="utf-8",
    )
    (tmp_path / "notes.txt").write_text("shopping: milk\n", encoding="utf-8")
    before = len(api.box.fake.calls)
    for flags in ([], ["--json"]):
        result = api.run("wecom", "messages", "tail", "--open-kfid", api.box.open_kfid, *args,
                         *flags)  # fmt: skip
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        if flags:
            (line,) = result.stdout.splitlines()  # one line, as every line of tail --json
            assert json.loads(line)["ok"] is False
    assert len(api.box.fake.calls) == before
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "shopping: milk\n"


# -- tail: the cursor file ----------------------------------------------------------------------


def backlog_msgids(box: Sandbox) -> list[str]:
    """The msgids of the sandbox account's messages, in order (read with a pull of our own)."""

    async def pull() -> list[str]:
        with anyio.fail_after(20):
            async with (
                httpx.AsyncClient(transport=box.fake.transport) as http,
                WeComClient(box.corpid, box.wecom_secret, http_client=http) as wc,
            ):
                page = await wc.messages.sync(box.open_kfid)
        return [message.msgid for message in page.messages]

    return anyio.run(pull)


def test_a_rerun_with_the_cursor_file_goes_on_where_the_last_stopped(
    api: Api, tmp_path: Path, stopped: list[Running]
) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    first = api.tail("--from-start", "--cursor-file", "cursor.json", "--json", "--interval",
                     "0.1", cwd=tmp_path)  # fmt: skip
    stopped.append(first)
    first.wait_for(lambda: len(first.out) >= 4, "the backlog")
    assert first.interrupt() == 130
    saved = json.loads((tmp_path / "cursor.json").read_text(encoding="utf-8"))
    assert (saved["open_kfid"], saved["printed"]) == (open_kfid, [])
    assert saved["cursor"]
    assert oct((tmp_path / "cursor.json").stat().st_mode & 0o777) == "0o600"
    fake.customer_says(open_kfid, "wmNEWCUSTOMER", "我又来了")
    # --from-start again: the file's cursor wins, nothing of the backlog is printed twice.
    second = api.tail("--from-start", "--cursor-file", "cursor.json", "--json", "--interval",
                      "0.1", cwd=tmp_path)  # fmt: skip
    stopped.append(second)
    second.wait_for(lambda: len(second.out) >= 1, "the new message")
    time.sleep(0.3)  # a few more pulls: nothing else comes
    assert second.interrupt() == 130
    lines = [json.loads(line) for line in second.out]
    assert [m.get("content") for m in lines[:-1]] == ["我又来了"]
    assert lines[-1]["count"] == 1


def test_messages_printed_before_a_stop_midway_through_a_page_are_not_printed_again(
    api: Api, tmp_path: Path, stopped: list[Running]
) -> None:
    """What a run printed of a page whose cursor it never reached (stopped between two
    messages) is in the file too: the next run skips exactly those."""
    open_kfid = api.box.open_kfid
    msgids = backlog_msgids(api.box)
    (tmp_path / "cursor.json").write_text(
        json.dumps({"kind": "wechat-kf tail cursor", "open_kfid": open_kfid, "cursor": None,
                    "printed": msgids[:2]}),
        encoding="utf-8",
    )  # fmt: skip
    tail = api.tail("--from-start", "--cursor-file", "cursor.json", "--interval", "0.1",
                    cwd=tmp_path)  # fmt: skip
    stopped.append(tail)
    tail.wait_for(lambda: len(tail.out) >= 3, "the rest of the page")
    tail.wait_for(
        lambda: json.loads((tmp_path / "cursor.json").read_text(encoding="utf-8"))["cursor"],
        "the page's cursor in the file",
    )
    assert tail.interrupt() == 130
    assert texts(tail.out[1:3]) == SANDBOX_TEXTS[1:]
    assert json.loads((tmp_path / "cursor.json").read_text(encoding="utf-8"))["printed"] == []


def test_a_tail_whose_reader_went_away_stops_and_keeps_the_unprinted_message(
    api: Api, tmp_path: Path, stopped: list[Running]
) -> None:
    fake, open_kfid = api.box.fake, api.box.open_kfid
    tail = api.tail("--from-start", "--cursor-file", "cursor.json", "--json", "--interval",
                    "0.1", cwd=tmp_path, out_lines=4)  # fmt: skip
    stopped.append(tail)
    tail.wait_for(lambda: len(tail.out) >= 4, "the backlog")
    tail.wait_for(
        lambda: json.loads((tmp_path / "cursor.json").read_text(encoding="utf-8"))["cursor"],
        "the backlog's cursor",
    )
    saved = (tmp_path / "cursor.json").read_text(encoding="utf-8")
    # The reader quits, as `| head -4` does.
    tail.readers[0].join(timeout=10)
    assert tail.process.stdout is not None
    tail.process.stdout.close()
    fake.customer_says(open_kfid, "wmNEWCUSTOMER", "没人看了")
    assert tail.wait() == 0  # as any command whose reader went away: quietly
    assert "Traceback" not in "\n".join(tail.err)
    assert (tmp_path / "cursor.json").read_text(encoding="utf-8") == saved
    # The next run prints the message the last one could not.
    again = api.tail("--cursor-file", "cursor.json", "--json", "--interval", "0.1", cwd=tmp_path)
    stopped.append(again)
    again.wait_for(lambda: len(again.out) >= 1, "the unprinted message")
    assert again.interrupt() == 130
    assert [json.loads(line).get("content") for line in again.out] == ["没人看了", None]


def test_a_message_that_cannot_be_printed_stops_the_tail_before_its_cursor_moves(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = wecom_messages.message_line

    def no_text(message: Any) -> str:
        if getattr(message, "msgtype", None) == "text":
            raise ValueError("the terminal has no glyph for it")
        return shown(message)

    monkeypatch.setattr(wecom_messages, "message_line", no_text)
    cursor = tmp_path / "cursor.json"
    result = api.run("wecom", "messages", "tail", "--open-kfid", api.box.open_kfid,
                     "--from-start", "--cursor-file", str(cursor))  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].endswith("scene=sandbox")
    assert result.stderr.splitlines()[-1] == (
        "error: cannot print a message: ValueError: the terminal has no glyph for it"
    )
    saved = json.loads(cursor.read_text(encoding="utf-8"))
    assert saved["cursor"] is None  # the page's cursor never moved past the text
    assert saved["printed"] == backlog_msgids(api.box)[:1]


# -- tail: rate limits and a wrong host ---------------------------------------------------------


def test_tail_meeting_45009_waits_longer_and_goes_on(
    api: Api, tmp_path: Path, stopped: list[Running]
) -> None:
    fake = api.box.fake
    fake.tokenless_pulls_per_minute = 2
    tail = api.tail("--interval", "0.1", cwd=tmp_path)
    stopped.append(tail)
    tail.wait_for(lambda: any("45009" in line for line in tail.err), "the rate limit")
    warning = next(line for line in tail.err if "45009" in line)
    assert warning.startswith("warning: errcode=45009")
    assert "pulling again in 0.2 s" in warning
    fake.tokenless_pulls_per_minute = 100_000
    fake.customer_says(api.box.open_kfid, "wmNEWCUSTOMER", "限流之后")
    tail.wait_for(lambda: len(tail.out) >= 2, "the message after the rate limit")
    assert tail.interrupt() == 130
    assert texts(tail.out[1:2]) == ["限流之后"]


def test_tail_against_a_host_that_does_not_answer_fails_at_once() -> None:
    box = sandbox()
    result = CliRunner().invoke(
        main,
        ["wecom", "messages", "tail", "--open-kfid", box.open_kfid, "--json",
         "--base-url", f"http://127.0.0.1:{free_port()}"],
        env={"WECOM_CORPID": box.corpid, "WECOM_SECRET": box.wecom_secret},
    )  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["ok"], data["error"]["type"]) == (False, "TransportError")


# -- fake-server: callbacks and customers -------------------------------------------------------


@attrs.define
class Receiver:
    """A callback route: decrypts each push as an app would, answers 200."""

    crypto: CallbackCrypto
    events: list[Any] = attrs.Factory(list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.events.append(
            self.crypto.decrypt(
                body,
                msg_signature=query["msg_signature"],
                timestamp=query["timestamp"],
                nonce=query["nonce"],
            )
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"success"})


def fake_server(*args: str, cwd: Path) -> tuple[Running, str]:
    port = free_port()
    command = [sys.executable, "-m", "wechat_kf", "fake-server", "--port", str(port), *args]
    running = Running.start(command, {}, cwd)
    wait_for_port(port, running.process, "fake-server")
    return running, f"http://127.0.0.1:{port}"


def test_fake_server_pushes_encrypted_callbacks_of_customers_who_write(
    tmp_path: Path, stopped: list[Running]
) -> None:
    box = sandbox()
    receiver = Receiver(CallbackCrypto(CALLBACK_TOKEN, CALLBACK_KEY, box.corpid))
    with serve(receiver) as receiver_url:
        # The token and key from the environment, as the help recommends: not in ps.
        server, base_url = _server_with_env_keys(receiver_url, tmp_path)
        stopped.append(server)
        server.wait_for(lambda: len(receiver.events) >= 2, "two pushes")
        event = receiver.events[0]
        assert isinstance(event, KfMsgOrEvent)
        assert (event.corpid, event.open_kfid) == (box.corpid, box.open_kfid)

        async def pull_with_the_token() -> list[str]:
            token = receiver.events[-1].token
            with anyio.fail_after(20):
                async with WeComClient(box.corpid, box.wecom_secret, base_url=base_url) as wc:
                    page = await wc.messages.sync(box.open_kfid, token=token)
            return [getattr(m, "content", "") for m in page.messages]

        contents = anyio.run(pull_with_the_token)
        assert "请问我的订单发货了吗？ (#1)" in contents
        assert "好的，谢谢 (#2)" in contents
        assert server.interrupt() == 130
    banner = "\n".join(server.out)
    assert f"callbacks     every kf_msg_or_event of corp {box.corpid} is POSTed to " in banner
    assert f"{receiver_url}/wechat/callback" in banner
    assert "one every 0.2 s" in banner
    assert CALLBACK_TOKEN not in banner + "\n".join(server.err)
    assert CALLBACK_KEY not in banner + "\n".join(server.err)
    assert server.err[-1] == "interrupted"


def _server_with_env_keys(receiver_url: str, cwd: Path) -> tuple[Running, str]:
    port = free_port()
    command = [sys.executable, "-m", "wechat_kf", "fake-server", "--port", str(port),
               "--callback-url", f"{receiver_url}/wechat/callback",
               "--customer-every", "0.2"]  # fmt: skip
    env = {"WECHAT_KF_CALLBACK_TOKEN": CALLBACK_TOKEN, "WECHAT_KF_CALLBACK_AES_KEY": CALLBACK_KEY}
    running = Running.start(command, env, cwd)
    wait_for_port(port, running.process, "fake-server")
    return running, f"http://127.0.0.1:{port}"


def test_fake_server_reports_a_callback_that_does_not_answer(
    tmp_path: Path, stopped: list[Running]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/callback"
    server, _ = fake_server("--callback-url", nowhere, "--callback-token", CALLBACK_TOKEN,
                           "--callback-aes-key", CALLBACK_KEY, "--customer-every", "0.1",
                           cwd=tmp_path)  # fmt: skip
    stopped.append(server)
    server.wait_for(lambda: any("attempt 2" in line for line in server.err), "a failed push")
    assert server.interrupt() == 130
    failed = [line for line in server.err if line.startswith("push failed:")]
    assert failed[0].startswith(f"push failed: kf_msg_or_event to {nowhere}, attempt 1: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--callback-url", "http://127.0.0.1:9/cb"), "needs --callback-token"),
        (("--callback-token", CALLBACK_TOKEN), "--callback-token goes with --callback-url"),
        (("--callback-url", "ftp://host/cb", "--callback-token", CALLBACK_TOKEN,
          "--callback-aes-key", CALLBACK_KEY), "not an http:// or https:// URL"),
        (("--callback-url", "http://127.0.0.1:9/cb", "--callback-token", CALLBACK_TOKEN,
          "--callback-aes-key", "short"), "43 characters"),
        (("--customer-every", "0"), "--customer-every"),
    ],
    ids=["no-token", "token-alone", "bad-url", "bad-key", "zero-period"],
)  # fmt: skip
def test_fake_server_bad_callback_options_are_exit_2_before_listening(
    args: tuple[str, ...], message: str
) -> None:
    env = {"WECHAT_KF_CALLBACK_TOKEN": "", "WECHAT_KF_CALLBACK_AES_KEY": ""}
    result = CliRunner().invoke(main, ["fake-server", "--port", "0", *args], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""  # no banner
    assert message in result.stderr
    assert CALLBACK_KEY not in result.output


def test_tail_follows_a_fake_server_whose_customers_write(
    tmp_path: Path, stopped: list[Running]
) -> None:
    box = sandbox()
    server, base_url = fake_server("--customer-every", "0.3", cwd=tmp_path)
    stopped.append(server)
    env = {"WECOM_CORPID": box.corpid, "WECOM_SECRET": box.wecom_secret}
    command = [sys.executable, "-m", "wechat_kf", "wecom", "messages", "tail", "--open-kfid",
               box.open_kfid, "--base-url", base_url, "--interval", "1"]  # fmt: skip
    tail = Running.start(command, env, tmp_path)
    stopped.append(tail)
    tail.wait_for(lambda: len(tail.out) >= 3, "two customers' messages")
    assert tail.interrupt() == 130
    assert server.interrupt() == 130
    said = texts(tail.out[1:-1])
    assert said[0].endswith(")")  # numbered by the server: the tail starts from now
    assert [line.split()[2] for line in tail.out[1:3]] != [box.customers[0]] * 2  # in turn
