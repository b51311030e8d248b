"""Suite plugins from installed packages, through the ``greenlight.suites`` entry points.

Each test installs a small package the way pip leaves one on disk (a module plus a
``.dist-info`` with ``entry_points.txt``) in a directory put on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import Status
from hooks.core.target import Target
from hooks.gate.summary import Runtime
from hooks.process.runner import run_suites
from hooks.suites.base import DeploymentInfo
from hooks.suites.registry import discover
from tests.functional.test_hook_protocol import expect_report
from tests.helpers import http_server, install_package, load_event, reply

INFO = DeploymentInfo("d-PLUGIN", "exec", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)

PING_PLUGIN = """
from pathlib import Path
from hooks import Check, CheckResult, CheckSuite, Status, SuiteContext, SuiteKind


class PingCheck(Check):
    def __init__(self, path: str) -> None:
        self.name = f"ping {path}"
        self.path = path

    def run(self, ctx: SuiteContext) -> CheckResult:
        response = ctx.session.get(ctx.target.resolve(self.path))
        status = Status.PASSED if response.status_code == 200 else Status.FAILED
        return CheckResult(self.name, status, message=f"HTTP {response.status_code}")


class PingKind(SuiteKind):
    name = "ping"

    def claims(self, path: Path) -> bool:
        return path.suffix == ".ping"

    def load(self, path: Path) -> list:
        paths = path.read_text().split()
        return [CheckSuite(name=path.stem, kind=self.name, source=str(path),
                           checks=[PingCheck(p) for p in paths])]


ALWAYS = CheckSuite(name="always-ping", kind="ping", checks=[PingCheck("/")])
"""


def install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry_points: str
) -> None:
    monkeypatch.syspath_prepend(
        str(install_package(tmp_path / "site", module, source, entry_points))
    )


@pytest.mark.timing
def test_a_kind_and_a_suite_from_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "gl_ping_plugin",
        PING_PLUGIN,
        """\
        [greenlight.suites]
        ping = gl_ping_plugin:PingKind
        always-ping = gl_ping_plugin:ALWAYS
    """,
    )
    suites_dir = tmp_path / "suites"
    suites_dir.mkdir()
    (suites_dir / "edge.ping").write_text("/health /missing\n")
    catalog = discover(suites_dir)
    assert {"http", "pytest", "ping"} <= set(catalog.kinds)
    assert {"edge", "always-ping", "reachability"} <= set(catalog.names())

    with http_server(lambda h: reply(h, 200 if h.path != "/missing" else 404, {})) as url:
        result = run_suites(
            catalog.suites, target=Target(url), deployment=INFO, deadline=Deadline.in_seconds(10)
        )
    edge = next(s for s in result.suites if s.name == "edge")
    assert {c.name: c.status for c in edge.checks} == {
        "ping /health": Status.PASSED,
        "ping /missing": Status.FAILED,
    }


def test_a_plugin_that_fails_to_import_is_a_failed_suite_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "gl_broken_plugin",
        "import not_a_module_anywhere\n",
        """\
        [greenlight.suites]
        broken = gl_broken_plugin:Kind
    """,
    )
    catalog = discover(None)
    (broken,) = catalog.broken
    assert broken.name == "plugin:broken"
    assert "failed to load plugin 'broken' (gl_broken_plugin:Kind)" in broken.error
    assert "ModuleNotFoundError" in broken.error
    assert "reachability" in catalog.names()  # the others still load


def test_a_plugin_of_the_wrong_shape_is_rejected_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "gl_odd_plugin",
        "THING = 42\n",
        """\
        [greenlight.suites]
        odd = gl_odd_plugin:THING
    """,
    )
    (broken,) = discover(None).broken
    assert "expected a SuiteKind subclass or instance, or a Suite; got 42" in broken.error


def test_the_hook_still_reports_when_a_plugin_is_broken(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    install(
        tmp_path,
        monkeypatch,
        "gl_broken_plugin2",
        "raise RuntimeError('bad init')\n",
        """\
        [greenlight.suites]
        broken2 = gl_broken_plugin2:Kind
    """,
    )
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    suites_dir = tmp_path / "empty"
    suites_dir.mkdir()
    with http_server(lambda h: reply(h, 200, {})) as url:
        result = handle(
            load_event("after_allow_test_traffic"),
            LocalContext(30),
            LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
            Runtime(
                protocol=callback,
                env={"GREENLIGHT_SUITES_DIR": str(suites_dir), "GREENLIGHT_TARGET_URL": url},
            ),
        )
    assert result["verdict"] == "Failed"
    assert result["reason"] == "suites failed: plugin:broken2 (2 suites, 1 check: 1 passed)"
    assert result["configuration_error"] is True
    assert any("plugin:broken2" in line and "bad init" in line for line in result["failed"])
    assert result["counts"]["passed"] == 1  # reachability still ran


def test_the_built_in_kinds_are_registered_through_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="greenlight.suites")}
    assert {"http", "pytest", "reachability"} <= names


@pytest.mark.timing
def test_a_suite_file_that_does_not_parse_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nchecks: [\n")
    (tmp_path / "fine.yaml").write_text(
        "name: fine\nchecks:\n  - {name: root, request: {path: /}}\n"
    )
    catalog = discover(tmp_path)
    (broken,) = catalog.broken
    assert broken.name == "broken"
    assert broken.error.startswith(f"{tmp_path / 'broken.yaml'}:")
    assert "YAML syntax error" in broken.error
    with http_server(lambda h: reply(h, 200, {})) as url:
        result = run_suites(
            catalog.suites, target=Target(url), deployment=INFO, deadline=Deadline.in_seconds(10)
        )
    by_name = {s.name: s for s in result.suites}
    assert by_name["fine"].passed
    assert by_name["broken"].error == broken.error
    assert not result.deadline_reached


def test_every_built_in_kind_and_suite_has_tests_of_its_own() -> None:
    """Meta-test: a new built-in entry point needs a test module that exercises it."""
    from importlib.metadata import distribution

    tests_text = "\n".join(
        p.read_text() for p in Path(__file__).resolve().parent.parent.rglob("test_*.py")
    )
    entry_points = [
        ep
        for ep in distribution("greenlight-hooks").entry_points
        if ep.group == "greenlight.suites"
    ]
    assert entry_points
    for ep in entry_points:
        assert ep.value.split(":")[1] in tests_text, f"no test uses {ep.value}"


def test_entry_points_are_read_as_importlib_metadata_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry reads entry_points.txt itself (importlib.metadata costs a cold worker
    some 10 ms of imports); what it finds is what importlib.metadata finds, on this
    environment's path and on one with a second copy of a distribution (the first on the
    path wins), an egg-info, comments, extras and a dotted attribute."""
    from importlib.metadata import entry_points

    from hooks.suites import registry

    group = "[greenlight.suites]\n"
    first, second = tmp_path / "first", tmp_path / "second"
    install_package(
        first,
        "gl_twice",
        "class K:\n    class Inner: pass\n",
        group
        + ("# a comment\ntwice = gl_twice:K.Inner [extra]\n\n[other.group]\nx = gl_twice:K\n"),
    )
    install_package(second, "gl_twice", "", group + "shadowed = gl_twice:K\n")
    egg = second / "Gl.Egg-2.0.egg-info"
    egg.mkdir()
    (egg / "entry_points.txt").write_text(group + "egg = gl_twice:K\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))

    def theirs() -> list[tuple[str, str]]:
        return sorted((ep.name, ep.value) for ep in entry_points(group=registry.ENTRY_POINT_GROUP))

    mine = [(ep.name, ep.value) for ep in registry._read_entry_points()]
    assert mine == theirs()
    assert ("twice", "gl_twice:K.Inner [extra]") in mine
    assert ("egg", "gl_twice:K") in mine
    assert "shadowed" not in {name for name, _ in mine}
    assert {"http", "load", "pytest", "reachability"} <= {name for name, _ in mine}
    loaded = {ep.name: ep.load() for ep in registry._read_entry_points()}
    assert loaded["twice"].__qualname__ == "K.Inner"


def test_entry_points_read_ahead_are_read_again_when_the_path_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers read the entry points before their set-up arrives; a path that changed since
    # (a plugin installed on it) is read again, never answered from the old list.
    from hooks.suites import registry

    monkeypatch.setattr(registry, "_scanned", None)
    registry.scan_entry_points()
    before = {ep.name for ep in registry._entry_points()}
    install(
        tmp_path,
        monkeypatch,
        "gl_ping_plugin_late",
        PING_PLUGIN,
        "[greenlight.suites]\nlate_ping = gl_ping_plugin_late:PingKind\n",
    )
    after = {ep.name for ep in registry._entry_points()}
    assert after == before | {"late_ping"}
    assert "late_ping" not in before


LAX_PLUGIN = """
from pathlib import Path
from hooks import Check, CheckResult, CheckSuite, Status, SuiteContext
from hooks.core.results import Policy


class Broken(Check):
    name = "always fails"

    def run(self, ctx: SuiteContext) -> CheckResult:
        return CheckResult(self.name, Status.FAILED, message="broken")


class Lax(CheckSuite):
    def with_policy(self, policy):  # a plugin that ignores the plan's word
        return self


LAX = Lax(name="lax", kind="lax", checks=[Broken()], policy=Policy(report_only=True))
"""


def test_the_plans_policy_decides_whatever_a_plugin_lists(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    """GIVEN a plugin suite that lists itself report-only and ignores the plan's policy
    WHEN the plan says it blocks (report_only: false)
    THEN its failure fails the gate: the deciding process applies its own plan."""
    install(
        tmp_path,
        monkeypatch,
        "gl_lax_plugin",
        LAX_PLUGIN,
        """\
        [greenlight.suites]
        lax = gl_lax_plugin:LAX
    """,
    )
    suites_dir = tmp_path / "suites"
    suites_dir.mkdir()
    (suites_dir / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  policy:\n    lax: {report_only: false}\n"
    )
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(lambda h: reply(h, 200, {})) as url:
        result = handle(
            load_event("after_allow_test_traffic"),
            LocalContext(30),
            LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
            Runtime(
                protocol=callback,
                env={"GREENLIGHT_SUITES_DIR": str(suites_dir), "GREENLIGHT_TARGET_URL": url},
            ),
        )
    assert result["verdict"] == "Failed"
    assert result["reason"].startswith("suites failed: lax ")
