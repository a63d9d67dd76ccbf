"""One client must never stall, starve or bloat the server: idle memory and attacks with a canary.

Run: ``.venv/bin/python bench/bench_hostile.py`` (``--idle N`` connections for
the memory figure, default 10,000; ``--only idle`` or ``--only attacks``).

**Idle memory.**  Each server runs in its own process: our echo, chat
(plain text) and Redis services, ``redis-server`` and a minimal asyncio line
server (``bench/peers/asyncio_lines.py``).  The client opens ``--idle``
connections that send nothing (a Redis client sends one PING on the last
one to know all were accepted), and the figure is the server's RSS growth
(from /proc) divided by the connections.

**Attacks.**  One ``linechat serve`` process (echo, chat, Redis) and one
``redis-server``.  A canary client sends a PING (``ECHO`` for echo) every
5 ms and waits for the answer; the figure is its worst round trip while an
attacker runs for ``--seconds``, with the server's peak RSS and CPU time.
The same attack goes to redis-server where it applies.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = 60.0


def rss_kib(pid: int) -> int:
    """Resident set size of *pid* in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by *pid*."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def process(cmd: list[str], port: int | None = None, **kw: object) -> Iterator[subprocess.Popen[str]]:
    """Run a server; yield its process once it listens (on *port*, or the port it prints)."""
    proc = subprocess.Popen(  # type: ignore[call-overload]
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, **kw
    )
    try:
        if port is None:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            proc.port = int(line.split()[1])  # type: ignore[attr-defined]
        else:
            proc.port = port  # type: ignore[attr-defined]
        wait_listening(proc.port)  # type: ignore[attr-defined]
        time.sleep(0.5)
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        proc.wait(30)


def linechat_cmd(services: str, ports: dict[str, int], data_dir: str, extra: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "linechat", "serve", "--only", services, "--data-dir", data_dir]
    cmd += ["--log-level", "warning"]
    for key, port in ports.items():
        cmd += ["--set", f"services.{key}={port}"]
    cmd += ["--set", "services.redis.appendonly=false"] if "redis" in services else []
    return cmd + (extra or [])


def redis_server_cmd(port: int, data_dir: str) -> list[str]:
    return ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", data_dir,
            "--maxclients", "20000", "--daemonize", "no", "--loglevel", "warning"]  # fmt: skip


# --------------------------------------------------------------------------- idle memory


def idle_memory(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data = tempfile.mkdtemp(prefix="linechat-bench-")
    kinds: list[tuple[str, Callable[[], list[str]], bool]] = []
    port = free_port()
    kinds.append(("linechat echo", lambda: linechat_cmd("echo", {"echo.port": port}, data), False))
    chat_ports = {"chat.port": port, "chat.irc_port": 0}
    kinds.append(("linechat chat (plain)", lambda: linechat_cmd("chat", chat_ports, data), False))
    kinds.append(("linechat redis", lambda: linechat_cmd("redis", {"redis.port": port}, data), True))
    if shutil.which("redis-server"):
        kinds.append(("redis-server", lambda: redis_server_cmd(port, data), True))
    print(f"idle connections: {count}; RSS growth per connection (KiB), server RSS before/after (MiB)")
    results = []
    kinds.append(("asyncio minimal", lambda: [sys.executable, "bench/peers/asyncio_lines.py"], False))
    for name, make, is_redis in kinds:
        fixed = name != "asyncio minimal"
        with process(make(), port if fixed else None) as proc:
            target = ("127.0.0.1", proc.port)  # type: ignore[attr-defined]
            before = rss_kib(proc.pid)
            socks = []
            for _ in range(count):
                sock = socket.create_connection(target, timeout=DEADLINE)
                socks.append(sock)
            # The last connection answering means the server took them all.
            last = socks[-1]
            last.sendall(b"PING\r\n" if is_redis else b"ECHO x\r\n" if "echo" in name else b"x\n")
            last.settimeout(DEADLINE)
            last.recv(4096)
            time.sleep(1.0)
            after = rss_kib(proc.pid)
            per = (after - before) / count
            results.append((name, per))
            print(f"  {name:24s} {per:6.2f} KiB   ({before / 1024:.1f} -> {after / 1024:.1f} MiB)", flush=True)
            for sock in socks:
                sock.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    shutil.rmtree(data, ignore_errors=True)


class Canary(threading.Thread):
    """PING every 5 ms over its own connection; keep the round-trip times."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.times: list[float] = []
        self.stop = threading.Event()
        self.failed: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                self.sock.sendall(b"PING\r\n")
                if self.sock.recv(64) != b"+PONG\r\n":
                    self.failed = "bad reply"
                    return
                self.times.append(time.perf_counter() - started)
                time.sleep(0.005)
        except OSError as exc:
            self.failed = str(exc)


def _sample(pid: int, peak: list[int], done: threading.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        time.sleep(0.02)


def _flood(sock: socket.socket, chunk: bytes, until: float) -> None:
    try:
        while time.monotonic() < until:
            sock.sendall(chunk)
    except OSError:
        pass


def attack_get_flood(port: int, seconds: float) -> list[socket.socket]:
    setup = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    value = b"v" * (128 << 10)
    setup.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nv\r\n$%d\r\n%s\r\n" % (len(value), value))
    setup.recv(64)
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.setblocking(False)
    with suppress(BlockingIOError):
        sock.send(b"GET v\r\n" * (65536 // 7))  # then never read
    time.sleep(seconds)
    return [setup, sock]


def attack_lf_flood(port: int, seconds: float) -> list[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    _flood(sock, b"\n" * 65536, time.monotonic() + seconds)
    return [sock]


def attack_big_multibulk(port: int, seconds: float) -> list[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    count = 1_000_000
    sock.sendall(b"*%d\r\n$4\r\nECHO\r\n" % count + b"$1\r\na\r\n" * (count - 1))
    sock.recv(256)  # the arity error: the whole command was read
    return [sock]


def attack_slowloris(port: int, seconds: float) -> list[socket.socket]:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) for _ in range(1000)]
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for sock in socks:
            with suppress(OSError):
                sock.send(b"*")
        time.sleep(0.5)
    return socks


def attack_long_lines(port: int, seconds: float) -> list[socket.socket]:
    socks = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        socks.append(sock)
        _flood(sock, (b"y" * 600 + b"\r\n") * 100, until)
    return socks


ATTACKS: list[tuple[str, Callable[[int, float], list[socket.socket]], bool]] = [
    ("GET flood, never reads (64 KiB of GET of a 128 KiB value)", attack_get_flood, True),
    ("empty-line flood", attack_lf_flood, True),
    ("one multibulk of 1,000,000 arguments", attack_big_multibulk, True),
    ("1,000 slowloris connections", attack_slowloris, True),
    ("600-byte lines to the chat port", attack_long_lines, False),
]


def attacks(seconds: float) -> None:
    """Each attack against linechat (redis, echo, chat in one process) and redis-server, with a canary."""
    data = tempfile.mkdtemp(prefix="linechat-bench-")
    redis_port, chat_port, ours_port = free_port(), free_port(), free_port()
    ours = linechat_cmd(
        "redis,chat", {"redis.port": ours_port, "chat.port": chat_port, "chat.irc_port": 0}, data,
        ["--set", "services.chat.flood_rate=0"],
    )  # fmt: skip
    servers = [("linechat", ours, ours_port)]
    if shutil.which("redis-server"):
        servers.append(("redis-server", redis_server_cmd(redis_port, data), redis_port))
    print(f"attacks of {seconds:.0f} s; canary: PING every 5 ms on the Redis port")
    print(
        f"  {'attack':58s} {'server':13s} {'worst ms':>9s} {'median ms':>9s} {'pings':>6s} "
        f"{'RSS peak +MiB':>13s} {'CPU s':>6s}"
    )
    for title, attack, both in ATTACKS:
        for name, cmd, port in servers:
            if name != "linechat" and not both:
                continue
            with process(cmd, port) as proc:
                base = rss_kib(proc.pid)
                cpu0 = cpu_seconds(proc.pid)
                peak = [base]
                sampling = threading.Event()
                sampler = threading.Thread(target=_sample, args=(proc.pid, peak, sampling), daemon=True)
                sampler.start()
                canary = Canary(port)
                canary.start()
                target = chat_port if attack is attack_long_lines else port
                socks = attack(target, seconds)
                time.sleep(0.2)
                canary.stop.set()
                canary.join(DEADLINE)
                sampling.set()
                sampler.join()
                cpu = cpu_seconds(proc.pid) - cpu0
                for sock in socks:
                    sock.close()
                times = sorted(canary.times) or [float("nan")]
                worst = f"{times[-1] * 1000:9.1f}" if not canary.failed else f"{'FAILED':>9s}"
                print(
                    f"  {title:58s} {name:13s} {worst} {times[len(times) // 2] * 1000:9.2f} {len(canary.times):6d}"
                    f" {(peak[0] - base) / 1024:13.1f} {cpu:6.2f}",
                    flush=True,
                )
    shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", choices=["idle", "attacks"])
    args = parser.parse_args()
    if args.only in (None, "idle"):
        idle_memory(args.idle)
    if args.only in (None, "attacks"):
        attacks(args.seconds)


if __name__ == "__main__":
    main()
