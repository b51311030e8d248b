"""Template and packaging tests use the real cfn-lint, sam and python3.13."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT


def find_sam() -> str | None:
    candidate = os.environ.get("GREENLIGHT_SAM") or str(ROOT / ".tools/sam/bin/sam")
    if Path(candidate).is_file():
        return candidate
    return shutil.which("sam")


def find_python313() -> str | None:
    """A real python3.13 (a pyenv shim that would refuse to run is skipped)."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")))
    found = shutil.which("python3.13")
    for candidate in [*candidates[::-1], *([found] if found else [])]:
        done = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
        if done.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="session")
def sam() -> str:
    path = find_sam()
    if path is None:
        pytest.skip("aws-sam-cli is not installed (make test installs it into .tools/sam)")
    return path


@pytest.fixture(scope="session")
def python313() -> str:
    path = find_python313()
    if path is None:
        pytest.skip("python3.13 is not on this machine: sam build and the artifact test need it")
    return path


@pytest.fixture(scope="session")
def built(sam: str, python313: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` once for the session, into a temporary build directory."""
    build_dir = tmp_path_factory.mktemp("sam-build")
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    env["PATH"] = f"{Path(python313).parent}:{env['PATH']}"
    done = subprocess.run(
        [sam, "build", "--build-in-source", "--build-dir", str(build_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return build_dir
