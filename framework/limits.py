"""Process limits and log throttling: what keeps one client from hurting everyone.

- :func:`raise_fd_limit` lifts the soft ``RLIMIT_NOFILE`` towards the hard
  limit at start, so the connection caps can be honoured.
- :class:`FdReserve` holds one spare descriptor so a listener can still
  accept (and politely refuse) a connection when the process has none left.
- :class:`LogThrottle` lets a repeated warning through a few times, then only
  as a periodic count, so a hostile peer cannot turn the log into a weapon.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RESERVED_FDS", "FdReserve", "LogThrottle", "raise_fd_limit"]

#: Descriptors kept back from the connection caps for everything else the
#: process opens: listeners, the epoll and waker, log and data files, the
#: reserve (redis-server keeps 32 for the same reasons).
RESERVED_FDS = 32


def raise_fd_limit(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards *wanted* (never past the hard limit); return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft, hard
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    # The kernel may refuse a value below the hard limit (fs.nr_open): step
    # down until one is accepted, as redis-server does.
    while target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target -= max((target - soft) // 8, 16)
            continue
        return target, hard
    return soft, hard


class FdReserve:
    """One descriptor held in reserve, released for a moment to accept and refuse a connection."""

    def __init__(self, hold: bool = True) -> None:
        self._fd: int | None = None
        if hold:
            self.acquire()

    @property
    def held(self) -> bool:
        """True while the spare descriptor is held."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the spare descriptor again (False if none is free yet)."""
        if self._fd is None:
            try:
                self._fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
        return True

    def release(self) -> bool:
        """Give the spare descriptor back to the process; False if it was not held."""
        if self._fd is None:
            return False
        fd, self._fd = self._fd, None
        os.close(fd)
        return True

    def close(self) -> None:
        """Release the descriptor for good."""
        with contextlib.suppress(OSError):
            self.release()


class LogThrottle:
    """Let the first *burst* events through, then one summary with a count per *interval* seconds."""

    __slots__ = ("_clock", "_window_start", "burst", "interval", "seen", "suppressed")

    def __init__(self, burst: int = 3, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self.seen = 0  # events since the start
        self.suppressed = 0  # events not logged since the last line
        self._window_start = 0.0

    def hit(self, log: Callable[..., Any], event: str, **fields: Any) -> None:
        """Record one event; log it, or a summary of those held back, when the budget allows."""
        self.seen += 1
        if self.seen <= self.burst:
            log(event, **fields)
            if self.seen == self.burst:
                self._window_start = self._clock()
            return
        self.suppressed += 1
        now = self._clock()
        if now - self._window_start >= self.interval:
            log(event, **fields, repeated=self.suppressed, total=self.seen)
            self.suppressed = 0
            self._window_start = now


# --------------------------------------------------------------------------- memory

_libc: Any = None
# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _glibc() -> Any:
    global _libc
    if _libc is None:
        _libc = False
        try:
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            lib = ctypes.CDLL(name) if name else None
            if lib is not None and hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt"):
                _libc = lib
        except OSError:
            pass
    return _libc


def tune_malloc(mmap_threshold: int = 256 << 10, trim_threshold: int = 1 << 20) -> bool:
    """Fix glibc's mmap threshold so large buffers are mapped and unmapped, not kept in the heap.

    By default glibc raises the threshold each time a mapped block is freed
    (up to 32 MiB), so after one large reply every later buffer of that size
    comes from the heap, and a heap full of holes is not given back.  Setting
    it turns that off.  Returns False where there is no glibc.
    """
    libc = _glibc()
    if not libc:
        return False
    libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    return True


def release_memory() -> bool:
    """Give free heap pages back to the system (glibc's malloc_trim); False where there is none."""
    libc = _glibc()
    if not libc:
        return False
    libc.malloc_trim(0)
    return True
