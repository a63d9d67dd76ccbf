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


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("service", ["echo", "redis", "chat"])
def test_an_idle_connection_costs_at_most_3_kib(service: str, tmp_path: Path, fd_limit: object) -> None:
    fd_limit(COUNT + 200)  # type: ignore[operator]
    port = free_port()
    cmd = [sys.executable, "-m", "linechat", "serve", "--only", service, "--data-dir", str(tmp_path),
           "--set", f"services.{service}.port={port}", "--log-level", "warning"]  # fmt: skip
    if service == "redis":
        cmd += ["--set", "services.redis.appendonly=false"]
    if service == "chat":
        cmd += ["--set", "services.chat.irc_port=0"]
    proc = subprocess.Popen(cmd)
    socks: list[socket.socket] = []
    try:
        connect_when_listening(port).close()
        time.sleep(0.3)
        before = _rss_kib(proc.pid)
        for _ in range(COUNT):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        # The last connection answering means every earlier one was accepted.
        last = socks[-1]
        last.sendall(b"PING\r\n" if service == "redis" else b"ECHO x\r\n")
        assert last.recv(4096)
        per_connection = (_rss_kib(proc.pid) - before) / COUNT
        assert per_connection <= 3.0, f"{service}: {per_connection:.2f} KiB per idle connection"
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.wait(timeout=30)
