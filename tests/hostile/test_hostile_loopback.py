"""Attacks over loopback against a real server process, each with a canary client that must keep getting answers.

The server's RSS is read from /proc.  No timing thresholds: socket timeouts
are only a safety net.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import redis
from linechat.testing import connect_when_listening, free_port


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    data = tmp_path_factory.mktemp("hostile")
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat", "serve", "--only", "redis", "--data-dir", str(data),
         "--set", f"services.redis.port={port}", "--set", "services.redis.appendonly=false", "--log-level", "error"],
    )  # fmt: skip
    try:
        connect_when_listening(port).close()
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _canary(port: int, rounds: int = 20) -> None:
    client = redis.Redis(port=port, socket_timeout=60)
    for n in range(rounds):
        assert client.echo(f"alive {n}") == f"alive {n}".encode()
    client.close()


def _send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    def send() -> None:
        with contextlib.suppress(OSError):  # the server may cut the attacker off: that is allowed
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_get_flood_from_a_client_that_never_reads(server: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = server
    setup = redis.Redis(port=port, socket_timeout=60)
    setup.set("v", b"v" * (128 << 10))
    before = _rss_mib(proc.pid)
    attacker = socket.create_connection(("127.0.0.1", port), timeout=60)
    attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sender = _send_in_background(attacker, b"GET v\r\n" * (64 << 10 // 7 + 1))
    _canary(port)
    sender.join(timeout=5)
    # 64 KiB of GETs would build about 1.2 GB of replies if all ran at once.
    assert _rss_mib(proc.pid) - before < 64
    attacker.close()
    _canary(port, 3)
    setup.close()


def test_a_flood_of_empty_lines(server: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = server
    attacker = socket.create_connection(("127.0.0.1", port), timeout=60)
    sender = _send_in_background(attacker, b"\n" * (4 << 20))
    _canary(port)
    sender.join(timeout=60)
    attacker.sendall(b"PING\r\n")
    # Every empty line was read and ignored; the PING after them is answered.
    assert attacker.recv(64) == b"+PONG\r\n"
    attacker.close()


def test_a_multibulk_of_a_million_arguments(server: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = server
    attacker = socket.create_connection(("127.0.0.1", port), timeout=120)
    count = 1_000_000
    sender = _send_in_background(attacker, b"*%d\r\n$4\r\nECHO\r\n" % count + b"$1\r\na\r\n" * (count - 1))
    _canary(port)
    sender.join(timeout=120)
    reply = attacker.recv(256)
    assert reply.startswith(b"-ERR wrong number of arguments"), reply
    attacker.close()


def test_an_over_long_inline_request_is_refused_and_closed(server: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = server
    attacker = socket.create_connection(("127.0.0.1", port), timeout=60)
    sender = _send_in_background(attacker, b"x" * (1 << 20))
    received = b""
    try:
        while chunk := attacker.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass  # closed with input still unread, as redis-server does: the reset may overtake the error
    sender.join(timeout=60)
    assert received in (b"", b"-ERR Protocol error: too big inline request\r\n")
    attacker.close()
    _canary(port, 3)
