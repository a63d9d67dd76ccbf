"""Reactor scaling: pipelining throughput with and without 10,000 idle connections.

Run: ``.venv/bin/python bench/bench_reactor.py`` (add ``--idle 2000`` on a small fd limit).

A line echo server (``linechat.asynchat.async_chat``) runs in this process,
once on :class:`linechat.reactor.Reactor` and once on
``asyncore.loop(use_poll=True)``.  A client process opens the idle
connections (which then say nothing), then drives 50 active connections
that each pipeline batches of lines and wait for the echoes.  The figure is
echoed lines per second over a fixed window; what matters is the ratio
between the run with idle connections and the run without, per loop.
Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import multiprocessing
import resource
import selectors
import socket
import struct
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from linechat._compat import asyncore
from linechat.asynchat import async_chat
from linechat.reactor import Reactor

LINE = b"0123456789abcd\r\n"
BATCH = 32  # lines per pipelined batch


def raise_fd_limit(want: int) -> int:
    """Raise RLIMIT_NOFILE towards *want*; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class EchoLine(async_chat):
    """Echo every CRLF line."""

    def __init__(self, sock: socket.socket, map: dict[int, Any]) -> None:  # noqa: A002
        super().__init__(sock, map)
        self.set_terminator(b"\r\n")
        self.parts: list[bytes] = []

    def collect_incoming_data(self, data: bytes) -> None:
        self.parts.append(data)

    def found_terminator(self) -> None:
        parts = self.parts
        line = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self.push(line + b"\r\n")

    def log_info(self, message: str, type: str = "info") -> None:  # noqa: A002
        pass


class Listener(asyncore.dispatcher):
    """A plain asyncore listener that accepts everything queued at each event."""

    def __init__(self, map: dict[int, Any]) -> None:  # noqa: A002
        super().__init__(map=map)
        self.channels = map
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind(("127.0.0.1", 0))
        self.listen(4096)

    def handle_accept(self) -> None:
        for _ in range(512):
            try:
                sock, _ = self.socket.accept()  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    raise
                return
            EchoLine(sock, self.channels)


def client_main(port: int, idle: int, active: int, warmup: float, window: float, conn: Connection) -> None:
    """The client process: idle connections, then pipelining active ones; sends back lines echoed."""
    raise_fd_limit(idle + active + 256)
    linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT pile-up between runs
    idle_socks = []
    for _ in range(idle):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        idle_socks.append(sock)
    sel = selectors.DefaultSelector()
    batch = LINE * BATCH
    owed: dict[socket.socket, int] = {}
    for _ in range(active):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The listen queue is FIFO: once an active connection is answered,
        # every idle one before it has been accepted too.
        sock.sendall(LINE)
        reply = b""
        while len(reply) < len(LINE):
            reply += sock.recv(4096)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        sock.sendall(batch)
        owed[sock] = len(batch)
    start = time.perf_counter()
    measure_from = start + warmup
    measure_to = measure_from + window
    counted = 0
    while True:
        now = time.perf_counter()
        if now >= measure_to:
            break
        for key, _ in sel.select(0.5):
            sock = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("server closed a connection")
            owed[sock] -= len(data)
            if owed[sock] <= 0:
                if measure_from <= time.perf_counter() < measure_to:
                    counted += BATCH
                sock.sendall(batch)
                owed[sock] += len(batch)
    conn.send(counted / window)
    for sock in list(owed) + idle_socks:
        sock.close()
    conn.close()


def serve(loop: str, idle: int, active: int, warmup: float, window: float) -> float:
    """Run one server/client round; return echoed lines per second."""
    reactor = Reactor() if loop == "reactor" else None
    chan_map: dict[int, Any] = reactor.map if reactor is not None else {}
    listener = Listener(chan_map)
    port = listener.socket.getsockname()[1]  # type: ignore[union-attr]
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=client_main, args=(port, idle, active, warmup, window, child_end))
    proc.start()
    child_end.close()
    result: list[float] = []
    done = threading.Event()

    def wait_result() -> None:
        with contextlib.suppress(EOFError):
            result.append(parent_end.recv())
        done.set()
        if reactor is not None:
            reactor.wake()

    waiter = threading.Thread(target=wait_result, daemon=True)
    waiter.start()
    try:
        if reactor is not None:
            while not done.is_set():
                reactor.run_once(0.5)
        else:
            while not done.is_set():
                asyncore.loop(timeout=0.5, use_poll=True, map=chan_map, count=1)
    finally:
        proc.join(60)
        if reactor is not None:
            reactor.close()
        else:
            asyncore.close_all(chan_map)
    if not result:
        raise SystemExit(f"client process failed (exit code {proc.exitcode})")
    return result[0]


def main() -> None:
    """Print lines/s for each loop with no idle connections and with --idle of them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=50)
    parser.add_argument("--window", type=float, default=3.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--loops", default="reactor,asyncore")
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell, alternating; the best counts")
    args = parser.parse_args()
    limit = raise_fd_limit(args.idle + args.active + 256)
    if limit < args.idle + args.active + 64:
        raise SystemExit(f"RLIMIT_NOFILE is {limit}: too low for --idle {args.idle}")
    print(
        f"python {sys.version.split()[0]}; {args.active} pipelining clients, batches of {BATCH} lines "
        f"of {len(LINE)} bytes; {args.window:g} s measured per run, best of {args.repeat}"
    )
    print(f"{'loop':<28} {'0 idle':>14} {f'{args.idle} idle':>14} {'idle/none':>10}")
    for loop in args.loops.split(","):
        base = loaded = 0.0
        for _ in range(args.repeat):
            base = max(base, serve(loop, 0, args.active, args.warmup, args.window))
            loaded = max(loaded, serve(loop, args.idle, args.active, args.warmup, args.window))
        name = "Reactor" if loop == "reactor" else "asyncore.loop(use_poll=True)"
        print(f"{name:<28} {base:>14,.0f} {loaded:>14,.0f} {loaded / base:>9.1%}")


if __name__ == "__main__":
    main()
