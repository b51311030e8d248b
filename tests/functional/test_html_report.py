"""The HTML report, as an operator opens it: in a real browser (Debian's headless Chromium),
with JavaScript off, the failures on the first screen."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hooks.evidence.html_report import render
from tests.helpers import missing_tool

RED = (0xB3, 0x26, 0x1E)  # the failure blocks' border and the Failed badge


def _check(name: str, status: str = "passed", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "duration": 0.012,
        "message": extra.pop("message", ""),
        "failures": extra.pop("failures", []),
        "evidence": extra.pop("evidence", None),
        "location": extra.pop("location", None),
    }


def _suite(name: str, checks: list[dict[str, Any]], passed: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "http",
        "source": f"test_suites/{name}.yaml",
        "passed": passed,
        "loaded": True,
        "error": None,
        "policy": {"report_only": False, "failure_limit": 0},
        "duration": 0.5,
        "checks": checks,
    }


def report(failing_name: str = "orders total") -> dict[str, Any]:
    """Forty passing suites first, then the one that failed: the page must not care."""
    suites = [_suite(f"suite-{i:02d}", [_check(f"check {j}") for j in range(8)]) for i in range(40)]
    failing = _check(
        failing_name,
        "failed",
        message="jmespath total: expected 30, got 0",
        failures=["jmespath total: expected to equal 30, got 0", "status: expected 200, got 500"],
        evidence={
            "request": "GET http://green.internal/orders/42",
            "status": 500,
            "body": '{"error": "database unavailable", "total": 0}',
            "attempts": 3,
        },
        location="test_suites/orders.yaml:12",
    )
    suites.append(_suite("orders", [_check("list"), failing], passed=False))
    return {
        "report_version": 1,
        "verdict": "Failed",
        "reason": "suites failed: orders (41 suites, 322 checks: 321 passed, 1 failed)",
        "lifecycle_event": "AfterAllowTestTraffic",
        "deployment_id": "d-ABCDEF123",
        "lifecycle_event_hook_execution_id": "x",
        "target": "http://green.internal",
        "suites": 41,
        "checks": 322,
        "counts": {"passed": 321, "failed": 1, "error": 0, "timed_out": 0, "skipped": 0},
        "failed": ["orders / orders total: jmespath total: expected 30, got 0"],
        "configuration_error": False,
        "report": "reported",
        "duration": 12.5,
        "application": "shop",
        "deployment_group": "shop-prod",
        "evidence": None,
        "suites_detail": suites,
        "plan": {
            "event": "AfterAllowTestTraffic",
            "concurrency": 16,
            "sources": {"concurrency": "plan file greenlight.yaml, group shop-prod"},
        },
    }


def test_the_page_is_self_contained_and_escapes_what_it_shows() -> None:
    page = render(report(failing_name='<script>alert("x")</script>'))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    # Verdict and reason come before the failures, which come before the suites and plan.
    order = [page.index(marker) for marker in ('id="verdict"', 'id="reason"', "Failures (1)")]
    order += [page.index('id="suites"'), page.index('id="plan"')]
    assert order == sorted(order)
    assert "plan file greenlight.yaml, group shop-prod" in page


def test_a_succeeded_run_has_no_failure_section() -> None:
    data = report()
    data["verdict"], data["suites_detail"] = "Succeeded", data["suites_detail"][:3]
    page = render(data)
    assert 'class="verdict Succeeded"' in page
    assert "Failures" not in page


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing_tool("chromium", "apt-get install chromium; .ci/run installs it")
    return path


def _browse(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_in_headless_chromium_the_failure_is_on_the_first_screen(
    chromium: str, tmp_path: Path
) -> None:
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render(report()), encoding="utf-8")
    shot = tmp_path / "shot.png"
    done = _browse(chromium, page, f"--screenshot={shot}", "--window-size=1280,800")
    assert shot.is_file(), done.stderr

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 800)
    pixels = image.load()
    assert pixels is not None
    red = [
        (x, y)
        for y in range(0, 800, 2)
        for x in range(0, 1280, 2)
        if all(abs(a - b) <= 12 for a, b in zip(pixels[x, y], RED, strict=True))
    ]
    # The Failed badge at the top, and the failure block's red border below it, both in the
    # first 800 pixels although forty passing suites come before it in the data.
    assert any(y < 120 for _, y in red), "no Failed badge at the top"
    border = [(x, y) for x, y in red if x < 200 and y > 150]
    assert len(border) > 20, "the failure block is not on the first screen"


def test_in_headless_chromium_the_text_renders_without_javascript(
    chromium: str, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(report()), encoding="utf-8")
    # Headless Chromium reads the DOM back with a script of its own, so JavaScript stays on
    # here; the page holds no script and no handler to run (checked below and above).
    done = _browse(chromium, page, "--dump-dom")
    assert done.returncode == 0, done.stderr
    dom = done.stdout
    assert "suites failed: orders" in dom
    assert "jmespath total: expected to equal 30, got 0" in dom
    assert "GET http://green.internal/orders/42" in dom
    assert "database unavailable" in dom
    assert dom.count("<details") == 41
    assert "<script" not in dom
    assert not re.search(r"\son[a-z]+=", dom)  # no inline handlers either
