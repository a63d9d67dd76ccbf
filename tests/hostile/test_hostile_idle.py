"""Idle connections are small: RSS per idle connection read from /proc of a real server process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from linechat.testing import connect_when_listening, free_port

COUNT = 4000
WARM_UP = 500
# The bound is for the main target, 3.11-3.12. Python 3.13's objects are larger:
# the same code measures 2.9-3.0 KiB for chat and redis there (1.9 for echo), so
# 3.0 would fail on noise; 3.13 gets its own bound rather than a flaky test.
BOUND_KIB = 3.0 if sys.version_info < (3, 13) else 3.5


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("service", ["echo", "redis", "chat"])
def test_an_idle_connection_costs_at_most_3_kib(service: str, tmp_path: Path, fd_limit: object) -> None:
    fd_limit(WARM_UP + COUNT + 200)  # type: ignore[operator]
    port = free_port()
    cmd = [sys.executable, "-m", "linechat", "serve", "--only", service, "--data-dir", str(tmp_path),
           "--set", f"services.{service}.port={port}", "--log-level", "warning"]  # fmt: skip
    if service == "redis":
        cmd += ["--set", "services.redis.appendonly=false"]
    if service == "chat":
        cmd += ["--set", "services.chat.irc_port=0"]
    proc = subprocess.Popen(cmd)
    socks: list[socket.socket] = []
    probe = b"PING\r\n" if service == "redis" else b"ECHO x\r\n"

    def open_connections(count: int) -> None:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        # The last connection answering means every earlier one was accepted.
        socks[-1].sendall(probe)
        assert socks[-1].recv(4096)

    try:
        connect_when_listening(port).close()
        # A first batch pays the one-off costs (first-use imports and caches, the
        # first growth of the connection tables), so what follows is the cost of
        # one more idle connection.
        open_connections(WARM_UP)
        time.sleep(0.3)
        before = _rss_kib(proc.pid)
        open_connections(COUNT)
        per_connection = (_rss_kib(proc.pid) - before) / COUNT
        assert per_connection <= BOUND_KIB, f"{service}: {per_connection:.2f} KiB per idle connection"
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.wait(timeout=30)
