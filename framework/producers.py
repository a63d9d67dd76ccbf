"""Producers for a channel's output FIFO: the asynchat API's own and a file sender.

A producer is anything with a ``more()`` method returning the next bytes
(``b""`` when done); :mod:`linechat.asynchat` re-exports these names, where
the asynchat API has them.  Like that module this one imports no more than
the standard library, so the drop-in stays cheap.
"""

from __future__ import annotations

import os
from collections import deque

# typing.TYPE_CHECKING without importing typing (see linechat.asynchat).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable
    from typing import Any, Protocol

__all__ = ["Producer", "fifo", "file_producer", "find_prefix_at_end", "simple_producer"]

# One sendfile call never carries more than this (as the channel's sends).
_SEND_LIMIT = 1 << 20


if TYPE_CHECKING:

    class Producer(Protocol):
        """Anything with a ``more()`` method that returns bytes, and ``b""`` when done."""

        def more(self) -> bytes: ...

else:

    class Producer:
        """Anything with a ``more()`` method that returns bytes, and ``b""`` when done."""

        __slots__ = ()

        def more(self) -> bytes:
            """The next piece of output; ``b""`` when there is no more."""
            raise NotImplementedError




def find_prefix_at_end(haystack: bytes | str, needle: bytes | str) -> int:
    """Return the length of the longest proper prefix of *needle* that ends *haystack*."""
    # A whole needle at the end would have been found by find(); only proper
    # prefixes matter, longest first.
    for size in range(min(len(needle) - 1, len(haystack)), 0, -1):
        if haystack.endswith(needle[:size]):  # type: ignore[arg-type]
            return size
    return 0


class simple_producer:  # noqa: N801 - name fixed by the asynchat API
    """Hand out a bytes object in pieces of at most *buffer_size* bytes."""

    def __init__(self, data: bytes, buffer_size: int = 512) -> None:
        self.data = data
        self.buffer_size = buffer_size
        self._pos = 0

    def more(self) -> bytes:
        """Return the next piece, or ``b""`` when everything has been produced."""
        start = self._pos
        end = start + self.buffer_size
        if start == 0 and end >= len(self.data):
            data, self.data = self.data, b""
            return data
        piece = self.data[start:end]
        self._pos = min(end, len(self.data))
        return piece


class file_producer:  # noqa: N801 - in the style of simple_producer
    """Send (part of) an open file; channels on a real socket use ``os.sendfile``."""

    def __init__(
        self, file: Any, offset: int = 0, count: int | None = None, buffer_size: int = 65536, close: bool = True
    ) -> None:
        self.file = file
        self.offset = offset
        self.remaining = count if count is not None else max(os.fstat(file.fileno()).st_size - offset, 0)
        self.buffer_size = buffer_size
        self._close = close

    def more(self) -> bytes:
        """Return the next piece read from the file, or ``b""`` at the end."""
        if self.remaining <= 0:
            self.done()
            return b""
        data = os.pread(self.file.fileno(), min(self.buffer_size, self.remaining), self.offset)
        if not data:
            self.remaining = 0
            self.done()
            return b""
        self.offset += len(data)
        self.remaining -= len(data)
        return data

    def sendfile(self, sock: socket.socket) -> int:
        """Send the next piece with ``os.sendfile``; return bytes sent (0: done)."""
        if self.remaining <= 0:
            self.done()
            return 0
        sent = os.sendfile(sock.fileno(), self.file.fileno(), self.offset, min(self.remaining, _SEND_LIMIT))
        if sent == 0:
            self.remaining = 0
            self.done()
            return 0
        self.offset += sent
        self.remaining -= sent
        return sent

    def done(self) -> None:
        """Release the file if this producer owns it."""
        if self._close and not self.file.closed:
            self.file.close()


class fifo:  # noqa: N801 - name fixed by the asynchat API
    """The small queue class that older asynchat documentation describes."""

    def __init__(self, list: Iterable[Any] | None = None) -> None:  # noqa: A002 - documented name
        self.list: deque[Any] = deque(list or ())

    def __len__(self) -> int:
        return len(self.list)

    def is_empty(self) -> bool:
        """Return True when nothing is queued."""
        return not self.list

    def first(self) -> Any:
        """Return the oldest item without removing it."""
        return self.list[0]

    def push(self, data: Any) -> None:
        """Append *data* at the end."""
        self.list.append(data)

    def pop(self) -> tuple[int, Any]:
        """Remove the oldest item; return ``(1, item)``, or ``(0, None)`` when empty."""
        if self.list:
            return (1, self.list.popleft())
        return (0, None)
