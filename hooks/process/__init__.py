"""The process model: the supervisor (in the hook's process, never runs suite code), its
worker processes, the fork server and the spare started ahead of an invocation, and the
typed messages that are the only thing crossing between them.

May import: :mod:`hooks.core`, and :mod:`hooks.suites` (in the worker only: the supervisor
side never imports suite code).
"""

__all__ = ["messages", "runner", "spawn", "supervisor", "worker"]
