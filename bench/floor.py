"""The least a Python open-model sender can do per request: the bench's reference floor.

    python bench/floor.py URL RATE SECONDS

Sends ``GET URL/load`` RATE times a second, each when it is due, on keep-alive connections
from one epoll loop; reads each answer to the end of its ``Content-Length`` body and counts
it. Nothing else: no timeout, no histogram, no lag, no other framing, no TLS, no error
handling. No product could ship this, and none can spend less per request in Python with
the same schedule: what Greenlight's engine costs above it is its own, what this costs
above autocannon is the language's and the model's (autocannon sends each connection's
share of a second in one burst, closed loop, and sleeps the rest of it).
"""

from __future__ import annotations

import select
import socket
import sys
import time
from urllib.parse import urlsplit


def main() -> None:
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    request = f"GET /load HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: */*\r\n\r\n".encode()
    landing = bytearray(256 * 1024)
    view = memoryview(landing)
    poller = select.epoll()
    idle: list[socket.socket] = []
    busy: dict[int, tuple[socket.socket, bytearray]] = {}
    clock = time.monotonic
    start, total, sent, answered = clock(), int(rate * seconds), 0, 0
    while answered < total:
        now = clock()
        while sent < total and start + sent / rate <= now:
            if idle:
                sock = idle.pop()
            else:
                sock = socket.create_connection(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                poller.register(sock.fileno(), select.EPOLLIN)
            busy[sock.fileno()] = (sock, bytearray())
            sock.send(request)
            sent += 1
        wait = start + sent / rate - clock() if sent < total else 1.0
        for fd, _ in poller.poll(max(wait, 0)):
            sock, buffer = busy[fd]
            buffer += view[: sock.recv_into(landing)]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            head = buffer[:end].lower()
            at = head.find(b"content-length:") + 15
            line_end = head.find(b"\r\n", at)
            if len(buffer) >= end + 4 + int(head[at : line_end if line_end > 0 else len(head)]):
                answered += 1
                del busy[fd]
                idle.append(sock)


if __name__ == "__main__":
    main()
