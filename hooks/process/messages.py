"""Everything that crosses between the supervisor and its workers, typed and versioned.

Both sides import this module and nothing else reads a set-up, a job or a record by key.
Each message is a frozen dataclass with ``to_json`` (a JSON-ready dict carrying ``v``, the
protocol version, and ``type``) and ``from_json``, which refuses anything that is not a
message of this version (:class:`ProtocolError`): a worker runs user code, so what it sends
is data to check, never a decision.

Supervisor -> worker, on the worker's stdin (one JSON line each):

``Setup``  what is known as the invocation begins: the suites directory, the mode, logging
``Job``    the plan's suites, the target, the deployment, secrets, the deadline

Supervisor <-> fork server, over its socket (one message per send):

``ForkRequest``  a setup and a job for a new worker (with its record pipe's write end)
``ForkReady``    once, when the server has imported what workers need (its memory)
``Forked``       per request, in order: the new worker's pid
``ForkExited``   as each worker ends (``code`` as ``Popen.returncode`` gives it)

Worker -> supervisor, on a pipe of its own (never its stdout, where suites may print):

``Prepared``     the catalog worker has loaded the suites; how many need their own worker
``Listing``      every suite the worker will run or knows it cannot run (:class:`ListedItem`)
``Expect``       check names a suite learned while running (pytest, after collection)
``Started``      a suite started
``CheckDone``    one check result
``Finished``     a suite returned (``error`` when it raised or did not finish its work)
``WorkerFailed`` the worker cannot go on (``kind``: ``config`` or ``crash``)
``Done``         the worker finished everything it was given
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import CheckResult, Evidence, Policy, Status, SuiteResult, cut
from hooks.core.target import Target
from hooks.suites.base import DeploymentInfo

__all__ = [
    "MAX_RECORD_BYTES",
    "VERSION",
    "CheckDone",
    "Done",
    "Expect",
    "Finished",
    "ForkExited",
    "ForkReady",
    "ForkRequest",
    "Forked",
    "GreenTask",
    "Job",
    "ListedItem",
    "Listing",
    "Prepared",
    "ProtocolError",
    "Record",
    "Setup",
    "Started",
    "WorkerFailed",
    "check_from_record",
    "decode",
    "decode_fork_reply",
    "suite_from_record",
]

VERSION = 2
#: A record longer than this is cut off and treated as a protocol error.
MAX_RECORD_BYTES = 4 * 1024 * 1024
#: What the supervisor keeps of one check: its texts are cut, its failures counted.
MAX_TEXT = 4000
MAX_FAILURES = 20


class ProtocolError(ValueError):
    """Something from the other side that is not a message of this protocol."""


# ---- reading values that crossed: each names what is wrong ----


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{key!r} must be text, got {type(value).__name__}")
    return value


def _maybe_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else _text(data, key)


def _number(data: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{key!r} must be a number, got {value!r:.40}")
    return float(value)


def _whole(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{key!r} must be a whole number, got {value!r:.40}")
    return value


def _maybe_whole(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _whole(data, key)


def _texts(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{key!r} must be a list of texts")
    return tuple(value)


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ProtocolError(f"{key!r} must be an object")
    return dict(value)


def _text_table(data: Mapping[str, Any], key: str) -> dict[str, str]:
    table = _table(data, key)
    if not all(isinstance(v, str) for v in table.values()):
        raise ProtocolError(f"{key!r} must map texts to texts")
    return table


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{key!r} must be an object, got {type(value).__name__}")
    return value


def _policy_json(policy: Policy) -> dict[str, Any]:
    return {"report_only": policy.report_only, "failure_limit": policy.failure_limit}


def _policy(data: Any) -> Policy:
    data = data or {}
    if not isinstance(data, Mapping):
        raise ProtocolError("a policy must be an object")
    return Policy(
        report_only=bool(data.get("report_only", False)),
        failure_limit=_whole(data, "failure_limit", 0),
    )


M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """The envelope every message shares: ``{"v": VERSION, "type": TYPE, ...}``."""

    TYPE: ClassVar[str] = ""

    def body(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, "type": self.TYPE, **self.body()}

    def line(self) -> bytes:
        return (json.dumps(self.to_json(), default=str) + "\n").encode()

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Message:
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[M], data: Any) -> M:
        _envelope(data, cls.TYPE)
        message = cls.read(data)
        assert isinstance(message, cls)
        return message


def _envelope(data: Any, expected: str | None = None) -> str:
    if not isinstance(data, Mapping) or data.get("v") != VERSION:
        raise ProtocolError(f"not a version {VERSION} message: {str(data)[:80]!r}")
    kind = data.get("type")
    if not isinstance(kind, str) or (expected is not None and kind != expected):
        raise ProtocolError(f"expected a {expected!r} message, got {kind!r}")
    return kind


# ---- supervisor -> worker ----


@dataclass(frozen=True)
class Setup(Message):
    """What a worker is started with, before its job: where the suites are, how to log."""

    TYPE: ClassVar[str] = "setup"
    suites_dir: str
    mode: str = "catalog"  # "catalog" or "suite"
    label: str = "worker"
    log_plain: bool = False
    log_level: str = "INFO"
    log_keys: Mapping[str, Any] = field(default_factory=dict)
    memory_mb: int | None = None
    #: The environment as the supervisor has it now (a spare started earlier).
    environ: Mapping[str, str] | None = None

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Setup:
        mode = _text(data, "mode")
        if mode not in ("catalog", "suite"):
            raise ProtocolError(f"unknown worker mode {mode!r}")
        return cls(
            suites_dir=_text(data, "suites_dir"),
            mode=mode,
            label=_text(data, "label"),
            log_plain=bool(data.get("log_plain")),
            log_level=_text(data, "log_level"),
            log_keys=_table(data, "log_keys"),
            memory_mb=_maybe_whole(data, "memory_mb"),
            environ=_text_table(data, "environ") if data.get("environ") is not None else None,
        )


def _target_json(target: Target) -> dict[str, Any]:
    return {f.name: getattr(target, f.name) for f in fields(target)}


def _read_target(data: Mapping[str, Any]) -> Target:
    try:
        return Target(
            url=_text(data, "url"),
            prod_url=_maybe_text(data, "prod_url"),
            host=_maybe_text(data, "host"),
            verify=bool(data.get("verify", True)),
            ca_bundle=_maybe_text(data, "ca_bundle"),
            headers=_text_table(data, "headers"),
            dimensions=_text_table(data, "dimensions"),
        )
    except ValueError as exc:  # the target's own checks (a URL that is not one)
        raise ProtocolError(str(exc)) from exc


def _deployment_json(info: DeploymentInfo) -> dict[str, Any]:
    data = {f.name: getattr(info, f.name) for f in fields(info)}
    data["lifecycle_event"] = info.lifecycle_event.value
    data["traffic"] = dict(info.traffic)
    return data


def _read_deployment(data: Mapping[str, Any]) -> DeploymentInfo:
    part = data.get("part")
    if part is not None and (
        not isinstance(part, list | tuple)
        or len(part) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in part)
    ):
        raise ProtocolError(f"'part' must be [index, count], got {part!r:.40}")
    try:
        event = LifecycleEvent(_text(data, "lifecycle_event"))
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    return DeploymentInfo(
        deployment_id=_text(data, "deployment_id"),
        execution_id=_text(data, "execution_id"),
        lifecycle_event=event,
        application=_maybe_text(data, "application"),
        deployment_group=_maybe_text(data, "deployment_group"),
        stage=_maybe_text(data, "stage"),
        traffic=_text_table(data, "traffic"),
        since=None if data.get("since") is None else _number(data, "since"),
        part=(int(part[0]), int(part[1])) if part is not None else None,
    )


@dataclass(frozen=True)
class GreenTask:
    """One green task, addressed directly (``http://ip:port``)."""

    url: str
    label: str

    @classmethod
    def read(cls, data: Any) -> GreenTask:
        if not isinstance(data, Mapping):
            raise ProtocolError("a green task must be an object")
        return cls(_text(data, "url"), _text(data, "label"))


@dataclass(frozen=True)
class Job(Message):
    """The work of one worker: which suites (by the plan), against what, until when.

    The supervisor builds one per run from its own plan (:func:`hooks.gate.evaluate`) and
    derives each worker's from it (:meth:`for_worker`): the catalog lists and runs the
    declarative suites, a suite's own worker runs that one suite (``suite``, ``origin``).
    """

    TYPE: ClassVar[str] = "job"
    #: The deployment and the lifecycle event the job runs for.
    deployment: DeploymentInfo
    #: Where requests go; None in a job that only lists the suites.
    target: Target | None = None
    #: The suites the plan names, or None: every suite that declares this event.
    planned: tuple[str, ...] | None = None
    planned_source: str = "the plan"
    policies: Mapping[str, Policy] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()
    concurrency: int = 16
    request_timeout: float = 10.0
    max_body_bytes: int | None = None
    #: Every suite runs against each green task (AfterInstall), not only ``per_target`` ones.
    per_target_all: bool = False
    #: Suites that passed at an earlier call of this ECS gate (IN_PROGRESS).
    skip: tuple[str, ...] = ()
    green_targets: tuple[GreenTask, ...] = ()
    #: Values to redact, and the suites' secrets: resolved, and those that could not be.
    secrets: tuple[str, ...] = ()
    resolved: Mapping[str, str] = field(default_factory=dict)
    unresolved: Mapping[str, str] = field(default_factory=dict)
    #: A shard's: the digest of the plan its results are sealed for.
    plan_digest: str | None = None
    # What the supervisor sets for each worker:
    list_only: bool = False
    deadline_in: float = 0.0
    memory_mb: int | None = None
    suite: int | None = None
    origin: Mapping[str, Any] | None = None
    green_target: GreenTask | None = None

    @property
    def event(self) -> LifecycleEvent:
        return self.deployment.lifecycle_event

    def body(self) -> dict[str, Any]:
        data = super().body()
        data["target"] = _target_json(self.target) if self.target is not None else None
        data["deployment"] = _deployment_json(self.deployment)
        data["policies"] = {name: _policy_json(p) for name, p in self.policies.items()}
        data["green_targets"] = [{"url": t.url, "label": t.label} for t in self.green_targets]
        if self.green_target is not None:
            data["green_target"] = {"url": self.green_target.url, "label": self.green_target.label}
        return data

    def without_secrets(self) -> Job:
        """What may be written where others read it (a Step Functions execution's input)."""
        return replace(self, secrets=(), resolved={}, unresolved={})

    def for_worker(self, **changes: Any) -> Job:
        return replace(self, **changes)

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Job:
        planned = data.get("planned")
        policies = _table(data, "policies")
        green = data.get("green_targets") or []
        if not isinstance(green, list):
            raise ProtocolError("'green_targets' must be a list")
        origin = data.get("origin")
        if origin is not None and not isinstance(origin, Mapping):
            raise ProtocolError("'origin' must be an object")
        target = data.get("target")
        return cls(
            deployment=_read_deployment(_object(data, "deployment")),
            target=_read_target(_object(data, "target")) if target is not None else None,
            planned=None if planned is None else _texts(data, "planned"),
            planned_source=_text(data, "planned_source"),
            policies={name: _policy(p) for name, p in policies.items()},
            plugins=_texts(data, "plugins"),
            concurrency=_whole(data, "concurrency"),
            request_timeout=_number(data, "request_timeout"),
            max_body_bytes=_maybe_whole(data, "max_body_bytes"),
            per_target_all=bool(data.get("per_target_all")),
            skip=_texts(data, "skip"),
            green_targets=tuple(GreenTask.read(g) for g in green),
            secrets=_texts(data, "secrets"),
            resolved=_text_table(data, "resolved"),
            unresolved=_text_table(data, "unresolved"),
            plan_digest=_maybe_text(data, "plan_digest"),
            list_only=bool(data.get("list_only")),
            deadline_in=_number(data, "deadline_in", 0.0),
            memory_mb=_maybe_whole(data, "memory_mb"),
            suite=_maybe_whole(data, "suite"),
            origin=dict(origin) if origin is not None else None,
            green_target=GreenTask.read(data["green_target"]) if data.get("green_target") else None,
        )


# ---- supervisor <-> fork server ----


@dataclass(frozen=True)
class ForkRequest(Message):
    TYPE: ClassVar[str] = "fork"
    setup: Setup
    job: Job

    def body(self) -> dict[str, Any]:
        return {"setup": self.setup.to_json(), "job": self.job.to_json()}

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> ForkRequest:
        return cls(Setup.from_json(data.get("setup")), Job.from_json(data.get("job")))


@dataclass(frozen=True)
class ForkReady(Message):
    TYPE: ClassVar[str] = "ready"
    data_mb: float
    rss_mb: float

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> ForkReady:
        return cls(_number(data, "data_mb"), _number(data, "rss_mb"))


@dataclass(frozen=True)
class Forked(Message):
    TYPE: ClassVar[str] = "forked"
    pid: int

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Forked:
        return cls(_whole(data, "pid"))


@dataclass(frozen=True)
class ForkExited(Message):
    TYPE: ClassVar[str] = "exited"
    pid: int
    code: int

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> ForkExited:
        return cls(_whole(data, "pid"), _whole(data, "code"))


_FORK_REPLIES: dict[str, Callable[[Mapping[str, Any]], Message]] = {
    "ready": ForkReady.read,
    "forked": Forked.read,
    "exited": ForkExited.read,
}


def decode_fork_reply(message: bytes) -> ForkReady | Forked | ForkExited:
    data = _json(message)
    reply = _FORK_REPLIES.get(_envelope(data), _unknown)(data)
    assert isinstance(reply, ForkReady | Forked | ForkExited)
    return reply


# ---- worker -> supervisor ----


@dataclass(frozen=True)
class ListedItem:
    """One suite as the catalog worker lists it."""

    id: int
    name: str
    kind: str
    source: str | None = None
    #: The names of the checks it must report (known up front).
    checks: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    own_worker: bool = False
    #: How a suite's own worker finds it again (a file of a kind, or an entry point).
    origin: Mapping[str, Any] | None = None
    #: Why it cannot run (it did not load); None when it loaded.
    error: str | None = None
    #: Parallel parts it asks a state machine for (a load's ``workers``).
    shards: int = 1
    #: The green task this copy addresses directly (per-target runs).
    green_target: GreenTask | None = None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["policy"] = _policy_json(self.policy)
        data["green_target"] = (
            {"url": self.green_target.url, "label": self.green_target.label}
            if self.green_target is not None
            else None
        )
        return data

    @classmethod
    def read(cls, data: Any) -> ListedItem:
        if not isinstance(data, Mapping):
            raise ProtocolError("a listed suite must be an object")
        origin = data.get("origin")
        if origin is not None and not isinstance(origin, Mapping):
            raise ProtocolError("'origin' must be an object")
        return cls(
            id=_whole(data, "id"),
            name=_text(data, "name"),
            kind=_text(data, "kind"),
            source=_maybe_text(data, "source"),
            checks=_texts(data, "checks"),
            policy=_policy(data.get("policy")),
            own_worker=bool(data.get("own_worker")),
            origin=dict(origin) if origin is not None else None,
            error=_maybe_text(data, "error"),
            shards=max(1, _whole(data, "shards", 1)),
            green_target=GreenTask.read(data["green_target"]) if data.get("green_target") else None,
        )


@dataclass(frozen=True)
class Prepared(Message):
    TYPE: ClassVar[str] = "prepared"
    own_workers: int

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Prepared:
        return cls(_whole(data, "own_workers"))


@dataclass(frozen=True)
class Listing(Message):
    TYPE: ClassVar[str] = "suites"
    suites: tuple[ListedItem, ...]

    def body(self) -> dict[str, Any]:
        return {"suites": [item.to_json() for item in self.suites]}

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Listing:
        items = data.get("suites")
        if not isinstance(items, list):
            raise ProtocolError("'suites' must be a list")
        return cls(tuple(ListedItem.read(item) for item in items))


@dataclass(frozen=True)
class Expect(Message):
    TYPE: ClassVar[str] = "expect"
    suite: int
    checks: tuple[str, ...]

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Expect:
        return cls(_whole(data, "suite"), _texts(data, "checks"))


@dataclass(frozen=True)
class Started(Message):
    TYPE: ClassVar[str] = "start"
    suite: int

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Started:
        return cls(_whole(data, "suite"))


@dataclass(frozen=True)
class CheckDone(Message):
    TYPE: ClassVar[str] = "check"
    suite: int
    result: CheckResult

    def body(self) -> dict[str, Any]:
        return {"suite": self.suite, "result": self.result.to_dict()}

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> CheckDone:
        return cls(_whole(data, "suite"), check_from_record(_object(data, "result")))


@dataclass(frozen=True)
class Finished(Message):
    TYPE: ClassVar[str] = "finish"
    suite: int
    error: str | None = None

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Finished:
        return cls(_whole(data, "suite"), _maybe_text(data, "error"))


@dataclass(frozen=True)
class WorkerFailed(Message):
    TYPE: ClassVar[str] = "error"
    kind: str  # "config" or "crash"
    message: str

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> WorkerFailed:
        return cls(_text(data, "kind"), _text(data, "message"))


@dataclass(frozen=True)
class Done(Message):
    TYPE: ClassVar[str] = "done"

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Done:
        return cls()


Record = Prepared | Listing | Expect | Started | CheckDone | Finished | WorkerFailed | Done
_RECORDS: dict[str, Callable[[Mapping[str, Any]], Message]] = {
    kind.TYPE: kind.read
    for kind in (Prepared, Listing, Expect, Started, CheckDone, Finished, WorkerFailed, Done)
}


def _unknown(data: Mapping[str, Any]) -> Message:
    raise ProtocolError(f"unknown message type {data.get('type')!r}")


def _json(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {line[:80]!r}") from exc


def decode(line: bytes) -> Record:
    """One record from a worker's line; :class:`ProtocolError` for anything else."""
    data = _json(line)
    record = _RECORDS.get(_envelope(data), _unknown)(data)
    assert isinstance(record, Record)
    return record


def check_from_record(data: Mapping[str, Any]) -> CheckResult:
    """A check result as a worker (or a shard) wrote it: texts cut, failures counted."""
    evidence = data.get("evidence")
    failures = [cut(str(f), MAX_TEXT) for f in list(data.get("failures") or ())[:MAX_FAILURES]]
    extra = len(data.get("failures") or ()) - MAX_FAILURES
    if extra > 0:
        failures.append(f"... and {extra} more failures")
    try:
        return CheckResult(
            name=cut(str(data["name"]), 500),
            status=Status(data["status"]),
            duration=float(data.get("duration") or 0.0),
            message=cut(str(data.get("message") or ""), MAX_TEXT),
            failures=tuple(failures),
            evidence=Evidence(**evidence) if isinstance(evidence, dict) else None,
            location=cut(str(data["location"]), 500) if data.get("location") else None,
            data=data["data"] if isinstance(data.get("data"), dict) else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"not a check result: {exc}") from exc


def suite_from_record(data: Mapping[str, Any]) -> SuiteResult:
    """A suite's result as :meth:`SuiteResult.to_dict` wrote it (a shard's answer)."""
    return SuiteResult(
        name=str(data["name"]),
        kind=str(data.get("kind") or "unknown"),
        checks=tuple(check_from_record(c) for c in data.get("checks") or ()),
        error=str(data["error"]) if data.get("error") is not None else None,
        policy=_policy(data.get("policy")),
        duration=float(data.get("duration") or 0.0),
        source=str(data["source"]) if data.get("source") else None,
        loaded=bool(data.get("loaded", True)),
    )
