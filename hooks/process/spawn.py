"""Starting worker processes: afresh, or the spare started ahead of its invocation.

Imports nothing of Greenlight's and little of the standard library: ``hooks.adapters.handlers``
starts the spare with it before importing anything else, so the worker's own imports
overlap the handler's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading

TYPE_CHECKING = False  # as in hooks/__init__.py: no typing import before the worker starts
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

__all__ = [
    "WORKER_MAIN",
    "WORKER_MODULE",
    "end_spare",
    "holds_pytest_files",
    "interpreter_flags",
    "launch",
    "launch_fork_server",
    "prestart",
    "prestart_forks",
    "spare",
    "take_fork_server",
    "take_spare",
    "worker_env",
]

#: Variables read as a process starts (interpreter, loader, allocator, locale): a worker
#: started ahead of time is used only if these are as they are now. The rest of the
#: environment travels with the set-up.
_STARTUP_VARIABLES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_", "LC_", "LANG")


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # The worker imports what this process imports, wherever that came from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MALLOC_ARENA_MAX"] = "2"  # fewer malloc arenas: memory the limit can account for
    return env


def _fingerprint(env: dict[str, str]) -> tuple[Any, ...]:
    startup = sorted((k, v) for k, v in env.items() if k.startswith(_STARTUP_VARIABLES))
    return (sys.executable, os.getcwd(), tuple(startup))


def interpreter_flags() -> list[str]:
    """This interpreter's flags that decide where a worker's imports come from: a Python
    run without ``site`` starts its workers without it too."""
    return [flag for flag, on in (("-S", sys.flags.no_site), ("-s", sys.flags.no_user_site)) if on]


#: How a worker process starts: with no garbage collection while it imports and loads its
#: suites (a tenth of its cold start; what it makes then lives as long as it does), which
#: :func:`hooks.process.worker.main` turns on again before a suite runs; ``-c`` rather
#: than ``-m hooks.process.worker`` also spares it runpy's imports.
WORKER_MODULE = "hooks.process.worker"
WORKER_MAIN = f"import gc; gc.disable(); from {WORKER_MODULE} import main; main()"


def launch(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """A worker process, waiting for its set-up on stdin, and the read end of its records."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, *interpreter_flags(), "-c", WORKER_MAIN, str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=2,  # suites that print do not reach the record pipe
            pass_fds=(write_fd,),
            start_new_session=True,  # its own process group, killed whole
            env=env,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return process, os.fdopen(read_fd, "rb")


def launch_fork_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Any]:
    """The fork server (:data:`WORKER_MAIN` with ``--fork-server``) and our end of its
    socket."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                *interpreter_flags(),
                "-c",
                WORKER_MAIN,
                "--fork-server",
                str(theirs.fileno()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=2,
            pass_fds=(theirs.fileno(),),
            start_new_session=True,
            env=env,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def holds_pytest_files(folder: str | os.PathLike[str], most: int = 10_000) -> bool:
    """Whether ``folder`` holds a pytest file (``test_*.py``, ``*_test.py``), looking at
    ``most`` entries at most."""
    seen = 0
    for _, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")):
                return True
        seen += len(files) + 1
        if seen > most:
            return False
    return False


class _Spare:
    __slots__ = ("channel", "fingerprint", "process")

    def __init__(
        self, process: subprocess.Popen[bytes], channel: Any, fingerprint: tuple[Any, ...]
    ) -> None:
        self.process, self.channel, self.fingerprint = process, channel, fingerprint


#: Processes started ahead of their invocation, by kind: "worker", "forks".
_spares: dict[str, _Spare] = {}
_spare_lock = threading.Lock()


def prestart() -> None:
    """Start a spare worker now, for the next supervisor to take.

    A worker imports what it needs before it reads its set-up, so a spare started while the
    function initialises (or as an invocation ends, to run while the next one begins) is
    ready when the plan is, instead of starting then. Taken only by a supervisor in the
    same interpreter, working directory and start-up variables; it ends by itself when
    this process does (its stdin closes).
    """
    _prestart("worker", launch)


def prestart_forks() -> None:
    """Start a spare fork server now (for suites directories holding pytest files): it
    imports pytest while the invocation plans. Taken and ended as :func:`prestart`'s."""
    _prestart("forks", launch_fork_server)


def _prestart(
    kind: str, start: Callable[[dict[str, str]], tuple[subprocess.Popen[bytes], Any]]
) -> None:
    with _spare_lock:
        current = _spares.get(kind)
        if current is not None and current.process.poll() is None:
            return
        stale = _spares.pop(kind, None)
        try:
            env = worker_env()
            fingerprint = _fingerprint(env)
            process, channel = start(env)
        except Exception as exc:  # a spare is an optimisation: it never stops the function
            import logging

            logging.getLogger(__name__).debug("no spare %s: %s", kind, exc)
        else:
            _spares[kind] = _Spare(process, channel, fingerprint)
    if stale is not None:
        _discard(stale)


@atexit.register
def end_spare() -> None:
    """Spares do not outlive a process that exits (one frozen by Lambda keeps them)."""
    with _spare_lock:
        spares = list(_spares.values())
        _spares.clear()
    for spare in spares:
        _discard(spare)


def take_spare(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], IO[bytes]] | None:
    """The spare worker and its records' stream, if there is one that fits ``env``."""
    return _take("worker", env)


def take_fork_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Any] | None:
    """The spare fork server and our end of its socket, if there is one that fits ``env``."""
    return _take("forks", env)


def _take(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Any] | None:
    with _spare_lock:
        spare = _spares.pop(kind, None)
    if spare is None:
        return None
    try:
        fits = spare.fingerprint == _fingerprint(env) and spare.process.poll() is None
    except Exception:  # the working directory is gone...: start afresh (and say why there)
        fits = False
    if fits:
        return spare.process, spare.channel
    _discard(spare)
    return None


def spare(kind: str = "worker") -> subprocess.Popen[bytes] | None:
    """The spare process of ``kind`` waiting to be taken, if any."""
    found = _spares.get(kind)
    return found.process if found is not None else None


def _discard(spare: _Spare) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(spare.process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        spare.process.wait(timeout=2)
    with contextlib.suppress(OSError):
        spare.channel.close()
    if spare.process.stdin is not None:
        with contextlib.suppress(OSError):
            spare.process.stdin.close()
