"""The linters and the type checker, run as part of the test suite so CI (which runs it) enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINTED = ["shim", "tests", "bench", "openapi"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["ruff", "check", *LINTED], id="ruff-check"),
        pytest.param(["ruff", "format", "--check", *LINTED], id="ruff-format"),
        pytest.param(["mypy"], id="mypy"),  # its packages and options come from pyproject.toml
    ],
)
def test_static_check_is_clean(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
