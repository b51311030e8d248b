"""The ``greenlight`` command line: each command in a module of its own (:mod:`.main` only
registers them), for developing suites on a laptop and rehearsing deployments without AWS.

May import: every folder. Nothing imports it but the ``greenlight`` entry point.
"""

__all__ = [
    "appspec",
    "console",
    "demo",
    "doctor",
    "evidence_store",
    "local",
    "main",
    "rehearse",
    "rehearse_ecs",
    "report",
    "sample_service",
    "template",
    "validate",
]
