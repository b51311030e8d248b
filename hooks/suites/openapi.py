"""The ``openapi`` suite kind: property-based contract checks of green, with Schemathesis.

A YAML file that says ``kind: openapi``::

    kind: openapi
    name: shop-contract
    schema: /openapi.json      # a path on green, a URL, or a file beside this one
    max_examples: 20           # generated requests per operation (default 20)
    time_budget: 60s           # for the whole suite (default 60s)
    operations: ["GET /items*"]   # which operations (METHOD /path patterns; default: all)
    exclude: ["GET /admin*"]

Each operation is one check: Schemathesis generates requests that the schema allows and
checks every answer against it (no server error, a documented status, content type, headers
and body). A failure names the check that failed and gives the request that reproduces it
as a curl line. Only ``GET``, ``HEAD`` and ``OPTIONS`` are sent unless ``allow_unsafe`` says
otherwise: generated writes would change green's data.

Schemathesis is an optional extra (``pip install 'greenlight-hooks[openapi]'``): it is
imported when a suite of this kind runs, and a missing install fails that suite naming the
package to add (a file of the kind still loads without it, so an unplanned one costs nothing).
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hooks.core.exceptions import ConfigError
from hooks.core.results import CheckResult, Evidence, Status, cut
from hooks.core.yamlfile import located
from hooks.suites.base import DeclaredKind, DeclaredSuite, SuiteContext
from hooks.suites.thresholds import ThresholdError, parse_seconds

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_EXAMPLES",
    "INSTALL_HINT",
    "SAFE_METHODS",
    "SCHEMA_PATH",
    "OpenApiSuite",
    "OpenApiSuiteKind",
]

SCHEMA_PATH = Path(__file__).with_name("openapi_schema.json")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_EXAMPLES = 20
DEFAULT_BUDGET = 60.0
INSTALL_HINT = (
    "the openapi kind needs Schemathesis: pip install 'greenlight-hooks[openapi]' (in the "
    "Lambda functions: add schemathesis to test_suites/requirements.txt)"
)
#: A check that raised after this many seconds of the suite's budget has no time left.
_MARGIN = 2.0


def _require_schemathesis() -> Any:
    try:
        import schemathesis
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from None
    return schemathesis


class _OutOfTime(Exception):
    """The suite's budget or the run's deadline ran out during an operation."""


class OpenApiSuite(DeclaredSuite):
    """The operations of an OpenAPI document, each checked with generated requests."""

    def __init__(self, *, data: Mapping[str, Any], path: Path, budget: float) -> None:
        super().__init__(data=data, path=path, kind="openapi")
        self.schema = str(data["schema"])
        self.base_path = str(data.get("base_path", ""))
        self.max_examples = int(data.get("max_examples", DEFAULT_MAX_EXAMPLES))
        self.budget = budget
        self.include = [str(p) for p in data.get("operations", [])]
        self.exclude = [str(p) for p in data.get("exclude", [])]
        self.allow_unsafe = bool(data.get("allow_unsafe", False))
        self.folder = path.parent
        if not self.schema.startswith(("/", "http://", "https://")):
            self.data_files = ((self.folder / self.schema).resolve(),)

    def run(self, ctx: SuiteContext) -> None:
        started = time.monotonic()
        until = min(started + self.budget, time.monotonic() + ctx.deadline.remaining())
        try:
            schemathesis = _require_schemathesis()
        except ConfigError as exc:
            ctx.emit(
                CheckResult("Schemathesis", Status.ERROR, message=str(exc), location=self.source)
            )
            return
        try:
            document = self._document(ctx)
            schema = schemathesis.openapi.from_dict(document)
            operations = self._operations(schema)
        except Exception as exc:
            ctx.emit(
                CheckResult(
                    "load the OpenAPI document",
                    Status.ERROR,
                    time.monotonic() - started,
                    f"cannot use the OpenAPI document {self.schema!r}: {_describe(exc)}",
                    location=self.source,
                )
            )
            return
        if not operations:
            ctx.emit(
                CheckResult(
                    "operations to check",
                    Status.FAILED,
                    message=f"no operation of {self.schema!r} is selected "
                    f"(operations: {self.include or 'all'}, exclude: {self.exclude or 'none'}, "
                    f"unsafe methods {'allowed' if self.allow_unsafe else 'left out'})",
                    location=self.source,
                )
            )
            return
        ctx.expect([label for label, _ in operations])
        base_url = ctx.target.resolve(self.base_path) if self.base_path else ctx.target.url
        for label, operation in operations:
            if time.monotonic() > until - _MARGIN:
                ctx.emit(
                    CheckResult(
                        label,
                        Status.TIMED_OUT,
                        message=f"not checked: the suite's {self.budget:g}s or the run's "
                        f"deadline ran out first (raise time_budget, or select fewer "
                        f"operations)",
                        location=self.source,
                    )
                )
                continue
            ctx.emit(self._check(ctx, label, operation, base_url, until))

    def _document(self, ctx: SuiteContext) -> dict[str, Any]:
        """The OpenAPI document: from green (a path), a URL, or a file beside the suite."""
        import yaml

        if self.schema.startswith(("/", "http://", "https://")):
            url = ctx.target.resolve(self.schema)
            response = ctx.session.get(url)
            if response.status_code != 200:
                raise ValueError(f"GET {url} answered {response.status_code}")
            text = response.text
        else:
            file = (self.folder / self.schema).resolve()
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
        try:
            document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"not JSON or YAML: {exc}") from None
        if not isinstance(document, dict) or not ("openapi" in document or "swagger" in document):
            raise ValueError("not an OpenAPI document (no 'openapi' or 'swagger' key)")
        return document

    def _operations(self, schema: Any) -> list[tuple[str, Any]]:
        chosen: list[tuple[str, Any]] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            method = str(operation.method).upper()
            label = f"{method} {operation.path}"
            if method not in SAFE_METHODS and not self.allow_unsafe:
                continue
            if self.include and not any(fnmatch.fnmatchcase(label, p) for p in self.include):
                continue
            if any(fnmatch.fnmatchcase(label, p) for p in self.exclude):
                continue
            chosen.append((label, operation))
        return chosen

    def _check(
        self, ctx: SuiteContext, label: str, operation: Any, base_url: str, until: float
    ) -> CheckResult:
        from hypothesis import HealthCheck, Phase, Verbosity, given, settings

        started = time.perf_counter()
        last: list[Any] = []
        sent = [0]

        @settings(
            max_examples=self.max_examples,
            deadline=None,
            database=None,  # nothing written: the code directory is read-only in Lambda
            derandomize=True,  # the same requests at every run of the gate
            phases=[Phase.explicit, Phase.generate],  # the first failure, not a shrunk one
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            report_multiple_bugs=False,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if time.monotonic() > until - _MARGIN:
                raise _OutOfTime()
            last[:] = [case]
            sent[0] += 1
            case.call_and_validate(base_url=base_url, session=ctx.session)

        try:
            check()
        except _OutOfTime:
            return CheckResult(
                label,
                Status.TIMED_OUT,
                time.perf_counter() - started,
                f"cut short after {sent[0]} requests: the suite's {self.budget:g}s or the run's "
                f"deadline ran out",
                location=self.source,
            )
        except (Exception, BaseExceptionGroup) as exc:  # Schemathesis raises a FailureGroup
            return self._failure(label, exc, last[0] if last else None, base_url, started)
        if not sent[0]:  # nothing was asked of green: nothing was shown
            return CheckResult(
                label,
                Status.FAILED,
                time.perf_counter() - started,
                "no request could be generated for this operation: check its parameters' schemas",
                ("no request generated",),
                location=self.source,
            )
        return CheckResult(
            label,
            Status.PASSED,
            time.perf_counter() - started,
            f"{sent[0]} generated requests conformed to the schema",
            location=self.source,
        )

    def _failure(
        self, label: str, exc: BaseException, case: Any, base_url: str, started: float
    ) -> CheckResult:
        found = [f for f in getattr(exc, "exceptions", None) or [exc] if hasattr(f, "title")]
        found.sort(key=lambda f: str(getattr(f, "code", "")))  # ST101 server error first
        failures = [_failure_line(f) for f in found] or [_describe(exc)]
        status = next((f.status_code for f in found if hasattr(f, "status_code")), None)
        curl = None
        if case is not None:
            try:
                curl = case.as_curl_command(base_url=base_url).split("\n\n")[0]
            except Exception:  # a reproduction line is a help, not a need
                curl = None
        message = failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        if curl:
            message += f"; reproduce with: {curl}"
        return CheckResult(
            label,
            Status.FAILED,
            time.perf_counter() - started,
            message,
            tuple(failures),
            Evidence(curl, status, cut(str(exc))),
            self.source,
        )


def _failure_line(failure: Any) -> str:
    """``ST101 Server error: HTTP 500``, ``ST108 Response violates schema: "x" is not...``."""
    head = f"{getattr(failure, 'code', '')} {failure.title}".strip()
    lines = [line.strip() for line in str(failure.message).splitlines() if line.strip()]
    detail = lines[0] if lines else ""
    if not detail and hasattr(failure, "status_code"):
        detail = f"HTTP {failure.status_code}"
    return f"{head}: {detail}" if detail else head


def _describe(exc: BaseException) -> str:
    # on use: requests loads in the workers that send requests, never in the hook's process
    from hooks.core.http import describe_error

    if isinstance(exc, ValueError | ConfigError):
        return str(exc)
    return describe_error(exc)


class OpenApiSuiteKind(DeclaredKind):
    """Loads YAML files that declare ``kind: openapi``."""

    name = "openapi"
    schema = SCHEMA_PATH

    def build(self, data: Mapping[str, Any], path: Path, text: str) -> OpenApiSuite:
        # Schemathesis is not imported here: a file of this kind loads (and validates)
        # without the extra, and a run of it says what to install.
        try:
            budget = parse_seconds(data.get("time_budget", DEFAULT_BUDGET))
        except ThresholdError as exc:
            raise located(path, text, ["time_budget"], str(exc)) from None
        if budget <= 0:
            raise located(path, text, ["time_budget"], "the time budget must be more than 0")
        return OpenApiSuite(data=data, path=path, budget=budget)
