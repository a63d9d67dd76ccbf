"""Redis servers for the benchmarks: ours, redis-server and fakeredis's TCP server, each in its own process.

Imported by the bench scripts (run from ``bench/``, which Python puts on the path).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKEREDIS = """
import sys
from fakeredis import TcpFakeServer
server = TcpFakeServer(("127.0.0.1", int(sys.argv[1])), server_type="redis", server_version=(7, 0))
server.serve_forever()
"""


def benchmark_rate(port: int, command: list[str], *, requests: int, pipeline: int, clients: int) -> float:
    """Requests per second of one ``redis-benchmark -q`` run of *command* (its own arguments, e.g. ``-r N``, first)."""
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests), "-q", "-P", str(pipeline),
         *command],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    for line in done.stdout.replace("\r", "\n").splitlines():
        match = re.search(r"([0-9.]+) requests per second", line)
        if match:
            return float(match.group(1))
    raise RuntimeError(f"redis-benchmark failed: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, port: int, python: str, label: str = "bench") -> list[str]:
    """The command line that starts server *kind* (linechat, redis-server, fakeredis) on *port*, without persistence."""
    if kind == "linechat":
        return [
            python, "-m", "linechat", "serve", "--only", "redis", "--log-level", "warning",
            "--data-dir", f"/tmp/linechat-{label}-{os.getpid()}",
            "--set", f"services.redis.port={port}", "--set", "services.redis.appendonly=false",
        ]  # fmt: skip
    if kind == "redis-server":
        return ["redis-server", "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"]
    if kind == "fakeredis":
        return [python, "-c", FAKEREDIS, str(port)]
    raise ValueError(kind)


@contextmanager
def running(kind: str, python: str, label: str = "bench") -> Iterator[tuple[int, int]]:
    """Start a server process, wait until it accepts, yield (port, pid), stop it."""
    port = free_port()
    with started(server_command(kind, port, python, label), port, kind) as pid:
        yield port, pid


@contextmanager
def started(command: list[str], port: int, name: str, within: float = 30) -> Iterator[int]:
    """Run *command*, wait until *port* accepts, yield its pid, stop it."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + within
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.05)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
