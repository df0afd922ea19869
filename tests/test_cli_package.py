"""The command's house: a package of small modules that use the SDK as its users do, through
the public names only."""

from __future__ import annotations

import ast
import importlib
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
