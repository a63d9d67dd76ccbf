"""Blocking hand-off: BLPOP/LPUSH ping-pong round trips, ours against redis-server (and fakeredis) in one run.

Run: ``.venv/bin/python bench/bench_redis_blocking.py`` (``--help`` for options;
``redis-server`` and fakeredis are used when present).

Each server runs in its own process on a free loopback port.  Two client
threads, each with its own connection, pass a token back and forth through
two lists::

    A: BLPOP ping 0  -> (gets the token) -> LPUSH pong x
    B: LPUSH ping x  -> BLPOP pong 0     -> (gets the token) -> LPUSH ping x ...

so every hand-off wakes a client blocked in BLPOP (the waiter is usually
parked before the push arrives; the count of pushes that found it parked is
not measured).  A round trip is two hand-offs.  The rounds go round-robin
over the servers so background load falls on all of them alike; the best
of ``--rounds`` counts.  Prints a Markdown table of round trips per second,
server CPU per round trip (from /proc), and our ratio to each peer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import threading
import time
from contextlib import ExitStack

from redis_servers import running


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmd(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


class _Conn:
    """A blocking socket that reads one whole reply of the shapes this benchmark gets."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, data: bytes, end: bytes) -> None:
        """Send a command and read until the buffer ends with *end* (the whole expected reply)."""
        self.sock.sendall(data)
        while not self.buf.endswith(end):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed")
            self.buf += chunk
        self.buf = b""


def round_trips(port: int, count: int) -> float:
    """Run *count* ping-pong round trips; return the seconds they took."""
    a, b = _Conn(port), _Conn(port)
    a.call(_cmd(b"DEL", b"ping", b"pong"), b"\r\n")
    blpop_ping, blpop_pong = _cmd(b"BLPOP", b"ping", b"0"), _cmd(b"BLPOP", b"pong", b"0")
    push_ping, push_pong = _cmd(b"LPUSH", b"ping", b"x"), _cmd(b"LPUSH", b"pong", b"x")
    got_ping, got_pong = b"$4\r\nping\r\n$1\r\nx\r\n", b"$4\r\npong\r\n$1\r\nx\r\n"
    start = threading.Barrier(2)

    def side_a() -> None:
        start.wait()
        for _ in range(count):
            a.call(blpop_ping, got_ping)
            a.call(push_pong, b":1\r\n")

    worker = threading.Thread(target=side_a)
    worker.start()
    start.wait()
    began = time.perf_counter()
    for _ in range(count):
        b.call(push_ping, b"\r\n")
        b.call(blpop_pong, got_pong)
    elapsed = time.perf_counter() - began
    worker.join()
    a.sock.close()
    b.sock.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="round trips per run (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="runs per server, best counts (default 5)")
    parser.add_argument("--python", default=sys.executable, help="Python that runs our server")
    args = parser.parse_args()
    kinds = ["linechat"]
    if shutil.which("redis-server"):
        kinds.append("redis-server")
    try:
        import fakeredis  # noqa: F401

        kinds.append("fakeredis")
    except ImportError:
        pass
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with ExitStack() as stack:
        servers = {kind: stack.enter_context(running(kind, args.python, "blocking")) for kind in kinds}
        for port, _ in servers.values():
            round_trips(port, 200)  # warm up: connections, caches, the fast table
        for _ in range(args.rounds):
            for kind, (port, pid) in servers.items():
                before = cpu_seconds(pid)
                elapsed = round_trips(port, args.count)
                used = cpu_seconds(pid) - before
                rate = args.count / elapsed
                if rate > best.get(kind, 0.0):
                    best[kind] = rate
                cpu[kind] = min(cpu.get(kind, float("inf")), used / args.count * 1e6)
    print(f"BLPOP/LPUSH ping-pong, {args.count} round trips (2 hand-offs each), best of {args.rounds}\n")
    print("| server | round trips/s | server CPU us per round trip | ours / this |")
    print("|---|---|---|---|")
    for kind in kinds:
        ratio = best["linechat"] / best[kind]
        print(f"| {kind} | {best[kind]:,.0f} | {cpu[kind]:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
