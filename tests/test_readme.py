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
