"""The append-only file: write commands in RESP, an fsync policy, and replay at start."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from linechat.services.redis.resp import array

__all__ = ["AppendOnlyFile", "TruncatedAOFError", "read_commands"]


class TruncatedAOFError(Exception):
    """The file ends inside a command; ``valid`` is the length of the complete prefix."""

    def __init__(self, valid: int) -> None:
        super().__init__(valid)
        self.valid = valid


def read_commands(data: bytes) -> Iterator[tuple[list[bytes], int]]:
    """Yield ``(argv, end_offset)`` for each command in AOF bytes.

    Raises :class:`TruncatedAOFError` if the data ends in the middle of a command
    (a crash while appending) and ``ValueError`` if it is not RESP at all.
    """
    pos = 0
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

    ``always``: every append is written and fsynced before its reply is made.
    ``everysec`` and ``no``: appends are buffered and the owner calls
    :meth:`flush` before the replies they acknowledge leave (the Redis
    service does so once per batch of commands read, and before any reply it
    sends outside a batch); a turn of the reactor also flushes what is left
    (writes no reply waits for: expiry).  ``everysec`` fsyncs once a second
    on a thread of its own, so a slow disk never stalls the reactor; ``no``
    leaves syncing to the operating system.
    """

    def __init__(self, path: Path, fsync: str, reactor: Any, log: Any) -> None:
        self.path = path
        self.reactor = reactor
        self.log = log
        self._buf = bytearray()
        self._flush_scheduled = False
        self._db = -1  # database selected in the file
        self._tx_depth = 0  # inside a transaction: MULTI comes before the next record
        self._tx_written = False  # MULTI written: EXEC must close it
        self._dirty = False  # written but not fsynced
        self._fsyncs = 0  # completed fsyncs (INFO-style figure, and for tests)
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        self._retired: list[int] = []  # descriptors of replaced files, closed by the fsync thread after its call
        #: While a rewrite runs: a copy of every record written since it forked (the child's snapshot lacks them).
        self.rewrite_buf: bytearray | None = None
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
                self.log.error("aof_fsync_failed", path=str(self.path), error=str(exc))

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
        if self._policy == "always" and not self._tx_depth:  # a transaction is synced once, at its EXEC
            self.flush()
            self.fsync()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.reactor.call_soon(self.flush)

    def flush(self) -> None:
        """Write the buffered commands to the file."""
        self._flush_scheduled = False
        buf = self._buf
        if not buf or self._fd < 0:
            return
        view = memoryview(buf)
        written = 0
        try:
            while written < len(buf):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            self.log.error("aof_write_failed", path=str(self.path), error=str(exc))
        finally:
            if self.rewrite_buf is not None:
                self.rewrite_buf += view[:written]
            view.release()
            del buf[:written]
        self.size += written
        self._dirty = True

    def start_rewrite(self) -> None:
        """Called just before the fork: what is buffered goes to the old file, later records are kept aside too."""
        self.flush()
        self.rewrite_buf = bytearray()
        self._db = -1  # the kept records start with a SELECT (the snapshot may end in any database)

    def abandon_rewrite(self) -> None:
        """The rewrite failed: stop keeping records aside."""
        self.rewrite_buf = None

    def switch_to(self, fd: int, temp: Path) -> None:
        """Finish a rewrite: append the records kept aside to the snapshot in *fd*, make it durable, rename it in.

        *fd* is open for appending on *temp* (the child's snapshot, already
        fsynced).  The rename is atomic and the directory is fsynced after it,
        so a crash leaves either the old file or the new one, each whole.
        """
        self.flush()
        kept = self.rewrite_buf or bytearray()
        self.rewrite_buf = None
        view = memoryview(kept)
        written = 0
        try:
            while written < len(kept):
                written += os.write(fd, view[written:])
        finally:
            view.release()
        os.fsync(fd)
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

    def fsync(self) -> None:
        """Flush, then make what was written durable."""
        self.flush()
        if self._dirty and self._fd >= 0:
            self._dirty = False
            try:
                os.fsync(self._fd)
                self._fsyncs += 1
            except OSError as exc:
                self.log.error("aof_fsync_failed", path=str(self.path), error=str(exc))

    def close(self) -> None:
        """Flush, fsync (unless the policy is ``no``) and close the file."""
        self._stop_syncer()
        self._close_retired()
        if self._fd < 0:
            return
        if self.policy == "no":
            self.flush()
        else:
            self.fsync()
        os.close(self._fd)
        self._fd = -1
