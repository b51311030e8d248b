"""A small shop service in three releases, for ``make demo`` and for tests.

``blue`` is the release in production; ``green`` is a good new release; ``broken`` is a
new release whose order lookup fails (HTTP 500) and reports the wrong quantity field, and
whose catalog prices one item wrong. ``/openapi.json`` documents the shop. The catalog
carries a timestamp and a request id that change on every answer (noise, for
blue-versus-green comparisons).
Standard library only; listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hooks.cli.common import (
    UsageError,
)

__all__ = ["OPENAPI", "RELEASES", "SampleService", "register", "serve_sample_command"]

RELEASES = {"blue": "1.4.0", "green": "1.5.0", "broken": "1.5.0"}

_JSON = "application/json"


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


#: The shop's OpenAPI document, served at ``/openapi.json`` (every release keeps it).
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "shop", "version": "1.5.0"},
    "paths": {
        "/health": {
            "get": {
                "responses": {
                    "200": _answer(
                        "the service is up",
                        {
                            "type": "object",
                            "required": ["status", "version"],
                            "properties": {
                                "status": {"enum": ["ok"]},
                                "version": {"type": "string"},
                            },
                        },
                    )
                }
            }
        },
        "/catalog": {
            "get": {
                "responses": {
                    "200": _answer(
                        "what the shop sells",
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["sku", "price"],
                                        "properties": {
                                            "sku": {"type": "string"},
                                            "price": {"type": "number", "minimum": 0},
                                        },
                                    },
                                }
                            },
                        },
                    )
                }
            }
        },
        "/orders/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _answer(
                        "the order",
                        {
                            "type": "object",
                            "required": ["id", "sku", "quantity", "status"],
                            "properties": {
                                "id": {"type": "string"},
                                "sku": {"type": "string"},
                                "quantity": {"type": "integer", "minimum": 1},
                                "status": {"type": "string"},
                            },
                        },
                    ),
                    "404": _answer(
                        "no such order",
                        {"type": "object", "properties": {"error": {"type": "string"}}},
                    ),
                },
            }
        },
    },
}


class SampleService:
    """One release of the shop, served on a loopback port until ``stop()``."""

    def __init__(self, release: str, port: int = 0) -> None:
        if release not in RELEASES:
            raise ValueError(f"release must be one of {sorted(RELEASES)}")
        self.release = release
        self.version = RELEASES[release]
        self._orders: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 65536  # headers and body in one write: no delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                service._get(self)

            def do_POST(self) -> None:
                service._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> SampleService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> SampleService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-App-Version", self.version)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        if path == "/":
            self._send(handler, 200, {"service": "shop", "version": self.version})
        elif path == "/health":
            self._send(handler, 200, {"status": "ok", "version": self.version})
        elif path == "/openapi.json":
            self._send(handler, 200, OPENAPI)
        elif path == "/version":
            self._send(handler, 200, {"version": self.version, "release": self.release})
        elif path == "/catalog":
            cake = 30 if self.release == "broken" else 3
            self._send(
                handler,
                200,
                {
                    "items": [{"sku": "tea", "price": 4}, {"sku": "cake", "price": cake}],
                    "generated_at": time.time(),
                    "request_id": uuid.uuid4().hex,
                },
            )
        elif path.startswith("/orders/"):
            order_id = path.removeprefix("/orders/")
            if self.release == "broken":
                self._send(handler, 500, {"error": "column orders.qty does not exist"})
                return
            with self._lock:
                order = self._orders.get(order_id)
            if order is None:
                self._send(handler, 404, {"error": f"no order {order_id}"})
            else:
                self._send(handler, 200, order)
        else:
            self._send(handler, 404, {"error": f"no route {path}"})

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if handler.path.split("?")[0] != "/orders":
            self._send(handler, 404, {"error": f"no route {handler.path}"})
            return
        try:
            body = json.loads(raw or b"{}")
            sku, quantity = str(body["sku"]), int(body["quantity"])
        except (ValueError, KeyError, TypeError):
            self._send(handler, 400, {"error": "send JSON with 'sku' and 'quantity'"})
            return
        with self._lock:
            order_id = f"ord-{next(self._ids)}"
            order: dict[str, Any] = {"id": order_id, "sku": sku, "status": "created"}
            order["qty" if self.release == "broken" else "quantity"] = quantity
            self._orders[order_id] = order
        self._send(handler, 201, order, {"Location": f"/orders/{order_id}"})


def register(sub: Any) -> None:
    """The ``serve-sample`` command's arguments."""
    sample = sub.add_parser("serve-sample", help="serve the demo's sample service on loopback")
    sample.add_argument("--release", choices=["blue", "green", "broken"], default="green")
    sample.add_argument("--port", type=int, default=8080)
    sample.set_defaults(run=serve_sample_command)


def serve_sample_command(args: argparse.Namespace) -> int:
    import time

    try:
        service = SampleService(args.release, args.port).start()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from exc
    print(
        f"sample service {args.release} ({service.version}) on {service.url}; Ctrl-C stops it",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    finally:
        service.stop()
