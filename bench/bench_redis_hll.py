"""HyperLogLog: PFADD throughput and memory per small key, our Redis service beside redis-server in one run.

Run: ``.venv/bin/python bench/bench_redis_hll.py`` (``--help`` for options).
Needs ``redis-benchmark``; ``redis-server`` is measured when present.

Each server runs in its own process on a free loopback port, one after
another, and gets the same client::

    small:  redis-benchmark -P 16 -c 50 -n N -r 2000 PFADD hll:__rand_int__ __rand_int__
    large:  redis-benchmark -P 16 -c 50 -n N -r 1500 PFADD big __rand_int__

``small`` spreads the elements over 2,000 keys (about a hundred each: small
sparse values on redis-server).  ``large`` first fills one key with the
1,500 elements redis-benchmark will send (a 2,728-byte sparse value on
redis-server, near the 3,000-byte limit), so every request looks up a
register in the longest sparse value there is and finds it already set.
``memory`` adds 10 elements to each of 5,000 keys and reports the server's
resident memory growth per key (``VmRSS`` from ``/proc``) and the ``STRLEN``
of one key.  Requests per second are the best of ``--rounds``; only ratios
from the same run count.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys

from redis_servers import benchmark_rate, running

WORKLOADS = {
    "small": ("-r", "2000", "PFADD", "hll:__rand_int__", "__rand_int__"),
    "large": ("-r", "1500", "PFADD", "big", "__rand_int__"),
}
LARGE_ELEMENTS = [b"%012d" % i for i in range(1500)]  # what redis-benchmark sends for __rand_int__ with -r 1500


def command(*args: bytes) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def send_all(port: int, commands: list[bytes]) -> list[bytes]:
    """Pipeline *commands* on one connection; the reply lines (each command here answers with one line)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"".join(commands))
        data = b""
        while data.count(b"\r\n") < len(commands):
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("server closed the connection")
            data += chunk
    return data.split(b"\r\n")[: len(commands)]


def rate(port: int, workload: str, requests: int, pipeline: int, clients: int) -> float:
    """Requests per second of redis-benchmark running *workload*."""
    return benchmark_rate(port, WORKLOADS[workload], requests=requests, pipeline=pipeline, clients=clients)


def rss(pid: int) -> int:
    """Resident memory of a process in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def memory(port: int, pid: int, keys: int) -> tuple[float, int]:
    """(resident bytes per key, STRLEN of one key) after adding 10 elements to each of *keys* new keys."""
    before = rss(pid)
    for start in range(0, keys, 1000):
        send_all(
            port, [command(b"PFADD", b"m:%d" % k, *(b"e%d" % i for i in range(10))) for k in range(start, start + 1000)]
        )
    after = rss(pid)
    length = int(send_all(port, [command(b"STRLEN", b"m:0")])[0][1:])
    return (after - before) / keys, length


def main() -> None:
    """Measure every available server and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=200000, help="requests per measurement")
    parser.add_argument("-c", "--clients", type=int, default=50, help="redis-benchmark connections")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server and workload (best kept)")
    parser.add_argument("--pipelines", default="16", help="comma-separated pipeline depths")
    parser.add_argument("--keys", type=int, default=5000, help="keys of the memory measurement")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed")
    kinds = ["linechat"] + (["redis-server"] if shutil.which("redis-server") else [])
    pipelines = [int(p) for p in args.pipelines.split(",")]
    best: dict[tuple[str, str, int], float] = {}
    sizes: dict[str, tuple[float, int]] = {}
    for round_ in range(args.rounds):
        for kind in kinds:
            with running(kind, sys.executable, "hll") as (port, pid):
                if round_ == 0:
                    sizes[kind] = memory(port, pid, args.keys)
                for workload in WORKLOADS:
                    if workload == "large":
                        send_all(port, [command(b"DEL", b"big"), command(b"PFADD", b"big", *LARGE_ELEMENTS)])
                    for pipeline in pipelines:
                        value = rate(port, workload, args.requests, pipeline, args.clients)
                        key = (kind, workload, pipeline)
                        best[key] = max(best.get(key, 0.0), value)
                    if workload == "large":
                        length = send_all(port, [command(b"STRLEN", b"big")])[0]
                        print(f"{kind}: STRLEN big after the run {length.decode()}", file=sys.stderr)
    print(f"PFADD requests per second, {args.clients} clients, {args.requests} requests, best of {args.rounds}")
    print()
    print("| workload | pipeline | " + " | ".join(kinds) + " | " + " | ".join(f"ours / {k}" for k in kinds[1:]) + " |")
    print("|---" * (2 + len(kinds) + len(kinds) - 1) + "|")
    for workload in WORKLOADS:
        for pipeline in pipelines:
            ours = best["linechat", workload, pipeline]
            cells = [f"{best[k, workload, pipeline]:,.0f}" for k in kinds]
            ratios = [f"{ours / best[k, workload, pipeline]:.2f}" for k in kinds[1:]]
            print(f"| {workload} | {pipeline} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    print()
    print(f"Memory: {args.keys} keys of 10 elements each")
    print()
    print("| server | resident bytes per key | STRLEN of a key |")
    print("|---|---|---|")
    for kind in kinds:
        per_key, length = sizes[kind]
        print(f"| {kind} | {per_key:,.0f} | {length} |")


if __name__ == "__main__":
    main()
