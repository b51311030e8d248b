"""The package declares what it imports, and ships what its commands read."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.helpers import ROOT, each

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0]).lower()
        for d in requirements
    }


def _declared() -> set[str]:
    return _names(PROJECT["dependencies"])


def _extras() -> set[str]:
    """What the optional extras add (``openapi``...), not the development tools."""
    groups = PROJECT["optional-dependencies"]
    return _names([d for name, deps in groups.items() if name != "dev" for d in deps])


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported (not inside a function)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".", 1)[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".", 1)[0])
    return found


def _imported_top_level_modules() -> dict[str, str]:
    """{module: a file importing it} for every absolute import in hooks/ outside the stdlib."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "hooks").rglob("*.py")):
        if "examples" in path.parts:
            continue  # suites, not the package's code
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top != "hooks":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _distributions(module: str) -> set[str]:
    owners = packages_distributions()
    return {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(module, [module])}


def test_every_library_the_package_imports_is_a_declared_dependency() -> None:
    imported = _imported_top_level_modules()
    assert {"yaml", "requests", "jmespath", "pytest", "aws_lambda_powertools"} <= set(imported)
    extras = {m for m in imported if _distributions(m) & _extras()}
    # An extra's libraries, and what they bring (hypothesis comes with schemathesis).
    extras |= {m for m in imported if m == "hypothesis" and "schemathesis" in extras}
    missing = {
        module: where
        for module, where in imported.items()
        if not _distributions(module) & _declared() and module not in extras
    }
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
    assert extras == {"schemathesis", "hypothesis"}


def test_an_extra_s_libraries_are_imported_only_when_used() -> None:
    """A base install imports every module of the package: an optional extra's library is
    imported inside the function that needs it, never when its module loads."""
    eager = {
        str(path.relative_to(ROOT)): sorted(
            _top_level_imports(path) & {"schemathesis", "hypothesis"}
        )
        for path in sorted((ROOT / "hooks").rglob("*.py"))
        if _top_level_imports(path) & {"schemathesis", "hypothesis"}
    }
    assert eager == {}


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    lock = (ROOT / "requirements-lambda.txt").read_text()
    pinned = set(re.findall(r"^([a-z0-9-]+)==", lock, re.MULTILINE))
    runtime_provided = {"boto3", "botocore", "s3transfer"}
    assert _declared() - runtime_provided <= pinned, "run `make lock` after changing dependencies"
    assert not pinned & runtime_provided
    entries = re.split(r"^(?=[a-z0-9-]+==)", lock, flags=re.MULTILINE)[1:]
    assert entries
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}", e) for e in each(entries))


def test_the_examples_ship_in_the_package_for_greenlight_demo() -> None:
    from hooks.cli.demo import EXAMPLES

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["hooks.examples"] == "test_suites/examples"
    assert "hooks.examples" in setuptools["packages"]
    assert {"*.yaml", "*.py"} <= set(setuptools["package-data"]["hooks.examples"])
    assert (EXAMPLES / "greenlight.yaml").is_file()


def test_listing_the_suites_loads_neither_http_client() -> None:
    """Every worker lists suites, so every built-in kind's module loads in each; neither the
    checks' session (requests) nor the load engine (asyncio, ssl) may load with them: each
    costs tens of milliseconds on the cold path of runs that never send with it."""
    import subprocess
    import sys

    kinds = ["http", "load", "metrics", "openapi", "pytest_kind", "reachability", "registry"]
    clients = ("requests", "asyncio", "ssl", "hooks.core.wire", "hooks.core.http")
    imports = "; ".join(f"import hooks.suites.{kind}" for kind in kinds)
    script = f"{imports}; import sys; print(sorted(m for m in {clients!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_cold_path_to_an_http_check_imports_no_heavy_library() -> None:
    """A worker's preload (the HTTP engine, the runner, the suite kinds and the plugins'
    entry points) and the handler's own imports stay off asyncio, ssl, requests and
    importlib.metadata: some 40 ms of a cold start together, for what the engine, the
    registry's own reader and lazy imports do without."""
    import subprocess
    import sys

    heavy = ("asyncio", "ssl", "requests", "importlib.metadata", "statistics")
    script = (
        "import sys; import hooks.adapters.handlers; from hooks.process import worker; "
        "worker._preload(); from hooks.suites import registry; "
        "assert registry._entry_points(), 'no entry point read'; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
