"""Find, load and validate suites: built-in and third-party kinds through one registry.

Each step is guarded per plugin and per suite: a kind that fails to import, a suite file
that does not parse, become :class:`BrokenSuite` objects whose run fails with a message
naming the plugin or file and the cause. The other suites still load and run.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import CheckResult, Policy, Status
from hooks.suites.base import Suite, SuiteContext, SuiteKind, declared_kind

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXAMPLES_DIR",
    "PLAN_FILE_NAMES",
    "BrokenSuite",
    "Catalog",
    "EntryPoint",
    "UnknownKind",
    "candidate_paths",
    "check_suites_dir",
    "discover",
    "load_one",
    "load_plugins",
    "load_suites_dir",
    "scan_entry_points",
    "select_suites",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "greenlight.suites"
#: Files in the suites directory that are never suites.
PLAN_FILE_NAMES = frozenset({"greenlight.yaml", "greenlight.yml"})
_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".git", "node_modules"})
#: Shipped examples, to copy: not run unless the suites directory points into them.
EXAMPLES_DIR = "examples"


class BrokenSuite(Suite):
    """A suite that could not be loaded; running it reports the load error."""

    def __init__(self, name: str, kind: str, error: str, source: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.error = error
        self.source = source

    def run(self, ctx: SuiteContext) -> None:  # pragma: no cover - the runner short-cuts
        ctx.emit(CheckResult("load", Status.ERROR, message=self.error))


class UnknownKind(SuiteKind):
    """The kind a YAML file declares when no installed plugin provides it: loading the file
    fails, naming the kind and the ones installed."""

    def __init__(self, name: str, installed: list[str]) -> None:
        self.name = name
        self.installed = installed

    def claims(self, path: Path) -> bool:
        return declared_kind(path) == self.name

    def load(self, path: Path) -> list[Suite]:
        raise ConfigError(
            f"{path}: declares kind {self.name!r}, which no installed plugin provides "
            f"(installed kinds: {', '.join(self.installed)})"
        )


@dataclass
class Catalog:
    """Every kind and suite that could be found, and what failed to load."""

    kinds: dict[str, SuiteKind] = field(default_factory=dict)
    suites: list[Suite] = field(default_factory=list)

    @property
    def broken(self) -> list[BrokenSuite]:
        return [s for s in self.suites if isinstance(s, BrokenSuite)]

    def names(self) -> list[str]:
        return sorted({s.name for s in self.suites})

    def by_name(self) -> dict[str, list[Suite]]:
        found: dict[str, list[Suite]] = {}
        for suite in self.suites:
            found.setdefault(suite.name, []).append(suite)
        return found


class EntryPoint(NamedTuple):
    """An entry point of the group, as ``importlib.metadata`` describes it."""

    name: str
    value: str

    def load(self) -> Any:
        """The object it names (``module:attribute.path``), importing its module."""
        found = _ENTRY_POINT_VALUE.match(self.value)
        if found is None:
            raise ValueError(f"not an entry point: {self.value!r}")
        loaded = importlib.import_module(found["module"])
        for attribute in filter(None, (found["attr"] or "").split(".")):
            loaded = getattr(loaded, attribute)
        return loaded


#: ``module:attr [extras]``, as ``importlib.metadata.EntryPoint.pattern`` reads it.
_ENTRY_POINT_VALUE = re.compile(
    r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$"
)

#: The entry points found by :func:`scan_entry_points` ahead of use, and for which path.
_scanned: tuple[tuple[str, ...], list[EntryPoint]] | None = None


def scan_entry_points() -> None:
    """Read the installed distributions' entry points now (metadata only, no plugin code):
    a worker does it before its set-up arrives, and the fork server for all its workers."""
    global _scanned
    _scanned = (tuple(sys.path), _read_entry_points())


def _entry_points() -> list[EntryPoint]:
    if _scanned is not None and _scanned[0] == tuple(sys.path):
        return list(_scanned[1])
    return _read_entry_points()


def _read_entry_points() -> list[EntryPoint]:
    """The group's entry points of every distribution on ``sys.path``, as
    ``importlib.metadata.entry_points(group=...)`` finds them: each folder in path order,
    its ``*.dist-info`` and ``*.egg-info`` folders, a distribution's first copy only.

    Read here rather than through ``importlib.metadata``, whose imports (email, zipfile,
    csv: some 10 ms) a cold worker pays before its first check; a zip file on the path (a
    zipped egg) is left to it."""
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        if os.path.isfile(folder):
            return _read_with_importlib()
        try:
            names = os.listdir(folder)
        except OSError:  # not there, or not a folder
            continue
        for name in names:
            stem, _, suffix = name.rpartition(".")
            if suffix not in ("dist-info", "egg-info"):
                continue
            distribution = re.sub(r"[-_.]+", "_", stem.partition("-")[0]).lower()
            if distribution in seen:
                continue
            seen.add(distribution)
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:  # none declared (or an egg-info file, not a folder)
                continue
            found += _group_of(text)
    return sorted(found)


def _group_of(text: str) -> list[EntryPoint]:
    """The entries of ``[greenlight.suites]`` in an ``entry_points.txt``."""
    found, section = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == ENTRY_POINT_GROUP and "=" in line:
            name, _, value = line.partition("=")
            found.append(EntryPoint(name.strip(), value.strip()))
    return found


def _read_with_importlib() -> list[EntryPoint]:
    # on use: only with a zip file on sys.path
    from importlib.metadata import entry_points

    return sorted(EntryPoint(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_plugins(catalog: Catalog) -> None:
    """Load every entry point of the group: a kind (class or instance) or a ready suite."""
    for ep in _entry_points():
        where = f"plugin {ep.name!r} ({ep.value})"
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, SuiteKind):
                obj = obj()
            if isinstance(obj, SuiteKind):
                if not getattr(obj, "name", None):
                    raise TypeError("a SuiteKind must have a non-empty 'name'")
                catalog.kinds[obj.name] = obj
            elif isinstance(obj, Suite):
                obj.origin = {"entry_point": ep.name, "name": obj.name}
                catalog.suites.append(obj)
            else:
                raise TypeError(
                    f"expected a SuiteKind subclass or instance, or a Suite; got {obj!r}"
                )
        except Exception as exc:
            log.error("failed to load %s: %s: %s", where, type(exc).__name__, exc)
            log.debug("traceback of %s\n%s", where, traceback.format_exc())
            catalog.suites.append(
                BrokenSuite(
                    f"plugin:{ep.name}",
                    "plugin",
                    f"failed to load {where}: {type(exc).__name__}: {exc}",
                    source=ep.value,
                )
            )


def candidate_paths(
    root: Path, kinds: Iterable[SuiteKind], *, top: bool = True
) -> Iterator[tuple[Path, SuiteKind]]:
    """Files and folders under ``root`` that a kind claims, sorted for a stable order."""
    kinds = list(kinds)
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name in _IGNORED_DIRS or path.name in PLAN_FILE_NAMES:
            continue
        if top and path.name == EXAMPLES_DIR and path.is_dir():
            continue
        claimant = next((kind for kind in kinds if kind.claims(path)), None)
        if claimant is None and (declared := declared_kind(path)) is not None:
            claimant = UnknownKind(declared, sorted(kind.name for kind in kinds))
        if claimant is not None:
            yield path, claimant
        elif path.is_dir():
            yield from candidate_paths(path, kinds, top=False)


def check_suites_dir(root: Path) -> None:
    """A suites directory that is missing, not a directory or unreadable is a config error."""
    setting = "GREENLIGHT_SUITES_DIR / --suites-dir"
    if not root.exists():
        raise ConfigError(f"the suites directory {root} does not exist (set by {setting})")
    if not root.is_dir():
        raise ConfigError(f"the suites directory {root} is not a directory (set by {setting})")
    try:
        next(iter(os.scandir(root)), None)
    except OSError as exc:
        raise ConfigError(
            f"the suites directory {root} cannot be read: {exc.strerror or exc}"
        ) from exc


def load_suites_dir(catalog: Catalog, root: Path) -> None:
    """Load every suite under ``root``; a file that fails becomes a broken suite."""
    check_suites_dir(root)
    for path, kind in candidate_paths(root, catalog.kinds.values()):
        try:
            loaded = kind.load(path)
        except Exception as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            log.error("failed to load %s", message)
            log.debug("traceback of %s\n%s", path, traceback.format_exc())
            catalog.suites.append(
                BrokenSuite(_declared_name(path), kind.name, message, source=str(path))
            )
            continue
        for suite in loaded:
            suite.origin = {"kind": kind.name, "path": str(path), "name": suite.name}
        catalog.suites.extend(loaded)
    # A file a suite reads as data (its OpenAPI document) is not a suite, whatever claimed it.
    data = {file for suite in catalog.suites for file in suite.data_files}
    catalog.suites = [
        s for s in catalog.suites if not s.source or Path(s.source).resolve() not in data
    ]


def _declared_name(path: Path) -> str:
    """The ``name:`` a broken YAML file declares, when it can be read; else the file's stem."""
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8")[:100_000])
            name = data.get("name") if isinstance(data, dict) else None
            if isinstance(name, str) and name:
                return name
        except Exception:  # the file's own error is reported; this is only a name
            pass
    return path.stem


def load_one(origin: Mapping[str, Any]) -> Suite:
    """Load the one suite ``origin`` names (a file of a kind, or a plugin's entry point)."""
    catalog = Catalog()
    load_plugins(catalog)
    name = origin.get("name")
    if "entry_point" in origin:
        found = [s for s in catalog.suites if s.origin and s.origin == dict(origin)]
    else:
        kind = catalog.kinds.get(str(origin.get("kind")))
        if kind is None:
            raise ConfigError(f"suite kind {origin.get('kind')!r} is not installed")
        path = Path(str(origin["path"]))
        found = [s for s in kind.load(path) if s.name == name]
        for suite in found:
            suite.origin = dict(origin)
    if len(found) != 1:
        raise ConfigError(f"cannot load suite {name!r} again from {dict(origin)}")
    return found[0]


def select_suites(
    catalog: Catalog,
    event: LifecycleEvent,
    planned: tuple[str, ...] | None,
    policies: Mapping[str, Policy],
    *,
    planned_source: str,
    suites_dir: Path | None,
) -> list[Suite]:
    """The suites to run at ``event``: the planned ones, or every one that runs there.

    A planned name ``tag:NAME`` stands for every suite carrying that tag (at least one). A
    planned suite that does not exist fails the gate, and so does every suite file or
    plugin that did not load, planned or not: it may be the one that should have run.
    """
    broken = catalog.broken
    if planned is None:
        chosen: list[Suite] = [s for s in catalog.suites if s.runs_at(event)]
    else:
        by_name = catalog.by_name()
        chosen = []
        for name in planned:
            tagged = [s for s in catalog.suites if name.startswith("tag:") and name[4:] in s.tags]
            found = tagged or by_name.get(name, [])
            chosen.extend(s for s in found if s not in chosen)
            if not found:
                known = ", ".join(n for n in catalog.names() if n not in {b.name for b in broken})
                hint = (
                    "; it may be in a file or plugin that did not load: "
                    + "; ".join(b.error for b in broken)
                    if broken
                    else ""
                )
                chosen.append(
                    BrokenSuite(
                        name,
                        "missing",
                        f"planned suite {name!r} does not exist (source: {planned_source}); "
                        f"suites found in {suites_dir} and installed plugins: "
                        f"{known or 'none'}{hint}",
                    )
                )
    chosen.extend(b for b in broken if b not in chosen)
    return [s.with_policy(policies[s.name]) if s.name in policies else s for s in chosen]


def discover(suites_dir: Path | None) -> Catalog:
    """Built-in and installed kinds and suites, plus the suites under ``suites_dir``.

    Two suites with one name are an error (which one would the plan mean?): both become a
    broken suite naming where each comes from.
    """
    catalog = Catalog()
    load_plugins(catalog)
    if suites_dir is not None:
        load_suites_dir(catalog, suites_dir)
    for name, found in catalog.by_name().items():
        if len(found) < 2:
            continue
        where = " and ".join(s.source or s.kind for s in found)
        duplicate = BrokenSuite(
            name,
            "duplicate",
            f"two suites are named {name!r}: {where} -> rename one (a YAML suite's name:, "
            f"a pytest file's name without test_)",
            source=found[0].source,
        )
        catalog.suites = [s for s in catalog.suites if s.name != name] + [duplicate]
    return catalog
