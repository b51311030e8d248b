"""A worker started ahead of its invocation: taken when it fits, never when it does not.

In Lambda a spare worker starts as the function initialises and as each invocation ends,
so the next one finds its imports done. A spare is an optimisation only: whatever state it
is in (dead, started under other start-up variables, with an older environment), the run
behaves as with a fresh worker, and it never outlives its process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.target import Target
from hooks.process import spawn
from hooks.process.messages import Job, Setup
from hooks.process.supervisor import SupervisedRun, Supervisor
from hooks.suites.base import DeploymentInfo
from tests.helpers import ROOT, http_server, reply

SUITE = """\
name: env
checks:
  - name: echo
    request: {path: '/seen/${env:GREENLIGHT_TEST_TOKEN}'}
"""


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    (tmp_path / "env.yaml").write_text(SUITE)
    return tmp_path


@pytest.fixture(autouse=True)
def no_spare_left() -> Iterator[None]:
    spawn.end_spare()
    yield
    spawn.end_spare()


def _job(url: str) -> Job:
    return Job(
        deployment=DeploymentInfo("d-SPARE", "e", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC),
        target=Target(url),
        planned=("env",),
        concurrency=2,
        request_timeout=5,
    )


def _run(suites: Path, url: str) -> tuple[int, list[str]]:
    """The catalog worker's pid, and the checks that passed."""
    run = Supervisor(SupervisedRun(Setup(str(suites), log_plain=True), 512))
    run.start()
    assert run.catalog is not None
    pid = run.catalog.process.pid
    results, _ = run.execute(_job(url), Deadline.in_seconds(20))
    passed = [c.name for s in results for c in s.checks if s.passed]
    return pid, passed


class Seen:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        self.paths.append(handler.path)
        reply(handler, 200, {})


def _spare_pid() -> int:
    spare = spawn.spare()
    assert spare is not None
    return spare.pid


def test_the_next_run_takes_the_spare_and_sees_the_environment_of_now(
    suites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENLIGHT_TEST_TOKEN", "at-start")
    spawn.prestart()
    spare = _spare_pid()
    monkeypatch.setenv("GREENLIGHT_TEST_TOKEN", "at-run")  # as Lambda sets per invocation
    seen = Seen()
    with http_server(seen) as url:
        pid, passed = _run(suites, url)
    assert pid == spare
    assert passed == ["echo"]
    assert seen.paths == ["/seen/at-run"]
    assert spawn.spare() is None  # taken, not shared


def _prestarted(monkeypatch: pytest.MonkeyPatch) -> subprocess.Popen[bytes]:
    monkeypatch.setenv("GREENLIGHT_TEST_TOKEN", "x")
    spawn.prestart()
    spare = spawn.spare()
    assert spare is not None
    return spare


def test_a_spare_started_under_other_start_up_variables_is_ended_not_used(
    suites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare = _prestarted(monkeypatch)
    monkeypatch.setenv("PYTHONHASHSEED", "7")  # read by the interpreter as it starts
    with http_server(Seen()) as url:
        pid, passed = _run(suites, url)
    assert pid != spare.pid
    assert passed == ["echo"]
    assert spare.poll() is not None  # ended, not left running


def test_a_dead_spare_is_replaced_by_a_fresh_worker(
    suites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare = _prestarted(monkeypatch)
    spare.kill()
    spare.wait(5)
    with http_server(Seen()) as url:
        pid, passed = _run(suites, url)
    assert pid != spare.pid
    assert passed == ["echo"]


def test_prestart_keeps_one_live_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    spawn.prestart()
    first = _spare_pid()
    spawn.prestart()
    assert _spare_pid() == first
    spare = spawn.spare()
    assert spare is not None
    spare.kill()
    spare.wait(5)
    spawn.prestart()
    assert _spare_pid() != first


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.timing
def test_the_handler_module_starts_a_spare_in_lambda_that_ends_with_the_process() -> None:
    script = (
        "import hooks.adapters.handlers, hooks.process.spawn as s\n"
        "print(s.spare().pid if s.spare() else 'none', flush=True)\n"
    )
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "greenlight-test"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_off_lambda_importing_the_handlers_starts_nothing() -> None:
    script = "import hooks.adapters.handlers, hooks.process.spawn as s\nprint(s.spare() is None)\n"
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "True", done.stderr


def test_a_spare_that_cannot_start_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(env: dict[str, str]) -> None:
        raise RuntimeError("no processes here")

    monkeypatch.setattr(spawn, "launch", broken)
    monkeypatch.setattr(spawn, "launch_fork_server", broken)
    spawn.prestart()  # what the handler module runs as the function loads
    spawn.prestart_forks()
    assert spawn.spare("worker") is None
    assert spawn.spare("forks") is None
