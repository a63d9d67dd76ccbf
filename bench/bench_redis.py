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
            python, "-m", "linechat", "serve", "--only", "redis", "--log-level", "warning",
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the ")" of the name.
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


#: CPUs for the server and for redis-benchmark (set by --pin): on a small
#: machine, letting the scheduler move both around adds noise to every figure.
SERVER_CPUS: set[int] | None = None
CLIENT_CPUS: set[int] | None = None


def _pin_client() -> None:
    if CLIENT_CPUS is not None:
        os.sched_setaffinity(0, CLIENT_CPUS)


@contextmanager
def running(kind: str, python: str) -> Iterator[tuple[int, int]]:
    """Start a server process, wait until it accepts, yield its port and pid, stop it."""
    port = free_port()
    proc = subprocess.Popen(server_command(kind, port, python), cwd=ROOT, stdout=subprocess.DEVNULL)
    if SERVER_CPUS is not None:
        os.sched_setaffinity(proc.pid, SERVER_CPUS)
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
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def benchmark(port: int, pid: int, test: str, requests: int, pipeline: int, clients: int) -> tuple[float, float, float]:
    """Run one redis-benchmark test; return requests/second and the server's user and system CPU us per request."""
    user_before, sys_before = cpu_seconds(pid)
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", test.lower(), "-c", str(clients),
         "-n", str(requests), "-q", "-P", str(pipeline)],
        capture_output=True, text=True, timeout=600, preexec_fn=_pin_client,
    )  # fmt: skip
    user_after, sys_after = cpu_seconds(pid)
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")
    for line in done.stdout.replace("\r", "\n").splitlines():
        match = re.match(r"\s*([A-Z_]+): ([0-9.]+) requests per second", line)
        if match and match.group(1) == test:
            scale = 1e6 / requests
            return float(match.group(2)), (user_after - user_before) * scale, (sys_after - sys_before) * scale
    raise RuntimeError(f"no figure for {test} in {done.stdout[-300:]!r}")


def main() -> None:
    """Run every server through redis-benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests per test without pipelining")
    parser.add_argument("--pipelined-requests", type=int, default=600_000, help="requests per test with -P 16")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--python", default=sys.executable, help="Python for ours and the peers (3.11 for asynchat)")
    parser.add_argument("--only", default="", help="comma-separated servers to run")
    parser.add_argument("--tests", default=",".join(TESTS), help="comma-separated redis-benchmark tests")
    parser.add_argument("--pipelines", default="1,16", help="comma-separated pipeline depths")
    parser.add_argument("--rounds", type=int, default=5, help="runs per server; the best figure of each test counts")
    parser.add_argument(
        "--no-pin", action="store_true", help="let the scheduler place server and client (default: one CPU each)"
    )
    args = parser.parse_args()
    global SERVER_CPUS, CLIENT_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    if pinned:
        SERVER_CPUS, CLIENT_CPUS = {cpus[1]}, {cpus[0]}
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed")
    kinds = ["linechat", "asynchat", "asyncio", "asyncio+uvloop", "redis-server"]
    if args.only:
        kinds = [k for k in kinds if k in args.only.split(",")]
    if shutil.which("redis-server") is None and "redis-server" in kinds:
        kinds.remove("redis-server")
    tests = [t.strip().upper() for t in args.tests.split(",")]
    pipelines = [int(p) for p in args.pipelines.split(",")]
    rates: dict[tuple[str, int, str], float] = {}
    users: dict[tuple[str, int, str], float] = {}
    systems: dict[tuple[str, int, str], float] = {}
    for pipeline in pipelines:
        requests = args.requests if pipeline == 1 else args.pipelined_requests
        # Rounds go round-robin over the servers, so a burst of load from
        # elsewhere on the machine hits one round of each rather than one server.
        for _ in range(args.rounds):
            for kind in kinds:
                with running(kind, args.python) as (port, pid):
                    for test in tests:
                        rate, user, system = benchmark(port, pid, test, requests, pipeline, args.clients)
                        key = (kind, pipeline, test)
                        rates[key] = max(rates.get(key, 0.0), rate)
                        users[key] = min(users.get(key, user), user)
                        systems[key] = min(systems.get(key, system), system)
                        print(f"# {kind} -P {pipeline} {test}: {rate:,.0f} requests/s, server CPU "
                              f"{user:.2f} us user + {system:.2f} us system per request",
                              file=sys.stderr, flush=True)  # fmt: skip
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
          f"-c {args.clients}, -n {args.requests} (-P 1) / {args.pipelined_requests} (pipelined), "
          f"best of {args.rounds}, " + ("server and client pinned to one CPU each" if pinned else "not pinned")
          + "\n")  # fmt: skip
    header = "| pipeline | test | " + " | ".join(kinds) + " | " + " | ".join(f"ours/{k}" for k in kinds[1:]) + " |"
    rule = "|---" * (2 + 2 * len(kinds) - 1) + "|"
    print("Requests per second (higher is better; ratio: ours / peer):\n")
    print(header)
    print(rule)
    for pipeline in pipelines:
        for test in tests:
            row = [rates[k, pipeline, test] for k in kinds]
            ratios = [row[0] / value if value else 0.0 for value in row[1:]]
            print(f"| -P {pipeline} | {test} | " + " | ".join(f"{v:,.0f}" for v in row) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip
    # Requests/s of a server at full load follow from its CPU per request;
    # user time is the server's own code, system time mostly the kernel's
    # TCP work for its send and recv calls (the same calls for every server).
    for label, table in (("user", users), ("system", systems)):
        print(f"\nServer {label} CPU microseconds per request, least of the rounds "
              "(lower is better; ratio: peer / ours):\n")  # fmt: skip
        print(header)
        print(rule)
        for pipeline in pipelines:
            for test in tests:
                row = [table[k, pipeline, test] for k in kinds]
                ratios = [value / row[0] if row[0] else 0.0 for value in row[1:]]
                print(f"| -P {pipeline} | {test} | " + " | ".join(f"{v:.2f}" for v in row) + " | "
                      + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
