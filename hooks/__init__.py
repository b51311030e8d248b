"""Greenlight: gate ECS blue/green deployments on functional tests.

The public API for suite authors and plugin writers. Everything else is internal.

The names are imported on first use: ``import hooks.adapters.handlers`` (the Lambda handler) and
``python -m hooks.process.worker`` must not pay for modules they do not need before they start
their first process.
"""

from __future__ import annotations

import importlib

from hooks.version import __version__

#: ``typing.TYPE_CHECKING`` without importing :mod:`typing` (and :mod:`re`, which it
#: imports): the Lambda handler starts its spare worker before either is paid for.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hooks.core.lifecycle import LifecycleEvent
    from hooks.core.results import CheckResult, Evidence, Policy, Status, SuiteResult
    from hooks.core.target import Target
    from hooks.core.verdict import Verdict, VerdictStatus
    from hooks.suites.base import (
        Check,
        CheckSuite,
        DeploymentInfo,
        Suite,
        SuiteContext,
        SuiteKind,
    )

_WHERE = {
    "Check": "hooks.suites.base",
    "CheckResult": "hooks.core.results",
    "CheckSuite": "hooks.suites.base",
    "DeploymentInfo": "hooks.suites.base",
    "Evidence": "hooks.core.results",
    "LifecycleEvent": "hooks.core.lifecycle",
    "Policy": "hooks.core.results",
    "Status": "hooks.core.results",
    "Suite": "hooks.suites.base",
    "SuiteContext": "hooks.suites.base",
    "SuiteKind": "hooks.suites.base",
    "SuiteResult": "hooks.core.results",
    "Target": "hooks.core.target",
    "Verdict": "hooks.core.verdict",
    "VerdictStatus": "hooks.core.verdict",
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
