from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from hooks.aws.codedeploy import CodeDeployCallback, report_client_config
from tests.helpers import MISSING_TOOL


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line naming each tool whose absence skipped tests (CI fails them instead)."""
    tools: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(MISSING_TOOL):
            tools[reason.removeprefix(MISSING_TOOL).split(" (")[0]] += 1
    if tools:
        listed = ", ".join(f"{tool} ({count} tests)" for tool, count in sorted(tools.items()))
        terminalreporter.write_line(
            f"skipped for missing tools: {listed}; .ci/run installs them and fails without them"
        )


@pytest.fixture(scope="session")
def evidence_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where the command line's evidence goes in tests (never the user's own folder)."""
    return str(tmp_path_factory.mktemp("evidence"))


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, evidence_root: str) -> None:
    """No real AWS: fake credentials, a fixed region, no endpoint overrides."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "GREENLIGHT_", "AWS_PROFILE")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GREENLIGHT_EVIDENCE_DIR", evidence_root)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")


@pytest.fixture
def codedeploy() -> Iterator[tuple[Any, Stubber]]:
    """A real CodeDeploy client whose calls are checked against the service model."""
    client = boto3.client("codedeploy", region_name="us-east-1", config=report_client_config())
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def callback(codedeploy: tuple[Any, Stubber]) -> CodeDeployCallback:
    client, _ = codedeploy
    return CodeDeployCallback(client, sleep=lambda seconds: None)
