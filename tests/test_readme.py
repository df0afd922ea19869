"""The README stays true: every Python block in it runs as written, against FakeWeChat (each
client it makes is routed to the fake, with the fake's credentials in the environment)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from wechat_kf import clients, platforms
from wechat_kf.testing import Sandbox, sandbox

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.anyio


def python_blocks() -> list[tuple[str, str]]:
    """Every ```python block of the README with the ``##`` heading it is under."""
    blocks, heading, inside, lines = [], "", False, []
    for line in README.read_text(encoding="utf-8").splitlines():
        if inside and line == "```":
            blocks.append((heading, "\n".join(lines) + "\n"))
            inside, lines = False, []
        elif inside:
            lines.append(line)
        elif line.startswith("## "):
            heading = line
        elif line == "```python":
            inside = True
    return blocks


def blocks_under(heading: str) -> list[str]:
    return [code for under, code in python_blocks() if under == heading]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sandbox:
    """The sandbox as "WeChat": its credentials in the environment the README reads, every
    client routed to it, and a working directory holding face.jpg."""
    box = sandbox()
    env = {
        "WECHAT_APPID": box.appid,
        "WECHAT_SECRET": box.oa_secret,
        "WECHAT_ID": box.wechat_id,
        "WECOM_CORPID": box.corpid,
        "WECOM_SECRET": box.wecom_secret,
        "WECOM_OPEN_KFID": box.open_kfid,
        "AUTHORIZER_ACCESS_TOKEN": box.fake.issue("oa", box.appid),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    real = clients.Connection

    def routed(**options: Any) -> Any:
        if options.get("http_client") is None:
            options["http_client"] = httpx.AsyncClient(transport=box.fake.transport)
        return real(**options)

    # Clients and platforms alike make their connection with this one class.
    monkeypatch.setattr(clients, "Connection", routed)
    monkeypatch.setattr(platforms, "Connection", routed)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "face.jpg").write_bytes(b"\xff\xd8\xff\xe0 a tiny jpeg")
    return box


def run_as_script(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_every_python_block_of_the_readme_is_run_by_a_test_here() -> None:
    assert [heading for heading, _ in python_blocks()] == [
        "## Official Account customer-service accounts",
        "## WeCom servicers, in batches",
        "## Keeping servicers in sync, and knowing each id's fate",
        "## WeCom 微信客服: accounts, media, sessions, customers and messages",
        "## Official Account sessions and messages",
        "## Timeouts and cancellation",
        "## Tokens",
        "## Third-party platforms",
        "## Receiving WeChat's callbacks",
        "## Receiving and answering messages",
        "## Running many workers",
        "## Using it from FastAPI, aiohttp and workers",
        "## Using it from FastAPI, aiohttp and workers",
        "## Using it from FastAPI, aiohttp and workers",
        "## Observability: hooks, traces and metrics",
        "## Testing your code with FakeWeChat",
        "## Testing your code with FakeWeChat",
        "## Testing your code with FakeWeChat",
        "## Testing your code with FakeWeChat",
    ]


def test_readme_official_account_block_runs_every_call(world: Sandbox) -> None:
    (code,) = blocks_under("## Official Account customer-service accounts")
    run_as_script(code)
    paths = [c.path for c in world.fake.calls if c.status == 200 and not c.errcode]
    for path in ("add", "update", "inviteworker", "uploadheadimg", "del"):
        assert f"/customservice/kfaccount/{path}" in paths
    assert f"alice@{world.wechat_id}" not in world.fake.kf_accounts(world.appid)


def test_readme_wecom_block_adds_reports_and_deletes(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    world.fake.add_members(world.corpid, ["zhangsan", "lisi"])
    (code,) = blocks_under("## WeCom servicers, in batches")
    run_as_script(code)
    out = capsys.readouterr().out
    assert "wangwu 60111" in out  # not a member: reported, not raised
    added = world.fake.calls_to("/cgi-bin/kf/servicer/add")
    assert added[0].json["userid_list"] == ["zhangsan", "lisi", "wangwu"]
    assert world.fake.servicers(world.open_kfid) == {}
    assert "0 servicers left" in out


def test_readme_wecom_customer_service_block_answers_the_customers_who_wrote(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world.fake
    fake.customer_enters(world.open_kfid, "wmALICE", scene="web01")
    fake.customer_says(world.open_kfid, "wmALICE", "在吗")
    fake.customer_says(world.open_kfid, "wmBOB", "退货")
    fake.set_session_state(world.open_kfid, "wmBOB", 3, servicer_userid="user0001")
    (code,) = blocks_under("## WeCom 微信客服: accounts, media, sessions, customers and messages")
    run_as_script(code)
    out = capsys.readouterr().out
    assert "share: https://" in out
    sent = {(m.touser, m.content["content"]) for m in fake.sent_messages(world.open_kfid)}
    # Alice is answered; Bob is with a human servicer, so the API leaves him alone (as it does
    # the sandbox's own customer who is).
    assert ("wmALICE", "收到: 在吗") in sent
    assert {to for to, _ in sent} == {"wmALICE", *world.customers[:2]}
    assert "wmALICE" in out
    assert "wmBOB" in out
    assert [a.open_kfid for a in fake.corps[world.corpid].kf_accounts.values()] == [world.open_kfid]


def test_readme_official_account_sessions_block_serves_the_waiting_user(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world.fake
    kf = f"support@{world.wechat_id}"
    fake.set_online(world.appid, kf)
    fake.oa_customer_says(world.appid, "oWAITING1", "有人吗")
    (code,) = blocks_under("## Official Account sessions and messages")
    run_as_script(code)
    out = capsys.readouterr().out
    waiting = [*world.oa_users, "oWAITING1"]  # the sandbox's own waiting users, then ours
    assert str(waiting) in out
    assert "oWAITING1 2003 有人吗" in out
    assert "oWAITING1 2002 您好，我是客服小王" in out
    assert [m.touser for m in fake.oa_sent_messages(world.appid)] == waiting


async def test_readme_third_party_block_builds_working_providers(world: Sandbox) -> None:
    (code,) = blocks_under("## Tokens")
    namespace = run_as_script(code)
    async with namespace["oa"] as oa:
        assert len(await oa.kf_accounts.list()) == 2
    provider = namespace["EnvironmentProvider"]()
    token = await provider.get_token()
    assert token == world.fake.issued_tokens()[0]
    await provider.invalidate(token)


def test_readme_redis_block_shares_tokens_through_redis(
    world: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._redis import redis_server

    (code,) = blocks_under("## Running many workers")
    with redis_server() as url:
        monkeypatch.setenv("REDIS_URL", url)

        async def main() -> list[bytes]:
            namespace = run_as_script(code)
            async with namespace["oa"] as oa:
                await oa.kf_accounts.list()
            redis = namespace["store"]._redis
            keys = await redis.keys("wechat_kf:*")
            await redis.aclose()
            return sorted(keys)

        keys = asyncio.run(main())
    assert keys == [f"wechat_kf:token:oa:{world.appid}:stable".encode()]


def python_block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


async def test_readme_fake_wechat_example_passes() -> None:
    namespace: dict[str, Any] = {}
    exec(python_block_after("## Testing your code with FakeWeChat"), namespace)
    await namespace["test_onboarding_adds_every_member"]()


def test_readme_opens_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block == [
        "pip install -e '.[cli]' && wechat-kf demo",
        "pip install -e '.[test]' && python -m pytest",
    ]


async def test_readme_sync_example_finds_the_account_syncs_and_journals(tmp_path: Path) -> None:
    import json

    import httpx

    from wechat_kf import WeComClient
    from wechat_kf.testing import FakeWeChat

    namespace: dict[str, Any] = {}
    exec(python_block_after("## Keeping servicers in sync"), namespace)
    fake = FakeWeChat()
    app = fake.register_wecom_app()
    fake.add_members(app.corpid, [f"u{i}" for i in range(300)])
    fake.create_kf_account(app.corpid, "售前")
    open_kfid = fake.create_kf_account(app.corpid, "售后")
    fake.add_servicers(open_kfid, ["u0", "u1", "gone"])
    team = [f"u{i}" for i in range(1, 250)]
    journal = tmp_path / "journal.jsonl"
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(app.corpid, app.secret, http_client=http) as wc,
    ):
        found = await namespace["find_open_kfid"](wc, "售后")
        await namespace["sync_team"](wc, found, team, str(journal))
    assert found == open_kfid
    assert set(fake.servicers(open_kfid)) == set(team)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(u for action, u, ok in lines if action == "add" and ok) == sorted(team[1:])
    assert sorted(u for action, u, ok in lines if action == "delete" and ok) == ["gone", "u0"]


def test_readme_instant_retries_fixture_defines_a_fixture_from_public_names() -> None:
    namespace: dict[str, Any] = {}
    exec(python_block_after("- Instant retries:"), namespace)
    assert "_instant_retries" in namespace


async def test_readme_chosen_errcodes_example_passes() -> None:
    namespace: dict[str, Any] = {}
    exec(python_block_after("- Chosen errcodes:"), namespace)
    await namespace["test_a_quota_error_reaches_us_and_a_stopped_servicer_is_reported"]()


async def test_readme_sandbox_example_adds_ten_servicers() -> None:
    namespace: dict[str, Any] = {}
    exec(python_block_after("- The sandbox:"), namespace)
    assert await namespace["servicers_after_adding_ten"]() == 10


def post_to_readme_fastapi_app(world: Sandbox, *batches: list[str]) -> list[httpx.Response]:
    """The README's FastAPI app, opened with its lifespan: each batch POSTed in turn; between
    the first and the rest, every servicer request fails as a whole (a gateway's 502)."""
    code = blocks_under("## Using it from FastAPI, aiohttp and workers")[0]
    app = run_as_script(code)["app"]

    async def main() -> list[httpx.Response]:
        answers = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                for index, userids in enumerate(batches):
                    world.fake.faults.http_error_rate = 1.0 if index else 0.0
                    answers.append(await client.post(f"/servicers/{world.open_kfid}", json=userids))
        world.fake.faults.http_error_rate = 0.0
        return answers

    return asyncio.run(main())


def test_readme_fastapi_block_serves_its_route(world: Sandbox) -> None:
    (answer,) = post_to_readme_fastapi_app(world, ["user0001", "user0002"])
    assert answer.status_code == 200
    assert [item["errcode"] for item in answer.json()["items"]] == [0, 0]
    assert world.fake.servicers(world.open_kfid) == {"user0001": 0, "user0002": 0}


def test_readme_fastapi_block_reports_refused_ids_as_207(world: Sandbox) -> None:
    (answer,) = post_to_readme_fastapi_app(world, ["user0001", "ghost"])
    assert answer.status_code == 207
    assert [item["errcode"] for item in answer.json()["items"]] == [0, 60111]
    assert world.fake.servicers(world.open_kfid) == {"user0001": 0}


def test_readme_fastapi_block_answers_a_batch_error_with_its_partial_result(
    world: Sandbox,
) -> None:
    # The first batch fetches the token; then every request of the second fails as a whole.
    first, second = post_to_readme_fastapi_app(world, ["user0001"], ["user0002", "user0003"])
    assert first.status_code == 200
    assert second.status_code == 207  # not a 500: what was done, and what was not
    body = second.json()
    assert body["items"] == []
    assert body["unprocessed_userids"] == ["user0002", "user0003"]
    assert len(body["errors"]) == 1
    assert "502" in body["errors"][0]
    assert world.wecom_secret not in second.text


def test_readme_fastapi_and_aiohttp_blocks_honour_wechat_kf_base_url(
    world: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    seen: list[str] = []
    routed = clients.Connection

    def recording(**options: Any) -> Any:
        seen.append(options["base_url"])
        return routed(**options)

    monkeypatch.setattr(clients, "Connection", recording)
    post_to_readme_fastapi_app(world, ["user0001"])
    monkeypatch.setenv("WECHAT_KF_BASE_URL", "http://fake-wechat.internal:8765")
    monkeypatch.setenv("WECHAT_KF_ALLOW_INSECURE_HTTP", "1")
    post_to_readme_fastapi_app(world, ["user0002"])
    app = run_as_script(blocks_under("## Using it from FastAPI, aiohttp and workers")[1])["app"]

    async def aiohttp_app() -> int:
        async with TestClient(TestServer(app)) as client:
            return (await client.get(f"/servicers/{world.open_kfid}")).status

    assert asyncio.run(aiohttp_app()) == 200
    assert seen == [
        "https://qyapi.weixin.qq.com",
        "http://fake-wechat.internal:8765",
        "http://fake-wechat.internal:8765",
    ]


def test_readme_aiohttp_block_serves_its_route(world: Sandbox) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    world.fake.add_servicers(world.open_kfid, ["user0007"])
    code = blocks_under("## Using it from FastAPI, aiohttp and workers")[1]
    namespace = run_as_script(code)

    async def main() -> Any:
        async with TestClient(TestServer(namespace["app"])) as client:
            answer = await client.get(f"/servicers/{world.open_kfid}")
            return answer.status, await answer.json()

    status, body = asyncio.run(main())
    assert status == 200
    assert [item["userid"] for item in body] == ["user0007"]


def test_readme_worker_block_journals_and_resumes(world: Sandbox, tmp_path: Path) -> None:
    from wechat_kf import WeComClient

    code = blocks_under("## Using it from FastAPI, aiohttp and workers")[2]
    namespace = run_as_script(code)
    journal = tmp_path / "applied.txt"
    ids = ["user0001", "user0002", "ghost"]

    async def main() -> None:
        async with WeComClient(world.corpid, world.wecom_secret) as wc:
            await namespace["onboard"](wc, world.open_kfid, ids, journal)
            await namespace["onboard"](wc, world.open_kfid, ids, journal)

    asyncio.run(main())
    assert journal.read_text().split() == ids
    assert len(world.fake.calls_to("/cgi-bin/kf/servicer/add")) == 1  # the re-run sent nothing


def test_readme_observability_block_exports_a_span_per_attempt(
    world: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from opentelemetry.sdk.metrics import export as metrics_export
    from opentelemetry.sdk.trace import export as trace_export

    # The console exporters default to the stdout of the moment they were imported; here, the
    # one this test captures.
    class Spans(trace_export.ConsoleSpanExporter):
        def __init__(self) -> None:
            super().__init__(out=sys.stdout)

    class Metrics(metrics_export.ConsoleMetricExporter):
        def __init__(self) -> None:
            super().__init__(out=sys.stdout)

    monkeypatch.setattr(trace_export, "ConsoleSpanExporter", Spans)
    monkeypatch.setattr(metrics_export, "ConsoleMetricExporter", Metrics)
    (code,) = blocks_under("## Observability: hooks, traces and metrics")
    app = run_as_script(code)["app"]

    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await client.get(f"/servicers/{world.open_kfid}")

    answer = asyncio.run(main())
    assert answer.status_code == 200
    exported = capsys.readouterr().out
    assert '"name": "GET /cgi-bin/kf/servicer/list"' in exported
    assert '"name": "GET /cgi-bin/gettoken"' in exported
    assert "wechat_kf.request.duration" in exported
    assert world.wecom_secret not in exported


def test_readme_platforms_block_acts_for_an_authorizer_and_a_corp(
    world: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "COMPONENT_APPID": world.component_appid,
        "COMPONENT_APPSECRET": world.component_appsecret,
        "COMPONENT_VERIFY_TICKET": world.verify_ticket,
        "AUTHORIZER_APPID": world.appid,
        "AUTHORIZER_REFRESH_TOKEN": world.authorizer_refresh_token,
        "SUITE_ID": world.suite_id,
        "SUITE_SECRET": world.suite_secret,
        "SUITE_TICKET": world.suite_ticket,
        "AUTH_CORPID": world.corpid,
        "PERMANENT_CODE": world.permanent_code,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (code,) = blocks_under("## Third-party platforms")
    run_as_script(code)
    out = capsys.readouterr().out
    assert f"{world.appid} 2 kf accounts" in out
    assert "1 微信客服 accounts" in out


def test_readme_callbacks_block_decrypts_a_sealed_push_and_refuses_a_forged_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (code,) = blocks_under("## Receiving WeChat's callbacks")
    run_as_script(code)
    out = capsys.readouterr().out
    assert "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw 2023-11-14T22:13:20+00:00" in out
    assert "refused: signature" in out


def test_every_test_the_guarantees_name_exists() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    root = README.parent
    named = 0
    for row in section.splitlines():
        if not row.startswith("| ") or "`tests/" not in row:
            continue
        current = None
        for ref in re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", row):
            path, _, name = ref.partition("::")
            if path:
                current = root / path
                assert current.exists(), f"{path} is named in Guarantees but does not exist"
            if name:
                assert current is not None, f"::{name} has no file before it"
                source = current.read_text(encoding="utf-8")
                assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), (
                    f"{current.name}::{name} is named in Guarantees but does not exist"
                )
                named += 1
    assert named > 50


def test_readme_inbox_block_answers_each_customer_once_and_its_route_notifies(
    world: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import datetime, timezone

    import anyio

    from wechat_kf import Inbox, KfMessage, WeComClient
    from wechat_kf.callbacks import KfMsgOrEvent

    fake, kf = world.fake, world.open_kfid
    fake.customer_enters(kf, "wmALICE", scene="web01")
    fake.customer_says(kf, "wmALICE", "在吗")
    fake.customer_says(kf, "wmBOB", "退货")
    (code,) = blocks_under("## Receiving and answering messages")
    namespace = run_as_script(code)
    out = capsys.readouterr().out
    # The sandbox's backlog (an entry, three texts) and ours (an entry, two texts).
    assert "7 messages handled" in out
    assert "handled event wmALICE" in out
    assert "handled text wmBOB" in out
    assert "failed" not in out
    sent = [(m.touser, m.content["content"]) for m in fake.sent_messages(kf)]
    assert [s for s in sent if s[0] in ("wmALICE", "wmBOB")] == [
        ("wmALICE", "欢迎光临"),
        ("wmALICE", "收到: 在吗"),
        ("wmBOB", "收到: 退货"),
    ]
    human = world.customers[2]  # with a human servicer: the API leaves them alone
    assert human not in {to for to, _ in sent}
    assert len(sent) == len(set(sent))

    # The route's part: a kf_msg_or_event goes to notify, answered "success" at once, and the
    # pull it asked for runs in the background.
    async def route() -> tuple[str, list[str]]:
        seen: list[str] = []

        def handle(message: KfMessage) -> None:
            seen.append(message.external_userid or "")

        async with (
            WeComClient(world.corpid, world.wecom_secret) as wc,
            Inbox(wc, handle, start="latest") as inbox,
        ):
            await inbox.drain(kf)  # "latest": from now on
            fake.customer_says(kf, "wmCAROL", "还在吗")
            token = fake.latest_sync_token(kf)
            assert token is not None
            event = KfMsgOrEvent(world.corpid, kf, token, datetime.now(timezone.utc))
            answer = await namespace["on_wecom_push"](inbox, event)
            with anyio.fail_after(10):
                while not seen:  # noqa: ASYNC110 - the handler's list: nothing signals it
                    await anyio.sleep(0.01)
        return answer, seen

    assert asyncio.run(route()) == ("success", ["wmCAROL"])


async def test_readme_timeout_recipe_gives_up_on_a_stalled_call_and_the_client_serves_the_next(
    world: Sandbox,
) -> None:
    import anyio

    from wechat_kf import WeComClient

    (code,) = blocks_under("## Timeouts and cancellation")
    namespace = run_as_script(code)
    world.fake.add_servicers(world.open_kfid, ["user0007"])
    with anyio.fail_after(10):
        async with WeComClient(world.corpid, world.wecom_secret) as wc:
            assert await namespace["servicers_or_none"](wc, world.open_kfid) is not None
            world.fake.faults.stall_rate = 1.0  # applied, then no answer: only a deadline ends it
            assert await namespace["servicers_or_none"](wc, world.open_kfid, 0.2) is None
            world.fake.faults.stall_rate = 0.0
            servicers = await namespace["servicers_or_none"](wc, world.open_kfid)
    assert servicers is not None
    assert [s.userid for s in servicers] == ["user0007"]


def test_every_link_of_the_readme_works_off_the_repository() -> None:
    """PyPI shows the README without the repository's files: every link is absolute, and every
    address on the repository's host is under the project's Source URL (pyproject.toml), naming
    a file that exists here (and so in the sdist)."""
    pyproject = (README.parent / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^Source = "(https://[^"]+)"$', pyproject, re.MULTILINE)
    assert match, "pyproject.toml names no Source URL"
    source = match.group(1)
    host = source.split("/")[2]
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        assert link.startswith(("https://", "#")), f"a relative link breaks on PyPI: {link}"
    checked = 0
    for url in re.findall(rf"https://{re.escape(host)}/[^\s)`'\]]*", text):
        assert url.startswith(source), f"not under the project's Source URL: {url}"
        rest = url[len(source) :]
        if rest.startswith("/blob/main/"):
            path = rest.removeprefix("/blob/main/")
            assert (README.parent / path).is_file(), f"the README links to a missing {path}"
            checked += 1
    assert checked >= 5
