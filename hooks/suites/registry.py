"""Find, load and validate suites: built-in and third-party kinds through one registry.

Each step is guarded per plugin and per suite: a kind that fails to import, a suite file
that does not parse, become :class:`BrokenSuite` objects whose run fails with a message
naming the plugin or file and the cause. The other suites still load and run.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from hooks.results import CheckResult, Status
from hooks.suites.base import Suite, SuiteContext, SuiteKind

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


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


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
                catalog.suites.append(obj)
            else:
                raise TypeError(
                    f"expected a SuiteKind subclass or instance, or a Suite; got {obj!r}"
                )
        except Exception as exc:
            log.error("failed to load %s\n%s", where, traceback.format_exc())
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
        if claimant is not None:
            yield path, claimant
        elif path.is_dir():
            yield from candidate_paths(path, kinds, top=False)


def load_suites_dir(catalog: Catalog, root: Path) -> None:
    """Load every suite under ``root``; a file that fails becomes a broken suite."""
    if not root.is_dir():
        log.warning("suites directory %s does not exist", root)
        return
    for path, kind in candidate_paths(root, catalog.kinds.values()):
        try:
            catalog.suites.extend(kind.load(path))
        except Exception as exc:
            log.error("failed to load %s\n%s", path, traceback.format_exc())
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            catalog.suites.append(BrokenSuite(path.stem, kind.name, message, source=str(path)))


def discover(suites_dir: Path | None) -> Catalog:
    """Built-in and installed kinds and suites, plus the suites under ``suites_dir``."""
    catalog = Catalog()
    load_plugins(catalog)
    if suites_dir is not None:
        load_suites_dir(catalog, suites_dir)
    return catalog
