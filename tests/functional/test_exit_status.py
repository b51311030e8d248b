"""One exit-status rule for every command: 0 passed, 1 failed, 2 cannot run as configured.

Each command is run as a user runs it (the installed ``greenlight``, in a subprocess), once
for each status it can end with.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks.cli.sample_service import SampleService
from tests.functional.test_cli import EXAMPLES, greenlight
from tests.helpers import EVENTS

BAD_SUITE = "name: typo\nchecks:\n  - name: x\n    request: {path: /, methd: GET}\n"


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str, str]]:
    with (
        SampleService("blue") as blue,
        SampleService("green") as green,
        SampleService("broken") as broken,
    ):
        yield blue.url, green.url, broken.url


def _cases(
    tmp: Path, blue: str, green: str, broken: str, busy: str
) -> list[tuple[str, list[str], int]]:
    bad = tmp / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "typo.yaml").write_text(BAD_SUITE)
    malformed = tmp / "malformed.json"
    malformed.write_text(json.dumps({"DeploymentId": "d-1"}))
    event = str(EVENTS / "after_allow_test_traffic.json")
    store = str(tmp / "evidence")
    smoke = ["--suites-dir", str(EXAMPLES), "--suite", "smoke"]
    flow = ["--suites-dir", str(EXAMPLES), "--suite", "orders-flow"]
    return [
        ("run passes", ["run", "--url", green, *smoke, "--evidence", store], 0),
        ("run fails", ["run", "--url", broken, *flow, "--evidence", store], 1),
        ("run: a suite that does not load", ["run", "--url", green, "--suites-dir", str(bad)], 2),
        ("run: not a URL", ["run", "--url", "ftp://x"], 2),
        (
            "invoke passes",
            ["invoke", "AfterAllowTestTrafficHook", "-e", event, "--target-url", green],
            0,
        ),
        (
            "invoke fails",
            [
                "invoke",
                "AfterAllowTestTrafficHook",
                "-e",
                event,
                "--target-url",
                "http://127.0.0.1:9",
            ],
            1,
        ),
        (
            "invoke: a malformed event",
            ["invoke", "AfterAllowTestTrafficHook", "-e", str(malformed), "--target-url", green],
            2,
        ),
        (
            "rehearse passes",
            ["rehearse", "--prod-url", blue, "--test-url", green, "--suites-dir", str(EXAMPLES)],
            0,
        ),
        (
            "rehearse fails",
            ["rehearse", "--prod-url", blue, "--test-url", broken, "--suites-dir", str(EXAMPLES)],
            1,
        ),
        ("rehearse: not a URL", ["rehearse", "--prod-url", blue, "--test-url", "nope"], 2),
        ("validate passes", ["validate", str(EXAMPLES)], 0),
        ("validate: a broken suite", ["validate", str(bad)], 2),
        ("appspec", ["appspec", "--suites-dir", str(EXAMPLES)], 0),
        ("appspec: nothing planned", ["appspec", "--suites-dir", str(tmp / "bad")], 2),
        ("ecs-hooks", ["ecs-hooks", "--suites-dir", str(EXAMPLES)], 0),
        ("ecs-hooks: not a stage", ["ecs-hooks", "--stage", "SOMETIME"], 2),
        ("report: a passed run", ["report", "--evidence", store, "--list"], 0),
        ("report: no such run", ["report", "d-NONE", "--evidence", store], 2),
        ("serve-sample: the port is taken", ["serve-sample", "--port", busy], 2),
    ]


def test_every_command_ends_0_passed_1_failed_2_cannot_run(
    tmp_path: Path, services: tuple[str, str, str]
) -> None:
    blue, green, broken = services
    ended, expected = {}, {}
    with socket.socket() as taken:  # a port in use, for serve-sample
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        for name, args, code in _cases(tmp_path, blue, green, broken, busy):
            done = greenlight(*args, env={"GREENLIGHT_EVIDENCE_DIR": str(tmp_path / "evidence")})
            ended[name], expected[name] = done.returncode, code
            assert "Traceback" not in done.stdout + done.stderr, (name, done.stderr)
    assert ended == expected
    stored = sorted((tmp_path / "evidence").glob("*/*/*/*/result.json"))
    verdicts = {json.loads(p.read_text())["verdict"] for p in stored}
    assert verdicts == {"Succeeded", "Failed"}  # run and invoke kept their evidence


def test_report_exits_1_for_a_failed_run_it_shows(
    tmp_path: Path, services: tuple[str, str, str]
) -> None:
    _, _, broken = services
    store = tmp_path / "evidence"
    flow = ["--suites-dir", str(EXAMPLES), "--suite", "orders-flow"]
    done = greenlight("run", "--url", broken, *flow, "--evidence", str(store))
    assert done.returncode == 1
    (result,) = store.glob("*/*/*/*/result.json")
    deployment = json.loads(result.read_text())["deployment_id"]
    shown = greenlight("report", deployment, "--evidence", str(store))
    assert shown.returncode == 1, shown.stderr
    assert "Failed: suites failed: orders-flow" in shown.stdout
