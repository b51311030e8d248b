"""The small shared pieces every layer uses: settings, the deadline, results, the verdict's
types, redaction, YAML files, HTTP sessions, the lifecycle event, the target.

May import: the standard library and third-party packages only (no other ``hooks``
folder). Imported by every other folder.
"""

__all__ = [
    "deadline",
    "exceptions",
    "http",
    "lifecycle",
    "log",
    "pool",
    "redact",
    "results",
    "settings",
    "target",
    "validators",
    "verdict",
    "yamlfile",
]
