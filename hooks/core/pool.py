"""A bounded pool of daemon threads.

``concurrent.futures.ThreadPoolExecutor`` joins its workers at interpreter exit, so one
hung check would keep the command line (or a test) from exiting. Here workers are daemon
threads: the hook stops waiting at its deadline and nothing keeps the process alive.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["T", "WorkerPool"]

T = TypeVar("T")


class WorkerPool:
    def __init__(self, max_workers: int, name: str = "greenlight") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn``; a new worker starts for each task until there are ``max_workers``.

        Callers submit their independent checks together, so this starts exactly the
        threads they can use, and a run's pool lives for that run only.
        """
        future: Future[T] = Future()
        with self._lock:
            if len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, daemon=True, name=f"{self._name}-{len(self._threads)}"
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((future, fn))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)

    def shutdown(self) -> None:
        """Let idle workers exit; busy ones finish their task and exit (never joined)."""
        for _ in self._threads:
            self._queue.put(None)
