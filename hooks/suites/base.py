"""The suite plugin API.

A **suite kind** loads suites of one family from files (``SuiteKind.load``); a **suite** is
a named collection of checks that runs against a :class:`~hooks.core.target.Target` and emits one
:class:`~hooks.core.results.CheckResult` per check through ``ctx.emit``.

A minimal kind, registered in a package's ``pyproject.toml``::

    [project.entry-points."greenlight.suites"]
    ping = "my_package:PingKind"

    class PingCheck(Check):
        def run(self, ctx: SuiteContext) -> CheckResult:
            response = ctx.session.get(ctx.target.resolve("/ping"))
            status = Status.PASSED if response.ok else Status.FAILED
            return CheckResult(self.name, status, message=f"HTTP {response.status_code}")

    class PingKind(SuiteKind):
        name = "ping"
        def claims(self, path: Path) -> bool:
            return path.suffix == ".ping"
        def load(self, path: Path) -> list[Suite]:
            return [CheckSuite(name=path.stem, kind=self.name, source=str(path),
                               checks=[PingCheck(line) for line in path.read_text().split()])]
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import re
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hooks.core.deadline import Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.pool import WorkerPool
from hooks.core.results import CheckResult, Policy, Status
from hooks.core.target import Target
from hooks.core.yamlfile import load_document, validate

if TYPE_CHECKING:
    from hooks.core.fetch import Fetcher
    from hooks.core.http import CheckSession

__all__ = [
    "QUEUED_PER_THREAD",
    "YAML_SUFFIXES",
    "Check",
    "CheckSuite",
    "DeclaredKind",
    "DeclaredSuite",
    "DeploymentInfo",
    "Suite",
    "SuiteContext",
    "SuiteKind",
    "declared_kind",
    "is_openapi_document",
    "parse_events",
    "run_guarded",
]

#: Checks a concurrent suite keeps queued on the pool per thread (the rest wait their turn).
QUEUED_PER_THREAD = 4

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeploymentInfo:
    """What a suite knows of the deployment it gates."""

    deployment_id: str
    execution_id: str
    lifecycle_event: LifecycleEvent
    application: str | None = None
    deployment_group: str | None = None
    #: The Amazon ECS lifecycle stage (ECS native blue/green), else None.
    stage: str | None = None
    #: ``traffic.test_weight`` / ``traffic.production_weight``: green's share at this call.
    traffic: Mapping[str, str] = field(default_factory=dict)
    #: When this gate began (epoch seconds): its first call, for a gate that ECS calls
    #: again. Metrics windows start here.
    since: float | None = None
    #: ``(index, count)``: this run is one of ``count`` parallel parts of a suite that asked
    #: for several (a state machine's shards); None: the whole suite.
    part: tuple[int, int] | None = None

    def variables(self) -> dict[str, str]:
        return {
            "deployment.id": self.deployment_id,
            "deployment.execution_id": self.execution_id,
            "deployment.lifecycle_event": self.lifecycle_event.value,
            "deployment.application": self.application or "",
            "deployment.group": self.deployment_group or "",
            "deployment.stage": self.stage or "",
            "traffic.test_weight": self.traffic.get("traffic.test_weight", ""),
            "traffic.production_weight": self.traffic.get("traffic.production_weight", ""),
        }


@dataclass
class SuiteContext:
    """Everything a running suite may use. One context per suite run."""

    target: Target
    deployment: DeploymentInfo
    deadline: Deadline
    pool: WorkerPool
    emit: Callable[[CheckResult], None] = lambda result: None
    request_timeout: float = 10.0
    #: Variables of this run (a suite's own, then captures), for suites that template.
    scope: dict[str, str] = field(default_factory=dict)
    #: Declares checks learned while running (pytest after collection): each must report.
    expect: Callable[[list[str]], None] = lambda names: None
    #: Largest response body a request may read (decompressed); None: the default.
    max_body_bytes: int | None = None
    #: pytest plugins the plan names (``plugins``): the only ones a pytest suite loads,
    #: besides those its own files name with ``pytest_plugins``.
    plugins: tuple[str, ...] = ()
    #: Origins besides the target's this suite may send credentials to (its own
    #: ``secret_origins``).
    secret_origins: tuple[str, ...] = ()

    @cached_property
    def fetcher(self) -> Fetcher:
        """Blocking requests to the target on the HTTP engine (declarative checks): the
        session's rules, without its per-request cost."""
        # on use: the engine loads in the workers that send requests, never in the hook's process
        from hooks.core.fetch import Fetcher

        return Fetcher(
            self.target,
            deployment_id=self.deployment.deployment_id,
            deadline=self.deadline,
            timeout=self.request_timeout,
            max_body_bytes=self.max_body_bytes,
            secret_origins=self.secret_origins,
        )

    def close(self) -> None:
        """End the connections this run opened (its fetcher's and its session's, if used)."""
        for name in ("fetcher", "session"):
            opened = self.__dict__.get(name)
            if opened is not None:
                try:
                    opened.close()
                except Exception:  # closing must not fail a run that has ended
                    log.debug("closing the %s failed", name, exc_info=True)

    @cached_property
    def session(self) -> CheckSession:
        """An HTTP session for the target: headers, TLS, host name, timeouts under the deadline."""
        # on use: requests loads in the workers that send requests, never in the hook's process
        from hooks.core.http import make_session

        return make_session(
            self.target,
            deployment_id=self.deployment.deployment_id,
            deadline=self.deadline,
            timeout=self.request_timeout,
            pool_size=self.pool.max_workers,
            max_body_bytes=self.max_body_bytes,
            secret_origins=self.secret_origins,
        )

    def variables(self) -> dict[str, str]:
        """Variables from the deployment and the target, for templating."""
        values = self.deployment.variables()
        values["target.url"] = self.target.url
        if self.target.prod_url:  # else ${target.prod_url} is an error, never green's URL
            values["target.prod_url"] = self.target.prod_url
        values["target.host"] = self.target.host or ""
        values["target.load_balancer"] = self.target.dimensions.get("LoadBalancer", "")
        values["target.target_group"] = self.target.dimensions.get("TargetGroup", "")
        return values

    def run_checks(self, checks: Sequence[Check], *, sequential: bool) -> None:
        """Run checks in order, or concurrently on the shared pool; emit each result."""
        if sequential:
            for check in checks:
                if self.deadline.expired():
                    return  # the runner reports what never ran as timed out
                self.emit(run_guarded(check, self))
            return
        # Each result is handed over as it completes: O(1) per check, however many are
        # pending (waiting on the pending set again after each one is quadratic). A window
        # of a few checks per thread is queued at a time, so memory does not grow with the
        # suite, and suites sharing the pool take turns.
        finished: queue.SimpleQueue[Future[CheckResult]] = queue.SimpleQueue()
        waiting = iter(checks)

        def submit_next() -> None:
            check = next(waiting, None)
            if check is not None:
                future = self.pool.submit(partial(run_guarded, check, self))
                future.add_done_callback(finished.put)

        for _ in range(QUEUED_PER_THREAD * self.pool.max_workers):
            submit_next()
        for _ in range(len(checks)):
            try:
                future = finished.get(timeout=self.deadline.remaining())
            except queue.Empty:
                return  # the deadline: the runner reports what never ran as timed out
            submit_next()
            self.emit(future.result())


def run_guarded(check: Check, ctx: SuiteContext) -> CheckResult:
    """Run one check; an exception becomes an ``error`` result naming the check and the cause."""
    started = time.perf_counter()
    try:
        result = check.run(ctx)
        if not result.duration:  # a plugin that does not time itself: the runner does
            result = dataclasses.replace(result, duration=time.perf_counter() - started)
        return result
    except BaseException as exc:  # KeyboardInterrupt, SystemExit: still this check's error
        log.error("check %r raised %s: %s", check.name, type(exc).__name__, exc)
        log.debug("traceback of check %r\n%s", check.name, traceback.format_exc())
        return CheckResult(
            check.name,
            Status.ERROR,
            time.perf_counter() - started,
            message=f"check raised {type(exc).__name__}: {exc}",
        )


class Check(ABC):
    """One check of a :class:`CheckSuite`."""

    name: str

    @abstractmethod
    def run(self, ctx: SuiteContext) -> CheckResult:
        """Run once and return the result; may raise (the runner turns it into an error)."""


class Suite(ABC):
    """A named collection of checks."""

    name: str
    kind: str
    description: str = ""
    tags: frozenset[str] = frozenset()
    #: Lifecycle events this suite runs at; empty means every event.
    events: frozenset[LifecycleEvent] = frozenset()
    policy: Policy = Policy()
    source: str | None = None
    #: Where the registry found it (kind and file, or entry point), to load it again in a
    #: worker of its own. Set by the registry.
    origin: dict[str, str] | None = None
    #: Also run against each healthy green task directly (after AfterInstall).
    per_target: bool = False
    #: Parallel parts a state machine runs this suite in (``runner: stepfunctions``): each
    #: run sees its part in ``ctx.deployment.part``. A load with ``workers: N``.
    shards: int = 1
    #: Files beside it that this suite reads as data (an OpenAPI document): never suites.
    data_files: tuple[Path, ...] = ()
    #: Origins besides the target's that this suite's requests may carry credentials to
    #: (secret values, the plan's headers): ``secrets_to`` in a suite file. Every other
    #: origin is refused them (``validate`` lists these).
    secret_origins: tuple[str, ...] = ()

    def check_names(self) -> list[str]:
        """Names of the checks, when known before running (to name the ones that time out)."""
        return []

    def runs_at(self, event: LifecycleEvent) -> bool:
        return not self.events or event in self.events

    def with_policy(self, policy: Policy) -> Suite:
        """This suite with another policy (the plan may override the suite's own)."""
        import copy

        clone = copy.copy(self)
        clone.policy = policy
        return clone

    @abstractmethod
    def run(self, ctx: SuiteContext) -> None:
        """Run the checks and call ``ctx.emit`` with each result as it completes."""

    def emit_each(self, ctx: SuiteContext, status: Status, message: str) -> None:
        """One result per known check, all alike: a suite that cannot run, or not yet."""
        for name in self.check_names():
            ctx.emit(CheckResult(name, status, message=message, location=self.source))


class CheckSuite(Suite):
    """A suite made of :class:`Check` objects known up front; concurrent unless sequential."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        checks: Sequence[Check],
        sequential: bool = False,
        description: str = "",
        tags: frozenset[str] = frozenset(),
        events: frozenset[LifecycleEvent] = frozenset(),
        policy: Policy | None = None,
        source: str | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.checks = list(checks)
        self.sequential = sequential
        self.description = description
        self.tags = tags
        self.events = events
        self.policy = policy or Policy()
        self.source = source

    def check_names(self) -> list[str]:
        return [check.name for check in self.checks]

    def run(self, ctx: SuiteContext) -> None:
        ctx.run_checks(self.checks, sequential=self.sequential)


class SuiteKind(ABC):
    """A plugin that loads one family of suites from the suites directory."""

    name: str

    @abstractmethod
    def claims(self, path: Path) -> bool:
        """True when ``path`` (a file or a folder) holds suites of this kind."""

    @abstractmethod
    def load(self, path: Path) -> list[Suite]:
        """Parse and validate ``path``; raise an error that names the file and the cause."""

    def validate(self, path: Path) -> list[str]:
        """Problems in ``path`` as ``file:line: message`` lines, without running anything."""
        try:
            self.load(path)
        except Exception as exc:
            return [str(exc)]
        return []


def parse_events(values: Any, where: str) -> frozenset[LifecycleEvent]:
    """Lifecycle event names from a suite file, with an error naming ``where``."""

    if not values:
        return frozenset()
    try:
        return frozenset(LifecycleEvent.parse(str(v)) for v in values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


#: The first key of an OpenAPI or Swagger document: data a suite reads, never a suite.
_OPENAPI_LINE = re.compile(r"^(?:openapi|swagger)[ \t]*:", re.MULTILINE)
_KIND_LINE = re.compile(r"^kind:[ \t]*[\'\"]?([A-Za-z0-9_.-]+)[\'\"]?[ \t]*(?:#.*)?$", re.MULTILINE)
YAML_SUFFIXES = (".yaml", ".yml")


def is_openapi_document(path: Path) -> bool:
    """A YAML file with a top-level ``openapi:`` or ``swagger:`` key (an API description
    an ``openapi`` suite names): data, which no kind loads as a suite."""
    if path.suffix not in YAML_SUFFIXES or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            head = file.read(65536)
    except OSError:
        return False
    return _OPENAPI_LINE.search(head) is not None and _KIND_LINE.search(head) is None


def declared_kind(path: Path) -> str | None:
    """The kind a YAML suite file declares with a top-level ``kind:`` line (``kind: load``);
    None for other files and for YAML files that declare none (the ``http`` kind's)."""
    if path.suffix not in YAML_SUFFIXES:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _declared(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4096)
def _declared(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            head = file.read(65536)
    except OSError:
        return None
    found = _KIND_LINE.search(head)
    return found[1] if found else None


class DeclaredSuite(Suite):
    """A suite read from a YAML file of a declared kind: the fields every such file has."""

    def __init__(self, *, data: Mapping[str, Any], path: Path, kind: str) -> None:
        self.name = str(data["name"])
        self.kind = kind
        self.source = str(path)
        self.description = str(data.get("description", ""))
        self.tags = frozenset(data.get("tags", []))
        self.events = parse_events(data.get("events"), str(path))
        self.policy = Policy(report_only=bool(data.get("report_only", False)))
        self.secret_origins = tuple(str(o) for o in data.get("secrets_to", ()))


class DeclaredKind(SuiteKind):
    """A kind of YAML files that say ``kind: NAME``, validated by ``schema`` (a JSON Schema
    file), each building one suite with :meth:`build`."""

    schema: Path

    def claims(self, path: Path) -> bool:
        return path.suffix in YAML_SUFFIXES and path.is_file() and declared_kind(path) == self.name

    def load(self, path: Path) -> list[Suite]:

        data, text, _ = load_document(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:1: a {self.name} suite file must be a mapping")
        validate(data, self.schema, path, text)
        return [self.build(data, path, text)]

    @abstractmethod
    def build(self, data: Mapping[str, Any], path: Path, text: str) -> Suite:
        """The suite of a valid document; errors name the file, line and key."""
