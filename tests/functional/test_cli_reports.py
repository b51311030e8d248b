"""The command line and its reports as a new user meets them: the installed ``greenlight``
run in a subprocess, piped and under a pseudo-terminal.

Each case asserts the exit status (0 Succeeded, 1 Failed, 2 configuration or usage), that
normal output holds no traceback, and what the user reads: counts that add up, pytest's
own words with file:line, JUnit that keeps CI green for report-only failures, a JSON
report valid against its schema.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import fastjsonschema
import pytest

from hooks.cli.sample_service import SampleService
from hooks.evidence.reports import SCHEMA_PATH
from tests.functional.test_cli import EXAMPLES, greenlight
from tests.helpers import ROOT, closed_port_url, http_server, install_package, reply

BROKEN_SUITE = "name: typo\nchecks:\n  - name: x\n    request: {path: /, methd: GET}\n"


@pytest.fixture(scope="module")
def green() -> Iterator[str]:
    with SampleService("green") as service:
        yield service.url


def suites(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr


# ---- errors, without tracebacks, with one exit-code rule ----


def test_a_suite_file_that_does_not_load_is_a_configuration_error(
    tmp_path: Path, green: str
) -> None:
    folder = suites(tmp_path, {"typo.yaml": BROKEN_SUITE, "ok.yaml": EXAMPLES_SMOKE})
    done = greenlight("run", "--url", green, "--suites-dir", str(folder))
    assert done.returncode == 2
    no_traceback(done)
    assert f"configuration error: typo: {folder / 'typo.yaml'}:4: at checks[0].request: " in (
        done.stderr
    )
    assert "unknown key 'methd'" in done.stderr
    assert len(done.stderr.splitlines()) < 6  # the message, not pages of log


def test_a_plugin_that_fails_to_import_is_one_line_in_validate(tmp_path: Path) -> None:
    site = install_package(
        tmp_path / "site",
        "gl_bad",
        "import no_such_dependency\n",
        "[greenlight.suites]\nbad = gl_bad:Kind\n",
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = greenlight("validate", str(EXAMPLES), env=env)
    assert done.returncode == 2
    no_traceback(done)
    assert "failed to load plugin 'bad' (gl_bad:Kind): ModuleNotFoundError" in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (
            ["invoke", "AfterAllowTestTrafficHook", "--event", "{bad_event}"],
            {},
            2,
            "no 'LifecycleEventHookExecutionId'",
        ),
        (
            ["invoke", "AfterAllowTestTrafficHook", "--event", "{event}"],
            {"AWS_ENDPOINT_URL": closed_port_url()},
            1,
            "codedeploy:GetDeployment failed",
        ),
        (
            ["appspec", "--stack-name", "shop-hooks"],
            {"AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": os.devnull},
            2,
            "You must specify a region",
        ),
    ],
    ids=["event missing a key", "invoke without a target url", "appspec without a region"],
)
def test_aws_and_event_errors_are_messages(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    bad_event = tmp_path / "event.json"
    bad_event.write_text(json.dumps({"DeploymentId": "d-1"}))
    event = ROOT / "events" / "after_allow_test_traffic.json"
    argv = [a.format(bad_event=bad_event, event=event) for a in args]
    done = greenlight(*argv, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    no_traceback(done)
    assert message in done.stdout + done.stderr


def test_duplicate_suite_names_are_a_configuration_error(tmp_path: Path, green: str) -> None:
    folder = suites(
        tmp_path,
        {"broken.yaml": "name: [", "test_broken.py": "def test_x():\n    pass\n"},
    )
    done = greenlight("run", "--url", green, "--suites-dir", str(folder))
    assert done.returncode == 2
    assert "two suites are named 'broken'" in done.stderr


# ---- what a run says ----

EXAMPLES_SMOKE = """\
    name: smoke
    checks:
      - name: health
        request: {path: /health}
"""


def test_pytest_failures_keep_pytests_words_and_file_line(tmp_path: Path, green: str) -> None:
    folder = suites(
        tmp_path,
        {
            "test_fixture.py": "def test_uses_a_typo(htpp):\n    pass\n",
            "test_syntax.py": "def test_x(:\n    pass\n",
            "test_assert.py": "def test_ok():\n    pass\n\n\ndef test_two():\n    assert 1 == 2\n",
        },
    )
    junit = tmp_path / "junit.xml"
    done = greenlight("run", "--url", green, "--suites-dir", str(folder), "--junit", str(junit))
    assert done.returncode == 1
    no_traceback(done)
    out = done.stdout
    assert "fixture 'htpp' not found" in out
    assert "test_fixture.py:1" in out
    assert "SyntaxError" in out
    assert "line 1" in out
    assert "E   " not in out
    case = ET.parse(junit).getroot().find(".//testcase[@name='test_assert.py::test_two']")
    assert case is not None
    assert (case.get("file"), case.get("line")) == ("test_assert.py", "5")


def test_counts_add_up_and_report_only_failures_keep_junit_green(
    tmp_path: Path, green: str
) -> None:
    folder = suites(
        tmp_path,
        {
            "smoke.yaml": EXAMPLES_SMOKE,
            "known-bad.yaml": """\
                name: known-bad
                report_only: true
                checks:
                  - name: missing page
                    request: {path: /nope}
                  - name: wrong status
                    request: {path: /health}
                    assert: [{status: 418}]
            """,
            "test_skips.py": "import pytest\n\n\ndef test_later():\n    pytest.skip('not yet')\n"
            "\n\ndef test_now():\n    pass\n",
        },
    )
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    done = greenlight(
        "run",
        "--url",
        green,
        "--suites-dir",
        str(folder),
        "--junit",
        str(junit),
        "--json",
        str(report),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.splitlines()[-1]
    # 4 suites (with the built-in reachability); 6 checks = 3 passed + 2 failed + 1 skipped.
    assert summary.startswith(
        "Succeeded: 4 suites, 6 checks: 3 passed, 2 failed (2 tolerated by policy), 1 skipped"
    )
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "0"
    assert root.get("errors") == "0"
    skipped = root.find(".//testcase[@name='wrong status']/skipped")
    assert skipped is not None
    assert "report-only, not blocking" in (skipped.get("message") or "")
    assert "expected to be 418, got 200" in (skipped.text or "")
    prop = root.find(
        ".//testsuite[@name='known-bad']/properties/property[@name='greenlight.report_only']"
    )
    assert prop is not None
    assert prop.get("value") == "true"
    for case in root.iter("testcase"):
        assert case.get("time") is not None
        if case.get("classname") in ("smoke", "known-bad"):  # timed HTTP checks, in files
            assert float(case.get("time") or 0) > 0
            assert case.get("file")
    data = json.loads(report.read_text())
    fastjsonschema.compile(json.loads(SCHEMA_PATH.read_text()))(data)
    assert sum(data["counts"].values()) == data["checks"] == 6


def test_a_failed_capture_skips_the_checks_that_need_it(tmp_path: Path, green: str) -> None:
    folder = suites(
        tmp_path,
        {
            "flow.yaml": """\
                name: flow
                checks:
                  - name: create
                    request: {path: /health}
                    capture: {order_id: {jmespath: no.such.field}}
                  - name: read back
                    request: {path: "/orders/${order_id}"}
            """
        },
    )
    report = tmp_path / "r.json"
    done = greenlight(
        "run", "--url", green, "--suites-dir", str(folder), "--suite", "flow", "--json", str(report)
    )
    assert done.returncode == 1
    checks = {c["name"]: c for c in json.loads(report.read_text())["suites_detail"][0]["checks"]}
    assert checks["read back"]["status"] == "skipped"
    assert checks["read back"]["message"] == (
        "did not run: needs ${order_id} (from 'create'), which was not captured"
    )
    fastjsonschema.compile(json.loads(SCHEMA_PATH.read_text()))(json.loads(report.read_text()))


def test_the_request_line_keeps_its_query_string(tmp_path: Path, green: str) -> None:
    folder = suites(
        tmp_path,
        {
            "q.yaml": """\
                name: q
                checks:
                  - name: search
                    request: {path: /nope, query: {sku: SKU-1, page: 2}}
            """
        },
    )
    done = greenlight("run", "--url", green, "--suites-dir", str(folder), "--suite", "q")
    assert done.returncode == 1
    assert f"GET {green}/nope?sku=SKU-1&page=2 -> HTTP 404" in done.stdout


# ---- on a terminal ----


def under_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``greenlight`` with a pseudo-terminal as its output; everything it wrote."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GREENLIGHT_", "AWS_"))}
    base.pop("NO_COLOR", None)
    base.update(AWS_DEFAULT_REGION="us-east-1", **env)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "hooks.cli.main", *args],
        cwd=ROOT,
        env=base,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not data:
            break
        chunks.append(data)
    process.wait(10)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def slow(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)
    reply(handler, 200, {})


def test_a_terminal_gets_colour_and_a_live_line_but_term_dumb_gets_neither(
    tmp_path: Path,
) -> None:
    folder = suites(
        tmp_path,
        {
            "slow.yaml": """\
                name: slow
                checks:
                  - name: pause
                    request: {path: /}
            """
        },
    )
    with http_server(slow) as url:
        args = ["run", "--url", url, "--suites-dir", str(folder), "--suite", "slow"]
        colour = under_a_terminal(args, {"TERM": "xterm"})
        plain = under_a_terminal(args, {"TERM": "dumb"})
    assert "\x1b[" in colour
    assert "checks done" in colour  # the live line while the slow check runs
    assert "\x1b[" not in plain
    assert "PASS" in plain


def test_validate_checks_single_files_and_prints_the_plan_per_event(tmp_path: Path) -> None:
    done = greenlight("validate", str(EXAMPLES / "smoke.yaml"), str(EXAMPLES / "greenlight.yaml"))
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == [
        f"ok  {EXAMPLES / 'smoke.yaml'}",
        f"ok  {EXAMPLES / 'greenlight.yaml'}",
    ]
    done = greenlight("validate", str(EXAMPLES), "--plan")
    assert done.returncode == 0
    plan_file = EXAMPLES / "greenlight.yaml"
    line = next(
        x for x in done.stdout.splitlines() if x.strip().startswith("AfterAllowTestTraffic")
    )
    assert line.split()[1:4] == ["smoke,", "orders-flow,", "api"]
    assert f"[suites: file {plan_file}:4 (defaults)]" in line
    assert f"  concurrency: 16  [file {plan_file}:4 (defaults)]" in done.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_SUITE)
    done = greenlight("validate", str(broken))
    assert done.returncode == 2
    assert done.stdout.startswith(f"{broken}:4: at checks[0].request: unknown key 'methd'")


def test_a_laptop_run_says_it_reported_nothing_and_which_flag_set_each_value(
    tmp_path: Path, green: str
) -> None:
    """``greenlight run`` sends no report: the JSON says ``recorded`` and the HTML says it was
    not reported; each value a flag set names the flag, not the variable behind it."""
    report, page = tmp_path / "r.json", tmp_path / "r.html"
    done = greenlight(
        "run",
        "--url",
        green,
        "--suites-dir",
        str(EXAMPLES),
        "--suite",
        "smoke",
        "--concurrency",
        "4",
        "--json",
        str(report),
        "--html",
        str(page),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    fastjsonschema.compile(json.loads(SCHEMA_PATH.read_text()))(data)
    assert data["report"] == "recorded"
    sources = data["plan"]["sources"]
    assert (sources["target_url"], sources["suites"], sources["concurrency"]) == (
        "flag --url",
        "flag --suite",
        "flag --concurrency",
    )
    assert "not reported: a local run (recorded, never sent)" in page.read_text()
    assert "env GREENLIGHT_TARGET_URL" not in page.read_text()


def test_a_laptops_evidence_is_kept_listed_and_shown_as_from_s3(tmp_path: Path, green: str) -> None:
    """``run`` writes the hook's bundle to the folder; ``report --list`` lists the runs, and
    ``report ID --evidence`` shows one as ``report`` shows S3's, exit status included."""
    store = tmp_path / "evidence"
    runs = []
    for suite in ("smoke", "orders-flow"):
        done = greenlight(
            "run",
            "--url",
            green,
            "--suites-dir",
            str(EXAMPLES),
            "--suite",
            suite,
            "--evidence",
            str(store),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("evidence: file://"))
        folder = Path(line.removeprefix("evidence: file://"))
        assert {p.name for p in folder.iterdir()} == {"result.json", "junit.xml", "report.html"}
        runs.append(json.loads((folder / "result.json").read_text())["deployment_id"])
    assert runs[0] != runs[1]
    listed = greenlight("report", "--evidence", str(store), "--list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[3] for line in lines[:2]] == [runs[1], runs[0]]  # newest first
    assert lines[-1].startswith(f"2 runs in {store}")
    shown = greenlight("report", runs[0], "--evidence", str(store), "--html", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert f"AfterAllowTestTraffic of {runs[0]}" in shown.stdout
    assert "Succeeded:" in shown.stdout
    assert (tmp_path / f"greenlight-{runs[0]}-AfterAllowTestTraffic.html").is_file()
    missing = greenlight("report", "d-NOPE", "--evidence", str(store))
    assert missing.returncode == 2
    assert "no evidence for d-NOPE" in missing.stderr
