"""Sorted sets at size: pipelined ZADD and ZRANGEBYSCORE ... LIMIT 0 10 on 10k and 1M members.

Run: ``.venv/bin/python bench/bench_redis_zset.py`` (``--help`` for options;
needs ``redis-benchmark``; ``redis-server`` and fakeredis are used when
present).

Servers, one after another, each in its own process on a free loopback
port: ours (``linechat serve --only redis``, AOF off), a real
``redis-server`` (no persistence) and fakeredis's TCP server
(``fakeredis.TcpFakeServer``).  For each size the sorted set ``bench:z`` is
loaded with members ``m:000000000000`` ... (score = the number), then::

    redis-benchmark -P 16 -c 50 -r SIZE -n N ZADD bench:z __rand_int__ m:__rand_int__
    redis-benchmark -P 16 -c 50 -r SIZE -n N ZRANGEBYSCORE bench:z __rand_int__ +inf LIMIT 0 10

ZADD moves existing members to random scores (the set keeps its size); the
range starts at a random score.  At each size all servers run at once and
the runs go round-robin over them (test by test, round by round), so load
from elsewhere on the machine falls on every server alike.  The best of
``--rounds`` runs counts; a Markdown table of requests/second and our ratio
to each peer is printed, then each server's CPU time per request (user +
system from ``/proc/<pid>/stat`` around each run, the least of the rounds),
which moves less than the rates when other work shares the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack

from bench_redis import cpu_seconds
from redis_servers import running


def _command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def load(port: int, size: int) -> float:
    """Fill bench:z with *size* members in pipelined ZADDs of 1,000; return the seconds it took."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_command(b"DEL", b"bench:z"))
        batches = 0
        for first in range(0, size, 1000):
            words = [b"ZADD", b"bench:z"]
            for i in range(first, min(first + 1000, size)):
                words += [b"%d" % i, b"m:%012d" % i]
            sock.sendall(_command(*words))
            batches += 1
        # One reply line per command (":n\r\n"): read until every one has come.
        expected = batches + 1
        seen = 0
        while seen < expected:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("server closed while loading")
            seen += chunk.count(b"\r\n")
        sock.sendall(_command(b"ZCARD", b"bench:z"))
        reply = sock.recv(100)
    if reply != b":%d\r\n" % size:
        raise RuntimeError(f"load gave {reply!r}")
    return time.perf_counter() - started


def benchmark(port: int, size: int, words: list[str], requests: int, pipeline: int, clients: int) -> float:
    """Run one redis-benchmark custom command; return requests/second."""
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests), "-P", str(pipeline),
         "-r", str(size), "-q", *words],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")
    for line in done.stdout.replace("\r", "\n").splitlines():
        match = re.match(r"\s*(.+): ([0-9.]+) requests per second", line)
        if match:
            return float(match.group(2))
    raise RuntimeError(f"no figure in {done.stdout[-300:]!r}")


TESTS = {
    "ZADD": ["ZADD", "bench:z", "__rand_int__", "m:__rand_int__"],
    "ZRANGEBYSCORE LIMIT 0 10": ["ZRANGEBYSCORE", "bench:z", "__rand_int__", "+inf", "LIMIT", "0", "10"],
}


def main() -> None:
    """Run every server at every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated member counts")
    parser.add_argument("--requests", type=int, default=200_000, help="requests per test")
    parser.add_argument("--fakeredis-requests", type=int, default=20_000, help="requests per test for fakeredis")
    parser.add_argument(
        "--fakeredis-large-requests",
        type=int,
        default=400,
        help="requests per test for fakeredis from 100k members up (its ranges slow down with size)",
    )
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="runs per test; the best counts")
    parser.add_argument("--python", default=sys.executable, help="Python for ours and fakeredis")
    parser.add_argument("--only", default="", help="comma-separated servers to run")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed")
    kinds = ["linechat", "redis-server", "fakeredis"]
    if args.only:
        kinds = [k for k in kinds if k in args.only.split(",")]
    if shutil.which("redis-server") is None and "redis-server" in kinds:
        kinds.remove("redis-server")
    probe = subprocess.run([args.python, "-c", "import fakeredis; fakeredis.TcpFakeServer"], capture_output=True)
    if probe.returncode != 0 and "fakeredis" in kinds:
        print("# fakeredis with a TCP server is not installed: left out", file=sys.stderr)
        kinds.remove("fakeredis")
    sizes = [int(s) for s in args.sizes.split(",")]
    rates: dict[tuple[str, int, str], float] = {}
    cpu_us: dict[tuple[str, int, str], float] = {}  # server CPU per request, microseconds
    for size in sizes:
        with ExitStack() as stack:
            servers = {kind: stack.enter_context(running(kind, args.python, "zset")) for kind in kinds}
            for kind, (port, _) in servers.items():
                seconds = load(port, size)
                print(f"# {kind}: loaded {size:,} members in {seconds:.1f} s", file=sys.stderr, flush=True)
            for _ in range(args.rounds):
                for test, words in TESTS.items():
                    for kind, (port, pid) in servers.items():
                        requests = args.requests
                        if kind == "fakeredis":
                            requests = args.fakeredis_requests if size < 100_000 else args.fakeredis_large_requests
                        before = sum(cpu_seconds(pid))
                        rate = benchmark(port, size, words, requests, args.pipeline, args.clients)
                        used = (sum(cpu_seconds(pid)) - before) / requests * 1e6
                        key = (kind, size, test)
                        rates[key] = max(rates.get(key, 0.0), rate)
                        cpu_us[key] = min(cpu_us.get(key, float("inf")), used)
                        print(f"# {kind} {size:,} {test}: {rate:,.0f} requests/s, {used:.2f} us CPU/request",
                              file=sys.stderr, flush=True)  # fmt: skip
    print(f"{os.cpu_count()} cores, -P {args.pipeline} -c {args.clients}, -n {args.requests} "
          f"({args.fakeredis_requests} for fakeredis, {args.fakeredis_large_requests} from 100k members), "
          f"best of {args.rounds}\n")  # fmt: skip
    header = "| members | test | " + " | ".join(kinds) + " | " + " | ".join(f"ours/{k}" for k in kinds[1:]) + " |"
    print("Requests per second (higher is better; ratio: ours / peer):\n")
    print(header)
    print("|---" * (2 + 2 * len(kinds) - 1) + "|")
    for size in sizes:
        for test in TESTS:
            row = [rates[k, size, test] for k in kinds]
            ratios = [row[0] / value if value else 0.0 for value in row[1:]]
            print(f"| {size:,} | {test} | " + " | ".join(f"{v:,.0f}" for v in row) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip
    print("\nServer CPU per request, microseconds, user + system (least of the rounds; ratio: peer's / ours):\n")
    print("| members | test | " + " | ".join(kinds) + " | " + " | ".join(f"{k}/ours" for k in kinds[1:]) + " |")
    print("|---" * (2 + 2 * len(kinds) - 1) + "|")
    for size in sizes:
        for test in TESTS:
            row = [cpu_us[k, size, test] for k in kinds]
            ratios = [value / row[0] if row[0] else 0.0 for value in row[1:]]
            print(f"| {size:,} | {test} | " + " | ".join(f"{v:.2f}" for v in row) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip
    if "linechat" in kinds and len(sizes) > 1:
        print("\nOurs from the smallest to the largest size (1.00 = flat):\n")
        for test in TESTS:
            low, high = rates["linechat", sizes[0], test], rates["linechat", sizes[-1], test]
            print(f"- {test}: {high / low:.2f}")


if __name__ == "__main__":
    main()
