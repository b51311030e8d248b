"""Declarative HTTP suites: YAML files of requests, assertions, captures and polling."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hooks.core import redact
from hooks.core.exceptions import ConfigError
from hooks.core.results import CheckResult, Evidence, Policy, Status, cut
from hooks.core.target import NoProductionUrlError
from hooks.core.yamlfile import load_document, located, validate
from hooks.suites.base import (
    YAML_SUFFIXES,
    Check,
    CheckSuite,
    Suite,
    SuiteContext,
    SuiteKind,
    declared_kind,
    is_openapi_document,
    parse_events,
)
from hooks.suites.http.assertions import (
    QUERIES,
    PatternError,
    Response,
    compile_pattern,
    evaluate,
    search,
)
from hooks.suites.http.compare import Answer, Compare, compare
from hooks.suites.http.template import UnknownVariableError, render

__all__ = [
    "BUILTIN_VARIABLES",
    "DEFAULT_ASSERTIONS",
    "SCHEMA_PATH",
    "HttpCheck",
    "HttpSuite",
    "HttpSuiteKind",
]

SCHEMA_PATH = Path(__file__).with_name("schema.json")
#: Without assertions, a check asserts that the response is not an error.
DEFAULT_ASSERTIONS: tuple[Mapping[str, Any], ...] = ({"status": True, "less_than": 400},)
BUILTIN_VARIABLES = frozenset(
    {
        "deployment.id",
        "deployment.execution_id",
        "deployment.lifecycle_event",
        "deployment.application",
        "deployment.group",
        "deployment.stage",
        "traffic.test_weight",
        "traffic.production_weight",
        "target.url",
        "target.prod_url",
        "target.host",
        "target.load_balancer",
        "target.target_group",
    }
)
_REFERENCE = re.compile(r"(?<!\$)\$\{([^}]*)\}")


@dataclass
class HttpCheck(Check):
    """One check of a declarative suite, as written in the file (after validation).

    It reads and sets variables in ``ctx.scope``, which lives for one run of its suite.
    """

    name: str
    request: Mapping[str, Any]
    assertions: tuple[Mapping[str, Any], ...]
    captures: Mapping[str, Mapping[str, str]]
    retry: int
    retry_interval: float
    #: Seconds to wait for the response; None: the plan's request_timeout.
    timeout: float | None
    headers: Mapping[str, Any] = field(default_factory=dict)
    #: Whether any string of the check uses ``${...}`` (else rendering is skipped).
    templated: bool = True
    #: Headers the suite marks secret (their values are redacted everywhere).
    secret_headers: frozenset[str] = frozenset()
    #: ``file:line`` of the check in its suite file.
    location: str | None = None
    #: Variables it uses that earlier checks capture: variable -> the capturing check.
    depends: Mapping[str, str] = field(default_factory=dict)
    #: Blue versus green (:mod:`hooks.suites.http.compare`), when the check says ``compare``.
    compare: Compare | None = None

    def run(self, ctx: SuiteContext) -> CheckResult:
        scope = ctx.scope
        missing = [name for name in self.depends if name not in scope]
        if missing:  # an earlier check did not capture what this one needs
            needs = ", ".join(f"${{{n}}} (from {self.depends[n]!r})" for n in missing)
            return CheckResult(
                self.name,
                Status.SKIPPED,
                message=f"did not run: needs {needs}, which was not captured",
                location=self.location,
            )
        started = time.perf_counter()
        if self.compare is not None:
            return self._run_compare(ctx, scope, self.compare, started)
        attempts = 0
        while True:
            attempts += 1
            failures, evidence, response = self._attempt(ctx, scope, attempts)
            if not failures or attempts > self.retry:
                break
            if ctx.deadline.remaining() <= self.retry_interval:
                failures.append(f"gave up after {attempts} attempts: the deadline is near")
                break
            time.sleep(self.retry_interval)
        if not failures and response is not None:
            failures = self._capture(response, scope)
        duration = time.perf_counter() - started
        if not failures:
            return CheckResult(
                self.name, Status.PASSED, duration, evidence=evidence, location=self.location
            )
        status = Status.TIMED_OUT if ctx.deadline.expired() else Status.FAILED
        message = failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        if attempts > 1:
            message += f" [after {attempts} attempts]"
        return CheckResult(
            self.name, status, duration, message, tuple(failures), evidence, self.location
        )

    def _attempt(
        self, ctx: SuiteContext, scope: Mapping[str, str], attempt: int
    ) -> tuple[list[str], Evidence | None, Response | None]:
        request, defaults, assertions = self.request, self.headers, self.assertions
        if self.templated:
            try:
                request, defaults, assertions = render([request, defaults, assertions], scope)
            except UnknownVariableError as exc:
                return [str(exc)], None, None
        try:
            line, raw, millis = self._send(
                ctx, request, defaults, request.get("listener") == "prod"
            )
        except NoProductionUrlError as exc:
            return [str(exc)], None, None
        except _SendError as exc:  # no response: refused, timeout, TLS...
            return (
                [f"request failed: {exc.why}"],
                Evidence(exc.line, attempts=attempt),
                None,
            )
        response = Response(raw.status_code, raw.headers, lambda: raw.text, millis)
        failures = [f for assertion in assertions for f in evaluate(assertion, response)]
        evidence = Evidence(
            line, raw.status_code, cut(response.text) if failures else None, attempt
        )
        return failures, evidence, response

    def _send(
        self, ctx: SuiteContext, request: Mapping[str, Any], defaults: Mapping[str, Any], prod: bool
    ) -> tuple[str, Any, float]:
        """One request (the production listener's when ``prod``): its line, the response and
        the milliseconds it took; :class:`_SendError` when no response came."""
        method = request.get("method", "GET")
        url = ctx.target.resolve(request.get("url") or request.get("path") or "/", prod=prod)
        headers = {k: str(v) for k, v in defaults.items()}
        headers.update({k: str(v) for k, v in request.get("headers", {}).items()})
        redact.register_headers(headers, self.secret_headers)
        query = request.get("query")
        shown = f"{url}{'&' if '?' in url else '?'}{urlencode(query, doseq=True)}" if query else url
        line = f"{method} {shown}"
        # on use: the engine loads in the workers that send requests, never in the hook's process
        from hooks.core.fetch import FetchError

        t0 = time.perf_counter()
        try:
            raw = ctx.fetcher.request(
                method,
                url,
                query=request.get("query"),
                headers=headers or None,
                json=request.get("json"),
                body=request.get("body"),
                timeout=self.timeout,
                allow_redirects=request.get("allow_redirects", False),
                max_body_bytes=request.get("max_body_bytes"),
            )
        except FetchError as exc:
            raise _SendError(line, str(exc)) from exc
        except Exception as exc:  # what the request's own arguments make of it
            raise _SendError(line, f"{type(exc).__name__}: {exc}") from exc
        return line, raw, (time.perf_counter() - t0) * 1000

    def _run_compare(
        self, ctx: SuiteContext, scope: Mapping[str, str], spec: Compare, started: float
    ) -> CheckResult:
        """Blue and green, the same request each; a difference fails the check."""
        request, defaults, assertions = self.request, self.headers, self.assertions
        if self.templated:
            try:
                request, defaults, assertions = render([request, defaults, assertions], scope)
            except UnknownVariableError as exc:
                return CheckResult(
                    self.name, Status.FAILED, message=str(exc), location=self.location
                )
        lines: dict[bool, str] = {}
        first_green: list[Any] = []

        def ask(prod: bool) -> Answer:
            line, raw, millis = self._send(ctx, request, defaults, prod)
            lines.setdefault(prod, line)
            if not prod and not first_green:
                first_green.append((raw, millis))
            return Answer(raw.status_code, raw.headers, raw.text, millis)

        try:
            failures, summary = compare(spec, ask)
        except NoProductionUrlError as exc:
            failures, summary = [f"compare needs the production URL: {exc}"], ""
        except _SendError as exc:
            failures, summary = [f"request failed: {exc.line}: {exc.why}"], ""
        if first_green and self.request.get("assert") is not None:
            raw, millis = first_green[0]
            response = Response(raw.status_code, raw.headers, lambda: raw.text, millis)
            failures += [f for assertion in assertions for f in evaluate(assertion, response)]
        evidence = Evidence(
            " / ".join(
                f"{'blue' if prod else 'green'}: {line}" for prod, line in sorted(lines.items())
            ),
            first_green[0][0].status_code if first_green else None,
            cut(first_green[0][0].text) if first_green and failures else None,  # green's body
        )
        duration = time.perf_counter() - started
        if not failures:
            return CheckResult(
                self.name,
                Status.PASSED,
                duration,
                summary,
                evidence=evidence,
                location=self.location,
            )
        status = Status.TIMED_OUT if ctx.deadline.expired() else Status.FAILED
        message = failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        return CheckResult(
            self.name,
            status,
            duration,
            message,
            tuple(failures),
            evidence=evidence,
            location=self.location,
        )

    def _capture(self, response: Response, scope: dict[str, str]) -> list[str]:
        failures: list[str] = []
        for variable, spec in self.captures.items():
            value: Any = None
            if "jmespath" in spec:
                try:
                    value = search(spec["jmespath"], response.json())
                except ValueError:
                    value = None
            elif "header" in spec:
                value = response.headers.get(spec["header"])
            else:
                try:
                    found = compile_pattern(spec["regex"]).search(response.text)
                except PatternError as exc:
                    failures.append(f"capture {variable}: invalid regular expression: {exc}")
                    continue
                value = (found.group(1) if found.groups() else found.group(0)) if found else None
            if value is None:
                how = ", ".join(f"{k} {v!r}" for k, v in spec.items())
                failures.append(f"capture {variable}: {how} found nothing in the response")
            else:
                scope[variable] = value if isinstance(value, str) else _text(value)
        return failures


class _SendError(Exception):
    """A request that got no response: its line, and why."""

    def __init__(self, line: str, why: str) -> None:
        super().__init__(line)
        self.line = line
        self.why = why


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list | bool) else str(value)


class HttpSuite(CheckSuite):
    """A declarative suite: its variables seed each run's scope."""

    def __init__(
        self,
        *,
        variables: Mapping[str, str],
        per_target: bool = False,
        secret_origins: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.variables = dict(variables)
        self.per_target = per_target
        self.secret_origins = secret_origins

    def production_only_problem(self) -> str | None:
        """Why this suite cannot run at BeforeInstall, when a check addresses the test listener."""
        for check in self.checks:
            assert isinstance(check, HttpCheck)
            request = check.request
            if request.get("listener") != "prod" and not request.get("url"):
                return (
                    f"{self.source}: check {check.name!r} addresses the test listener, but at "
                    f"BeforeInstall no green task set exists yet: give it 'listener: prod' "
                    f"(pre-flight checks of production and its dependencies), or plan the "
                    f"suite for AfterInstall or later"
                )
        return None

    def run(self, ctx: SuiteContext) -> None:
        ctx.scope.update({**ctx.variables(), **self.variables})
        super().run(ctx)


class HttpSuiteKind(SuiteKind):
    """Loads ``*.yaml`` / ``*.yml`` suite files (the plan file ``greenlight.yaml`` excepted)
    that declare no other kind (``kind: load``...)."""

    name = "http"

    def claims(self, path: Path) -> bool:
        return (
            path.suffix in YAML_SUFFIXES
            and path.is_file()
            and declared_kind(path) in (None, self.name)
            and not is_openapi_document(path)
        )

    def load(self, path: Path) -> list[Suite]:
        data, text, lines = load_document(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:1: a suite file must be a mapping with 'name' and 'checks'")
        validate(data, SCHEMA_PATH, path, text, hints=_hint, each="checks")
        return [_build(data, path, text, lines.get("checks", []))]


def _hint(keys: list[str], rule: str) -> str | None:
    if rule == "not" and keys and keys[-1] == "request":
        return "a request has either 'json' or 'body', not both"
    return None


def _build(data: Mapping[str, Any], path: Path, text: str, lines: list[int]) -> HttpSuite:
    defaults = data.get("defaults", {})
    variables = {k: str(v) for k, v in data.get("variables", {}).items()}
    known = set(BUILTIN_VARIABLES) | set(variables)
    seen: set[str] = set()
    checks: list[HttpCheck] = []
    captured: dict[str, str] = {}
    for index, spec in enumerate(data["checks"]):
        where: list[Any] = ["checks", index]
        if spec["name"] in seen:
            raise located(path, text, [*where, "name"], f"duplicate check name {spec['name']!r}")
        seen.add(spec["name"])
        _check_expressions(spec, path, text, where)
        _check_references(spec, known, path, text, where)
        used = {n.strip() for n in _REFERENCE.findall(json.dumps(spec))}
        depends = {name: captured[name] for name in used if name in captured}
        known |= set(spec.get("capture", {}))
        captured.update({name: spec["name"] for name in spec.get("capture", {})})
        written = {
            "request": spec["request"],
            "assert": spec.get("assert"),
            "headers": defaults.get("headers"),
        }
        comparison = None
        if "compare" in spec:
            try:
                comparison = Compare.parse(spec["compare"], spec["request"].get("method", "GET"))
            except ValueError as exc:
                raise located(path, text, [*where, "compare"], str(exc)) from None
        checks.append(
            HttpCheck(
                name=spec["name"],
                request=spec["request"],
                assertions=tuple(spec.get("assert") or DEFAULT_ASSERTIONS),
                captures=spec.get("capture", {}),
                retry=spec.get("retry", defaults.get("retry", 0)),
                retry_interval=float(
                    spec.get("retry_interval", defaults.get("retry_interval", 1.0))
                ),
                timeout=spec["request"].get("timeout", defaults.get("timeout")),
                headers=defaults.get("headers", {}),
                templated="${" in json.dumps(written),
                secret_headers=frozenset(data.get("secret_headers", [])),
                location=f"{path}:{lines[index]}" if index < len(lines) else str(path),
                depends=depends,
                compare=comparison,
            )
        )
    flow = any(c.captures for c in checks)
    return HttpSuite(
        name=data["name"],
        kind="http",
        checks=checks,
        variables=variables,
        sequential=bool(data.get("sequential", False) or flow),
        description=data.get("description", ""),
        tags=frozenset(data.get("tags", [])),
        events=parse_events(data.get("events"), str(path)),
        per_target=bool(data.get("per_target", False)),
        policy=Policy(
            report_only=bool(data.get("report_only", False)),
            failure_limit=int(data.get("failure_limit", 0)),
        ),
        source=str(path),
        secret_origins=tuple(str(o) for o in data.get("secrets_to", ())),
    )


def _check_expressions(spec: Mapping[str, Any], path: Path, text: str, where: list[Any]) -> None:
    """Compile every regex and JMESPath now, so a typo fails validation, not the gate."""
    import jmespath
    from jmespath.exceptions import ParseError

    items: list[tuple[list[Any], Mapping[str, Any]]] = [
        ([*where, "assert", i], a) for i, a in enumerate(spec.get("assert", []))
    ]
    for keys, item in items:
        if sum(query in item for query in QUERIES) != 1:
            raise located(
                path,
                text,
                keys,
                "an assertion needs exactly one query: status, header, jmespath, body or duration",
            )
    captures = [([*where, "capture", name], c) for name, c in spec.get("capture", {}).items()]
    for keys, item in captures:
        if len(item) != 1:
            raise located(
                path, text, keys, "a capture needs exactly one of jmespath, header or regex"
            )
    for keys, item in items + captures:
        for key in ("matches", "regex"):
            if key in item and "${" not in item[key]:
                try:
                    compile_pattern(item[key])
                except PatternError as exc:
                    raise located(
                        path, text, [*keys, key], f"invalid regular expression {item[key]!r}: {exc}"
                    ) from None
        if "jmespath" in item:
            try:
                jmespath.compile(item["jmespath"])
            except ParseError as exc:
                raise located(
                    path,
                    text,
                    [*keys, "jmespath"],
                    f"invalid JMESPath {item['jmespath']!r}: {exc.msg}",
                ) from None


def _check_references(spec: Any, known: set[str], path: Path, text: str, where: list[Any]) -> None:
    """Every ``${name}`` must be defined before the check runs (``env:``, ``secret:`` and
    ``ssm:`` are read at run time)."""
    if isinstance(spec, str):
        for name in _REFERENCE.findall(spec):
            name = name.strip()
            if not name.startswith(("env:", "secret:", "ssm:")) and name not in known:
                raise located(
                    path,
                    text,
                    where,
                    f"${{{name}}} is not defined here (known: {', '.join(sorted(known))})",
                )
    elif isinstance(spec, list):
        for index, item in enumerate(spec):
            _check_references(item, known, path, text, [*where, index])
    elif isinstance(spec, dict):
        for key, item in spec.items():
            if key == "capture":
                continue
            _check_references(item, known, path, text, [*where, key])
