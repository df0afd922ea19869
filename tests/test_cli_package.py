"""The command's house: a package of small modules that use the SDK as its users do, through
the public names only."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import wechat_kf.cli

PACKAGE = Path(wechat_kf.cli.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
PUBLIC = ("wechat_kf", "wechat_kf.testing", "wechat_kf.stores", "wechat_kf.wecom")


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_the_command_uses_only_the_sdks_public_names(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            assert not [a.name for a in node.names if a.name.startswith("wechat_kf")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            if module.split(".")[0] != "wechat_kf":
                continue
            assert module in PUBLIC, f"{path.name} imports {module}"
            exported = set(importlib.import_module(module).__all__)
            for alias in node.names:
                assert alias.name in exported, f"{path.name} imports {module}.{alias.name}"
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 1, f"{path.name} reaches outside the command's package"


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_no_module_of_the_command_is_over_450_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 450


def test_the_installed_script_names_the_packages_main() -> None:
    pyproject = (PACKAGE.parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '\nwechat-kf = "wechat_kf.cli:main"\n' in pyproject
    assert wechat_kf.cli.__all__ == ["main"]


@pytest.mark.parametrize("missing", ["click", "rich"])
@pytest.mark.parametrize("how", ["script", "python -m"])
def test_without_the_cli_extra_the_command_says_what_to_install_in_one_line_and_exits_2(
    missing: str, how: str
) -> None:
    # A module set to None in sys.modules cannot be imported: as if it were not installed.
    run = (
        "from wechat_kf.cli import main; main()"
        if how == "script"
        else "import runpy; runpy.run_module('wechat_kf', run_name='__main__')"
    )
    probe = f"import sys; sys.modules[{missing!r}] = None\n{run}"
    done = subprocess.run(
        [sys.executable, "-c", probe, "wecom", "servicers", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'wechat-kf[cli]'" in lines[0]
    assert missing in lines[0]
    assert "Traceback" not in done.stderr


def test_a_missing_module_that_is_not_the_extras_is_not_taken_for_it() -> None:
    probe = "import sys; sys.modules['wechat_kf.cli.ids'] = None\nimport wechat_kf.cli"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "wechat_kf.cli.ids" in done.stderr
    assert "wechat-kf[cli]" not in done.stderr
