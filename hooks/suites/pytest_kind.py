"""pytest suites: an ordinary pytest file or folder, run in a worker process of its own.

``test_*.py`` / ``*_test.py`` files and folders holding them are suites; a suite's name is
the file's stem without ``test_`` (``test_orders.py`` -> ``orders``) or the folder's name.
Each test item becomes one check; a failed assertion's message is the check's message.
Every collected test must report: the ones an interrupted session (``KeyboardInterrupt``,
``pytest.exit()``, ``-x``-like plugins) never ran are failures named "did not run".

No installed pytest plugin loads by itself (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``): a suite gets
Greenlight's fixtures, the plugins the plan names (``plugins:``) and those its own files name
(``pytest_plugins`` in the test file or its ``conftest.py``). Installing a package that
brings a pytest plugin (Schemathesis brings two) changes no suite, and costs no worker the
seconds of importing and rewriting it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hooks.core.results import CheckResult, Status
from hooks.suites.base import Suite, SuiteContext, SuiteKind

__all__ = [
    "QUIET_ARGS",
    "PytestSuite",
    "PytestSuiteKind",
    "installed_plugins",
    "isolated",
    "plugin_args",
]

#: In-process pytest: no cache or bytecode (read-only code directory), no terminal output
#: (logs stay structured), no fd capture (threads), the project's own pytest settings
#: ignored (``-c /dev/null``), and the fixtures plugin passed in directly rather than
#: auto-loaded through its ``pytest11`` entry point.
QUIET_ARGS = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:terminal",
    "-p",
    "no:faulthandler",
    "-p",
    "no:greenlight",
    "--capture=no",
    "-c",
    os.devnull,
)

#: pytest keeps global state (modules, hooks): suites of this kind run one at a time.
_PYTEST_LOCK = threading.Lock()
_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """pytest as a suite runs it: one session at a time, no bytecode written (the Lambda code
    directory is read-only), no installed plugin loaded unless named."""
    with _PYTEST_LOCK:
        bytecode, autoload = sys.dont_write_bytecode, os.environ.get(_AUTOLOAD)
        sys.dont_write_bytecode = True
        os.environ[_AUTOLOAD] = "1"
        try:
            yield
        finally:
            sys.dont_write_bytecode = bytecode
            if autoload is None:
                os.environ.pop(_AUTOLOAD, None)
            else:
                os.environ[_AUTOLOAD] = autoload


def plugin_args(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``-p`` arguments that load the named plugins, and the names that are not installed.

    A name is a ``pytest11`` entry point's (``hypothesispytest``), else a module's.
    """
    if not names:
        return [], []  # reading every installed package's entry points costs ~0.1 s
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    modules = {ep.name: ep.value.split(":")[0] for ep in entry_points(group="pytest11")}
    args: list[str] = []
    missing: list[str] = []
    for name in names:
        module = modules.get(name, name)
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            args += ["-p", module]
        else:
            missing.append(name)
    return args, missing


def installed_plugins() -> list[str]:
    """The ``pytest11`` entry points installed here, by name (for error messages)."""
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="pytest11") if ep.name != "greenlight")


def _is_test_file(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix == ".py"
        and (path.name.startswith("test_") or path.stem.endswith("_test"))
    )


class PytestSuite(Suite):
    kind = "pytest"

    def __init__(self, path: Path) -> None:
        self.path = path
        stem = path.stem if path.is_file() else path.name
        self.name = stem.removeprefix("test_").removesuffix("_test") if path.is_file() else stem
        self.source = str(path)
        self._collected: list[str] = []

    def check_names(self) -> list[str]:
        return list(self._collected)

    def run(self, ctx: SuiteContext) -> None:
        # Long: pytest's hooks are closures over this run's state.
        # on use: pytest loads only in a pytest suite's own worker
        import pytest

        from hooks.suites import pytest_plugin
        from hooks.suites.pytest_plugin import CONTEXT_KEY

        suite = self
        here = Path(os.path.abspath(self.path))  # as pytest names paths: absolute, unresolved
        interrupted: list[str] = []
        reported: set[str] = set()
        collection_failed: list[str] = []

        class Collector:
            @pytest.hookimpl(tryfirst=True)
            def pytest_configure(self, config: pytest.Config) -> None:
                config.stash[CONTEXT_KEY] = ctx

            def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
                # The suite is this file (or folder): its siblings are other suites, each
                # run in a worker of its own; pytest would otherwise make a node of each.
                target = here
                if (
                    collection_path == target
                    or target in collection_path.parents
                    or collection_path in target.parents
                ):
                    return None
                return True

            def pytest_collection_finish(self, session: pytest.Session) -> None:
                suite._collected = [item.nodeid for item in session.items]
                ctx.expect(list(suite._collected))

            def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[Any]) -> None:
                interrupted.append(f"{excinfo.typename}: {excinfo.value}".rstrip(": "))

            def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
                result = _to_result(report)
                if result is not None:
                    reported.add(report.nodeid)
                    ctx.emit(result)

            def pytest_collectreport(self, report: pytest.CollectReport) -> None:
                if report.failed:
                    collection_failed.append(report.nodeid)
                    ctx.emit(
                        CheckResult(
                            report.nodeid or suite.name,
                            Status.ERROR,
                            message=f"collection failed: {_longrepr(report)}",
                        )
                    )

        named, missing = plugin_args(ctx.plugins)
        if missing:
            installed = ", ".join(installed_plugins()) or "none"
            ctx.emit(
                CheckResult(
                    "(plugins)",
                    Status.ERROR,
                    message=f"pytest plugin(s) the plan names are not installed: "
                    f"{', '.join(missing)} (installed: {installed})",
                )
            )
            return
        root = self.path if self.path.is_dir() else self.path.parent
        args = [str(self.path), *QUIET_ARGS, *named, f"--rootdir={root}"]
        with isolated():
            code = pytest.main(args, plugins=[Collector(), pytest_plugin])
        self._ended(ctx, code, interrupted, reported, bool(collection_failed))

    def _ended(
        self,
        ctx: SuiteContext,
        code: int,
        interrupted: list[str],
        reported: set[str],
        collection_failed: bool,
    ) -> None:
        """How pytest ended, when it is not a plain pass or fail: every collected test it did
        not report is an error that says why."""
        # on use: pytest loads only in a pytest suite's own worker
        import pytest

        try:
            ended_with = pytest.ExitCode(code)
        except ValueError:  # pytest.exit(returncode=N) with a code of its own
            ended_with = pytest.ExitCode.INTERRUPTED
        if ended_with == pytest.ExitCode.NO_TESTS_COLLECTED:
            ctx.emit(
                CheckResult(
                    "(collection)", Status.ERROR, message=f"no tests collected from {self.path}"
                )
            )
        elif ended_with not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not (
            collection_failed and not self._collected
        ):  # a collection error already says why nothing ran
            cause = f": {interrupted[0]}" if interrupted else ""
            ended = f"pytest ended with {ended_with.name} for {self.path}{cause}"
            for nodeid in self._collected:
                if nodeid not in reported:
                    ctx.emit(CheckResult(nodeid, Status.ERROR, message=f"did not run: {ended}"))
            ctx.emit(CheckResult("(pytest)", Status.ERROR, message=ended))


def _longrepr(report: Any) -> str:
    """pytest's own words for a failure: the crash message, else its ``E`` lines.

    A missing fixture reads ``fixture 'htpp' not found``; a syntax error keeps its file,
    line and caret, without pytest's ``E`` prefix.
    """
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[-1])
    text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    if errors:
        return "\n".join(errors[:40])
    return text.strip().splitlines()[-1] if text.strip() else "failed"


def _location(report: Any) -> str | None:
    """``file:line`` of the test (pytest's location, 1-based)."""
    location = getattr(report, "location", None)
    if not location or location[1] is None:
        return None
    return f"{location[0]}:{location[1] + 1}"


def _to_result(report: Any) -> CheckResult | None:
    duration = float(getattr(report, "duration", 0.0))
    where = _location(report)
    if report.when == "call":
        if report.passed:
            return CheckResult(report.nodeid, Status.PASSED, duration, location=where)
        status = Status.SKIPPED if report.skipped else Status.FAILED
        return CheckResult(report.nodeid, status, duration, _longrepr(report), location=where)
    if report.when == "setup" and not report.passed:
        status = Status.SKIPPED if report.skipped else Status.ERROR
        prefix = "" if report.skipped else "setup failed: "
        return CheckResult(
            report.nodeid, status, duration, prefix + _longrepr(report), location=where
        )
    if report.when == "teardown" and report.failed:
        return CheckResult(
            f"{report.nodeid} (teardown)",
            Status.ERROR,
            duration,
            f"teardown failed: {_longrepr(report)}",
            location=where,
        )
    return None


class PytestSuiteKind(SuiteKind):
    name = "pytest"

    def claims(self, path: Path) -> bool:
        if path.is_dir():
            return any(_is_test_file(p) for p in path.rglob("*.py"))
        return _is_test_file(path)

    def load(self, path: Path) -> list[Suite]:
        return [PytestSuite(path)]

    def validate(self, path: Path) -> list[str]:
        """Collect without running: import errors and syntax errors, as pytest reports them."""
        # on use: pytest loads only in a pytest suite's own worker
        import pytest

        from hooks.suites import pytest_plugin

        problems: list[str] = []

        class Collect:
            def pytest_collectreport(self, report: pytest.CollectReport) -> None:
                if report.failed:
                    problems.append(f"{path}: collection failed: {_longrepr(report)}")

        with isolated():
            pytest.main(
                [str(path), "--collect-only", *QUIET_ARGS], plugins=[Collect(), pytest_plugin]
            )
        return problems
