"""The Redis service's own costs, in one process: parse-and-run per read, and loopback round trips.

Two modes, both against the asyncio peer (``bench/peers/asyncio_redis.py``):

``parse``
    Time per read of ``RedisProtocol.on_stream`` (our parse, dispatch and
    replies for one read) against the peer's ``data_received`` with a
    transport whose ``write`` does nothing, for pipelines of 1, 16 and 64
    inline PINGs, SETs and GETs as ``redis-benchmark`` sends them.  No
    sockets, no loop; best of 5.  Run::

        .venv/bin/python bench/bench_redis_inproc.py parse

``roundtrip``
    ``--n`` rounds in which each of ``--connections`` loopback TCP clients
    sends one request and reads its reply, the server (ours on a
    ``Reactor``, or the peer on an asyncio loop) turning once per round in
    the same process.  Wall time is noisy on a shared machine, and
    misleading for the peer here (asyncio's 256 KiB reads make glibc map
    and unmap memory on every read in this small process, which the real
    peer process does not do); the point is to run it under callgrind, whose
    instruction counts repeat exactly.  Two run lengths, differenced, give
    instructions per round::

        for n in 50 250; do
          valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            .venv/bin/python bench/bench_redis_inproc.py roundtrip --server ours --n $n
        done   # then (total at 250 - total at 50) / 200 / connections
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

import asyncio_redis as peer

PAYLOADS = {
    "ping": b"PING\r\n",
    "set": b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n",
    "get": b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n",
}


def _quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _best_ns(func: Callable[[bytes], Any], data: bytes, loops: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(loops):
            func(data)
        best = min(best, time.perf_counter() - started)
    return best / loops * 1e9


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass


def parse_mode() -> None:
    """Print the time per read of our on_stream and of the peer's data_received."""
    from linechat.services.redis import RedisService
    from linechat.testing import ServiceHarness

    _quiet_logs()
    harness = ServiceHarness(RedisService, appendonly=False)
    protocol: Any = harness.connect().channel.protocol
    theirs = peer.RedisProtocol()
    theirs.transport = _NullTransport()  # type: ignore[assignment]
    theirs.buf = b""
    print(f"python {sys.version.split()[0]}; time per read, best of 5 (ns)")
    print(f"{'request':>8} {'per read':>8} {'linechat':>10} {'asyncio':>10} {'ratio':>7}")
    for name, one in PAYLOADS.items():
        for count in (1, 16, 64):
            data = one * count
            loops = max(200_000 // count, 2_000)
            ours = _best_ns(lambda d: protocol.on_stream(d, False), data, loops)
            peers = _best_ns(theirs.data_received, data, loops)
            print(f"{name:>8} {count:>8} {ours:>10,.0f} {peers:>10,.0f} {peers / ours:>6.2f}x")


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    for sock in (server, client):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.setblocking(False)
    return server, client


def roundtrip_mode(server: str, payload: bytes, rounds: int, connections: int) -> None:
    """Run the round trips (see the module docstring); print the wall time per request."""
    pairs = [_tcp_pair() for _ in range(connections)]
    turn: Callable[[], Any]
    if server == "ours":
        from linechat import ServiceChannel
        from linechat.reactor import Reactor
        from linechat.services.redis import RedisService

        _quiet_logs()
        reactor = Reactor()
        service = RedisService(RedisService.Settings(appendonly=False), reactor=reactor)
        service.start()
        for sock, _ in pairs:
            ServiceChannel(sock, service, RedisService.protocol, map=reactor.map, peer=("127.0.0.1", 0))

        def turn() -> None:
            reactor.run_once(1.0)
    else:
        loop = asyncio.new_event_loop()
        for sock, _ in pairs:
            loop.run_until_complete(loop.connect_accepted_socket(peer.RedisProtocol, sock))
        turn = loop._run_once  # type: ignore[attr-defined]  # one loop turn, as run_once above
    clients = [client for _, client in pairs]
    started = time.perf_counter()
    for _ in range(rounds):
        for client in clients:
            client.sendall(payload)
        turn()
        for client in clients:
            client.recv(65536)
    elapsed = time.perf_counter() - started
    print(f"{server}: {elapsed / rounds / connections * 1e6:.2f} us per request (wall, client included)")


def main() -> None:
    """Parse the command line and run one mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["parse", "roundtrip"])
    parser.add_argument("--server", choices=["ours", "asyncio"], default="ours")
    parser.add_argument("--request", choices=sorted(PAYLOADS), default="ping")
    parser.add_argument("--pipeline", type=int, default=1, help="requests per client per round")
    parser.add_argument("--n", type=int, default=2000, help="rounds")
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if args.mode == "parse":
        parse_mode()
    else:
        roundtrip_mode(args.server, PAYLOADS[args.request] * args.pipeline, args.n, args.connections)


if __name__ == "__main__":
    main()
