"""Shared test helpers: sample events, Lambda contexts, loopback servers, CodeDeploy stubs."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SUITES = ROOT / "test_suites"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files sam local invoke uses)."""
    return json.loads((EVENTS / f"{name}.json").read_text())


Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def http_server(handle: Handler, address: str = "127.0.0.1") -> Iterator[str]:
    """A real HTTP server on loopback calling ``handle`` for every request; yields its URL.

    ``address`` may be any 127.0.0.x: several servers then stand in for several tasks.
    """

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # headers and body in one write: no delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    server = ThreadingHTTPServer((address, 0), RequestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class InFlight:
    """A handler that counts the requests it serves at once, and the most it ever served.

    With ``until``, each request is held until that many are in flight together (or ``hold``
    seconds passed): a runner that honours a bound of N reaches a peak of exactly N however
    busy the machine is, and one that exceeds it shows a peak above N.
    """

    def __init__(self, delay: float = 0.0, until: int | None = None, hold: float = 10.0) -> None:
        self.delay, self.until, self.hold = delay, until, hold
        self.now = self.peak = self.total = 0
        self.lock = threading.Condition()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
            self.lock.notify_all()
            if self.until is not None:
                self.lock.wait_for(lambda: self.peak >= self.until, timeout=self.hold)  # type: ignore[operator]
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
        reply(handler, 200, {"ok": True})


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> None:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(1)
        for conn in accepted:
            conn.close()
        sock.close()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def install_package(site: Path, module: str, source: str, entry_points: str) -> Path:
    """A package as pip leaves one on disk (a module and a ``.dist-info`` with entry
    points) in ``site``; put ``site`` on ``sys.path`` or ``PYTHONPATH`` to install it."""
    import textwrap

    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = site / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return site


def each(items: Iterable[T]) -> list[T]:
    """``items``, asserted to hold at least one: ``all(... for x in each(xs))`` cannot pass on
    nothing (a run where nothing was sent or nothing ran)."""
    found = list(items)
    assert found, "expected at least one item to check, got none"
    return found


#: The start of a skip reason for a tool that is not on this machine (the summary counts them).
MISSING_TOOL = "missing tool: "
#: Read as the tests are imported: the tests' own fixtures clear every GREENLIGHT_ variable.
REQUIRE_TOOLS = os.environ.get("GREENLIGHT_REQUIRE_TOOLS") == "1"


def missing_tool(tool: str, how: str) -> NoReturn:
    """A tool a test needs is not here. With ``GREENLIGHT_REQUIRE_TOOLS=1`` (``.ci/run``) the
    test fails, saying how to install it; elsewhere it skips, and the run's last lines list
    each missing tool once."""
    message = f"{MISSING_TOOL}{tool} ({how})"
    if REQUIRE_TOOLS:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def user_env(**extra: str) -> dict[str, str]:
    """This environment as a user's shell would have it: no Greenlight settings, and pytest
    as installed (the project's own run turns plugin autoload off; a user's does not)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GREENLIGHT_", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS"))
        or k == "GREENLIGHT_EVIDENCE_DIR"  # the tests' own folder, never the user's
    }
    return {**env, **extra}
