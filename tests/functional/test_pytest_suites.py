"""pytest suites: in-process inside the hook, and with plain pytest on a laptop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks.cli.sample_service import SampleService
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.core.target import Target
from hooks.process.runner import run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.pytest_kind import PytestSuiteKind
from tests.helpers import ROOT, SUITES, each, user_env

INFO = DeploymentInfo("d-PYTEST", "exec", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)
KIND = PytestSuiteKind()


@pytest.fixture(scope="module")
def service() -> Iterator[SampleService]:
    with SampleService("green") as running:
        yield running


@pytest.mark.timing
def test_the_example_runs_inside_the_hook_one_check_per_test(service: SampleService) -> None:
    (suite,) = KIND.load(SUITES / "examples" / "test_api.py")
    assert suite.name == "api"
    result = run_suites(
        [suite], target=Target(service.url), deployment=INFO, deadline=Deadline.in_seconds(30)
    )
    checks = {c.name: c.status for c in result.suites[0].checks}
    assert checks == {
        "test_api.py::test_health_reports_ok": Status.PASSED,
        "test_api.py::test_unknown_route_is_json_404": Status.PASSED,
        "test_api.py::test_requests_identify_the_deployment": Status.PASSED,
    }


@pytest.mark.timing
def test_a_failing_assertion_becomes_the_check_message(tmp_path: Path) -> None:
    test_file = tmp_path / "test_orders.py"
    test_file.write_text(
        "import pytest\n\n"
        "def test_status(http, base_url):\n"
        "    assert http.get(base_url + '/health').status_code == 201\n\n"
        "def test_skipped():\n"
        "    pytest.skip('not today')\n\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('fixture bug')\n\n"
        "def test_setup_error(broken):\n"
        "    pass\n"
    )
    with SampleService("green") as running:
        (suite,) = KIND.load(test_file)
        result = run_suites(
            [suite], target=Target(running.url), deployment=INFO, deadline=Deadline.in_seconds(30)
        )
    checks = {c.name.split("::")[1]: c for c in result.suites[0].checks}
    assert checks["test_status"].status is Status.FAILED
    assert "assert 200 == 201" in checks["test_status"].message
    assert checks["test_skipped"].status is Status.SKIPPED
    assert checks["test_setup_error"].status is Status.ERROR
    assert "fixture bug" in checks["test_setup_error"].message
    assert suite.name == "orders"


@pytest.mark.timing
def test_nothing_is_written_next_to_the_suite(tmp_path: Path) -> None:
    # The Lambda code directory is read-only: no bytecode, no .pytest_cache. The folder is
    # left writable, so a write would show up below rather than fail unseen.
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / "test_cart.py").write_text("def test_ok(target):\n    assert target.url\n")
    (suite,) = KIND.load(folder)
    assert KIND.claims(folder)
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
    )
    assert suite.name == "checkout"
    assert [c.status for c in result.suites[0].checks] == [Status.PASSED]
    assert sorted(p.name for p in folder.iterdir()) == ["test_cart.py"]


@pytest.mark.timing
def test_a_file_that_does_not_import_is_an_error_naming_it(tmp_path: Path) -> None:
    test_file = tmp_path / "test_typo.py"
    test_file.write_text("import not_installed_anywhere\n\ndef test_x():\n    pass\n")
    (suite,) = KIND.load(test_file)
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
    )
    (check,) = result.suites[0].checks
    assert check.status is Status.ERROR
    assert "not_installed_anywhere" in check.message
    assert KIND.validate(test_file)[0].startswith(f"{test_file}: collection failed")


def test_the_same_file_runs_with_plain_pytest_given_a_url(service: SampleService) -> None:
    env = user_env()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITES / "examples" / "test_api.py"),
            "--target-url",
            service.url,
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def _fixtures(cwd: Path, *args: str, **env: str) -> str:
    clean = user_env()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout + done.stderr


def test_the_installed_plugin_is_inert_in_other_projects(tmp_path: Path) -> None:
    """Installing greenlight-hooks adds no fixture to another project's pytest runs: the
    fixtures come only with --target-url or GREENLIGHT_TARGET_URL."""
    (tmp_path / "test_other.py").write_text("def test_other():\n    pass\n")
    ours = ("base_url ", "deployment ", "http ", "target ")
    inert = _fixtures(tmp_path)
    assert "\ntmp_path " in inert  # the listing ran, with pytest's own fixtures
    assert not any(f"\n{name}" in inert for name in each(ours)), inert
    for given in (
        _fixtures(tmp_path, "--target-url", "http://127.0.0.1:9"),
        _fixtures(tmp_path, GREENLIGHT_TARGET_URL="http://127.0.0.1:9"),
    ):
        assert "fixtures defined from hooks.suites.pytest_plugin" in given
        assert "\nbase_url" in given
        assert "\ndeployment" in given


def test_plain_pytest_without_a_url_names_the_missing_fixture() -> None:
    env = user_env()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITES / "examples" / "test_api.py"),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    # each test asks for `http` first: pytest names it for all three
    assert done.stdout.count("fixture 'http' not found") == 3, done.stdout


@pytest.mark.timing
def test_a_suite_collects_its_own_file_only_not_its_siblings(tmp_path: Path) -> None:
    # Each sibling is a suite of its own, run in its own worker: collecting it here too
    # would cost every worker a node per file beside it (and run its collection hooks).
    log = tmp_path / "collected.log"
    folder = tmp_path / "siblings"
    folder.mkdir()
    (folder / "conftest.py").write_text(
        "def pytest_collect_file(file_path, parent):\n"
        f"    with open({str(log)!r}, 'a') as out:\n"
        "        out.write(file_path.name + '\\n')\n"
    )
    for name in ("a", "b", "c"):
        (folder / f"test_{name}.py").write_text("def test_x():\n    pass\n")
    (suite,) = KIND.load(folder / "test_a.py")
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
    )
    assert [c.status for c in result.suites[0].checks] == [Status.PASSED]
    collected = set(log.read_text().split())
    assert "test_a.py" in collected
    assert not collected & {"test_b.py", "test_c.py"}


@pytest.mark.timing
@pytest.mark.parametrize(
    ("target", "names"),
    [("test_rel_a.py", ("a", "b")), (".", ("c", "d"))],
    ids=["file", "folder"],
)
def test_a_suite_given_by_a_relative_path_still_collects_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, names: tuple[str, str]
) -> None:
    folder = tmp_path / "relative"
    folder.mkdir()
    for name in names:  # module names no other test here imports (one pytest process)
        (folder / f"test_rel_{name}.py").write_text("def test_x():\n    pass\n")
    monkeypatch.chdir(folder)
    (suite,) = KIND.load(Path(target))
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9"),
        deployment=INFO,
        deadline=Deadline.in_seconds(30),
    )
    expected = 1 if target != "." else 2
    assert [c.status for c in result.suites[0].checks] == [Status.PASSED] * expected
