"""Each function's role grants exactly the AWS calls its code can make.

The calls are found in the code, not listed by hand: from a function's handler, the
modules it can reach (every import, and the worker and the suite kinds once it starts
workers), the AWS operations those modules call (a boto3 method, or a ``_call(service,
operation)``), kept for the services whose clients the function can build. A new call
without a grant fails here, and so does a grant no code uses.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from tests.helpers import ROOT, each
from tests.template.test_template import load_template
from tests.unit.test_layout import import_graph, modules

#: The services Greenlight's code may call, by the name boto3 gives them.
SERVICES = (
    "acm",
    "cloudwatch",
    "codedeploy",
    "ecs",
    "elbv2",
    "lambda",
    "s3",
    "scheduler",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "stepfunctions",
)
#: IAM's prefix where it differs from the name boto3 gives a service.
IAM_PREFIX = {
    "cloudwatch": "cloudwatch",
    "elbv2": "elasticloadbalancing",
    "stepfunctions": "states",
}
#: Another name a ``_call(service, ...)`` gives a service.
ALIASES = {"elasticloadbalancing": "elbv2", "states": "stepfunctions"}
#: Clients made by a library on the code's behalf: the class, its service and its calls.
PROVIDERS = {
    "SecretsProvider": ("secretsmanager", {"secretsmanager:GetSecretValue"}),
    "SSMProvider": ("ssm", {"ssm:GetParameter"}),
}
#: What every Lambda function's role needs for its own logs.
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
#: The module a worker process runs (started by module name, not imported).
WORKER = "hooks.process.worker"


@cache
def operations() -> dict[str, set[str]]:
    """``snake_case`` operation -> the IAM actions of that name, over :data:`SERVICES`."""
    session = botocore.session.get_session()
    found: dict[str, set[str]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        prefix = IAM_PREFIX.get(service, service)
        for operation in model.operation_names:
            found.setdefault(xform_name(operation), set()).add(f"{prefix}:{operation}")
    return found


def action_of(service: str, operation: str) -> str:
    service = ALIASES.get(service, service)
    return f"{IAM_PREFIX.get(service, service)}:{operation[0].upper()}{_camel(operation)[1:]}"


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_")) if "_" in name else name


def calls_in(tree: ast.AST) -> set[str]:
    """The IAM actions of the AWS calls written in ``tree``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name in operations():
            actions = operations()[name]
            assert len(actions) == 1, f"{name} is ambiguous: {sorted(actions)}"
            found |= actions
        texts = [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        if name == "_call" and len(texts) >= 2:
            found.add(action_of(texts[0], texts[1]))
        callee = node.func.id if isinstance(node.func, ast.Name) else name
        if callee in PROVIDERS:
            found |= PROVIDERS[callee][1]
    return found


def clients_in(tree: ast.AST) -> set[str]:
    """The services a client is built for in ``tree``: ``boto3.client("s3")`` and the
    handlers' ``_publisher("s3")``, and the providers' own."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = (
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        )
        first = node.args[0] if node.args else None
        if name in ("client", "_publisher") and isinstance(first, ast.Constant):
            found.add(str(first.value))
        if name in PROVIDERS:
            found.add(PROVIDERS[name][0])
    return found


def _local_definitions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def entry_nodes(module: str, function: str) -> list[ast.AST]:
    """The entry function and the functions and classes of its module it uses,
    transitively, with the module's top level (what importing it runs)."""
    tree = ast.parse(modules()[module].read_text())
    local = _local_definitions(tree)
    seen: dict[str, ast.FunctionDef | ast.ClassDef] = {}
    todo = [function]
    while todo:
        name = todo.pop()
        if name in seen or name not in local:
            continue
        seen[name] = local[name]
        todo += [n.id for n in ast.walk(local[name]) if isinstance(n, ast.Name)]
    top = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
    return [*top, *seen.values()]


def _imports_in(nodes: Iterable[ast.AST], known: Iterable[str]) -> set[str]:
    names = set(known)
    found: set[str] = set()
    for node in nodes:
        for child in ast.walk(node):
            if isinstance(child, ast.ImportFrom) and child.module:
                for alias in child.names:
                    whole = f"{child.module}.{alias.name}"
                    found.add(whole if whole in names else child.module)
            elif isinstance(child, ast.Import):
                found |= {alias.name for alias in child.names}
    return {name for name in found if name in names}


@cache
def _runtime_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in import_graph():
        if not edge.type_only:
            graph.setdefault(edge.source, set()).add(edge.target)
    return graph


def suite_kinds() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    points = project["project"]["entry-points"]["greenlight.suites"].values()
    return {point.split(":")[0] for point in points}


def reachable(module: str, function: str) -> set[str]:
    """Modules the entry can run: its imports, theirs, and the worker's once it starts one."""
    nodes = entry_nodes(module, function)
    todo = [module, *_imports_in(nodes, modules())]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name != module:
            todo += sorted(_runtime_graph().get(name, ()))
        if f'"{WORKER}"' in modules()[name].read_text():
            todo += [WORKER, *suite_kinds()]
    return seen


def code_needs(handler: str) -> set[str]:
    """The IAM actions the code behind ``handler`` can call, on the clients it can build."""
    module, function = handler.rsplit(".", 1)
    found = reachable(module, function)
    entry = entry_nodes(module, function)
    built = set().union(*(clients_in(n) for n in entry))
    actions: set[str] = set()
    for name in found:
        tree = ast.parse(modules()[name].read_text())
        if name != module:
            built |= clients_in(tree)
        actions |= calls_in(tree) if name != module else set().union(*(calls_in(n) for n in entry))
    prefixes = {IAM_PREFIX.get(s, s) for s in built}
    return {a for a in actions if a.split(":")[0] in prefixes}


def _statements(policy: Any) -> Iterable[dict[str, Any]]:
    """Every statement of a policy document, both branches of an ``!If`` included."""
    for statement in policy.get("Statement", []):
        if isinstance(statement, dict) and "Fn::If" in statement:
            for branch in statement["Fn::If"][1:]:
                if isinstance(branch, dict) and "Action" in branch:
                    yield branch
        elif isinstance(statement, dict):
            yield statement


def role_grants(resources: dict[str, Any], role: str) -> set[str]:
    properties = resources[role]["Properties"]
    actions: set[str] = set()
    for policy in properties.get("Policies", []):
        for statement in _statements(policy["PolicyDocument"]):
            if statement.get("Effect") == "Allow":
                listed = statement["Action"]
                actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def implied(function: dict[str, Any], granted: set[str]) -> set[str]:
    """What a role holds for the platform, not for a call in the code: its own logs, the
    OnFailure destination Lambda invokes with it, the role a schedule is created with."""
    extra = set(LOGS)
    destination = function["Properties"].get("EventInvokeConfig", {}).get("DestinationConfig", {})
    if destination.get("OnFailure", {}).get("Type") == "Lambda":
        extra.add("lambda:InvokeFunction")
    if "scheduler:CreateSchedule" in granted:
        extra.add("iam:PassRole")
    return extra


def _functions() -> list[tuple[str, dict[str, Any]]]:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    return sorted(
        (name, r) for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
    )


def _role_of(function: dict[str, Any]) -> str:
    role = function["Properties"]["Role"]
    return str(
        role["Fn::GetAtt"][0]
        if isinstance(role["Fn::GetAtt"], list)
        else role["Fn::GetAtt"].split(".")[0]
    )


@pytest.mark.parametrize("name", [name for name, _ in _functions()])
def test_each_role_grants_what_its_function_calls_and_nothing_else(name: str) -> None:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    function = resources[name]
    granted = role_grants(resources, _role_of(function))
    needed = code_needs(function["Properties"]["Handler"])
    assert each(needed)
    assert sorted(needed - granted) == [], "calls without a grant"
    assert sorted(granted - needed - implied(function, granted)) == [], "grants without a call"


def test_no_two_kinds_of_function_share_a_role() -> None:
    """The five CodeDeploy hooks share one role (one handler module, one set of calls); the
    ECS hook, the shard, the conclusion and the fail-safe each have their own."""
    roles: dict[str, set[str]] = {}
    for name, function in _functions():
        kind = re.sub(
            r"^(BeforeInstall|AfterInstall|AfterAllowTestTraffic|BeforeAllowTraffic|AfterAllowTraffic)Hook$",
            "CodeDeployHook",
            name,
        )
        roles.setdefault(_role_of(function), set()).add(kind)
    assert all(len(kinds) == 1 for kinds in each(roles.values())), roles


def test_the_finder_sees_each_way_a_call_is_written() -> None:
    tree = ast.parse(
        "client.put_object(Bucket='b')\n"
        "self._call(self.codedeploy, 'codedeploy', 'GetDeployment', deploymentId='d')\n"
        "self._call('ecs', 'describe_service_revisions', serviceRevisionArns=[])\n"
        "SecretsProvider(boto_config=config)\n"
    )
    assert calls_in(tree) == {
        "s3:PutObject",
        "codedeploy:GetDeployment",
        "ecs:DescribeServiceRevisions",
        "secretsmanager:GetSecretValue",
    }


def test_a_call_on_a_client_the_function_never_builds_is_not_needed() -> None:
    """The shard reaches discovery's module, and builds no CodeDeploy client: it needs no
    CodeDeploy call."""
    needed = code_needs("hooks.adapters.handlers.shard")
    assert "s3:PutObject" in needed
    assert not {a for a in needed if a.startswith(("codedeploy:", "states:", "elasticload"))}
    assert Path(modules()["hooks.adapters.handlers"]).is_file()
