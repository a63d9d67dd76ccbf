"""How many backplane messages one redis-server fans out: PUBLISH rate against the number of subscribers.

Run: ``.venv/bin/python bench/bench_backplane_redis.py`` (options: ``--subscribers 0,1,2,4,8``,
``--requests``, ``--pipeline``, ``--size``).

The chat service's Redis backplane publishes every change and every message
once, on one channel, and every node subscribes to it; so a network of N
nodes costs redis-server one PUBLISH and N deliveries per chat message.  This
starts a throw-away redis-server on a loopback port, N subscribers that read
and discard as fast as they can (one process each, raw sockets: the figure is
Redis's, not a client library's), and measures with ``redis-benchmark``
(50 connections, pipelined like the backplane's publisher) the PUBLISH rate
of a message the size of a backplane chat message.  It then checks that
every subscriber received every message (Redis cuts a subscriber that falls
too far behind: ``client-output-buffer-limit pubsub``; ``--unlimited`` lifts
the limit, for a machine whose sinks cannot keep up), and reports
publishes/s and deliveries/s (publishes x subscribers), and redis-server's
CPU time per delivery.
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHANNEL = "linechat:chat:events"


def sink(port: int, ready: multiprocessing.Event, counted: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Subscribe, then read and discard until the connection closes; report the bytes received."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"*2\r\n$9\r\nSUBSCRIBE\r\n${len(CHANNEL)}\r\n{CHANNEL}\r\n".encode())
    confirmation = b""
    while confirmation.count(b"\r\n") < 6:
        confirmation += sock.recv(4096)
    ready.set()
    total = len(confirmation.split(b"\r\n", 6)[6])  # what came after the confirmation's six lines
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    counted.put(total)


def redis_cpu(pid: int) -> float:
    """CPU seconds redis-server has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(subscribers: int, args: argparse.Namespace) -> tuple[float, float, bool]:
    """One redis-server, *subscribers* sinks, one redis-benchmark: (publishes/s, CPU us per delivery, all delivered)."""
    from linechat.testing import connect_when_listening, free_port

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         *(["--client-output-buffer-limit", "pubsub 0 0 0"] if args.unlimited else [])],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        connect_when_listening(port).close()
        counted: multiprocessing.Queue[int] = multiprocessing.Queue()
        sinks = []
        for _ in range(subscribers):
            ready = multiprocessing.Event()
            proc = multiprocessing.Process(target=sink, args=(port, ready, counted), daemon=True)
            proc.start()
            ready.wait(30)
            sinks.append(proc)
        payload = "x" * args.size
        cpu = redis_cpu(server.pid)
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(args.requests), "-P", str(args.pipeline),
             "--csv", "PUBLISH", CHANNEL, payload],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        used = redis_cpu(server.pid) - cpu
        rows = list(csv.reader(io.StringIO(out)))
        rate = float(rows[-1][1])
        # Each message a subscriber gets: *3 $7 message $<channel> $<payload>.
        per_message = len(
            f"*3\r\n$7\r\nmessage\r\n${len(CHANNEL)}\r\n{CHANNEL}\r\n${len(payload)}\r\n{payload}\r\n".encode()
        )
        # What Redis still holds for a slow subscriber is sent before the sinks are stopped.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listing = subprocess.run(
                ["redis-cli", "-p", str(port), "client", "list", "type", "pubsub"], capture_output=True, text=True
            ).stdout
            if all(" omem=0 " in line and " obl=0 " in line for line in listing.splitlines()):
                break
            time.sleep(0.1)
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
        totals = [counted.get(timeout=60) for _ in sinks]
        complete = all(total >= per_message * args.requests for total in totals)
        deliveries = args.requests * max(subscribers, 1)
        return rate, used / deliveries * 1e6, complete
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(10)


def main() -> None:
    """Measure each subscriber count in turn and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", default="0,1,2,4,8", help="comma-separated subscriber counts")
    parser.add_argument("--requests", type=int, default=1_000_000, help="PUBLISH commands per measurement")
    parser.add_argument("--pipeline", type=int, default=32, help="commands per round trip (-P of redis-benchmark)")
    parser.add_argument("--size", type=int, default=190, help="message bytes (a backplane chat message is ~190)")
    parser.add_argument(
        "--unlimited",
        action="store_true",
        help="no output buffer limit for subscribers (none is cut off when the sinks lag on a busy machine)",
    )
    args = parser.parse_args()
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(
        f"redis-server {version.removeprefix('v=')}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{args.requests:,} PUBLISH of {args.size} bytes, 50 connections, pipeline {args.pipeline}"
    )
    for count in (int(n) for n in args.subscribers.split(",")):
        rate, cpu, complete = run(count, args)
        deliveries = rate * count
        note = "" if complete else "  (a subscriber was cut off: not every message arrived)"
        print(
            f"{count:>3} subscribers: {rate:>12,.0f} publishes/s  {deliveries:>12,.0f} deliveries/s  "
            f"redis-server CPU {cpu:.2f} us per {'delivery' if count else 'publish'}{note}"
        )


if __name__ == "__main__":
    main()
