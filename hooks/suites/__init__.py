"""Suites and their kinds: the plugin API (:mod:`.base`), the registry that finds, loads and
validates suites (:mod:`.registry`), and the built-in kinds — ``http`` checks, ``load``,
``metrics``, ``openapi``, ``pytest``, ``reachability``.

Suite code runs in worker processes only. May import: :mod:`hooks.core`, :mod:`hooks.aws`
(secrets by reference, CloudWatch). Nothing here is imported by the supervisor's side but
the registry's catalog (names, kinds, events), which runs no suite code.
"""

__all__ = [
    "base",
    "http",
    "load",
    "loadgen",
    "metrics",
    "openapi",
    "pytest_entry",
    "pytest_kind",
    "pytest_plugin",
    "reachability",
    "registry",
    "targeted",
    "thresholds",
]
