"""The README's metrics rehearsal against moto's own server, run again as written: the
suite file and the seeding script are the README's blocks, the commands its console lines
(moto on a free port, not 5000), and the output is compared with the README's."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.functional.test_readme import README, commands, normal
from tests.helpers import user_env

SECTION = README.split("**Rehearsed against moto's server**", 1)[1].split("\n### ", 1)[0]
BIN = Path(sys.executable).parent


def block(language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", SECTION, re.S)
    assert len(found) == 1, f"one {language} block expected in the README's rehearsal"
    return str(found[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_s_metrics_rehearsal_against_moto_s_server(tmp_path: Path) -> None:
    (tmp_path / "signals").mkdir()
    (tmp_path / "signals" / "laptop-signals.yaml").write_text(block("yaml"))
    (tmp_path / "seed.py").write_text(block("python"))
    port = free_port()
    steps = commands(block("console").replace(":5000", f":{port}").replace("-p 5000", f"-p {port}"))
    start, export, seed, *runs = steps
    assert start[0].startswith("moto_server -p ")
    env = user_env(PATH=f"{BIN}:{os.environ['PATH']}")
    for name in [n for n in env if n.startswith("AWS_ENDPOINT_URL")]:
        del env[name]
    env.update(re.findall(r"(\w+)=(\S+)", export[0].removeprefix("export ")))
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # until it listens
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        for command, expected in [seed, *runs]:
            command = command.replace("python ", f"{sys.executable} ", 1)
            done = subprocess.run(
                command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=150,
            )  # fmt: skip
            output = done.stdout + done.stderr
            assert normal(output) == normal(expected), f"$ {command}\n{output}"
    finally:
        server.terminate()
        server.wait(10)
