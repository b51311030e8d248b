"""Run a command while busy processes keep every core loaded (twice as many as cores).

    python .ci/under_load.py COMMAND [ARG ...]

The tests that start processes or measure time must hold on a busy machine: CI runs them
a second time under this load. The busy processes end with the command, whatever happens,
and each ends by itself after an hour if this script is killed first.
"""

from __future__ import annotations

import os
import subprocess
import sys

BUSY = "import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end:\n    pass\n"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    count = 2 * (os.cpu_count() or 1)
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(count)]
    print(f"under load: {count} busy processes on {os.cpu_count()} cores", flush=True)
    try:
        return subprocess.run(argv, check=False).returncode
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
