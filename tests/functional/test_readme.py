"""The README's command blocks are real runs: each is run again here, against the sample
service, and its output compared with the README's — timings, ports and paths masked, and
the order of checks that run side by side ignored (nothing else)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks.cli.sample_service import SampleService
from tests.helpers import ROOT, user_env

README = (ROOT / "README.md").read_text()
#: A check's progress line: its order follows completion, which concurrency decides.
_PROGRESS = re.compile(r"^  (PASS|FAIL|ERROR|SKIP|TIMEOUT) {4}\S")
_MASKS = [
    (re.compile(r"\((\d+) ms\)"), "(N ms)"),
    (re.compile(r"\[\d+\.\d+s\]"), "[Ns]"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "Ns"),
    (re.compile(r'"duration": [\d.]+'), '"duration": N'),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\S*/test_suites/"), "<root>/test_suites/"),
    (re.compile(r"file://[^\s\"]+?/(?=_unknown-application/)"), "file://<evidence>/"),
    (re.compile(r"d-LOCAL\d+"), "d-LOCAL<time>"),
]


def blocks(heading: str) -> list[str]:
    """The console blocks of the README section under ``heading``."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```console\n(.*?)```", section, re.S)


def commands(block: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs: ``$ `` lines, ``\\`` continuations joined."""
    pairs: list[tuple[str, list[str]]] = []
    lines = iter(block.splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            pairs.append((command, []))
        elif pairs:
            pairs[-1][1].append(line)
    return [(command, "\n".join(out)) for command, out in pairs]


def normal(text: str) -> list[str]:
    """Masked lines, each run of progress items (a check's line and the lines indented
    under it) sorted."""
    lines = []
    for line in text.strip("\n").splitlines():
        for pattern, mask in _MASKS:
            line = pattern.sub(mask, line)
        lines.append(line.rstrip())
    out: list[str] = []
    run: list[list[str]] = []
    for line in [*lines, None]:
        if line is not None and _PROGRESS.match(line):
            run.append([line])
        elif line is not None and run and line.startswith("      "):
            run[-1].append(line)  # the check's failure, under its line
        else:
            out += [item for items in sorted(run) for item in items]
            run = []
            if line is not None:
                out.append(line)
    return out


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder as the README's reader has it (.venv, events, my_suites/shop.yaml from the
    README's own block), and the sample service's green release."""
    folder = tmp_path_factory.mktemp("laptop")
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "events").symlink_to(ROOT / "events")
    (folder / "template.yaml").symlink_to(ROOT / "template.yaml")
    suite = re.search(r"```yaml\n# my_suites/shop\.yaml\n(.*?)```", README, re.S)
    assert suite is not None, "the README's suite block is gone"
    (folder / "my_suites").mkdir()
    (folder / "my_suites" / "shop.yaml").write_text(suite.group(1))
    service = SampleService("green").start()
    try:
        yield folder, service.url
    finally:
        service.stop()


def run(command: str, folder: Path, url: str) -> str:
    done = subprocess.run(
        ["bash", "-c", command.replace("http://127.0.0.1:8080", url)],
        cwd=folder,
        env=user_env(NO_COLOR="1", TERM="dumb"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # a terminal shows both, as the README does
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout + f"__exit {done.returncode}"


def _check(block: str, folder: Path, url: str) -> None:
    status = 0
    for command, expected in commands(block):
        if command == "echo $?":
            assert normal(expected) == [str(status)]
            continue
        out, _, code = run(command, folder, url).rpartition("__exit ")
        status = int(code)
        assert normal(out) == normal(expected), f"$ {command}\n{out}"


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "greenlight").exists(), reason="no .venv")
def test_the_laptop_walkthrough_prints_what_the_readme_shows(laptop: tuple[Path, str]) -> None:
    folder, url = laptop
    found = blocks("Try it on a laptop")
    assert len(found) >= 4
    _, passing, failing, invoked = found[:4]
    _check(passing, folder, url)
    suite = folder / "my_suites" / "shop.yaml"
    original = suite.read_text()
    suite.write_text(original.replace(r"'^1\.5\.'", r"'^2\.'"))  # as the README says
    try:
        _check(failing, folder, url)
    finally:
        suite.write_text(original)
    _check(invoked, folder, url)


def test_make_demo_prints_what_the_readme_shows() -> None:
    """`make demo`'s lines in the README (its `...` stand for lines left out) appear, in
    order, in a real run of the demo."""
    (block,) = [
        b
        for b in blocks("Local invocation: sam local invoke, greenlight invoke and rehearse")
        if b.startswith("$ make demo")
    ]
    shown = [line for line in normal(block.split("\n", 1)[1]) if line != "..."]
    done = subprocess.run(
        [os.fspath(ROOT / ".venv" / "bin" / "greenlight"), "demo"],
        cwd=ROOT,
        env=user_env(NO_COLOR="1", TERM="dumb"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    real = iter(normal(done.stdout))
    missing = [line for line in shown if not any(line == seen for seen in real)]
    assert missing == [], done.stdout
