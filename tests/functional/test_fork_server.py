"""The fork server: suites that need a worker of their own get a forked one, cheaply.

It runs no user code itself (a third-party pytest plugin loads in the workers that ask for
it, never in the server, and never by being installed); each suite still runs in a process
of its own; and if the server cannot start or is killed by a suite, the run goes on with
workers started afresh and every suite still gets a verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import SuiteResult
from hooks.core.target import Target
from hooks.process.messages import Job, Setup
from hooks.process.supervisor import ForkedProcess, ForkServer, SupervisedRun, Supervisor
from hooks.suites.base import DeploymentInfo
from tests.helpers import ROOT, InFlight, each, http_server, install_package

TEST_FILE = """\
import os, pathlib

def test_{name}(http, base_url):
    pathlib.Path({record!r}, "{name}").write_text(f"{{os.getpid()}} {{os.getppid()}}")
    assert http.get(base_url + "/{name}").status_code == 200
"""


NAMES = ["a", "b", "c", "d"]
#: Seconds a run of these suites may take.
DEADLINE = 30


def _suites(folder: Path, record: Path, names: list[str], extra: str = "") -> Path:
    folder.mkdir()
    record.mkdir()
    for name in names:
        (folder / f"test_{name}.py").write_text(TEST_FILE.format(name=name, record=str(record)))
    if extra:
        (folder / "test_extra.py").write_text(extra)
    return folder


def _run(
    suites: Path, url: str, planned: list[str], concurrency: int = 8, plugins: tuple[str, ...] = ()
) -> tuple[Supervisor, list[SuiteResult]]:
    run = Supervisor(SupervisedRun(Setup(str(suites), log_plain=True), 512))
    job = Job(
        deployment=DeploymentInfo("d-FORK", "e", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC),
        target=Target(url),
        planned=tuple(planned),
        concurrency=concurrency,
        request_timeout=10,
        plugins=plugins,
    )
    results, _ = run.start().execute(job, Deadline.in_seconds(DEADLINE))
    return run, results


@pytest.mark.timing
def test_each_suite_runs_in_a_forked_process_of_its_own_at_once(tmp_path: Path) -> None:
    suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES)
    server = InFlight(until=2)  # two at once: proved side by side, on any machine
    with http_server(server) as url:
        run, results = _run(suites, url, NAMES)
    assert [r.name for r in results] == NAMES
    assert all(r.passed for r in each(results))
    assert run.forks is not None
    seen = [(tmp_path / "record" / n).read_text().split() for n in NAMES]
    pids = {int(pid) for pid, _ in seen}
    assert len(pids) == len(NAMES)  # a process each
    assert {int(parent) for _, parent in seen} == {run.forks.process.pid}
    assert all(isinstance(w.process, ForkedProcess) for w in each(run.workers[1:]))
    assert server.peak >= 2  # side by side, not one after another
    assert run.forks.process.poll() is not None  # ended with the run


PLUGIN = """
import os, pathlib
pathlib.Path(os.environ["GREENLIGHT_TEST_PLUGIN_LOG"]).open("a").write(f"{os.getpid()}\\n")
"""


def _install_spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pytest11 plugin, installed, that writes the pid of each process that imports it to
    the file returned."""
    site = install_package(
        tmp_path / "site", "greenlight_test_spy", PLUGIN, "[pytest11]\nspy = greenlight_test_spy\n"
    )
    monkeypatch.syspath_prepend(str(site))
    log = tmp_path / "plugin.log"
    monkeypatch.setenv("GREENLIGHT_TEST_PLUGIN_LOG", str(log))
    return log


@pytest.mark.parametrize(
    ("plugins", "conftest"),
    [
        (("spy",), ""),
        (("greenlight_test_spy",), ""),
        ((), "pytest_plugins = ['greenlight_test_spy']\n"),
    ],
    ids=["plan names its entry point", "plan names its module", "conftest pytest_plugins"],
)
def test_a_named_pytest_plugin_loads_in_the_workers_never_in_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugins: tuple[str, ...], conftest: str
) -> None:
    log = _install_spy(tmp_path, monkeypatch)
    suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES[:2])
    if conftest:
        (suites / "conftest.py").write_text(conftest)
    with http_server(InFlight(0)) as url:
        run, results = _run(suites, url, NAMES[:2], plugins=plugins)
    assert [r.name for r in results] == NAMES[:2]
    assert all(r.passed for r in each(results)), [[c.message for c in r.checks] for r in results]
    assert run.forks is not None
    loaded = {int(line) for line in log.read_text().split()}
    workers = {int((tmp_path / "record" / n).read_text().split()[0]) for n in NAMES[:2]}
    assert len(workers) == 2
    assert workers <= loaded
    assert run.forks.process.pid not in loaded


def test_an_installed_pytest_plugin_nobody_names_loads_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a pytest11 plugin installed beside Greenlight (as Schemathesis brings two)
    WHEN pytest suites run with no plan or file naming it
    THEN it is imported in no process: autoload is off in every worker."""
    log = _install_spy(tmp_path, monkeypatch)
    suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES[:2])
    with http_server(InFlight(0)) as url:
        run, results = _run(suites, url, NAMES[:2])
    assert [r.name for r in results] == NAMES[:2]
    assert all(r.passed for r in each(results))
    assert run.forks is not None
    assert not log.exists()


def test_a_plugin_the_plan_names_that_is_not_installed_fails_the_suite_naming_it(
    tmp_path: Path,
) -> None:
    suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES[:1])
    with http_server(InFlight(0)) as url:
        _, results = _run(suites, url, NAMES[:1], plugins=("no_such_plugin_xyz",))
    assert [r.name for r in results] == NAMES[:1]
    assert not results[0].passed
    messages = [c.message for c in results[0].checks]
    assert len(messages) == 1
    assert "not installed: no_such_plugin_xyz" in messages[0]
    assert not (tmp_path / "record" / "a").exists()  # nothing ran without its plugin


KILLER = """\
import os, signal

def test_kills_the_fork_server():
    os.kill(os.getppid(), signal.SIGKILL)
"""


@pytest.mark.timing
def test_a_suite_that_kills_the_fork_server_leaves_every_suite_a_verdict(
    tmp_path: Path,
) -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    suites = _suites(tmp_path / "suites", tmp_path / "record", names, extra=KILLER)
    started = time.monotonic()
    with http_server(InFlight(0.2)) as url:
        run, results = _run(suites, url, ["extra", *names], concurrency=2)
    assert time.monotonic() - started < DEADLINE  # every suite judged, none cut by it
    assert run.forks is not None
    assert run.forks.lost
    by_name = {r.name: r for r in results}
    assert set(by_name) == {"extra", *names}
    assert all(by_name[n].passed for n in each(names)), [
        (r.name, [c.message for c in r.checks]) for r in results
    ]
    fresh = [w for w in run.workers if not isinstance(w.process, ForkedProcess)]
    assert len(fresh) >= 2  # the catalog, and workers started afresh after the loss


def test_without_a_fork_server_workers_start_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_start(self: ForkServer) -> None:
        raise OSError("no fork here")

    monkeypatch.setattr(ForkServer, "__init__", cannot_start)
    suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES[:2])
    with http_server(InFlight(0)) as url:
        run, results = _run(suites, url, NAMES[:2])
    assert all(r.passed for r in each(results))
    assert run.forks is None
    assert not any(isinstance(w.process, ForkedProcess) for w in each(run.workers))


def test_a_forked_worker_killed_by_a_signal_is_named(tmp_path: Path) -> None:
    dying = "import os, signal\n\ndef test_dies():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    suites = _suites(tmp_path / "suites", tmp_path / "record", ["a"], extra=dying)
    with http_server(InFlight(0)) as url:
        run, results = _run(suites, url, ["a", "extra"])
    by_name = {r.name: r for r in results}
    assert by_name["a"].passed
    messages = " ".join(c.message for c in by_name["extra"].checks)
    assert "killed by SIGKILL" in messages, messages
    assert sum(isinstance(w.process, ForkedProcess) for w in run.workers) == 2


def _extra_only(suites: Path) -> tuple[Supervisor, Job]:
    """A supervisor for ``suites``, and a job that plans its ``extra`` suite only."""
    run = Supervisor(SupervisedRun(Setup(str(suites), log_plain=True), 512))
    job = Job(
        deployment=DeploymentInfo("d-FORK", "e", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC),
        target=Target("http://127.0.0.1:9"),
        planned=("extra",),
        concurrency=8,
        request_timeout=10,
    )
    return run, job


@pytest.mark.timing
def test_no_forked_worker_outlives_the_run(tmp_path: Path) -> None:
    hanging = "import time\n\ndef test_hangs():\n    time.sleep(60)\n"
    suites = _suites(tmp_path / "suites", tmp_path / "record", [], extra=hanging)
    run, job = _extra_only(suites)
    results, cut_short = run.start().execute(job, Deadline.in_seconds(3))
    assert cut_short
    assert not results[0].passed
    pids = [w.process.pid for w in run.workers]
    assert run.forks is not None
    pids.append(run.forks.process.pid)
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.timing
def test_the_supervisor_sleeps_while_its_workers_run(tmp_path: Path) -> None:
    """The catalog worker has ended and a suite runs for a while in a worker of its own: the
    supervisor waits for the worker, and spends next to no CPU doing it (a wait that an
    ended worker satisfies at once would spin a core for the whole run)."""
    hold = 2.0
    sleeping = f"import time\n\ndef test_sleeps():\n    time.sleep({hold})\n"
    suites = _suites(tmp_path / "suites", tmp_path / "record", [], extra=sleeping)
    run, job = _extra_only(suites)
    started = time.thread_time()
    results, _ = run.start().execute(job, Deadline.in_seconds(DEADLINE))
    spent = time.thread_time() - started
    assert results[0].passed, results
    # A spinning wait costs about a core for the 2 s hold (still over a second on a busy
    # machine); starting the workers and reading their records costs a small part of that.
    assert spent < hold / 4, f"the supervisor spent {spent:.2f}s of CPU waiting"


def test_a_run_takes_the_spare_fork_server(tmp_path: Path) -> None:
    from hooks.process import spawn

    spawn.end_spare()
    spawn.prestart_forks()
    spare = spawn.spare("forks")
    assert spare is not None
    try:
        suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES[:2])
        with http_server(InFlight(0)) as url:
            run, results = _run(suites, url, NAMES[:2])
        assert all(r.passed for r in each(results))
        assert run.forks is not None
        assert run.forks.process.pid == spare.pid
        assert spawn.spare("forks") is None
    finally:
        spawn.end_spare()


@pytest.mark.parametrize(
    ("files", "holds"),
    [
        ({"a/b/test_x.py": ""}, True),
        ({"x_test.py": ""}, True),
        ({"smoke.yaml": "", "helpers.py": "", "test_data.json": ""}, False),
        ({}, False),
    ],
    ids=["nested", "suffix", "no pytest file", "empty"],
)
def test_a_suites_directory_holding_pytest_files_is_told_apart(
    tmp_path: Path, files: dict[str, str], holds: bool
) -> None:
    from hooks.process.spawn import holds_pytest_files

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert holds_pytest_files(tmp_path) is holds


@pytest.mark.parametrize("with_pytest", [True, False], ids=["pytest files", "yaml only"])
def test_in_lambda_the_fork_server_starts_with_the_function_only_for_pytest_files(
    tmp_path: Path, with_pytest: bool
) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    (tmp_path / "smoke.yaml").write_text("name: smoke\nchecks: []\n")
    if with_pytest:
        (tmp_path / "test_api.py").write_text("def test_a():\n    pass\n")
    script = (
        "import hooks.adapters.handlers, hooks.process.spawn as s\n"
        "print(s.spare('worker') is not None, s.spare('forks') is not None)\n"
    )
    env = {
        **os.environ,
        "AWS_LAMBDA_FUNCTION_NAME": "greenlight-test",
        "GREENLIGHT_SUITES_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["True", str(with_pytest)], done.stderr


@pytest.mark.timing
def test_a_fork_server_that_stops_answering_is_ended_and_workers_start_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from hooks.process import supervisor

    monkeypatch.setattr(supervisor, "FORK_REPLY_SECONDS", 0.5)
    original = ForkServer.wait_ready

    def stop_once_ready(self: ForkServer, deadline: Deadline) -> bool:
        ready = original(self, deadline)
        os.kill(self.process.pid, signal.SIGSTOP)  # alive, but answers nothing
        return ready

    monkeypatch.setattr(ForkServer, "wait_ready", stop_once_ready)
    suites = _suites(tmp_path / "suites", tmp_path / "record", NAMES[:3])
    started = time.monotonic()
    with http_server(InFlight(0)) as url:
        run, results = _run(suites, url, NAMES[:3])
    assert time.monotonic() - started < DEADLINE  # every suite judged, none cut by it
    assert [r.name for r in results] == NAMES[:3]
    assert all(r.passed for r in each(results)), [[c.message for c in r.checks] for r in results]
    assert run.forks is not None
    assert run.forks.lost
    assert run.forks.process.poll() is not None  # killed, so it cannot fork late
    assert not any(isinstance(w.process, ForkedProcess) for w in each(run.workers))


def test_the_fork_servers_pytest_warm_up_runs_its_fixtures() -> None:
    """The warm-up session passes (its test uses every fixture), with no plugin autoloaded:
    a warm-up that errors out would leave every fork to build what it should share."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from hooks.process.worker import _warm_up_pytest\n"
            "sys.exit(_warm_up_pytest())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("forked", [True, False])
def test_suites_run_with_garbage_collection_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: bool
) -> None:
    """Workers start with collection off (their imports and suite loading make objects that
    live as long as they do); every suite, forked or in a worker started afresh, runs with
    it on again."""
    if not forked:

        def cannot_start(self: ForkServer) -> None:
            raise OSError("no fork here")

        monkeypatch.setattr(ForkServer, "__init__", cannot_start)
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "test_collects.py").write_text(
        "import gc\n\ndef test_collection_is_on():\n    assert gc.isenabled()\n"
    )
    with http_server(InFlight(0)) as url:
        run, results = _run(suites, url, ["collects"])
    assert [(r.name, r.passed) for r in results] == [("collects", True)]
    assert (run.forks is not None) is forked
