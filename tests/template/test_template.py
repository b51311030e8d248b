"""template.yaml: lint, structure, least privilege, and the build artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hooks.cli.template import load_template
from hooks.lifecycle import LifecycleEvent
from tests.helpers import ROOT, http_server, reply
from tests.wire import SCRIPT, FakeCodeDeploy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_cfn_lint_reports_nothing() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_sam_validate_lint_reports_nothing(sam: str) -> None:
    done = subprocess.run(
        [sam, "validate", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, SAM_CLI_TELEMETRY="0"),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


def test_one_function_per_lifecycle_event_with_the_codedeployhook_prefix(
    template: dict[str, Any],
) -> None:
    found = functions(template)
    assert set(found) == {event.logical_id for event in LifecycleEvent}
    for event in LifecycleEvent:
        props = found[event.logical_id]["Properties"]
        assert props["Handler"] == f"hooks.handlers.{event.snake_name}"
        name = props["FunctionName"]["Fn::Sub"]
        assert name.startswith("CodeDeployHook_${AWS::StackName}")  # unique per stack
        assert name.endswith(event.value)


def test_handlers_named_by_the_template_exist() -> None:
    import hooks.handlers

    for event in LifecycleEvent:
        assert callable(getattr(hooks.handlers, event.snake_name))


def test_runtime_architecture_and_retry_setting(template: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] == {"Ref": "FunctionTimeout"}
    assert function["MemorySize"] == {"Ref": "FunctionMemory"}
    assert function["EventInvokeConfig"]["MaximumEventAgeInSeconds"] < 3600
    variables = function["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "greenlight"
    assert "POWERTOOLS_LOG_LEVEL" in variables


def test_role_is_least_privilege(template: dict[str, Any]) -> None:
    role = template["Resources"]["HookRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in s["Action"]}
    assert all("*" not in action for action in actions)
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in actions
    assert {"elasticloadbalancing:DescribeListeners", "codedeploy:GetDeployment"} <= actions
    for statement in statements:
        if any(a.startswith("codedeploy:") for a in statement["Action"]):
            assert ":deploymentgroup:" in statement["Resource"]["Fn::Sub"]
        if any(a.startswith("acm:") for a in statement["Action"]):
            assert statement["Action"] == ["acm:DescribeCertificate"]
            assert statement["Resource"]["Fn::Sub"].endswith(":certificate/*")
    # Exactly the ELB reads discovery makes: listeners, balancers, rules, groups, health.
    assert {a for a in actions if a.startswith("elasticloadbalancing:")} == {
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
    }


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = template["Resources"][group_id]
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert name.removesuffix("Hook") in group["Properties"]["LogGroupName"]["Fn::Sub"]


def test_vpc_placement_is_optional(template: dict[str, Any]) -> None:
    vpc = template["Globals"]["Function"]["VpcConfig"]["Fn::If"]
    assert vpc[0] == "InVpc"
    assert vpc[2] == {"Ref": "AWS::NoValue"}


def test_outputs_give_each_arn_and_an_appspec_snippet(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for event in LifecycleEvent:
        assert f"{event.logical_id}Arn" in outputs
        assert f"- {event.value}: " in outputs["AppSpecHooks"]["Value"]["Fn::Sub"]


# ---- the built artifact ----


def test_artifact_holds_the_package_suites_and_dependencies_only(built: Path) -> None:
    for event in LifecycleEvent:
        artifact = built / event.logical_id
        names = {p.name for p in artifact.iterdir()}
        assert {"hooks", "test_suites", "requests", "aws_lambda_powertools", "yaml"} <= names
        assert not names & {"tests", ".venv", "bench", "events", "Makefile", "template.yaml"}
        assert not names & {"boto3", "botocore"}  # the Lambda runtime provides them
        assert (artifact / "hooks" / "suites" / "http" / "schema.json").is_file()
        assert any(artifact.glob("greenlight_hooks-*.dist-info/entry_points.txt"))
        # Compiled for the runtime's Python, so a cold start in read-only /var/task does
        # not compile every module; suites (user content) are left as they are.
        assert (artifact / "hooks" / "__pycache__" / "worker.cpython-313.pyc").is_file()
        assert (artifact / "requests" / "__pycache__" / "sessions.cpython-313.pyc").is_file()
        assert not list((artifact / "test_suites").rglob("*.pyc"))


def test_built_artifact_validates_with_the_validators_compiled_at_build(
    built: Path, python313: str
) -> None:
    artifact = built / "AfterAllowTestTrafficHook"
    assert len(list((artifact / "hooks" / "_validators").glob("v_*.py"))) == 2
    script = (
        "from hooks.yamlfile import compiled_schema\n"
        "from hooks.plan import SCHEMA_PATH as plan\n"
        "from hooks.suites.http import SCHEMA_PATH as suite\n"
        "for path in (plan, suite):\n"
        "    print(compiled_schema(str(path)).__module__)\n"
    )
    done = subprocess.run(
        [python313, "-s", "-c", script],
        cwd=artifact,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(artifact), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = done.stdout.split()
    assert len(set(modules)) == 2, done.stdout
    assert all(m.startswith("hooks._validators.v_") for m in modules), done.stdout


def _boto3_only(tmp_path: Path) -> Path:
    """A directory holding boto3 and what it imports, as the Lambda runtime provides."""
    import boto3

    site = Path(boto3.__file__).parent.parent
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in ("boto3", "botocore", "s3transfer", "dateutil", "six.py"):
        (runtime / name).symlink_to(site / name)
    return runtime


def test_built_handler_runs_in_python313_and_reports(
    built: Path, python313: str, tmp_path: Path
) -> None:
    artifact = built / "AfterAllowTestTrafficHook"
    runtime = _boto3_only(tmp_path)
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{artifact}:{runtime}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(artifact),
            "AWS_ENDPOINT_URL_CODEDEPLOY": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "GREENLIGHT_TARGET_URL": target,
            "POWERTOOLS_SERVICE_NAME": "greenlight",
        }
        done = subprocess.run(
            [
                python313,
                "-s",
                "-c",
                SCRIPT,
                "hooks.handlers.after_allow_test_traffic",
                str(ROOT / "events" / "after_allow_test_traffic.json"),
                "20",
                "1",
            ],
            cwd=artifact,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])["result"]
    assert result["verdict"] == "Succeeded", result
    assert [r["body"]["status"] for r in fake.requests] == ["Succeeded"]
