#!/usr/bin/env python3
"""Write requirements-lambda.txt: the Lambda layer's dependencies, pinned with their hashes.

    python3 .ci/lock.py            # after changing the dependencies in pyproject.toml

The dependencies are those of pyproject.toml less what the Lambda runtime provides (the AWS
SDK). pip resolves them for the template's platform (arm64, CPython 3.13); the pins are then
resolved again for the other platforms a build may target (x86_64, and this machine's own
Python for the benchmark), and every wheel's sha256 joins the pin. The build installs with
``--require-hashes --no-deps``: two builds from one commit install the same files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-lambda.txt"
#: Provided by the Lambda runtime; left out of the layer.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
#: (platform, Python version): the first decides the versions, the others add hashes.
TARGETS = [
    ("manylinux2014_aarch64", "3.13"),
    ("manylinux2014_x86_64", "3.13"),
    ("manylinux2014_x86_64", "3.12"),
    ("manylinux2014_x86_64", "3.11"),
]


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].strip().lower()


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [d for d in project["dependencies"] if name_of(d) not in RUNTIME_PROVIDED]


def resolve(reqs: list[str], platform: str, python: str, work: Path) -> dict[str, tuple[str, str]]:
    """{normalised name: (version, sha256)} of what pip would install for the target."""
    req_file = work / "requirements.in"
    req_file.write_text("\n".join(reqs) + "\n")
    report = work / f"report-{platform}-{python}.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"),
            *("--quiet", "--report", str(report), "--target", str(work / "target")),
            *("--platform", platform, "--implementation", "cp", "--python-version", python),
            *("--only-binary=:all:", "-r", str(req_file)),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    found = {}
    for item in json.loads(report.read_text())["install"]:
        name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        found[name] = (item["metadata"]["version"], digest)
    return found


def main() -> int:
    reqs = requirements()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        platform, python = TARGETS[0]
        pins = resolve(reqs, platform, python, work)
        hashes = {name: {digest} for name, (_, digest) in pins.items()}
        pinned = [f"{name}=={version}" for name, (version, _) in sorted(pins.items())]
        for platform, python in TARGETS[1:]:
            for name, (version, digest) in resolve(pinned, platform, python, work).items():
                if name not in pins or pins[name][0] != version:
                    sys.exit(f"{name} {version} for {platform}/{python} differs from the pin")
                hashes[name].add(digest)
    lines = [
        "# The Lambda layer's dependencies, pinned with the sha256 of every wheel a build may",
        "# install. Written by .ci/lock.py from pyproject.toml: do not edit by hand.",
        "# Targets: " + ", ".join(f"{p} CPython {v}" for p, v in TARGETS),
    ]
    for name, (version, _) in sorted(pins.items()):
        lines.append(f"{name}=={version} \\")
        lines.extend(f"    --hash=sha256:{d} \\" for d in sorted(hashes[name]))
        lines[-1] = lines[-1].removesuffix(" \\")
    LOCK.write_text("\n".join(lines) + "\n")
    print(f"{LOCK.name}: {len(pins)} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
