"""A loopback HTTP/1.1 server for the benchmarks: answers GET after an optional delay.

Run as a separate process so that the server does not share the client's interpreter:
    python bench/server.py --delay 0.05      (prints the port, then serves until killed)

asyncio, keep-alive, one coroutine per connection: at thousands of requests a second the
clients measured, not a thread per connection, are the limit on a small machine.

It also plays CodeDeploy for the hook's report (any POST gets the answer
PutLifecycleEventHookExecutionStatus gives), and ``GET /__first`` returns the monotonic
time at which the first other request arrived since the last ``/__first`` (the clock is
the machine's: comparable with a client's ``time.monotonic()``).

For the load generator's accuracy it is the reference: ``--jitter MEAN`` adds to each
answer's delay an exponentially distributed extra (mean MEAN seconds, seeded), and every
request to ``/load...`` is recorded — when it arrived and how long the server held it —
until ``GET /__stats`` returns the exact count, arrival rate and percentiles and clears them
(``GET /__count`` returns the count alone and clears nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import time

BODY = b'{"status": "ok"}'


def response(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def stats(arrivals: list[float], held: list[float]) -> dict[str, float | int | None]:
    """Exact figures of what the server saw (a sorted list is fine here: it is the reference)."""
    ordered = sorted(held)

    def percentile(q: float) -> float | None:
        return ordered[math.ceil(q * len(ordered)) - 1] * 1000 if ordered else None

    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    return {
        "count": len(held),
        "rate": (len(arrivals) - 1) / span if span else None,
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
    }


async def serve(delay: float, jitter: float = 0.0) -> None:
    first: list[float] = []
    arrivals: list[float] = []
    held: list[float] = []
    draw = random.Random(7)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if method == "POST":  # the hook's report
                    execution = json.loads(body).get("lifecycleEventHookExecutionId", "")
                    answer = json.dumps({"lifecycleEventHookExecutionId": execution}).encode()
                elif path == "/__first":
                    answer = json.dumps({"first": first[0] if first else None}).encode()
                    first.clear()
                elif path == "/__count":
                    answer = json.dumps({"count": len(arrivals)}).encode()
                elif path == "/__stats":
                    answer = json.dumps(stats(arrivals, held)).encode()
                    arrivals.clear()
                    held.clear()
                else:
                    arrived = time.monotonic()
                    if not first:
                        first.append(arrived)
                    pause = delay + (draw.expovariate(1 / jitter) if jitter else 0.0)
                    if pause:
                        await asyncio.sleep(pause)
                    answer = BODY
                    if path.startswith("/load"):
                        arrivals.append(arrived)
                        held.append(time.monotonic() - arrived)
                writer.write(response(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.delay, args.jitter))


if __name__ == "__main__":
    main()
