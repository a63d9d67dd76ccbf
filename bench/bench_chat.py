"""Chat fan-out: messages delivered per second to a room of 1,000 members.

Run: ``.venv/bin/python bench/bench_chat.py`` (options: ``--members``,
``--messages``, ``--rounds``, ``--uvloop`` to add the asyncio peer on uvloop).

Two modes: ``burst`` sends ``--messages`` lines at once (a busy room);
``single`` sends one line and waits until every member has it before the
next (a quiet room: no server can batch messages together).

Each server runs in its own process: ours (the chat service's plain-text
dialect) and ``bench/peers/asyncio_chat.py`` (asyncio streams, written the
straightforward way).  One client process opens ``--members`` connections that
sit in one room and read, plus one talker that sends ``--messages`` lines at
once.  The figure is (messages x members) / the time from the first line sent
until every member has received every message.  Both servers get the same
client, machine and run; the ratio is what counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEADLINE = 120.0


def serve_ours() -> None:
    """Run the chat service in this process and print its plain-text port."""
    from framework.logs import configure_logging
    from framework.testing import serve
    from services.chat import ChatService

    configure_logging("warning", "json")
    settings = {"services": {"chat": {"irc_port": 0, "default_room": "#bench", "flood_rate": 0, "backlog": 2048}}}
    with serve(ChatService, data_dir=os.path.join("/tmp", f"linechat-bench-{os.getpid()}"), settings=settings) as srv:
        print(f"port {srv.address('chat')[1]}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


@contextmanager
def server(kind: str) -> Iterator[int]:
    """Start a server process; yield its port."""
    if kind == "linechat":
        cmd = [sys.executable, os.path.abspath(__file__), "--serve"]
    else:
        cmd = [sys.executable, os.path.join(ROOT, "bench", "peers", "asyncio_chat.py")]
        if kind == "asyncio+uvloop":
            cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        proc.wait(10)


def read_until(sock: socket.socket, needle: bytes, buf: bytes = b"") -> bytes:
    """Blocking read until *needle* has arrived; return what follows it."""
    deadline = time.monotonic() + DEADLINE
    while needle not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError(needle)
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf.split(needle, 1)[1]


def drain(selector: selectors.BaseSelector, expected: int) -> None:
    """Read from the members until *expected* bytes have arrived in all."""
    received = 0
    while received < expected:
        events = selector.select(DEADLINE)
        if not events:
            raise TimeoutError(f"got {received} of {expected} bytes")
        for key, _mask in events:
            try:
                chunk = key.fileobj.recv(1 << 18)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionError("a member was disconnected")
            received += len(chunk)


def run_room(port: int, members: int, messages: int, rounds: int) -> dict[str, list[float]]:
    """Fill a room, then time *rounds* of each mode; return deliveries per second per mode."""
    address = ("127.0.0.1", port)
    socks: list[socket.socket] = []
    for n in range(members):
        sock = socket.create_connection(address, timeout=DEADLINE)
        sock.sendall(f"m{n}\r\n".encode())
        socks.append(sock)
    talker = socket.create_connection(address, timeout=DEADLINE)
    talker.sendall(b"talker\r\n")
    read_until(talker, b"You are in #bench")
    for sock in socks:  # the room is full and quiet once everyone saw the talker come in
        rest = read_until(sock, b"*** talker joined #bench\r\n")
        assert not rest, rest
        sock.setblocking(False)
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz\r\n"
    per_member = len(b"<talker> " + line)
    rates: dict[str, list[float]] = {"burst": [], "single": []}
    try:
        for _ in range(rounds):
            # burst: all messages sent at once, as a busy room or a paste does.
            started = time.perf_counter()
            talker.sendall(line * messages)
            drain(selector, per_member * messages * members)
            rates["burst"].append(messages * members / (time.perf_counter() - started))
            # single: the next message only once everyone has the last one,
            # so no server can batch messages together.
            count = max(messages // 10, 1)
            started = time.perf_counter()
            for _ in range(count):
                talker.sendall(line)
                drain(selector, per_member * members)
            rates["single"].append(count * members / (time.perf_counter() - started))
    finally:
        selector.close()
        talker.close()
        for sock in socks:
            sock.close()
    return rates


def main() -> None:
    """Run both servers in the same run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="messages per timed burst")
    parser.add_argument("--rounds", type=int, default=5, help="timed bursts per server (median reported)")
    parser.add_argument("--uvloop", action="store_true", help="also measure the asyncio peer on uvloop")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_ours()
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.members * 2 + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    kinds = ["linechat", "asyncio"] + (["asyncio+uvloop"] if args.uvloop else [])
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.members} members, bursts of {args.messages} messages, median of {args.rounds}"
    )
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:
        with server(kind) as port:
            rates = run_room(port, args.members, args.messages, args.rounds)
        results[kind] = {mode: statistics.median(values) for mode, values in rates.items()}
        for mode, values in rates.items():
            spread = f"{min(values):,.0f} .. {max(values):,.0f}"
            print(f"{kind:>16} {mode:>6}: {results[kind][mode]:>12,.0f} deliveries/s  (rounds: {spread})")
    for kind in kinds:
        if kind != "asyncio":
            ratios = ", ".join(f"{mode} {results[kind][mode] / results['asyncio'][mode]:.2f}x" for mode in rates)
            print(f"{kind} / asyncio: {ratios}")


if __name__ == "__main__":
    main()
