"""AOF rewrite: a forked child writes the data set as commands; the parent keeps what is written meanwhile.

``BGREWRITEAOF`` (or the automatic trigger) forks.  The child holds a
copy-on-write image of the data set as it was at the fork and writes it as
the shortest commands that rebuild it (``SET``, ``RPUSH``, ``HMSET``,
``SADD``, ``ZADD`` and ``XADD`` of 64 items at most, ``PEXPIREAT`` for
deadlines, ``XSETID``/``XGROUP CREATE``/``XCLAIM`` for stream state) into a
temporary file, fsyncs it and exits.  Meanwhile the parent serves as usual
and keeps a copy of every record it appends.  When the child has exited the
parent appends that copy to the temporary file, fsyncs it, renames it over
the append-only file and fsyncs the directory (see
:meth:`AppendOnlyFile.switch_to`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linechat.services.redis.resp import array
from linechat.services.redis.store import Database
from linechat.services.redis.stream_type import Stream, id_bytes
from linechat.services.redis.zset import SortedSet, format_score

if TYPE_CHECKING:
    from linechat.reactor import Timer
    from linechat.services.redis.service import RedisService

__all__ = ["ITEMS_PER_COMMAND", "Rewriter", "snapshot_records", "write_snapshot"]

#: Elements per RPUSH/SADD/HMSET/ZADD/XADD group, as redis-server writes them (AOF_REWRITE_ITEMS_PER_CMD).
ITEMS_PER_COMMAND = 64
#: How often the parent looks whether the child has finished (seconds).
POLL_INTERVAL = 0.05
_WRITE_CHUNK = 1 << 20


def _chunks(head: list[bytes], items: Iterable[bytes], per: int) -> Iterator[bytes]:
    """``head + items`` as commands of at most *per* items each (pairs count as two items when flattened)."""
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= per:
            yield array(head + batch)
            batch = []
    if batch:
        yield array(head + batch)


def _flat_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
    for first, second in pairs:
        yield first
        yield second


def _stream_records(key: bytes, stream: Stream) -> Iterator[bytes]:
    """A stream: its entries, then its counters, groups, pending entries and idle consumers."""
    if stream.ids:
        for sid in stream.ids:
            yield array([b"XADD", key, id_bytes(sid), *stream.entries[sid]])
    else:
        # An empty stream is made by adding an entry and trimming it away (then XSETID sets the real last id).
        yield array([b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"])
    yield array(
        [
            b"XSETID",
            key,
            id_bytes(stream.last_id),
            b"ENTRIESADDED",
            b"%d" % stream.entries_added,
            b"MAXDELETEDID",
            id_bytes(stream.max_deleted),
        ]
    )
    for name, group in stream.groups.items():
        yield array(
            [b"XGROUP", b"CREATE", key, name, id_bytes(group.last_id), b"ENTRIESREAD", b"%d" % group.entries_read]
        )
        # Every consumer first, in their order (the pending entries would create them in another).
        for consumer in group.consumers.values():
            yield array([b"XGROUP", b"CREATECONSUMER", key, name, consumer.name])
        for sid in group.sorted_pel():
            pending = group.pel[sid]
            if pending.consumer is None:
                continue
            # As redis-server writes it; an id no longer in the stream is dropped on replay, as there.
            yield array(
                [
                    b"XCLAIM",
                    key,
                    name,
                    pending.consumer.name,
                    b"0",
                    id_bytes(sid),
                    b"TIME",
                    b"%d" % pending.time,
                    b"RETRYCOUNT",
                    b"%d" % pending.count,
                    b"JUSTID",
                    b"FORCE",
                ]
            )


def value_records(key: bytes, value: Any) -> Iterator[bytes]:
    """The commands that rebuild one value (no deadline)."""
    kind = type(value)
    per = ITEMS_PER_COMMAND
    if kind is bytes or kind is bytearray:  # a bytearray: a string a bit command changed in place
        yield b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
    elif kind is deque:
        yield from _chunks([b"RPUSH", key], value, per)
    elif kind is dict:
        yield from _chunks([b"HMSET", key], _flat_pairs(value.items()), per * 2)
    elif kind is set:
        yield from _chunks([b"SADD", key], value, per)
    elif kind is SortedSet:
        yield from _chunks([b"ZADD", key], _flat_pairs((format_score(s), m) for s, m in value), per * 2)
    elif kind is Stream:
        yield from _stream_records(key, value)
    else:
        raise TypeError(f"no AOF form for a value of type {kind.__name__}")


def snapshot_records(dbs: list[Database], now_ms: int) -> Iterator[bytes]:
    """The records of a compact AOF of *dbs*: keys past their deadline at *now_ms* are left out."""
    for db in dbs:
        if not db.data:
            continue
        yield array([b"SELECT", b"%d" % db.index])
        expires = db.expires
        for key, value in db.data.items():
            deadline = expires.get(key)
            if deadline is not None and deadline <= now_ms:
                continue
            yield from value_records(key, value)
            if deadline is not None:
                yield b"*3\r\n$9\r\nPEXPIREAT\r\n$%d\r\n%s\r\n$%d\r\n%d\r\n" % (
                    len(key),
                    key,
                    len(b"%d" % deadline),
                    deadline,
                )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    written = 0
    while written < len(data):
        written += os.write(fd, view[written:])


def write_snapshot(fd: int, dbs: list[Database], now_ms: int) -> int:
    """Write the snapshot of *dbs* to *fd* in large writes, fsync it; return the bytes written."""
    parts: list[bytes] = []
    pending = 0
    total = 0
    for record in snapshot_records(dbs, now_ms):
        parts.append(record)
        pending += len(record)
        if pending >= _WRITE_CHUNK:
            _write_all(fd, b"".join(parts))
            total += pending
            parts.clear()
            pending = 0
    if parts:
        _write_all(fd, b"".join(parts))
        total += pending
    os.fsync(fd)
    return total


class Rewriter:
    """Runs background rewrites for one server: fork, watch the child, switch over; the INFO figures."""

    def __init__(self, server: RedisService) -> None:
        self.server = server
        self.pid = 0  # the child's, while a rewrite runs
        self.temp: Path | None = None
        self.scheduled = False  # asked for while it could not start (inside EXEC): starts from the cron
        self.started_at = 0.0
        self.last_status = "ok"
        self.last_time_sec = -1
        self.rewrites = 0
        self.consecutive_failures = 0
        self._timer: Timer | None = None

    @property
    def in_progress(self) -> bool:
        """True while a child is writing a snapshot."""
        return self.pid != 0

    def start(self) -> bool:
        """Fork a child that writes the snapshot; False (and logged) if that could not be done."""
        server = self.server
        aof = server.aof
        if aof is None or self.pid:
            return False
        self.scheduled = False
        temp = aof.path.with_name(f"temp-rewriteaof-bg-{os.getpid()}.aof")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            server.log.error("aof_rewrite_failed", error=str(exc))
            self._failed()
            return False
        now_ms = server.now_ms()
        aof.start_rewrite()
        with warnings.catch_warnings():
            # The fsync thread only ever waits or fsyncs: the child never needs a lock it could hold.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(fd)
                temp.unlink(missing_ok=True)
                aof.abandon_rewrite()
                server.log.error("aof_rewrite_failed", error=str(exc))
                self._failed()
                return False
        if pid == 0:  # pragma: no cover - the child (coverage cannot follow it)
            self._child(fd, now_ms)
        os.close(fd)
        self.pid = pid
        self.temp = temp
        self.started_at = time.monotonic()
        self._timer = server.reactor.call_every(POLL_INTERVAL, self.poll)
        server.log.info("aof_rewrite_started", pid=pid)
        return True

    def _child(self, fd: int, now_ms: int) -> None:  # pragma: no cover - runs in the child
        """The child: write the snapshot and leave without running any of the parent's exit handlers."""
        status = 1
        try:
            # A collection would touch (and so copy) every tracked object's page.
            gc.disable()
            # Listening sockets and connections stay the parent's alone: a child outliving a killed
            # parent must not keep the port bound.
            os.closerange(3, fd)
            os.closerange(fd + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            write_snapshot(fd, self.server.dbs, now_ms)
            status = 0
        except BaseException:  # anything: report failure through the exit status
            status = 1
        finally:
            os._exit(status)

    def poll(self) -> None:
        """The reactor's check: has the child exited?  Then switch over (or report the failure)."""
        if not self.pid:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 1 << 8
        if pid == 0:
            return
        self._finished(status)

    def wait(self) -> None:
        """Block until the running rewrite ends and switch over (tests, and a shutdown that must not lose it)."""
        if not self.pid:
            return
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = 1 << 8
        self._finished(status)

    def _finished(self, status: int) -> None:
        server = self.server
        aof = server.aof
        temp = self.temp
        self.pid = 0
        self.temp = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        elapsed = time.monotonic() - self.started_at
        ok = os.waitstatus_to_exitcode(status) == 0
        if ok and aof is not None and temp is not None:
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_APPEND)
                try:
                    aof.switch_to(fd, temp)
                except BaseException:
                    os.close(fd)
                    raise
            except OSError as exc:
                server.log.error("aof_rewrite_failed", error=str(exc))
                ok = False
        if not ok:
            if aof is not None:
                aof.abandon_rewrite()
            if temp is not None:
                temp.unlink(missing_ok=True)
            server.log.error("aof_rewrite_failed", exit_status=status)
            self._failed()
            return
        self.last_status = "ok"
        self.consecutive_failures = 0
        self.rewrites += 1
        self.last_time_sec = int(elapsed)
        server.log.info("aof_rewrite_done", seconds=round(elapsed, 3), size=aof.size if aof else 0)

    def _failed(self) -> None:
        self.last_status = "err"
        self.consecutive_failures += 1

    def current_time_sec(self) -> int:
        """Seconds the running rewrite has taken so far, or -1."""
        return int(time.monotonic() - self.started_at) if self.pid else -1

    def cron(self) -> None:
        """From the server's periodic timer: start a scheduled rewrite, or an automatic one when the file grew."""
        server = self.server
        aof = server.aof
        if aof is None or self.pid or server.loading:
            return
        if self.scheduled:
            self.start()
            return
        settings = server.settings
        percentage = settings.auto_aof_rewrite_percentage
        if percentage and aof.size > settings.auto_aof_rewrite_min_size:
            base = aof.base_size or 1
            growth = aof.size * 100 // base - 100
            if growth >= percentage:
                server.log.info("aof_rewrite_automatic", growth_percent=growth, size=aof.size)
                self.start()

    def stop(self) -> None:
        """Shutting down: end a running child and drop its temporary file (the current file stays whole)."""
        if not self.pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pid = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None
        if self.server.aof is not None:
            self.server.aof.abandon_rewrite()
