"""The worker process: loads and runs suites for a supervisor, streaming results.

Started as ``python -c WORKER_MAIN FD`` (:data:`hooks.process.spawn.WORKER_MAIN`, which is
``python -m hooks.process.worker FD`` with garbage collection off until the suites are
loaded); reads two JSON lines on standard input and
writes :mod:`hooks.process.messages` records to the pipe ``FD``. The first line prepares (memory
limit, logging, the suites directory): the supervisor starts the worker as the invocation
begins, so its imports and suite loading overlap the plan and discovery. The second line
is the job (the plan's suites, the target, the deadline); an empty one means "no job".
Suites may print to stdout (it goes to the supervisor's stderr), patch any library, hang or
crash this process: the supervisor owns the deadline and the verdict, and decides from the
records it received.

Two modes:

``catalog``  find every suite (plugins and the suites directory), select the planned ones,
             list them, and run those that share this worker (declarative suites);
``suite``    load and run one suite that needs a process of its own (pytest, plugins).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from hooks.core import redact
from hooks.core.deadline import Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import CheckResult
from hooks.process import messages
from hooks.suites.base import Suite

__all__ = [
    "EXIT_CONFIG",
    "EXIT_CRASH",
    "EXIT_OK",
    "MAX_FORK_REQUEST",
    "THREAD_STACK_BYTES",
    "RecordListener",
    "RecordWriter",
    "describe",
    "fan_out",
    "limit_memory",
    "main",
    "needs_own_worker",
    "prepare",
    "run",
]

log = logging.getLogger("hooks.process.worker")

#: Stack of each thread the worker starts: the memory limit counts thread stacks.
THREAD_STACK_BYTES = 4 * 1024 * 1024
EXIT_OK, EXIT_CONFIG, EXIT_CRASH = 0, 3, 4


class RecordWriter:
    """Writes records to the supervisor's pipe, one whole line at a time, redacted."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, record: messages.Message) -> None:
        data = redact.redact_data(record.to_json())
        line = (json.dumps(data, default=str) + "\n").encode()
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the supervisor stopped listening
                pass


class RecordListener:
    """Turns the runner's events into records for suites known by their ids."""

    def __init__(self, writer: RecordWriter, ids: dict[int, int]) -> None:
        self._writer = writer
        self._ids = ids

    def started(self, suite: Suite) -> None:
        self._writer.send(messages.Started(self._ids[id(suite)]))

    def expected(self, suite: Suite, names: list[str]) -> None:
        self._writer.send(messages.Expect(self._ids[id(suite)], tuple(names)))

    def check(self, suite: Suite, result: CheckResult) -> None:
        self._writer.send(messages.CheckDone(self._ids[id(suite)], result))

    def finished(self, suite: Suite, error: str | None) -> None:
        self._writer.send(messages.Finished(self._ids[id(suite)], error))


def needs_own_worker(suite: Suite) -> bool:
    """Suites that run user code (pytest, plugins) get a process of their own.

    Only Greenlight's declarative suites and built-in checks share the catalog worker: a
    suite that can patch a library or hold a lock must not change what another one sees.
    """
    # on use: an import that fails is reported as this worker's error (a record), not an exit
    from hooks.suites.base import CheckSuite
    from hooks.suites.http import HttpSuite
    from hooks.suites.registry import BrokenSuite
    from hooks.suites.targeted import TargetedSuite

    if isinstance(suite, TargetedSuite):
        return needs_own_worker(suite.inner)
    if type(suite) in (HttpSuite, BrokenSuite):
        return False
    if type(suite) is CheckSuite:
        return not all(type(c).__module__.startswith("hooks.suites.") for c in suite.checks)
    return True


def describe(index: int, suite: Suite) -> messages.ListedItem:
    # on use: an import that fails is reported as this worker's error (a record), not an exit
    from hooks.suites.registry import BrokenSuite
    from hooks.suites.targeted import TargetedSuite

    green = messages.GreenTask(suite.url, suite.label) if isinstance(suite, TargetedSuite) else None
    return messages.ListedItem(
        id=index,
        name=suite.name,
        kind=suite.kind,
        source=suite.source,
        checks=tuple(suite.check_names()),
        policy=suite.policy,
        own_worker=needs_own_worker(suite),
        origin=getattr(suite, "origin", None),
        error=suite.error if isinstance(suite, BrokenSuite) else None,
        shards=suite.shards,
        green_target=green,
    )


def _preload() -> None:
    """Import what every job needs before reading the set-up: a worker started ahead of its
    invocation (a spare) does this while it waits. An import that fails here fails again,
    reported, where it is needed."""
    with contextlib.suppress(Exception):
        # on use: an import that fails is reported as this worker's error (a record), not an exit
        import hooks.core.fetch
        import hooks.process.runner
        import hooks.suites.http
        import hooks.suites.registry

        hooks.suites.registry.scan_entry_points()


def prepare(setup: messages.Setup) -> Any:
    """Everything that does not need the plan: imports, and the catalog (catalog mode)."""
    # on use: an import that fails is reported as this worker's error (a record), not an exit
    import hooks.core.fetch  # noqa: F401 - the HTTP engine, before the clock starts
    from hooks.process.runner import run_suites  # noqa: F401
    from hooks.suites.registry import discover

    if setup.mode == "catalog":
        return discover(Path(setup.suites_dir))
    return None


def run(
    setup: messages.Setup,
    job: messages.Job,
    deadline: Deadline,
    writer: RecordWriter,
    prepared: Any = None,
) -> None:
    """The job: the catalog lists the planned suites and runs those that share it; a
    suite's own worker runs its one suite."""
    # on use: an import that fails is reported as this worker's error, not an exit
    from hooks.process.runner import run_suites

    event = job.event
    if setup.mode == "catalog":
        found = _catalog_suites(setup, job, event, writer, prepared)
        if found is None:  # listed only: the state machine runs them, in shards
            return
        suites, ids = found
    else:
        suite = _own_suite(job)
        suites, ids = [suite], {id(suite): job.suite or 0}
    if not suites:
        return
    if job.target is None:
        raise ConfigError("the job has suites to run and no target")
    run_suites(
        suites,
        target=job.target,
        deployment=job.deployment,
        deadline=deadline,
        concurrency=job.concurrency,
        request_timeout=job.request_timeout,
        listener=RecordListener(writer, ids),
        max_body_bytes=job.max_body_bytes,
        plugins=job.plugins,
    )


def _catalog_suites(
    setup: messages.Setup,
    job: messages.Job,
    event: LifecycleEvent,
    writer: RecordWriter,
    catalog: Any,
) -> tuple[list[Suite], dict[int, int]] | None:
    """Select the planned suites, list them all, and keep those this worker runs (with
    their ids); None when the job only asks for the listing."""
    # on use: an import that fails is reported as this worker's error, not an exit
    from hooks.suites.registry import BrokenSuite, select_suites

    suites = select_suites(
        catalog,
        event,
        job.planned,
        dict(job.policies),
        planned_source=job.planned_source,
        suites_dir=Path(setup.suites_dir),
    )
    # Suites that passed in an earlier call of the same gate (ECS IN_PROGRESS).
    skip = set(job.skip)
    suites = [s for s in suites if s.name not in skip or isinstance(s, BrokenSuite)]
    suites = fan_out(
        [_production_only(s) for s in suites] if event is _BEFORE_INSTALL else suites,
        job.green_targets,
        all_suites=job.per_target_all,
        through_listener=event is not LifecycleEvent.AFTER_INSTALL,
    )
    writer.send(messages.Listing(tuple(describe(i, s) for i, s in enumerate(suites))))
    if job.list_only:
        return None
    ids = {id(s): i for i, s in enumerate(suites)}
    return [s for s in suites if not needs_own_worker(s)], ids


def _own_suite(job: messages.Job) -> Suite:
    """The one suite a suite's own worker runs, under its policy, at its green task."""
    # on use: an import that fails is reported as this worker's error, not an exit
    from hooks.suites.registry import load_one
    from hooks.suites.targeted import TargetedSuite

    if job.origin is None or job.suite is None:
        raise ConfigError("a suite's worker was given no suite to run")
    suite = load_one(job.origin)
    if suite.name in job.policies:
        suite = suite.with_policy(job.policies[suite.name])
    if job.green_target is not None:
        suite = TargetedSuite(suite, job.green_target.url, job.green_target.label)
    return suite


_BEFORE_INSTALL = LifecycleEvent.BEFORE_INSTALL


def _production_only(suite: Suite) -> Suite:
    """At BeforeInstall a declarative check must address production: else a broken suite."""
    # on use: an import that fails is reported as this worker's error (a record), not an exit
    from hooks.suites.http import HttpSuite
    from hooks.suites.registry import BrokenSuite

    if isinstance(suite, HttpSuite):
        problem = suite.production_only_problem()
        if problem is not None:
            return BrokenSuite(suite.name, suite.kind, problem, source=suite.source)
    return suite


def fan_out(
    suites: list[Suite],
    green: Sequence[messages.GreenTask],
    *,
    all_suites: bool,
    through_listener: bool,
) -> list[Suite]:
    """Each suite that runs per task, once for each green task (and through the listener too,
    after AfterInstall); the others as they are."""
    # on use: an import that fails is reported as this worker's error (a record), not an exit
    from hooks.suites.registry import BrokenSuite
    from hooks.suites.targeted import TargetedSuite

    out: list[Suite] = []
    for suite in suites:
        if isinstance(suite, BrokenSuite) or not green or not (all_suites or suite.per_target):
            out.append(suite)
            continue
        if through_listener:
            out.append(suite)
        out.extend(TargetedSuite(suite, t.url, t.label) for t in green)
    return out


def limit_memory(megabytes: int | None, threads: int, most_threads: int = 256) -> None:
    """Cap this process's data (heap, mappings) at ``megabytes``, plus its thread stacks.

    The hard limit allows ``most_threads`` stacks, the soft limit ``threads``: the job,
    which knows its concurrency, lowers the soft limit again.
    """
    threading.stack_size(THREAD_STACK_BYTES)
    if not megabytes:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return
    base = megabytes * 1024 * 1024 + 8 * THREAD_STACK_BYTES
    soft = base + threads * THREAD_STACK_BYTES
    hard = max(base + most_threads * THREAD_STACK_BYTES, soft)
    try:
        _, current = resource.getrlimit(resource.RLIMIT_DATA)
        if current != resource.RLIM_INFINITY:
            hard, soft = min(hard, current), min(soft, current)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    except (ValueError, OSError) as exc:  # pragma: no cover - a platform without it
        log.warning("cannot limit the worker's memory: %s", exc)


class _Redacting(logging.Formatter):
    """Formats as ``inner`` does, then masks every registered secret."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact.redact(self._inner.format(record))


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, with the keys the supervisor's Powertools lines carry."""

    def __init__(self, keys: dict[str, Any]) -> None:
        super().__init__()
        self.keys = keys

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": self.formatTime(record),
            "service": os.environ.get("POWERTOOLS_SERVICE_NAME", "greenlight"),
            **self.keys,
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _configure_logging(setup: messages.Setup) -> None:
    """Plain text on a terminal's command line, else JSON lines: on stderr, redacted."""
    keys = {**setup.log_keys, "worker": setup.label}
    if setup.log_plain:
        inner = logging.Formatter("greenlight: %(levelname)s: %(message)s")
    else:
        inner = _JsonFormatter(keys)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(inner))
    package = logging.getLogger("hooks")
    package.handlers = [handler]
    package.propagate = False
    package.setLevel(setup.log_level or "INFO")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[0] == "--fork-server":
        _fork_server(int(argv[1]))
    out = os.fdopen(int(argv[0]), "wb", buffering=0)
    _preload()
    _serve(out, lambda: _setup(sys.stdin.readline()), lambda: _job(sys.stdin.readline()))


def _write_nothing_here() -> None:
    """What suites' libraries would write beside the code (read-only in Lambda) goes to a
    temporary directory: Hypothesis's example database and caches (OpenAPI suites, and
    pytest suites that use it) unless the environment names a place already."""
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        # One place for every worker of the container (not a new folder per invocation).
        where = os.path.join(tempfile.gettempdir(), "greenlight-hypothesis")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = where


def _setup(line: str) -> messages.Setup:
    if not line.strip():
        raise ConfigError("the worker was started without its set-up")
    return messages.Setup.from_json(json.loads(line))


def _job(line: str) -> messages.Job | None:
    """The job on this line, or None: an empty line means "no job"."""
    return messages.Job.from_json(json.loads(line)) if line.strip() else None


def _serve(
    out: IO[bytes],
    read_setup: Callable[[], messages.Setup],
    read_job: Callable[[], messages.Job | None],
) -> NoReturn:
    """Set up from ``read_setup()``, run the job ``read_job()`` gives, and exit."""
    writer = RecordWriter(out)
    code = EXIT_OK
    try:
        setup = read_setup()
        if setup.environ is not None:  # the environment as it is now, not at our start
            os.environ.clear()
            os.environ.update(setup.environ)
        _write_nothing_here()
        limit_memory(setup.memory_mb, 16)
        _configure_logging(setup)
        prepared: Any = None
        prepare_error: ConfigError | None = None
        try:
            prepared = prepare(setup)
        except ConfigError as exc:  # reported once the job asks for it
            prepare_error = exc
        else:
            if setup.mode == "catalog":
                own = sum(needs_own_worker(s) for s in prepared.suites)
                writer.send(messages.Prepared(own))
        job = read_job()
        gc.enable()  # off while the process started (spawn.WORKER_MAIN): suites run with it
        if job is not None:
            deadline = Deadline(time.monotonic() + job.deadline_in)
            limit_memory(job.memory_mb, job.concurrency)
            redact.register(*job.secrets)
            if job.resolved or job.unresolved:
                from hooks.aws import secrets  # on use: only suites that name secrets

                secrets.provide(job.resolved, job.unresolved)
            if prepare_error is not None:
                raise prepare_error
            run(setup, job, deadline, writer, prepared)
        writer.send(messages.Done())
    except ConfigError as exc:
        writer.send(messages.WorkerFailed("config", str(exc)))
        code = EXIT_CONFIG
    except BaseException as exc:
        log.error("the worker failed: %s: %s", type(exc).__name__, exc)
        log.debug("traceback\n%s", traceback.format_exc())
        writer.send(messages.WorkerFailed("crash", f"{type(exc).__name__}: {exc}"))
        code = EXIT_CRASH
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # Threads of hung checks may still run: end the process without waiting for them.
    os._exit(code)


# ---- the fork server ----
#
# Suites that run user code get a process each. Started afresh, each pays the interpreter
# and pytest's imports (~300 ms of CPU): twenty pytest files spend seconds starting. The
# fork server imports all that once, never runs a suite itself, and forks a worker per
# request: a copy that shares its memory pages until it writes them. It is
# single-threaded, so forking it is safe.
#
# Over its socket (SOCK_SEQPACKET: one message per send) the supervisor sends
# ``{"setup": LINE, "job": LINE}`` with the write end of the new worker's record pipe, and
# reads ``{"ready": ..., "data_mb": ..., "rss_mb": ...}`` once, ``{"forked": PID}`` per
# request (in order), and ``{"exited": PID, "code": N}`` as each worker ends (the server is
# their parent; ``N`` as ``Popen.returncode`` gives it). Each worker starts a session of
# its own, so the supervisor ends it, and whatever it started, with ``killpg``.

#: The largest fork request the server reads.
MAX_FORK_REQUEST = 4 * 1024 * 1024


def _fork_server(sock_fd: int) -> NoReturn:
    import selectors
    import signal
    import socket

    sock = socket.socket(fileno=sock_fd)
    _preload()
    _preload_pytest()
    _warm_up_pytest()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    # What is imported now is never collected: the workers' collections skip it (pytest
    # collects twice per session), and its pages stay shared instead of being touched.
    gc.collect()
    gc.freeze()
    usage = _memory_mb()
    _send(sock, messages.ForkReady(usage["VmData"], usage["VmRSS"]))
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                _reap(sock)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(sock, MAX_FORK_REQUEST, 1)
            except OSError:
                message, fds = b"", []
            if not message:  # the supervisor has gone: so do we (its workers are killed)
                os._exit(0)
            pid = os.fork()
            if pid == 0:  # the worker: it never returns into the server's loop
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in (wake_r, wake_w):
                        os.close(fd)
                    selector.close()
                    sock.close()
                    os.setsid()
                    sys.argv[1:] = [
                        str(fds[0])
                    ]  # as a worker started afresh: hooks.process.worker FD
                    out = os.fdopen(fds[0], "wb", buffering=0)
                    _serve(out, *_forked_request(message))
                finally:
                    os._exit(EXIT_CRASH)
            for fd in fds:
                os.close(fd)
            _send(sock, messages.Forked(pid))
            _reap(sock)


def _forked_request(
    message: bytes,
) -> tuple[Callable[[], messages.Setup], Callable[[], messages.Job]]:
    """The set-up and job of a fork request, read in the worker (a bad request is the
    worker's error to report, never the server's end)."""

    def request() -> messages.ForkRequest:
        return messages.ForkRequest.from_json(json.loads(message))

    return (lambda: request().setup), (lambda: request().job)


def _reap(sock: Any) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, messages.ForkExited(pid, os.waitstatus_to_exitcode(status)))


def _send(sock: Any, message: messages.Message) -> None:
    with contextlib.suppress(OSError):  # the supervisor has gone: nothing to tell
        sock.send(json.dumps(message.to_json()).encode())


def _preload_pytest() -> None:
    """pytest and its own plugins (never a third-party one: no user code runs here)."""
    with contextlib.suppress(Exception):
        # on use: an import that fails is reported as this worker's error (a record), not an exit
        import importlib

        import _pytest.config

        import hooks.suites.pytest_kind
        import hooks.suites.pytest_plugin  # noqa: F401

        for name in _pytest.config.default_plugins:
            with contextlib.suppress(Exception):
                importlib.import_module(f"_pytest.{name}")


_WARM_UP_SUITE = """
import pytest

@pytest.mark.parametrize("i", range(2))
def test_warm_up(http, base_url, target, deployment, i):
    assert http is not None and base_url == target.url and deployment
"""


def _warm_up_pytest() -> int | None:
    """One pytest session of Greenlight's own, before any fork: what pytest and requests
    build on first use (fixture and hook caches, assertion rewriting, a session with its
    settings) is then built once, not in every worker. Plugins installed in the
    environment are not loaded here: no code but pytest's and Greenlight's runs."""
    import tempfile

    with contextlib.suppress(Exception):
        # on use: an import that fails is reported as this worker's error (a record), not an exit
        import pytest

        from hooks.suites import pytest_entry, pytest_plugin
        from hooks.suites.pytest_kind import QUIET_ARGS, isolated

        with tempfile.TemporaryDirectory(prefix="greenlight-warm-up-") as folder:
            path = Path(folder) / "test_greenlight_fork_server_warm_up.py"
            path.write_text(_WARM_UP_SUITE)
            try:
                with isolated():
                    # The options come with the entry point's module (passed in, not loaded).
                    return int(
                        pytest.main(
                            [
                                str(path),
                                *QUIET_ARGS,
                                f"--rootdir={folder}",
                                "--target-url=http://-",
                            ],
                            plugins=[pytest_entry, pytest_plugin],
                        )
                    )
            finally:
                sys.modules.pop(path.stem, None)
    return None  # the warm-up is an optimisation: whatever failed, forks work as before


def _memory_mb() -> dict[str, float]:
    """This process's ``VmData`` (what ``RLIMIT_DATA`` counts) and ``VmRSS``, in MB."""
    found = {"VmData": 0.0, "VmRSS": 0.0}
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in found:
                found[key] = int(value.split()[0]) / 1024
    return found


if __name__ == "__main__":
    main()
