"""Framing throughput: linechat.asynchat against the standard library's asynchat.

Run: ``.venv/bin/python bench/bench_framing.py`` (Python 3.11 for the side-by-side figures).

Lines of 16 bytes (14 bytes + CRLF) go through a socket pair; the reading end
is an ``async_chat`` whose ``handle_read_event`` is called directly until
every line sent so far has been framed, so the figures measure reading and
framing, not a loop's polling.  Both implementations get the same user class
logic: ``collect_incoming_data`` appends, ``found_terminator`` counts.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from linechat import asynchat as ours

LINE = b"0123456789abcd\r\n"
CHUNK_LINES = 8192  # lines written per round (128 KiB)


def load_stdlib() -> Any | None:
    """Return the standard library's asynchat module, or None when this Python has none."""
    if sys.version_info[:2] != (3, 11):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import asynchat as stdlib_asynchat  # type: ignore[import-not-found,unused-ignore]
    return stdlib_asynchat


def counter_class(base: type) -> type:
    """The same user logic on top of either implementation."""

    class Counter(base):  # type: ignore[valid-type,misc]
        def __init__(self, sock: socket.socket, map: dict[int, Any], in_size: int) -> None:  # noqa: A002
            super().__init__(sock, map)
            self.ac_in_buffer_size = in_size
            self.set_terminator(b"\r\n")
            self.parts: list[bytes] = []
            self.count = 0

        def collect_incoming_data(self, data: bytes) -> None:
            self.parts.append(data)

        def found_terminator(self) -> None:
            self.parts.clear()
            self.count += 1

    return Counter


def run_once(base: type, lines: int, in_size: int) -> float:
    """Frame *lines* lines with reads of *in_size* bytes; return lines per second."""
    writer, reader = socket.socketpair()
    for sock in (writer, reader):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    writer.setblocking(False)
    chan = counter_class(base)(reader, {}, in_size)
    payload = LINE * CHUNK_LINES
    total = len(LINE) * lines
    sent = 0
    pending = memoryview(b"")
    read_event = chan.handle_read_event
    gc.collect()
    start = time.perf_counter()
    while chan.count < lines:
        if not pending and sent < total:
            pending = memoryview(payload)[: min(len(payload), total - sent)]
        if pending:
            try:
                n = writer.send(pending)
            except BlockingIOError:
                n = 0
            pending = pending[n:]
            sent += n
        target = sent // len(LINE)
        while chan.count < target:
            read_event()
    elapsed = time.perf_counter() - start
    chan.close()
    writer.close()
    return lines / elapsed


def best_of(base: type, lines: int, in_size: int, repeat: int) -> float:
    """Best rate of *repeat* runs (the least disturbed by other load on the machine)."""
    return max(run_once(base, lines, in_size) for _ in range(repeat))


def main() -> None:
    """Print the side-by-side table and the scaling table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    stdlib = load_stdlib()
    run_once(ours.async_chat, args.lines, 4096)  # warm up caches and the CPU clock
    if stdlib is not None:
        run_once(stdlib.async_chat, args.lines, 4096)
    print(f"python {sys.version.split()[0]}; {args.lines} lines of {len(LINE)} bytes; best of {args.repeat}")
    if stdlib is None:
        print("standard library asynchat not available on this Python: comparison skipped (use Python 3.11)")
    print(f"{'read size':>10} {'linechat lines/s':>18} {'stdlib lines/s':>16} {'ratio':>7}")
    for in_size in (4096, 65536):
        if stdlib is None:
            mine = best_of(ours.async_chat, args.lines, in_size, args.repeat)
            print(f"{in_size:>10} {mine:>18,.0f} {'-':>16} {'-':>7}")
            continue
        # Alternate the two so that both see the same background load.
        mine = theirs = 0.0
        for _ in range(args.repeat):
            mine = max(mine, run_once(ours.async_chat, args.lines, in_size))
            theirs = max(theirs, run_once(stdlib.async_chat, args.lines, in_size))
        print(f"{in_size:>10} {mine:>18,.0f} {theirs:>16,.0f} {mine / theirs:>6.2f}x")

    print()
    print("linechat scaling (lines/s; flat means linear time):")
    print(f"{'lines':>10} {'4 KiB reads':>14} {'64 KiB reads':>14}")
    for lines in (10_000, 100_000, 1_000_000):
        repeat = max(1, min(args.repeat, 3_000_000 // (lines * 3)))
        row = [best_of(ours.async_chat, lines, size, repeat) for size in (4096, 65536)]
        print(f"{lines:>10,} {row[0]:>14,.0f} {row[1]:>14,.0f}")


if __name__ == "__main__":
    main()
