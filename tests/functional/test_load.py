"""``load`` suites through ``greenlight run`` against real loopback services: one that keeps
up, one whose latency jumps mid-run, one that fails some requests; and files that are wrong."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_cli import greenlight
from tests.helpers import each, http_server, reply

#: Starts processes or measures time: CI runs these again under a CPU hog.
pytestmark = pytest.mark.timing

LOAD = """\
kind: load
name: shop-load
rate: {rate}
duration: {duration}
max_in_flight: 20
timeout: 2
requests:
  - {{name: browse, weight: 3, request: {{path: /catalog}}}}
  - {{name: order, request: {{method: POST, path: /orders, json: {{sku: cake}}}}, status: 201}}
thresholds:
{thresholds}
"""


def write(tmp_path: Path, text: str) -> Path:
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    (suites / "load.yaml").write_text(text)
    return suites


def shop(slow_after: float | None = None, fail_every: int = 0, delay: float = 0.002) -> Any:
    """A shop: GET /catalog 200, POST /orders 201; ``slow_after`` seconds after its first
    request every answer takes 300 ms; every ``fail_every``-th order answers 503."""
    first: list[float] = []
    orders = itertools.count(1)
    lock = threading.Lock()

    def handle(handler: Any) -> None:
        with lock:
            first.append(time.monotonic()) if not first else None
            since = time.monotonic() - first[0]
        if handler.command == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            handler.rfile.read(length)
        time.sleep(0.3 if slow_after is not None and since >= slow_after else delay)
        if handler.command == "POST":
            n = next(orders)
            if fail_every and n % fail_every == 0:
                reply(handler, 503, {"error": "out of cake"})
            else:
                reply(handler, 201, {"order": n})
        else:
            reply(handler, 200, {"items": []})

    return handle


def run(tmp_path: Path, suites: Path, handle: Any) -> dict[str, Any]:
    report = tmp_path / "report.json"
    with http_server(handle) as url:
        started = time.monotonic()
        args = ["run", "--url", url, "--suites-dir", str(suites), "--suite", "shop-load"]
        done = greenlight(*args, "--json", str(report))
        elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert report.exists(), output
    data: dict[str, Any] = json.loads(report.read_text())
    (suite,) = data["suites_detail"]
    return {
        "exit": done.returncode,
        "output": output,
        "elapsed": elapsed,
        "verdict": data["verdict"],
        "reason": data["reason"],
        "checks": {c["name"]: c for c in suite["checks"]},
    }


def test_a_service_that_keeps_up_passes_every_threshold(tmp_path: Path) -> None:
    thresholds = (
        '  http_req_duration: ["p(99) < 250", "avg < 100"]\n'
        '  "http_req_duration{request:order}": "p(50) < 250"\n'
        '  http_req_failed: "rate < 0.01"\n'
        '  http_reqs: "count >= 80"\n'
    )
    suites = write(tmp_path, LOAD.format(rate=40, duration="2s", thresholds=thresholds))
    result = run(tmp_path, suites, shop())
    checks = result["checks"]
    assert result["exit"] == 0, result["output"]
    assert list(checks) == [
        "arrival rate",
        "http_req_duration p(99) < 250",
        "http_req_duration avg < 100",
        "http_req_duration{request:order} p(50) < 250",
        "http_req_failed rate < 0.01",
        "http_reqs count >= 80",
    ]
    assert all(c["status"] == "passed" for c in each(checks.values())), checks
    assert "80 of 80 requests" in checks["arrival rate"]["message"]
    assert checks["http_reqs count >= 80"]["message"].startswith("count = 80 ")


def test_latency_that_jumps_mid_run_stops_the_load_once_the_threshold_is_lost(
    tmp_path: Path,
) -> None:
    thresholds = '  http_req_duration: ["p(95) < 150"]\n  http_req_failed: "rate < 0.5"\n'
    suites = write(tmp_path, LOAD.format(rate=40, duration="20s", thresholds=thresholds))
    result = run(tmp_path, suites, shop(slow_after=1.0))
    checks = result["checks"]
    assert result["exit"] == 1
    assert result["elapsed"] < 12, "the run went on after the threshold was lost"
    lost = checks["http_req_duration p(95) < 150"]
    assert lost["status"] == "failed"
    # 800 planned: p(95) is lost once 41 answers took 150 ms or more
    assert "41 of the 800 planned responses had taken ≥ 150 ms" in lost["message"]
    assert lost["message"].startswith("lost after ")
    assert checks["http_req_failed rate < 0.5"]["status"] == "skipped"
    assert checks["arrival rate"]["status"] == "skipped"
    assert result["verdict"] == "Failed"
    assert "shop-load (1 suite, 3 checks: 0 passed, 1 failed, 2 skipped)" in result["reason"]


def test_failed_requests_fail_the_rate_with_an_example(tmp_path: Path) -> None:
    thresholds = '  "http_req_failed{request:order}": "rate < 0.05"\n'
    text = LOAD.format(rate=40, duration="2s", thresholds=thresholds) + "abort_on_fail: false\n"
    suites = write(tmp_path, text)
    result = run(tmp_path, suites, shop(fail_every=4))
    check = result["checks"]["http_req_failed{request:order} rate < 0.05"]
    assert result["exit"] == 1
    assert check["status"] == "failed"
    assert check["message"].startswith("rate = 0.25 (25.00%) over 20 responses"), check
    assert check["evidence"]["request"].startswith("POST http://127.0.0.1:")
    assert check["evidence"]["status"] == 503
    assert "out of cake" in check["evidence"]["body"]


def test_a_service_too_slow_for_the_rate_fails_the_arrival_rate(tmp_path: Path) -> None:
    thresholds = '  http_req_failed: "rate < 1"\n'
    text = LOAD.format(rate=50, duration="2s", thresholds=thresholds).replace(
        "max_in_flight: 20", "max_in_flight: 2"
    )
    suites = write(tmp_path, text)
    result = run(tmp_path, suites, shop(delay=0.1))
    check = result["checks"]["arrival rate"]
    assert result["exit"] == 1
    assert check["status"] == "failed"
    assert (
        "requests fell due while all 2 allowed were outstanding, and were dropped"
        in (check["message"])
    )
    assert "the service answered too slowly for this rate" in check["message"]


def test_a_load_longer_than_the_deadline_is_not_started(tmp_path: Path) -> None:
    suites = write(
        tmp_path, LOAD.format(rate=10, duration="10m", thresholds='  http_reqs: "count > 0"\n')
    )
    report = tmp_path / "report.json"
    with http_server(shop()) as url:
        args = ["run", "--url", url, "--suites-dir", str(suites), "--suite", "shop-load"]
        done = greenlight(*args, "--deadline", "30", "--json", str(report))
    data = json.loads(report.read_text())
    (suite,) = data["suites_detail"]
    assert done.returncode == 1
    assert {c["status"] for c in suite["checks"]} == {"timed_out"}
    assert "the load needs 602s" in suite["checks"][0]["message"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            LOAD.format(rate=10, duration="2s", thresholds='  http_req_duration: "p99 < 5"\n'),
            "load.yaml:11: at thresholds.http_req_duration: "
            "http_req_duration has no aggregation 'p99'",
        ),
        (
            LOAD.format(
                rate=10, duration="2s", thresholds='  "http_reqs{request:pay}": "count > 1"\n'
            ),
            "load.yaml:11: at thresholds.http_reqs{request:pay}: no request is named 'pay' "
            "(requests: browse, order)",
        ),
        (
            LOAD.format(rate=10, duration="soon", thresholds='  http_reqs: "count > 1"\n'),
            "load.yaml:4: at duration: expected a span of time such as 30s or 5m, got 'soon'",
        ),
        (
            LOAD.format(rate=0, duration="2s", thresholds='  http_reqs: "count > 1"\n'),
            "load.yaml:3: at rate:",
        ),
        ("kind: lode\nname: shop-load\n", "declares kind 'lode', which no installed plugin"),
    ],
)
def test_a_wrong_load_file_fails_the_gate_naming_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    suites = write(tmp_path, text)
    with http_server(shop()) as url:
        done = greenlight("run", "--url", url, "--suites-dir", str(suites), "--suite", "shop-load")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert message in output, output


def test_a_slow_service_at_a_high_rate_inside_a_worker_s_memory_limit(tmp_path: Path) -> None:
    """Little's law: 200/s x 200 ms is 40 requests outstanding: connections open as needed,
    inside the worker's memory limit (a 256 MB function), with max_in_flight at 1000."""
    thresholds = '  http_req_failed: "rate < 0.01"\n  http_req_duration: "p(50) < 400"\n'
    text = LOAD.format(rate=200, duration="2s", thresholds=thresholds).replace(
        "max_in_flight: 20", "max_in_flight: 1000"
    )
    suites = write(tmp_path, text)
    report = tmp_path / "report.json"
    with http_server(shop(delay=0.2)) as url:
        args = ["run", "--url", url, "--suites-dir", str(suites), "--suite", "shop-load"]
        done = greenlight(
            *args, "--json", str(report), env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
        )
    data = json.loads(report.read_text())
    (suite,) = data["suites_detail"]
    checks = {c["name"]: c for c in suite["checks"]}
    assert done.returncode == 0, done.stdout + done.stderr
    assert checks["arrival rate"]["status"] == "passed"
    assert "400 of 400 requests" in checks["arrival rate"]["message"]


def test_a_stall_meets_every_request_it_would_have_met(tmp_path: Path) -> None:
    """The open model against a service that stalls for a second: requests keep arriving
    on schedule through the stall (the server records each arrival), none is dropped, and
    the stall is in the latencies of the requests it held."""
    arrivals: list[float] = []
    lock = threading.Lock()
    stall = (0.5, 1.5)  # seconds after the first arrival

    def handle(handler: Any) -> None:
        now = time.monotonic()
        with lock:
            arrivals.append(now)
            since = now - arrivals[0]
        if stall[0] <= since < stall[1]:
            time.sleep(stall[1] - since)
        reply(handler, 200, {"items": []})

    thresholds = '  http_req_duration: "max < 500"\n  dropped_iterations: "count == 0"\n'
    text = LOAD.format(rate=100, duration="2s", thresholds=thresholds)
    text = text.replace("max_in_flight: 20\n", "").replace("timeout: 2", "timeout: 5")
    text = "\n".join(line for line in text.splitlines() if "name: order" not in line) + "\n"
    suites = write(tmp_path, text + "abort_on_fail: false\n")
    result = run(tmp_path, suites, handle)
    checks = result["checks"]
    assert len(arrivals) == 200
    during = [t - arrivals[0] for t in arrivals if stall[0] <= t - arrivals[0] < stall[1]]
    # a closed model would have sent nothing more until answers came back
    assert len(during) > 50, len(during)
    assert checks["dropped_iterations count == 0"]["status"] == "passed"
    latency = checks["http_req_duration max < 500"]
    assert latency["status"] == "failed"
    assert latency["message"].startswith("max = ")
    assert float(latency["message"].split()[2]) > 800  # the stall, in full, on its first


def test_a_load_over_https_names_the_service_and_verifies_it(tmp_path: Path) -> None:
    """Green behind an HTTPS test listener, reached at an address: the load sends the
    service's name as SNI and Host and verifies the certificate against it with the CA
    bundle given; without the bundle every request fails, saying why."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import trustme

    host = "shop.example.test"
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    names: list[str | None] = []
    hosts: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)

    def handle(handler: Any) -> None:
        hosts.append(handler.headers.get("Host"))
        reply(handler, 200, {"items": []})

    thresholds = '  http_req_failed: "rate < 0.01"\n'
    text = LOAD.format(rate=20, duration="1s", thresholds=thresholds)
    text = "\n".join(line for line in text.splitlines() if "name: order" not in line) + "\n"
    suites = write(tmp_path, text)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            handle(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    https = f"https://127.0.0.1:{server.server_address[1]}"
    args = ["run", "--url", https, "--suites-dir", str(suites), "--suite", "shop-load"]
    try:
        named = greenlight(
            *args, env={"GREENLIGHT_TARGET_HOST": host, "GREENLIGHT_CA_BUNDLE": str(bundle)}
        )
        unverified = greenlight(
            *args, "--json", str(tmp_path / "r.json"), env={"GREENLIGHT_TARGET_HOST": host}
        )
    finally:
        server.shutdown()
        server.server_close()
    assert named.returncode == 0, named.stdout + named.stderr
    assert set(names) == {host}
    assert set(hosts) == {host}
    assert unverified.returncode == 1
    report = json.loads((tmp_path / "r.json").read_text())
    (suite,) = report["suites_detail"]
    failed = {c["name"]: c for c in suite["checks"]}["http_req_failed rate < 0.01"]
    assert failed["status"] == "failed"
    assert failed["evidence"]["body"].startswith("TLS certificate verification failed")
