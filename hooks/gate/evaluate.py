"""The work of one run: plan -> target -> suites (in workers) -> verdict (imported on first use).

This is the supervisor's side: it never imports, loads or runs suite code.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hooks.aws import secrets
from hooks.aws.discovery import Deployment, Discovery, GreenTarget, Stack
from hooks.core.deadline import Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import HookInvocation, LifecycleEvent
from hooks.core.results import Policy, SuiteResult
from hooks.core.settings import Settings
from hooks.core.target import Target, cloudwatch_dimensions
from hooks.gate.decision import decide, decide_planned, planned_from
from hooks.gate.plan import Plan, PlanFile, plans_by_event, resolve_plan
from hooks.process.runner import RunResult
from hooks.process.supervisor import SupervisedRun, Supervisor
from hooks.suites.registry import Catalog, check_suites_dir

if TYPE_CHECKING:
    from hooks.adapters.hook import Progress, RunSummary, Runtime

log = logging.getLogger(__name__)


def evaluate(
    summary: RunSummary,
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
) -> None:
    """Fill ``summary`` with the plan, the target, the results and the verdict.

    The catalog worker starts first, so that its imports and suite loading overlap the plan
    and discovery; it is ended whatever happens next.
    """
    supervisor = progress.supervisor
    try:
        check_suites_dir(settings.suites_dir)
        if supervisor is None:
            supervisor = progress.supervisor = start_supervisor(
                settings, summary.invocation, runtime, progress.log_keys
            )
        _evaluate(summary, settings, deadline, runtime, progress, supervisor)
    finally:
        if progress.supervisor is not None:
            progress.supervisor.close()


def start_supervisor(
    settings: Settings,
    invocation: HookInvocation,
    runtime: Runtime,
    log_keys: dict[str, Any] | None = None,
) -> Supervisor:
    """A supervisor whose catalog worker is starting: set up with what is known already.

    ``log_keys`` (the Lambda request id, the cold start) join every line the workers log.
    """
    setup = {
        "suites_dir": str(settings.suites_dir),
        "log_keys": {**invocation.log_keys(), **(log_keys or {})},
        **_worker_logging(),
    }
    return Supervisor(SupervisedRun(setup, settings.memory_mb, runtime.on_check)).start()


def _evaluate(
    summary: RunSummary,
    settings: Settings,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
    supervisor: Supervisor,
) -> None:
    invocation = summary.invocation
    ecs = invocation.ecs
    plan, deployment = resolve_run_plan(summary, settings, runtime, progress)
    application, group = summary.application, summary.deployment_group
    written_headers = dict(plan.headers)  # before secrets: what a hand-off may carry
    if any("${" in value for value in plan.headers.values()):
        progress.set("reading the plan's header secrets (Secrets Manager, Parameter Store)")
        plan = replace(plan, headers=_header_secrets(plan.headers, settings.secrets_max_age))
    summary.plan = plan
    log.info("plan", extra={"plan": plan.describe()})

    if ecs is not None:
        resolved = _ecs_target(plan, ecs, runtime, deadline, progress)
    else:
        resolved = _target(plan, deployment, runtime, deadline, progress, settings)
    target, plan = resolved.target, resolved.plan
    summary.target, summary.plan = target, plan
    if not target.verify:
        log.warning(
            "TLS certificate verification is disabled for %s (source: %s)",
            target.url,
            plan.sources.get("verify"),
        )

    progress.set(f"running suites from {settings.suites_dir} in worker processes")
    started = time.monotonic()
    from hooks.core import redact

    redact.register(*plan.headers.values())
    # Secrets the suites name by reference, fetched here (cached across warm invocations)
    # and handed to the workers with the job.
    references = secrets.scan(settings.suites_dir)
    if references:
        progress.set("reading the suites' secrets (Secrets Manager, Parameter Store)")
    resolved_secrets, unresolved = secrets.resolve_all(references, settings.secrets_max_age)
    gate_began, passed_earlier = _gate_state(ecs, plan, runtime)
    job: dict[str, Any] = {
        **listing_job(plan, invocation),
        "target": {
            "url": target.url,
            "prod_url": target.prod_url,
            "host": target.host,
            "verify": target.verify,
            "ca_bundle": target.ca_bundle,
            "headers": dict(target.headers),
            "dimensions": dict(target.dimensions),
        },
        "deployment": {
            "deployment_id": invocation.deployment_id,
            "execution_id": invocation.execution_id,
            "application": application,
            "deployment_group": group,
            "stage": ecs.stage.value if ecs is not None else None,
            "traffic": ecs.traffic() if ecs is not None else {},
            "since": gate_began,
        },
        # Suites that passed at an earlier call of this ECS gate (IN_PROGRESS).
        "skip": passed_earlier,
        "secrets": redact.secrets(),
        "resolved": resolved_secrets,
        "unresolved": unresolved,
        # AfterInstall tests every green task directly; later events when asked (per_target).
        "green_targets": [{"url": t.url, "label": t.label} for t in resolved.green_targets],
    }
    if plan.runner == "stepfunctions":
        job["target"]["headers"] = {**dict(target.headers), **written_headers}
        _hand_off(summary, job, plan, settings, supervisor, deadline, runtime, progress)
        return
    runtime.warm_up()  # for the report, while the suites run (when discovery did not)
    results, cut_short = supervisor.execute(job, deadline)
    listed = supervisor.listing()
    if listed:  # the results fill the listing's slots, under the plan's policies
        verdict, filled = decide_planned(
            planned_from(listed, plan.policies),
            results,
            "the suite workers",
            deadline_reached=cut_short,
        )
        results = filled
    else:  # the catalog never listed: its results say why, and fail the gate
        verdict = decide(results, deadline_reached=cut_short)
    run = RunResult(tuple(results), cut_short, time.monotonic() - started)
    summary.run = run
    if resolved.unreachable_hint and not verdict.succeeded and _cannot_connect(run):
        verdict = replace(verdict, reason=f"{verdict.reason} ({resolved.unreachable_hint})")
    summary.verdict = verdict
    # A suite that did not load is a configuration error (exit 2 on the command line).
    summary.configuration_error = any(not s.loaded for s in run.suites)


def listing_job(plan: Plan, invocation: HookInvocation) -> dict[str, Any]:
    """The part of a worker's job that the plan alone decides: which suites, under which
    policies and limits. Enough for the catalog worker to list them (the conclusion's job)."""
    deployment = {
        "deployment_id": invocation.deployment_id,
        "execution_id": invocation.execution_id,
    }
    return {
        "event": plan.event.value,
        "planned": list(plan.suites) if plan.suites is not None else None,
        "planned_source": plan.sources.get("suites", "default"),
        "policies": {name: _policy(p) for name, p in plan.policies.items()},
        "plugins": list(plan.plugins),
        "concurrency": plan.concurrency,
        "request_timeout": plan.request_timeout,
        "max_body_bytes": plan.max_body_bytes,
        "target": {"url": plan.target_url or ""},
        "deployment": deployment,
        "per_target_all": plan.event is LifecycleEvent.AFTER_INSTALL or plan.per_target,
    }


def resolve_run_plan(
    summary: RunSummary, settings: Settings, runtime: Runtime, progress: Progress
) -> tuple[Plan, Deployment | None]:
    """The plan for this invocation, resolved here from this process's own sources: the
    plan file in its artifact, the settings, and the deployment it was called for (its
    application and group, their tags). Sets the summary's application and group."""
    invocation = summary.invocation
    progress.set(f"reading the plan file {settings.plan_file}")
    plan_file = PlanFile.load(settings.plan_file)
    deployment: Deployment | None = None
    tags: dict[str, str] = {}
    ecs = invocation.ecs
    if settings.target_url is None:
        runtime.ensure()
    if ecs is None and settings.target_url is None and runtime.discovery is not None:
        progress.set("looking up the deployment (codedeploy:GetDeployment)")
        deployment = runtime.discovery.deployment(invocation.deployment_id)
        if settings.use_tags:
            progress.set("reading the deployment group's tags")
            tags = runtime.discovery.tags(deployment, runtime.region)
    if ecs is not None:  # an ECS service deployment: its cluster and service
        application = settings.application or ecs.cluster
        group = settings.deployment_group or ecs.service
        discovering = settings.target_url is None and runtime.ecs_discovery is not None
        if discovering and settings.use_tags and ecs.service_arn:
            progress.set("reading the service's tags (ecs:ListTagsForResource)")
            tags = runtime.ecs_discovery.tags(ecs.service_arn)
    else:
        application = deployment.application if deployment else settings.application
        group = deployment.deployment_group if deployment else settings.deployment_group
    summary.application, summary.deployment_group = application, group
    plan = resolve_plan(
        invocation.lifecycle_event,
        settings,
        plan_file,
        application=application,
        deployment_group=group,
        tags=tags,
        stage=ecs.stage.value if ecs is not None else None,
    )
    return plan, deployment


_CONNECT_FAILURES = ("cannot connect", "connection timed out", "no complete response")
#: What a hand-off's job never carries: secret values (execution input is readable in the
#: Step Functions console). Each shard resolves them again.
_SECRET_KEYS = ("secrets", "resolved", "unresolved")


def _hand_off(
    summary: RunSummary,
    job: dict[str, Any],
    plan: Plan,
    settings: Settings,
    supervisor: Supervisor,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
) -> None:
    """``runner: stepfunctions``: list the suites, and start the state machine that runs
    them in shards and reports. A suite that did not load fails the gate here and now."""
    from hooks.adapters import stepfunctions as shards
    from hooks.adapters.conclusion import listing_digest
    from hooks.core.verdict import Verdict, VerdictStatus
    from hooks.evidence.reports import bundle_prefix

    if summary.invocation.ecs is not None:
        raise ConfigError(
            "runner: stepfunctions gates CodeDeploy hooks; an Amazon ECS lifecycle hook "
            "answers IN_PROGRESS and is called again instead (set the runner for ECS groups "
            "to lambda)"
        )
    state_machine, bucket = shards.required(settings)
    progress.set("listing the suites for the state machine")
    listed = supervisor.list_suites(job, deadline)
    unloaded = [s for s in listed if not s.loaded]
    if unloaded or not listed:
        suites = tuple(
            SuiteResult(s.name, s.kind, error=s.error, source=s.source, loaded=False)
            for s in unloaded
        )
        summary.run = RunResult(suites, False, 0.0)
        summary.verdict = decide(summary.run.suites)
        summary.configuration_error = bool(unloaded)
        return
    planned = shards.plan_shards([(s.name, s.shards) for s in listed])
    # Each shard seals its results for this plan; the conclusion lists the plan again itself
    # and opens only results sealed for the same digest.
    job["plan_digest"] = listing_digest(listed)
    payload: dict[str, Any] = {
        "invocation": summary.invocation.ids(),
        "summary": {
            "application": summary.application,
            "deployment_group": summary.deployment_group,
            "target": job["target"]["url"],
        },
        "job": {k: v for k, v in job.items() if k not in _SECRET_KEYS},
        "shards": planned,
        "soak": plan.soak,
        "bucket": bucket,
        "prefix": bundle_prefix(summary),
    }
    if runtime.stepfunctions is None:
        raise ConfigError("runner: stepfunctions needs a Step Functions client")
    progress.set("starting the state machine (states:StartExecution)")
    name = shards.execution_name(summary.invocation.execution_id)
    arn, started = shards.hand_off(runtime.stepfunctions(), state_machine, name, payload)
    summary.handed_off = arn
    how = "started" if started else "already started by an earlier invocation of this hook"
    summary.verdict = Verdict(
        VerdictStatus.IN_PROGRESS,
        f"handed to the state machine: execution {arn} ({how}; {len(planned)} shards): it reports",
    )
    log.info(
        "handed off to Step Functions",
        extra={"execution": arn, "started": started, "shards": len(planned)},
    )


def run_shard(event: Mapping[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    """One shard of a handed-off plan, in the worker function: its suites in supervised
    workers under this invocation's deadline; the results to the bucket, the key returned."""
    from hooks.adapters.conclusion import PURPOSE, shard_binding
    from hooks.adapters.stepfunctions import shard_key
    from hooks.aws import signing
    from hooks.core import redact

    settings = Settings.from_env(runtime.env)
    deadline = Deadline.from_context(context, settings.safety_margin)
    job = dict(event["job"])
    shard = event["shard"]
    invocation = HookInvocation(
        job["deployment"]["deployment_id"],
        job["deployment"]["execution_id"],
        LifecycleEvent(job["event"]),
    )
    redact.reset()
    headers = dict(job["target"].get("headers") or {})
    if any("${" in value for value in headers.values()):
        headers = _header_secrets(headers, settings.secrets_max_age)
    job["target"] = {**job["target"], "headers": headers}
    redact.register(*headers.values())
    references = secrets.scan(settings.suites_dir)
    job["resolved"], job["unresolved"] = secrets.resolve_all(references, settings.secrets_max_age)
    job["secrets"] = redact.secrets()
    job["planned"] = list(shard["suites"])
    job["deployment"] = {**job["deployment"], "part": shard.get("part")}
    job["planned_source"] = f"shard {shard['shard']} of the state machine"
    started = time.monotonic()
    supervisor = start_supervisor(settings, invocation, runtime)
    try:
        results, cut_short = supervisor.execute(job, deadline)
    finally:
        supervisor.close()
    data = {
        "shard": shard,
        "suites": [suite.to_dict() for suite in results],
        "deadline_reached": cut_short,
        "duration": round(time.monotonic() - started, 3),
    }
    key = shard_key(str(event["prefix"]), int(shard["shard"]))
    if runtime.s3 is None:
        raise ConfigError("a shard needs an S3 client for its results")
    binding = shard_binding(
        invocation, int(shard["shard"]), list(shard["suites"]), str(job.get("plan_digest"))
    )
    # Redacted, then sealed: what the conclusion verifies is exactly what was written.
    content = redact.redact_data(data)
    sealed = signing.seal(signing.key_from_env(runtime.env), PURPOSE, binding, content)
    body = json.dumps(sealed, default=str).encode()
    runtime.s3().put_object(Bucket=event["bucket"], Key=key, Body=body)
    failed = sum(1 for suite in results if not suite.passed)
    return {"key": key, "suites": len(results), "failed": failed}


def _header_secrets(headers: Mapping[str, str], age: int) -> dict[str, str]:
    from hooks.core import redact

    resolved = {
        name: secrets.substitute(value, f"plan header {name}", age)
        for name, value in headers.items()
    }
    redact.register(*resolved.values())
    return resolved


def _cannot_connect(run: RunResult) -> bool:
    return any(
        any(text in check.message for text in _CONNECT_FAILURES)
        for suite in run.suites
        for check in suite.checks
    )


def _worker_logging() -> dict[str, object]:
    """Workers log as this process does: JSON at its level, or the command line's text.

    Read before this process's Powertools logger exists (the worker starts first): the
    command line has set its plain handler by then; Lambda logs JSON at
    ``POWERTOOLS_LOG_LEVEL``.
    """
    package = logging.getLogger("hooks")
    plain = any(type(h.formatter) is logging.Formatter for h in package.handlers)
    if package.handlers:
        level = logging.getLevelName(package.getEffectiveLevel())
    else:
        level = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
    return {"log_plain": plain, "log_level": level}


def _policy(policy: Policy) -> dict[str, object]:
    return {"report_only": policy.report_only, "failure_limit": policy.failure_limit}


@dataclass
class Resolved:
    """The target of this run, the plan as discovery completed it, and the green tasks."""

    target: Target
    plan: Plan
    #: Each healthy green task, to test directly (AfterInstall, ``per_target``).
    green_targets: list[GreenTarget] = field(default_factory=list)
    #: The load balancer is internal and the function is not in a VPC.
    unreachable_hint: str | None = None


def _target(
    plan: Plan,
    deployment: Deployment | None,
    runtime: Runtime,
    deadline: Deadline,
    progress: Progress,
    settings: Settings,
) -> Resolved:
    """What to test at this event (DESIGN.md, "what each event can test").

    BeforeInstall: production only (no green exists). AfterInstall: each green task
    directly (the test listener still routes to blue). AfterAllowTestTraffic and
    BeforeAllowTraffic: the test listener, once proved to forward to green.
    AfterAllowTraffic: the production listener, which now serves green.
    """
    event = plan.event
    url, prod_url = plan.target_url, plan.prod_url
    green: list[GreenTarget] = []
    hint = None
    dimensions: dict[str, str] = {}
    if url is None:
        if deployment is None or runtime.discovery is None:
            raise ConfigError(
                "no target: set GREENLIGHT_TARGET_URL (or target_url in the plan), "
                "or run with discovery"
            )
        discovery = runtime.discovery
        progress.set("finding the listeners (elasticloadbalancing:DescribeListeners)")
        stack = discovery.stack(deployment, event)
        url, discovered_prod = stack.urls(event)
        prod_url = prod_url or discovered_prod
        log.info(
            "discovered the target",
            extra={
                "test_url": url,
                "prod_url": prod_url,
                "green_target_groups": [g.name for g in stack.green],
                "green_told_apart_by": stack.green_source,
            },
        )
        served_by = stack.prod if event.green_on_prod_listener and stack.prod else stack.test
        if event is not LifecycleEvent.BEFORE_INSTALL and stack.green_target_groups:
            dimensions = cloudwatch_dimensions(served_by.arn, stack.green_target_groups[0])
        if served_by.scheme == "internal" and settings.in_vpc is False:
            hint = "internal load balancer: deploy with SubnetIds/SecurityGroupIds"
            log.warning(
                "the load balancer %s is internal and this function is not in a VPC: checks "
                "cannot reach it (%s)",
                served_by.dns_name,
                hint,
            )
        if event is not LifecycleEvent.BEFORE_INSTALL:
            progress.set(
                "waiting for the green targets to be healthy "
                "(elasticloadbalancing:DescribeTargetHealth)"
            )
            discovery.wait_ready(
                stack.green_target_groups, timeout=plan.readiness_timeout, deadline=deadline
            )
            plan = _with_host(plan, stack, discovery)
            if event in (
                LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
                LifecycleEvent.BEFORE_ALLOW_TRAFFIC,
            ):
                progress.set("checking that the test listener forwards to green")
                stack.prove_green(plan.host)
            green = discovery.green_targets(stack)
            log.info(
                "green tasks",
                extra={"green_targets": [t.label for t in green]},
            )
    elif event is LifecycleEvent.BEFORE_INSTALL:
        if prod_url is None:
            log.warning(
                "at BeforeInstall no green task set exists: the target URL %s is taken as "
                "production (set GREENLIGHT_PROD_URL or prod_url to say so)",
                url,
            )
        url = prod_url = prod_url or url
    target = Target(
        url=url,
        prod_url=prod_url,
        host=plan.host,
        verify=plan.verify,
        ca_bundle=plan.ca_bundle,
        headers=dict(plan.headers),
        dimensions=dimensions,
    )
    return Resolved(target, plan, green, hint)


def _gate_state(call: Any, plan: Plan, runtime: Runtime) -> tuple[float, list[str]]:
    """When this gate began, and the suites that passed at its earlier calls: now and none,
    or an ECS gate's sealed progress (carried in hookDetails) when it opens."""
    from hooks.adapters.ecs import GateState, now, plan_digest

    if call is None:
        return now(), []
    state = GateState.of(call, now(), signing_key(runtime), plan_digest(plan))
    return state.started, state.passed


def signing_key(runtime: Runtime) -> bytes | None:
    """The stack's signing key, or None (logged) when it cannot be had: carried state is
    then neither trusted nor carried."""
    from hooks.aws import signing

    try:
        return signing.key_from_env(runtime.env)
    except Exception as exc:
        log.error("no signing key: %s", exc)
        return None


def _ecs_target(
    plan: Plan, call: Any, runtime: Runtime, deadline: Deadline, progress: Progress
) -> Resolved:
    """The green revision of an ECS service deployment: through the test listener rule (or
    Service Connect with the test header); its tasks directly after scale-up, when no
    test traffic reaches it yet; production before green exists."""
    from hooks.aws.discovery import _name

    event = plan.event
    url, prod_url = plan.target_url, plan.prod_url
    host, headers = plan.host, dict(plan.headers)
    green: list[GreenTarget] = []
    dimensions: dict[str, str] = {}
    if url is None:
        discovery = runtime.ecs_discovery
        if discovery is None:
            raise ConfigError(
                "no target: set GREENLIGHT_TARGET_URL (or target_url in the plan), "
                "or run with discovery"
            )
        progress.set("finding the green revision (ecs:DescribeServiceRevisions)")
        found = discovery.target(call.deployment_arn, call.target_revision_arn)
        url, prod_url = found.url, prod_url or found.prod_url
        host = host or found.host
        headers = {**found.headers, **headers}
        if event is not LifecycleEvent.BEFORE_INSTALL:
            dimensions = dict(found.dimensions)
        if event is LifecycleEvent.BEFORE_INSTALL:
            url = prod_url or url
        elif found.green_target_groups and runtime.discovery is not None:
            progress.set(
                "waiting for the green targets to be healthy "
                "(elasticloadbalancing:DescribeTargetHealth)"
            )
            runtime.discovery.wait_ready(
                found.green_target_groups, timeout=plan.readiness_timeout, deadline=deadline
            )
            if event is LifecycleEvent.AFTER_INSTALL:
                groups = runtime.discovery.target_groups(
                    tuple(_name(arn) for arn in found.green_target_groups)
                )
                green = runtime.discovery.tasks_in(groups)
        if host != plan.host:
            plan = replace(plan, host=host, sources={**plan.sources, "host": found.source})
    elif event is LifecycleEvent.BEFORE_INSTALL:
        url = prod_url = prod_url or url
    target = Target(
        url=url,
        prod_url=prod_url,
        host=host,
        verify=plan.verify,
        ca_bundle=plan.ca_bundle,
        headers=headers,
        dimensions=dimensions,
    )
    return Resolved(target, plan, green)


def _with_host(plan: Plan, stack: Stack, discovery: Discovery) -> Plan:
    """The plan with a host name for an HTTPS test listener, when none is configured.

    From the listener's rules (one exact ``host-header`` value), else from its certificate
    (the domain name, or a name that is not a wildcard); logged like every plan value.
    """
    if plan.host is not None or stack.test.protocol not in ("HTTPS", "TLS"):
        return plan
    derived = stack.derived_host()
    if derived is None and stack.certificate_arn:
        derived = discovery.certificate_host(stack.certificate_arn)
    if derived is None:
        log.warning(
            "the test listener is HTTPS and no host name is set or derivable: certificate "
            "checks will use the load balancer's DNS name (set host, greenlight:host or "
            "GREENLIGHT_TARGET_HOST)"
        )
        return plan
    host, source = derived
    log.info("host name %s %s", host, source)
    return replace(plan, host=host, sources={**plan.sources, "host": source})


def planned_events(
    catalog: Catalog, plan_file: PlanFile | None, settings: Settings
) -> list[LifecycleEvent]:
    """Events with suites planned: named by the plan, or declared by a suite's ``events``.

    Suites that run at every event (the built-in reachability suite, pytest suites) do
    not by themselves plan an event: nothing was asked of it.
    """
    planned = []
    for event, plan in plans_by_event(settings, plan_file).items():
        if plan.suites is not None:
            if plan.suites:
                planned.append(event)
        elif any(event in suite.events for suite in catalog.suites):
            planned.append(event)
    return planned
