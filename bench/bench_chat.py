"""Chat fan-out: messages delivered per second to a room of 1,000 members.

Run: ``.venv/bin/python bench/bench_chat.py`` (options: ``--members``,
``--messages``, ``--rounds``, ``--uvloop`` to add the asyncio peer on uvloop).

``--backplane`` compares the chat service with itself instead: one node
with the in-process backplane, one node with the Redis backplane, and two
nodes sharing the room through the Redis backplane (a redis-server the run
starts on a loopback port; the members are split between the nodes, the
talker is on the first, so every message crosses Redis to reach half of
them).  The server CPU is then the nodes' and redis-server's together.

Two modes: ``burst`` sends ``--messages`` lines at once (a busy room);
``single`` sends one line and waits until every member has it before the
next (a quiet room: no server can batch messages together).

Each server runs in its own process: ours (the chat service's plain-text
dialect) and ``bench/peers/asyncio_chat.py`` (asyncio streams, written the
straightforward way: one ``StreamWriter.write`` per member and message).
One client process opens ``--members`` connections per server that sit in one
room and read, plus one talker.  The figure is (messages x members) / the
time from the first line sent until every member has received every message.
All servers run at once and the rounds alternate between them, so they share
the machine's background load; the ratio is what counts.  The server's own
CPU time per delivery (from /proc) is printed too: on a shared machine it
says more about the server than wall-clock rates, which include the client.
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
from contextlib import ExitStack, contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEADLINE = 120.0


def serve_ours(redis_url: str = "") -> None:
    """Run the chat service in this process and print its plain-text port (on the Redis backplane if given)."""
    from linechat.logs import configure_logging
    from linechat.services.chat import ChatService
    from linechat.testing import serve

    configure_logging("warning", "json")
    chat: dict[str, object] = {"irc_port": 0, "default_room": "#bench", "flood_rate": 0, "backlog": 2048}
    if redis_url:
        chat.update(backplane="redis", redis_url=redis_url)
    settings = {"services": {"chat": chat}}
    with serve(ChatService, data_dir=os.path.join("/tmp", f"linechat-bench-{os.getpid()}"), settings=settings) as srv:
        print(f"port {srv.address('chat')[1]}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


@contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """Start a throw-away redis-server on a free loopback port; yield its URL and pid."""
    from linechat.testing import connect_when_listening, free_port

    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        connect_when_listening(port).close()
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def server(kind: str, redis_url: str = "") -> Iterator[tuple[int, int]]:
    """Start a server process; yield its port and pid."""
    if kind == "linechat":
        cmd = [sys.executable, os.path.abspath(__file__), "--serve"]
        if redis_url:
            cmd += ["--redis-url", redis_url]
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
        yield int(line.split()[1]), proc.pid
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


class Room:
    """A full room on one server, seen from the client: members, a talker, a selector."""

    LINE = b"0123456789 abcdefghijklmnopqrstuvwxyz\r\n"

    def __init__(self, port: int | list[int], pid: int | list[int], members: int) -> None:
        # Several ports: nodes sharing the room, members dealt out in turn, the talker on the first.
        ports = port if isinstance(port, list) else [port]
        self.pids = pid if isinstance(pid, list) else [pid]
        self.cpu: dict[str, float] = {"burst": 0.0, "single": 0.0}  # server CPU seconds per mode
        self.deliveries: dict[str, int] = {"burst": 0, "single": 0}
        self.socks: list[socket.socket] = []
        for n in range(members):
            sock = socket.create_connection(("127.0.0.1", ports[n % len(ports)]), timeout=DEADLINE)
            sock.sendall(f"m{n}\r\n".encode())
            self.socks.append(sock)
        if len(ports) > 1:  # every member is in the room on every node before the talker comes
            for sock in self.socks:
                read_until(sock, b"You are in #bench")
            time.sleep(1.0)
        self.talker = socket.create_connection(("127.0.0.1", ports[0]), timeout=DEADLINE)
        self.talker.sendall(b"talker\r\n")
        read_until(self.talker, b"You are in #bench")
        self.selector = selectors.DefaultSelector()
        for sock in self.socks:  # the room is full and quiet once everyone saw the talker come in
            rest = read_until(sock, b"*** talker joined #bench\r\n")
            assert not rest, rest
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
        self.per_member = len(b"<talker> " + self.LINE)

    def server_cpu(self) -> float:
        """CPU seconds (user + system) the server processes have used so far."""
        total = 0.0
        for pid in self.pids:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def burst(self, messages: int) -> float:
        """All messages sent at once, as a busy room or a paste does; deliveries per second."""
        cpu = self.server_cpu()
        started = time.perf_counter()
        self.talker.sendall(self.LINE * messages)
        drain(self.selector, self.per_member * messages * len(self.socks))
        elapsed = time.perf_counter() - started
        self.cpu["burst"] += self.server_cpu() - cpu
        self.deliveries["burst"] += messages * len(self.socks)
        return messages * len(self.socks) / elapsed

    def single(self, messages: int) -> float:
        """Each message only once everyone has the last one (nothing to batch); deliveries per second."""
        cpu = self.server_cpu()
        started = time.perf_counter()
        for _ in range(messages):
            self.talker.sendall(self.LINE)
            drain(self.selector, self.per_member * len(self.socks))
        elapsed = time.perf_counter() - started
        self.cpu["single"] += self.server_cpu() - cpu
        self.deliveries["single"] += messages * len(self.socks)
        return messages * len(self.socks) / elapsed

    def close(self) -> None:
        """Close every client socket."""
        self.selector.close()
        self.talker.close()
        for sock in self.socks:
            sock.close()


def main() -> None:
    """Run every server in the same run, alternating rounds, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="messages per burst (single mode sends a tenth)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server and mode (median reported)")
    parser.add_argument("--uvloop", action="store_true", help="also measure the asyncio peer on uvloop")
    parser.add_argument(
        "--backplane", action="store_true", help="one node local, one node on Redis, two nodes sharing through Redis"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_ours(args.redis_url)
        return
    if args.backplane:
        backplane(args)
        return
    kinds = ["linechat", "asyncio"] + (["asyncio+uvloop"] if args.uvloop else [])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = (args.members + 64) * len(kinds) + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.members} members, bursts of {args.messages} messages, median of {args.rounds} alternating rounds"
    )
    rates: dict[str, dict[str, list[float]]] = {kind: {"burst": [], "single": []} for kind in kinds}
    with ExitStack() as stack:
        rooms = {kind: Room(*stack.enter_context(server(kind)), args.members) for kind in kinds}
        for room in rooms.values():
            stack.callback(room.close)
        # Rounds alternate between the servers so each sees the same background load.
        for _ in range(args.rounds):
            for kind, room in rooms.items():
                rates[kind]["burst"].append(room.burst(args.messages))
                rates[kind]["single"].append(room.single(max(args.messages // 10, 1)))
    medians = {
        kind: {mode: statistics.median(values) for mode, values in modes.items()} for kind, modes in rates.items()
    }
    for kind, modes in rates.items():
        for mode, values in modes.items():
            spread = f"{min(values):,.0f} .. {max(values):,.0f}"
            room = rooms[kind]
            per = room.cpu[mode] / room.deliveries[mode] * 1e6
            print(
                f"{kind:>16} {mode:>6}: {medians[kind][mode]:>12,.0f} deliveries/s  (rounds: {spread}); "
                f"server CPU {per:.2f} us/delivery"
            )
    for kind in kinds:
        if kind != "asyncio":
            ratios = ", ".join(
                f"{mode} {medians[kind][mode] / medians['asyncio'][mode]:.2f}x" for mode in ("burst", "single")
            )
            print(f"{kind} / asyncio: {ratios}")


def backplane(args: argparse.Namespace) -> None:
    """One node (local backplane), one node (Redis backplane), two nodes through Redis: same run, alternating."""
    kinds = ["1 node, local", "1 node, redis", "2 nodes, redis"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = (args.members + 64) * len(kinds) + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.members} members, bursts of {args.messages} messages, median of {args.rounds} alternating rounds"
    )
    rates: dict[str, dict[str, list[float]]] = {kind: {"burst": [], "single": []} for kind in kinds}
    with ExitStack() as stack:
        # Each Redis setup has its own redis-server, so their CPU is told apart.
        url1, redis1 = stack.enter_context(redis_server())
        url2, redis2 = stack.enter_context(redis_server())
        local = stack.enter_context(server("linechat"))
        one = stack.enter_context(server("linechat", url1))
        node_a = stack.enter_context(server("linechat", url2))
        node_b = stack.enter_context(server("linechat", url2))
        rooms = {
            kinds[0]: Room(local[0], local[1], args.members),
            kinds[1]: Room(one[0], [one[1], redis1], args.members),
            kinds[2]: Room([node_a[0], node_b[0]], [node_a[1], node_b[1], redis2], args.members),
        }
        for room in rooms.values():
            stack.callback(room.close)
        for _ in range(args.rounds):
            for kind, room in rooms.items():
                rates[kind]["burst"].append(room.burst(args.messages))
                rates[kind]["single"].append(room.single(max(args.messages // 10, 1)))
    medians = {
        kind: {mode: statistics.median(values) for mode, values in modes.items()} for kind, modes in rates.items()
    }
    for kind, modes in rates.items():
        for mode, values in modes.items():
            spread = f"{min(values):,.0f} .. {max(values):,.0f}"
            room = rooms[kind]
            per = room.cpu[mode] / room.deliveries[mode] * 1e6
            print(
                f"{kind:>16} {mode:>6}: {medians[kind][mode]:>12,.0f} deliveries/s  (rounds: {spread}); "
                f"server CPU {per:.2f} us/delivery"
            )
    for kind in kinds[1:]:
        ratios = ", ".join(
            f"{mode} {medians[kind][mode] / medians[kinds[0]][mode]:.2f}x" for mode in ("burst", "single")
        )
        print(f"{kind} / {kinds[0]}: {ratios}")


if __name__ == "__main__":
    main()
