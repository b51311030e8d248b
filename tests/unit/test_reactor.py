"""The engine's event loop: timers in due order, cancellation, another thread's wake-up,
sockets ready to read, and a faulty callback that stops nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hooks.core.reactor import READ, WRITE, Reactor


@pytest.fixture(params=[False, True], ids=["epoll", "selectors"])
def loop(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    """Each test on epoll (Lambda's) and on ``selectors`` (a laptop's kqueue, here epoll
    through ``selectors``)."""
    reactor = Reactor(portable=request.param)
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


def test_watching_for_writing_then_reading_changes_what_calls_back(loop: Reactor) -> None:
    one, two = socket.socketpair()
    with one, two:
        seen: list[int] = []

        def ready(events: int) -> None:
            seen.append(events)
            if events == WRITE:
                loop.watch(one, READ, ready)  # written: now wait for the answer
                two.send(b"answer")
            else:
                loop.stop()

        loop.watch(one, WRITE, ready)
        loop.call_later(30, loop.stop)
        loop.run()
        assert seen == [WRITE, READ]


def test_a_hang_up_reaches_the_reader(loop: Reactor) -> None:
    """The peer closes: the socket is reported readable, and its read meets the end."""
    one, two = socket.socketpair()
    with one:
        read: list[bytes] = []

        def readable(events: int) -> None:
            read.append(one.recv(10))
            loop.unwatch(one)
            loop.stop()

        loop.watch(one, READ, readable)
        two.close()
        loop.call_later(30, loop.stop)
        loop.run()
        assert read == [b""]


def test_a_descriptor_reused_after_its_socket_closed_unwatched_is_watched_anew(
    loop: Reactor,
) -> None:
    """A socket closed while still watched leaves its descriptor free for the next socket:
    that one is watched as new, and unwatching the closed one later harms nothing."""
    first, peer = socket.socketpair()
    loop.watch(first, READ, lambda events: None)
    fd = first.fileno()
    first.close()
    peer.close()
    again, other = socket.socketpair()
    with again, other:
        reused = again if again.fileno() == fd else other
        partner = other if reused is again else again
        got: list[bytes] = []

        def readable(events: int) -> None:
            got.append(reused.recv(10))
            loop.stop()

        loop.watch(reused, READ, readable)
        loop.unwatch(first)  # closed: nothing to do, and the new socket stays watched
        partner.send(b"x")
        loop.call_later(30, loop.stop)
        loop.run()
        assert got == [b"x"]


@pytest.mark.parametrize("writing", [False, True], ids=["coalesced", "a-socket-writing"])
def test_a_timer_within_the_coalescing_window_is_slept_to_deaf_unless_a_socket_writes(
    loop: Reactor, writing: bool
) -> None:
    """With ``coalesce`` set, a socket ready while the next timer is near waits for it (its
    owner times answers by the kernel's stamps); a socket waiting to write is never kept
    waiting so (a connect, a request half written)."""
    one, two = socket.socketpair()
    writer_one, writer_two = socket.socketpair()
    with one, two, writer_one, writer_two:
        read_at: list[float] = []

        def readable(events: int) -> None:
            read_at.append(loop.time())
            one.recv(10)
            loop.unwatch(one)

        loop.coalesce = 2.0
        loop.watch(one, READ, readable)
        if writing:
            writer_one.setblocking(False)
            # A full send buffer: the socket is watched, and waits, to write.
            with contextlib.suppress(BlockingIOError):
                while True:
                    writer_one.send(b"x" * 65536)
            loop.watch(writer_one, WRITE, lambda events: None)
        start = loop.time()
        loop.call_at(start + 1.0, loop.stop)
        two.send(b"ready")  # readable before the loop runs
        loop.run()
        assert len(read_at) == 1
        if writing:
            assert read_at[0] < start + 1.0  # at once (it takes microseconds)
        else:
            assert read_at[0] >= start + 1.0  # when the timer fell due, not before
