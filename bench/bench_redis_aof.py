"""Redis writes with the append-only file on: ours against redis-server, appendfsync everysec and always.

Run: ``.venv/bin/python bench/bench_redis_aof.py`` (needs ``redis-benchmark`` and
``redis-server``; ``--help`` for options).  Each server runs in its own process
on a free loopback port with a fresh data directory and its AOF on, and gets::

    redis-benchmark -p PORT -t set,incr,lpush -c 20 -n N -q -P 1   (and -P 16)

Ours writes each batch's records before its replies and fsyncs on a thread
(everysec), or fsyncs each write before its reply (always); redis-server
writes before replying too.  It prints requests/second (best of ``--rounds``,
taken round-robin) and our ratio to redis-server per policy.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_redis import ROOT, benchmark, free_port

POLICIES = ["everysec", "always"]


def command(kind: str, policy: str, port: int, data_dir: str, python: str) -> list[str]:
    """The command line of server *kind* with its AOF on under *policy*."""
    if kind == "ours":
        return [
            python, "-m", "linechat", "serve", "--only", "redis", "--log-level", "warning", "--data-dir", data_dir,
            "--set", f"services.redis.port={port}", "--set", f"services.redis.appendfsync={policy}",
            "--set", "services.redis.backlog=1024",
        ]  # fmt: skip
    return ["redis-server", "--save", "", "--appendonly", "yes", "--appendfsync", policy, "--port", str(port),
            "--bind", "127.0.0.1", "--dir", data_dir]  # fmt: skip


@contextmanager
def running(kind: str, policy: str, python: str) -> Iterator[tuple[int, int]]:
    """Start a server with a fresh data directory; yield its port and pid; stop it."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-aof-") as data_dir:
        proc = subprocess.Popen(command(kind, policy, port, data_dir, python), cwd=ROOT, stdout=subprocess.DEVNULL)
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
            yield port, proc.pid
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    """Run both servers under each policy and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests per test without pipelining")
    parser.add_argument("--pipelined-requests", type=int, default=200_000, help="requests per test with -P 16")
    parser.add_argument("--always-requests", type=int, default=5_000, help="requests per test under always")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--tests", default="SET,INCR,LPUSH")
    parser.add_argument("--pipelines", default="1,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        sys.exit("redis-benchmark and redis-server are needed")
    tests = [t.strip().upper() for t in args.tests.split(",")]
    pipelines = [int(p) for p in args.pipelines.split(",")]
    rates: dict[tuple[str, str, int, str], float] = {}
    for policy in POLICIES:
        for pipeline in pipelines:
            if policy == "always":
                requests = args.always_requests
            else:
                requests = args.requests if pipeline == 1 else args.pipelined_requests
            for _ in range(args.rounds):
                for kind in ("ours", "redis-server"):
                    with running(kind, policy, args.python) as (port, pid):
                        for test in tests:
                            rate, _user, _system = benchmark(port, pid, test, requests, pipeline, args.clients)
                            key = (kind, policy, pipeline, test)
                            rates[key] = max(rates.get(key, 0.0), rate)
                            print(f"# {kind} {policy} -P {pipeline} {test}: {rate:,.0f} requests/s",
                                  file=sys.stderr, flush=True)  # fmt: skip
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
          f"-c {args.clients}, best of {args.rounds}\n")  # fmt: skip
    print("| appendfsync | pipeline | test | ours | redis-server | ours/redis-server |")
    print("|---|---|---|---|---|---|")
    for policy in POLICIES:
        for pipeline in pipelines:
            for test in tests:
                ours, theirs = rates["ours", policy, pipeline, test], rates["redis-server", policy, pipeline, test]
                print(f"| {policy} | -P {pipeline} | {test} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
