"""Lambda handlers, one per lifecycle event; ``template.yaml`` names them.

Thin on purpose: clients are built once per container, on first use (not at import, to
keep the cold start close to ``import boto3``), and everything else is in ``hooks.adapters.hook``.
"""

from __future__ import annotations

import os

from hooks.process import spawn

#: In a Lambda function (not on a laptop that imports this module): a suite worker starts
#: as the function initialises, before anything else is imported, and again as each
#: invocation ends, so the next invocation finds one with its imports done. So does the
#: fork server, when the suites directory holds pytest files.
IN_LAMBDA = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
if IN_LAMBDA:
    spawn.prestart()

import logging  # noqa: E402 - these, too, after the worker's start
from functools import cache  # noqa: E402
from typing import Any  # noqa: E402

from hooks.adapters.hook import handle  # noqa: E402 - after the worker's start
from hooks.core.lifecycle import LifecycleEvent  # noqa: E402
from hooks.core.settings import default_suites_dir  # noqa: E402
from hooks.gate.summary import Clients, Runtime  # noqa: E402

__all__ = [
    "IN_LAMBDA",
    "after_allow_test_traffic",
    "after_allow_traffic",
    "after_install",
    "before_allow_traffic",
    "before_install",
    "clients",
    "conclude",
    "conclude_clients",
    "conclude_runtime",
    "ecs_hook",
    "ecs_runtime",
    "runtime",
    "shard",
    "shard_runtime",
]


def _prestart() -> None:
    """Spares are an optimisation: whatever goes wrong here, the function still loads and
    each invocation starts what it needs itself."""
    try:
        spawn.prestart()
        if spawn.holds_pytest_files(default_suites_dir(os.environ)):
            spawn.prestart_forks()
    except Exception:  # pragma: no cover - prestart already logs and swallows its errors
        logging.getLogger(__name__).debug("no spare processes", exc_info=True)


if IN_LAMBDA:
    _prestart()


@cache
def runtime() -> Runtime:
    """The container's collaborators; the AWS clients are built on first use (or warm-up).

    After each report: the evidence bundle (``GREENLIGHT_EVIDENCE_BUCKET``), the metrics
    (EMF on stdout) and the notification (``GREENLIGHT_NOTIFY_TOPIC``), in that order, so
    the metrics and the message carry the bundle's location.
    """
    return Runtime(
        connect=clients,
        stepfunctions=lambda: _publisher("stepfunctions"),
        scheduler=lambda: _publisher("scheduler"),
        reporters=_reporters(),
    )


def _reporters() -> tuple[Any, ...]:
    """What follows a verdict: the evidence bundle, the metrics, the notification."""
    # on first use: each function imports only what its own handler needs (cold start)
    from hooks.evidence.metrics import MetricsReporter
    from hooks.evidence.notify import Notifier
    from hooks.evidence.reports import EvidenceBundle

    return (
        EvidenceBundle(lambda: _publisher("s3")),
        MetricsReporter(),
        Notifier(lambda: _publisher("sns")),
    )


@cache
def shard_runtime() -> Runtime:
    """A shard's collaborators: the bucket it writes its results to, and nothing else (it
    neither discovers nor reports)."""
    return Runtime(s3=lambda: _publisher("s3"))


@cache
def conclude_runtime() -> Runtime:
    """The conclusion's collaborators: CodeDeploy (the report, and the deployment for its
    own plan), the bucket (the shards' results, the evidence) and the reporters."""
    return Runtime(connect=conclude_clients, s3=lambda: _publisher("s3"), reporters=_reporters())


@cache
def _publisher(service: str) -> Any:
    """A client for a reporter, built on first use: short timeouts, one retry. A slow
    upload costs the evidence, never the report (which was sent before)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=2,
        read_timeout=5,
        user_agent_extra="greenlight",
    )
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def _lookups() -> Any:
    from botocore.config import Config  # on first use: botocore loads when a client is built

    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=3,
        read_timeout=10,
        user_agent_extra="greenlight",
    )


def conclude_clients() -> Clients:
    """The report's CodeDeploy client and, for the plan, the deployment's (no load balancer
    is discovered: the shards ran against the target the hook found)."""
    # on first use: each function imports only what its own handler needs (cold start)
    import boto3

    from hooks.aws.codedeploy import CodeDeployCallback, report_client_config
    from hooks.aws.discovery import Discovery

    report = boto3.client("codedeploy", config=report_client_config())
    lookups = _lookups()
    return Clients(
        protocol=CodeDeployCallback(report),
        discovery=Discovery(lambda: boto3.client("codedeploy", config=lookups), lambda: None),
        region=report.meta.region_name,
    )


def clients() -> Clients:
    """The report's CodeDeploy client, and (built on first use) discovery's CodeDeploy,
    ELBv2 and ACM clients."""
    # on first use: each function imports only what its own handler needs (cold start)
    import boto3

    from hooks.aws.codedeploy import CodeDeployCallback, report_client_config
    from hooks.aws.discovery import Discovery

    lookups = _lookups()
    report = boto3.client("codedeploy", config=report_client_config())
    return Clients(
        protocol=CodeDeployCallback(report),
        # Built on first use: a run whose target is given never discovers.
        discovery=Discovery(
            lambda: boto3.client("codedeploy", config=lookups),
            lambda: boto3.client("elbv2", config=lookups),
            acm=lambda: boto3.client("acm", config=lookups),  # only for HTTPS host names
        ),
        region=report.meta.region_name,
    )


@cache
def ecs_runtime() -> Runtime:
    """The ECS hook's collaborators: the verdict is the return value (no report client);
    discovery reads ECS and ELBv2, each client built on first use."""
    # on first use: each function imports only what its own handler needs (cold start)
    import boto3

    from hooks.adapters.ecs import EcsReturn
    from hooks.aws.discovery import Discovery
    from hooks.aws.ecs_discovery import EcsDiscovery

    lookups = _lookups()
    elbv2 = cache(lambda: boto3.client("elbv2", config=lookups))
    return Runtime(
        protocol=EcsReturn(),
        discovery=Discovery(lambda: None, elbv2),
        ecs_discovery=EcsDiscovery(lambda: boto3.client("ecs", config=lookups), elbv2),
        region=boto3.session.Session().region_name or "us-east-1",
        reporters=_reporters(),
    )


def ecs_hook(event: Any, context: Any) -> dict[str, Any]:
    """Amazon ECS native blue/green lifecycle hooks, every stage (``lifecycleStage``)."""
    # on first use: each function imports only what its own handler needs (cold start)
    from hooks.adapters.ecs import handle_ecs

    try:
        return handle_ecs(event, context, ecs_runtime())
    finally:
        if IN_LAMBDA:
            _prestart()


def _invoke(event: Any, context: Any, lifecycle_event: LifecycleEvent) -> dict[str, Any]:
    try:
        return handle(event, context, lifecycle_event, runtime())
    finally:
        if IN_LAMBDA:
            _prestart()


def before_install(event: Any, context: Any) -> dict[str, Any]:
    return _invoke(event, context, LifecycleEvent.BEFORE_INSTALL)


def after_install(event: Any, context: Any) -> dict[str, Any]:
    return _invoke(event, context, LifecycleEvent.AFTER_INSTALL)


def after_allow_test_traffic(event: Any, context: Any) -> dict[str, Any]:
    return _invoke(event, context, LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)


def before_allow_traffic(event: Any, context: Any) -> dict[str, Any]:
    return _invoke(event, context, LifecycleEvent.BEFORE_ALLOW_TRAFFIC)


def after_allow_traffic(event: Any, context: Any) -> dict[str, Any]:
    return _invoke(event, context, LifecycleEvent.AFTER_ALLOW_TRAFFIC)


def shard(event: Any, context: Any) -> dict[str, Any]:
    """The state machine's worker: one shard of a handed-off plan (``runner: stepfunctions``)."""
    # on first use: each function imports only what its own handler needs (cold start)
    from hooks.adapters.stepfunctions import run_shard

    return run_shard(event, context, shard_runtime())


def conclude(event: Any, context: Any) -> dict[str, Any]:
    """The state machine's last step: one verdict from the shards, reported once."""
    # on first use: each function imports only what its own handler needs (cold start)
    from hooks.adapters.conclusion import conclude_execution

    result = conclude_execution(event, context, conclude_runtime())
    if result.get("report") == "failed":
        # The state machine's failure path reports Failed again, and past it the
        # execution fails and the fail-safe reports: a verdict is never left unsaid.
        raise RuntimeError(f"the report to CodeDeploy failed: {result.get('reason')}")
    return result
