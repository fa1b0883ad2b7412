"""The project's own checks, run with the suite (so CI runs them through the README's test
command): ruff, mypy and the import-linter contract of the layers (pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_ruff() -> None:
    # (tools/ holds one-off generators run by hand, not part of the product)
    p = run(tool("ruff"), "check", "src", "tests", "bench")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy() -> None:
    p = run(sys.executable, "-m", "mypy")
    assert p.returncode == 0, p.stdout + p.stderr


def test_layers() -> None:
    p = run(tool("lint-imports"))
    assert p.returncode == 0, p.stdout + p.stderr
