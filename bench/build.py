"""The SAM build: time and size of ``sam build``, against the five-build design it replaced.

    make bench-build        (or: .venv/bin/python bench/build.py)

Both sides are the real ``sam build --build-in-source`` of a clean checkout, interleaved
round by round (BUILD_ROUNDS rounds, 3 by default; median and min-max spread printed), with
the same pip cache and the same machine:

- **now**: this commit — one makefile-built layer for the five hooks and the fail-safe, each
  function's own code being its suites (a copy);
- **before**: the last commit of the previous design (``BASELINE``), where each of the five
  functions ran the same makefile build of the whole artifact, dependencies resolved afresh.

Printed: seconds per build, the built output's size, and the ratio; the last line reads
``bench build time: <ratio> (target <= 0.33) ok|MISS``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The last commit whose template built each function separately (five identical builds).
BASELINE = "fe55a20"
ROUNDS = int(os.environ.get("BUILD_ROUNDS", "3"))
TARGET = 1 / 3


def sam() -> str:
    candidate = os.environ.get("GREENLIGHT_SAM") or str(ROOT / ".tools" / "sam" / "bin" / "sam")
    if not Path(candidate).is_file():
        sys.exit("aws-sam-cli is not installed: run `make tools`")
    return candidate


def checkout(commit: str, where: Path) -> Path:
    """A clean copy of ``commit`` (what a fresh clone holds), without .venv or build dirs."""
    where.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def build(source: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    started = time.monotonic()
    done = subprocess.run(
        [sam(), "build", "--build-in-source", "--build-dir", str(out)],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"sam build failed in {source}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return took


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    if shutil.which("python3.13") is None:
        sys.exit("sam build for the python3.13 runtime needs python3.13 on PATH")
    with tempfile.TemporaryDirectory(prefix="greenlight-bench-build-") as tmp:
        work = Path(tmp)
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        sides = {
            "now": checkout("HEAD", work / "now"),
            "before": checkout(BASELINE, work / "before"),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(ROUNDS):
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            for name in order:
                took = build(sides[name], work / f"out-{name}")
                times[name].append(took)
                print(f"round {round_ + 1}: {name} {took:.1f}s", flush=True)
        sizes = {name: size(work / f"out-{name}") for name in sides}
        ratios = sorted(n / b for n, b in zip(times["now"], times["before"], strict=True))
        print()
        for name in sides:
            label = f"{name} ({head if name == 'now' else BASELINE})"
            print(
                f"{label:<16} build {statistics.median(times[name]):6.1f}s "
                f"[{min(times[name]):.1f}-{max(times[name]):.1f}]  "
                f"output {sizes[name] / 2**20:6.1f} MB"
            )
        layer = size(work / "out-now" / "GreenlightLayer")
        print(f"now: one layer of {layer / 2**20:.1f} MB; each function's own code its suites")
        ratio = statistics.median(ratios)
        verdict = "ok" if ratio <= TARGET else "MISS"
        print(
            f"bench build size: {sizes['now'] / sizes['before']:.2f}x of before "
            f"({sizes['now'] / 2**20:.1f} MB vs {sizes['before'] / 2**20:.1f} MB)"
        )
        print(
            f"bench build time: {ratio:.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}] "
            f"(target <= {TARGET:.2f}) {verdict}"
        )
        return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
