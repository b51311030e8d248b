"""Run suites concurrently under a bound, every check under the deadline (in the worker).

Each suite runs in its own daemon thread and emits check results as they complete. At the
deadline the runner stops waiting: the checks a suite had not reported become
``timed_out`` results naming them, and ``deadline_reached`` is set. Whatever a suite
raises (``KeyboardInterrupt`` and ``SystemExit`` included) becomes its error.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from hooks.core.deadline import Deadline
from hooks.core.pool import WorkerPool
from hooks.core.results import CheckResult, Status, SuiteResult
from hooks.core.target import Target
from hooks.suites.base import DeploymentInfo, Suite, SuiteContext
from hooks.suites.registry import BrokenSuite

__all__ = ["DEFAULT_CONCURRENCY", "RunListener", "RunResult", "run_suites"]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class RunResult:
    suites: tuple[SuiteResult, ...]
    deadline_reached: bool = False
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "deadline_reached": self.deadline_reached,
            "duration": round(self.duration, 4),
            "suites": [s.to_dict() for s in self.suites],
        }


class RunListener(Protocol):
    """Told of each suite's start and end and of each check result, as they happen."""

    def started(self, suite: Suite) -> None: ...

    def expected(self, suite: Suite, names: list[str]) -> None: ...

    def check(self, suite: Suite, result: CheckResult) -> None: ...

    def finished(self, suite: Suite, error: str | None) -> None: ...


@dataclass
class _SuiteRun:
    suite: Suite
    results: list[CheckResult] = field(default_factory=list)
    #: Names of the checks reported (kept even when the results are only streamed).
    reported: set[str] = field(default_factory=set)
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def result(self, now: float) -> SuiteResult:
        with self.lock:
            checks = list(self.results)
        if not self.done.is_set():
            reported = {c.name for c in checks}
            what = "still running" if self.started is not None else "not started"
            missing = [n for n in self.suite.check_names() if n not in reported]
            for name in missing:
                checks.append(
                    CheckResult(name, Status.TIMED_OUT, message=f"deadline reached: {what}")
                )
            if not missing:
                checks.append(
                    CheckResult(
                        "(suite)", Status.TIMED_OUT, message=f"deadline reached: suite {what}"
                    )
                )
        start = self.started if self.started is not None else now
        return SuiteResult(
            name=self.suite.name,
            kind=self.suite.kind,
            checks=tuple(checks),
            error=self.error,
            policy=self.suite.policy,
            duration=(self.finished or now) - start,
            source=self.suite.source,
        )


def run_suites(
    suites: Sequence[Suite],
    *,
    target: Target,
    deployment: DeploymentInfo,
    deadline: Deadline,
    concurrency: int = DEFAULT_CONCURRENCY,
    suite_concurrency: int | None = None,
    request_timeout: float = 10.0,
    on_check: Callable[[Suite, CheckResult], None] | None = None,
    listener: RunListener | None = None,
    max_body_bytes: int | None = None,
    plugins: tuple[str, ...] = (),
) -> RunResult:
    """Run ``suites`` and return their results by the deadline, whatever the suites do.

    With a ``listener`` (the worker), each result is handed to it as it completes and not
    kept: the returned suites then hold no checks, which keeps memory flat at scale.
    """
    started = time.monotonic()
    pool = WorkerPool(concurrency, name="greenlight-check")
    runner = _Runner(
        deadline=deadline,
        # One bound for both: suites at once, and checks at once across all suites.
        slots=threading.BoundedSemaphore(max(suite_concurrency or concurrency, 1)),
        listener=listener,
        on_check=on_check,
        context=partial(
            SuiteContext,
            target=target,
            deployment=deployment,
            deadline=deadline,
            pool=pool,
            request_timeout=request_timeout,
            max_body_bytes=max_body_bytes,
            plugins=plugins,
        ),
    )
    runs = [_SuiteRun(suite) for suite in suites]
    for run in runs:
        if isinstance(run.suite, BrokenSuite):  # could not load: nothing to run
            run.error = run.suite.error
            run.started = time.monotonic()
            runner.finish(run)
            continue
        threading.Thread(
            target=runner.execute,
            args=(run,),
            daemon=True,
            name=f"greenlight-suite-{run.suite.name}",
        ).start()
    for run in runs:
        run.done.wait(timeout=deadline.remaining())
    pool.shutdown()
    now = time.monotonic()
    results = tuple(run.result(now) for run in runs)
    reached = any(not run.done.is_set() for run in runs)
    return RunResult(results, deadline_reached=reached, duration=now - started)


@dataclass
class _Runner:
    """What every suite's thread shares: the deadline, the slots, where results go."""

    deadline: Deadline
    slots: threading.BoundedSemaphore
    listener: RunListener | None
    on_check: Callable[[Suite, CheckResult], None] | None
    #: Builds a suite's :class:`SuiteContext` from its ``emit`` and ``expect``.
    context: Callable[..., SuiteContext]

    def execute(self, run: _SuiteRun) -> None:
        if not self.slots.acquire(timeout=self.deadline.remaining()):
            return  # never started: the runner reports it as timed out
        try:
            run.started = time.monotonic()
            if self.listener is not None:
                self.listener.started(run.suite)
            context = self.context(
                emit=partial(self.emit, run),
                expect=partial(self.expect, run),
                secret_origins=tuple(run.suite.secret_origins),
            )
            try:
                run.suite.run(context)
            finally:
                context.close()
        except BaseException as exc:  # a suite must not end the worker's run, whatever it does
            log.error("suite %r raised %s: %s", run.suite.name, type(exc).__name__, exc)
            log.debug("traceback of suite %r\n%s", run.suite.name, traceback.format_exc())
            run.error = (
                f"suite {run.suite.name!r} ({run.suite.kind}) raised {type(exc).__name__}: {exc}"
            )
        finally:
            self.slots.release()
        # A suite that returned because time ran out, with checks unreported, stays
        # unfinished: the runner names those checks as timed out.
        reported = run.reported
        if (
            self.deadline.expired()
            and run.error is None
            and any(n not in reported for n in run.suite.check_names())
        ):
            return
        self.finish(run)

    def finish(self, run: _SuiteRun) -> None:
        run.finished = time.monotonic()
        # Told before it counts as done: the worker may exit as soon as every suite is done,
        # and a suite whose end was never told would read as unfinished.
        if self.listener is not None:
            self.listener.finished(run.suite, run.error)
        run.done.set()

    def emit(self, run: _SuiteRun, result: CheckResult) -> None:
        with run.lock:
            run.reported.add(result.name)
            if self.listener is None:  # a listener streams them: no second copy here
                run.results.append(result)
        for callback in (self.on_check, self.listener.check if self.listener else None):
            if callback is None:
                continue
            try:
                callback(run.suite, result)
            except Exception:  # progress output must never break a run
                log.exception("progress callback failed")

    def expect(self, run: _SuiteRun, names: list[str]) -> None:
        if self.listener is not None:
            self.listener.expected(run.suite, list(names))
