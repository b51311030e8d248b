"""Greenlight: gate ECS blue/green deployments on functional tests.

The public API for suite authors and plugin writers. Everything else is internal.

The names are imported on first use: ``import hooks.handlers`` (the Lambda handler) and
``python -m hooks.worker`` must not pay for modules they do not need before they start
their first process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hooks.version import __version__

if TYPE_CHECKING:
    from hooks.lifecycle import LifecycleEvent
    from hooks.results import CheckResult, Evidence, Policy, Status, SuiteResult
    from hooks.suites.base import (
        Check,
        CheckSuite,
        DeploymentInfo,
        Suite,
        SuiteContext,
        SuiteKind,
    )
    from hooks.target import Target
    from hooks.verdict import Verdict, VerdictStatus

_WHERE = {
    "Check": "hooks.suites.base",
    "CheckResult": "hooks.results",
    "CheckSuite": "hooks.suites.base",
    "DeploymentInfo": "hooks.suites.base",
    "Evidence": "hooks.results",
    "LifecycleEvent": "hooks.lifecycle",
    "Policy": "hooks.results",
    "Status": "hooks.results",
    "Suite": "hooks.suites.base",
    "SuiteContext": "hooks.suites.base",
    "SuiteKind": "hooks.suites.base",
    "SuiteResult": "hooks.results",
    "Target": "hooks.target",
    "Verdict": "hooks.verdict",
    "VerdictStatus": "hooks.verdict",
}

__all__ = [
    "Check",
    "CheckResult",
    "CheckSuite",
    "DeploymentInfo",
    "Evidence",
    "LifecycleEvent",
    "Policy",
    "Status",
    "Suite",
    "SuiteContext",
    "SuiteKind",
    "SuiteResult",
    "Target",
    "Verdict",
    "VerdictStatus",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hooks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
