"""The append-only file: write commands in RESP, an fsync policy, and replay at start."""

from __future__ import annotations

import os
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

    ``always``: every append is written and fsynced before the reply leaves.
    ``everysec``: appends are buffered, written on the next loop turn, and
    fsynced by a once-a-second timer.  ``no``: written, never fsynced by us.
    """

    def __init__(self, path: Path, fsync: str, reactor: Any, log: Any) -> None:
        self.path = path
        self.policy = fsync
        self.reactor = reactor
        self.log = log
        self._buf = bytearray()
        self._flush_scheduled = False
        self._db = -1  # database selected in the file
        self._tx_depth = 0  # inside a transaction: MULTI comes before the next record
        self._tx_written = False  # MULTI written: EXEC must close it
        self._dirty = False  # written but not fsynced
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._timer = reactor.call_every(1.0, self.fsync) if fsync == "everysec" else None

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
        if self.policy == "always" and not self._tx_depth:  # a transaction is synced once, at its EXEC
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
            view.release()
            del buf[:written]
        self._dirty = True

    def fsync(self) -> None:
        """Flush, then make what was written durable."""
        self.flush()
        if self._dirty and self._fd >= 0:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self.log.error("aof_fsync_failed", path=str(self.path), error=str(exc))
            self._dirty = False

    def close(self) -> None:
        """Flush, fsync (unless the policy is ``no``) and close the file."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fd < 0:
            return
        if self.policy == "no":
            self.flush()
        else:
            self.fsync()
        os.close(self._fd)
        self._fd = -1
