"""The supervisor-worker boundary: typed, versioned messages, and nothing read by key."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from hooks.core.lifecycle import LifecycleEvent
from hooks.core.results import CheckResult, Evidence, Policy, Status
from hooks.core.target import Target
from hooks.process import messages
from hooks.process.messages import (
    CheckDone,
    Done,
    Expect,
    Finished,
    Forked,
    ForkExited,
    ForkReady,
    ForkRequest,
    GreenTask,
    Job,
    ListedItem,
    Listing,
    Prepared,
    ProtocolError,
    Setup,
    Started,
    WorkerFailed,
)
from hooks.suites.base import DeploymentInfo
from tests.helpers import ROOT

JOB = Job(
    target=Target(
        "https://green.example.com:8443/api",
        prod_url="https://example.com",
        host="shop.example.com",
        verify=False,
        ca_bundle="/ca.pem",
        headers={"Authorization": "Bearer x"},
        dimensions={"LoadBalancer": "app/lb/1"},
    ),
    deployment=DeploymentInfo(
        "d-1",
        "e-1",
        LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
        "shop",
        "shop-dg",
        stage="POST_TEST_TRAFFIC_SHIFT",
        traffic={"traffic.test_weight": "100"},
        since=1700000000.5,
        part=(1, 4),
    ),
    planned=("smoke", "load"),
    planned_source="the plan file",
    policies={"load": Policy(report_only=True, failure_limit=2)},
    plugins=("pytest_timeout",),
    concurrency=8,
    request_timeout=2.5,
    max_body_bytes=1024,
    per_target_all=True,
    skip=("smoke",),
    green_targets=(GreenTask("http://10.0.0.1:80", "10.0.0.1:80"),),
    secrets=("s3cret",),
    resolved={"${secret:a}": "s3cret"},
    unresolved={"${secret:b}": "AccessDenied"},
    plan_digest="abc",
    list_only=True,
    deadline_in=12.0,
    memory_mb=256,
    suite=3,
    origin={"kind": "pytest", "path": "/s/test_x.py", "name": "x"},
    green_target=GreenTask("http://10.0.0.2:80", "10.0.0.2:80"),
)
CHECK = CheckResult(
    "GET /health",
    Status.FAILED,
    0.25,
    "expected 200",
    failures=("status 500",),
    evidence=Evidence(request="GET /health", status=500),
    location="smoke.yaml:3",
)
EVERY_MESSAGE = [
    Setup("/suites", "suite", "suite-3", True, "DEBUG", {"request": "r"}, 128, {"A": "1"}),
    JOB,
    ForkRequest(Setup("/suites"), JOB),
    ForkReady(40.5, 60.0),
    Forked(1234),
    ForkExited(1234, -9),
    Prepared(2),
    Listing(
        (
            ListedItem(0, "smoke", "http", "smoke.yaml", ("a", "b"), Policy(), False, None),
            ListedItem(
                1,
                "x @ 10.0.0.2:80",
                "pytest",
                "test_x.py",
                (),
                Policy(True, 1),
                True,
                {"kind": "pytest", "path": "/s/test_x.py", "name": "x"},
                "did not load",
                2,
                GreenTask("http://10.0.0.2:80", "10.0.0.2:80"),
            ),
        )
    ),
    Expect(1, ("test_a", "test_b")),
    Started(1),
    CheckDone(1, CHECK),
    Finished(1, "it raised"),
    WorkerFailed("config", "bad plan"),
    Done(),
]


def _wire(message: messages.Message) -> Any:
    return json.loads(json.dumps(message.to_json(), default=str))


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_comes_back_as_it_went(message: messages.Message) -> None:
    assert type(message).from_json(_wire(message)) == message


@pytest.mark.parametrize(
    "message",
    [m for m in EVERY_MESSAGE if isinstance(m, messages.Record)],
    ids=lambda m: type(m).__name__,
)
def test_a_worker_record_decodes_from_its_line(message: messages.Message) -> None:
    assert messages.decode(message.line()) == message


@pytest.mark.parametrize(
    "message", [ForkReady(1, 2), Forked(7), ForkExited(7, 0)], ids=lambda m: type(m).__name__
)
def test_a_fork_reply_decodes(message: messages.Message) -> None:
    assert messages.decode_fork_reply(json.dumps(message.to_json()).encode()) == message


def test_each_message_says_its_version_and_type() -> None:
    for message in EVERY_MESSAGE:
        data = _wire(message)
        assert (data["v"], data["type"]) == (messages.VERSION, type(message).TYPE)
    assert len({type(m).TYPE for m in EVERY_MESSAGE}) == len(EVERY_MESSAGE)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"v": 1}, "version"),
        ({"type": "listing"}, "unknown message type"),
        ({"suite": "1"}, "'suite' must be a whole number"),
        ({"suite": True}, "'suite' must be a whole number"),
    ],
)
def test_a_record_of_another_shape_is_refused_naming_what_is_wrong(
    change: dict[str, Any], named: str
) -> None:
    data = {**_wire(Started(1)), **change}
    with pytest.raises(ProtocolError, match=named):
        messages.decode(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("target", "url"), None, "'url' must be text"),
        (("target", "url"), "ftp://x", "target URL must be http"),
        (("deployment", "lifecycle_event"), "Install", "Install"),
        (("target", "headers"), {"a": 1}, "'headers' must map texts to texts"),
        (("deployment", "part"), [1], "'part' must be"),
        (("planned",), "smoke", "'planned' must be a list of texts"),
        (("concurrency",), 2.5, "'concurrency' must be a whole number"),
        (("green_targets",), [{"url": "x"}], "'label' must be text"),
        (("origin",), "a path", "'origin' must be an object"),
        (("policies",), {"x": {"failure_limit": "all"}}, "'failure_limit'"),
    ],
)
def test_a_job_of_another_shape_is_refused_naming_the_field(
    path: tuple[str, ...], value: Any, named: str
) -> None:
    data = _wire(JOB)
    place = data
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    with pytest.raises(ProtocolError, match=named):
        Job.from_json(data)


def test_a_line_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        messages.decode(b"Traceback (most recent call last):\n")


def test_a_check_result_that_is_not_one_is_a_protocol_error() -> None:
    data = {**_wire(CheckDone(0, CHECK))}
    data["result"] = {"name": "x", "status": "sort of"}
    with pytest.raises(ProtocolError, match="not a check result"):
        messages.decode(json.dumps(data).encode())


def test_secrets_stay_off_a_job_written_where_others_read_it() -> None:
    written = JOB.without_secrets().to_json()
    text = json.dumps(written)
    assert "s3cret" not in text
    assert "AccessDenied" not in text
    assert Job.from_json(written).planned == JOB.planned


def _reads_by_key(tree: ast.AST) -> list[int]:
    """Lines where a job, set-up or worker record is read by a string key."""
    found = []
    for node in ast.walk(tree):
        owner = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            owner = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id in ("job", "setup", "request", "reply"):
            found.append(node.lineno)
    return found


def test_no_module_but_the_messages_reads_a_job_or_record_by_key() -> None:
    offenders = []
    for path in sorted((ROOT / "hooks").rglob("*.py")):
        if path.name == "messages.py" or "suites" in path.parts:
            continue  # a suite's own ``request:`` blocks are suite files, not messages
        lines = _reads_by_key(ast.parse(path.read_text()))
        offenders += [f"{path.relative_to(ROOT)}:{line}" for line in lines]
    assert offenders == []


def test_the_key_reading_finder_finds_a_read_by_key() -> None:
    tree = ast.parse('x = job["event"]\ny = setup.get("mode")\nz = job.event\n')
    assert _reads_by_key(tree) == [1, 2]
