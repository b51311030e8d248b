"""Greenlight's benchmarks: the product as users run it, against the best practical baseline.

    make bench        (or: .venv/bin/python bench/run.py)

Every Greenlight figure is the handler ``template.yaml`` names, **cold**, in a fresh
process, with its real ``runtime()`` (boto3 clients, the report sent over the wire to a
loopback CodeDeploy), ``POWERTOOLS_LOG_LEVEL`` as deployed, the suite workers in the path,
run from an artifact built by the same ``make lambda-artifact`` recipe ``sam build`` runs
(for this machine's platform and Python, bytecode and compiled schemas included) with
boto3 beside it as the Lambda runtime provides it, and Lambda's ``AWS_LAMBDA_FUNCTION_NAME``
set (so the spare worker starts as the module loads, as it does in Lambda). Its time runs
from the first line of the process (before ``import hooks.adapters.handlers``) to the handler's
return. Every timed process, Greenlight's and the baselines', runs this Python with ``-S``
(no virtual environment's site-packages or ``.pth`` hooks, which Lambda does not have)
and imports from the artifact.

The reference is measured in the same run, interleaved round by round (ROUNDS rounds;
median and min-max spread printed): the latency bound ``ceil(N/C) x delay`` and a plain
``ThreadPoolExecutor(C)`` + ``requests.Session`` script making the same requests, cold
too (its time runs from before ``import requests``); the limit is the larger of the two.
The verdict latency is also gated against the bound alone (1.3x), which has no start-up.

The last lines read ``bench <name>: <measured> (target <target>) ok|MISS``; a MISS makes
the exit status 1.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


@contextmanager
def server(delay: float, jitter: float = 0.0) -> Iterator[str]:
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "server.py"), "--delay", str(delay), "--jitter", str(jitter)],
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


@contextmanager
def cpu_seconds() -> Iterator[list[float]]:
    """CPU time (user and system) of the child processes waited for inside the block, and
    of theirs: a cold process and every worker it started."""
    import resource

    found = [0.0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield found
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def wanted(section: str) -> bool:
    """``BENCH_ONLY=load,cpu`` runs those sections only (every section by default)."""
    only = os.environ.get("BENCH_ONLY")
    return not only or section in only.split(",")


def first_request(url: str) -> float | None:
    with urllib.request.urlopen(f"{url}/__first", timeout=10) as response:
        value: float | None = json.loads(response.read())["first"]
        return value


# ---- the artifact: what sam build makes, for this machine ----

#: Every timed process: this Python without ``site`` (no virtual environment's packages or
#: ``.pth`` hooks, which a Lambda runtime does not have), importing from the artifact and
#: the runtime's boto3 only. The baselines run the same way, with the artifact's requests.
CLEAN_PYTHON = [PYTHON, "-S"]


def search_path(artifact: Path) -> str:
    return f"{artifact}:{artifact.parent / 'runtime'}"


def build_artifact(root: Path) -> Path:
    """``make lambda-artifact`` for this platform and Python, and boto3 as the runtime has it."""
    import platform

    import boto3

    artifact = root / "artifact"
    machine = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "lambda-artifact",
            f"ARTIFACTS_DIR={artifact}",
            f"LAMBDA_PLATFORM=manylinux2014_{machine}",
            f"LAMBDA_PYTHON_VERSION={version}",
            f"PYTHON={PYTHON}",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}"},
    )
    runtime = root / "runtime"
    runtime.mkdir()
    site = Path(boto3.__file__).parent.parent
    for name in ("boto3", "botocore", "s3transfer", "dateutil", "six.py", "jmespath"):
        if (site / name).exists() and not (artifact / name).exists():
            (runtime / name).symlink_to(site / name)
    return artifact


HANDLER = textwrap.dedent("""
    import time
    entry = time.monotonic()
    import importlib, json, resource, sys
    module, function = sys.argv[1].rsplit(".", 1)
    handler = getattr(importlib.import_module(module), function)

    class Context:
        memory_limit_in_mb = 512
        def get_remaining_time_in_millis(self):
            return int((entry + 600 - time.monotonic()) * 1000)

    if "--messages" in sys.argv:  # observe each check's message (the load figures)
        import hooks.gate.summary
        summary = hooks.gate.summary.RunSummary.to_dict
        def to_dict(self):
            found = summary(self)
            suites = self.run.suites if self.run is not None else ()
            found["messages"] = {c.name: c.message for s in suites for c in s.checks}
            return found
        hooks.gate.summary.RunSummary.to_dict = to_dict

    event = {"DeploymentId": "d-BENCH", "LifecycleEventHookExecutionId": "bench"}
    result = handler(event, Context())
    end = time.monotonic()
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print("BENCH " + json.dumps({
        "entry": entry, "elapsed": end - entry, "verdict": result["verdict"],
        "checks": result["checks"], "report": result["report"],
        "peak_mb": int(hwm.split()[1]) / 1024,
        "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "messages": result.get("messages"),
    }))
""")


class Hook:
    """The deployed handler, run cold from the artifact."""

    def __init__(self, artifact: Path) -> None:
        from hooks.cli.template import Template

        self.artifact = artifact
        template = Template(ROOT / "template.yaml")
        self.handler = template.function("AfterAllowTestTrafficHook").handler

    def run(
        self,
        url: str,
        suites: Path,
        concurrency: int,
        messages: bool = False,
        extra_path: str | None = None,
    ) -> dict[str, Any]:
        """One cold invocation; ``extra_path`` (after the artifact's) adds installed packages."""
        argv, env = self.command(url, suites, concurrency, messages, extra_path)
        with cpu_seconds() as cpu:
            done = subprocess.run(
                argv,
                cwd=self.artifact,
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
        line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
        data: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
        data["cpu"] = cpu[0]
        assert data["verdict"] == "Succeeded", done.stdout[-2000:]
        assert data["report"] == "reported", data
        return data

    def command(
        self,
        url: str,
        suites: Path,
        concurrency: int,
        messages: bool = False,
        extra_path: str | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of one cold invocation."""
        path = search_path(self.artifact) + (f":{extra_path}" if extra_path else "")
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": path,
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(self.artifact),
            "AWS_LAMBDA_FUNCTION_NAME": "greenlight-bench-AfterAllowTestTraffic",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_CODEDEPLOY": url,
            "POWERTOOLS_SERVICE_NAME": "greenlight",
            "POWERTOOLS_LOG_LEVEL": "INFO",  # the template's default
            "GREENLIGHT_TARGET_URL": url,
            "GREENLIGHT_SUITES_DIR": str(suites),
            "GREENLIGHT_CONCURRENCY": str(concurrency),
            "GREENLIGHT_SAFETY_MARGIN": "10",
        }
        argv = [*CLEAN_PYTHON, "-c", HANDLER, self.handler, *(["--messages"] if messages else [])]
        return argv, env


THREAD_POOL = textwrap.dedent("""
    import time
    start = time.monotonic()
    import sys, requests
    from concurrent.futures import ThreadPoolExecutor
    from requests.adapters import HTTPAdapter
    url, count, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=workers, pool_maxsize=workers))
    def get(i):
        assert session.get(f"{url}/r{i}", timeout=30).status_code == 200
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, range(count)))
    print(time.monotonic() - start)
""")


def thread_pool(artifact: Path, url: str, count: int, workers: int) -> float:
    done = subprocess.run(
        [*CLEAN_PYTHON, "-c", THREAD_POOL, url, str(count), str(workers)],
        env={**os.environ, "PYTHONPATH": search_path(artifact)},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


LOAD_SUITE = """\
kind: load
name: accuracy
rate: {rate}
duration: {duration}
max_in_flight: 1000
timeout: 5
requests:
  - {{name: read, request: {{path: /load}}}}
thresholds:
  http_req_duration: "p(99) < 10000"
  http_req_failed: "rate < 0.01"
"""


def load_suite(root: Path, rate: int, duration: float) -> Path:
    folder = root / f"load-{rate}-{duration:g}s"
    folder.mkdir(exist_ok=True)
    (folder / "load.yaml").write_text(LOAD_SUITE.format(rate=rate, duration=duration))
    return folder


def load_accuracy(hook: Hook, url: str, suites: Path) -> dict[str, float]:
    """One load run by the real handler, and what the server itself recorded of it."""
    import re

    data = hook.run(url, suites, 16, messages=True)
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as response:
        server_seen = json.loads(response.read())
    summary = data["messages"]["arrival rate"]
    found = {
        name: re.search(pattern, summary)
        for name, pattern in (
            ("sent", r"([\d.]+)/s sent"),
            ("p50", r"p50 ([\d.]+) ms"),
            ("p99", r"p99 ([\d.]+) ms"),
            ("lag_p99", r"sender lag p99 ([\d.]+) ms"),
            ("count", r"^(\d+) of \d+ requests"),
        )
    }
    assert all(found.values()), summary
    figures = {name: float(match[1]) for name, match in found.items() if match}
    return {
        **figures,
        "cpu": float(data["cpu"]),
        "server_rate": float(server_seen["rate"]),
        "server_p50": float(server_seen["p50_ms"]),
        "server_p99": float(server_seen["p99_ms"]),
    }


def close_to_server(run: dict[str, float]) -> bool:
    """The generator's p50 and p99 within max(5 ms, 10 %) of the server's own."""
    return all(
        abs(run[key] - run[f"server_{key}"]) <= max(5.0, 0.1 * run[f"server_{key}"])
        for key in ("p50", "p99")
    )


AUTOCANNON = ROOT / ".tools" / "autocannon" / "node_modules" / ".bin" / "autocannon"


def autocannon_command(url: str, rate: int, duration: int) -> list[str]:
    """autocannon at a fixed overall rate (``-R``) on 100 connections."""
    return [str(AUTOCANNON), "-R", str(rate), "-d", str(duration), "-c", "100", f"{url}/load"]


def tree_cpu(root: int) -> float:
    """On-CPU seconds (user and system) of a process and its descendants so far, every
    thread of each (``/proc/<pid>/task/<tid>/schedstat``, in nanoseconds)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(task.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def served(url: str) -> int:
    """Requests to ``/load`` the server has answered since its last ``/__stats``."""
    with urllib.request.urlopen(f"{url}/__count", timeout=10) as response:
        return int(json.loads(response.read())["count"])


def steady_cpu(
    argv: list[str],
    url: str,
    settle: float,
    window: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, float]:
    """CPU per request of a load in its steady state: ``argv`` runs its load against the
    server at ``url``; ``settle`` seconds after the server saw its first request, the CPU of
    its whole process tree and the server's count are read, and again ``window`` seconds
    later. Start-up (imports, workers, node's) stays out of the figure, which is why a
    cold start's variance does not swamp it; the whole run's CPU per request, start-up
    included, comes beside it."""
    urllib.request.urlopen(f"{url}/__stats", timeout=10).read()  # count from zero
    with cpu_seconds() as whole:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            began = time.monotonic()
            while not served(url):
                assert process.poll() is None, "the load ended before its first request"
                assert time.monotonic() - began < 120, "no request within 120 s"
                time.sleep(0.02)
            time.sleep(settle)
            cpu0, count0 = tree_cpu(process.pid), served(url)
            time.sleep(window)
            cpu1, count1 = tree_cpu(process.pid), served(url)
            assert process.wait(timeout=300) == 0, argv
        finally:
            if process.poll() is None:
                process.kill()
    total = served(url)
    return {"per_request": (cpu1 - cpu0) / (count1 - count0), "whole": whole[0] / total}


def yaml_suite(root: Path, count: int) -> Path:
    """A suite of ``count`` independent checks (made once per count)."""
    folder = root / f"yaml-{count}"
    if folder.exists():
        return folder
    folder.mkdir()
    lines = ["name: bench\nchecks:"] + [
        f"  - {{name: c{i}, request: {{path: /r{i}}}, assert: [{{status: 200}}]}}"
        for i in range(count)
    ]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")
    (folder / "greenlight.yaml").write_text("version: 1\ndefaults:\n  suites: {default: [bench]}\n")
    return folder


def pytest_suites(root: Path, files: int, tests: int) -> Path:
    folder = root / f"pytest-{files}x{tests}"
    folder.mkdir()
    names = []
    for f in range(files):
        name = f"test_b{f:02d}.py"
        names.append(name.removesuffix(".py").removeprefix("test_"))
        (folder / name).write_text(
            textwrap.dedent(f"""
            import pytest

            @pytest.mark.parametrize("i", range({tests}))
            def test_check(http, base_url, i):
                assert http.get(f"{{base_url}}/p{f}-{{i}}").status_code == 200
            """)
        )
    (folder / "greenlight.yaml").write_text(
        f"version: 1\ndefaults:\n  suites: {{default: [{', '.join(names)}]}}\n"
    )
    return folder


def import_time(artifact: Path, statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run(
        [*CLEAN_PYTHON, "-c", code],
        env={**os.environ, "PYTHONPATH": search_path(artifact)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def interleave(*runs: Callable[[], float]) -> list[list[float]]:
    """Each callable ROUNDS times, round by round, so all see the same machine."""
    series: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for values, run in zip(series, runs, strict=True):
            values.append(run())
    return series


def show(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    m = statistics.median(values) * scale
    return f"{m:.3f}{unit} ({min(values) * scale:.3f}-{max(values) * scale:.3f})"


RESULTS: list[str] = []


def figure(
    name: str,
    measured: float,
    target: float,
    spread: tuple[float, float],
    unit: str = "x",
    at_least: bool = False,
) -> None:
    """A gated figure: ``measured`` (a median) must be at most ``target`` (or, ``at_least``,
    at least); ``spread`` is the lowest and highest of the same figure round by round."""
    held = measured >= target if at_least else measured <= target
    RESULTS.append(
        f"bench {name}: {measured:.2f}{unit} [{spread[0]:.2f}-{spread[1]:.2f}] "
        f"(target {'>=' if at_least else '<='} {target:g}{unit}) {'ok' if held else 'MISS'}"
    )


def paired(a: list[float], b: list[float], scale: float = 1.0) -> tuple[float, float]:
    """The lowest and highest ratio of ``a`` to ``b`` over the rounds (measured side by side)."""
    ratios = [x / y * scale for x, y in zip(a, b, strict=True)]
    return min(ratios), max(ratios)


SEQUENTIAL_PYTEST = textwrap.dedent("""
    import time
    start = time.monotonic()
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "no:greenlight", sys.argv[1]], check=True, capture_output=True)
    print(time.monotonic() - start)
""")


def sequential_pytest(url: str, root: Path, count: int) -> float:
    """The peer most teams start from: one pytest file, requests, one check at a time."""
    test_file = root / "test_sequential.py"
    test_file.write_text(
        textwrap.dedent(f"""
        import pytest, requests
        SESSION = requests.Session()

        @pytest.mark.parametrize("i", range({count}))
        def test_check(i):
            assert SESSION.get("{url}/r%d" % i, timeout=10).status_code == 200
        """)
    )
    done = subprocess.run(
        [PYTHON, "-c", SEQUENTIAL_PYTEST, str(test_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


#: Tavern, in an environment of its own (``make bench`` makes it): a peer, printed only.
TAVERN_PYTHON = ROOT / ".tools" / "tavern" / "bin" / "python"


def tavern(url: str, root: Path, count: int) -> float | None:
    """The same requests as one Tavern test of ``count`` stages (Tavern runs them in order)."""
    if not TAVERN_PYTHON.exists():
        return None
    stages = "".join(
        f"  - name: c{i}\n    request: {{url: '{url}/r{i}', method: GET}}\n"
        f"    response: {{status_code: 200}}\n"
        for i in range(count)
    )
    folder = root / "tavern"
    folder.mkdir(exist_ok=True)
    (folder / "test_bench.tavern.yaml").write_text(f"test_name: bench\nstages:\n{stages}")
    done = subprocess.run(
        [str(TAVERN_PYTHON), "-c", SEQUENTIAL_PYTEST, str(folder / "test_bench.tavern.yaml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    if done.returncode != 0:
        print(f"  (tavern failed: {(done.stderr or done.stdout).strip()[-300:]})")
        return None
    return float(done.stdout.strip())


WORKER_START = textwrap.dedent("""
    import sys, tempfile, time
    from hooks.core.deadline import Deadline
    from hooks.core.lifecycle import LifecycleEvent
    from hooks.core.target import Target
    from hooks.process.messages import Job, Setup
    from hooks.process.supervisor import SupervisedRun, run_supervised
    from hooks.suites.base import DeploymentInfo
    setup = Setup(tempfile.mkdtemp(), log_plain=True)
    job = Job(DeploymentInfo("d-BENCH", "bench", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC),
              Target("http://127.0.0.1:9"), planned=(), concurrency=16, request_timeout=10)
    t0 = time.perf_counter()
    results, _ = run_supervised(SupervisedRun(setup, 512), job, Deadline.in_seconds(60))
    print(time.perf_counter() - t0)
""")


def worker_start(artifact: Path) -> float:
    """A supervisor starting a worker that lists and runs nothing, until it has exited."""
    env = {**os.environ, "PYTHONPATH": search_path(artifact)}
    done = subprocess.run(
        [*CLEAN_PYTHON, "-c", WORKER_START],
        capture_output=True,
        text=True,
        cwd=artifact,
        env=env,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        version = sys.version.split()[0]
        print(f"building the artifact (make lambda-artifact, Python {version})...", flush=True)
        hook = Hook(build_artifact(root))
        c = 16  # the default concurrency, for every section that does not set its own

        # 1. Verdict latency: 200 checks x 50 ms at the default concurrency, cold.
        if wanted("latency"):
            n, c, delay = 200, 16, 0.05
            suites = yaml_suite(root, n)
            with server(delay) as url:
                hook.run(url, suites, c)  # warm the OS caches and the server
                g, t = interleave(
                    lambda: hook.run(url, suites, c)["elapsed"],
                    lambda: thread_pool(hook.artifact, url, n, c),
                )
                peer = sequential_pytest(url, root, n)
                tavern_time = tavern(url, root, n)
            bound = math.ceil(n / c) * delay
            limit = max(bound, statistics.median(t))
            ratio = statistics.median(g) / limit
            print(
                f"verdict latency, {n} checks x {delay * 1000:.0f} ms, C={c}: greenlight "
                f"{show(g)}, thread pool {show(t)}, bound {bound:.3f}s; limit {limit:.3f}s"
            )
            print(
                f"  peer (printed, not gated): sequential pytest + requests {peer:.3f}s, "
                f"{peer / statistics.median(g):.1f}x Greenlight's time"
            )
            if tavern_time is None:
                print("  peer (printed, not gated): Tavern did not run (make bench installs it)")
            else:
                print(
                    f"  peer (printed, not gated): Tavern {tavern_time:.3f}s, "
                    f"{tavern_time / statistics.median(g):.1f}x Greenlight's time"
                )
            figure(
                "verdict-latency-vs-practical-limit",
                ratio,
                1.25,
                paired(g, [max(bound, x) for x in t]),
            )
            # The bound alone (no start-up at all): what a compiled tool approaches.
            figure(
                "verdict-latency-vs-bound",
                statistics.median(g) / bound,
                1.3,
                (min(g) / bound, max(g) / bound),
            )

        # 2. Overhead on the default (concurrent) path: 2,000 instant checks.
        if wanted("overhead"):
            n = 2000
            suites = yaml_suite(root, n)
            with server(0.0) as url:
                g, t = interleave(
                    lambda: hook.run(url, suites, c)["elapsed"],
                    lambda: thread_pool(hook.artifact, url, n, c),
                )
            ratio = statistics.median(g) / statistics.median(t)
            print(
                f"overhead, {n} instant checks, C={c}: greenlight {show(g)}, thread pool {show(t)} "
                f"({(statistics.median(g) - statistics.median(t)) / n * 1e6:.0f} us per check)"
            )
            figure("overhead-2000-instant-vs-thread-pool", ratio, 1.15, paired(g, t))

        # 3. Scale: 2,000 and 10,000 checks x 10 ms at C = 16 and 64.
        if wanted("scale"):
            peaks: list[float] = []
            for c in (16, 64):
                per: dict[int, float] = {}
                pool: dict[int, float] = {}
                rounds: dict[int, tuple[list[float], list[float]]] = {}
                with server(0.01) as url:
                    for n in (2000, 10000):
                        suites = yaml_suite(root, n)
                        runs: list[dict[str, Any]] = []

                        def one(
                            suites: Path = suites, runs: list[dict[str, Any]] = runs, c: int = c
                        ) -> float:
                            runs.append(hook.run(url, suites, c))
                            return float(runs[-1]["elapsed"])

                        g, t = interleave(
                            one, lambda n=n, c=c: thread_pool(hook.artifact, url, n, c)
                        )
                        per[n] = statistics.median(g) / n
                        pool[n] = statistics.median(t) / n
                        rounds[n] = (g, t)
                        if n == 10000:
                            peaks += [r["peak_mb"] + r["workers_peak_mb"] for r in runs]
                        print(
                            f"scale, {n} checks x 10 ms, C={c}: greenlight {show(g)} "
                            f"({per[n] * 1e6:.0f} us/check), thread pool {show(t)} "
                            f"({pool[n] * 1e6:.0f} us/check)"
                        )
                linear = per[10000] / per[2000]
                figure(
                    f"per-check-10000-vs-2000-C{c}",
                    linear,
                    1.1,
                    paired(rounds[10000][0], rounds[2000][0], 2000 / 10000),
                )
                versus = per[10000] / pool[10000]
                figure(f"per-check-10000-vs-thread-pool-C{c}", versus, 1.15, paired(*rounds[10000]))
            # The handler's process and its largest worker, summed: the function's peak.
            figure("peak-memory-10000-checks", max(peaks), 128, (min(peaks), max(peaks)), " MB")

        # 4. pytest suites: 20 files x 10 tests x 50 ms, against the same checks in YAML.
        if wanted("pytest"):
            c = 16
            py_suites = pytest_suites(root, 20, 10)
            yaml_same = yaml_suite(root, 200)
            with server(0.05) as url:
                p, y = interleave(
                    lambda: hook.run(url, py_suites, c)["elapsed"],
                    lambda: hook.run(url, yaml_same, c)["elapsed"],
                )
            ratio = statistics.median(p) / statistics.median(y)
            print(
                f"pytest suites, 20 files x 10 tests x 50 ms: {show(p)}; the same in YAML {show(y)}"
            )
            figure("pytest-20x10-vs-yaml", ratio, 3, paired(p, y))

        # 5. Cold start: handler entry to the first request on the wire, against import boto3.
        if wanted("cold"):
            suites = yaml_suite(root, 1)
            with server(0.0) as url:
                first_request(url)

                def cold() -> float:
                    data = hook.run(url, suites, c)
                    first = first_request(url)
                    assert first is not None
                    return float(first - data["entry"])

                h, f = interleave(cold, lambda: import_time(hook.artifact, "import boto3"))
            ratio = statistics.median(h) / statistics.median(f)
            print(
                f"cold start: handler entry to first request {show(h, ' ms', 1000)}, "
                f"import boto3 {show(f, ' ms', 1000)}"
            )
            figure("cold-start-first-request-vs-import-boto3", ratio, 1.5, paired(h, f))

        # 6. The worker's start: the price of isolation each invocation pays.
        if wanted("worker"):
            w, f = interleave(
                lambda: worker_start(hook.artifact),
                lambda: import_time(hook.artifact, "import boto3"),
            )
            ratio = statistics.median(w) / statistics.median(f)
            print(
                f"worker start (spawn to exit, nothing to run): {show(w, ' ms', 1000)}, "
                f"import boto3 {show(f, ' ms', 1000)}"
            )
            figure("worker-start-vs-import-boto3", ratio, 2, paired(w, f))

        # 7. The load generator against the server's own record, up a ladder of rates: the
        # real handler sends a constant arrival rate for 10 s to a server whose answers take
        # 10 ms plus an exponential extra (mean 10 ms); the server records when each request
        # arrived and how long it held it. Rates are interleaved round by round. A round
        # holds its rate when the achieved rate is within 2 % of the target (as the generator
        # and as the server count it) and the generator's p50 and p99 are within
        # max(5 ms, 10 %) of the server's own. Gated: the highest rate held (the median
        # round's), and the sender's lag p99 at that rate.
        if wanted("load"):
            rates = (1000, 2000, 4000, 6000, 8000)
            with server(0.01, jitter=0.01) as url:
                folders = [load_suite(root, rate, 10) for rate in rates]
                hook.run(url, folders[0], 16)  # warm the OS caches and the server
                urllib.request.urlopen(f"{url}/__stats", timeout=10).read()
                series = interleave(
                    *[lambda f=f: load_accuracy(hook, url, f) for f in folders]  # type: ignore[misc]
                )

            def holds(rate: int, run: dict[str, float]) -> bool:
                rate_ok = all(abs(run[k] - rate) / rate <= 0.02 for k in ("sent", "server_rate"))
                return rate_ok and close_to_server(run)

            for rate, runs in zip(rates, series, strict=True):
                held = sum(holds(rate, r) for r in runs)
                print(
                    f"load {rate}/s for 10 s: sent {show([r['sent'] for r in runs], '/s')}, "
                    f"server saw {show([r['server_rate'] for r in runs], '/s')}; "
                    f"p50 {show([r['p50'] for r in runs], ' ms')} (server's "
                    f"{show([r['server_p50'] for r in runs], ' ms')}); "
                    f"p99 {show([r['p99'] for r in runs], ' ms')} (server's "
                    f"{show([r['server_p99'] for r in runs], ' ms')}); "
                    f"sender lag p99 {show([r['lag_p99'] for r in runs], ' ms')}; "
                    f"held in {held} of {len(runs)} rounds"
                )
            highest = [
                max(
                    (
                        rate
                        for rate, runs in zip(rates, series, strict=True)
                        if holds(rate, runs[i])
                    ),
                    default=0,
                )
                for i in range(ROUNDS)
            ]
            top = statistics.median(highest)
            figure(
                "load-highest-rate-held-2-cpus",
                top,
                2000,
                (min(highest), max(highest)),
                " rps",
                at_least=True,
            )
            at_top = max((r for r in rates if r <= top), default=rates[0])
            lags = [r["lag_p99"] for r in series[rates.index(at_top)]]
            figure(
                f"load-sender-lag-p99-at-{at_top}rps",
                statistics.median(lags),
                10,
                (min(lags), max(lags)),
                " ms",
            )

        # 9. CPU per request against autocannon (installed by make bench in .tools/autocannon)
        # at the same fixed rate for 10 s, each cold, interleaved round by round: the
        # handler's process tree (it and every worker it started) against autocannon's node
        # process, each read over the same 5 s of steady load (steady_cpu); beside them, the
        # floor of a Python open-model sender (bench/floor.py). Gated at 1000/s; at 4000/s,
        # where a wake-up serves several requests, printed.
        if wanted("cpu") and AUTOCANNON.exists():
            duration, settle, window = 10, 2.5, 5.0
            with server(0.01, jitter=0.01) as url:
                steady_cpu(autocannon_command(url, 1000, 2), url, 0.5, 1.0)  # warm up
                for rate in (1000, 4000):
                    argv, env = hook.command(url, load_suite(root, rate, duration), 16)
                    theirs = autocannon_command(url, rate, duration)
                    floor = [PYTHON, str(ROOT / "bench" / "floor.py"), url, str(rate), "10"]
                    gl, ac, fl = interleave(  # type: ignore[misc]
                        lambda a=argv, e=env: steady_cpu(a, url, settle, window, e, hook.artifact),
                        lambda t=theirs: steady_cpu(t, url, settle, window),
                        lambda f=floor: steady_cpu(f, url, settle, window),
                    )
                    g, a = [r["per_request"] for r in gl], [r["per_request"] for r in ac]
                    print(
                        f"CPU per request at {rate}/s over {window:g} s of steady load, cold: "
                        f"greenlight {show(g, ' us', 1e6)}, autocannon {show(a, ' us', 1e6)}, "
                        f"the Python floor {show([r['per_request'] for r in fl], ' us', 1e6)}; "
                        f"whole {duration} s run, start-up included: greenlight "
                        f"{show([r['whole'] for r in gl], ' us', 1e6)}, autocannon "
                        f"{show([r['whole'] for r in ac], ' us', 1e6)}"
                    )
                    if rate == 1000:
                        figure(
                            "load-cpu-per-request-vs-autocannon",
                            statistics.median(g) / statistics.median(a),
                            1.5,
                            paired(g, a),
                        )
        elif wanted("cpu"):
            print("CPU per request: autocannon is not installed (make bench installs it)")

        # 8. pytest suites beside the openapi extra: Schemathesis and Hypothesis install
        # pytest11 plugins. A one-test pytest suite, cold, with this environment's packages
        # (the dev extra holds the openapi one) after the artifact's, against the artifact
        # alone; interleaved. No worker autoloads a plugin, so the two should cost the same.
        if wanted("plugins"):
            extra = sysconfig.get_paths()["purelib"]
            found = subprocess.run(
                [*CLEAN_PYTHON, "-c", "import schemathesis, hypothesis"],
                env={**os.environ, "PYTHONPATH": f"{search_path(hook.artifact)}:{extra}"},
                check=False,
            )
            assert found.returncode == 0, f"the openapi extra is not installed in {extra}"
            one = pytest_suites(root, 1, 1)
            with server(0.0) as url:
                hook.run(url, one, c, extra_path=extra)  # warm the OS caches
                w, wo = interleave(
                    lambda: hook.run(url, one, c, extra_path=extra)["elapsed"],
                    lambda: hook.run(url, one, c)["elapsed"],
                )
            ratio = statistics.median(w) / statistics.median(wo)
            print(
                f"one pytest test, cold: with the openapi extra installed {show(w)}, "
                f"without it {show(wo)}"
            )
            figure("pytest-suite-with-openapi-extra-vs-without", ratio, 1.2, paired(w, wo))

    print()
    for result in RESULTS:
        print(result)
    return 0 if all(r.endswith(" ok") for r in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
