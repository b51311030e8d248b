"""checkov on the template: no finding left, and every finding accepted says why."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, each, missing_tool
from tests.template.test_template import load_template

#: The shortest reason an accepted finding may give (a word or two explains nothing).
SHORTEST_REASON = 40


def _checkov() -> str:
    path = os.environ.get("GREENLIGHT_CHECKOV") or str(ROOT / ".tools/checkov/bin/checkov")
    if not Path(path).is_file():
        missing_tool("checkov", "make test installs it into .tools/checkov")
    return path


def _results() -> dict[str, Any]:
    done = subprocess.run(
        [_checkov(), "-f", "template.yaml", "--framework", "cloudformation", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report["results"]


def test_checkov_finds_nothing_the_template_does_not_explain() -> None:
    results = _results()
    failed = [
        f"{r['check_id']} {r['resource']}: {r['check_name']}" for r in results["failed_checks"]
    ]
    assert failed == []
    assert each(results["passed_checks"])


def test_every_accepted_finding_has_its_reason_and_still_applies() -> None:
    """Each skip in the template's metadata carries a reason, and names a check checkov
    still makes there (a skip that no longer matches anything is stale)."""
    skipped = {(r["check_id"], r["resource"].split(".")[-1]) for r in _results()["skipped_checks"]}
    declared = set()
    for name, resource in load_template(ROOT / "template.yaml")["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) >= SHORTEST_REASON, (name, skip)
            declared.add((skip["id"], name))
    assert each(declared)
    assert declared == skipped
