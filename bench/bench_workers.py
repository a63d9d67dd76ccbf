"""SMTP messages and echo lines per second with ``linechat serve --workers 1`` against ``--workers 2``, same run.

Run: ``.venv/bin/python bench/bench_workers.py`` (SMTP) or
``.venv/bin/python bench/bench_workers.py --service echo``.

Each round starts ``linechat serve --only smtp --workers N`` (default
settings: 4 delivery threads, fsync before 250) and drives it with
bench_smtp.py's client (10 smtplib processes, one session each, 1 KB
messages); rounds alternate between N=1 and N=2 and the best of each is kept.
The client processes run on the same machine: their CPU time is reported as
a share of all CPU time used (clients + server), since on two cores they
compete with the workers.  Every message is checked to be in the Maildir.

``--service echo`` starts ``linechat serve --only echo --workers N`` and
drives it from ``--clients`` processes, each with ``--connections`` sockets
that keep a batch of ``ECHO`` lines in flight (pipelined, the next batch sent
when the last echo of the previous one is in); the figure is echoed lines per
second over a fixed window after a warm-up, every reply checked.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_smtp import measure
from linechat.testing import connect_when_listening, free_port

LINECHAT = str(Path(sys.executable).parent / "linechat")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_round(workers: int, clients: int, count: int, work: str, fsync: bool = True) -> tuple[float, float]:
    """(messages per second, the clients' share of the CPU time) for one server run."""
    port = free_port()
    folder = tempfile.mkdtemp(dir=work)
    proc = subprocess.Popen(
        [LINECHAT, "serve", "--only", "smtp", "--workers", str(workers), "--set", f"services.smtp.port={port}",
         "--set", "services.smtp.max_connections=1000", "--set", f"services.smtp.fsync={str(fsync).lower()}",
         "--log-level", "warning"],
        cwd=folder, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        connect_when_listening(port, within=30).close()
        before = _cpu()
        rate = measure(port, clients, count, 1024)
        clients_cpu = _cpu() - before  # the client processes, joined inside measure()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    server_cpu = _cpu() - before - clients_cpu  # the server and its workers, now reaped
    stored = len(os.listdir(os.path.join(folder, "data", "smtp", "maildir", "new")))
    assert stored == clients * count, f"--workers {workers}: {stored} of {clients * count} stored (in {folder})"
    shutil.rmtree(folder)
    return rate, clients_cpu / (clients_cpu + server_cpu)


LINE = b"ECHO hello\r\n"
REPLY = b"+ hello\r\n"
BATCH = 32


def echo_client(port: int, connections: int, warmup: float, window: float, out: Connection) -> None:
    """One load process: *connections* sockets each keeping BATCH lines in flight; sends back lines/s."""
    sel = selectors.DefaultSelector()
    owed: dict[socket.socket, int] = {}
    batch = LINE * BATCH
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        greeting = b""
        while not greeting.endswith(b"\r\n"):
            greeting += sock.recv(4096)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        sock.sendall(batch)
        owed[sock] = BATCH * len(REPLY)
    measure_from = time.perf_counter() + warmup
    measure_to = measure_from + window
    counted = 0
    pending: dict[socket.socket, bytes] = dict.fromkeys(owed, b"")
    while time.perf_counter() < measure_to:
        for key, _ in sel.select(0.5):
            sock = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("the server closed a connection")
            owed[sock] -= len(data)
            seen = pending[sock] + data
            # Every reply must be the echo; keep a partial one for the next read.
            cut = len(seen) - len(seen) % len(REPLY)
            if seen[:cut] != REPLY * (cut // len(REPLY)):
                raise SystemExit(f"unexpected reply {seen[:80]!r}")
            pending[sock] = seen[cut:]
            if owed[sock] <= 0:
                if measure_from <= time.perf_counter() < measure_to:
                    counted += BATCH
                sock.sendall(batch)
                owed[sock] += BATCH * len(REPLY)
    out.send(counted / window)
    for sock in owed:
        sock.close()


def echo_round(workers: int, clients: int, connections: int, warmup: float, window: float) -> tuple[float, float]:
    """(echoed lines per second, the clients' share of the CPU time) for one server run."""
    port = free_port()
    proc = subprocess.Popen(
        [LINECHAT, "serve", "--only", "echo", "--workers", str(workers), "--set", f"services.echo.port={port}",
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        connect_when_listening(port, within=30).close()
        before = _cpu()
        ctx = multiprocessing.get_context("fork")
        pipes = []
        procs = []
        for _ in range(clients):
            here, there = ctx.Pipe(duplex=False)
            child = ctx.Process(target=echo_client, args=(port, connections, warmup, window, there))
            child.start()
            pipes.append(here)
            procs.append(child)
        rate = sum(pipe.recv() for pipe in pipes)
        for child in procs:
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"a load process failed ({child.exitcode})")
        clients_cpu = _cpu() - before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    server_cpu = _cpu() - before - clients_cpu
    return rate, clients_cpu / (clients_cpu + server_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--count", type=int, default=200, help="1 KB messages per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="store without fsync (CPU-bound, not disk-bound)")
    parser.add_argument("--service", choices=("smtp", "echo"), default="smtp")
    parser.add_argument("--connections", type=int, default=10, help="echo: sockets per load process")
    parser.add_argument("--seconds", type=float, default=5.0, help="echo: measured window per round")
    args = parser.parse_args()
    if args.service == "echo":
        echo_main(args)
        return
    best: dict[int, tuple[float, float]] = {}
    work = tempfile.mkdtemp(prefix="bench-workers-")
    try:
        for _ in range(args.rounds):
            for workers in (1, 2):  # alternate, so background load hits both alike
                rate, share = one_round(workers, args.clients, args.count, work, not args.no_fsync)
                if rate > best.get(workers, (0.0, 0.0))[0]:
                    best[workers] = (rate, share)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fsync = "off" if args.no_fsync else "on"
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.clients} clients, 1 KB, fsync {fsync}")
    for workers, (rate, share) in sorted(best.items()):
        print(f"--workers {workers}: {rate:8.0f} msgs/s   load generator's share of CPU time: {share:.0%}")
    print(f"ratio 2/1: {best[2][0] / best[1][0]:.2f}x")


def echo_main(args: argparse.Namespace) -> None:
    """The echo comparison: rounds alternating --workers 1 and 2, best of each."""
    clients = 2 if args.clients == 10 else args.clients  # two load processes unless told
    best: dict[int, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for workers in (1, 2):
            rate, share = echo_round(workers, clients, args.connections, 1.0, args.seconds)
            if rate > best.get(workers, (0.0, 0.0))[0]:
                best[workers] = (rate, share)
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{clients} load processes x {args.connections} connections, {BATCH} lines in flight each"
    )
    for workers, (rate, share) in sorted(best.items()):
        print(f"--workers {workers}: {rate:9.0f} lines/s   load generator's share of CPU time: {share:.0%}")
    print(f"ratio 2/1: {best[2][0] / best[1][0]:.2f}x")


if __name__ == "__main__":
    main()
