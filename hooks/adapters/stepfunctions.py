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
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hooks.core.exceptions import ConfigError

log = logging.getLogger(__name__)

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
    return shards


def hand_off(
    client: Any,
    state_machine_arn: str,
    name: str,
    payload: Mapping[str, Any],
) -> tuple[str, bool]:
    """Start the execution; (its ARN, True) — or (the ARN, False) when an execution of this
    name exists already: another invocation of the same hook started it, and it reports."""
    from botocore.exceptions import ClientError

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


class LocalBucket:
    """The few S3 calls shards make, in memory: for running a handed-off plan on a laptop."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        return {}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        import io

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
        from botocore.exceptions import ClientError

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
