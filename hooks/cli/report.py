"""``greenlight report``: a deployment's evidence, from S3 or a laptop's evidence folder,
shown as ``run`` shows a run.

The bundle of each hook run is at ``<application>/<deployment group>/<deployment id>/
<event>/`` in the evidence bucket (``bundle_prefix``). The application and
group come from ``codedeploy:GetDeployment`` unless given; the bucket from ``--bucket``,
``GREENLIGHT_EVIDENCE_BUCKET`` or the stack's ``EvidenceBucketName`` output.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hooks.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    event_arg,
)
from hooks.cli.console import Console
from hooks.cli.evidence_store import DirectoryBucket, evidence_dir, recent_runs
from hooks.cli.local import LOCAL_BUCKET
from hooks.core.exceptions import ConfigError
from hooks.core.lifecycle import LifecycleEvent
from hooks.evidence.reports import bundle_prefix_of

__all__ = [
    "Bundle",
    "deployment_names",
    "download_html",
    "evidence_bucket",
    "fetch",
    "fetch_local",
    "register",
    "report_command",
]


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


def register(sub: Any) -> None:
    """The ``report`` command's arguments."""
    report = sub.add_parser(
        "report", help="show a deployment's evidence (S3, or a laptop's folder) as `run` does"
    )
    report.add_argument(
        "deployment_id", nargs="?", help="the deployment id, d-XXXXXXXXX (or a laptop run's)"
    )
    report.add_argument(
        "--event", type=event_arg, action="append", default=[], help="one lifecycle event (repeat)"
    )
    report.add_argument("--open", action="store_true", help="open the HTML report in a browser")
    report.add_argument("--bucket", help="evidence bucket (default: $GREENLIGHT_EVIDENCE_BUCKET)")
    report.add_argument("--stack-name", help="read the bucket from this stack's outputs")
    report.add_argument("--application", help="skip codedeploy:GetDeployment: the application")
    report.add_argument("--deployment-group", help="…and the deployment group")
    report.add_argument("--html", type=Path, metavar="DIR", help="save the HTML reports in DIR")
    report.add_argument(
        "--evidence",
        nargs="?",
        type=Path,
        const=Path(""),
        metavar="DIR",
        help="read a laptop's evidence folder instead of S3 (default folder: "
        "$GREENLIGHT_EVIDENCE_DIR, else ~/.local/state/greenlight/evidence)",
    )
    report.add_argument("--list", action="store_true", help="list the recent runs in the folder")
    report.set_defaults(run=report_command)


def report_command(args: argparse.Namespace) -> int:
    console = Console()
    if args.list or args.evidence is not None:
        root = evidence_dir(args.evidence or None)
        if args.list:
            return _list(console, root)
        if not args.deployment_id:
            raise UsageError("which deployment? name its id, or pass --list to see the runs")
        store = DirectoryBucket(root)
        bundles = fetch_local(root, args.deployment_id, args.event)
        return _show(console, args, store, LOCAL_BUCKET, bundles, store.url)
    if not args.deployment_id:
        raise UsageError("which deployment? name its id (or --evidence --list on a laptop)")
    import boto3  # on use: only reading S3 needs it

    bucket = evidence_bucket(args.bucket, args.stack_name)
    application, group = deployment_names(
        args.deployment_id, args.application, args.deployment_group
    )
    s3 = boto3.client("s3")
    bundles = fetch(s3, bucket, application, group, args.deployment_id, args.event)
    return _show(console, args, s3, bucket, bundles, lambda prefix: f"s3://{bucket}/{prefix}")


def _show(
    console: Console,
    args: argparse.Namespace,
    s3: Any,
    bucket: str,
    bundles: list[Bundle],
    where: Any,
) -> int:
    """Each bundle as ``greenlight run`` shows a run; its HTML saved or opened if asked."""
    import tempfile
    import webbrowser

    for bundle in bundles:
        report = bundle.report
        names = f"{report.get('application') or '?'}/{report.get('deployment_group') or '?'}"
        console.line(
            console.bold(f"{bundle.event.value} of {report['deployment_id']} ({names})")
            + f"  {where(bundle.prefix)}"
        )
        console.failures_of(report)
        console.summary(report)
        if args.html or args.open:
            directory = args.html or Path(tempfile.mkdtemp(prefix="greenlight-"))
            directory.mkdir(parents=True, exist_ok=True)
            page = download_html(s3, bucket, bundle, directory)
            console.line(f"  HTML report: {page}")
            if args.open:
                webbrowser.open(page.resolve().as_uri())
    failed = any(b.report["verdict"] != "Succeeded" for b in bundles)
    return EXIT_FAILED if failed else EXIT_OK


def _list(console: Console, root: Path) -> int:
    runs = recent_runs(root)
    if not runs:
        console.line(f"no runs in {root} (greenlight run, invoke and rehearse write there)")
        return EXIT_OK
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.written))
        console.line(f"{when}  {run.verdict:<9}  {run.deployment_id}  {run.event}")
    console.line(f"{len(runs)} runs in {root}; greenlight report ID --evidence shows one")
    return EXIT_OK


def fetch_local(
    root: Path, deployment_id: str, events: Sequence[LifecycleEvent] = ()
) -> list[Bundle]:
    """A deployment's bundles in a laptop's folder (whatever its application and group)."""
    found = []
    wanted = {e.value for e in events}
    for path in sorted(root.glob(f"*/*/{deployment_id}/*/result.json")):
        report = json.loads(path.read_text())
        event = LifecycleEvent(report["lifecycle_event"])
        if wanted and event.value not in wanted:
            continue
        prefix = str(path.parent.relative_to(root)) + "/"
        found.append(Bundle(event, prefix, report))
    if not found:
        raise ConfigError(
            f"no evidence for {deployment_id} in {root} (greenlight report --evidence --list)"
        )
    return sorted(found, key=lambda b: list(LifecycleEvent).index(b.event))
