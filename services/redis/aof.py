"""The append-only file: write commands in RESP, an fsync policy, and replay at start."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from linechat.services.redis.resp import array

__all__ = ["REWRITE_LIMIT", "AppendOnlyFile", "TruncatedAOFError", "read_commands"]

#: Bytes of rewrite-time records held in memory before they go to the spill file (aof_rewrite_buffer_limit).
REWRITE_LIMIT = 4 << 20
#: The most a spill file is copied (or read) in one piece.
_COPY_CHUNK = 1 << 20
#: Seconds between retries of a failed write or fsync (redis-server retries from its once-a-second cron).
RETRY_INTERVAL = 1.0
#: While the file cannot be written, at most one log line per this many seconds says it still fails.
_FAILURE_LOG_INTERVAL = 30.0


class TruncatedAOFError(Exception):
    """The file ends inside a command; ``valid`` is the length of the complete prefix."""

    def __init__(self, valid: int) -> None:
        super().__init__(valid)
        self.valid = valid


def read_commands(data: bytes, start: int = 0) -> Iterator[tuple[list[bytes], int]]:
    """Yield ``(argv, end_offset)`` for each command in AOF bytes from offset *start*.

    Raises :class:`TruncatedAOFError` if the data ends in the middle of a command
    (a crash while appending) and ``ValueError`` if it is not RESP at all.
    """
    pos = start
    n = len(data)
    while pos < n:
        start = pos
        if data[pos] != 0x2A:  # '*'
            raise ValueError(f"bad AOF format at offset {pos}")
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            raise TruncatedAOFError(start)
        try:
            count = int(data[pos + 1 : nl])
        except ValueError:
            raise ValueError(f"bad multibulk length at offset {pos}") from None
        pos = nl + 2
        argv: list[bytes] = []
        for _ in range(count):
            if pos >= n:
                raise TruncatedAOFError(start)
            if data[pos] != 0x24:  # '$'
                raise ValueError(f"bad bulk header at offset {pos}")
            nl = data.find(b"\r\n", pos)
            if nl < 0:
                raise TruncatedAOFError(start)
            try:
                size = int(data[pos + 1 : nl])
            except ValueError:
                raise ValueError(f"bad bulk length at offset {pos}") from None
            pos = nl + 2
            if pos + size + 2 > n:
                raise TruncatedAOFError(start)
            argv.append(data[pos : pos + size])
            pos += size + 2
        yield argv, pos


class AppendOnlyFile:
    """Appends commands to a file; flushes on demand; fsyncs per the policy.

    Appends are buffered, and the owner calls :meth:`before_reply` before
    queueing a reply (the Redis service does so once per batch of commands
    read, and before any reply it sends outside a batch).  ``everysec`` and
    ``no``: that writes the buffered records at once, so they reach
    ``write(2)`` before the replies that acknowledge them; the end of the
    reactor turn writes what is left (writes no reply waits for: expiry).
    ``everysec`` fsyncs once a second on a thread of its own, so a slow disk
    never stalls the reactor; ``no`` leaves syncing to the operating system.
    ``always`` (group commit): once a record is appended, every connection
    that queues a reply in that turn has its output held; at the end of the
    turn all the turn's records are written in one ``write(2)`` and fsynced
    once, then the held output is released, in order.

    A failed ``write(2)`` or ``fsync(2)`` (a full disk, an I/O error) puts the
    file in an error state (:attr:`write_error`): what was not written stays
    in the buffer and is retried about once a second until a write and an
    fsync succeed.  Meanwhile the service refuses write commands
    (``-MISCONF``), and under ``always`` the held output of the turn that
    failed is never sent: those connections are closed unanswered.
    """

    def __init__(self, path: Path, fsync: str, reactor: Any, log: Any, rewrite_limit: int = REWRITE_LIMIT) -> None:
        self.path = path
        self.reactor = reactor
        self.log = log
        self._buf = bytearray()
        self._turn_scheduled = False  # _end_turn is queued for this turn
        self._awaiting = False  # always: records appended since the last fsync (replies wait for it)
        self._held: list[Any] = []  # channels whose output waits for this turn's fsync
        self._db = -1  # database selected in the file
        self._tx_depth = 0  # inside a transaction: MULTI comes before the next record
        self._tx_written = False  # MULTI written: EXEC must close it
        self._dirty = False  # written but not fsynced
        self._fsyncs = 0  # completed fsyncs (INFO-style figure, and for tests)
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        self._retired: list[int] = []  # descriptors of replaced files, closed by the fsync thread after its call
        #: Why the file cannot be written (strerror of the failed write or fsync), or None when all is well.
        self.write_error: str | None = None
        self._retry_timer: Any = None
        self._failures = 0  # failed attempts since the last log line about them
        self._failure_logged = 0.0  # reactor time of the last line about a failure (0: none yet)
        self._entered_logged = False  # the entry into the error state was logged: log its end too
        self._dropped = 0  # connections closed unanswered since the last line about them
        self._dropped_logged: float | None = None  # reactor time of that line
        #: While a rewrite runs: the records written since it forked (the child's snapshot lacks them) that
        #: are held in memory; past ``rewrite_limit`` bytes they go to a spill file (see :meth:`_spill`).
        self.rewrite_buf: bytearray | None = None
        self.rewrite_limit = rewrite_limit
        #: Why the running rewrite can no longer finish (a spill write failed), or None.
        self.rewrite_failed: str | None = None
        self._spill_fd = -1
        self._spill_path: Path | None = None
        self.spill_size = 0  # bytes in the spill file
        self._spill_copied = 0  # of which already appended to the new file
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        #: Bytes in the file (aof_current_size), and what the last rewrite (or the load) left (aof_base_size).
        self.size = os.fstat(self._fd).st_size
        self.base_size = self.size
        self._policy = ""
        self.policy = fsync

    @property
    def policy(self) -> str:
        """``always``, ``everysec`` or ``no`` (CONFIG SET appendfsync changes it live)."""
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        self._policy = value
        if value == "everysec" and self._syncer is None and self._fd >= 0:
            self._stop.clear()
            self._syncer = threading.Thread(target=self._sync_every_second, name="aof-fsync", daemon=True)
            self._syncer.start()
        elif value != "everysec":
            self._stop_syncer()

    def _stop_syncer(self) -> None:
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            self._stop.set()
            syncer.join()

    def _sync_every_second(self) -> None:
        """The fsync thread: once a second, make what was written durable (off the reactor)."""
        while not self._stop.wait(1.0):
            self._close_retired()
            if not self._dirty:
                continue
            # Cleared before the call: a write that lands during it sets the flag
            # again and is synced next second (one before it is covered by this call).
            self._dirty = False
            fd = self._fd  # a rewrite may swap it meanwhile: the old one stays open until _close_retired
            try:
                os.fsync(fd)
                self._fsyncs += 1
            except OSError as exc:
                self._dirty = True  # not durable: the next fsync (or the retry) tries again
                self.reactor.call_soon_threadsafe(self._failed, "fsync", exc)

    def _close_retired(self) -> None:
        """Close the descriptors of files a rewrite replaced (on the fsync thread, which may still use them)."""
        while self._retired:
            fd = self._retired.pop()
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def pending(self) -> bool:
        """True while records wait in the buffer for :meth:`flush`."""
        return bool(self._buf)

    def begin(self) -> None:
        """Start a transaction: the records until :meth:`end` replay all or nothing (MULTI ... EXEC).

        Transactions nest (a script inside EXEC): only the outermost writes MULTI and EXEC.
        """
        self._tx_depth += 1

    def end(self) -> None:
        """End a transaction begun with :meth:`begin` (writes EXEC if anything was recorded)."""
        self._tx_depth -= 1
        if self._tx_depth == 0 and self._tx_written:
            self._tx_written = False
            self.append(self._db, [b"EXEC"])

    def append(self, db: int, argv: list[bytes]) -> None:
        """Record one write command run against database *db*."""
        if db != self._db:
            self._buf += array([b"SELECT", b"%d" % db])
            self._db = db
        if self._tx_depth and not self._tx_written:
            # Written with the first change, so a transaction that changed nothing leaves no trace.
            self._tx_written = True
            self._buf += b"*1\r\n$5\r\nMULTI\r\n"
        self._buf += array(argv)
        if self._policy == "always" and self.write_error is None:
            # In the error state nothing is held: the record waits for the retry, and reads are
            # served meanwhile (writes are refused, so the only records are expiry's DELs).
            self._awaiting = True
        if not self._turn_scheduled:
            self._turn_scheduled = True
            self.reactor.call_soon(self._end_turn)

    @property
    def awaiting_fsync(self) -> bool:
        """True (under ``always``) from a record's append until the fsync that covers it: replies wait."""
        return self._awaiting

    def before_reply(self, channel: Any) -> None:
        """A reply is about to be queued on *channel*: the records it may acknowledge go first.

        ``always``: while records of this turn await their fsync, the
        channel's output is held until :meth:`_end_turn` has fsynced them.
        Otherwise the buffered records are written now; if that fails, the
        channel is held too, and closed unanswered at the end of the turn.
        In the error state nothing is held (reads are served; writes are
        refused before they run).
        """
        if self._awaiting:
            if not channel.output_held:
                channel.hold_output()
                self._held.append(channel)
        elif self._buf and self.write_error is None and not self.flush() and not channel.output_held:
            # This batch's records could not be written: its replies must not
            # acknowledge them.  Held, then dropped with the connection at the
            # end of the turn; the records stay buffered for the retry.
            channel.hold_output()
            self._held.append(channel)

    def _end_turn(self) -> None:
        """The end of a reactor turn: write what is left; under ``always`` fsync once, then release held replies.

        If the write or the fsync fails, the held replies may acknowledge or
        show writes that are not durable: their connections are closed
        without them (as the clients of a crashed redis-server see it).
        """
        self._turn_scheduled = False
        ok = False
        try:
            ok = self.flush()
            if self._awaiting or self._held:
                self._awaiting = False
                ok = ok and self.fsync()
        finally:
            if ok:
                self._release()
            else:
                self._drop_held()

    def _release(self) -> None:
        held, self._held = self._held, []
        for channel in held:
            channel.release_output()

    def _drop_held(self) -> None:
        """Close the connections whose output was held, without sending it: the writes were not made durable."""
        held, self._held = self._held, []
        if held:
            self._dropped += len(held)
            now = self.reactor.time()
            if self._dropped_logged is None or now - self._dropped_logged >= _FAILURE_LOG_INTERVAL:
                # Counted since the last line: a disk that keeps filling up cannot flood the log.
                self.log.error("aof_replies_dropped", path=str(self.path), connections=self._dropped)
                self._dropped = 0
                self._dropped_logged = now
        for channel in held:
            channel.discard_buffers()
            channel.close()

    # ------------------------------------------------------------------ the error state

    def _failed(self, op: str, exc: OSError) -> None:
        """A write or fsync failed: enter (or stay in) the error state, and retry from a timer.

        The log says when the state is entered and left, and while it lasts,
        at most once per ``_FAILURE_LOG_INTERVAL`` that it still fails (with
        the count): a full disk retried every second, or a disk that keeps
        filling up again, cannot flood the log.
        """
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        now = self.reactor.time()
        entering = self.write_error is None
        self.write_error = reason
        self._failures += 1
        if now - self._failure_logged >= _FAILURE_LOG_INTERVAL or self._failure_logged == 0.0:
            self._failure_logged = now or 1e-9
            self._entered_logged = entering or self._entered_logged
            event = f"aof_{op}_failed" if entering else "aof_still_failing"
            self.log.error(
                event,
                op=op,
                path=str(self.path),
                error=str(exc),
                failures=self._failures,
                buffered=len(self._buf),
                refusing_writes=True,
            )
            self._failures = 0
        if self._retry_timer is None and self._fd >= 0:
            self._retry_timer = self.reactor.call_later(RETRY_INTERVAL, self._retry)

    def _retry(self) -> None:
        """The retry timer: write what is buffered and fsync it; on success leave the error state."""
        self._retry_timer = None
        if self.write_error is None or self._fd < 0:
            return
        self._dirty = True  # a failed fsync left nothing to show it: make the retry sync for sure
        ok = self.flush(retry=True) if self._policy == "no" else self.fsync(retry=True)
        if not ok:
            return  # _failed scheduled the next try
        if self._entered_logged:
            # Said once per logged entry, so an error state that comes and goes logs at the failure lines' pace.
            self.log.warning("aof_write_recovered", path=str(self.path), error_was=self.write_error)
            self._entered_logged = False
        self.write_error = None

    def flush(self, retry: bool = False) -> bool:
        """Write the buffered commands to the file; False if some are left (the error state).

        In the error state only the retry timer (*retry*) writes, so a full
        disk is not tried once per batch of commands.
        """
        buf = self._buf
        if self.write_error is not None and not retry:
            return False
        if not buf or self._fd < 0:
            return True
        view = memoryview(buf)
        written = 0
        failure: OSError | None = None
        try:
            while written < len(buf):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            # What was not written stays in the buffer, in order, for the retry.  Without its
            # traceback: a frame in it may still hold a slice of the buffer, which must shrink below.
            failure = exc.with_traceback(None)
        finally:
            kept = self.rewrite_buf
            if kept is not None:
                kept += view[:written]
            view.release()
            del buf[:written]
        self.size += written
        self._dirty = True
        if kept is not None and len(kept) > self.rewrite_limit:
            self._spill(kept)
        if failure is not None:
            self._failed("write", failure)
            return False
        return True

    def _spill(self, kept: bytearray) -> None:
        """Move the rewrite-time records held in memory to the spill file, so memory stays bounded.

        One write per ``rewrite_limit`` bytes of records; no fsync: the file is
        only read back by this process, and what it holds reaches the new
        append-only file before that file is fsynced and renamed in.
        """
        try:
            if self._spill_fd < 0:
                spill = self.path.with_name(f"temp-rewriteaof-incr-{os.getpid()}.aof")
                self._spill_fd = os.open(spill, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                self._spill_path = spill
            _write_all(self._spill_fd, kept)
        except OSError as exc:
            # The current file has every record: only this rewrite is lost, and it will be reported failed.
            self.log.error("aof_rewrite_spill_failed", path=str(self._spill_path or self.path), error=str(exc))
            self.rewrite_failed = str(exc)
            self.rewrite_buf = None
            self._drop_spill()
            return
        self.spill_size += len(kept)
        kept.clear()

    def _drop_spill(self) -> None:
        fd, self._spill_fd = self._spill_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._spill_path is not None:
            with contextlib.suppress(OSError):
                self._spill_path.unlink()
            self._spill_path = None
        self.spill_size = self._spill_copied = 0

    @property
    def spill_unread(self) -> int:
        """Bytes of the spill file not yet appended to the new file."""
        return self.spill_size - self._spill_copied

    def copy_spilled(self, fd: int, limit: int = _COPY_CHUNK) -> int:
        """Append at most *limit* bytes of the spill file to the new file in *fd*; return how many."""
        copied = 0
        while copied < limit and self._spill_copied < self.spill_size:
            size = min(_COPY_CHUNK, limit - copied, self.spill_size - self._spill_copied)
            data = os.pread(self._spill_fd, size, self._spill_copied)
            if not data:
                raise OSError(f"spill file {self._spill_path} ends before {self.spill_size} bytes")
            _write_all(fd, data)
            self._spill_copied += len(data)
            copied += len(data)
        return copied

    def start_rewrite(self) -> None:
        """Called just before the fork: what is buffered goes to the old file, later records are kept aside too.

        Raises ``OSError`` if the buffer cannot be written (the error state):
        its records are already in the data the child would snapshot, and
        would be appended after that snapshot again.
        """
        if not self.flush():
            raise OSError(f"the append-only file cannot be written: {self.write_error}")
        self.rewrite_buf = bytearray()
        self.rewrite_failed = None
        self._db = -1  # the kept records start with a SELECT (the snapshot may end in any database)

    def abandon_rewrite(self) -> None:
        """The rewrite failed: stop keeping records aside, remove the spill file."""
        self.rewrite_buf = None
        self._drop_spill()

    def switch_to(self, fd: int, temp: Path) -> None:
        """Finish a rewrite: append the records kept aside to the snapshot in *fd*, make it durable, rename it in.

        *fd* is open for appending on *temp* (the child's snapshot, already
        fsynced, and whatever part of the spill file was copied after it).
        What is left of the spill file goes first, then the records still in
        memory.  The rename is atomic and the directory is fsynced after it,
        so a crash leaves either the old file or the new one, each whole.
        """
        self.flush()
        if self.rewrite_failed is not None:
            raise OSError(f"rewrite records lost: {self.rewrite_failed}")
        kept = self.rewrite_buf or bytearray()
        while self.spill_unread:
            self.copy_spilled(fd, self.spill_unread)
        _write_all(fd, kept)
        os.fsync(fd)
        self.rewrite_buf = None
        self._drop_spill()
        os.rename(temp, self.path)
        # From here on the new file is the file: nothing may fail back to the old descriptor.
        old, self._fd = self._fd, fd
        self._db = -1  # the new file may end in another database than the old one
        self.size = self.base_size = os.fstat(fd).st_size
        if self._syncer is not None:
            self._retired.append(old)  # the fsync thread may be inside fsync(old) right now
        else:
            os.close(old)
        try:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self.log.error("aof_dir_fsync_failed", path=str(self.path.parent), error=str(exc))

    def fsync(self, retry: bool = False) -> bool:
        """Flush, then make what was written durable; False if either failed (the error state)."""
        if not self.flush(retry):
            return False
        if self._dirty and self._fd >= 0:
            self._dirty = False
            try:
                os.fsync(self._fd)
                self._fsyncs += 1
            except OSError as exc:
                self._dirty = True
                self._failed("fsync", exc)
                return False
        return True

    def close(self) -> None:
        """Flush, fsync (unless the policy is ``no``) and close the file (and a spill file)."""
        self._drop_spill()
        self._stop_syncer()
        self._close_retired()
        if self._fd < 0:
            self._release()
            return
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        ok = self.flush(retry=True) if self.policy == "no" else self.fsync(retry=True)
        self._awaiting = False
        if ok:
            self._release()
        else:
            self._drop_held()
            # The last chance has gone: say how much never reached the file.
            self.log.error("aof_closed_unwritten", path=str(self.path), bytes=len(self._buf), error=self.write_error)
        os.close(self._fd)
        self._fd = -1


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    written = 0
    try:
        while written < len(view):
            written += os.write(fd, view[written:])
    finally:
        view.release()
