"""The supervisor: runs suites in worker processes and decides from what they report.

The hook's process never loads or runs suite code. For each invocation it starts a fresh
*catalog* worker, which finds and selects the suites, lists them (with the checks each
must report) and runs the declarative ones; every suite that runs user code (pytest,
plugins) gets a worker of its own, a bounded number at a time. Workers stream
:mod:`hooks.process.messages` records over a pipe.

At the deadline every worker's process group is killed. Then each listed suite is
assembled from its records: a check it had to report and did not is a failure that says
why ("did not run: ..."): the deadline, the worker's death (exit code or signal), or the
suite returning early. A worker that ends before listing its suites fails the gate.
Nothing a suite does — patch a library, hold a lock, spin in a regex, allocate without
bound, call ``os._exit`` — reaches this process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

from hooks.core.deadline import LAMBDA_MAX_SECONDS, Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.results import CheckResult, Policy, Status, SuiteResult
from hooks.process import messages
from hooks.process.spawn import launch, launch_fork_server, take_fork_server, take_spare, worker_env

__all__ = [
    "FORK_REPLY_SECONDS",
    "MAX_PARALLEL",
    "MAX_WORKER_OUTPUT_BYTES",
    "MIN_FORKED_MB",
    "MIN_WORKER_MB",
    "SUPERVISOR_RESERVE_MB",
    "WORKER_LEAD",
    "ForkServer",
    "ForkedProcess",
    "ListedSuite",
    "SupervisedRun",
    "Supervisor",
    "Worker",
    "catalog_share",
    "run_supervised",
]

log = logging.getLogger(__name__)

#: Workers finish this much before the supervisor's deadline, to say what they have.
WORKER_LEAD = 0.25
#: Memory kept for the supervisor (and the report) out of the function's memory.
SUPERVISOR_RESERVE_MB = 128
#: The least memory a worker is started with.
MIN_WORKER_MB = 96
#: Workers of their own running at once, at most (besides the catalog worker).
MAX_PARALLEL = 4
#: How long the fork server may take to fork a worker before it is taken for stuck.
FORK_REPLY_SECONDS = 10.0
#: The least memory a forked worker may take beyond the pages it shares with the server
#: (a pytest file of HTTP tests takes ~10 MB; thread stacks are counted apart).
MIN_FORKED_MB = 24
#: The most a worker may send; past it, it is stopped (this process's memory stays bounded).
MAX_WORKER_OUTPUT_BYTES = 64 * 1024 * 1024


@dataclass
class ListedSuite:
    """A suite as the catalog worker listed it, and what its workers said since."""

    id: int
    name: str
    kind: str
    source: str | None
    policy: Policy
    own_worker: bool
    origin: Mapping[str, Any] | None
    #: The green task this copy of a suite addresses directly (per-target runs).
    green_target: messages.GreenTask | None = None
    #: False when the catalog could not load it (an error in its file, plugin or the plan).
    loaded: bool = True
    #: Parallel parts it asks a state machine for (a load's ``workers``).
    shards: int = 1
    expected: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    worker: Worker | None = None


@dataclass
class Worker:
    """One worker process and what it said about itself."""

    label: str
    process: subprocess.Popen[bytes] | ForkedProcess
    reader: threading.Thread | None = None
    eof: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: str | None = None
    config_error: str | None = None
    protocol_errors: list[str] = field(default_factory=list)
    killed_at_deadline: bool = False
    #: Why the supervisor stopped it before the deadline, if it did.
    stopped: str | None = None
    received: int = 0
    #: When its record stream ended (monotonic clock).
    ended_at: float = float("inf")

    def ending(self) -> str:
        """How the process ended, in words."""
        if self.killed_at_deadline:
            return "was stopped at the deadline"
        if self.stopped:
            return f"was stopped: {self.stopped}"
        code = self.process.poll()
        if code is None:
            return "was still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"was killed by {name}{hint}"
        if self.error or self.config_error:
            return f"failed: {self.error or self.config_error}"
        if code != 0:
            return f"exited with code {code}"
        return "exited" if self.done else "exited without finishing its work"


@dataclass
class SupervisedRun:
    """What every worker is set up with, the function's memory, and where results go.

    ``setup`` holds what is known as the invocation begins: the suites directory and how to
    log. The job follows in :meth:`execute`.
    """

    setup: messages.Setup
    memory_mb: int | None = None
    on_check: Callable[[Any, CheckResult], None] | None = None


def _spawn(label: str, setup: messages.Setup, job: messages.Job | None) -> tuple[Worker, IO[bytes]]:
    """A worker (the spare, if there is one that fits) with its set-up on stdin, and its job
    too when given (else stdin stays open)."""
    env = worker_env()
    process, stream = take_spare(env) or launch(env)
    worker = Worker(label, process)
    try:
        assert process.stdin is not None
        process.stdin.write(replace(setup, label=label, environ=env).line())
        process.stdin.flush()
        if job is not None:
            _send_job(worker, job)
    except OSError:  # it died at once: its ending says how
        pass
    return worker, stream


class ForkedProcess:
    """A worker the fork server forked: what the supervisor needs of a ``Popen``.

    The server is its parent and says when it exits, and how (``returncode`` as ``Popen``
    gives it); it leads a session of its own, so ``killpg(pid)`` ends it whole.
    """

    stdin = None

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._server = server
        self._ended = threading.Event()

    def exited(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        if self.returncode is None and self._server.lost and not _alive(self.pid):
            self.exited(255)  # its parent died first: how it ended is not known
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = time.monotonic() + (timeout if timeout is not None else LAMBDA_MAX_SECONDS)
        while self.poll() is None:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            self._ended.wait(min(remaining, 0.05))
        assert self.returncode is not None
        return self.returncode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a pid reused by another user
        return False
    return True


class ForkServer:
    """A process that imports the suite kinds (pytest too) once and forks a worker per
    suite that needs one of its own: starting one costs a fork, not an interpreter.

    See ``hooks.process.worker`` for the protocol. If it cannot start or dies, workers are
    started afresh instead (:meth:`Supervisor._start`).
    """

    def __init__(self) -> None:
        env = worker_env()
        self.process, self.sock = take_fork_server(env) or launch_fork_server(env)
        self.lost = False
        self.ready = threading.Event()
        self.data_mb = 0.0
        self.rss_mb = 0.0
        self._forked: list[int] = []
        self._replies = threading.Condition()
        self._children: dict[int, ForkedProcess] = {}
        self._exited: dict[int, int] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._listen, daemon=True, name="greenlight-forks").start()

    def _listen(self) -> None:
        try:
            while True:
                message = self.sock.recv(65536)
                if not message:
                    break
                reply = messages.decode_fork_reply(message)
                with self._replies:
                    if isinstance(reply, messages.ForkReady):
                        self.data_mb, self.rss_mb = reply.data_mb, reply.rss_mb
                        self.ready.set()
                    elif isinstance(reply, messages.Forked):
                        self._forked.append(reply.pid)
                    else:
                        pid, code = reply.pid, reply.code
                        child = self._children.get(pid)
                        if child is not None:
                            child.exited(code)
                        else:
                            self._exited[pid] = code
                    self._replies.notify_all()
        except messages.ProtocolError as exc:
            log.error("the fork server sent something unreadable: %s", exc)
        except OSError as exc:  # its socket closed under us: it is lost, workers start afresh
            log.debug("the fork server's socket closed: %s", exc)
        finally:
            with self._replies:
                self.lost = True
                self.ready.set()
                self._replies.notify_all()

    def wait_ready(self, deadline: Deadline) -> bool:
        return self.ready.wait(max(deadline.remaining(), 0)) and not self.lost

    def fork(
        self, setup: messages.Setup, job: messages.Job, wait: float = 10.0
    ) -> tuple[ForkedProcess, IO[bytes]]:
        """A new worker running ``job``, and the read end of its records; OSError if the
        server does not answer within ``wait`` seconds."""
        import socket

        request = json.dumps(messages.ForkRequest(setup, job).to_json(), default=str).encode()
        read_fd, write_fd = os.pipe()
        try:
            with self._lock:
                try:
                    socket.send_fds(self.sock, [request], [write_fd])
                finally:
                    os.close(write_fd)
                end = time.monotonic() + wait
                with self._replies:
                    while not self._forked and not self.lost and time.monotonic() < end:
                        self._replies.wait(min(max(end - time.monotonic(), 0), 1))
                    if not self._forked:
                        if not self.lost:  # stuck: ended, so that it cannot fork late
                            self.lost = True
                            with contextlib.suppress(ProcessLookupError, PermissionError):
                                os.killpg(self.process.pid, signal.SIGKILL)
                        raise OSError("the fork server did not answer")
                    pid = self._forked.pop(0)
                    child = ForkedProcess(pid, self)
                    self._children[pid] = child
                    if pid in self._exited:
                        child.exited(self._exited.pop(pid))
        except BaseException:
            os.close(read_fd)
            raise
        return child, os.fdopen(read_fd, "rb")

    def close(self) -> None:
        """End the server (its workers are ended one by one, by their own groups)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(2)  # wakes the listening thread
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)


def _send_job(worker: Worker, job: messages.Job | None) -> None:
    """The job line (or an empty one: no job), then end of input."""
    stdin = worker.process.stdin
    if stdin is None or stdin.closed:
        return
    try:
        stdin.write(job.line() if job is not None else b"\n")
        stdin.close()
    except OSError:  # it died already: its ending says how
        pass


def _kill(worker: Worker) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.process.pid, signal.SIGKILL)
    try:
        worker.process.wait(timeout=2)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignored
        log.error("worker %s did not end after SIGKILL", worker.label)


class Supervisor:
    """Starts the catalog worker at once (:meth:`start`), runs the job (:meth:`execute`),
    and always ends every worker (:meth:`close`)."""

    def __init__(self, run: SupervisedRun) -> None:
        self.run = run
        self.suites: dict[int, ListedSuite] = {}
        self.listed = threading.Event()
        self.changed = threading.Condition()
        self.workers: list[Worker] = []
        self.deadline = Deadline.in_seconds(LAMBDA_MAX_SECONDS)
        memory = run.memory_mb
        #: Memory for all workers together, in MB (None: no limit).
        self.budget = None if memory is None else max(memory - SUPERVISOR_RESERVE_MB, MIN_WORKER_MB)
        self.catalog: Worker | None = None
        #: Forks the workers of suites that need their own, once there are any.
        self.forks: ForkServer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> Supervisor:
        """Start the catalog worker now: it imports and loads suites while the plan is made."""
        setup = replace(self.run.setup, mode="catalog", memory_mb=catalog_share(self.budget))
        self._start("catalog", setup, None)
        return self

    def close(self) -> None:
        """End every worker's process group (idempotent); no worker outlives the invocation."""
        with self._lock:
            self._closed = True
            workers = list(self.workers)
        for worker in workers:
            if worker.process.poll() is None and not worker.eof.is_set():
                worker.killed_at_deadline = worker.killed_at_deadline or self.deadline.expired()
            _kill(worker)  # its whole group: whatever its suites left running
        if self.forks is not None:
            self.forks.close()
        for worker in workers:
            if worker.reader is not None:
                worker.reader.join(timeout=1)

    # ---- records ----

    def _read(self, worker: Worker, stream: IO[bytes]) -> None:
        try:
            while True:
                line = stream.readline(messages.MAX_RECORD_BYTES)
                if not line:
                    break
                worker.received += len(line)
                if worker.received > MAX_WORKER_OUTPUT_BYTES:
                    worker.stopped = (
                        f"it sent more than {MAX_WORKER_OUTPUT_BYTES >> 20} MiB of results"
                    )
                    _kill(worker)
                    break
                if not line.endswith(b"\n"):
                    worker.protocol_errors.append("a record longer than the limit")
                    stream.readline()  # drop the rest of it
                    continue
                try:
                    self._handle(worker, messages.decode(line))
                except messages.ProtocolError as exc:
                    worker.protocol_errors.append(str(exc))
                    log.error("worker %s sent a bad record: %s", worker.label, exc)
        finally:
            stream.close()
            worker.ended_at = time.monotonic()
            worker.eof.set()
            with self.changed:
                self.changed.notify_all()

    def _handle(self, worker: Worker, record: messages.Record) -> None:
        now = time.monotonic()
        if isinstance(record, messages.Listing):
            # Only the catalog worker lists, once: a suite's own worker runs user code,
            # which could write to the pipe it inherited.
            if worker is not self.catalog or self.listed.is_set():
                raise messages.ProtocolError(f"worker {worker.label} sent a second listing")
            with self.changed:
                for item in record.suites:
                    suite = ListedSuite(
                        id=item.id,
                        name=item.name,
                        kind=item.kind,
                        source=item.source,
                        policy=item.policy,
                        own_worker=item.own_worker,
                        origin=item.origin,
                        green_target=item.green_target,
                        expected=list(item.checks),
                        error=item.error,
                        loaded=item.error is None,
                        shards=item.shards,
                    )
                    if not suite.own_worker:
                        suite.worker = worker
                    self.suites[suite.id] = suite
            log.debug("worker %s listed %d suites", worker.label, len(record.suites))
            self.listed.set()
            return
        if isinstance(record, messages.Prepared):
            # The catalog holds suites that need workers of their own: start forking them
            # now, while the plan is made, rather than once the suites are listed.
            if worker is self.catalog and record.own_workers:
                self._start_forks()
            return
        if isinstance(record, messages.Done):
            worker.done = True
            return
        if isinstance(record, messages.WorkerFailed):
            if record.kind == "config":
                worker.config_error = record.message
            else:
                worker.error = record.message
            return
        if record.suite not in self.suites:
            raise messages.ProtocolError(f"worker {worker.label} named no listed suite")
        suite = self.suites[record.suite]
        if suite.worker is not worker:  # records about a suite come from its own worker only
            raise messages.ProtocolError(
                f"worker {worker.label} sent a record for suite {suite.name!r}, not its own"
            )
        if isinstance(record, messages.Started):
            suite.started = now
        elif isinstance(record, messages.Expect):
            suite.expected.extend(n for n in record.checks if n not in suite.expected)
        elif isinstance(record, messages.CheckDone):
            suite.results.append(record.result)
            self._progress(suite, record.result)
        else:
            suite.finished = now
            suite.error = record.error or suite.error

    def _progress(self, suite: ListedSuite, result: CheckResult) -> None:
        if self.run.on_check is not None:
            try:
                self.run.on_check(suite, result)
            except Exception:  # progress output never breaks a run
                log.exception("progress callback failed")

    # ---- processes ----

    def _start(
        self,
        label: str,
        setup: messages.Setup,
        job: messages.Job | None,
        suite: ListedSuite | None = None,
    ) -> Worker:
        """Spawn a worker; who it speaks for (the catalog, or ``suite``) is known before any
        of its records is read."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the supervisor is closed")
            worker, stream = self._fork(label, setup, job) or _spawn(label, setup, job)
            self.workers.append(worker)
        if suite is not None:
            suite.worker = worker
        elif self.catalog is None:
            self.catalog = worker
        worker.reader = threading.Thread(
            target=self._read, args=(worker, stream), daemon=True, name=f"greenlight-{label}"
        )
        worker.reader.start()
        return worker

    def _fork(
        self, label: str, setup: messages.Setup, job: messages.Job | None
    ) -> tuple[Worker, IO[bytes]] | None:
        """A worker from the fork server, if it is running and answers."""
        forks = self.forks
        if forks is None or job is None or forks.lost or not forks.ready.is_set():
            return None
        try:
            process, stream = forks.fork(
                replace(setup, label=label, environ=worker_env()),
                job,
                wait=max(min(self.deadline.remaining(), FORK_REPLY_SECONDS), 0.0),
            )
        except Exception as exc:
            log.warning("the fork server failed (%s): starting workers afresh", exc)
            return None
        return Worker(label, process), stream

    def _own_workers(
        self, own: int, catalog_runs: bool, concurrency: int
    ) -> tuple[int, int | None]:
        """How many workers of their own run at once, and the memory (MB) each may use.

        Forked workers share the fork server's pages: each may grow by its part of what
        the server leaves, and as many run at once as the plan's concurrency allows (each
        runs one check at a time). The catalog worker keeps its share only if it runs
        suites; else it has ended (it exits once it has listed them).
        """
        budget = self.budget
        rest = None if budget is None else budget - (catalog_share(budget) or 0) * catalog_runs
        forks = self.forks
        if forks is not None and forks.wait_ready(self.deadline):
            parallel = max(1, min(own, concurrency))
            if rest is None:
                return parallel, None
            free = rest - forks.rss_mb
            parallel = max(1, min(parallel, int(free // MIN_FORKED_MB)))
            growth = max(int(free // parallel), MIN_FORKED_MB // 2)
            return parallel, int(forks.data_mb) + growth
        parallel = min(own, MAX_PARALLEL)
        if rest is None:
            return parallel, None
        parallel = max(1, min(parallel, rest // MIN_WORKER_MB))
        return parallel, max(rest // parallel, MIN_WORKER_MB // 2)

    def _job(self, job: messages.Job, **extra: Any) -> messages.Job:
        remaining = max(self.deadline.remaining() - WORKER_LEAD, 0.0)
        return job.for_worker(deadline_in=remaining, **extra)

    def _wait(self, until: Callable[[], bool]) -> bool:
        """Wait until ``until()`` or the deadline; True when ``until()`` came true."""
        with self.changed:
            while not until():
                remaining = self.deadline.remaining()
                if remaining <= 0:
                    return False
                self.changed.wait(min(remaining, 0.05))
        return True

    def list_suites(self, job: messages.Job, deadline: Deadline) -> list[ListedSuite]:
        """The suites the job would run, as the catalog worker lists them; none is run."""
        self.deadline = deadline
        if self.catalog is None:
            self.start()
        catalog = self.catalog
        assert catalog is not None
        _send_job(catalog, self._job(job, list_only=True, memory_mb=catalog_share(self.budget)))
        self._wait(lambda: self.listed.is_set() or catalog.eof.is_set())
        if catalog.config_error:
            raise ConfigError(catalog.config_error)
        if not self.listed.is_set():
            raise ConfigError(
                f"the suite worker {catalog.ending()} before it listed the suites"
                + _protocol_note(catalog)
            )
        return sorted(self.suites.values(), key=lambda suite: suite.id)

    def listing(self) -> list[ListedSuite]:
        """The suites the catalog worker listed, in its order (empty before it listed)."""
        if not self.listed.is_set():
            return []
        return sorted(self.suites.values(), key=lambda suite: suite.id)

    def execute(self, job: messages.Job, deadline: Deadline) -> tuple[list[SuiteResult], bool]:
        """Run every planned suite; the results and whether the deadline cut the run short."""
        self.deadline = deadline
        if self.catalog is None:
            self.start()
        catalog = self.catalog
        assert catalog is not None
        budget = self.budget
        try:
            _send_job(catalog, self._job(job, memory_mb=catalog_share(budget)))
            self._wait(lambda: self.listed.is_set() or catalog.eof.is_set())
            if catalog.config_error:
                raise ConfigError(catalog.config_error)
            if not self.listed.is_set():
                return self._unlisted(catalog), self.deadline.expired()
            own = [s for s in self.suites.values() if s.own_worker]
            parallel, share = 0, None
            if own:
                self._start_forks()
                catalog_runs = any(not s.own_worker for s in self.suites.values())
                if not catalog_runs:  # it exits once it has listed: its memory is free
                    self._wait(lambda: catalog.eof.is_set())
                concurrency = job.concurrency or MAX_PARALLEL
                parallel, share = self._own_workers(len(own), catalog_runs, concurrency)
            elif self.forks is not None:  # started on the catalog's hint, not needed after all
                self.forks.close()
            queue = list(own)
            running: list[Worker] = []
            while queue or running or not catalog.eof.is_set():
                running = [w for w in running if not w.eof.is_set()]
                while queue and len(running) < parallel and not self.deadline.expired():
                    suite = queue.pop(0)
                    setup = replace(self.run.setup, mode="suite", memory_mb=share)
                    worker = self._start(
                        f"suite-{suite.id}",
                        setup,
                        self._job(
                            job,
                            memory_mb=share,
                            suite=suite.id,
                            origin=suite.origin,
                            green_target=suite.green_target,
                        ),
                        suite,
                    )
                    running.append(worker)
                if self.deadline.expired():
                    break
                # Wait for one that is still going: one that has ended would end every wait
                # at once, and the loop would spin a core for as long as the suites run.
                going = [w for w in [*running, catalog] if not w.eof.is_set()]
                self._wait(_any_ended(going) if going else lambda: True)
                if catalog.eof.is_set() and not queue and all(w.eof.is_set() for w in running):
                    break
        finally:
            self.close()
        return self._assemble()

    def _start_forks(self) -> None:
        with self._lock:
            if self._closed or self.forks is not None:
                return
            try:
                self.forks = ForkServer()
            except Exception as exc:  # no fork here (a platform without SOCK_SEQPACKET...)
                log.warning("no fork server (%s): starting workers afresh", exc)

    # ---- the results ----

    def _unlisted(self, catalog: Worker) -> list[SuiteResult]:
        if self.deadline.expired():
            catalog.killed_at_deadline = True
        return [
            SuiteResult(
                "(suites)",
                "worker",
                error=f"the suite worker {catalog.ending()} before it listed the suites"
                + _protocol_note(catalog),
            )
        ]

    def _assemble(self) -> tuple[list[SuiteResult], bool]:
        # Long: every way a suite can end, in one place, so that none is forgotten.
        now = time.monotonic()
        results: list[SuiteResult] = []
        cut_short = False
        for suite in sorted(self.suites.values(), key=lambda s: s.id):
            checks = list(suite.results)
            reported = {c.name for c in checks}
            missing = [n for n in suite.expected if n not in reported]
            worker = suite.worker
            if suite.finished is not None:
                if missing and suite.error is None:
                    for name in missing:
                        result = CheckResult(
                            name,
                            Status.ERROR,
                            message="did not run: the suite returned without reporting it",
                        )
                        checks.append(result)
                        self._progress(suite, result)
            else:
                at_deadline = (
                    worker is None
                    or worker.killed_at_deadline
                    or worker.ended_at >= self.deadline.at - WORKER_LEAD - 0.05
                )
                cut_short = cut_short or at_deadline
                status = Status.TIMED_OUT if at_deadline else Status.ERROR
                when = (
                    "while the suite was running" if suite.started else "before the suite started"
                )
                if at_deadline:
                    cause = f"deadline reached {when}"
                else:
                    assert worker is not None
                    cause = f"its worker process {worker.ending()} {when}"
                    cause += _protocol_note(worker)
                named = [CheckResult(n, status, message=f"did not run: {cause}") for n in missing]
                if not missing:
                    named.append(CheckResult("(suite)", status, message=f"did not finish: {cause}"))
                checks += named
                for result in named:  # shown as it is known, like every other result
                    self._progress(suite, result)
            if worker is not None and worker.protocol_errors:
                # Records it had no business sending (another suite's, a second listing,
                # garbage): nothing this worker said about its own suites is trusted.
                tainted = CheckResult(
                    "(worker)",
                    Status.ERROR,
                    message=f"its worker sent {len(worker.protocol_errors)} bad records: "
                    f"{worker.protocol_errors[0]}",
                )
                checks.append(tainted)
                self._progress(suite, tainted)
            start = suite.started if suite.started is not None else now
            results.append(
                SuiteResult(
                    name=suite.name,
                    kind=suite.kind,
                    checks=tuple(checks),
                    error=suite.error,
                    policy=suite.policy,
                    duration=(suite.finished or now) - start,
                    source=suite.source,
                    loaded=suite.loaded,
                )
            )
        return results, cut_short


def _any_ended(workers: list[Worker]) -> Callable[[], bool]:
    return lambda: any(w.eof.is_set() for w in workers)


def _protocol_note(worker: Worker) -> str:
    if not worker.protocol_errors:
        return ""
    return f" (and sent {len(worker.protocol_errors)} bad records: {worker.protocol_errors[0]})"


def catalog_share(budget: int | None) -> int | None:
    """The catalog worker's memory: half the workers' budget (the rest for suites' own)."""
    return None if budget is None else max(budget // 2, MIN_WORKER_MB)


def run_supervised(
    run: SupervisedRun, job: messages.Job, deadline: Deadline
) -> tuple[list[SuiteResult], bool]:
    """Run the job's suites in workers; every listed suite's result, and whether cut short."""
    return Supervisor(run).start().execute(job, deadline)
