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
from hooks.core.lifecycle import LifecycleEvent
from tests.helpers import ROOT, each, http_server, reply
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


def hooks_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The CodeDeploy hooks (not the ECS hook or the fail-safe)."""
    events = {event.logical_id for event in LifecycleEvent}
    return {k: v for k, v in functions(template).items() if k in events}


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The role's statements, each conditional one as it is when its condition holds."""
    found = []
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            found.append(statement["Fn::If"][1] if "Fn::If" in statement else statement)
    return found


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
    found = hooks_of(template)
    assert set(found) == {event.logical_id for event in LifecycleEvent}
    for event in LifecycleEvent:
        props = found[event.logical_id]["Properties"]
        assert props["Handler"] == f"hooks.adapters.handlers.{event.snake_name}"
        name = props["FunctionName"]["Fn::Sub"]
        assert name == f"CodeDeployHook_${{HookName}}-{event.value}"


def test_the_hook_name_is_checked_at_deploy_time_to_fit_lambdas_64_characters(
    template: dict[str, Any],
) -> None:
    """CloudFormation refuses a HookName too long for the function names, before it creates
    anything: the longest name is CodeDeployHook_<HookName>-AfterAllowTestTraffic."""
    spec = template["Parameters"]["HookName"]
    longest = max(
        len(f["Properties"]["FunctionName"]["Fn::Sub"].replace("${HookName}", ""))
        for f in hooks_of(template).values()
    )
    assert longest + spec["MaxLength"] == 64
    assert spec["MinLength"] == 1
    assert "64 characters" in spec["ConstraintDescription"]


def test_handlers_named_by_the_template_exist(template: dict[str, Any]) -> None:
    import importlib

    for function in functions(template).values():
        module, _, name = function["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_ecs_invokes_its_hook_with_a_role_that_may_invoke_nothing_else(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    assert resources["EcsHook"]["Properties"]["Handler"] == "hooks.adapters.handlers.ecs_hook"
    assert "EventInvokeConfig" not in resources["EcsHook"]["Properties"]  # invoked in-line
    role = resources["EcsHookInvokeRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
    (statement,) = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statement["Action"] == ["lambda:InvokeFunction"]
    assert statement["Resource"] == {"Fn::GetAtt": ["EcsHook", "Arn"]}
    by_sid = {s["Sid"]: s for s in statements(template, "EcsHookRole")}
    assert by_sid["ReadEcsServiceTags"]["Action"] == ["ecs:ListTagsForResource"]
    assert by_sid["ReadEcsServiceTags"]["Resource"]["Fn::Sub"].endswith(":service/*")
    assert by_sid["ReadEcsServiceDeployments"]["Action"] == [
        "ecs:DescribeServiceDeployments",
        "ecs:DescribeServiceRevisions",
    ]
    outputs = template["Outputs"]
    assert {"EcsHookArn", "EcsHookInvokeRoleArn", "EcsLifecycleHooks"} <= set(outputs)


def test_metrics_suites_may_read_metrics_and_alarm_states_and_nothing_more(
    template: dict[str, Any],
) -> None:
    by_sid = {s["Sid"]: s for s in statements(template, "CodeDeployHookRole")}
    assert by_sid["ReadMetrics"]["Action"] == ["cloudwatch:GetMetricData"]
    assert by_sid["ReadAlarmStates"]["Action"] == ["cloudwatch:DescribeAlarms"]
    assert by_sid["ReadAlarmStates"]["Resource"]["Fn::Sub"].endswith(":alarm:*")
    granted = {a for s in statements(template, "CodeDeployHookRole") for a in _actions(s)}
    assert {a for a in granted if a.startswith("cloudwatch:")} == {
        "cloudwatch:GetMetricData",
        "cloudwatch:DescribeAlarms",
    }


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_runtime_architecture_and_layer(template: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] == {"Ref": "FunctionTimeout"}
    assert function["MemorySize"] == {"Ref": "FunctionMemory"}
    assert function["CodeUri"] == "test_suites/"  # a function's own code is its suites
    assert function["Layers"] == [{"Ref": "GreenlightLayer"}]
    layer = template["Resources"]["GreenlightLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    variables = function["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "greenlight"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Greenlight"
    assert "POWERTOOLS_LOG_LEVEL" in variables


def test_a_killed_hook_goes_at_once_to_the_fail_safe(template: dict[str, Any]) -> None:
    """No retry of a crashed hook (each would cost minutes): its event goes to the
    fail-safe, which reports Failed; what the fail-safe cannot report goes to the queue."""
    for function in hooks_of(template).values():
        config = function["Properties"]["EventInvokeConfig"]
        assert config["MaximumRetryAttempts"] == 0
        assert config["DestinationConfig"]["OnFailure"] == {
            "Type": "Lambda",
            "Destination": {"Fn::GetAtt": ["FailSafeFunction", "Arn"]},
        }
    failsafe = template["Resources"]["FailSafeFunction"]["Properties"]
    assert failsafe["Handler"] == "hooks.adapters.failsafe.handler"
    assert failsafe["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert failsafe["Role"] == {"Fn::GetAtt": ["FailSafeRole", "Arn"]}
    assert "EventInvokeConfig" not in template["Globals"]["Function"]  # no loop to itself
    hook_actions = {a for s in statements(template, "CodeDeployHookRole") for a in s["Action"]}
    assert "lambda:InvokeFunction" in hook_actions  # the destination is invoked as the hook
    failsafe_actions = {a for s in statements(template, "FailSafeRole") for a in s["Action"]}
    assert failsafe_actions == {
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        # the lifecycle event's status, read first: a verdict already given stands
        "codedeploy:ListDeploymentTargets",
        "codedeploy:GetDeploymentTarget",
        "sqs:SendMessage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
    }


def test_the_evidence_bucket_is_private_encrypted_and_expires(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["EvidenceStore"]
    props = bucket["Properties"]
    assert bucket["Condition"] == "CreateEvidenceBucket"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    expiry = props["LifecycleConfiguration"]["Rules"][0]
    assert expiry["ExpirationInDays"] == {"Ref": "EvidenceRetentionDays"}
    assert expiry["Status"] == "Enabled"
    policy = template["Resources"]["EvidenceStorePolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_optional_resources_follow_their_parameters(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["Notifications"]["Condition"] == "CreateTopic"
    assert resources["FailureAlarmResource"]["Condition"] == "CreateAlarm"
    alarm = resources["FailureAlarmResource"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Greenlight", "FailedOrUnreportedHooks")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "greenlight"}]
    by_sid = {s["Sid"]: s for s in statements(template, "CodeDeployHookRole")}
    assert by_sid["ReadNamedSecrets"]["Resource"] == {"Ref": "SecretArns"}
    assert by_sid["ReadNamedSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert by_sid["ReadParametersUnderThePrefix"]["Resource"]["Fn::Sub"].endswith(
        ":parameter${ParameterPathPrefix}/*"
    )
    assert by_sid["WriteEvidence"]["Action"] == ["s3:PutObject"]
    assert by_sid["Notify"]["Action"] == ["sns:Publish"]


def test_role_is_least_privilege(template: dict[str, Any]) -> None:
    found = statements(template, "CodeDeployHookRole")
    actions = {a for s in found for a in s["Action"]}
    assert all("*" not in action for action in each(actions))
    assert "codedeploy:PutLifecycleEventHookExecutionStatus" in actions
    assert {"elasticloadbalancing:DescribeListeners", "codedeploy:GetDeployment"} <= actions
    for statement in found:
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


def test_one_log_group_with_retention_kept_when_the_stack_is_deleted(
    template: dict[str, Any],
) -> None:
    """Every hook and the fail-safe log to one group (a deployment's lines are one search
    away), which outlives the stack; a role writes to that group only."""
    config = template["Globals"]["Function"]["LoggingConfig"]
    assert config["LogGroup"] == {"Ref": "HookLogs"}
    assert not any("LoggingConfig" in f["Properties"] for f in each(functions(template).values()))
    group = template["Resources"]["HookLogs"]
    assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Retain"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for role in ("CodeDeployHookRole", "EcsHookRole", "ShardRole", "ConcludeRole", "FailSafeRole"):
        logs = [s for s in statements(template, role) if s["Sid"] == "WriteOwnLogs"]
        assert logs[0]["Resource"] == {"Fn::GetAtt": ["HookLogs", "Arn"]}


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


def test_one_layer_holds_the_package_and_dependencies_and_each_function_its_suites(
    built: Path,
) -> None:
    layer = built / "GreenlightLayer" / "python"
    names = {p.name for p in layer.iterdir()}
    assert {"hooks", "requests", "aws_lambda_powertools", "yaml", "jmespath"} <= names
    assert not names & {"tests", ".venv", "bench", "events", "Makefile", "template.yaml"}
    assert not names & {"boto3", "botocore", "bin"}  # the Lambda runtime provides boto3
    assert (layer / "hooks" / "suites" / "http" / "schema.json").is_file()
    assert (layer / "hooks" / "examples" / "smoke.yaml").is_file()  # `greenlight demo`
    assert any(layer.glob("greenlight_hooks-*.dist-info/entry_points.txt"))
    assert not list(layer.glob("*.dist-info/direct_url.json"))
    # Compiled for the runtime's Python, so a cold start in read-only /opt does not compile
    # every module; the names in the code objects are the runtime's, not the build's.
    compiled = layer / "hooks" / "process" / "__pycache__" / "worker.cpython-313.pyc"
    assert compiled.is_file()
    assert b"/opt/python/hooks/process/worker.py" in compiled.read_bytes()
    assert (layer / "requests" / "__pycache__" / "sessions.cpython-313.pyc").is_file()
    for function in functions(load_template(ROOT / "template.yaml")):
        code = built / function
        assert {p.name for p in code.iterdir()} == {
            p.name for p in (ROOT / "test_suites").iterdir()
        }
        assert not list(code.rglob("*.pyc"))  # suites are user content, left as they are


def test_the_layer_installs_exactly_the_locked_wheels(built: Path) -> None:
    """Every dependency in the layer is pinned, with its hash, in requirements-lambda.txt,
    and every pin is in the layer: nothing is resolved afresh at build time."""
    import re

    lock = (ROOT / "requirements-lambda.txt").read_text()
    pinned = dict(re.findall(r"^([a-z0-9-]+)==(\S+) \\$", lock, re.MULTILINE))
    assert all("--hash=sha256:" in block for block in each(lock.split("==")[1:]))
    layer = built / "GreenlightLayer" / "python"
    installed = {}
    for info in layer.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert installed.pop("greenlight-hooks")
    assert installed == pinned


def test_two_builds_of_one_commit_are_byte_identical(built: Path, python313: str) -> None:
    """The layer sam built, and another build of it here: the same files, the same bytes."""
    import hashlib

    again = built.parent / "again"
    env = dict(os.environ, PATH=f"{Path(python313).parent}:{os.environ['PATH']}")
    subprocess.run(
        ["make", "--no-print-directory", "-s", "lambda-artifact", f"ARTIFACTS_DIR={again}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=600,
    )

    def digests(root: Path) -> dict[str, str]:
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    first, second = digests(built / "GreenlightLayer" / "python"), digests(again)
    assert len(first) > 1000
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_built_artifact_validates_with_the_validators_compiled_at_build(
    built: Path, python313: str
) -> None:
    artifact = built / "GreenlightLayer" / "python"
    assert len(list((artifact / "hooks" / "_validators").glob("v_*.py"))) == 2
    script = (
        "from hooks.core.yamlfile import compiled_schema\n"
        "from hooks.gate.plan import SCHEMA_PATH as plan\n"
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
    assert all(m.startswith("hooks._validators.v_") for m in each(modules)), done.stdout


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
    layer = built / "GreenlightLayer" / "python"
    code = built / "AfterAllowTestTrafficHook"
    runtime = _boto3_only(tmp_path)
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 200, {})) as target:
        env = {
            "PATH": "/usr/bin:/bin",
            # As the runtime lays it out: the function's code, then the layer, then boto3.
            "PYTHONPATH": f"{code}:{layer}:{runtime}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(code),
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
                "hooks.adapters.handlers.after_allow_test_traffic",
                str(ROOT / "events" / "after_allow_test_traffic.json"),
                "20",
                "1",
            ],
            cwd=code,
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


def test_the_state_machine_runs_shards_and_ends_in_a_report_or_the_fail_safe(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    machine = resources["StateMachine"]["Properties"]
    assert machine["DefinitionUri"] == "statemachine/greenlight.asl.json"
    assert machine["Type"] == "STANDARD"
    assert machine["Name"] == {"Fn::Sub": "Greenlight_${HookName}"}
    subs = machine["DefinitionSubstitutions"]
    assert subs["ShardFunctionArn"] == {"Fn::GetAtt": ["ShardFunction", "Arn"]}
    assert subs["ConcludeFunctionArn"] == {"Fn::GetAtt": ["ConcludeFunction", "Arn"]}
    invoked = [p["LambdaInvokePolicy"]["FunctionName"] for p in machine["Policies"][:2]]
    assert invoked == [{"Ref": "ShardFunction"}, {"Ref": "ConcludeFunction"}]
    assert resources["ShardFunction"]["Properties"]["Handler"] == "hooks.adapters.handlers.shard"
    assert (
        resources["ConcludeFunction"]["Properties"]["Handler"] == "hooks.adapters.handlers.conclude"
    )
    # The hooks start executions of exactly this machine, named the same way.
    by_sid = {s["Sid"]: s for s in statements(template, "CodeDeployHookRole")}
    assert by_sid["HandOffToTheStateMachine"]["Action"] == ["states:StartExecution"]
    assert by_sid["HandOffToTheStateMachine"]["Resource"]["Fn::Sub"].endswith(
        ":stateMachine:Greenlight_${HookName}"
    )
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["GREENLIGHT_STATE_MACHINE_ARN"] == by_sid["HandOffToTheStateMachine"]["Resource"]
    # An execution that ends without reporting reaches the fail-safe.
    rule = resources["StateMachineEnded"]["Properties"]
    assert rule["EventPattern"]["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["FailSafeFunction", "Arn"]}
    permission = resources["StateMachineEndedPermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert "StateMachineArn" in template["Outputs"]


def test_every_state_machine_task_is_bounded_and_caught_and_the_execution_ends_in_time() -> None:
    text = (ROOT / "statemachine" / "greenlight.asl.json").read_text()
    for name, value in {
        "ShardConcurrency": "10",
        "ShardTimeout": "600",
        "ShardFunctionArn": "arn:aws:lambda:us-east-1:1:function:s",
        "ConcludeFunctionArn": "arn:aws:lambda:us-east-1:1:function:c",
    }.items():
        text = text.replace("${" + name + "}", value)
    definition = json.loads(text)
    assert definition["TimeoutSeconds"] < 3600  # inside CodeDeploy's hour, with room to spare

    def states(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
        found = dict(machine["States"])
        for state in machine["States"].values():
            if "ItemProcessor" in state:
                found.update(states(state["ItemProcessor"]))
        return found

    every = states(definition)
    tasks = {n: s for n, s in every.items() if s["Type"] in ("Task", "Map")}
    assert set(tasks) == {"Shards", "RunShard", "Conclude", "ConcludeFailure"}
    for name, state in tasks.items():
        if state["Type"] == "Task":
            assert state["TimeoutSeconds"] <= 900, name
        # Every failure is caught, except on the last resort (its failure is the fail-safe's).
        if name != "ConcludeFailure":
            assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
    assert every["Shards"]["MaxConcurrency"] == 10
    # Both ways out of the shards lead to a report, and every report to success.
    assert every["Conclude"]["Next"] == every["ConcludeFailure"]["Next"] == "Reported"
    assert every["Reported"]["Type"] == "Succeed"


def test_the_stack_generates_its_signing_key_and_only_it_may_be_read_for_it(
    template: dict[str, Any],
) -> None:
    """Carried state is signed with a key the stack owns: generated at creation, given to
    every function by name (never its value), readable by the roles of the functions that
    seal or open (the ECS hook, the shard, the conclusion) and by no other."""
    key = template["Resources"]["SigningKey"]
    assert key["Type"] == "AWS::SecretsManager::Secret"
    assert key["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["GREENLIGHT_SIGNING_KEY"] == {"Ref": "SigningKey"}
    readers = {
        role
        for role, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        and any(s.get("Sid") == "ReadTheSigningKey" for s in statements(template, role))
    }
    assert readers == {"EcsHookRole", "ShardRole", "ConcludeRole"}
    for role in readers:
        by_sid = {s["Sid"]: s for s in statements(template, role)}
        assert by_sid["ReadTheSigningKey"]["Action"] == ["secretsmanager:GetSecretValue"]
        assert by_sid["ReadTheSigningKey"]["Resource"] == {"Ref": "SigningKey"}


def test_every_hook_can_arm_a_deadline_watch_that_invokes_only_the_fail_safe(
    template: dict[str, Any],
) -> None:
    """The fail-safe does not hang on Lambda's OnFailure (asynchronous invocations only):
    each hook arms a schedule in the stack's group, which may invoke the fail-safe alone."""
    resources = template["Resources"]
    assert resources["DeadlineWatches"]["Type"] == "AWS::Scheduler::ScheduleGroup"
    failsafe_name = resources["FailSafeFunction"]["Properties"]["FunctionName"]["Fn::Sub"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["GREENLIGHT_WATCH_GROUP"] == {"Ref": "DeadlineWatches"}
    assert variables["GREENLIGHT_WATCH_ROLE_ARN"] == {"Fn::GetAtt": ["WatchRole", "Arn"]}
    assert variables["GREENLIGHT_FAILSAFE_ARN"]["Fn::Sub"].endswith(f":function:{failsafe_name}")
    role = resources["WatchRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    (invoke,) = statements(template, "WatchRole")
    assert invoke["Action"] == ["lambda:InvokeFunction"]
    assert invoke["Resource"]["Fn::Sub"].endswith(f":function:{failsafe_name}")
    by_sid = {s["Sid"]: s for s in statements(template, "CodeDeployHookRole")}
    arm = by_sid["ArmTheDeadlineWatch"]
    assert arm["Action"] == ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"]
    assert arm["Resource"]["Fn::Sub"].endswith(":schedule/greenlight-${HookName}/*")
    assert resources["DeadlineWatches"]["Properties"]["Name"] == {
        "Fn::Sub": "greenlight-${HookName}"
    }
    passing = by_sid["PassTheWatchRole"]
    assert passing["Resource"] == {"Fn::GetAtt": ["WatchRole", "Arn"]}
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }


def test_a_hooks_event_is_never_older_than_codedeploys_hour(template: dict[str, Any]) -> None:
    """Lambda keeps an asynchronous event up to six hours by default; CodeDeploy waits one."""
    for function in each(hooks_of(template).values()):
        age = function["Properties"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"]
        assert 60 <= age <= 3600


def test_the_stack_can_be_deleted_and_created_again_with_the_same_name(
    template: dict[str, Any],
) -> None:
    """No resource that outlives its stack has a name of its own: a stack created again with
    the same HookName does not collide with what the last one kept."""
    for name, resource in template["Resources"].items():
        kept = resource.get("DeletionPolicy") == "Retain"
        named = any(key.endswith("Name") for key in resource.get("Properties", {}))
        if kept and resource["Type"] != "AWS::S3::Bucket":
            assert not named, f"{name} is kept with the stack gone, under a fixed name"
    logs = template["Resources"]["StateMachineLogs"]
    assert "DeletionPolicy" not in logs
    assert "LogGroupName" not in logs["Properties"]


def test_cloudwatch_alarms_can_publish_to_the_topic_the_stack_creates(
    template: dict[str, Any],
) -> None:
    """AWS's own SNS key cannot be used by CloudWatch: the topic has a key that can."""
    resources = template["Resources"]
    topic = resources["Notifications"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "NotificationsKey"}
    key = resources["NotificationsKey"]
    assert key["Condition"] == "CreateTopic"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    alarms = [
        s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert {a for s in each(alarms) for a in s["Action"]} >= {"kms:Decrypt", "kms:GenerateDataKey*"}
    alarm = resources["FailureAlarmResource"]["Properties"]["AlarmActions"]
    assert alarm["Fn::If"][1] == [
        {"Fn::If": ["CreateTopic", {"Ref": "Notifications"}, {"Ref": "NotificationTopic"}]}
    ]


def test_every_arn_is_in_the_stacks_partition() -> None:
    """``arn:aws:`` is one partition of several (aws-cn, aws-us-gov): the template and the
    state machine build every ARN from ``AWS::Partition``."""
    for path in (ROOT / "template.yaml", ROOT / "statemachine" / "greenlight.asl.json"):
        assert "arn:aws:" not in path.read_text(), path
    substitutions = load_template(ROOT / "template.yaml")["Resources"]["StateMachine"][
        "Properties"
    ]["DefinitionSubstitutions"]
    assert substitutions["LambdaInvoke"] == {
        "Fn::Sub": "arn:${AWS::Partition}:states:::lambda:invoke"
    }
