"""The append-only file, ours beside redis-server: write throughput, replay speed, rewrite time and size.

Run: ``.venv/bin/python bench/bench_redis_aof.py`` (needs ``redis-benchmark`` and
``redis-server``; ``--help`` for options; ``--parts writes,replay,rewrite``).

``writes``: each server runs in its own process on a free loopback port with a
fresh data directory and its AOF on, and gets::

    redis-benchmark -p PORT -t set,incr,lpush -c 20 -n N -q -P 1   (and -P 16)

Ours writes each batch's records before its replies and fsyncs on a thread
(everysec), or writes and fsyncs all the records of a reactor turn once,
before any reply of that turn leaves (always: group commit); redis-server
does the same per event-loop turn.  It prints requests/second (best of
``--rounds``, taken round-robin) and our ratio to redis-server per policy.
The group-commit figure of docs/performance.md is::

    bench_redis_aof.py --parts writes --policies always --tests SET --pipelines 16
                       --clients 50 --always-requests 200000 --rounds 3

``replay``: one AOF of ``--keys`` ``SET``s (and as many again overwriting them)
is written once; redis-server 7.0 loads it as an old-style ``appendonly.aof``
(its log's "DB loaded from append only file" seconds, and its CPU seconds
from /proc once ``INFO`` says loading:0), ours replays it in this process
(``AofLoader`` to the end: wall and CPU seconds).  Seconds per MB of file.

``rdb``: redis-server loads that AOF and ``SAVE``s; the ``dump.rdb`` is then
loaded by redis-server (its log's "DB loaded from disk" seconds, its CPU
seconds) and imported by ours in this process, with the AOF off (loading
only) and on (loading, then writing our append-only file).

``rewrite``: the same data set (``--keys`` keys) in each server, then
``BGREWRITEAOF``: the wall time until the switch-over, the child's CPU
seconds and peak RSS (ours, from wait4), the size of the rewritten file;
redis-server with ``aof-use-rdb-preamble no`` (a file of commands like ours)
and ``yes`` (its default: an RDB base).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_redis import ROOT, benchmark, free_port
from redis_servers import started

sys.path.insert(0, ROOT)


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
    with (
        tempfile.TemporaryDirectory(prefix="bench-aof-") as data_dir,
        started(command(kind, policy, port, data_dir, python), port, kind) as pid,
    ):
        yield port, pid


def resp(*args: bytes) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def make_aof(path: str, keys: int) -> int:
    """An AOF of *keys* SETs, then the same keys overwritten (history a rewrite drops); its size."""
    with open(path, "wb") as out:
        out.write(resp(b"SELECT", b"0"))
        for round_no in (b"a", b"b"):
            chunk = []
            for i in range(keys):
                chunk.append(resp(b"SET", b"key:%09d" % i, b"value-%s-%012d" % (round_no, i)))
                if len(chunk) >= 10_000:
                    out.write(b"".join(chunk))
                    chunk.clear()
            out.write(b"".join(chunk))
    return os.path.getsize(path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_info(port: int, section: str) -> dict[str, str]:
    """INFO *section* of the server on *port*, as a dict (a raw socket: no client library needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(resp(b"INFO", section.encode()))
        data = b""
        while True:
            data += sock.recv(65536)
            head, _, rest = data.partition(b"\r\n")
            if head.startswith(b"-"):
                return {"error": head.decode()}
            if head.startswith(b"$") and len(rest) >= int(head[1:]) + 2:
                text = rest[: int(head[1:])].decode()
                return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def call(port: int, *args: bytes) -> bytes:
    """Send one command and return the first line of its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(resp(*args))
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(65536)
        return data.split(b"\r\n", 1)[0]


@contextmanager
def redis_server_loading(aof: str, preamble: str = "no", rdb: bool = False) -> Iterator[tuple[int, int, str]]:
    """redis-server with a copy of *aof* as its old-style appendonly.aof (or *rdb*: as its dump.rdb, AOF off);
    yields (port, pid, data dir) once loaded."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-aof-") as data_dir:
        shutil.copyfile(aof, os.path.join(data_dir, "dump.rdb" if rdb else "appendonly.aof"))
        log = os.path.join(data_dir, "redis.log")
        proc = subprocess.Popen(
            ["redis-server", "--save", "", "--appendonly", "no" if rdb else "yes", "--aof-use-rdb-preamble", preamble,
             "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir, "--logfile", log],
            cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    if redis_info(port, "persistence").get("loading") == "0":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not load")
                time.sleep(0.05)
            yield port, proc.pid, data_dir
        finally:
            proc.terminate()
            proc.wait(60)


def replay_redis_server(aof: str) -> tuple[float, float]:
    """redis-server loading *aof*: (seconds from its log, CPU seconds of the process)."""
    with redis_server_loading(aof) as (_port, pid, data_dir):
        cpu = cpu_seconds(pid)
        with open(os.path.join(data_dir, "redis.log")) as log:
            found = re.findall(r"DB loaded from append only file: ([0-9.]+) seconds", log.read())
        return float(found[-1]), cpu


def loaded_service(aof: str, data_dir: str) -> tuple[Any, float, float]:
    """Our Redis service replaying a copy of *aof* in this process: (service, wall seconds, CPU seconds)."""
    from linechat.services.redis import RedisService
    from linechat.testing import ServiceHarness

    shutil.copyfile(aof, os.path.join(data_dir, "appendonly.aof"))
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    harness = ServiceHarness(RedisService, data_dir=data_dir, auto_aof_rewrite_percentage=0)
    while harness.service.loading:
        harness.reactor._run_ready()
    return harness, time.perf_counter() - wall, time.process_time() - cpu


def replay_ours(aof: str) -> tuple[float, float]:
    """Ours replaying *aof*: (wall seconds, CPU seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-aof-") as data_dir:
        harness, wall, cpu = loaded_service(aof, data_dir)
        harness.close()
        return wall, cpu


def rewrite_ours(aof: str) -> dict[str, float]:
    """Load *aof*, BGREWRITEAOF, wait for the child: wall, child CPU, child peak RSS, parent RSS, new size."""
    with tempfile.TemporaryDirectory(prefix="bench-aof-") as data_dir:
        harness, _, _ = loaded_service(aof, data_dir)
        service = harness.service
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        wall = time.perf_counter()
        assert service.rewriter.start()
        _, status, usage = os.wait4(service.rewriter.pid, 0)
        service.rewriter._finished(status)  # the switch-over, as the reactor's check would do it
        wall = time.perf_counter() - wall
        size = os.path.getsize(os.path.join(data_dir, "appendonly.aof"))
        assert service.rewriter.last_status == "ok"
        harness.close()
        return {
            "wall": wall,
            "child_cpu": usage.ru_utime + usage.ru_stime,
            "child_rss_mb": usage.ru_maxrss / 1024,
            "parent_rss_mb": rss,
            "size": size,
        }


def rewrite_redis_server(aof: str, preamble: str) -> dict[str, float]:
    """redis-server loads *aof*, BGREWRITEAOF: wall until aof_rewrite_in_progress is 0, size of the new base."""
    with redis_server_loading(aof, preamble) as (port, _pid, data_dir):
        wall = time.perf_counter()
        assert call(port, b"BGREWRITEAOF").startswith(b"+Background")
        while True:
            info = redis_info(port, "persistence")
            if info["aof_rewrite_in_progress"] == "0" and info["aof_rewrite_scheduled"] == "0":
                break
            time.sleep(0.005)
        wall = time.perf_counter() - wall
        assert info["aof_last_bgrewrite_status"] == "ok"
        folder = os.path.join(data_dir, "appendonlydir")
        bases = [name for name in os.listdir(folder) if ".base." in name]
        size = max(os.path.getsize(os.path.join(folder, name)) for name in bases)
        return {"wall": wall, "size": size}


def load_rdb_redis_server(rdb: str) -> tuple[float, float]:
    """redis-server loading *rdb* as its dump.rdb: (seconds from its log, CPU seconds of the process)."""
    with redis_server_loading(rdb, rdb=True) as (_port, pid, data_dir):
        cpu = cpu_seconds(pid)
        with open(os.path.join(data_dir, "redis.log")) as log:
            found = re.findall(r"DB loaded from disk: ([0-9.]+) seconds", log.read())
        return float(found[-1]), cpu


def load_rdb_ours(rdb: str, appendonly: bool) -> tuple[float, float]:
    """Ours importing *rdb* as its dump.rdb in this process (appendonly on: also writing our AOF): wall, CPU."""
    from linechat.services.redis import RedisService
    from linechat.testing import ServiceHarness

    with tempfile.TemporaryDirectory(prefix="bench-aof-") as data_dir:
        shutil.copyfile(rdb, os.path.join(data_dir, "dump.rdb"))
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        harness = ServiceHarness(RedisService, data_dir=data_dir, appendonly=appendonly, auto_aof_rewrite_percentage=0)
        while harness.service.loading:
            harness.reactor._run_ready()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert harness.service.last_load[0] > 0
        harness.close()
        return wall, cpu


def rdb_part(args: argparse.Namespace) -> None:
    """Loading a dump.rdb that redis-server wrote: redis-server, ours, ours also writing its AOF."""
    with tempfile.TemporaryDirectory(prefix="bench-aof-src-") as folder:
        aof = os.path.join(folder, "appendonly.aof")
        make_aof(aof, args.keys)
        rdb = os.path.join(folder, "dump.rdb")
        with redis_server_loading(aof) as (port, _pid, data_dir):
            assert call(port, b"SAVE") == b"+OK"
            shutil.copyfile(os.path.join(data_dir, "dump.rdb"), rdb)
        mb = os.path.getsize(rdb) / 1e6
        runs: dict[str, list[tuple[float, float]]] = {"redis-server": [], "ours": [], "ours, writing its AOF": []}
        for _ in range(args.rounds):
            runs["redis-server"].append(load_rdb_redis_server(rdb))
            runs["ours"].append(load_rdb_ours(rdb, appendonly=False))
            runs["ours, writing its AOF"].append(load_rdb_ours(rdb, appendonly=True))
            print(f"# rdb round: {runs}", file=sys.stderr, flush=True)
        print(f"\nLoading a {mb:.1f} MB dump.rdb ({args.keys:,} string keys) written by redis-server, "
              f"best of {args.rounds}:\n")  # fmt: skip
        print("| server | wall s | CPU s | CPU s per MB |")
        print("|---|---|---|---|")
        best = {kind: (min(r[0] for r in rs), min(r[1] for r in rs)) for kind, rs in runs.items()}
        for kind, (wall, cpu) in best.items():
            print(f"| {kind} | {wall:.2f} | {cpu:.2f} | {cpu / mb:.3f} |")
        print(f"\nours/redis-server: CPU {best['ours'][1] / best['redis-server'][1]:.1f}x\n")


def files_part(args: argparse.Namespace) -> None:
    """Replay and rewrite figures on one generated file."""
    with tempfile.TemporaryDirectory(prefix="bench-aof-src-") as folder:
        aof = os.path.join(folder, "appendonly.aof")
        size = make_aof(aof, args.keys)
        mb = size / 1e6
        print(f"# AOF of {2 * args.keys:,} SETs over {args.keys:,} keys: {mb:.1f} MB", file=sys.stderr, flush=True)
        replays: dict[str, list[tuple[float, float]]] = {"ours": [], "redis-server": []}
        for _ in range(args.rounds):
            replays["redis-server"].append(replay_redis_server(aof))
            replays["ours"].append(replay_ours(aof))
            print(f"# replay round: {replays}", file=sys.stderr, flush=True)
        print(f"\nReplay of a {mb:.1f} MB AOF ({2 * args.keys:,} SETs, {args.keys:,} keys), best of {args.rounds}:\n")
        print("| server | wall s | CPU s | wall s per MB | CPU s per MB |")
        print("|---|---|---|---|---|")
        # Best wall and best CPU of the rounds, each on its own (the machine is shared: the least disturbed).
        best = {kind: (min(r[0] for r in runs), min(r[1] for r in runs)) for kind, runs in replays.items()}
        for kind in ("ours", "redis-server"):
            wall, cpu = best[kind]
            print(f"| {kind} | {wall:.2f} | {cpu:.2f} | {wall / mb:.3f} | {cpu / mb:.3f} |")
        print(f"\nours/redis-server: wall {best['ours'][0] / best['redis-server'][0]:.1f}x, "
              f"CPU {best['ours'][1] / best['redis-server'][1]:.1f}x\n")  # fmt: skip
        if "rewrite" not in args.parts:
            return
        ours = [rewrite_ours(aof) for _ in range(args.rounds)]
        print(f"# rewrite ours: {ours}", file=sys.stderr, flush=True)
        plain = [rewrite_redis_server(aof, "no") for _ in range(args.rounds)]
        rdb = [rewrite_redis_server(aof, "yes") for _ in range(args.rounds)]
        print(f"# rewrite redis-server: {plain} {rdb}", file=sys.stderr, flush=True)
        o = min(ours, key=lambda r: r["wall"])
        p = min(plain, key=lambda r: r["wall"])
        q = min(rdb, key=lambda r: r["wall"])
        print(f"BGREWRITEAOF of {args.keys:,} keys (from a {mb:.1f} MB file), best of {args.rounds}:\n")
        print("| server | wall s | new file MB | notes |")
        print("|---|---|---|---|")
        print(f"| ours (fork, commands) | {o['wall']:.2f} | {o['size'] / 1e6:.1f} | child CPU {o['child_cpu']:.2f} s, "
              f"child peak RSS {o['child_rss_mb']:.0f} MB, parent RSS {o['parent_rss_mb']:.0f} MB |")  # fmt: skip
        print(f"| redis-server, aof-use-rdb-preamble no | {p['wall']:.2f} | {p['size'] / 1e6:.1f} | commands |")
        print(f"| redis-server, aof-use-rdb-preamble yes | {q['wall']:.2f} | {q['size'] / 1e6:.1f} | RDB base |")
        print(f"\nours/redis-server (commands): wall {o['wall'] / p['wall']:.1f}x, size {o['size'] / p['size']:.2f}x\n")


def main() -> None:
    """Run the parts asked for and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="writes,replay,rewrite", help="writes, replay, rewrite, rdb (comma-sep.)")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys of the replay and rewrite data set")
    parser.add_argument("--requests", type=int, default=50_000, help="requests per test without pipelining")
    parser.add_argument("--pipelined-requests", type=int, default=200_000, help="requests per test with -P 16")
    parser.add_argument("--always-requests", type=int, default=50_000, help="requests per test under always")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--tests", default="SET,INCR,LPUSH")
    parser.add_argument("--pipelines", default="1,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--policies", default="everysec,always", help="appendfsync policies of the writes part")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    args.parts = [p.strip() for p in args.parts.split(",")]
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        sys.exit("redis-benchmark and redis-server are needed")
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores\n")
    if "replay" in args.parts or "rewrite" in args.parts:
        files_part(args)
    if "rdb" in args.parts:
        rdb_part(args)
    if "writes" in args.parts:
        writes_part(args)


def writes_part(args: argparse.Namespace) -> None:
    """Write throughput with the AOF on, both servers, each policy."""
    tests = [t.strip().upper() for t in args.tests.split(",")]
    pipelines = [int(p) for p in args.pipelines.split(",")]
    rates: dict[tuple[str, str, int, str], float] = {}
    cpu: dict[tuple[str, str, int, str], float] = {}  # server CPU us per request (user + system)
    policies = [p.strip() for p in args.policies.split(",")]
    for policy in policies:
        for pipeline in pipelines:
            if policy == "always":
                requests = args.always_requests
            else:
                requests = args.requests if pipeline == 1 else args.pipelined_requests
            for _ in range(args.rounds):
                for kind in ("ours", "redis-server"):
                    with running(kind, policy, args.python) as (port, pid):
                        for test in tests:
                            rate, user, system = benchmark(port, pid, test, requests, pipeline, args.clients)
                            key = (kind, policy, pipeline, test)
                            rates[key] = max(rates.get(key, 0.0), rate)
                            cpu[key] = min(cpu.get(key, float("inf")), user + system)
                            print(f"# {kind} {policy} -P {pipeline} {test}: {rate:,.0f} requests/s",
                                  file=sys.stderr, flush=True)  # fmt: skip
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
          f"-c {args.clients}, best of {args.rounds}\n")  # fmt: skip
    print(
        "| appendfsync | pipeline | test | ours | redis-server | ours/redis-server "
        "| server CPU us/request, ours / redis-server |"
    )
    print("|---|---|---|---|---|---|---|")
    for policy in policies:
        for pipeline in pipelines:
            for test in tests:
                ours, theirs = rates["ours", policy, pipeline, test], rates["redis-server", policy, pipeline, test]
                ours_cpu, theirs_cpu = cpu["ours", policy, pipeline, test], cpu["redis-server", policy, pipeline, test]
                print(f"| {policy} | -P {pipeline} | {test} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x "
                      f"| {ours_cpu:.1f} / {theirs_cpu:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
