"""Redis throughput: our Redis service against minimal peers and a real redis-server, with redis-benchmark.

Run: ``.venv/bin/python bench/bench_redis.py`` (Python 3.11 for the asynchat peer;
``--help`` for options).  Needs ``redis-benchmark``; ``redis-server`` and uvloop are
used when present.

Every server runs in its own process on a free loopback port, one after
another, and gets the same client::

    redis-benchmark -p PORT -t ping_inline,set,get -c 50 -n N -q -P 1   (and -P 16)

Servers: ours (``linechat serve --only redis``, AOF off), the same minimal
server (PING/SET/GET, inline and RESP) on the standard library's asynchat
and on asyncio (with and without uvloop) from ``bench/peers/``, and a real
``redis-server`` (no persistence).  It prints a Markdown table of
requests/second (best of ``--rounds`` runs, taken round-robin) and our
ratio to each peer; ratios from one run are what count (redis-benchmark
itself uses a core).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ["PING_INLINE", "SET", "GET"]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(kind: str, port: int, python: str) -> list[str]:
    """The command line that starts server *kind* on *port*."""
    peers = os.path.join(ROOT, "bench", "peers")
    if kind == "linechat":
        return [
            python, "-m", "framework.cli", "serve", "--only", "redis", "--log-level", "warning",
            "--data-dir", f"/tmp/linechat-bench-redis-{os.getpid()}",
            "--set", f"services.redis.port={port}", "--set", "services.redis.appendonly=false",
            "--set", "services.redis.backlog=1024",
        ]  # fmt: skip
    if kind == "asynchat":
        return [python, os.path.join(peers, "asynchat_redis.py"), str(port)]
    if kind == "asyncio":
        return [python, os.path.join(peers, "asyncio_redis.py"), str(port)]
    if kind == "asyncio+uvloop":
        return [python, os.path.join(peers, "asyncio_redis.py"), str(port), "--uvloop"]
    if kind == "redis-server":
        return ["redis-server", "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"]
    raise ValueError(kind)


@contextmanager
def running(kind: str, python: str) -> Iterator[int]:
    """Start a server process, wait until it accepts, yield its port, stop it."""
    port = free_port()
    proc = subprocess.Popen(server_command(kind, port, python), cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def benchmark(port: int, requests: int, pipeline: int, clients: int) -> dict[str, float]:
    """Run redis-benchmark once; return requests/second per test."""
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "ping_inline,set,get", "-c", str(clients),
         "-n", str(requests), "-q", "-P", str(pipeline)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")
    figures = {}
    for line in done.stdout.replace("\r", "\n").splitlines():
        match = re.match(r"\s*([A-Z_]+): ([0-9.]+) requests per second", line)
        if match:
            figures[match.group(1)] = float(match.group(2))
    return figures


def main() -> None:
    """Run every server through redis-benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests per test without pipelining")
    parser.add_argument("--pipelined-requests", type=int, default=400_000, help="requests per test with -P 16")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--python", default=sys.executable, help="Python for ours and the peers (3.11 for asynchat)")
    parser.add_argument("--only", default="", help="comma-separated servers to run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per server; the best figure of each test counts")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed")
    kinds = ["linechat", "asynchat", "asyncio", "asyncio+uvloop", "redis-server"]
    if args.only:
        kinds = [k for k in kinds if k in args.only.split(",")]
    if shutil.which("redis-server") is None:
        kinds.remove("redis-server")
    results: dict[tuple[str, int], dict[str, float]] = {}
    for pipeline, requests in ((1, args.requests), (16, args.pipelined_requests)):
        # Rounds go round-robin over the servers, so a burst of load from
        # elsewhere on the machine hits one round of each rather than one server.
        for _ in range(args.rounds):
            for kind in kinds:
                with running(kind, args.python) as port:
                    figures = benchmark(port, requests, pipeline, args.clients)
                best = results.setdefault((kind, pipeline), {})
                for test, value in figures.items():
                    best[test] = max(best.get(test, 0.0), value)
                print(f"# {kind} -P {pipeline}: {figures}", file=sys.stderr, flush=True)
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
          f"-c {args.clients}, -n {args.requests} (-P 1) / {args.pipelined_requests} (-P 16), "
          f"best of {args.rounds}\n")  # fmt: skip
    print("| pipeline | test | " + " | ".join(kinds) + " | " + " | ".join(f"ours/{k}" for k in kinds[1:]) + " |")
    print("|---" * (2 + 2 * len(kinds) - 1) + "|")
    for pipeline in (1, 16):
        for test in TESTS:
            row = [results[k, pipeline].get(test, 0.0) for k in kinds]
            ratios = [row[0] / value if value else 0.0 for value in row[1:]]
            print(f"| -P {pipeline} | {test} | " + " | ".join(f"{v:,.0f}" for v in row) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
