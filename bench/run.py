"""Greenlight's benchmarks, each a ratio measured side by side in this one run.

    make bench        (or: .venv/bin/python bench/run.py)

1. verdict latency: 200 independent checks against a server taking 50 ms per request,
   against a sequential pytest + requests file and against ceil(200 / C) x 50 ms;
2. overhead per check: 2,000 sequential checks against a server that answers at once,
   against a bare requests.Session loop;
3. cold start: importing a handler module in a fresh process, against ``import boto3``;
4. peak memory of the 200-check run (a fresh process, boto3 clients built as in Lambda);
5. worker start: a supervisor starting a suite worker that finds, lists and runs no suite,
   until the worker has exited (the cost every invocation pays for its isolation), against
   ``import boto3`` in a fresh process.

The last lines read ``bench <name>: <measured> (target <target>) ok|MISS``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHECKS = 200
DELAY = 0.05
OVERHEAD_CHECKS = 2000
CONCURRENCY = 16  # Greenlight's default bound


@contextmanager
def server(delay: float) -> Iterator[str]:
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "server.py"), "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def suite_dir(root: Path, count: int, sequential: bool) -> Path:
    lines = [f"name: bench\nsequential: {str(sequential).lower()}\nchecks:"]
    lines += [
        f"  - {{name: c{i}, request: {{path: /r{i}}}, assert: [{{status: 200}}]}}"
        for i in range(count)
    ]
    folder = root / ("sequential" if sequential else "concurrent")
    folder.mkdir()
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")
    return folder


# The hook path, in a fresh process: plan, load, run, verdict (the report is a no-op).
HOOK_RUN = textwrap.dedent("""
    import json, resource, sys, time
    started = time.perf_counter()
    import boto3
    boto3.client("codedeploy", region_name="us-east-1")  # as the Lambda runtime would
    boto3.client("elbv2", region_name="us-east-1")
    from hooks.hook import Runtime, handle
    from hooks.lifecycle import LifecycleEvent
    from hooks.protocol import ReportOutcome, ReportState

    class Null:
        def report(self, invocation, status, budget):
            return ReportOutcome(ReportState.REPORTED, 1)

    class Context:
        def get_remaining_time_in_millis(self):
            return 900_000

    class Capture:
        def publish(self, summary):
            self.summary = summary

    capture = Capture()

    env = {"GREENLIGHT_TARGET_URL": sys.argv[1], "GREENLIGHT_SUITES_DIR": sys.argv[2],
           "GREENLIGHT_CONCURRENCY": sys.argv[3]}
    event = {"DeploymentId": "d-BENCH", "LifecycleEventHookExecutionId": "bench"}
    t0 = time.perf_counter()
    result = handle(event, Context(), LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
                    Runtime(protocol=Null(), env=env, reporters=[capture]))
    elapsed = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"elapsed": elapsed, "run": capture.summary.run.duration,
                      "verdict": result["verdict"], "checks": result["checks"],
                      "peak_mb": peak_mb}))
""")


def hook_run(url: str, suites: Path, concurrency: int) -> dict[str, float]:
    env = dict(os.environ, POWERTOOLS_LOG_LEVEL="WARNING")
    done = subprocess.run(
        [PYTHON, "-c", HOOK_RUN, url, str(suites), str(concurrency)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    data: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["verdict"] == "Succeeded", data
    return data


def sequential_pytest(url: str, root: Path) -> float:
    test_file = root / "test_sequential.py"
    test_file.write_text(
        textwrap.dedent(f"""
        import pytest, requests
        SESSION = requests.Session()

        @pytest.mark.parametrize("i", range({CHECKS}))
        def test_check(i):
            assert SESSION.get("{url}/r%d" % i, timeout=10).status_code == 200
    """)
    )
    started = time.perf_counter()
    subprocess.run(
        [
            PYTHON,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:greenlight",
            str(test_file),
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


BARE_LOOP = textwrap.dedent("""
    import sys, time, requests
    url, count = sys.argv[1], int(sys.argv[2])
    session = requests.Session()
    session.get(url + "/warm", timeout=10)
    t0 = time.perf_counter()
    for i in range(count):
        assert session.get(f"{url}/r{i}", timeout=10).status_code == 200
    print(time.perf_counter() - t0)
""")


def bare_loop(url: str, count: int) -> float:
    done = subprocess.run(
        [PYTHON, "-c", BARE_LOOP, url, str(count)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def import_time(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return float(done.stdout.strip())


WORKER_START = textwrap.dedent("""
    import sys, tempfile, time
    from hooks.deadline import Deadline
    from hooks.supervisor import SupervisedRun, run_supervised
    setup = {"suites_dir": tempfile.mkdtemp(), "log_plain": True}
    job = {"event": "AfterAllowTestTraffic", "planned": [], "policies": {},
           "target": {"url": "http://127.0.0.1:9"},
           "deployment": {"deployment_id": "d-BENCH", "execution_id": "bench"},
           "concurrency": 16, "request_timeout": 10, "secrets": []}
    t0 = time.perf_counter()
    results, _ = run_supervised(SupervisedRun(setup, 512), job, Deadline.in_seconds(60))
    print(time.perf_counter() - t0)
""")


def worker_start() -> float:
    done = subprocess.run(
        [PYTHON, "-c", WORKER_START], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    """min-max of a series, in milliseconds."""
    return f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms"


def line(name: str, measured: str, target: str, ok: bool) -> str:
    return f"bench {name}: {measured} (target {target}) {'ok' if ok else 'MISS'}"


def main() -> int:
    results: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        concurrent_dir = suite_dir(root, CHECKS, sequential=False)
        sequential_dir = suite_dir(root, OVERHEAD_CHECKS, sequential=True)

        with server(DELAY) as url:
            hook_run(url, concurrent_dir, CONCURRENCY)  # warm the OS and the server
            runs = [hook_run(url, concurrent_dir, CONCURRENCY) for _ in range(3)]
            greenlight = statistics.median(r["elapsed"] for r in runs)
            peak = max(r["peak_mb"] for r in runs)
            baseline = sequential_pytest(url, root)
        limit = math.ceil(CHECKS / CONCURRENCY) * DELAY
        print(
            f"verdict latency: greenlight {greenlight:.3f}s, sequential pytest {baseline:.3f}s,"
            f" limit ceil({CHECKS}/{CONCURRENCY}) x {DELAY * 1000:.0f} ms = {limit:.3f}s"
        )
        results.append(
            line(
                "verdict-latency-vs-limit",
                f"{greenlight / limit:.2f}x",
                "<= 1.5x",
                greenlight / limit <= 1.5,
            )
        )
        results.append(
            line(
                "verdict-latency-speedup-vs-sequential-pytest",
                f"{baseline / greenlight:.1f}x",
                ">= 8x",
                baseline / greenlight >= 8,
            )
        )

        with server(0.0) as url:
            bare_loop(url, 200)
            runs, bare_runs = [], []
            for _ in range(5):  # interleaved, so both see the same machine
                runs.append(hook_run(url, sequential_dir, 1))
                bare_runs.append(bare_loop(url, OVERHEAD_CHECKS))
        # Per check: the runner's time for the 2,000 checks (the bare loop, too, starts
        # with requests imported and a warm connection). The hook's one-time work (plan,
        # loading and validating the suite, first imports) is printed beside it.
        g = statistics.median(r["run"] for r in runs)
        whole = statistics.median(r["elapsed"] for r in runs)
        b = statistics.median(bare_runs)
        print(
            f"overhead: greenlight runner {g:.3f}s, bare requests loop {b:.3f}s for "
            f"{OVERHEAD_CHECKS} checks ({(g - b) / OVERHEAD_CHECKS * 1e6:.0f} us per check); "
            f"whole hook {whole:.3f}s ({whole / b:.2f}x, including {whole - g:.3f}s of "
            f"one-time plan, suite loading and imports)"
        )
        results.append(line("overhead-per-check", f"{g / b:.2f}x", "<= 1.3x", g / b <= 1.3))

        handler, floor = [], []
        for _ in range(7):  # interleaved, median of each
            handler.append(import_time("import hooks.handlers"))
            floor.append(import_time("import boto3"))
        h, f = statistics.median(handler), statistics.median(floor)
        print(
            f"cold start: import hooks.handlers {h * 1000:.0f} ms, import boto3 {f * 1000:.0f} ms"
        )
        results.append(line("cold-start-import", f"{h / f:.2f}x", "<= 1.5x", h / f <= 1.5))

        workers, floor = [], []
        for _ in range(7):  # interleaved, median of each
            workers.append(worker_start())
            floor.append(import_time("import boto3"))
        w, f = statistics.median(workers), statistics.median(floor)
        print(
            f"worker start: {w * 1000:.0f} ms median ({spread(workers)}) from spawn to exit; "
            f"import boto3 {f * 1000:.0f} ms ({spread(floor)})"
        )
        results.append(line("worker-start-vs-import-boto3", f"{w / f:.2f}x", "<= 2x", w / f <= 2))
        results.append(line("peak-memory-200-checks", f"{peak:.0f} MB", "< 128 MB", peak < 128))
    print()
    for result in results:
        print(result)
    return 0 if all(r.endswith(" ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
