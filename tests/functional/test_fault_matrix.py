"""The fault matrix: whatever suites, plugins, targets, settings or the endpoint do, the
hook reports exactly once, with the right status, before its deadline.

Every case runs the handler the template names in a fresh process (``tests.wire``),
reporting to a recording CodeDeploy stand-in on loopback, against hostile loopback
servers. Each asserts: the recorded reports, the time left on the context when the
handler returned, the peak memory of the handler and of its workers, and, where secrets
are involved, that no output holds them. The README's guarantee table points here.
"""

from __future__ import annotations

import gzip
import json
import socket
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests import wire
from tests.helpers import closed_port_url, each, http_server, install_package, reply, silent_server
from tests.wire import FakeCodeDeploy, HookRun

#: The handler process (boto3, Powertools) and each worker stay far below the function's
#: 512 MB whatever a target sends or a suite allocates.
HANDLER_PEAK_MB = 200
WORKER_PEAK_MB = 400


def ok(handler: BaseHTTPRequestHandler) -> None:
    reply(handler, 200, {"status": "ok"})


def write_suites(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def run_hook(
    endpoint: str,
    target: str,
    suites: Path,
    *,
    seconds: float = 15,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> HookRun:
    settings = {
        "GREENLIGHT_TARGET_URL": target,
        "GREENLIGHT_SUITES_DIR": str(suites),
        "GREENLIGHT_SAFETY_MARGIN": "1",
        **(env or {}),
    }
    return wire.invoke(endpoint, settings, seconds=seconds, **kwargs)


def assert_reported(run: HookRun, fake: FakeCodeDeploy, *statuses: str) -> None:
    """One report per invocation, with these statuses, each before its context's deadline."""
    assert fake.statuses == list(statuses), run.output
    for invocation, status in zip(run.invocations, statuses, strict=True):
        assert invocation.result["verdict"] == status
        assert invocation.left_ms > 0, "the handler returned after the context's deadline"
        assert invocation.peak_mb < HANDLER_PEAK_MB
        assert invocation.workers_peak_mb < WORKER_PEAK_MB


def failures(run: HookRun) -> str:
    return "\n".join([run.result["reason"], *run.result["failed"]])


YAML_OK = """\
    name: smoke
    checks:
      - name: root answers
        request: {path: /}
"""


# ---- suites that do not finish their work ----


@pytest.mark.parametrize(
    ("name", "body", "cause"),
    [
        (
            "keyboard interrupt in a test",
            "def test_b():\n    raise KeyboardInterrupt\n",
            "INTERRUPTED",
        ),
        (
            "pytest.exit in a test",
            "def test_b():\n    pytest.exit('stop here', returncode=0)\n",
            "did not run",
        ),
        (
            "interrupt in a fixture teardown",
            "@pytest.fixture\ndef fx():\n    yield 1\n    raise KeyboardInterrupt\n\n"
            "def test_b(fx):\n    assert fx\n",
            "INTERRUPTED",
        ),
    ],
)
def test_an_interrupted_pytest_session_fails_naming_the_tests_it_never_ran(
    tmp_path: Path, name: str, body: str, cause: str
) -> None:
    suite = "import pytest\n\ndef test_a():\n    pass\n\n" + body + "\ndef test_c():\n    pass\n"
    suites = write_suites(tmp_path / "suites", {"test_interrupted.py": suite})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites)
    assert_reported(run, fake, "Failed")
    text = failures(run)
    assert "test_c" in text, text
    assert "did not run" in text
    assert cause in text


PARTIAL_PLUGIN = """
from hooks import Check, CheckResult, CheckSuite, Status, SuiteContext


class Quick(Check):
    def __init__(self, name):
        self.name = name

    def run(self, ctx):
        return CheckResult(self.name, Status.PASSED)


class Partial(CheckSuite):
    def run(self, ctx: SuiteContext) -> None:
        ctx.emit(self.checks[0].run(ctx))  # and returns: two checks never report


PARTIAL = Partial(
    name="partial", kind="custom", checks=[Quick("one"), Quick("two"), Quick("three")]
)
"""


def install_plugin(tmp_path: Path, module: str, source: str, entry_points: str) -> Path:
    return install_package(tmp_path / "site", module, source, entry_points)


def test_a_plugin_suite_that_returns_early_fails_naming_the_checks_it_skipped(
    tmp_path: Path,
) -> None:
    site = install_plugin(
        tmp_path,
        "gl_partial",
        PARTIAL_PLUGIN,
        "[greenlight.suites]\npartial = gl_partial:PARTIAL\n",
    )
    suites = write_suites(tmp_path / "suites", {})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites, pythonpath=site)
    assert_reported(run, fake, "Failed")
    text = failures(run)
    assert "partial / two: did not run" in text
    assert "partial / three: did not run" in text


# ---- suites that change what other suites see ----

PATCHING_SUITE = """\
import requests


class Fake:
    status_code = 200
    ok = True
    headers = {}
    text = "{}"


def test_patch_globally():
    requests.Session.request = lambda *args, **kwargs: Fake()


def test_patch_with_the_fixture(monkeypatch):
    monkeypatch.setattr(requests.Session, "send", lambda *args, **kwargs: Fake())
"""


def test_a_suite_that_patches_requests_cannot_change_what_other_suites_see(
    tmp_path: Path,
) -> None:
    suites = write_suites(
        tmp_path / "suites", {"test_patching.py": PATCHING_SUITE, "smoke.yaml": YAML_OK}
    )
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 503, {})) as target:
        run = run_hook(endpoint, target, suites, invocations=2)
    # Both invocations of the warm container: the declarative suite sees the real 503.
    assert_reported(run, fake, "Failed", "Failed")
    for invocation in run.invocations:
        assert any("smoke / root answers" in f and "503" in f for f in invocation.result["failed"])


FORGER = """\
import json, os, sys


def record(**fields):
    os.write(int(sys.argv[1]), (json.dumps({"v": 1, **fields}) + "\\n").encode())


def test_forges_another_suites_results():
    # The worker's record pipe is inherited: claim the declarative suite (id 0) passed.
    passed = {"name": "root answers", "status": "passed", "duration": 0.01, "message": "",
              "failures": [], "evidence": None, "location": None}
    record(type="check", suite=0, result=passed)
    record(type="finish", suite=0, error=None)
    record(type="suites", suites=[])
"""


def test_a_suite_cannot_forge_results_for_another_suite(tmp_path: Path) -> None:
    suites = write_suites(tmp_path / "suites", {"a_smoke.yaml": YAML_OK, "test_forger.py": FORGER})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 503, {})) as target:
        run = run_hook(endpoint, target, suites, env={"GREENLIGHT_SUITES": "smoke,forger"})
    assert_reported(run, fake, "Failed")
    text = failures(run)
    assert "smoke / root answers: status: expected to be < 400, got 503" in text
    assert "forger / (worker): its worker sent 3 bad records" in text
    # The forged 'passed' was not counted: the forger's own test is the only pass.
    assert run.result["counts"]["passed"] == 1


@pytest.mark.timing
def test_a_hung_pytest_test_does_not_block_the_next_invocation(tmp_path: Path) -> None:
    marker = tmp_path / "hung-once"
    suite = f"""\
        import time
        from pathlib import Path


        def test_hangs_the_first_time():
            marker = Path({str(marker)!r})
            if not marker.exists():
                marker.write_text("x")
                time.sleep(600)
        """
    suites = write_suites(tmp_path / "suites", {"test_hang.py": suite})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites, seconds=6, invocations=2)
    assert_reported(run, fake, "Failed", "Succeeded")
    (hung,) = run.invocations[0].result["failed"]
    assert "test_hangs_the_first_time" in hung
    assert "deadline reached while the suite was running" in hung


# ---- workers that die ----


@pytest.mark.parametrize(
    ("code", "how"),
    [
        ("os._exit(1)", "exited with code 1"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),
        ("ctypes.string_at(0)", "killed by SIGSEGV"),
    ],
)
def test_a_worker_that_dies_fails_naming_how_it_ended(tmp_path: Path, code: str, how: str) -> None:
    suite = (
        f"import ctypes, os, signal\n\ndef test_ok():\n    pass\n\ndef test_dies():\n    {code}\n"
    )
    suites = write_suites(tmp_path / "suites", {"test_dies.py": suite, "smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites)
    assert_reported(run, fake, "Failed")
    text = failures(run)
    assert "test_dies" in text, text
    assert how in text
    # The declarative suite in the other worker still ran and passed.
    assert run.result["counts"]["passed"] >= 1


def test_a_worker_that_dies_after_reporting_every_check_still_fails(tmp_path: Path) -> None:
    # Every test passes; the process then dies before the suite finishes (a signal from
    # another thread, a crash in a session teardown): nothing proves the suite completed.
    conftest = "import os\n\ndef pytest_sessionfinish():\n    os._exit(0)\n"
    suites = write_suites(
        tmp_path / "suites",
        {"test_quits.py": "def test_ok():\n    pass\n", "conftest.py": conftest},
    )
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites)
    assert_reported(run, fake, "Failed")
    assert "quits / (suite): did not finish: its worker process exited" in failures(run)


def test_a_plugin_that_kills_the_catalog_worker_at_import_fails_the_gate(tmp_path: Path) -> None:
    site = install_plugin(
        tmp_path,
        "gl_fatal",
        "import os\nos._exit(7)\n",
        "[greenlight.suites]\nfatal = gl_fatal:KIND\n",
    )
    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites, pythonpath=site)
    assert_reported(run, fake, "Failed")
    assert "exited with code 7 before it listed the suites" in failures(run)


def test_a_suite_that_allocates_without_bound_fails_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    suite = "def test_hog():\n    hog = bytearray(3 * 1024 ** 3)\n    assert hog\n"
    suites = write_suites(tmp_path / "suites", {"test_hog.py": suite})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites)
    assert_reported(run, fake, "Failed")  # includes the peak memory bounds
    assert "MemoryError" in failures(run)


# ---- configuration ----


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("GREENLIGHT_SUITES_DIR", "{tmp}/missing", "does not exist"),
        ("GREENLIGHT_SUITES_DIR", "{tmp}/suites/smoke.yaml", "is not a directory"),
        ("GREENLIGHT_CONCURRENCY", "nan", "GREENLIGHT_CONCURRENCY=nan"),
        ("GREENLIGHT_CONCURRENCY", "inf", "GREENLIGHT_CONCURRENCY=inf"),
        ("GREENLIGHT_REQUEST_TIMEOUT", "-3", "GREENLIGHT_REQUEST_TIMEOUT=-3"),
        ("GREENLIGHT_SAFETY_MARGIN", "nan", "GREENLIGHT_SAFETY_MARGIN=nan"),
        ("GREENLIGHT_MAX_BODY_BYTES", "1e30", "GREENLIGHT_MAX_BODY_BYTES"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        ("GREENLIGHT_SECRETS_MAX_AGE", "-1", "GREENLIGHT_SECRETS_MAX_AGE=-1"),
        ("GREENLIGHT_ECS_BUDGET", "forever", "GREENLIGHT_ECS_BUDGET='forever' is not a number"),
        ("GREENLIGHT_ECS_CALLBACK_DELAY", "0", "GREENLIGHT_ECS_CALLBACK_DELAY=0"),
        ("GREENLIGHT_NOTIFY_ON", "sometimes", "GREENLIGHT_NOTIFY_ON='SOMETIMES'"),
    ],
)
def test_a_bad_setting_fails_closed_naming_it(
    tmp_path: Path, setting: str, value: str, expected: str
) -> None:
    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        env = {setting: value.format(tmp=tmp_path)}
        run = run_hook(endpoint, target, suites, env=env)
    assert_reported(run, fake, "Failed")
    assert run.result["configuration_error"] is True
    assert expected in run.result["reason"]


def test_a_plugin_that_fails_to_import_fails_a_planned_gate(tmp_path: Path) -> None:
    site = install_plugin(
        tmp_path,
        "gl_broken",
        "raise ImportError('no module named gl_dependency')\n",
        "[greenlight.suites]\nbroken = gl_broken:KIND\n",
    )
    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        env = {"GREENLIGHT_SUITES": "smoke"}
        run = run_hook(endpoint, target, suites, env=env, pythonpath=site)
    assert_reported(run, fake, "Failed")
    assert "plugin 'broken' (gl_broken:KIND)" in failures(run)
    assert "no module named gl_dependency" in failures(run)


def test_a_planned_suite_whose_file_does_not_load_reports_that_files_error(
    tmp_path: Path,
) -> None:
    broken = "name: orders\nchecks:\n  - name: list\n    request: {path: /orders, methd: GET}\n"
    suites = write_suites(tmp_path / "suites", {"orders.yaml": broken, "smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites, env={"GREENLIGHT_SUITES": "orders"})
    assert_reported(run, fake, "Failed")
    text = failures(run)
    assert "orders.yaml:4" in text
    assert "methd" in text
    assert "does not exist" not in text


@pytest.mark.parametrize(
    ("suite", "expected"),
    [
        (
            "name: laughs\nchecks: &a [{name: x, request: {path: /}}]\n"
            + "".join(
                f"l{i}: &l{i} [{', '.join(['*a' if i == 0 else f'*l{i - 1}'] * 10)}]\n"
                for i in range(6)
            ),
            "expands to more than",
        ),
        (
            "name: rx\nchecks:\n  - name: r\n    request: {path: /}\n"
            "    assert: [{body: true, matches: 'a{4294967296}'}]\n",
            "repetition count",
        ),
        (
            "name: rx\nchecks:\n  - name: r\n    request: {path: /}\n"
            f"    assert: [{{body: true, matches: '{'(' * 200}a{')' * 200}'}}]\n",
            "nested deeper",
        ),
    ],
)
def test_a_suite_file_that_would_exhaust_the_loader_is_a_named_error(
    tmp_path: Path, suite: str, expected: str
) -> None:
    suites = write_suites(tmp_path / "suites", {"hostile.yaml": suite})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(ok) as target:
        run = run_hook(endpoint, target, suites)
    assert_reported(run, fake, "Failed")
    assert "hostile.yaml" in failures(run)
    assert expected in failures(run)


# ---- hostile targets ----


@pytest.mark.timing
def test_catastrophic_backtracking_still_reports_before_the_deadline(tmp_path: Path) -> None:
    suite = """\
        name: backtrack
        checks:
          - name: body is all a
            request: {path: /}
            assert: [{body: true, matches: '^(a+)+$'}]
        """
    suites = write_suites(tmp_path / "suites", {"backtrack.yaml": suite})
    fake = FakeCodeDeploy()
    body = b"a" * 40 + b"!"
    with http_server(fake) as endpoint, http_server(lambda h: reply(h, 200, body)) as target:
        run = run_hook(endpoint, target, suites, seconds=6)
    assert_reported(run, fake, "Failed")
    assert "backtrack / body is all a" in failures(run)
    assert run.invocations[-1].left_ms > 0  # returned before the function's end


def huge_body(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(2 * 1024**3))
    handler.end_headers()
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(2048):
            handler.wfile.write(chunk)
    except OSError:
        pass  # the client stopped reading: the point


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed (about 1 MB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 22)
    parts = [compressor.compress(zeros) for _ in range(256)]
    return b"".join(parts) + compressor.flush()


@pytest.mark.parametrize("kind", ["2 GiB body", "gzip bomb", "deflate bomb"])
def test_an_oversized_response_fails_the_check_naming_the_cap(
    tmp_path: Path, kind: str, gzip_bomb: bytes
) -> None:
    def bomb(handler: BaseHTTPRequestHandler) -> None:
        if kind == "gzip bomb":
            reply(handler, 200, gzip_bomb, {"Content-Encoding": "gzip"})
        else:
            data = zlib.compress(bytes(64 << 20))
            reply(handler, 200, data, {"Content-Encoding": "deflate"})

    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    server = huge_body if kind == "2 GiB body" else bomb
    with http_server(fake) as endpoint, http_server(server) as target:
        run = run_hook(endpoint, target, suites)
    assert_reported(run, fake, "Failed")
    assert "larger than the 4 MiB cap" in failures(run)


def test_the_body_cap_is_a_setting(tmp_path: Path) -> None:
    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    body = gzip.compress(b"y" * 5000)
    with (
        http_server(fake) as endpoint,
        http_server(lambda h: reply(h, 200, body, {"Content-Encoding": "gzip"})) as target,
    ):
        run = run_hook(endpoint, target, suites, env={"GREENLIGHT_MAX_BODY_BYTES": "4096"})
    assert_reported(run, fake, "Failed")
    assert "larger than the 4 KiB cap" in failures(run)


@contextmanager
def trickle_server(headers_too: bool) -> Iterator[str]:
    """Answers a byte a second: the body (or, with ``headers_too``, the headers as well)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        try:
            conn.recv(65536)
            if not headers_too:
                conn.sendall(head)
            for byte in (head if headers_too else b"") + b"z" * 100:
                if stop.is_set():
                    return
                conn.sendall(bytes([byte]))
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            conn.close()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        sock.close()


@pytest.mark.timing
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_checks_timeout_bounds_the_whole_response(tmp_path: Path, headers_too: bool) -> None:
    suite = """\
        name: slow
        checks:
          - name: trickled
            request: {path: /, timeout: 2}
        """
    suites = write_suites(tmp_path / "suites", {"slow.yaml": suite})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, trickle_server(headers_too) as target:
        run = run_hook(endpoint, target, suites, seconds=30)
    assert_reported(run, fake, "Failed")
    assert "no complete response within 2s" in failures(run)
    spent = 30 - run.invocations[-1].left_ms / 1000
    assert spent < 12  # 6 x the check's 2 s timeout, far from the 30 s context


# ---- secrets ----

SECRET = "s3cr3t-t0ken-value"


def test_secrets_never_leave_in_any_output(tmp_path: Path) -> None:
    suite = """\
        name: secretive
        checks:
          - name: with a key
            request:
              path: /private
              headers: {X-Api-Key: "${env:API_KEY}", Authorization: "Bearer ${env:TOKEN}"}
              query: {token: "${env:API_KEY}"}
            assert:
              - {status: 200}
              - {body: true, contains: "${env:API_KEY}"}
          - name: with a url that fails
            request: {url: "http://127.0.0.1:9/?key=${env:API_KEY}"}
        """
    suites = write_suites(tmp_path / "suites", {"secretive.yaml": suite})
    fake = FakeCodeDeploy()

    def echo(handler: BaseHTTPRequestHandler) -> None:  # a target that leaks what it got
        reply(handler, 500, {"echo": handler.path, "key": handler.headers.get("X-Api-Key")})

    env = {"API_KEY": SECRET + "\n", "TOKEN": "tok-" + SECRET}
    with http_server(fake) as endpoint, http_server(echo) as target:
        run = run_hook(endpoint, target, suites, env=env)
    assert_reported(run, fake, "Failed")
    everything = run.output + json.dumps(fake.requests)
    assert SECRET not in everything
    # The header that could not be sent is named, its value never shown; the URL that
    # carried the key to a refused connection is shown masked.
    assert "the header 'X-Api-Key' of GET" in failures(run)
    assert "?key=***" in everything


def test_a_redirect_to_another_origin_drops_credentials_and_the_host_override(
    tmp_path: Path,
) -> None:
    seen: list[dict[str, str]] = []

    def elsewhere(handler: BaseHTTPRequestHandler) -> None:
        seen.append(dict(handler.headers))
        reply(handler, 200, {})

    suite = """\
        name: hop
        checks:
          - name: follows
            request:
              path: /start
              allow_redirects: true
              headers: {X-Api-Key: "${env:API_KEY}", X-Custom: yes}
        """
    suites = write_suites(tmp_path / "suites", {"hop.yaml": suite})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(elsewhere) as other:

        def redirect(handler: BaseHTTPRequestHandler) -> None:
            reply(handler, 302, b"", {"Location": f"{other}/landed"})

        with http_server(redirect) as target:
            env = {"API_KEY": SECRET, "GREENLIGHT_TARGET_HOST": "shop.example.test"}
            run = run_hook(endpoint, target, suites, env=env)
    assert_reported(run, fake, "Succeeded")
    (headers,) = seen
    lowered = {k.lower(): v for k, v in headers.items()}
    assert "x-api-key" not in lowered
    assert "x-custom" not in lowered
    assert "authorization" not in lowered
    assert lowered["host"] == other.removeprefix("http://")


def test_a_deployment_id_with_any_characters_never_breaks_a_request(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        seen.append(dict(handler.headers))
        reply(handler, 200, {})

    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"DeploymentId": "d-Ä\r\nX-Evil: 1", "LifecycleEventHookExecutionId": "exec-1"})
    )
    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy()
    with http_server(fake) as endpoint, http_server(record) as target:
        run = run_hook(endpoint, target, suites, event_file=event)
    assert_reported(run, fake, "Succeeded")
    assert all("X-Evil" not in headers for headers in each(seen))
    assert seen[0]["X-Greenlight-Deployment-Id"] == "d-%C3%84%0D%0AX-Evil: 1"


# ---- the report itself ----


@pytest.mark.timing
@pytest.mark.parametrize("endpoint_kind", ["hangs", "slow", "refuses"])
def test_the_report_returns_before_the_deadline_whatever_the_endpoint_does(
    tmp_path: Path, endpoint_kind: str
) -> None:
    suites = write_suites(tmp_path / "suites", {"smoke.yaml": YAML_OK})
    fake = FakeCodeDeploy(delay=30)
    with http_server(ok) as target:
        if endpoint_kind == "hangs":
            with silent_server() as endpoint:
                run = run_hook(endpoint, target, suites, seconds=8)
        elif endpoint_kind == "slow":
            with http_server(fake) as endpoint:
                run = run_hook(endpoint, target, suites, seconds=8)
        else:
            run = run_hook(closed_port_url(), target, suites, seconds=8)
    (invocation,) = run.invocations
    assert invocation.left_ms > 0, "the handler returned after the context's deadline"
    assert invocation.result["report"] == "failed"
    assert invocation.result["verdict"] == "Succeeded"  # the verdict is not the report's
    assert set(fake.statuses) <= {"Succeeded"}  # never a different status
