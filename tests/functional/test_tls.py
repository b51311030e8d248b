"""Host name and TLS: connect to an address, send the service's name as Host and SNI, and
verify the certificate against that name, on a real HTTPS server on loopback."""

from __future__ import annotations

import io
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from botocore.stub import Stubber

from hooks.adapters.hook import handle
from hooks.aws.codedeploy import CodeDeployCallback
from hooks.cli.local import LocalContext
from hooks.core.lifecycle import LifecycleEvent
from hooks.core.log import get_logger
from hooks.gate.summary import Runtime
from tests.functional.test_hook_protocol import expect_report
from tests.helpers import load_event

HOST = "shop.example.test"
EVENT = load_event("after_allow_test_traffic")


@dataclass
class TlsServer:
    url: str
    ca_file: Path
    sni: list[str | None] = field(default_factory=list)
    hosts: list[str | None] = field(default_factory=list)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    seen = TlsServer(url="", ca_file=ca_file)
    context.sni_callback = lambda sock, name, ctx: seen.sni.append(name)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.hosts.append(self.headers.get("Host"))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen.url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def run(callback: CodeDeployCallback, tmp_path: Path, **env: str) -> dict[str, Any]:
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    return handle(
        EVENT,
        LocalContext(30),
        LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC,
        Runtime(protocol=callback, env={"GREENLIGHT_SUITES_DIR": str(suites), **env}),
    )


def test_connecting_by_address_with_the_host_name_verifies(
    tls_server: TlsServer,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Succeeded")
    result = run(
        callback,
        tmp_path,
        GREENLIGHT_TARGET_URL=tls_server.url,
        GREENLIGHT_TARGET_HOST=HOST,
        GREENLIGHT_CA_BUNDLE=str(tls_server.ca_file),
    )
    assert result["verdict"] == "Succeeded", result
    assert tls_server.sni == [HOST]
    assert tls_server.hosts == [HOST]


def test_without_the_host_name_the_certificate_does_not_match(
    tls_server: TlsServer,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result = run(
        callback,
        tmp_path,
        GREENLIGHT_TARGET_URL=tls_server.url,
        GREENLIGHT_CA_BUNDLE=str(tls_server.ca_file),
    )
    assert result["verdict"] == "Failed"
    (failure,) = result["failed"]
    assert "TLS certificate verification failed" in failure
    assert "127.0.0.1" in failure


def test_an_unknown_ca_is_refused_by_default(
    tls_server: TlsServer,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    _, stubber = codedeploy
    expect_report(stubber, "Failed")
    result = run(
        callback, tmp_path, GREENLIGHT_TARGET_URL=tls_server.url, GREENLIGHT_TARGET_HOST=HOST
    )
    assert "TLS certificate verification failed" in result["failed"][0]


def test_disabled_verification_passes_and_warns_on_every_run(
    tls_server: TlsServer,
    tmp_path: Path,
    codedeploy: tuple[Any, Stubber],
    callback: CodeDeployCallback,
) -> None:
    stream = io.StringIO()
    get_logger(stream=stream, level="INFO")
    _, stubber = codedeploy
    for _ in range(2):
        expect_report(stubber, "Succeeded")
        result = run(
            callback, tmp_path, GREENLIGHT_TARGET_URL=tls_server.url, GREENLIGHT_TLS_VERIFY="false"
        )
        assert result["verdict"] == "Succeeded"
    warnings = [json.loads(line) for line in stream.getvalue().splitlines() if '"WARNING"' in line]
    assert len([w for w in warnings if "verification is disabled" in w["message"]]) == 2
