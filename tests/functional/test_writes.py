"""No suite kind writes outside a temporary directory (the code directory is read-only in
Lambda): a run of every kind leaves its working directory and its suites untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.functional.test_cli import greenlight
from tests.functional.test_openapi import DOCUMENT, shop
from tests.helpers import http_server

SUITES = {
    "checks.yaml": "name: checks\nchecks:\n  - name: items\n    request: {path: /items}\n"
    "    assert:\n      - status: 200\n",
    "load.yaml": "kind: load\nname: load\nrate: 20\nduration: 1s\nrequests:\n"
    "  - name: items\n    request: {path: /items}\n"
    "thresholds:\n  http_req_failed: 'rate < 0.5'\n",
    "contract.yaml": "kind: openapi\nname: contract\nschema: /openapi.json\nmax_examples: 10\n",
    "test_generated.py": "from hypothesis import given, settings, strategies as st\n\n"
    "@settings(max_examples=5)\n@given(st.text())\n"
    "def test_text(text):\n    assert isinstance(text, str)\n\n"
    "def test_items(http, base_url):\n"
    "    assert http.get(base_url + '/items').status_code == 200\n",
}


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.timing
def test_no_suite_kind_writes_in_the_working_directory_or_beside_the_suites(
    tmp_path: Path,
) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    for name, text in SUITES.items():
        (suites / name).write_text(text)
    before = _tree(suites)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cwd.chmod(0o555)  # read-only (root may still write: what is written is checked below)
    report = tmp_path / "report.json"
    handle, _ = shop(broken=False)
    try:
        with http_server(handle) as url:
            done = greenlight(
                "run", "--url", url, "--suites-dir", str(suites), "--json", str(report), cwd=cwd
            )
    finally:
        cwd.chmod(0o755)
    output = done.stdout + done.stderr
    data = json.loads(report.read_text())
    kinds = {suite["kind"] for suite in data["suites_detail"]}
    assert kinds >= {"http", "load", "openapi", "pytest", "builtin"}, (
        output
    )  # builtin: reachability
    assert done.returncode == 0, output
    assert _tree(cwd) == [], output
    assert _tree(suites) == before
    assert DOCUMENT["openapi"]  # the served document is the one the suite checks
