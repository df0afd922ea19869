"""The README's examples stay true: its FakeWeChat test runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.anyio


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
