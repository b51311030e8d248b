"""One thread's event loop, and nothing else: timers, callbacks and sockets ready to read or
write — what the HTTP engine (:mod:`hooks.core.wire`) and the load generator need.

asyncio does more, and a request pays for it: a task or handle per step, a transport and a
protocol between the socket and the parser, and some 30 ms of imports (asyncio, ssl,
concurrent.futures) on a cold start. Here a request costs a heap entry for its due time, a
``send``, one readiness event and a ``recv_into``.

- **Timers** run in the order they fall due (:meth:`Reactor.call_at`); a cancelled one is
  dropped when it reaches the top of the heap.
- **Sockets**: :meth:`Reactor.watch` calls a callback with the events a socket is ready for:
  epoll itself on Linux (Lambda; ``selectors`` would add a key lookup, a list and a tuple to
  every event), ``selectors`` elsewhere (kqueue on macOS).
- **Threads**: only :meth:`Reactor.call_soon_threadsafe` may be called from another thread;
  it wakes the loop at once.
- A callback that raises is reported on stderr and the loop goes on, as asyncio's does: one
  faulty callback never stalls the others' timeouts.
"""

from __future__ import annotations

import heapq
import math
import select
import selectors
import socket
import sys
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from itertools import count
from time import monotonic, sleep
from typing import Any

__all__ = ["READ", "WRITE", "Reactor", "Timer"]

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
#: Seconds coalesced wake-ups are planned apart at least (:attr:`Reactor.coalesce`): at
#: most 500 a second. A timer due sooner waits for the next; the load generator's requests
#: go out together then, each timed from its own send, their lateness reported apart.
_LEAST_SLEEP = 0.002
#: Any epoll event but EPOLLIN (OUT, ERR, HUP) makes a socket writable to its owner, any but
#: EPOLLOUT readable.
_IN = getattr(select, "EPOLLIN", 0)
_NOT_IN = ~_IN
_NOT_OUT = ~getattr(select, "EPOLLOUT", 0)


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

    def __init__(self, *, portable: bool = False) -> None:
        """``portable``: wait with ``selectors`` even where epoll is at hand (its tests)."""
        self._epoll = None if portable or not hasattr(select, "epoll") else select.epoll()
        self._selector = selectors.DefaultSelector() if self._epoll is None else None
        #: Watched sockets by descriptor (epoll): the socket, its events, its callback.
        self._watched: dict[int, tuple[socket.socket, int, Callable[[int], None]]] = {}
        #: Sockets watched for writing (a connect, a request not yet written whole).
        self._writers: set[socket.socket] = set()
        #: Seconds: a timer due within this long is waited for asleep, deaf to sockets, and
        #: what became ready meanwhile is handled when it falls due (0: never). For an owner
        #: that times by the kernel's arrival stamps (:class:`hooks.core.wire.Client`'s
        #: ``stamped``), a reply that waits costs nothing in accuracy, and a wake-up saved
        #: is most of a request's CPU on a quiet loop. Never while a socket waits to write.
        self.coalesce = 0.0
        self._ready: deque[Timer] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = count()
        self._stopping = False
        self.closed = False
        # Another thread's call wakes a waiting select by a byte on this pair.
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self.watch(self._wake_in, READ, self._drain_wakes)

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
        if events & WRITE:
            self._writers.add(sock)
        else:
            self._writers.discard(sock)
        if self._epoll is None:
            selector = self._selector
            assert selector is not None
            key = selector.get_map().get(sock.fileno())
            if key is not None and key.fileobj is not sock:  # a closed socket's descriptor
                with suppress(KeyError, ValueError, OSError):
                    selector.unregister(key.fileobj)
                key = None
            if key is None:
                selector.register(sock, events, callback)
            else:
                selector.modify(sock, events, callback)
            return
        fd = sock.fileno()
        mask = (select.EPOLLIN if events & READ else 0) | (select.EPOLLOUT if events & WRITE else 0)
        known = self._watched.get(fd)
        self._watched[fd] = (sock, events, callback)
        if known is not None and known[0] is sock:
            if known[1] != events:
                self._epoll.modify(fd, mask)
            return
        # A descriptor new to the loop, or reused after its socket was closed unwatched
        # (epoll forgot it then).
        try:
            self._epoll.register(fd, mask)
        except FileExistsError:
            self._epoll.modify(fd, mask)

    def unwatch(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (before it is closed)."""
        self._writers.discard(sock)
        if self._epoll is None:
            assert self._selector is not None
            with suppress(KeyError, ValueError):  # not watched, or already closed
                self._selector.unregister(sock)
            return
        fd = sock.fileno()
        if fd < 0:  # closed already: epoll has forgotten it; so does the loop
            fd = next((n for n, entry in self._watched.items() if entry[0] is sock), -1)
            self._watched.pop(fd, None)
            return
        known = self._watched.get(fd)
        if known is not None and known[0] is sock:
            del self._watched[fd]
            with suppress(OSError):  # already gone from epoll
                self._epoll.unregister(fd)

    def stop(self) -> None:
        """Make :meth:`run` return after the callbacks of this turn (at once if not running)."""
        self._stopping = True

    def run(self) -> None:
        """Run timers, callbacks and socket events until :meth:`stop`."""
        ready, timers, now, pop = self._ready, self._timers, self.time, heapq.heappop
        dispatch = self._dispatch if self._epoll is not None else self._dispatch_portable
        planned = -math.inf  # when the last coalesced sleep was to end
        try:
            while not self._stopping:
                if ready:
                    dispatch(0)
                elif timers:
                    when, _, first = timers[0]
                    if first.cancelled:  # dropped, never waited for
                        pop(timers)
                        continue
                    wait = when - now()
                    if wait <= 0:
                        dispatch(0)
                    elif wait <= self.coalesce and not self._writers:
                        # Wake-ups planned _LEAST_SLEEP apart at least: at a high rate
                        # one serves the several timers due within it.
                        planned = max(when, planned + _LEAST_SLEEP)
                        wait = planned - now()
                        if wait > 0:
                            sleep(wait)
                        dispatch(0)
                    else:
                        dispatch(wait)
                else:
                    dispatch(None)
                if timers:
                    due = now()
                    while timers and timers[0][0] <= due:
                        timer = pop(timers)[2]
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

    def _dispatch(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (None: until an event) and call back every socket
        ready meanwhile. An error or hang-up is reported as both READ and WRITE, as
        ``selectors`` does: the owner's read or write then meets it."""
        assert self._epoll is not None
        watched = self._watched
        for fd, mask in self._epoll.poll(-1 if timeout is None else timeout):
            entry = watched.get(fd)
            if entry is None:
                continue
            if mask == _IN:
                events = READ
            else:
                events = (
                    (WRITE if mask & _NOT_IN else 0) | (READ if mask & _NOT_OUT else 0)
                ) & entry[1]
            try:
                entry[2](events)
            except Exception:  # one faulty callback never stops the loop
                self._report()

    def _dispatch_portable(self, timeout: float | None) -> None:
        assert self._selector is not None
        for key, events in self._selector.select(timeout):
            try:
                key.data(events)
            except Exception:  # one faulty callback never stops the loop
                self._report()

    def close(self) -> None:
        """Release the selector (the sockets watched are their owners' to close)."""
        if self.closed:
            return
        self.closed = True
        if self._epoll is not None:
            self._epoll.close()
            self._watched.clear()
        else:
            assert self._selector is not None
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
