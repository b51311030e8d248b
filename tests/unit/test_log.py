"""The process's logger is made once, however many handler calls ask for it at once."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from hooks.core import log


class _Made:
    """Stands for the Powertools logger (a real one would rewire the process's logging)."""

    registered_handler = logging.NullHandler()
    log_level = logging.INFO


def test_concurrent_first_calls_make_one_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN no logger yet, and a creation slow enough that calls overlap in it
    WHEN eight threads ask for the logger at once
    THEN one logger is made and every thread gets it, without an error."""
    made: list[Any] = []

    def slow(level: str | None, stream: Any) -> Any:
        time.sleep(0.2)  # every other thread arrives while this one creates
        made.append(_Made())
        return made[-1]

    package = logging.getLogger("hooks")
    monkeypatch.setattr(package, "level", package.level)  # restored after
    monkeypatch.setattr(log, "_logger", None)
    monkeypatch.setattr(log, "_create", slow)
    start = threading.Barrier(8)
    got: list[Any] = []
    errors: list[BaseException] = []

    def ask() -> None:
        start.wait()
        try:
            got.append(log.get_logger())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(made) == 1
    assert len(got) == 8
    assert {id(logger) for logger in got} == {id(made[0])}
