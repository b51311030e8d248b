"""A tool a test needs and the machine lacks: skipped locally and counted in one line, a
failure in CI (``GREENLIGHT_REQUIRE_TOOLS=1``, which ``.ci/run`` sets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, user_env

NEEDS = """\
from tests.helpers import missing_tool

def test_a():
    missing_tool("frobnicator", "apt-get install frobnicator")

def test_b():
    missing_tool("frobnicator", "apt-get install frobnicator")

def test_c():
    missing_tool("sam", "make tools")
"""


def _pytest(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = user_env()
    (folder / "test_needs.py").write_text(NEEDS)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(folder / "test_needs.py"),
        ],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("required", [False, True], ids=["locally", "in CI"])
def test_a_missing_tool_skips_locally_in_one_line_and_fails_in_ci(
    tmp_path: Path, required: bool
) -> None:
    done = _pytest(tmp_path, **({"GREENLIGHT_REQUIRE_TOOLS": "1"} if required else {}))
    if required:
        assert done.returncode == 1, done.stdout
        assert "3 failed" in done.stdout
        assert "missing tool: frobnicator (apt-get install frobnicator)" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "3 skipped" in done.stdout
        lines = [x for x in done.stdout.splitlines() if x.startswith("skipped for missing tools")]
        assert lines == [
            "skipped for missing tools: frobnicator (2 tests), sam (1 tests); "
            ".ci/run installs them and fails without them"
        ]
