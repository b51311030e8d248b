"""The engine's event loop: timers in due order, cancellation, another thread's wake-up,
sockets ready to read, and a faulty callback that stops nothing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hooks.core.reactor import READ, Reactor


@pytest.fixture
def loop() -> Iterator[Reactor]:
    reactor = Reactor()
    yield reactor
    reactor.close()


def test_timers_run_in_the_order_they_fall_due_and_a_cancelled_one_never(loop: Reactor) -> None:
    ran: list[str] = []
    start = loop.time()
    loop.call_at(start + 0.03, ran.append, "third")
    loop.call_at(start + 0.01, ran.append, "first")
    loop.call_at(start + 0.02, ran.append, "second").cancel()
    loop.call_later(0.02, ran.append, "second, again")
    loop.call_soon(ran.append, "now")
    loop.call_at(start + 0.04, loop.stop)
    loop.run()
    assert ran == ["now", "first", "second, again", "third"]
    assert loop.time() - start >= 0.04  # no timer runs before its time


def test_stop_before_run_returns_at_once_and_run_again_works(loop: Reactor) -> None:
    loop.stop()
    loop.call_later(60, loop.stop)  # would hold run a minute if stop were forgotten
    began = time.monotonic()
    loop.run()
    assert time.monotonic() - began < 20
    ran: list[int] = []
    loop.call_soon(ran.append, 1)
    loop.call_soon(loop.stop)
    loop.run()
    assert ran == [1]


def test_another_thread_wakes_a_loop_waiting_for_a_far_timer(loop: Reactor) -> None:
    """The loop waits for a timer a minute away; a call from another thread runs at once."""
    loop.call_later(60, loop.stop)
    seen: list[str] = []

    def woken() -> None:
        seen.append(threading.current_thread().name)
        loop.stop()

    def other() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(woken)

    thread = threading.Thread(target=other, name="other")
    thread.start()
    began = time.monotonic()
    loop.run()
    thread.join()
    assert time.monotonic() - began < 20
    assert seen == [threading.main_thread().name]  # run on the loop's thread, not the caller's


def test_a_socket_ready_to_read_calls_back_until_unwatched(loop: Reactor) -> None:
    one, two = socket.socketpair()
    with one, two:
        got: list[bytes] = []

        def readable(events: int) -> None:
            assert events & READ
            got.append(one.recv(100))
            if len(got) == 2:
                loop.unwatch(one)
                loop.call_later(0.05, loop.stop)

        loop.watch(one, READ, readable)
        two.send(b"a")
        loop.call_later(0.05, two.send, b"b")
        loop.call_later(0.07, two.send, b"c")  # after unwatch: nobody reads it
        loop.call_later(30, loop.stop)
        loop.run()
        assert got == [b"a", b"b"]


def test_a_callback_that_raises_is_reported_and_the_others_still_run(
    loop: Reactor, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom in a callback")

    loop.call_soon(broken)
    loop.call_later(0.01, ran.append, "later")
    loop.call_later(0.02, loop.stop)
    loop.run()
    assert ran == ["later"]
    err = capsys.readouterr().err
    assert "a callback of the HTTP engine failed" in err
    assert "boom in a callback" in err
