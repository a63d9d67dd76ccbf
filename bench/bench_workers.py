"""SMTP messages per second with ``linechat serve --workers 1`` against ``--workers 2``, same run.

Run: ``.venv/bin/python bench/bench_workers.py``.

Each round starts ``linechat serve --only smtp --workers N`` (default
settings: 4 delivery threads, fsync before 250) and drives it with
bench_smtp.py's client (10 smtplib processes, one session each, 1 KB
messages); rounds alternate between N=1 and N=2 and the best of each is kept.
The client processes run on the same machine: their CPU time is reported as
a share of all CPU time used (clients + server), since on two cores they
compete with the workers.  Every message is checked to be in the Maildir.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--count", type=int, default=200, help="1 KB messages per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="store without fsync (CPU-bound, not disk-bound)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
