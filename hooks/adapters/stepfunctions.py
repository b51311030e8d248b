"""Past one Lambda run: the plan handed to the stack's Step Functions state machine.

With ``runner: stepfunctions`` a CodeDeploy hook validates, plans, discovers and lists the
suites as always, then starts one execution of the state machine — named from the lifecycle
event hook execution id, so a duplicate invocation cannot start a second — and returns
without reporting. The state machine (``statemachine/greenlight.asl.json``) waits out the
plan's soak, runs the shards in a Map (one worker invocation per shard, each a whole hook
run's worth of time), and hands every shard's outcome to the conclusion, which decides the
verdict by the same rules as a single run, writes the evidence and reports exactly once.

Shard results go through the evidence bucket, not the state machine's payload (256 KB):
each shard writes ``<bundle folder>shards/<n>.json`` and returns its key.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hooks.aws import secrets, signing
from hooks.core import redact
from hooks.core.deadline import Deadline
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import HookInvocation
from hooks.core.results import SuiteResult, cut
from hooks.core.settings import Settings
from hooks.core.verdict import Verdict, VerdictStatus
from hooks.evidence.reports import bundle_prefix
from hooks.gate.decision import decide
from hooks.gate.evaluate import header_secrets, start_supervisor
from hooks.gate.plan import Plan
from hooks.gate.summary import Progress, RunSummary, Runtime
from hooks.process.messages import Job
from hooks.process.runner import RunResult
from hooks.process.supervisor import ListedSuite, Supervisor

__all__ = [
    "MAX_CAUSE",
    "MAX_SHARDS",
    "PURPOSE",
    "LocalBucket",
    "LocalExecutions",
    "describe_error",
    "execution_name",
    "hand_off",
    "listing_digest",
    "plan_shards",
    "required",
    "run_shard",
    "shard_binding",
    "shard_key",
    "start_execution",
]

log = logging.getLogger(__name__)

#: The most shards one execution runs: each shard's outcome (its name, and its key or its
#: error's name) stays in the execution's state, which holds 256 KB.
MAX_SHARDS = 200
#: What a shard's sealed results are for (a shard's file can be nothing else).
PURPOSE = "greenlight shard results"

#: Step Functions execution names: 1-80 characters of letters, digits, ``-`` and ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def execution_name(execution_id: str) -> str:
    """The execution's name for a lifecycle event hook execution: readable, and distinct for
    distinct ids (a digest of the whole id, so two ids that differ only in characters a
    name cannot hold still get two names)."""
    digest = hashlib.sha256(execution_id.encode()).hexdigest()[:16]
    readable = _UNSAFE.sub("-", execution_id)[:60].strip("-") or "hook"
    return f"{readable}-{digest}"


def plan_shards(suites: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """One shard per suite, in the order they were listed (a suite's copies per green task
    stay together: the shard's run fans it out again); a suite that asks for N parts (a
    load with ``workers: N``) gets N shards, each told its ``part``."""
    parts = dict(suites)
    shards: list[dict[str, Any]] = []
    for name in parts:
        count = max(1, parts[name])
        for index in range(count):
            shard: dict[str, Any] = {"shard": len(shards), "suites": [name]}
            if count > 1:
                shard["part"] = [index, count]
            shards.append(shard)
    if len(shards) > MAX_SHARDS:
        raise ConfigError(
            f"the plan asks the state machine for {len(shards)} shards, more than "
            f"{MAX_SHARDS}: plan fewer suites at this event, or fewer load workers"
        )
    return shards


def start_execution(
    client: Any,
    state_machine_arn: str,
    name: str,
    payload: Mapping[str, Any],
) -> tuple[str, bool]:
    """Start the execution; (its ARN, True) — or (the ARN, False) when an execution of this
    name exists already: another invocation of the same hook started it, and it reports."""
    from botocore.exceptions import ClientError  # on use: botocore is not at import

    try:
        answer = client.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload, default=str)
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        arn = state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return arn, False
    return str(answer["executionArn"]), True


def shard_key(prefix: str, shard: int) -> str:
    return f"{prefix}shards/{shard}.json"


def describe_error(error: Mapping[str, Any]) -> str:
    """``States.Timeout: ...``, with a Lambda error's own message when it carries one."""
    kind = str(error.get("Error") or "error")
    cause = str(error.get("Cause") or "")
    try:
        detail = json.loads(cause)
        if isinstance(detail, dict) and detail.get("errorMessage"):
            cause = str(detail["errorMessage"])
    except ValueError:
        pass
    return f"{kind}: {cause}" if cause else kind


def required(settings: Any) -> tuple[str, str]:
    """The state machine and the bucket a hand-off needs; a clear error without them."""
    if not settings.state_machine_arn:
        raise ConfigError(
            "the plan says runner: stepfunctions, and no state machine is set "
            "(GREENLIGHT_STATE_MACHINE_ARN; the stack sets it)"
        )
    if not settings.evidence_bucket:
        raise ConfigError(
            "the plan says runner: stepfunctions, and no evidence bucket is set "
            "(GREENLIGHT_EVIDENCE_BUCKET): the shards hand their results over through it"
        )
    return settings.state_machine_arn, settings.evidence_bucket


def shard_binding(
    invocation: HookInvocation, shard: int, suites: Sequence[str], plan: str
) -> dict[str, Any]:
    """What a shard's results belong to: sealed by the shard, required by the conclusion."""
    return {
        "deployment_id": invocation.deployment_id,
        "execution_id": invocation.execution_id,
        "lifecycle_event": invocation.lifecycle_event.value,
        "shard": shard,
        "suites": list(suites),
        "plan": plan,
    }


def listing_digest(listed: Sequence[ListedSuite]) -> str:
    """The digest of a plan as its suites were listed: names, kinds, policies, the checks
    each must report and the parts it asks for."""
    return signing.digest(
        [
            [s.name, s.kind, s.policy.report_only, s.policy.failure_limit, s.expected, s.shards]
            for s in listed
        ]
    )


def hand_off(
    summary: RunSummary,
    job: Job,
    plan: Plan,
    settings: Settings,
    supervisor: Supervisor,
    deadline: Deadline,
    runtime: Runtime,
    progress: Progress,
) -> None:
    """``runner: stepfunctions``: list the suites, and start the state machine that runs
    them in shards and reports. A suite that did not load fails the gate here and now."""

    if summary.invocation.ecs is not None:
        raise ConfigError(
            "runner: stepfunctions gates CodeDeploy hooks; an Amazon ECS lifecycle hook "
            "answers IN_PROGRESS and is called again instead (set the runner for ECS groups "
            "to lambda)"
        )
    state_machine, bucket = required(settings)
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
    planned = plan_shards([(s.name, s.shards) for s in listed])
    # Each shard seals its results for this plan; the conclusion lists the plan again itself
    # and opens only results sealed for the same digest.
    job = replace(job, plan_digest=listing_digest(listed))
    payload = _execution_input(summary, job, plan, planned, bucket)
    if runtime.stepfunctions is None:
        raise ConfigError("runner: stepfunctions needs a Step Functions client")
    progress.set("starting the state machine (states:StartExecution)")
    name = execution_name(summary.invocation.execution_id)
    arn, started = start_execution(runtime.stepfunctions(), state_machine, name, payload)
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


def _execution_input(
    summary: RunSummary, job: Job, plan: Plan, planned: list[dict[str, Any]], bucket: str
) -> dict[str, Any]:
    """What the execution starts with: the ids, what the evidence needs, the job without
    its secrets, the shards, the soak, and where results go."""
    return {
        "invocation": summary.invocation.ids(),
        "summary": {
            "application": summary.application,
            "deployment_group": summary.deployment_group,
            "target": job.target.url if job.target is not None else None,
            # When the hook handed off: the conclusion's duration is the whole run's.
            "handed_off_at": round(time.time(), 3),
        },
        # Never a secret's value: execution input is readable in the Step Functions
        # console. Each shard resolves them again.
        "job": job.without_secrets().to_json(),
        "shards": planned,
        "soak": plan.soak,
        "bucket": bucket,
        "prefix": bundle_prefix(summary),
    }


def run_shard(event: Mapping[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    """One shard of a handed-off plan, in the worker function: its suites in supervised
    workers under this invocation's deadline; the results to the bucket, the key returned.

    It never raises: an error's cause could be larger than the execution's state holds
    (256 KB for every shard's outcome together). A run that fails writes its cause in its
    results; a shard that cannot even do that returns it, cut short, as ``error``."""
    try:
        return _run_shard(event, context, runtime)
    except Exception as exc:
        log.exception("the shard could not write its results")
        cause = cut(f"{type(exc).__name__}: {exc}", MAX_CAUSE)
        return {"key": None, "suites": 0, "failed": 0, "error": cause}


#: The most of an error's text a shard's answer carries into the execution's state.
MAX_CAUSE = 500


def _run_shard(event: Mapping[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    settings = Settings.from_env(runtime.env)
    deadline = Deadline.from_context(context, settings.safety_margin)
    job = Job.from_json(event["job"])
    if job.target is None:
        raise ConfigError("the shard's job has no target")
    shard = event["shard"]
    invocation = HookInvocation(
        job.deployment.deployment_id, job.deployment.execution_id, job.event
    )
    started = time.monotonic()
    try:
        job = _shard_job(job, shard, settings)
        supervisor = start_supervisor(settings, invocation, runtime)
        try:
            results, cut_short = supervisor.execute(job, deadline)
        finally:
            supervisor.close()
    except Exception as exc:  # its cause goes in its results, not in the execution's state
        log.exception("the shard failed")
        cause = cut(f"the shard failed: {type(exc).__name__}: {exc}", 4000)
        results = [SuiteResult(name, "unknown", error=cause) for name in shard["suites"]]
        cut_short = False
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
        invocation, int(shard["shard"]), list(shard["suites"]), str(job.plan_digest)
    )
    # Redacted, then sealed: what the conclusion verifies is exactly what was written.
    content = redact.redact_data(data)
    sealed = signing.seal(signing.key_from_env(runtime.env), PURPOSE, binding, content)
    body = json.dumps(sealed, default=str).encode()
    runtime.s3().put_object(Bucket=event["bucket"], Key=key, Body=body)
    failed = sum(1 for suite in results if not suite.passed)
    return {"key": key, "suites": len(results), "failed": failed, "error": None}


def _shard_job(job: Job, shard: Mapping[str, Any], settings: Settings) -> Job:
    """The job for this shard's suites, with the secrets fetched here (the hand-off carries
    none)."""
    assert job.target is not None
    redact.reset()
    headers = dict(job.target.headers)
    if any("${" in value for value in headers.values()):
        headers = header_secrets(headers, settings.secrets_max_age)
    redact.bind(*headers.values())
    references = secrets.scan(settings.suites_dir)
    resolved, unresolved = secrets.resolve_all(references, settings.secrets_max_age)
    part = shard.get("part")
    return replace(
        job,
        target=replace(job.target, headers=headers),
        resolved=resolved,
        unresolved=unresolved,
        secrets=tuple(redact.secrets()),
        planned=tuple(shard["suites"]),
        deployment=replace(job.deployment, part=(int(part[0]), int(part[1])) if part else None),
        planned_source=f"shard {shard['shard']} of the state machine",
    )


class LocalBucket:
    """The few S3 calls shards make, in memory: for running a handed-off plan on a laptop."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        return {}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


class LocalExecutions:
    """The state machine's flow in this process, for ``greenlight run`` and ``rehearse``:
    the same shards, each a run of the shard handler (one after another), each failure
    caught as the Map's Catch does, then the conclusion — or, when it raises, the
    conclusion of the failure. The soak is not waited (it is said)."""

    def __init__(
        self,
        run_shard: Any,
        conclude: Any,
        *,
        on_soak: Any = None,
    ) -> None:
        self.run_shard = run_shard
        self.conclude = conclude
        self.on_soak = on_soak
        self.names: set[str] = set()
        #: The conclusion of each execution, by its ARN.
        self.concluded: dict[str, dict[str, Any]] = {}

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError  # on use: botocore is not at import

        arn = stateMachineArn.replace(":stateMachine:", ":execution:") + f":{name}"
        if name in self.names:
            error = {"Error": {"Code": "ExecutionAlreadyExists", "Message": name}}
            raise ClientError(error, "StartExecution")  # type: ignore[arg-type]
        self.names.add(name)
        payload = json.loads(input)
        if payload.get("soak") and self.on_soak is not None:
            self.on_soak(float(payload["soak"]))
        outcomes: list[dict[str, Any]] = []
        for shard in payload["shards"]:
            item = {
                "shard": shard,
                "job": payload["job"],
                "bucket": payload["bucket"],
                "prefix": payload["prefix"],
            }
            try:
                outcomes.append({"shard": shard, "result": {"key": self.run_shard(item)["key"]}})
            except Exception as exc:
                crash = {"Error": type(exc).__name__, "Cause": str(exc)}
                outcomes.append({"shard": shard, "error": crash})
        base = {"invocation": payload["invocation"], "summary": payload["summary"]}
        try:
            result = self.conclude({**base, "bucket": payload["bucket"], "shards": outcomes})
        except Exception as exc:
            failure = {"Error": type(exc).__name__, "Cause": str(exc)}
            result = self.conclude({**base, "failure": failure})
        self.concluded[arn] = result
        return {"executionArn": arn}
