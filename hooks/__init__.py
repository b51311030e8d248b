"""Greenlight: gate ECS blue/green deployments on functional tests.

The public API for suite authors and plugin writers. Everything else is internal.
"""

from __future__ import annotations

from hooks.lifecycle import LifecycleEvent
from hooks.results import CheckResult, Evidence, Policy, Status, SuiteResult
from hooks.suites.base import Check, CheckSuite, DeploymentInfo, Suite, SuiteContext, SuiteKind
from hooks.target import Target
from hooks.verdict import Verdict, VerdictStatus
from hooks.version import __version__

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
