"""Check suites and the plan without running anything: schemas, plugins, names."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hooks.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
)
from hooks.cli.local import patched_env
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.settings import PLAN_FILE_NAME, Settings
from hooks.core.verdict import plural
from hooks.core.yamlfile import line_of
from hooks.gate.plan import PlanFile, plans_by_event
from hooks.suites.base import is_openapi_document
from hooks.suites.registry import (
    PLAN_FILE_NAMES,
    BrokenSuite,
    Catalog,
    candidate_paths,
    load_plugins,
    select_suites,
)

__all__ = [
    "events_of",
    "plan_lines",
    "register",
    "validate_command",
    "validate_dir",
    "validate_file",
]


def validate_dir(root: Path) -> tuple[list[str], Catalog, PlanFile | None]:
    """Problems as ``file:line: message`` lines, the catalog, and the plan file."""
    problems: list[str] = []
    catalog = Catalog()
    load_plugins(catalog)
    problems += [s.error for s in catalog.broken]
    if not root.is_dir():
        return [f"{root}: no such suites directory"], catalog, None
    for path, kind in candidate_paths(root, catalog.kinds.values()):
        found = kind.validate(path)
        problems += found
        if not found:
            catalog.suites.extend(kind.load(path))
    seen: dict[str, str] = {}
    for suite in catalog.suites:
        if isinstance(suite, BrokenSuite):
            continue
        where = suite.source or suite.kind
        if suite.name in seen:
            problems.append(
                f"{where}: duplicate suite name {suite.name!r} (also in {seen[suite.name]})"
            )
        seen.setdefault(suite.name, where)
    plan_file: PlanFile | None = None
    plan_path = root / PLAN_FILE_NAME
    try:
        plan_file = PlanFile.load(plan_path)
    except ConfigError as exc:
        problems.append(str(exc))
    if plan_file is not None:
        tags = {tag for suite in catalog.suites for tag in suite.tags}
        problems += _unknown_names(plan_file, set(seen), tags)
    return problems, catalog, plan_file


def validate_file(path: Path) -> list[str]:
    """Problems of one suite file (of any installed kind) or plan file."""
    if not path.is_file():
        return [f"{path}: no such file"]
    if path.name in PLAN_FILE_NAMES:
        try:
            PlanFile.load(path)
        except ConfigError as exc:
            return [str(exc)]
        return []
    catalog = Catalog()
    load_plugins(catalog)
    kind = next((k for k in catalog.kinds.values() if k.claims(path)), None)
    if kind is None and is_openapi_document(path):
        return []  # data an openapi suite reads, as discovery of its folder also says
    if kind is None:
        kinds = ", ".join(sorted(catalog.kinds)) or "none"
        return [f"{path}: no suite kind claims this file (kinds installed: {kinds})"]
    return kind.validate(path)


def plan_lines(catalog: Catalog, plan_file: PlanFile | None, settings: Settings) -> list[str]:
    """Per lifecycle event, the suites that would run; then each plan value and its source."""
    lines = []
    width = max(len(e.value) for e in LifecycleEvent)
    plans = plans_by_event(settings, plan_file)
    for event, plan in plans.items():
        suites = select_suites(
            catalog,
            event,
            plan.suites,
            plan.policies,
            planned_source=plan.sources["suites"],
            suites_dir=settings.suites_dir,
        )
        names = ", ".join(s.name for s in suites) or "(none)"
        lines.append(f"  {event.value:<{width}}  {names}  [suites: {plan.sources['suites']}]")
    plan = plans[LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC]  # values other than suites
    described = plan.describe()
    lines.append("values (the same at every event):")
    for key, source in sorted(plan.sources.items()):
        if key == "suites":
            continue
        value = described.get(key, described.get("tls_verify") if key == "verify" else None)
        lines.append(f"  {key}: {value}  [{source}]")
    return lines


def _unknown_names(plan: PlanFile, known: set[str], tags: set[str]) -> list[str]:
    """Suites (or ``tag:NAME``) the plan names that no suite answers to."""
    problems = []
    entries: list[tuple[list[str | int], Mapping[str, Any]]] = []
    if "defaults" in plan.data:
        entries.append((["defaults"], plan.data["defaults"]))
    entries += [(["groups", i], group) for i, group in enumerate(plan.data.get("groups", []))]
    listing = ", ".join(sorted(known)) or "none"
    for keys, entry in entries:
        for event, names in entry.get("suites", {}).items():
            for index, name in enumerate(names):
                if name not in known and not (name.startswith("tag:") and name[4:] in tags):
                    line = line_of(plan.text, [*keys, "suites", event, index])
                    problems.append(
                        f"{plan.path}:{line}: suite {name!r} planned at {event} does not exist "
                        f"(suites: {listing})"
                    )
        for name in entry.get("policy", {}):
            if name not in known:
                line = line_of(plan.text, [*keys, "policy", name])
                problems.append(f"{plan.path}:{line}: policy for unknown suite {name!r}")
    return problems


def events_of(catalog: Catalog) -> dict[str, list[str]]:
    return {
        suite.name: [e.value for e in LifecycleEvent if e in suite.events] or ["every event"]
        for suite in catalog.suites
        if not isinstance(suite, BrokenSuite)
    }


def register(sub: Any) -> None:
    """The ``validate`` command's arguments."""
    validate = sub.add_parser(
        "validate", help="check suites and the plan without running them; print file:line errors"
    )
    validate.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="suites directories, suite files or plan files (default: the suites directory)",
    )
    validate.add_argument(
        "--plan",
        action="store_true",
        help="also print, per lifecycle event, the suites that would run and where each "
        "plan value comes from",
    )
    validate.add_argument("--application", help="the application to match plan groups with")
    validate.add_argument("--deployment-group", help="the deployment group to match with")
    validate.set_defaults(run=validate_command)


def validate_command(args: argparse.Namespace) -> int:
    """Problems are configuration errors: exit 2 (as for every command)."""

    paths = args.paths or [Settings.from_env().suites_dir]
    problems: list[str] = []
    report: list[str] = []
    for path in paths:
        if path.is_dir():
            found, catalog, plan = validate_dir(path)
            problems += found
            if not found:
                sends = {s.name: s.secret_origins for s in catalog.suites if s.secret_origins}
                for name, events in sorted(events_of(catalog).items()):
                    report.append(f"ok  {name}: {', '.join(events)}")
                    if name in sends:
                        origins = ", ".join(sends[name])
                        report.append(f"    sends credentials to {origins} (secrets_to)")
                report.append(
                    f"{plural(len(catalog.suites), 'suite')} valid in {path}; "
                    f"plan: {plan.path if plan else 'none'}"
                )
                if args.plan:
                    env = {
                        "GREENLIGHT_SUITES_DIR": str(path),
                        "GREENLIGHT_APPLICATION": args.application,
                        "GREENLIGHT_DEPLOYMENT_GROUP": args.deployment_group,
                    }
                    with patched_env(env):
                        settings = Settings.from_env()
                    report.append(f"plan for {path} (suites at each event):")
                    report += plan_lines(catalog, plan, settings)
        else:
            found = validate_file(path)
            problems += found
            if not found:
                note = (
                    " (an OpenAPI document: data, not a suite)" if is_openapi_document(path) else ""
                )
                report.append(f"ok  {path}{note}")
    lines = [line for problem in problems for line in problem.splitlines()]
    for line in lines:
        print(line)
    if lines:
        print(f"{plural(len(lines), 'problem')} in {', '.join(map(str, paths))}")
        return EXIT_USAGE
    for line in report:
        print(line)
    return EXIT_OK
