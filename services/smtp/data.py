"""The DATA phase: undo dot-stuffing, count the size, spool the message with bounded memory."""

from __future__ import annotations

import tempfile
from typing import IO

__all__ = ["DataReader"]

# The protocol injects this before the client's first body byte so that an
# empty message (".\r\n" straight after the 354) matches the "\r\n.\r\n"
# terminator too; it is not part of the message.
INJECTED = b"\r\n"


class DataReader:
    """Receives the raw DATA stream in chunks (terminator excluded) and keeps the unstuffed message.

    The stream starts with :data:`INJECTED`; every line that begins with a dot
    lost one dot at the client (RFC 5321 section 4.5.2) and gets it back
    removed here.  A chunk may end anywhere, so a trailing ``\\r`` or
    ``\\r\\n`` is carried over to the next chunk: the dot that follows it may
    arrive later.  Past *limit* bytes nothing more is kept, but the stream is
    still consumed so the client hears the 552 at the end.
    """

    def __init__(self, limit: int, spool_threshold: int, spool_dir: str | None = None) -> None:
        self.limit = limit
        self.size = 0
        self.too_big = False
        #: A spooling failure (disk full...): the rest is read and dropped, the client hears 4xx.
        self.error: OSError | None = None
        self._carry = b""
        self._skip = len(INJECTED)
        self._file: IO[bytes] | None = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - owned until close()
            max_size=spool_threshold, dir=spool_dir
        )

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the stream."""
        data = self._carry + chunk if self._carry else chunk
        if data.endswith(b"\r\n"):
            keep = 2
        elif data.endswith(b"\r"):
            keep = 1
        else:
            keep = 0
        if keep:
            self._carry = data[-keep:]
            data = data[:-keep]
        else:
            self._carry = b""
        if data:
            self._emit(data.replace(b"\r\n.", b"\r\n"))

    def finish(self) -> None:
        """The terminator arrived: flush the carried bytes and restore the final CRLF."""
        carry, self._carry = self._carry, b""
        if carry:
            self._emit(carry)
        if self._skip == 0:
            # The CRLF before the terminating dot ends the last line of the message.
            self._emit(b"\r\n")

    @property
    def file(self) -> IO[bytes]:
        """The spooled message, rewound (only valid when not too big and not closed)."""
        if self._file is None:
            raise ValueError("the message was discarded")
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        """Drop the spooled message (a rolled-over temp file is deleted)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _emit(self, data: bytes) -> None:
        if self._skip:
            cut = min(self._skip, len(data))
            self._skip -= cut
            data = data[cut:]
            if not data:
                return
        self.size += len(data)
        if self.too_big or self.error is not None:
            return
        if self.size > self.limit:
            # Keep counting and reading, but never hold more than the limit.
            self.too_big = True
            self.close()
            return
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            self.error = exc
            self.close()
