"""The plan: which suites run at this event, and how to reach the target.

Sources, highest precedence first:

1. the function's environment (``GREENLIGHT_SUITES``, ``GREENLIGHT_TARGET_URL``, ...);
2. the deployment group's tags (``greenlight:suites``, ``greenlight:suites:<Event>``,
   ``greenlight:host``, ``greenlight:report-only``);
3. the plan file's first ``groups`` entry matching the application and deployment group;
4. the plan file's ``defaults``;
5. built-in defaults: every suite that runs at the event, no host, TLS verified.

Each value keeps the name of the source it came from; the plan is logged at every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hooks.core.http_rules import DEFAULT_MAX_BODY_BYTES
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Policy
from hooks.core.settings import Settings, check_number
from hooks.core.yamlfile import line_of, load_yaml, validate
from hooks.process.runner import DEFAULT_CONCURRENCY

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_READINESS_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "SCHEMA_PATH",
    "TAG_HOST",
    "TAG_REPORT_ONLY",
    "TAG_SUITES",
    "Plan",
    "PlanFile",
    "plans_by_event",
    "resolve_plan",
]

SCHEMA_PATH = Path(__file__).with_name("plan_schema.json")
DEFAULT_READINESS_TIMEOUT = 60.0
DEFAULT_REQUEST_TIMEOUT = 10.0
_NUMBERS = ("readiness_timeout", "concurrency", "request_timeout", "max_body_bytes", "soak")
TAG_SUITES = "greenlight:suites"
TAG_HOST = "greenlight:host"
TAG_REPORT_ONLY = "greenlight:report-only"
#: Plan-file keys taken as they are written (``suites``, ``tls``, ``headers`` and ``policy``
#: have shapes of their own).
_FILE_KEYS = (
    "target_url",
    "prod_url",
    "host",
    "readiness_timeout",
    "concurrency",
    "request_timeout",
    "max_body_bytes",
    "per_target",
    "runner",
    "soak",
    "plugins",
)


@dataclass(frozen=True)
class Plan:
    """The resolved plan for one run; ``suites`` None means every suite for the event."""

    event: LifecycleEvent
    suites: tuple[str, ...] | None = None
    target_url: str | None = None
    prod_url: str | None = None
    host: str | None = None
    verify: bool = True
    ca_bundle: str | None = None
    readiness_timeout: float = DEFAULT_READINESS_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Run every suite against each healthy green task directly, not only the listener.
    per_target: bool = False
    #: ``lambda``: the suites run in this invocation; ``stepfunctions``: the stack's state
    #: machine runs them in shards, after ``soak`` seconds, and reports.
    runner: str = "lambda"
    soak: float = 0.0
    #: pytest plugins the pytest suites load (autoload is off: nothing else loads).
    plugins: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The plan with the source of every value, for the log."""
        return {
            "event": self.event.value,
            "suites": list(self.suites) if self.suites is not None else "all for this event",
            "target_url": self.target_url or "discovered",
            "prod_url": self.prod_url or "discovered",
            "host": self.host,
            "tls_verify": self.verify,
            "ca_bundle": self.ca_bundle,
            "readiness_timeout": self.readiness_timeout,
            "concurrency": self.concurrency,
            "request_timeout": self.request_timeout,
            "max_body_bytes": self.max_body_bytes,
            "per_target": self.per_target,
            "runner": self.runner,
            "soak": self.soak,
            "plugins": list(self.plugins),
            "headers": {name: "***" for name in self.headers},
            "policies": {k: vars(v) for k, v in self.policies.items()},
            "sources": dict(self.sources),
        }


@dataclass(frozen=True)
class PlanFile:
    path: Path
    data: Mapping[str, Any]
    text: str

    @classmethod
    def load(cls, path: Path) -> PlanFile | None:
        """The validated plan file, or None when there is none; errors name file and line."""
        if not path.is_file():
            return None
        data, text = load_yaml(path)
        if data is None:
            data = {}
        validate(data, SCHEMA_PATH, path, text)
        return cls(path, data, text)

    def entries(
        self, application: str | None, group: str | None
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """(label, entry) pairs that apply, lowest precedence first."""
        found: list[tuple[str, Mapping[str, Any]]] = []
        if "defaults" in self.data:
            found.append((self._label(["defaults"], "defaults"), self.data["defaults"]))
        for index, entry in enumerate(self.data.get("groups", [])):
            match = entry["match"]
            # An ECS service deployment's cluster and service stand where CodeDeploy's
            # application and deployment group do.
            if all(
                _fits(match.get(key), value)
                for key, value in (
                    ("application", application),
                    ("deployment_group", group),
                    ("cluster", application),
                    ("service", group),
                )
            ):
                label = ", ".join(f"{k}={v}" for k, v in match.items())
                found.append((self._label(["groups", index], f"group {label}"), entry))
                break
        return found

    def _label(self, keys: list[Any], what: str) -> str:
        return f"{self.path}:{line_of(self.text, keys)} ({what})"


def _fits(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    return value is not None and fnmatchcase(value, pattern)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in raw.replace(" ", ",").split(",") if n.strip()))


#: Plan values the function's settings may set, and the variable each is read from.
_SETTINGS = {
    "suites": "GREENLIGHT_SUITES",
    "target_url": "GREENLIGHT_TARGET_URL",
    "prod_url": "GREENLIGHT_PROD_URL",
    "host": "GREENLIGHT_TARGET_HOST",
    "verify": "GREENLIGHT_TLS_VERIFY",
    "ca_bundle": "GREENLIGHT_CA_BUNDLE",
    "concurrency": "GREENLIGHT_CONCURRENCY",
    "readiness_timeout": "GREENLIGHT_READINESS_TIMEOUT",
    "request_timeout": "GREENLIGHT_REQUEST_TIMEOUT",
    "max_body_bytes": "GREENLIGHT_MAX_BODY_BYTES",
}
#: Where a setting's field name differs from the plan's key.
_SETTING_FIELDS = {"verify": "tls_verify"}


def resolve_plan(
    event: LifecycleEvent,
    settings: Settings,
    plan_file: PlanFile | None = None,
    *,
    application: str | None = None,
    deployment_group: str | None = None,
    tags: Mapping[str, str] | None = None,
    stage: str | None = None,
) -> Plan:
    """Merge every source into one plan, remembering where each value came from.

    ``stage`` (an Amazon ECS lifecycle stage) is looked up in ``suites`` before ``event``.
    """
    # Long: one plan value after another, each with its source, in precedence order.
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    policies: dict[str, Policy] = {}
    headers: dict[str, str] = {}

    def put(key: str, value: Any, source: str) -> None:
        if value is not None:
            values[key] = value
            sources[key] = source

    for label, entry in plan_file.entries(application, deployment_group) if plan_file else []:
        source = f"file {label}"
        suites = entry.get("suites", {})
        listed = suites.get(stage) if stage else None
        if listed is None:
            listed = suites.get(event.value, suites.get("default"))
        put("suites", _tuple(listed), source)
        for key in _FILE_KEYS:
            value = entry.get(key)
            put(key, tuple(value) if isinstance(value, list) else value, source)
        tls = entry.get("tls", {})
        put("verify", tls.get("verify"), source)
        if "ca_bundle" in tls and plan_file is not None:
            put("ca_bundle", str((plan_file.path.parent / tls["ca_bundle"]).resolve()), source)
        headers.update(entry.get("headers", {}))
        for name, policy in entry.get("policy", {}).items():
            base = policies.get(name, Policy())
            policies[name] = Policy(
                policy.get("report_only", base.report_only),
                policy.get("failure_limit", base.failure_limit),
            )
            sources[f"policy.{name}"] = source

    tags = tags or {}
    per_event = f"{TAG_SUITES}:{event.value}"
    if tags.get(per_event):
        put("suites", _names(tags[per_event]), f"tag {per_event}")
    elif tags.get(TAG_SUITES):
        put("suites", _names(tags[TAG_SUITES]), f"tag {TAG_SUITES}")
    put("host", tags.get(TAG_HOST) or None, f"tag {TAG_HOST}")
    for name in _names(tags.get(TAG_REPORT_ONLY, "")):
        policies[name] = Policy(True, policies.get(name, Policy()).failure_limit)
        sources[f"policy.{name}"] = f"tag {TAG_REPORT_ONLY}"

    for key, variable in _SETTINGS.items():
        put(key, getattr(settings, _SETTING_FIELDS.get(key, key)), settings.source_of(variable))
    for key in _NUMBERS:  # the schema cannot refuse .nan: every number is checked here
        if key in values:
            check_number(key, values[key], f"{key} (source: {sources[key]})")

    for key in ("suites", "verify", "ca_bundle", *_FILE_KEYS):
        sources.setdefault(key, "default")
    return Plan(event=event, headers=headers, policies=policies, sources=sources, **values)


def _tuple(value: Any) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def plans_by_event(settings: Settings, plan_file: PlanFile | None) -> dict[LifecycleEvent, Plan]:
    """The plan at every event without looking the deployment up: the application and group
    to match are the settings' (``GREENLIGHT_APPLICATION`` / ``GREENLIGHT_DEPLOYMENT_GROUP``)."""
    return {
        event: resolve_plan(
            event,
            settings,
            plan_file,
            application=settings.application,
            deployment_group=settings.deployment_group,
        )
        for event in LifecycleEvent
    }
