"""One thread's event loop, and nothing else: timers, callbacks and sockets ready to read or
write — what the HTTP engine (:mod:`hooks.core.wire`) and the load generator need.

asyncio does more, and a request pays for it: a task or handle per step, a transport and a
protocol between the socket and the parser, and some 30 ms of imports (asyncio, ssl,
concurrent.futures) on a cold start. Here a request costs a heap entry for its due time, a
``send``, one readiness event and a ``recv_into``.

- **Timers** run in the order they fall due (:meth:`Reactor.call_at`); a cancelled one is
  dropped when it reaches the top of the heap.
- **Sockets**: :meth:`Reactor.watch` calls a callback with the events a socket is ready for
  (``selectors``: epoll on Linux, kqueue on macOS).
- **Threads**: only :meth:`Reactor.call_soon_threadsafe` may be called from another thread;
  it wakes the loop at once.
- A callback that raises is reported on stderr and the loop goes on, as asyncio's does: one
  faulty callback never stalls the others' timeouts.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import sys
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from itertools import count
from time import monotonic
from typing import Any

__all__ = ["READ", "WRITE", "Reactor", "Timer"]

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


class Timer:
    """A callback due at ``when`` (the reactor's clock); :meth:`cancel` before it runs."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    """An event loop for one thread: :meth:`run` until :meth:`stop`."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._ready: deque[Timer] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = count()
        self._stopping = False
        self.closed = False
        # Another thread's call wakes a waiting select by a byte on this pair.
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector.register(self._wake_in, READ, self._drain_wakes)

    #: The clock every timer reads (seconds, monotonic).
    time = staticmethod(monotonic)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` on the loop's next turn."""
        timer = Timer(0.0, callback, args)
        self._ready.append(timer)
        return timer

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Timer:
        """:meth:`call_soon` from any thread: the loop wakes for it at once."""
        timer = self.call_soon(callback, *args)
        with suppress(OSError):  # the pair is full (the loop wakes anyway) or closed
            self._wake_out.send(b"\0")
        return timer

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once the clock reads ``when``."""
        timer = Timer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(monotonic() + delay, callback, *args)

    def watch(self, sock: socket.socket, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(ready)`` whenever ``sock`` is ready for ``events`` (READ, WRITE or
        both); a later call replaces what is watched."""
        try:
            self._selector.modify(sock, events, callback)
        except KeyError:
            self._selector.register(sock, events, callback)

    def unwatch(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (before it is closed)."""
        with suppress(KeyError, ValueError):  # not watched, or already closed
            self._selector.unregister(sock)

    def stop(self) -> None:
        """Make :meth:`run` return after the callbacks of this turn (at once if not running)."""
        self._stopping = True

    def run(self) -> None:
        """Run timers, callbacks and socket events until :meth:`stop`."""
        ready, timers, select, now = self._ready, self._timers, self._selector.select, self.time
        try:
            while not self._stopping:
                if ready:
                    timeout: float | None = 0
                else:
                    while timers and timers[0][2].cancelled:
                        heapq.heappop(timers)
                    timeout = max(timers[0][0] - now(), 0) if timers else None
                for key, events in select(timeout):
                    try:
                        key.data(events)
                    except Exception:  # one faulty callback never stops the loop
                        self._report()
                due = now()
                while timers and timers[0][0] <= due:
                    timer = heapq.heappop(timers)[2]
                    if not timer.cancelled:
                        ready.append(timer)
                for _ in range(len(ready)):
                    timer = ready.popleft()
                    if not timer.cancelled:
                        try:
                            timer.callback(*timer.args)
                        except Exception:  # one faulty callback never stops the loop
                            self._report()
        finally:
            self._stopping = False

    def close(self) -> None:
        """Release the selector (the sockets watched are their owners' to close)."""
        if self.closed:
            return
        self.closed = True
        self._selector.close()
        self._wake_in.close()
        self._wake_out.close()

    def _drain_wakes(self, events: int) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:  # drained (BlockingIOError) or closed
            pass

    @staticmethod
    def _report() -> None:
        import traceback  # on use: only when a callback fails

        print("greenlight: a callback of the HTTP engine failed:", file=sys.stderr)
        traceback.print_exc()
