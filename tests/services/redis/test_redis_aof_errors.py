"""A full or failing disk under the append-only file: nothing acknowledged that is not written.

In memory, ``os.write``/``os.fsync`` of the AOF's descriptor are made to fail
(ENOSPC, EIO): under ``always`` the held replies of the failed turn never
leave and their connections are closed; in the error state writes get
redis-server's ``-MISCONF``, reads are served, and the retry timer clears it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from linechat.services.redis import RedisService
from linechat.services.redis import aof as aof_module
from linechat.testing import ServiceHarness
from structlog.testing import capture_logs

MISCONF = b"-MISCONF Errors writing to the AOF file: No space left on device\r\n"


class Disk:
    """Fails write(2) and/or fsync(2) on the AOF's descriptor while told to; counts the attempts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, aof: Any) -> None:
        self.aof = aof
        self.write_error: int | None = None
        self.fsync_error: int | None = None
        self.writes = 0
        self.fsyncs = 0
        real_write, real_fsync = os.write, os.fsync

        def write(fd: int, data: Any) -> int:
            if fd == aof._fd:
                self.writes += 1
                if self.write_error is not None:
                    raise OSError(self.write_error, os.strerror(self.write_error))
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            if fd == aof._fd:
                self.fsyncs += 1
                if self.fsync_error is not None:
                    raise OSError(self.fsync_error, os.strerror(self.fsync_error))
            real_fsync(fd)

        monkeypatch.setattr(aof_module.os, "write", write)
        monkeypatch.setattr(aof_module.os, "fsync", fsync)


@pytest.fixture
def setup(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    policy = getattr(request, "param", "always")
    with capture_logs() as logs, ServiceHarness(RedisService, data_dir=tmp_path, appendfsync=policy) as h:
        aof = h.service.aof
        assert aof is not None
        yield h, Disk(monkeypatch, aof), logs


def aof_bytes(h: Any) -> bytes:
    return Path(h.service.aof.path).read_bytes()


def info_status(client: Any) -> str:
    client.send(b"INFO persistence\r\n")
    text = client.read().decode()
    return next(line for line in text.splitlines() if line.startswith("aof_last_write_status:"))


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_always_a_failed_turn_sends_no_held_reply_and_closes_those_connections(setup: Any, failing: str) -> None:
    h, disk, logs = setup
    early, writer, reader, later = h.connect(), h.connect(), h.connect(), h.connect()
    writer.send(b"SET before ok\r\n")
    assert writer.read() == b"+OK\r\n"
    if failing == "write":
        disk.write_error = errno.ENOSPC
    else:
        disk.fsync_error = errno.EIO
    # One reactor turn: a read before any write (answered), a write, a read after it (may show it).
    early.channel.feed(b"GET before\r\n")
    writer.channel.feed(b"SET lost 1\r\nINCR n\r\n")
    reader.channel.feed(b"GET lost\r\n")
    h.run_ready()
    assert early.read() == b"$2\r\nok\r\n"
    assert writer.read() == b"" and writer.closed
    assert reader.read() == b"" and reader.closed
    assert not early.closed
    aof = h.service.aof
    if failing == "write":
        assert b"lost" not in aof_bytes(h)
        assert b"lost" in bytes(aof._buf)  # kept, in order, for the retry
    assert events(logs, f"aof_{failing}_failed")
    assert events(logs, "aof_replies_dropped")[0]["connections"] == 2
    # The error state: writes refused, reads served, INFO says so.
    error = "No space left on device" if failing == "write" else "Input/output error"
    refusal = b"-MISCONF Errors writing to the AOF file: " + error.encode() + b"\r\n"
    later.send(b"SET x 1\r\n")
    assert later.read() == refusal
    later.send(b"GET before\r\n")
    assert later.read() == b"$2\r\nok\r\n"
    assert info_status(later) == "aof_last_write_status:err"
    # Still failing after a retry; then the disk recovers and the next retry clears the state.
    h.advance(1.0)
    assert aof.write_error is not None
    disk.write_error = disk.fsync_error = None
    fsyncs = disk.fsyncs
    h.advance(1.0)
    assert aof.write_error is None
    assert disk.fsyncs > fsyncs
    assert b"lost" in aof_bytes(h) and not aof.pending
    assert events(logs, "aof_write_recovered")
    later.send(b"SET x 1\r\n")
    assert later.read() == b"+OK\r\n"
    assert info_status(later) == "aof_last_write_status:ok"


def test_the_error_state_refuses_writes_as_redis_server_does(setup: Any) -> None:
    h, disk, _logs = setup
    c, queued = h.connect(), h.connect()
    c.send(b"SET a 1\r\nSADD s m\r\n")
    assert c.read() == b"+OK\r\n:1\r\n"
    queued.send(b"MULTI\r\nSET t 1\r\n")  # queued before the error: EXEC comes after it
    assert queued.read() == b"+OK\r\n+QUEUED\r\n"
    disk.write_error = errno.ENOSPC
    victim = h.connect()
    victim.send(b"SET b 2\r\n")
    assert victim.closed
    # Write commands, any spelling, pipelined or not; PING too (redis-server 7.0 refuses it as well).
    c.send(b"set b 2\r\nINCR n\r\nDEL a\r\nPING\r\nGET a\r\nSMEMBERS s\r\nDBSIZE\r\n")
    # (The victim's SET ran in memory before its record failed: it counts, as on redis-server.)
    assert c.read() == MISCONF * 4 + b"$1\r\n1\r\n*1\r\n$1\r\nm\r\n:3\r\n"
    # A subcommand with the write flag.
    c.send(b"XGROUP CREATE st g $ MKSTREAM\r\nXLEN st\r\n")
    assert c.read() == MISCONF + b":0\r\n"
    # MULTI: the write is refused while queueing, and EXEC aborts.
    c.send(b"MULTI\r\nSET b 2\r\nGET a\r\nEXEC\r\n")
    aborted = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert c.read() == b"+OK\r\n" + MISCONF + b"+QUEUED\r\n" + aborted
    # A transaction of reads runs.
    c.send(b"MULTI\r\nGET a\r\nEXEC\r\n")
    assert c.read() == b"+OK\r\n+QUEUED\r\n*1\r\n$1\r\n1\r\n"
    # EXEC of a write queued before the error: refused, and the transaction is gone.
    queued.send(b"EXEC\r\nEXEC\r\n")
    assert queued.read() == (
        b"-EXECABORT Transaction discarded because of: MISCONF Errors writing to the AOF file: "
        b"No space left on device\r\n-ERR EXEC without MULTI\r\n"
    )
    # Scripts: a write from redis.call fails the script, redis.pcall sees the error, reads run.
    c.send(b"EVAL \"return redis.call('set','b','2')\" 0\r\n")
    reply = c.read()
    assert reply.startswith(b"-MISCONF Errors writing to the AOF file: No space left on device script: ")
    c.send(b"EVAL \"return redis.pcall('set','b','2')['err']\" 0\r\n")
    assert c.read() == b"$63\r\nMISCONF Errors writing to the AOF file: No space left on device\r\n"
    c.send(b"EVAL \"return redis.call('get','a')\" 0\r\n")
    assert c.read() == b"$1\r\n1\r\n"
    for key in (b"n", b"t"):
        c.send(b"EXISTS " + key + b"\r\n")
        assert c.read() == b":0\r\n"
    disk.write_error = None
    h.advance(1.0)
    c.send(b"SET b 2\r\nPING\r\n")
    assert c.read() == b"+OK\r\n+PONG\r\n"


@pytest.mark.parametrize("setup", ["everysec", "no"], indirect=True)
def test_everysec_and_no_drop_the_client_whose_write_failed_and_keep_its_records(setup: Any) -> None:
    h, disk, _logs = setup
    other, writer = h.connect(), h.connect()
    other.send(b"SET a 1\r\n")
    assert other.read() == b"+OK\r\n"
    disk.write_error = errno.ENOSPC
    writer.send(b"SET b 2\r\nRPUSH l x\r\n")
    assert writer.read() == b"" and writer.closed
    aof = h.service.aof
    assert b"RPUSH" in bytes(aof._buf)
    other.send(b"GET b\r\nSET c 3\r\n")  # the write ran in memory: a read sees it, as it would on redis-server
    assert other.read() == b"$1\r\n2\r\n" + MISCONF
    disk.write_error = None
    h.advance(1.0)
    assert aof.write_error is None and not aof.pending
    assert b"RPUSH" in aof_bytes(h)
    other.send(b"SET c 3\r\n")
    assert other.read() == b"+OK\r\n"


@pytest.mark.parametrize("setup", ["everysec"], indirect=True)
def test_a_failed_fsync_on_the_everysec_thread_enters_the_error_state(setup: Any) -> None:
    h, disk, _logs = setup
    aof = h.service.aof
    c = h.connect()
    c.send(b"SET a 1\r\n")
    assert c.read() == b"+OK\r\n"
    disk.fsync_error = errno.EIO
    # The thread's report, as it arrives on the reactor.
    aof._failed("fsync", OSError(errno.EIO, os.strerror(errno.EIO)))
    c.send(b"SET b 2\r\n")
    assert c.read() == b"-MISCONF Errors writing to the AOF file: Input/output error\r\n"
    disk.fsync_error = None
    h.advance(1.0)
    assert aof.write_error is None
    c.send(b"SET b 2\r\n")
    assert c.read() == b"+OK\r\n"


def test_a_full_disk_does_not_flood_the_log(setup: Any) -> None:
    h, disk, logs = setup
    c = h.connect()
    disk.write_error = errno.ENOSPC
    c2 = h.connect()
    c2.send(b"SET a 1\r\n")
    assert c2.closed
    for _ in range(300):  # five minutes of retries, one a second
        h.advance(1.0)
    failures = [e for e in logs if e["event"] in ("aof_write_failed", "aof_still_failing")]
    assert 1 < len(failures) <= 11
    assert disk.writes >= 300  # every retry did try
    assert sum(e["failures"] for e in failures) >= 290
    # A disk that frees a little and fills again: entering and leaving are rate-limited too.
    for _ in range(60):
        disk.write_error = None
        h.advance(1.0)
        c.send(b"SET k v\r\n")
        c.read()
        disk.write_error = errno.ENOSPC
        c3 = h.connect()
        c3.send(b"SET k v\r\n")
        h.advance(1.0)
    assert len([e for e in logs if e["event"].startswith("aof_")]) < 60


def test_no_rewrite_starts_while_the_file_cannot_be_written(setup: Any) -> None:
    h, disk, logs = setup
    c = h.connect()
    disk.write_error = errno.ENOSPC
    h.connect().send(b"SET a 1\r\n")
    c.send(b"BGREWRITEAOF\r\n")
    assert c.read().startswith(b"-ERR Can't execute an AOF background rewriting.")
    assert events(logs, "aof_rewrite_failed")
    assert h.service.rewriter.pid == 0


def test_stopping_in_the_error_state_writes_what_it_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with capture_logs() as logs:
        h = ServiceHarness(RedisService, data_dir=tmp_path, appendfsync="always")
        disk = Disk(monkeypatch, h.service.aof)
        disk.write_error = errno.ENOSPC
        h.connect().send(b"SET a 1\r\n")
        disk.write_error = None
        path = h.service.aof.path
        h.close()
    assert b"SET" in Path(path).read_bytes()
    assert not events(logs, "aof_closed_unwritten")
