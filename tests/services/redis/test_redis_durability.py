"""Write before acknowledging: no reply leaves before the AOF records it acknowledges reach write(2).

In memory, every byte the service sends is checked against the AOF buffer at
that moment; a real server process is killed with SIGKILL under load and
every write a client saw acknowledged must be there after a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.services.redis import aof as aof_module
from linechat.testing import ServiceHarness, connect_when_listening, free_port, serve
from linechat.testing import _MemorySocket as MemorySocket
from redis_wire import RawClient, cmd

DEADLINE = 60.0  # a safety net for each wait, never a performance bound


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Redis harness whose fake sockets record any reply that leaves while AOF records wait.

    Waiting means unwritten, and under ``always`` also unsynced: from a
    record's append until the turn's fsync returns.
    """
    policy = getattr(request, "param", "everysec")
    with ServiceHarness(RedisService, data_dir=tmp_path, appendfsync=policy) as h:
        aof = h.service.aof
        assert aof is not None
        violations: list[bytes] = []
        original = MemorySocket._take

        def take(sock: MemorySocket, data: bytes) -> int:
            if aof.pending or aof.awaiting_fsync:
                violations.append(data)
            return original(sock, data)

        monkeypatch.setattr(MemorySocket, "_take", take)
        h.violations = violations
        yield h


harness_always = pytest.mark.parametrize("harness", ["always"], indirect=True)


def aof_text(h: Any) -> bytes:
    return Path(h.service.aof.path).read_bytes()


@pytest.mark.parametrize("harness", ["everysec", "no", "always"], indirect=True)
def test_no_reply_leaves_before_its_record_is_written(harness: Any) -> None:
    h = harness
    a, b = h.connect(), h.connect()
    a.send(b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n")
    assert a.read() == b"+OK\r\n"
    assert b"k1" in aof_text(h)
    # A pipeline in one read: one write for all, before the three replies.
    a.send(b"SET k2 v2\r\nINCR n\r\nRPUSH l x\r\n")
    assert a.read() == b"+OK\r\n:1\r\n:1\r\n"
    assert b"k2" in aof_text(h) and b"RPUSH" in aof_text(h)
    # A command cut across reads (framed line by line).
    a.send(b"*3\r\n$3\r\nSET\r\n$2\r\nk3\r\n$2\r\nv")
    a.send(b"3\r\n")
    assert a.read() == b"+OK\r\n"
    assert b"k3" in aof_text(h)
    # A transaction.
    a.send(b"MULTI\r\nSET k4 v4\r\nEXEC\r\n")
    assert a.read().endswith(b"*1\r\n+OK\r\n")
    # A blocked pop answered by another client's push: its reply is sent outside its own batch.
    b.send(b"BLPOP q 0\r\n")
    assert b.read() == b""
    a.send(b"RPUSH q item\r\n")
    assert a.read() == b":1\r\n"
    assert b.read() == b"*2\r\n$1\r\nq\r\n$4\r\nitem\r\n"
    assert b"item" in aof_text(h)
    assert h.violations == []


def test_the_check_sees_a_reply_sent_with_records_waiting(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector itself: with writing turned off, a SET's reply leaves with its record waiting, and is caught."""
    h = harness
    a = h.connect()
    monkeypatch.setattr(h.service.aof, "flush", lambda retry=False: True)
    a.send(b"SET x y\r\n")
    assert a.read() == b"+OK\r\n"
    assert h.violations == [b"+OK\r\n"]


@harness_always
def test_the_check_sees_a_reply_sent_before_the_fsync_under_always(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detector under always: a reply let go once its record is written but before the fsync is caught."""
    h = harness
    aof = h.service.aof
    monkeypatch.setattr(aof, "before_reply", lambda channel: aof.flush())
    a = h.connect()
    a.send(b"SET x y\r\n")
    assert a.read() == b"+OK\r\n"
    assert h.violations == [b"+OK\r\n"]


def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(aof_module.os, "fsync", fsync)
    return calls


@harness_always
def test_always_fsyncs_once_per_turn_for_every_client_before_any_reply(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    fsyncs = count_fsyncs(monkeypatch)
    early, a, b, late = h.connect(), h.connect(), h.connect(), h.connect()
    early.send(b"SET seen before\r\n")
    early.read()
    fsyncs.clear()
    # One reactor turn: four clients' reads, then the turn's end.
    early.channel.feed(b"GET seen\r\n")  # before any write of this turn: nothing to wait for
    a.channel.feed(b"SET a 1\r\nINCR n\r\nGET a\r\n")
    b.channel.feed(b"MULTI\r\nSET b 2\r\nRPUSH l x\r\nEXEC\r\nLPUSH l y\r\n")
    late.channel.feed(b"GET a\r\nPING\r\n")  # reads only, after writes: waits with them
    assert early.channel.output_held is False
    assert a.channel.output_held and b.channel.output_held and late.channel.output_held
    assert fsyncs == []  # nothing synced yet, and (the check) nothing sent
    h.run_ready()
    assert len(fsyncs) == 1
    assert early.read() == b"$6\r\nbefore\r\n"
    assert a.read() == b"+OK\r\n:1\r\n$1\r\n1\r\n"
    assert b.read() == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:1\r\n:2\r\n"
    assert late.read() == b"$1\r\n1\r\n+PONG\r\n"
    assert h.violations == []
    text = aof_text(h)
    assert text.index(b"MULTI") < text.index(b"RPUSH") < text.index(b"EXEC") < text.index(b"LPUSH")
    # A turn of reads only: no fsync, no holding.
    late.send(b"GET a\r\n")
    assert late.read() == b"$1\r\n1\r\n" and len(fsyncs) == 1


@harness_always
def test_always_holds_pushes_blocked_replies_and_a_close_in_order(harness: Any) -> None:
    h = harness
    sub, blocked, writer, quitter = h.connect(), h.connect(), h.connect(), h.connect()
    sub.send(b"SUBSCRIBE news\r\n")
    assert sub.read().startswith(b"*3\r\n$9\r\nsubscribe")
    blocked.send(b"BLPOP q 0\r\n")
    assert blocked.read() == b""
    writer.channel.feed(b"RPUSH q item\r\nPUBLISH news hello\r\n")
    quitter.channel.feed(b"SET last 1\r\nQUIT\r\n")
    # The pop served by the push, the message and the QUIT's close all wait for the fsync.
    assert blocked.channel.output_held and sub.channel.output_held
    assert not quitter.closed
    h.run_ready()
    assert blocked.read() == b"*2\r\n$1\r\nq\r\n$4\r\nitem\r\n"
    assert sub.read() == b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    assert writer.read() == b":1\r\n:1\r\n"
    assert quitter.read() == b"+OK\r\n+OK\r\n" and quitter.closed
    assert h.violations == []


def test_everysec_fsyncs_on_its_own_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(aof_module.os, "fsync", fsync)
    with serve(RedisService, data_dir=tmp_path, settings={"services": {"redis": {"appendfsync": "everysec"}}}) as srv:
        r = redis.Redis(*srv.address(), socket_timeout=DEADLINE)
        r.set("a", "1")
        deadline = time.monotonic() + DEADLINE
        while not threads and time.monotonic() < deadline:
            time.sleep(0.05)
        r.set("b", "2")
        r.close()
    assert threads and threads[0] == "aof-fsync"


# ------------------------------------------------------------------ a real process, killed


def start_server(data_dir: Path, port: int, policy: str, **settings: object) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "linechat", "serve", "--only", "redis", "--data-dir", str(data_dir),
           "--set", f"services.redis.port={port}", "--set", f"services.redis.appendfsync={policy}",
           "--log-level", "warning"]  # fmt: skip
    for name, value in settings.items():
        cmd += ["--set", f"services.redis.{name}={value}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connect_when_listening(port, within=DEADLINE).close()
    # A file past 1 MiB is replayed while the port answers -LOADING: wait until it is done.
    r = redis.Redis(port=port, socket_timeout=DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while r.info("persistence")["loading"]:
        assert time.monotonic() < deadline, "the append-only file took too long to load"
        time.sleep(0.05)
    r.close()
    return proc


class Writer(threading.Thread):
    """Writes keys of its own until the connection breaks; records every write acknowledged."""

    def __init__(self, port: int, name: str, pipeline: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.prefix = name
        self.pipeline = pipeline
        self.acked: list[int] = []  # i of each SET prefix:i acknowledged (RPUSH prefix:list i too)

    def run(self) -> None:
        r = redis.Redis(port=self.port, socket_timeout=DEADLINE)
        i = 0
        try:
            while True:
                batch = list(range(i, i + self.pipeline))
                pipe = r.pipeline(transaction=False)
                for n in batch:
                    pipe.set(f"{self.prefix}:{n}", n)
                    pipe.rpush(f"{self.prefix}:list", n)
                pipe.execute()
                self.acked += batch
                i += self.pipeline
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return
        finally:
            r.close()

    def check_kept(self, r: redis.Redis) -> None:
        """Every write this writer saw acknowledged is in the restarted server *r*, the list in order."""
        assert self.acked, "a writer saw nothing acknowledged"
        values = r.mget([f"{self.prefix}:{n}" for n in self.acked])
        missing = [n for n, v in zip(self.acked, values, strict=True) if v != str(n).encode()]
        assert missing == [], f"{self.prefix}: {len(missing)} acknowledged writes lost"
        assert r.lrange(f"{self.prefix}:list", 0, -1)[: len(self.acked)] == [str(n).encode() for n in self.acked]


@pytest.mark.heavy
@pytest.mark.parametrize(
    ("policy", "pipelines"),
    [
        ("everysec", [1, 16, 1, 16]),
        ("always", [1, 16, 1, 16]),
        # Group commit: many pipelining clients whose writes share each turn's fsync.
        ("always", [4, 8, 16, 32, 16, 8]),
    ],
    ids=["everysec", "always", "always-pipelined"],
)
def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, policy: str, pipelines: list[int]) -> None:
    rounds = 3 if policy == "everysec" else 2
    port = free_port()
    history: list[Writer] = []
    for round_no in range(rounds):
        proc = start_server(tmp_path, port, policy)
        try:
            writers = [Writer(port, f"r{round_no}w{w}", pipeline=depth) for w, depth in enumerate(pipelines)]
            for w in writers:
                w.start()
            # Kill mid-load once enough writes were acknowledged (a count, not a time).
            deadline = time.monotonic() + DEADLINE
            while sum(len(w.acked) for w in writers) < 3000 + 500 * round_no:
                assert time.monotonic() < deadline, "the writers made no progress"
                assert all(w.is_alive() for w in writers)
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(DEADLINE)
            for w in writers:
                w.join(DEADLINE)
            history += writers
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(DEADLINE)
    # Restart once more and check every round's acknowledged writes.
    proc = start_server(tmp_path, port, policy)
    try:
        r = redis.Redis(port=port, socket_timeout=DEADLINE)
        for w in history:
            w.check_kept(r)
        r.close()
    finally:
        proc.terminate()
        proc.wait(DEADLINE)


@pytest.mark.heavy
def test_rewrites_under_load_then_sigkill_lose_no_acknowledged_write(tmp_path: Path) -> None:
    port = free_port()
    proc = start_server(tmp_path, port, "everysec")
    try:
        writers = [Writer(port, f"w{w}", pipeline=1 + 15 * (w % 2)) for w in range(4)]
        for w in writers:
            w.start()
        admin = redis.Redis(port=port, socket_timeout=DEADLINE)
        deadline = time.monotonic() + DEADLINE
        for rewrite in range(3):
            # Each rewrite forks while the writers go on; their writes meanwhile must reach the new file.
            while sum(len(w.acked) for w in writers) < 2000 * (rewrite + 1):
                assert time.monotonic() < deadline and all(w.is_alive() for w in writers)
                time.sleep(0.01)
            admin.bgrewriteaof()
            while admin.info("persistence")["aof_rewrite_in_progress"]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert admin.info("persistence")["aof_last_bgrewrite_status"] == "ok"
        assert admin.info("persistence")["aof_rewrites"] == 3
        admin.close()
        target = sum(len(w.acked) for w in writers) + 1000
        while sum(len(w.acked) for w in writers) < target:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(DEADLINE)
        for w in writers:
            w.join(DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)
    assert [p.name for p in (tmp_path / "redis").iterdir()] == ["appendonly.aof"]
    proc = start_server(tmp_path, port, "everysec")
    try:
        r = redis.Redis(port=port, socket_timeout=DEADLINE)
        for w in writers:
            w.check_kept(r)
        r.close()
    finally:
        proc.terminate()
        proc.wait(DEADLINE)


def wait_for(condition: Any, what: str) -> None:
    """Poll *condition* until it holds; the deadline is a safety net, never a performance bound."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def acked(writers: list[Writer]) -> int:
    return sum(len(w.acked) for w in writers)


#: A value whose record alone passes the 4 KiB of rewrite-time records kept in memory.
SPILLED = b"s" * 8192


def spill_round(tmp_path: Path, port: int, round_no: int, policy: str, finish: bool) -> list[Writer]:
    """Writers, a rewrite whose records spill to disk, then kill -9: during the rewrite, or after it finished."""
    directory = tmp_path / "redis"
    # The child pauses after each key so that the rewrite lasts while the writers write: 10 ms a key
    # when it is to be killed (it cannot end before), 100 us when it is to finish.
    delay = 100 if finish else 10_000
    proc = start_server(tmp_path, port, policy, aof_rewrite_buffer_limit=4096, rdb_key_save_delay=delay)
    try:
        assert not list(directory.glob("temp-rewriteaof-*"))  # a killed rewrite's files are gone at start
        writers = [Writer(port, f"r{round_no}w{w}", pipeline=1 + 15 * (w % 2)) for w in range(4)]
        for w in writers:
            w.start()
        admin = redis.Redis(port=port, socket_timeout=DEADLINE)
        wait_for(lambda: acked(writers) >= 2000, "writes before the rewrite")
        # BGREWRITEAOF and a record bigger than the 4 KiB kept in memory, in one write: the server reads
        # them together, so the record is made while the rewrite runs (its child cannot have been reaped in
        # between) and goes to the spill file.  Only looking for the spill file raced the end of a short
        # rewrite, whose switch-over removes it: a busy machine could let that come first.
        probe = RawClient(("127.0.0.1", port), timeout=DEADLINE)
        probe.send(cmd("BGREWRITEAOF") + cmd("SET", f"r{round_no}:spilled", SPILLED))
        assert probe.reply().startswith(b"+") and probe.reply() == b"+OK\r\n"
        probe.close()
        if finish:
            # Let the rewrite switch over (appending the spill file), then write on.
            wait_for(lambda: admin.info("persistence")["aof_rewrites"] == 1, "the rewrite")
            assert admin.info("persistence")["aof_last_bgrewrite_status"] == "ok"
            assert not list(directory.glob("temp-rewriteaof-*"))
            target = acked(writers) + 1000
            wait_for(lambda: acked(writers) >= target, "writes after the rewrite")
        else:
            # The rewrite lasts (10 ms a key): its spill file is there to see, the record in it.
            spill = directory / f"temp-rewriteaof-incr-{proc.pid}.aof"
            wait_for(lambda: spill.exists() and spill.stat().st_size >= len(SPILLED), "a spill")
            assert admin.info("persistence")["aof_rewrite_in_progress"] == 1
        admin.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(DEADLINE)
        for w in writers:
            w.join(DEADLINE)
        return writers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)


@pytest.mark.heavy
def test_rewrites_spilling_to_disk_then_sigkill_lose_no_acknowledged_write(tmp_path: Path) -> None:
    """A tiny rewrite buffer (4 KiB): kill -9 in the middle of a rewrite, and after one, lose nothing acknowledged."""
    port = free_port()
    history = spill_round(tmp_path, port, 0, "everysec", finish=False)
    history += spill_round(tmp_path, port, 1, "always", finish=True)
    proc = start_server(tmp_path, port, "everysec")
    try:
        assert [p.name for p in (tmp_path / "redis").iterdir()] == ["appendonly.aof"]
        r = redis.Redis(port=port, socket_timeout=DEADLINE)
        for w in history:
            w.check_kept(r)
        assert r.mget(["r0:spilled", "r1:spilled"]) == [SPILLED, SPILLED]  # the records that spilled
        r.close()
    finally:
        proc.terminate()
        proc.wait(DEADLINE)
