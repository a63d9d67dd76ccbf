"""Output limits judge the reader, not the reply; memory comes back after large transfers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from linechat.services.chat import ChatService
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness, connect_when_listening, free_port


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_one_reply_larger_than_the_hard_limit_reaches_a_reader(tmp_path: Path) -> None:
    value = b"x" * (3 << 20)
    with ServiceHarness(RedisService, data_dir=tmp_path, appendonly=False, out_hard_limit=1 << 20) as h:
        client = h.connect()
        client.send(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$%d\r\n%s\r\n" % (len(value), value))
        assert client.read() == b"+OK\r\n"
        client.stall(65536)  # a slow reader: the reply is queued past the hard limit
        client.send(b"GET x\r\n")
        assert not client.closed
        client.unstall()
        assert client.read() == b"$%d\r\n%s\r\n" % (len(value), value)


def test_more_output_behind_a_backlog_over_the_hard_limit_cuts_the_peer_off() -> None:
    with ServiceHarness(ChatService) as h:
        speaker, slow = h.connect(), h.connect()
        for client, nick in ((speaker, "speaker"), (slow, "slow")):
            client.send(nick + "\r\n")
            client.read()
        slow.stall()
        for n in range(5000):
            speaker.send(f"message {n} " + "y" * 400 + "\r\n")
            speaker.read()
            h.advance(1)  # keep the flood gate happy
            if slow.closed:
                break
        assert slow.closed
        assert not speaker.closed
        assert slow.channel.out_buffered == 0


def test_a_backlog_above_the_soft_limit_for_the_grace_time_is_cut_off(tmp_path: Path) -> None:
    value = b"x" * (2 << 20)
    settings = {"appendonly": False, "out_soft_limit": 1 << 20, "out_soft_seconds": 30}
    with ServiceHarness(RedisService, data_dir=tmp_path, **settings) as h:
        setter, slow, reader = h.connect(), h.connect(), h.connect()
        setter.send(b"*3\r\n$3\r\nSET\r\n$1\r\nv\r\n$%d\r\n%s\r\n" % (len(value), value))
        assert setter.read() == b"+OK\r\n"
        slow.stall(1 << 16)
        slow.send(b"GET v\r\n")
        reader.send(b"GET v\r\n")
        h.advance(29)
        reader.read()  # a reader that reads within the grace time is fine
        assert not slow.closed
        h.advance(2)
        assert slow.closed
        assert not reader.closed


@pytest.mark.slow
def test_64_mib_values_round_trip_through_redis_py_and_memory_comes_back(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat", "serve", "--only", "redis", "--data-dir", str(tmp_path),
         "--set", f"services.redis.port={port}", "--set", "services.redis.appendonly=false", "--log-level", "warning"],
    )  # fmt: skip
    try:
        connect_when_listening(port).close()
        client = redis.Redis(port=port, socket_timeout=60)
        assert client.ping()
        baseline = _rss_mib(proc.pid)
        value = os.urandom(1 << 20) * 64
        for n in range(3):
            assert client.set(f"big{n}", value)
            assert client.get(f"big{n}") == value
        assert client.delete("big0", "big1", "big2") == 3
        client.close()
        # Back near the baseline once the freed pages went back (polled; the timeout is a safety net).
        deadline = time.monotonic() + 30
        while _rss_mib(proc.pid) > baseline + 24 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _rss_mib(proc.pid) <= baseline + 24, (baseline, _rss_mib(proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
