"""The evidence store on a laptop: the hook's bundle, written to a folder instead of S3.

``greenlight run``, ``invoke`` and ``rehearse`` write each run's bundle — ``result.json``,
``junit.xml``, ``report.html`` and, for a handed-off plan, ``shards/<n>.json`` — under the
same keys the hook uses in its bucket, in a folder: ``--evidence DIR``, else
``$GREENLIGHT_EVIDENCE_DIR``, else ``~/.local/state/greenlight/evidence``. ``greenlight
report`` reads it as it reads the bucket, and ``--list`` shows the recent runs.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DIR", "DirectoryBucket", "StoredRun", "evidence_dir", "recent_runs"]

#: Where a laptop's evidence goes when neither the flag nor the variable says.
DEFAULT_DIR = Path("~/.local/state/greenlight/evidence")


def evidence_dir(flag: Path | None) -> Path:
    """The folder: the flag's, the variable's, or the default (made when first written)."""
    chosen = flag or os.environ.get("GREENLIGHT_EVIDENCE_DIR") or DEFAULT_DIR
    return Path(chosen).expanduser()


class _NoSuchKey(KeyError):
    """A key the folder does not hold (as S3's ``NoSuchKey``)."""


class _Exceptions:
    NoSuchKey = _NoSuchKey


class DirectoryBucket:
    """The few S3 calls the bundle, the shards and ``report`` make, on a folder. A key names
    a file below the folder; one that would leave it is refused."""

    exceptions = _Exceptions

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"the key {key!r} leaves the evidence folder {self.root}")
        return path

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        path = self._path(Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(Body))
        return {}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        path = self._path(Key)
        if not path.is_file():
            raise _NoSuchKey(Key)
        return {"Body": io.BytesIO(path.read_bytes())}

    def url(self, prefix: str) -> str:
        """Where a bundle is, as the summary and the command line show it."""
        return self._path(prefix).as_uri() + "/"


@dataclass(frozen=True)
class StoredRun:
    """One bundle in the folder, as ``report --list`` shows it."""

    deployment_id: str
    event: str
    verdict: str
    application: str | None
    deployment_group: str | None
    written: float
    folder: Path


def recent_runs(root: Path, most: int = 20) -> list[StoredRun]:
    """The newest bundles first (each ``result.json`` below the folder that reads)."""
    found: list[StoredRun] = []
    for path in root.glob("*/*/*/*/result.json"):
        try:
            report = json.loads(path.read_text())
            written = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if not isinstance(report, dict):
            continue
        found.append(
            StoredRun(
                str(report.get("deployment_id", "?")),
                str(report.get("lifecycle_event", "?")),
                str(report.get("verdict", "?")),
                report.get("application"),
                report.get("deployment_group"),
                written,
                path.parent,
            )
        )
    return sorted(found, key=lambda run: run.written, reverse=True)[:most]
