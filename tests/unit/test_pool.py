from __future__ import annotations

import threading
import time

import pytest

from hooks.core.pool import WorkerPool


@pytest.mark.timing
def test_at_most_max_workers_run_at_once_and_every_task_runs() -> None:
    pool = WorkerPool(3)
    lock, now, peak = threading.Lock(), [0], [0]
    release = threading.Event()

    def task(i: int) -> int:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        release.wait(5)
        with lock:
            now[0] -= 1
        return i

    futures = [pool.submit(lambda i=i: task(i)) for i in range(10)]
    deadline = time.monotonic() + 5
    while peak[0] < 3 and time.monotonic() < deadline:  # let the workers all start
        time.sleep(0.01)
    release.set()
    assert [f.result(5) for f in futures] == list(range(10))
    assert peak[0] == 3
    assert len(pool._threads) == 3
    pool.shutdown()


def test_an_exception_is_kept_in_the_future() -> None:
    pool = WorkerPool(1)
    future = pool.submit(lambda: 1 / 0)
    assert isinstance(future.exception(5), ZeroDivisionError)
    pool.shutdown()
