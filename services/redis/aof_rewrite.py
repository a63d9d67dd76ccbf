"""AOF rewrite: a forked child writes the data set as commands; the parent keeps what is written meanwhile.

``BGREWRITEAOF`` (or the automatic trigger) forks.  The child holds a
copy-on-write image of the data set as it was at the fork and writes it as
the shortest commands that rebuild it (``SET``, ``RPUSH``, ``HMSET``,
``SADD``, ``ZADD`` and ``XADD`` of 64 items at most, ``PEXPIREAT`` for
deadlines, ``XSETID``/``XGROUP CREATE``/``XCLAIM`` for stream state) into a
temporary file, fsyncs it and exits.  Meanwhile the parent serves as usual
and keeps a copy of every record it appends: in memory up to
``aof_rewrite_buffer_limit`` bytes, beyond that in a spill file beside the
append-only file.  When the child has exited the parent appends the spill
file to the temporary file a chunk per reactor turn (the spill file keeps
growing meanwhile), then the last chunk and the records in memory, fsyncs
it, renames it over the append-only file and fsyncs the directory (see
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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linechat.services.redis.resp import array
from linechat.services.redis.store import Database
from linechat.services.redis.stream_type import Stream, id_bytes
from linechat.services.redis.zset import SortedSet, format_score

if TYPE_CHECKING:
    from linechat.reactor import Timer
    from linechat.services.redis.service import RedisService

__all__ = ["ITEMS_PER_COMMAND", "Rewriter", "remove_leftovers", "snapshot_records", "write_snapshot"]

#: Elements per RPUSH/SADD/HMSET/ZADD/XADD group, as redis-server writes them (AOF_REWRITE_ITEMS_PER_CMD).
ITEMS_PER_COMMAND = 64
#: How often the parent looks whether the child has finished (seconds).
POLL_INTERVAL = 0.05
_WRITE_CHUNK = 1 << 20
#: Bytes of the spill file appended to the new file per reactor turn after the child exits.
CATCH_UP_CHUNK = 1 << 20
#: Names of the temporary files a rewrite leaves beside the append-only file if the process dies.
_LEFTOVERS = ("temp-rewriteaof-bg-*.aof", "temp-rewriteaof-incr-*.aof", "temp-import-*.aof")


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


def snapshot_records(dbs: list[Database], now_ms: int, after_key: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The records of a compact AOF of *dbs*: keys past their deadline at *now_ms* are left out.

    *after_key* is called after each key (the child's pause of ``rdb_key_save_delay``).
    """
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
            if after_key is not None:
                after_key()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    written = 0
    while written < len(data):
        written += os.write(fd, view[written:])


def write_snapshot(fd: int, dbs: list[Database], now_ms: int, key_delay: float = 0.0, parent: int = 0) -> int:
    """Write the snapshot of *dbs* to *fd* in large writes, fsync it; return the bytes written.

    *key_delay* (seconds) pauses after each key, as redis-server's
    ``rdb-key-save-delay`` (tests use it to keep a rewrite running while
    writes arrive).  With *parent* set, the writing stops (``ChildProcessError``)
    once that process is gone: nobody would switch to the file.
    """

    def parent_alive() -> None:
        if parent and os.getppid() != parent:
            raise ChildProcessError("the server that forked this rewrite is gone")

    def after_key() -> None:
        time.sleep(key_delay)
        parent_alive()

    parts: list[bytes] = []
    pending = 0
    total = 0
    for record in snapshot_records(dbs, now_ms, after_key if key_delay else None):
        parts.append(record)
        pending += len(record)
        if pending >= _WRITE_CHUNK:
            parent_alive()
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
        self._fd = -1  # the new file, open for appending while the spill file is copied into it

    @property
    def in_progress(self) -> bool:
        """True while a child is writing a snapshot, or the parent is appending the spilled records after it."""
        return self.pid != 0 or self._fd >= 0

    def start(self) -> bool:
        """Fork a child that writes the snapshot; False (and logged) if that could not be done."""
        server = self.server
        aof = server.aof
        if aof is None or self.in_progress:
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
        parent = os.getpid()
        try:
            aof.start_rewrite()
        except OSError as exc:
            os.close(fd)
            temp.unlink(missing_ok=True)
            server.log.error("aof_rewrite_failed", error=str(exc))
            self._failed()
            return False
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
            self._child(fd, now_ms, parent)
        os.close(fd)
        self.pid = pid
        self.temp = temp
        self.started_at = time.monotonic()
        self._timer = server.reactor.call_every(POLL_INTERVAL, self.poll)
        server.log.info("aof_rewrite_started", pid=pid)
        return True

    def _child(self, fd: int, now_ms: int, parent: int) -> None:  # pragma: no cover - runs in the child
        """The child: write the snapshot and leave without running any of the parent's exit handlers."""
        status = 1
        try:
            # A collection would touch (and so copy) every tracked object's page.
            gc.disable()
            # Listening sockets and connections stay the parent's alone: a child outliving a killed
            # parent must not keep the port bound.
            os.closerange(3, fd)
            os.closerange(fd + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            delay = self.server.settings.rdb_key_save_delay / 1_000_000
            write_snapshot(fd, self.server.dbs, now_ms, delay, parent)
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
        if self.pid:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                status = 1 << 8
            self._finished(status, at_once=True)
        elif self._fd >= 0:
            self._switch()

    def _finished(self, status: int, at_once: bool = False) -> None:
        """The child exited: on success append the spilled records, a chunk per turn, then switch over."""
        server = self.server
        aof = server.aof
        self.pid = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if os.waitstatus_to_exitcode(status) != 0 or aof is None or self.temp is None:
            self._fail(exit_status=status)
            return
        try:
            self._fd = os.open(self.temp, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            self._fail(error=str(exc))
            return
        if at_once:
            self._switch()
        else:
            self._catch_up()

    def _catch_up(self) -> None:
        """One reactor turn's share of the spill file; the switch once what is left is small."""
        aof = self.server.aof
        if self._fd < 0:
            return  # stopped meanwhile
        if aof is None or aof.rewrite_failed is not None:
            self._fail(error=aof.rewrite_failed if aof is not None else "append-only file closed")
            return
        if aof.spill_unread <= CATCH_UP_CHUNK:
            self._switch()
            return
        try:
            aof.copy_spilled(self._fd, CATCH_UP_CHUNK)
        except OSError as exc:
            self._fail(error=str(exc))
            return
        # Behind whatever else the reactor has to do: clients keep being served while the copy catches up.
        self.server.reactor.call_soon(self._catch_up)

    def _switch(self) -> None:
        server = self.server
        aof = server.aof
        fd, self._fd = self._fd, -1
        temp, self.temp = self.temp, None
        try:
            if aof is None or temp is None:
                raise OSError("append-only file closed")
            aof.switch_to(fd, temp)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            self.temp = temp
            self._fail(error=str(exc))
            return
        elapsed = time.monotonic() - self.started_at
        self.last_status = "ok"
        self.consecutive_failures = 0
        self.rewrites += 1
        self.last_time_sec = int(elapsed)
        server.log.info("aof_rewrite_done", seconds=round(elapsed, 3), size=aof.size)

    def _fail(self, **fields: Any) -> None:
        """The rewrite cannot finish: the current file stays in use, whole; the temporary files go."""
        server = self.server
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if server.aof is not None:
            server.aof.abandon_rewrite()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None
        server.log.error("aof_rewrite_failed", **fields)
        self._failed()

    def _failed(self) -> None:
        self.last_status = "err"
        self.consecutive_failures += 1

    def current_time_sec(self) -> int:
        """Seconds the running rewrite has taken so far, or -1."""
        return int(time.monotonic() - self.started_at) if self.in_progress else -1

    def cron(self) -> None:
        """From the server's periodic timer: start a scheduled rewrite, or an automatic one when the file grew."""
        server = self.server
        aof = server.aof
        if aof is None or self.in_progress or server.loading or aof.write_error is not None:
            return  # (a file that cannot be written waits: the rewrite starts once it can)
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
        """Shutting down: end a running child and drop the temporary files (the current file stays whole)."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None
        if self.server.aof is not None:
            self.server.aof.abandon_rewrite()


def remove_leftovers(path: Path, log: Any) -> None:
    """Remove the temporary files of a rewrite that a killed process left beside the append-only file *path*."""
    for pattern in _LEFTOVERS:
        for leftover in path.parent.glob(pattern):
            try:
                leftover.unlink()
            except OSError as exc:
                log.warning("aof_leftover_not_removed", path=str(leftover), error=str(exc))
            else:
                log.info("aof_leftover_removed", path=str(leftover))
