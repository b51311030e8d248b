"""Settings from the function's environment (the highest-precedence source of a plan)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hooks.core.deadline import DEFAULT_SAFETY_MARGIN
from hooks.core.exceptions import ConfigError

__all__ = [
    "DEFAULT_SUITES_DIR_NAME",
    "LIMITS",
    "PLAN_FILE_NAME",
    "Settings",
    "check_number",
    "default_suites_dir",
    "secrets_max_age",
]

DEFAULT_SUITES_DIR_NAME = "test_suites"
PLAN_FILE_NAME = "greenlight.yaml"


#: (minimum, maximum) of every numeric setting; the same bounds apply in the plan file.
LIMITS: dict[str, tuple[float, float]] = {
    "concurrency": (1, 256),
    "readiness_timeout": (0, 900),
    "request_timeout": (0.001, 900),
    "safety_margin": (0, 300),
    "max_body_bytes": (1024, 256 * 1024 * 1024),
    "memory_mb": (128, 10240),
    # Amazon ECS hooks: a gate's whole budget across IN_PROGRESS calls (ECS allows a hook
    # up to 24 h), and the seconds ECS waits before calling again.
    "ecs_budget": (1, 86400),
    "ecs_callback_delay": (1, 3600),
    # Seconds a secret fetched by reference is reused (0: fetched on every run).
    "secrets_max_age": (0, 86400),
    # runner: stepfunctions: seconds the state machine waits before the suites run.
    "soak": (0, 2700),
}


def check_number(key: str, value: float, where: str) -> float:
    """``value`` when finite and within ``LIMITS[key]``; else an error naming ``where``."""
    low, high = LIMITS[key]
    if isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{where}={value!r} must be a finite number from {low:g} to {high:g}")
    if not low <= value <= high:
        raise ConfigError(f"{where}={value!r} must be from {low:g} to {high:g}")
    return value


def _float(env: Mapping[str, str], name: str, key: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number") from None
    return check_number(key, value, f"environment variable {name}")


def _int(env: Mapping[str, str], name: str, key: str) -> int | None:
    value = _float(env, name, key)
    if value is None:
        return None
    if value != int(value):
        raise ConfigError(
            f"environment variable {name}={env[name].strip()!r} is not a whole number"
        )
    return int(value)


def _bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment variable {name}={raw!r} must be true or false")


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _given_by(text: str) -> dict[str, str]:
    """``GREENLIGHT_GIVEN_BY``: a JSON object of variable -> who set it (the command line)."""
    if not text.strip():
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise ConfigError("GREENLIGHT_GIVEN_BY must be a JSON object of names to sources")
    return found


def secrets_max_age(env: Mapping[str, str]) -> int:
    """``GREENLIGHT_SECRETS_MAX_AGE`` (300 when unset); a bad value is an error naming it."""
    return int(_or(_int(env, "GREENLIGHT_SECRETS_MAX_AGE", "secrets_max_age"), 300))


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().upper()
    if not raw:
        return default
    if raw not in allowed:
        raise ConfigError(
            f"environment variable {name}={raw!r} must be one of {', '.join(allowed)}"
        )
    return raw


def _topic(raw: str | None) -> str | None:
    if raw is not None and not raw.startswith("arn:"):
        raise ConfigError(
            f"environment variable GREENLIGHT_NOTIFY_TOPIC={raw!r} is not a topic ARN"
        )
    return raw


def _names(raw: str | None) -> tuple[str, ...] | None:
    if raw is None or not raw.strip():
        return None
    return tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))


def default_suites_dir(env: Mapping[str, str]) -> Path:
    """``GREENLIGHT_SUITES_DIR``; else, in Lambda, the function's own code (the template's
    ``CodeUri: test_suites/``: Greenlight itself is the layer); else ``test_suites`` here."""
    if env.get("GREENLIGHT_SUITES_DIR"):
        return Path(env["GREENLIGHT_SUITES_DIR"])
    root = env.get("LAMBDA_TASK_ROOT")
    return Path(root) if root else Path(DEFAULT_SUITES_DIR_NAME)


@dataclass(frozen=True)
class Settings:
    """Every ``GREENLIGHT_*`` variable, parsed and checked; ``None`` means not set."""

    suites_dir: Path
    plan_file: Path
    target_url: str | None = None
    prod_url: str | None = None
    host: str | None = None
    suites: tuple[str, ...] | None = None
    tls_verify: bool | None = None
    ca_bundle: str | None = None
    concurrency: int | None = None
    readiness_timeout: float | None = None
    request_timeout: float | None = None
    safety_margin: float = DEFAULT_SAFETY_MARGIN
    use_tags: bool = True
    #: Names for plan matching when the deployment is not looked up (a fixed target URL).
    application: str | None = None
    deployment_group: str | None = None
    max_body_bytes: int | None = None
    #: The function's memory (Lambda sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE): workers stay below.
    memory_mb: int | None = None
    #: Whether the function is attached to a VPC (the template says); None: unknown.
    in_vpc: bool | None = None
    #: Where each run's evidence bundle goes (a bucket name); None: nowhere.
    evidence_bucket: str | None = None
    #: The stack's state machine, for plans with ``runner: stepfunctions``.
    state_machine_arn: str | None = None
    #: An SNS topic ARN for verdict notifications, and which verdicts (FAILED or ALL).
    notify_topic: str | None = None
    notify_on: str = "FAILED"
    ecs_budget: float = 3600.0
    ecs_callback_delay: int = 30
    secrets_max_age: int = 300
    #: Who set a variable, when it was not the environment as such: the command line's
    #: flags (``GREENLIGHT_TARGET_URL`` -> ``flag --url``), so each value names its source.
    given_by: Mapping[str, str] = field(default_factory=dict)

    def source_of(self, variable: str) -> str:
        """Where a value read from ``variable`` came from: a flag, or the variable itself."""
        return self.given_by.get(variable) or f"env {variable}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        suites_dir = default_suites_dir(env)
        margin = _float(env, "GREENLIGHT_SAFETY_MARGIN", "safety_margin")
        use_tags = _bool(env, "GREENLIGHT_USE_TAGS")
        return cls(
            suites_dir=suites_dir,
            plan_file=Path(env.get("GREENLIGHT_PLAN_FILE") or suites_dir / PLAN_FILE_NAME),
            target_url=env.get("GREENLIGHT_TARGET_URL", "").strip() or None,
            prod_url=env.get("GREENLIGHT_PROD_URL", "").strip() or None,
            host=env.get("GREENLIGHT_TARGET_HOST", "").strip() or None,
            suites=_names(env.get("GREENLIGHT_SUITES")),
            tls_verify=_bool(env, "GREENLIGHT_TLS_VERIFY"),
            ca_bundle=env.get("GREENLIGHT_CA_BUNDLE", "").strip() or None,
            concurrency=_int(env, "GREENLIGHT_CONCURRENCY", "concurrency"),
            readiness_timeout=_float(env, "GREENLIGHT_READINESS_TIMEOUT", "readiness_timeout"),
            request_timeout=_float(env, "GREENLIGHT_REQUEST_TIMEOUT", "request_timeout"),
            max_body_bytes=_int(env, "GREENLIGHT_MAX_BODY_BYTES", "max_body_bytes"),
            memory_mb=_int(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "memory_mb"),
            in_vpc=_bool(env, "GREENLIGHT_IN_VPC"),
            safety_margin=DEFAULT_SAFETY_MARGIN if margin is None else margin,
            use_tags=True if use_tags is None else use_tags,
            application=env.get("GREENLIGHT_APPLICATION", "").strip() or None,
            deployment_group=env.get("GREENLIGHT_DEPLOYMENT_GROUP", "").strip() or None,
            evidence_bucket=env.get("GREENLIGHT_EVIDENCE_BUCKET", "").strip() or None,
            state_machine_arn=env.get("GREENLIGHT_STATE_MACHINE_ARN", "").strip() or None,
            notify_topic=_topic(env.get("GREENLIGHT_NOTIFY_TOPIC", "").strip() or None),
            notify_on=_choice(env, "GREENLIGHT_NOTIFY_ON", ("FAILED", "ALL"), "FAILED"),
            ecs_budget=_or(_float(env, "GREENLIGHT_ECS_BUDGET", "ecs_budget"), 3600.0),
            ecs_callback_delay=_or(
                _int(env, "GREENLIGHT_ECS_CALLBACK_DELAY", "ecs_callback_delay"), 30
            ),
            secrets_max_age=secrets_max_age(env),
            given_by=_given_by(env.get("GREENLIGHT_GIVEN_BY", "")),
        )
