"""The distribution: built with the oldest setuptools the build allows, and usable as
installed from its wheel (not only from this source tree)."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built without isolation by the lowest setuptools ``build-system`` allows."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    lowest = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert lowest, f"expected setuptools>=N in build-system.requires, not {setuptools}"
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "venv", str(work / "env")], check=True)
    python = str(work / "env" / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"setuptools=={lowest.group(1)}.*"], check=True, timeout=300)
    done = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(work / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (work / "dist").glob("greenlight_hooks-*.whl")
    return built


def test_the_metadata_is_valid_for_the_oldest_setuptools_allowed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: jmespath" in metadata
    assert "greenlight = hooks.suites.pytest_entry" in entry_points
    assert "http = hooks.suites.http:HttpSuiteKind" in entry_points
    assert {"hooks/examples/greenlight.yaml", "hooks/examples/test_api.py"} <= set(names)
    assert "hooks/suites/http/schema.json" in names


def test_greenlight_demo_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel, away from this tree: the demo finds its examples inside
    the package."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # -S: this environment's editable install of the source tree stays out of the way;
    # its site-packages supplies the dependencies only.
    site = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [sys.executable, "-S", "-m", "hooks.cli.main", "demo"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{target}:{site}", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Suites: {target}/hooks/examples" in done.stdout
