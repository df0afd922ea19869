"""What a release ships: the sdist and the wheel, built here with ``python -m build`` as a release
would build them (the sdist first, then the wheel from the unpacked sdist). Both carry the
license pyproject.toml declares and the project's metadata; the sdist carries everything its
test suite reads, so that the suite collects and runs from the unpacked sdist."""

from __future__ import annotations

import email
import email.message
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "wechat_kf/_version.py").read_text())
assert VERSION
NAME = f"wechat_kf-{VERSION.group(1)}"

# What the sdist must hold besides its top-level files: the test suite and all it reads.
SDIST_TREES = ("wechat_kf", "tests", "examples", "benchmarks")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment for a nested build or pytest: none of the outer pytest's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel of this tree, built with ``python -m build`` (no isolation: the
    build backend comes from the test extra, and nothing is downloaded)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300, env=_clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _sdist(dist: Path) -> tarfile.TarFile:
    return tarfile.open(dist / f"{NAME}.tar.gz")


def _wheel(dist: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(dist / f"{NAME}-py3-none-any.whl")


def _metadata(text: str) -> email.message.Message:
    return email.message_from_string(text)


def _files_under(tree: str) -> set[str]:
    """The files of this tree that a build takes (not bytecode, not caches)."""
    files = set()
    for path in (ROOT / tree).rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.add(path.relative_to(ROOT).as_posix())
    return files


def test_the_license_file_is_the_license_pyproject_declares() -> None:
    assert re.search(r'^license = "MIT"$', PYPROJECT, re.MULTILINE)
    assert re.search(r'^license-files = \["LICENSE"\]$', PYPROJECT, re.MULTILINE)
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "Permission is hereby granted, free of charge" in text


def test_the_wheel_carries_the_license_the_metadata_and_only_the_package(dist: Path) -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    with _wheel(dist) as wheel:
        names = wheel.namelist()
        assert wheel.read(f"{NAME}.dist-info/licenses/LICENSE").decode() == license_text
        metadata = _metadata(wheel.read(f"{NAME}.dist-info/METADATA").decode())
    assert {name.split("/")[0] for name in names} == {"wechat_kf", f"{NAME}.dist-info"}
    assert "wechat_kf/py.typed" in names
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Author"]
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Source", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = metadata.get_all("Classifier") or []
    assert metadata["Requires-Python"] == ">=3.10"
    versions = [c.rsplit(" ", 1)[1] for c in classifiers if re.search(r":: 3\.\d+$", c)]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]  # from requires-python up, in order
    assert "Typing :: Typed" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # the expression says it
    assert metadata["Description-Content-Type"] == "text/markdown"


def test_the_sdist_carries_the_license_and_everything_its_test_suite_reads(dist: Path) -> None:
    with _sdist(dist) as sdist:
        names = {name.removeprefix(f"{NAME}/") for name in sdist.getnames()}
        member = sdist.extractfile(f"{NAME}/LICENSE")
        assert member is not None
        license_text = member.read().decode()
        info = sdist.extractfile(f"{NAME}/PKG-INFO")
        assert info is not None
        metadata = _metadata(info.read().decode())
    assert license_text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert metadata["License-Expression"] == "MIT"
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"} <= names
    for tree in SDIST_TREES:
        missing = _files_under(tree) - names
        assert not missing, f"the sdist lacks {sorted(missing)[:10]}"
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_the_unpacked_sdist_collects_every_test_and_runs_the_readme_tests(
    dist: Path, tmp_path: Path
) -> None:
    with _sdist(dist) as sdist:
        if hasattr(tarfile, "data_filter"):  # 3.10.12 and later: no path leaves tmp_path
            sdist.extractall(tmp_path, filter="data")
        else:  # pragma: no cover - an older 3.10
            sdist.extractall(tmp_path)
    unpacked = tmp_path / NAME
    # Its own package first, whatever this environment has installed.
    env = _clean_env(PYTHONPATH=str(unpacked))
    found = subprocess.run(
        [sys.executable, "-c", "import wechat_kf; print(wechat_kf.__file__)"],
        cwd=unpacked, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert Path(found.stdout.strip()).is_relative_to(unpacked), found.stdout + found.stderr

    def collected(where: Path, environment: dict[str, str]) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0"],
            cwd=where, env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return [line for line in done.stdout.splitlines() if "::" in line]

    # Collecting imports every test module, and so examples/ and benchmarks/ too.
    from_sdist = collected(unpacked, env)
    assert len(from_sdist) > 1000
    assert from_sdist == collected(ROOT, _clean_env())
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "tests/test_readme.py"],
        cwd=unpacked, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-5000:] + ran.stderr[-3000:]
    assert re.search(r"\d+ passed", ran.stdout)
