"""``greenlight report``: a deployment's evidence, fetched from S3 and shown as ``run`` does.

The bundle of each hook run is at ``<application>/<deployment group>/<deployment id>/
<event>/`` in the evidence bucket (``bundle_prefix``). The application and
group come from ``codedeploy:GetDeployment`` unless given; the bucket from ``--bucket``,
``GREENLIGHT_EVIDENCE_BUCKET`` or the stack's ``EvidenceBucketName`` output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent


@dataclass(frozen=True)
class Bundle:
    event: LifecycleEvent
    prefix: str
    report: dict[str, Any]


def evidence_bucket(bucket: str | None, stack_name: str | None, cloudformation: Any = None) -> str:
    if bucket:
        return bucket
    if os.environ.get("GREENLIGHT_EVIDENCE_BUCKET"):
        return os.environ["GREENLIGHT_EVIDENCE_BUCKET"]
    if stack_name:
        if cloudformation is None:
            import boto3

            cloudformation = boto3.client("cloudformation")
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        if "EvidenceBucketName" in outputs:
            return str(outputs["EvidenceBucketName"])
        raise ConfigError(f"stack {stack_name!r} has no EvidenceBucketName output")
    raise ConfigError(
        "which bucket? pass --bucket NAME or --stack-name STACK, or set "
        "GREENLIGHT_EVIDENCE_BUCKET (the stack's EvidenceBucketName output)"
    )


def deployment_names(
    deployment_id: str,
    application: str | None,
    group: str | None,
    codedeploy: Any = None,
) -> tuple[str, str]:
    if application and group:
        return application, group
    if codedeploy is None:
        import boto3

        codedeploy = boto3.client("codedeploy")
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    return info["applicationName"], info["deploymentGroupName"]


def fetch(
    s3: Any,
    bucket: str,
    application: str,
    group: str,
    deployment_id: str,
    events: Sequence[LifecycleEvent] = (),
) -> list[Bundle]:
    """The bundles of the deployment (of ``events``, or all there are), in lifecycle order."""
    from hooks.evidence.reports import bundle_prefix_of

    found: list[Bundle] = []
    for event in events or list(LifecycleEvent):
        prefix = bundle_prefix_of(application, group, deployment_id, event)
        try:
            body = s3.get_object(Bucket=bucket, Key=prefix + "result.json")["Body"].read()
        except s3.exceptions.NoSuchKey:
            if events:
                raise ConfigError(
                    f"no evidence for {event.value} of {deployment_id} at "
                    f"s3://{bucket}/{prefix} (did the hook run with GREENLIGHT_EVIDENCE_BUCKET?)"
                ) from None
            continue
        found.append(Bundle(event, prefix, json.loads(body)))
    if not found:
        raise ConfigError(
            f"no evidence for {deployment_id} in s3://{bucket}/"
            f"{bundle_prefix_of(application, group, deployment_id, None)}"
        )
    return found


def download_html(s3: Any, bucket: str, bundle: Bundle, directory: Path) -> Path:
    path = directory / f"greenlight-{bundle.report['deployment_id']}-{bundle.event.value}.html"
    body = s3.get_object(Bucket=bucket, Key=bundle.prefix + "report.html")["Body"].read()
    path.write_bytes(body)
    return path
