"""Structured logging with Powertools ``Logger``.

Every module logs through the standard ``logging.getLogger(__name__)``; the ``hooks``
package logger gets the Powertools handler, so every line is JSON and carries the keys
appended for the invocation (deployment id, execution id, lifecycle event).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools.logging import Logger

__all__ = ["configure_for_cli", "get_logger"]

_logger: Logger | None = None
_creating = threading.Lock()


def get_logger(stream: IO[str] | None = None, level: str | None = None) -> Logger:
    """The Powertools logger of this process, created on first use (once, whatever the
    number of threads asking).

    ``stream`` and ``level`` redirect it (the command line logs to stderr; tests capture).
    """
    global _logger
    with _creating:  # two handler calls at once in one process make one logger
        if _logger is None:
            _logger = _create(level, stream)
    handler = _logger.registered_handler
    if stream is not None and isinstance(handler, logging.StreamHandler):
        handler.setStream(stream)
    if level is not None:
        _logger.setLevel(level)
    logging.getLogger("hooks").setLevel(_logger.log_level)
    return _logger


def _create(level: str | None, stream: IO[str] | None) -> Logger:
    from aws_lambda_powertools.logging import Logger

    logger = Logger(
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", "greenlight"),
        level=level
        or os.environ.get("POWERTOOLS_LOG_LEVEL")
        or os.environ.get("LOG_LEVEL")
        or "INFO",
        logger_handler=logging.StreamHandler(stream or sys.stdout),
    )
    package = logging.getLogger("hooks")
    package.handlers = [logger.registered_handler]
    package.propagate = False
    return logger


def configure_for_cli(verbose: bool) -> Logger:
    """Logs on stderr for the command line: JSON with ``verbose``; else warnings, as text."""
    logger = get_logger(stream=sys.stderr, level="DEBUG" if verbose else "WARNING")
    if not verbose:
        # The console prints the verdict and the failures itself: not the summary line too.
        logger.registered_handler.addFilter(
            lambda record: not hasattr(record, "greenlight_summary")
        )
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter("greenlight: %(levelname)s: %(message)s"))
        logging.getLogger("hooks").handlers = [plain]
    return logger
