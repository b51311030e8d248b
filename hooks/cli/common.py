"""What every command shares: the exit-status rule, usage errors, argument types.

One exit-status rule for every command: 0 when the verdict is Succeeded (or the check
passes), 1 when it is Failed, 2 for a usage or configuration error — a bad argument,
setting, plan or event, a suite file or plugin that does not load, a suite that does not
exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hooks.core.lifecycle import LifecycleEvent

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "concurrency",
    "configuration_errors",
    "event_arg",
    "exit_code",
    "given",
    "given_by",
    "pair",
    "positive",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot run: printed without a traceback, exit status 2."""


def event_arg(value: str) -> LifecycleEvent:
    try:
        return LifecycleEvent.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not 0 < number <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400, got {value}")
    return number


def concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 256:
        raise argparse.ArgumentTypeError(f"must be from 1 to 256, got {number}")
    return number


def pair(value: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, rest


def given_by(flags: dict[str, tuple[str, Any]]) -> dict[str, str]:
    """The environment a command sets from its flags (``{variable: (flag, value)}``), with
    ``GREENLIGHT_GIVEN_BY`` saying which flag set each: a value's source names the flag."""
    env = given({variable: value for variable, (_, value) in flags.items()})
    sources = {variable: f"flag {flag}" for variable, (flag, _) in flags.items() if variable in env}
    if sources:
        env["GREENLIGHT_GIVEN_BY"] = json.dumps(sources)
    return env


def configuration_errors(command: str, result: dict[str, Any], summary: Any = None) -> None:
    """A Failed verdict caused by the configuration is also an error message on stderr: each
    suite that did not load (from the run's ``summary``), or the reason — never a check that
    ran and failed, which is a test result, not the configuration's."""
    if result.get("verdict") == "Succeeded" or not result.get("configuration_error"):
        return
    run = getattr(summary, "run", None)
    causes = [
        f"{suite.name}: {suite.error}"
        for suite in (run.suites if run is not None else ())
        if not suite.loaded and suite.error
    ] or [str(result.get("reason", ""))]
    for cause in causes:
        print(f"greenlight {command}: configuration error: {cause}", file=sys.stderr)


def exit_code(result: dict[str, Any]) -> int:
    """0 Succeeded, 1 Failed, 2 Failed because of the configuration (settings, plan, files)."""
    if result.get("verdict") == "Succeeded":
        return EXIT_OK
    return EXIT_USAGE if result.get("configuration_error") else EXIT_FAILED


def given(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v not in (None, "", False)}
