"""The README's Python is typed as a user's code would be: every ```python block passes
``mypy --strict`` (with the project's mypy settings) against this checkout's package, each block a
module of its own. tests/test_readme.py runs the same blocks against FakeWeChat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks_by_line() -> dict[int, str]:
    """Every ```python block of the README, keyed by the line its code starts on."""
    blocks: dict[int, str] = {}
    start, lines = 0, list[str]()
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if start and line == "```":
            blocks[start] = "\n".join(lines) + "\n"
            start, lines = 0, []
        elif start:
            lines.append(line)
        elif line == "```python":
            start = number + 1
    return blocks


def test_the_readme_has_python_blocks_to_check() -> None:
    assert len(python_blocks_by_line()) >= 16


def test_every_python_block_of_the_readme_passes_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    names = []
    for line, code in python_blocks_by_line().items():
        name = f"readme_line_{line:04d}"  # an error names the README line its block starts on
        (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
        names.append(f"{name}.py")
    # The package from this tree, whatever is installed (an editable install's import hook is
    # invisible to mypy).
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(tmp_path / ".mypy_cache"), "--no-error-summary", *names,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    # Only the blocks' own errors: the package is checked by the project's own mypy step.
    errors = [line for line in done.stdout.splitlines() if re.match(r"readme_line_\d+\.py:", line)]
    assert not errors, "\n".join(errors)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "error:" not in done.stderr
