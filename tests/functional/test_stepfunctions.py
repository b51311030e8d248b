"""``runner: stepfunctions``: the hook hands off, moto's Step Functions executes the real state
machine (statemachine/greenlight.asl.json), and its Lambda tasks run Greenlight's own shard
and conclusion handlers in-process — or fail, hang or answer as a test needs. CodeDeploy is a
Stubber: every report the run makes must be expected, so "exactly once" is checked."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from hooks.adapters.conclusion import gather
from hooks.adapters.failsafe import FailSafe
from hooks.adapters.hook import handle
from hooks.adapters.stepfunctions import execution_name, plan_shards
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.deadline import Deadline
from hooks.core.lifecycle import LifecycleEvent
from hooks.gate.summary import Runtime
from tests.functional.conftest import BUCKET, REGION, SUITE, Stack, definition
from tests.helpers import ROOT, each, http_server, reply


def hook(stack: Stack, url: str, callback: CodeDeployCallback, execution: str = "exec-1") -> Any:
    env = {
        "GREENLIGHT_SUITES_DIR": str(stack.suites),
        "GREENLIGHT_TARGET_URL": url,
        "GREENLIGHT_STATE_MACHINE_ARN": stack.state_machine,
        "GREENLIGHT_EVIDENCE_BUCKET": BUCKET,
    }
    runtime = Runtime(
        protocol=callback,
        env=env,
        stepfunctions=lambda: stack.sfn,
        s3=lambda: stack.s3,
    )
    event = {"DeploymentId": "d-SHARDS", "LifecycleEventHookExecutionId": execution}
    return handle(event, LocalContext(60), LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC, runtime)


def expect_report(stubber: Stubber, status: str, execution: str = "exec-1") -> None:
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": execution},
        {"deploymentId": "d-SHARDS", "lifecycleEventHookExecutionId": execution, "status": status},
    )


def run_to_end(
    stack: Stack, callback: CodeDeployCallback, stubber: Stubber, expected: str
) -> dict[str, Any]:
    """Hand off to a healthy service, expect one report, and wait for the execution."""
    expect_report(stubber, expected)
    with http_server(service()) as url:
        result = hook(stack, url, callback)
        ended = stack.wait(result["execution"])
    assert ended["status"] == "SUCCEEDED", ended
    output: dict[str, Any] = json.loads(ended["output"])
    return output


def service(broken: str | None = None) -> Any:
    def handle(handler: Any) -> None:
        path = handler.path.strip("/")
        reply(handler, 500 if path == broken else 200, {"path": path})

    return handle


def write_suites(stack: Stack, *names: str) -> None:
    for name in names:
        (stack.suites / f"{name}.yaml").write_text(SUITE.format(name=name, path=name))


def test_a_handed_off_plan_runs_in_shards_and_reports_once(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    write_suites(stack, "catalog", "orders", "health")
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")  # one report, by the conclusion: the hook makes none
    with http_server(service()) as url:
        result = hook(stack, url, callback)
        assert result["verdict"] == "InProgress", result
        assert result["report"] is None
        assert "4 shards" in result["reason"]  # and the built-in reachability suite
        ended = stack.wait(result["execution"])
    assert ended["status"] == "SUCCEEDED", ended
    assert stack.calls.count("greenlight-shard") == 4
    assert stack.calls.count("greenlight-conclude") == 1
    output = json.loads(ended["output"])
    assert output["conclusion"] == {"verdict": "Succeeded", "report": "reported"}
    listed = stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    keys = sorted(item["Key"] for item in listed)
    assert [k.rsplit("/", 2)[-2:] for k in keys if "/shards/" in k] == [
        ["shards", "0.json"],
        ["shards", "1.json"],
        ["shards", "2.json"],
        ["shards", "3.json"],
    ]
    assert any(k.endswith("result.json") for k in keys), keys  # the evidence, as a run writes


def test_a_suite_failing_in_one_shard_fails_the_verdict(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    write_suites(stack, "catalog", "orders")
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(service(broken="orders")) as url:
        result = hook(stack, url, callback)
        ended = stack.wait(result["execution"])
    assert ended["status"] == "SUCCEEDED"
    evidence = next(
        item["Key"]
        for item in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        if item["Key"].endswith("result.json")
    )
    report = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=evidence)["Body"].read())
    assert report["verdict"] == "Failed"
    assert "orders" in report["reason"]
    assert {s["name"]: s["passed"] for s in report["suites_detail"]} == {
        "catalog": True,
        "orders": False,
        "reachability": True,
    }


def test_a_duplicate_invocation_starts_no_second_execution(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    write_suites(stack, "catalog")
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with http_server(service()) as url:
        first = hook(stack, url, callback)
        second = hook(stack, url, callback)
        assert second["verdict"] == "InProgress"
        assert "already started by an earlier invocation" in second["reason"]
        assert second["execution"] == first["execution"]
        stack.wait(first["execution"])
    executions = stack.sfn.list_executions(stateMachineArn=stack.state_machine)["executions"]
    assert len(executions) == 1
    assert executions[0]["name"] == execution_name("exec-1")


def test_a_shard_that_crashes_fails_its_suites_and_the_rest_still_count(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    write_suites(stack, "catalog", "orders")
    real = stack.behaviour["greenlight-shard"]

    def crash_orders(event: dict[str, Any]) -> Any:
        if event["shard"]["suites"] == ["orders"]:
            raise MemoryError("the shard ran out of memory")
        return real(event)

    stack.behaviour["greenlight-shard"] = crash_orders
    output = run_to_end(stack, callback, codedeploy[1], "Failed")
    failed = [o for o in output["outcomes"] if "error" in o]
    assert [o["shard"]["suites"] for o in failed] == [["orders"]]
    assert output["conclusion"]["verdict"] == "Failed"


def test_when_the_conclusion_fails_the_failure_path_reports_failed(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    write_suites(stack, "catalog")
    real = stack.behaviour["greenlight-conclude"]

    def broken_conclusion(event: dict[str, Any]) -> Any:
        if "failure" not in event:
            raise RuntimeError("the conclusion's container died")
        return real(event)

    stack.behaviour["greenlight-conclude"] = broken_conclusion
    output = run_to_end(stack, callback, codedeploy[1], "Failed")
    assert output["conclusion"] == {"verdict": "Failed", "report": "reported"}


def test_a_plan_without_a_state_machine_fails_at_once_naming_the_setting(
    tmp_path: Path, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "greenlight.yaml").write_text("version: 1\ndefaults:\n  runner: stepfunctions\n")
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(service()) as url:
        runtime = Runtime(
            protocol=callback,
            env={"GREENLIGHT_SUITES_DIR": str(suites), "GREENLIGHT_TARGET_URL": url},
        )
        event = {"DeploymentId": "d-SHARDS", "LifecycleEventHookExecutionId": "exec-1"}
        result = handle(event, LocalContext(30), LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC, runtime)
    assert result["verdict"] == "Failed"
    assert "GREENLIGHT_STATE_MACHINE_ARN" in result["reason"]


def test_a_suite_that_does_not_load_fails_before_any_execution(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    write_suites(stack, "catalog")
    (stack.suites / "broken.yaml").write_text("name: broken\nchecks: nope\n")
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    with http_server(service()) as url:
        result = hook(stack, url, callback)
    assert result["verdict"] == "Failed"
    assert stack.sfn.list_executions(stateMachineArn=stack.state_machine)["executions"] == []


@pytest.mark.timing
def test_an_execution_that_ended_without_reporting_is_reported_by_the_fail_safe(
    codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    record = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:Greenlight_x:n",
            "name": "n",
            "status": "TIMED_OUT",
            "input": json.dumps(
                {
                    "invocation": {
                        "deployment_id": "d-SHARDS",
                        "execution_id": "exec-1",
                        "lifecycle_event": "AfterAllowTestTraffic",
                    }
                }
            ),
        },
    }
    result = FailSafe(callback).handle(record, Deadline.in_seconds(10))
    assert result["reported"] is True
    assert result["reason"].startswith("the state machine execution timed out before it reported")


def test_shards_one_per_suite_and_each_gathered_from_its_own_file() -> None:
    assert plan_shards([("a", 1), ("b", 1), ("a", 1), ("c", 2)]) == [
        {"shard": 0, "suites": ["a"]},
        {"shard": 1, "suites": ["b"]},
        {"shard": 2, "suites": ["c"], "part": [0, 2]},
        {"shard": 3, "suites": ["c"], "part": [1, 2]},
    ]
    stored = {
        0: {"suites": [{"name": "a", "kind": "http", "checks": [], "error": None}]},
        1: {"suites": [], "deadline_reached": True},
        4: {"suites": [{"name": "a", "kind": "http", "checks": [], "error": None}]},
    }
    run = gather(
        [
            {"shard": 0, "suites": ["a"]},
            {"shard": 1, "suites": ["b"]},
            {"shard": 2, "suites": ["c"]},
            {"shard": 3, "suites": ["d"]},
            {"shard": 4, "suites": ["e"]},
        ],
        # outcomes say only which shard failed: a key they name is not read
        [
            {"shard": {"shard": 2}, "error": {"Error": "States.Timeout"}},
            {"shard": {"shard": 3}, "result": {"key": "0"}},
        ],
        lambda index: stored[index],
        lambda index, names, sealed: sealed,
    )
    errors = [(s.name, s.error) for s in run.suites]
    assert errors[0] == ("a", None)
    assert errors[1] == ("c", "the shard that ran it failed: States.Timeout")
    assert errors[2][0] == "d"
    assert str(errors[2][1]).startswith("the shard that ran it failed: KeyError: its results")
    # shard 4 returned suite a, which it was not given: it counts against the run
    assert errors[3] == ("a", "shard 4 of the state machine returned it, and was not given it")
    # b came back with no result at all: the decision names it as an empty slot
    assert len(errors) == 4
    assert run.deadline_reached


def test_execution_names_are_valid_and_distinct() -> None:
    names = {execution_name(i) for i in ("a/b", "a:b", "a b", "x" * 200)}
    assert len(names) == 4
    for name in names:
        assert 1 <= len(name) <= 80
        assert all(c.isalnum() or c in "-_" for c in each(name))
    # the same in every process (a duplicate invocation is another process): a fixed digest,
    # not Python's per-process salted hash()
    assert execution_name("exec-1") == "exec-1-" + hashlib.sha256(b"exec-1").hexdigest()[:16]


def test_secrets_stay_out_of_the_execution_input_and_each_shard_reads_them(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="shop/api", SecretString=json.dumps({"token": "s3cr3t-t0ken"})
    )
    (stack.suites / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  runner: stepfunctions\n  suites: {default: [catalog]}\n"
        "  headers: {Authorization: 'Bearer ${secret:shop/api#token}'}\n"
    )
    write_suites(stack, "catalog")
    seen: list[str] = []

    def record(handler: Any) -> None:
        seen.append(handler.headers.get("Authorization", ""))
        reply(handler, 200, {})

    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with http_server(record) as url:
        result = hook(stack, url, callback)
        ended = stack.wait(result["execution"])
    assert ended["status"] == "SUCCEEDED"
    given = stack.sfn.describe_execution(executionArn=result["execution"])["input"]
    assert "s3cr3t-t0ken" not in given
    assert "${secret:shop/api#token}" in given
    assert seen == ["Bearer s3cr3t-t0ken"]  # the shard resolved it for its own requests
    stored = stack.s3.get_object(
        Bucket=BUCKET,
        Key=next(
            i["Key"]
            for i in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
            if "/shards/" in i["Key"]
        ),
    )["Body"].read()
    assert b"s3cr3t-t0ken" not in stored


def test_a_conclusion_whose_report_failed_fails_its_task_so_the_failure_path_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hooks.adapters import handlers
    from hooks.aws.codedeploy import ReportOutcome, ReportState

    class Refused:
        def report(self, invocation: Any, status: Any, budget: Any) -> ReportOutcome:
            return ReportOutcome(ReportState.FAILED, 3, "ThrottlingException")

    monkeypatch.setattr(handlers, "conclude_runtime", lambda: Runtime(protocol=Refused(), env={}))
    event = {
        "invocation": {
            "deployment_id": "d-SHARDS",
            "execution_id": "exec-1",
            "lifecycle_event": "AfterAllowTestTraffic",
        },
        "summary": {},
        "failure": {"Error": "States.Timeout", "Cause": "the Map ran out of time"},
    }
    with pytest.raises(RuntimeError, match="the report to CodeDeploy failed"):
        handlers.conclude(event, LocalContext(10))


def test_greenlight_run_runs_a_handed_off_plan_in_shards_on_a_laptop(tmp_path: Path) -> None:
    from tests.functional.test_cli import greenlight

    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  runner: stepfunctions\n  soak: 600\n"
    )
    for name in ("catalog", "orders"):
        (suites / f"{name}.yaml").write_text(SUITE.format(name=name, path=name))
    report = tmp_path / "report.json"
    with http_server(service(broken="orders")) as url:
        done = greenlight(
            "run", "--url", url, "--suites-dir", str(suites), "--json", str(report), timeout=60
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "the plan's soak of 600s is not waited on a laptop" in output
    data = json.loads(report.read_text())
    assert data["verdict"] == "Failed"
    assert {s["name"]: s["passed"] for s in data["suites_detail"]} == {
        "catalog": True,
        "orders": False,
        "reachability": True,
    }


def test_rehearse_runs_handed_off_plans_with_the_same_shards(tmp_path: Path) -> None:
    import shutil

    from hooks.cli.sample_service import SampleService
    from tests.functional.test_cli import greenlight

    suites = tmp_path / "suites"
    shutil.copytree(ROOT / "test_suites" / "examples", suites)
    plan = (suites / "greenlight.yaml").read_text()
    (suites / "greenlight.yaml").write_text(
        plan.replace("defaults:\n", "defaults:\n  runner: stepfunctions\n", 1)
    )
    with SampleService("blue") as blue, SampleService("broken") as broken:
        done = greenlight(
            "rehearse", "--prod-url", blue.url, "--test-url", broken.url,
            "--suites-dir", str(suites), timeout=120,
        )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "AfterAllowTestTraffic  Failed" in out
    assert "Outcome: rolled back at AfterAllowTestTraffic: suites failed: orders-flow" in out


def test_a_load_with_workers_runs_in_parts_judged_on_the_merged_histogram(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    (stack.suites / "greenlight.yaml").write_text(
        "version: 1\ndefaults:\n  runner: stepfunctions\n  suites: {default: [shop-load]}\n"
    )
    (stack.suites / "load.yaml").write_text(
        "kind: load\nname: shop-load\nrate: 40\nduration: 1s\nworkers: 2\n"
        "requests: [{name: browse, request: {path: /catalog}}]\n"
        "thresholds:\n  http_reqs: 'count == 40'\n  http_req_duration: 'p(99) < 2000'\n"
    )
    hits: list[str] = []

    def count(handler: Any) -> None:
        hits.append(handler.path)
        reply(handler, 200, {})

    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    with http_server(count) as url:
        result = hook(stack, url, callback)
        assert "2 shards" in result["reason"]
        ended = stack.wait(result["execution"])
    assert ended["status"] == "SUCCEEDED"
    assert json.loads(ended["output"])["conclusion"]["verdict"] == "Succeeded"
    assert len(hits) == 40  # 20 from each part
    evidence = next(
        item["Key"]
        for item in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        if item["Key"].endswith("result.json")
    )
    report = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=evidence)["Body"].read())
    (suite,) = report["suites_detail"]
    checks = {c["name"]: c for c in suite["checks"]}
    assert checks["http_reqs count == 40"]["status"] == "passed"
    assert checks["http_reqs count == 40"]["message"].startswith("count = 40 ")
    assert "40 of 40 requests" in checks["arrival rate"]["message"]


def test_an_ecs_lifecycle_hook_refuses_a_handed_off_plan(tmp_path: Path) -> None:
    from hooks.adapters.ecs import EcsReturn, handle_ecs
    from hooks.evidence.reports import CaptureReport
    from tests.functional.test_ecs import ecs_event

    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "greenlight.yaml").write_text("version: 1\ndefaults:\n  runner: stepfunctions\n")
    with http_server(service()) as url:
        env = {
            "GREENLIGHT_SUITES_DIR": str(suites),
            "GREENLIGHT_TARGET_URL": url,
            "GREENLIGHT_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:x",
            "GREENLIGHT_EVIDENCE_BUCKET": BUCKET,
        }
        capture = CaptureReport()
        runtime = Runtime(protocol=EcsReturn(), env=env, reporters=(capture,))
        answer = handle_ecs(ecs_event(), LocalContext(20), runtime)
    assert answer["hookStatus"] == "FAILED"
    assert capture.summary is not None
    assert "runner: stepfunctions gates CodeDeploy hooks" in capture.summary.verdict.reason


def test_a_shard_that_outlives_its_task_timeout_is_caught_and_fails_its_suite(
    stack: Stack, codedeploy: tuple[Any, Stubber], callback: CodeDeployCallback
) -> None:
    """The same definition with a one-second shard timeout: a shard that hangs is cut by
    Step Functions (States.Timeout), caught, and its suite fails; the others still count."""
    role = boto3.client("iam", region_name=REGION).get_role(RoleName="greenlight")["Role"]
    functions = boto3.client("lambda", region_name=REGION)
    arns = [
        functions.get_function(FunctionName=f"greenlight-{n}")["Configuration"]["FunctionArn"]
        for n in ("shard", "conclude")
    ]
    stack.state_machine = stack.sfn.create_state_machine(
        name="Greenlight_short", definition=definition(*arns, shard_timeout=1), roleArn=role["Arn"]
    )["stateMachineArn"]
    write_suites(stack, "catalog", "orders")
    real = stack.behaviour["greenlight-shard"]

    def hang_orders(event: dict[str, Any]) -> Any:
        if event["shard"]["suites"] == ["orders"]:
            time.sleep(4)
        return real(event)

    stack.behaviour["greenlight-shard"] = hang_orders
    output = run_to_end(stack, callback, codedeploy[1], "Failed")
    failed = {
        tuple(o["shard"]["suites"]): o["error"]["Error"] for o in output["outcomes"] if "error" in o
    }
    assert failed == {("orders",): "States.Timeout"}
    assert output["conclusion"]["verdict"] == "Failed"


def test_every_shard_crashed_concludes_with_each_cause_in_the_evidence(
    stack: Stack,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN shards whose runs raise with causes far larger than the execution's state holds
    (and one whose Lambda invocation itself is killed)
    WHEN the execution runs
    THEN it concludes Failed, each suite naming its shard's cause; the state carries each
    failed shard's error name only, never its cause."""
    import hooks.adapters.stepfunctions as shards

    write_suites(stack, "catalog", "orders", "health")
    huge = "x" * 300_000

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"the worker could not start: {huge}")

    monkeypatch.setattr(shards, "start_supervisor", crash)
    real = stack.behaviour["greenlight-shard"]

    def killed(event: dict[str, Any]) -> Any:
        if event["shard"]["suites"] == ["health"]:  # as Lambda ends a function out of memory
            raise RuntimeError("Runtime exited with error: signal: killed")
        return real(event)

    stack.behaviour["greenlight-shard"] = killed
    output = run_to_end(stack, callback, codedeploy[1], "Failed")
    assert output["conclusion"]["verdict"] == "Failed"
    assert len(json.dumps(output)) < 64 * 1024  # no cause in the state, whatever its size
    errors = [o["error"] for o in output["outcomes"] if "error" in o]
    assert [set(error) for error in errors] == [{"Error"}]  # the killed one: only its name
    evidence = next(
        item["Key"]
        for item in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        if item["Key"].endswith("result.json")
    )
    report = json.loads(stack.s3.get_object(Bucket=BUCKET, Key=evidence)["Body"].read())
    causes = {s["name"]: json.dumps(s) for s in report["suites_detail"]}
    for name in ("catalog", "orders", "reachability"):
        assert "the shard failed: RuntimeError: the worker could not start" in causes[name]
    assert f"the shard that ran it failed: {errors[0]['Error']}" in causes["health"]


def test_a_plan_of_more_shards_than_the_state_holds_is_refused_naming_the_count() -> None:
    from hooks.adapters.stepfunctions import MAX_SHARDS
    from hooks.core.exceptions import ConfigError

    assert len(plan_shards([("load", MAX_SHARDS)])) == MAX_SHARDS
    with pytest.raises(ConfigError, match=f"{MAX_SHARDS + 1} shards, more than {MAX_SHARDS}"):
        plan_shards([("load", MAX_SHARDS), ("smoke", 1)])


def test_a_shard_that_cannot_write_its_results_answers_why_cut_short(
    stack: Stack,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hooks.adapters.stepfunctions as shards

    write_suites(stack, "catalog")

    def no_key(*args: Any) -> Any:
        raise PermissionError("AccessDenied: " + "y" * 100_000)

    monkeypatch.setattr(shards.signing, "key_from_env", no_key)
    output = run_to_end(stack, callback, codedeploy[1], "Failed")
    results = [o["result"] for o in output["outcomes"]]
    assert all(r["key"] is None for r in each(results))
    assert all(len(r["error"]) < shards.MAX_CAUSE + 50 for r in each(results))
    assert all(r["error"].endswith("more characters)") for r in each(results))
    assert all(r["error"].startswith("PermissionError: AccessDenied: yyy") for r in each(results))


def test_a_handed_off_run_on_a_laptop_reads_like_a_single_run(tmp_path: Path) -> None:
    """A load in two parts: the merged checks with their results (no line per part), the
    whole run's duration, the plan in the JSON."""
    from tests.functional.test_cli import greenlight

    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "greenlight.yaml").write_text("version: 1\ndefaults:\n  runner: stepfunctions\n")
    (suites / "shop-load.yaml").write_text(
        "kind: load\nname: shop-load\nrate: 20\nduration: 2s\nworkers: 2\nrequests:\n"
        "  - name: health\n    request: {path: /health}\n"
        "thresholds:\n  http_req_failed: 'rate < 0.01'\n"
    )
    report = tmp_path / "report.json"
    with http_server(service()) as url:
        done = greenlight(
            "run",
            "--url",
            url,
            "--suites-dir",
            str(suites),
            "--json",
            str(report),
            "--evidence",
            str(tmp_path / "evidence"),
            timeout=60,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    shards = sorted(p.name for p in (tmp_path / "evidence").glob("*/*/*/*/shards/*.json"))
    assert shards == ["0.json", "1.json", "2.json"]  # reachability, and the load's two parts
    assert "SKIP" not in output
    assert output.count("PASS    shop-load / http_req_failed rate < 0.01") == 1, output
    data = json.loads(report.read_text())
    assert data["duration"] >= 2.0  # the load's two seconds at least: the whole run's time
    assert data["plan"]["runner"] == "stepfunctions"
    assert "fork server sent something unreadable" not in output
