"""The greenlight command line, as a user runs it (a subprocess, real servers on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from hooks.cli.sample_service import SampleService
from hooks.core.lifecycle import LifecycleEvent
from tests.helpers import EVENTS, ROOT, SUITES, closed_port_url

EXAMPLES = SUITES / "examples"


def greenlight(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GREENLIGHT_", "AWS_")) or k == "GREENLIGHT_EVIDENCE_DIR"
    }
    base.update(
        NO_COLOR="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    base.update(env or {})
    base = {k: v for k, v in base.items() if v != ""}  # "" unsets a variable
    return subprocess.run(
        [sys.executable, "-m", "hooks.cli.main", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def green() -> Iterator[str]:
    with SampleService("green") as service:
        yield service.url


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with SampleService("broken") as service:
        yield service.url


@pytest.fixture(scope="module")
def blue() -> Iterator[str]:
    with SampleService("blue") as service:
        yield service.url


# ---- run ----


def test_run_passes_with_a_mark_per_check_and_exit_0(green: str, tmp_path: Path) -> None:
    done = greenlight(
        "run",
        "--url",
        green,
        "--suites-dir",
        str(EXAMPLES),
        "--junit",
        str(tmp_path / "junit.xml"),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("  PASS") for line in lines) == 8
    assert lines[-1].startswith("Succeeded: 3 suites, 8 checks: 8 passed [")
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("tests") == "8"
    assert junit.get("failures") == "0"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "Succeeded"
    assert {s["name"] for s in report["suites_detail"]} == {"smoke", "orders-flow", "api"}


def test_run_fails_with_the_actual_values_and_exit_1(broken: str, tmp_path: Path) -> None:
    done = greenlight(
        "run",
        "--url",
        broken,
        "--suites-dir",
        str(EXAMPLES),
        "--suite",
        "orders-flow",
        "--junit",
        str(tmp_path / "junit.xml"),
    )
    assert done.returncode == 1
    out = done.stdout
    assert "FAIL    orders-flow / read order back" in out
    assert "      - status: expected to be 200, got 500" in out
    assert "      - jmespath quantity: expected to equal 2, got nothing (absent)" in out
    assert 'body: {"error": "column orders.qty does not exist"}' in out
    assert out.splitlines()[-1].startswith("Failed: suites failed: orders-flow")
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("failures") == "2"
    failure = junit.find(".//testcase[@name='read order back']/failure")
    assert failure is not None
    assert "got 500" in (failure.text or "")


def test_run_against_an_unreachable_target_fails_clearly() -> None:
    done = greenlight(
        "run",
        "--url",
        closed_port_url(),
        "--suites-dir",
        str(EXAMPLES),
        "--suite",
        "smoke",
        "--deadline",
        "20",
    )
    assert done.returncode == 1
    assert "request failed: connection refused" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "not-a-url"], "target URL must be http(s)://"),
        (["--url", "http://127.0.0.1:9", "--suite", "nope"], "planned suite 'nope' does not exist"),
        (["--url", "http://127.0.0.1:9", "--suite", "tag:nothing"], "'tag:nothing' does not exist"),
        (["--url", "http://127.0.0.1:9", "--deadline", "-5"], "--deadline: must be more than 0"),
        (["--url", "http://127.0.0.1:9", "--concurrency", "0"], "--concurrency: must be from 1"),
        (["--url", "http://127.0.0.1:9", "--event", "Nope"], "unknown lifecycle event"),
    ],
)
def test_run_usage_errors_exit_2_without_a_traceback(args: list[str], message: str) -> None:
    done = greenlight("run", "--suites-dir", str(EXAMPLES), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("which", ["missing", "a file"])
def test_run_with_a_suites_dir_that_is_not_a_directory_exits_2(tmp_path: Path, which: str) -> None:
    path = tmp_path / "suites"
    if which == "a file":
        path.write_text("")
    done = greenlight("run", "--url", "http://127.0.0.1:9", "--suites-dir", str(path))
    assert done.returncode == 2
    expected = "does not exist" if which == "missing" else "is not a directory"
    assert f"the suites directory {path} {expected}" in done.stderr
    assert "Traceback" not in done.stderr


def test_invoke_with_an_invalid_setting_exits_2_naming_it(green: str) -> None:
    done = greenlight(
        "invoke",
        "AfterAllowTestTrafficHook",
        "--event",
        str(ROOT / "events" / "after_allow_test_traffic.json"),
        "--target-url",
        green,
        env={"GREENLIGHT_CONCURRENCY": "nan"},
    )
    assert done.returncode == 2
    assert "GREENLIGHT_CONCURRENCY=nan must be a finite number" in done.stdout


def test_run_with_an_invalid_plan_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "greenlight.yaml").write_text("version: 1\ndefaults:\n  suites: {Sometime: [a]}\n")
    done = greenlight("run", "--url", "http://127.0.0.1:9", "--suites-dir", str(tmp_path))
    assert done.returncode == 2
    assert f"{tmp_path / 'greenlight.yaml'}:3" in done.stderr


# ---- invoke ----


@pytest.mark.parametrize("event", list(LifecycleEvent), ids=lambda e: e.value)
def test_invoke_every_template_function_with_its_event_file(
    event: LifecycleEvent, green: str
) -> None:
    done = greenlight(
        "invoke",
        event.logical_id,
        "--event",
        str(EVENTS / f"{event.snake_name}.json"),
        "--target-url",
        green,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PutLifecycleEventHookExecutionStatus (recorded, not sent):" in done.stdout
    after = done.stdout.split("(recorded, not sent):\n", 1)[1]
    recorded = json.loads(after.split("\n}\n")[0] + "}")
    sample = json.loads((EVENTS / f"{event.snake_name}.json").read_text())
    assert recorded == {
        "deploymentId": sample["DeploymentId"],
        "lifecycleEventHookExecutionId": sample["LifecycleEventHookExecutionId"],
        "status": "Succeeded",
    }
    result = json.loads(done.stdout.split("Handler returned:\n", 1)[1])
    assert result["lifecycle_event"] == event.value


def test_invoke_records_failed_for_an_unreachable_target() -> None:
    done = greenlight(
        "invoke",
        "AfterAllowTestTrafficHook",
        "--event",
        str(EVENTS / "after_allow_test_traffic.json"),
        "--target-url",
        closed_port_url(),
    )
    assert done.returncode == 1
    assert '"status": "Failed"' in done.stdout


def test_invoke_resolves_template_parameters_and_timeout(green: str) -> None:
    done = greenlight(
        "invoke",
        "AfterAllowTestTrafficHook",
        "-e",
        str(EVENTS / "after_allow_test_traffic.json"),
        "--parameter-overrides",
        f"TargetUrl={green}",
        "FunctionTimeout=45",
    )
    assert done.returncode == 0, done.stderr
    assert "timeout 45s" in done.stdout
    assert f'"target": "{green}"' in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NoSuchHook", "-e", "events/after_install.json"], "has no function 'NoSuchHook'"),
        (["AfterInstallHook", "-e", "events/nope.json"], "cannot read the event file"),
        (
            [
                "AfterInstallHook",
                "-e",
                "events/after_install.json",
                "--parameter-overrides",
                "Bogus=1",
            ],
            "unknown parameter(s) Bogus",
        ),
    ],
)
def test_invoke_usage_errors(args: list[str], message: str) -> None:
    done = greenlight("invoke", *args)
    assert done.returncode == 2
    assert message in done.stderr


# ---- rehearse ----


def test_rehearse_against_a_good_green_shifts_traffic(blue: str, green: str) -> None:
    done = greenlight(
        "rehearse", "--prod-url", blue, "--test-url", green, "--suites-dir", str(EXAMPLES)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "BeforeInstall          no suite planned: not in the AppSpec" in out
    assert "AfterAllowTestTraffic  Succeeded (8 checks" in out
    assert "AfterAllowTraffic      Succeeded" in out
    assert "Outcome: traffic shifted to green" in out


def test_rehearse_against_a_broken_green_rolls_back_at_the_right_event(
    blue: str, broken: str
) -> None:
    done = greenlight(
        "rehearse", "--prod-url", blue, "--test-url", broken, "--suites-dir", str(EXAMPLES)
    )
    assert done.returncode == 1
    outcome = "Outcome: rolled back at AfterAllowTestTraffic: suites failed: orders-flow"
    assert outcome in done.stdout
    assert "not run: BeforeAllowTraffic, AfterAllowTraffic (deployment stopped)" in done.stdout


def test_a_failure_at_before_install_does_not_roll_back(tmp_path: Path, green: str) -> None:
    (tmp_path / "pre.yaml").write_text(
        "name: pre\nevents: [BeforeInstall]\nchecks:\n"
        "  - {name: missing, request: {path: /missing}, assert: [{status: 200}]}\n"
    )
    done = greenlight(
        "rehearse", "--prod-url", green, "--test-url", green, "--suites-dir", str(tmp_path)
    )
    assert done.returncode == 1
    assert "deployment failed at BeforeInstall" in done.stdout
    assert "does not roll back" in done.stdout


# ---- validate ----


def test_validate_the_examples() -> None:
    done = greenlight("validate", str(EXAMPLES))
    assert done.returncode == 0, done.stdout
    assert "ok  orders-flow: AfterAllowTestTraffic" in done.stdout


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: dup\nchecks:\n  - {name: x, request: {path: /}}\n")
    (tmp_path / "b.yaml").write_text("name: dup\nchecks:\n  - {name: x, request: {path: /}}\n")
    (tmp_path / "c.yaml").write_text("name: c\nchecks:\n  - name: x\n    reqest: {path: /}\n")
    (tmp_path / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  suites:\n    AfterAllowTestTraffic: [dup, ghost]\n"
    )
    done = greenlight("validate", str(tmp_path))
    assert done.returncode == 2  # problems are configuration errors
    out = done.stdout
    assert f"{tmp_path / 'b.yaml'}: duplicate suite name 'dup'" in out
    assert f"{tmp_path / 'c.yaml'}:4: at checks[0]: unknown key 'reqest'" in out
    plan = tmp_path / "greenlight.yaml"
    assert f"{plan}:4: suite 'ghost' planned at AfterAllowTestTraffic" in out
    assert "3 problems" in out


# ---- appspec ----


def test_appspec_lists_the_planned_events_with_given_arns() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:CodeDeployHook_gl-AfterAllowTestTraffic"
    done = greenlight(
        "appspec",
        "--suites-dir",
        str(EXAMPLES),
        "--hook",
        f"AfterAllowTestTraffic={arn}",
        "--task-definition",
        "arn:td:1",
        "--container-name",
        "web",
        "--container-port",
        "8080",
    )
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load(done.stdout)
    assert spec["Hooks"][0] == {"AfterAllowTestTraffic": arn}
    assert [next(iter(h)) for h in spec["Hooks"]] == [
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ]
    props = spec["Resources"][0]["TargetService"]["Properties"]
    assert props == {
        "TaskDefinition": "arn:td:1",
        "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080},
    }
    assert "placeholders for BeforeAllowTraffic, AfterAllowTraffic" in done.stderr


def test_appspec_json_and_all_events() -> None:
    done = greenlight("appspec", "--json", "--all-events")
    spec = json.loads(done.stdout)
    assert len(spec["Hooks"]) == 5


# ---- demo ----


def test_make_demo_shows_both_outcomes_and_exits_0() -> None:
    done = greenlight("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1. good build:   traffic shifted to green" in out
    assert "2. broken build: rolled back at AfterAllowTestTraffic" in out
    assert "status: expected to be 200, got 500" in out


def test_serve_sample_serves_until_stopped() -> None:
    import signal
    import socket

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hooks.cli.main",
            "serve-sample",
            "--release",
            "broken",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert f"on http://127.0.0.1:{port}" in process.stdout.readline()
        response = requests.get(f"http://127.0.0.1:{port}/orders/ord-1", timeout=5)
        assert response.status_code == 500
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 130  # ended by the interrupt, within 10 s
