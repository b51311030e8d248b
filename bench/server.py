"""A loopback HTTP server for the benchmarks: answers GET after an optional delay.

Run as a separate process so that the server does not share the client's interpreter:
    python bench/server.py --delay 0.05      (prints the port, then serves until killed)

It also plays CodeDeploy for the hook's report (any POST gets the answer
PutLifecycleEventHookExecutionStatus gives), and ``GET /__first`` returns the monotonic
time at which the first other request arrived since the last ``/__first`` (the clock is
the machine's: comparable with a client's ``time.monotonic()``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BODY = b'{"status": "ok"}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    first: list[float] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536

        def log_message(self, format: str, *a: Any) -> None:
            pass

        def answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/__first":
                with lock:
                    seen = first[0] if first else None
                    first.clear()
                self.answer(json.dumps({"first": seen}).encode())
                return
            with lock:
                if not first:
                    first.append(time.monotonic())
            if args.delay:
                time.sleep(args.delay)
            self.answer(BODY)

        def do_POST(self) -> None:  # the hook's report, as CodeDeploy answers it
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            execution = request.get("lifecycleEventHookExecutionId", "")
            self.answer(json.dumps({"lifecycleEventHookExecutionId": execution}).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    print(server.server_address[1], flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
