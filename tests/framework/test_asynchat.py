"""linechat.asynchat over real loopback socket pairs.

Each test drives channels with ``asyncore.loop(count=1)`` turns (or calls
their event handlers directly) until a condition holds, with a bound on the
number of turns rather than on time.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from linechat import asynchat
from linechat._compat import asyncore
from linechat.asynchat import async_chat, file_producer, simple_producer

MAX_TURNS = 2000


class RecordingLogger:
    """Stands in for a channel's structlog logger and remembers every call."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any], BaseException | None]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def log(event: str, **kw: Any) -> None:
            import sys

            self.records.append((level, event, kw, sys.exc_info()[1]))

        return log

    def events(self) -> list[str]:
        return [event for _, event, _, _ in self.records]


class CountingSocket:
    """Wraps a socket and counts the send calls made through it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sends = 0
        self.sendmsgs = 0
        self.sizes: list[int] = []

    def send(self, data: Any, *args: Any) -> int:
        self.sends += 1
        sent = self._sock.send(data, *args)
        self.sizes.append(sent)
        return sent

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        self.sendmsgs += 1
        sent = self._sock.sendmsg(buffers, *args)
        self.sizes.append(sent)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Lines(async_chat):
    """Collects CRLF lines; optionally answers each with a reply."""

    def __init__(self, sock: socket.socket, map: dict[int, Any], reply: Callable[[bytes], Any] | None = None) -> None:  # noqa: A002
        super().__init__(sock, map)
        self.set_terminator(b"\r\n")
        self.parts: list[bytes] = []
        self.frames: list[bytes] = []
        self.reply = reply
        self.logger = RecordingLogger()

    def collect_incoming_data(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def found_terminator(self) -> None:
        frame = b"".join(self.parts)
        self.parts.clear()
        self.frames.append(frame)
        if self.reply is not None:
            self.reply(frame)

    def held(self) -> int:
        """Input bytes this channel keeps in memory (framed or not)."""
        return len(self.ac_in_buffer) + sum(map(len, self.parts)) + sum(map(len, self.incoming))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected socket pair: (channel side, peer side); the peer side is non-blocking."""
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def turn(chan_map: dict[int, Any], times: int = 1) -> None:
    for _ in range(times):
        asyncore.loop(timeout=0.01, map=chan_map, use_poll=True, count=1)


def run_until(chan_map: dict[int, Any], cond: Callable[[], bool], peer: Peer | None = None) -> None:
    for _ in range(MAX_TURNS):
        if cond():
            return
        turn(chan_map)
        if peer is not None:
            peer.drain()
    assert cond(), "condition not reached"


class Peer:
    """The far end of a pair: sends what the test says and keeps what arrives."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                self.sock.setblocking(True)
                self.sock.settimeout(5)
                view = view[self.sock.send(view) :]
                self.sock.setblocking(False)

    def drain(self) -> bytes:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except ConnectionResetError:
                self.eof = True
                break
            if not data:
                self.eof = True
                break
            self.received += data
        return bytes(self.received)


# --------------------------------------------------------------------------- terminators


def test_set_terminator_rules() -> None:
    chan = Lines.__new__(Lines)
    async_chat.__init__(chan)
    with pytest.raises(TypeError):
        chan.set_terminator("\r\n")
    chan.use_encoding = 1
    chan.set_terminator("\r\n")
    assert chan.get_terminator() == b"\r\n"
    with pytest.raises(ValueError):
        chan.set_terminator(-1)
    with pytest.raises(TypeError):
        chan.set_terminator(1.5)  # type: ignore[arg-type]
    chan.set_terminator(0)
    assert chan.get_terminator() == 0
    chan.set_terminator(None)
    assert chan.get_terminator() is None


def test_integer_terminator_fires_after_exactly_n_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    events: list[tuple[str, bytes]] = []

    class Counted(async_chat):
        def collect_incoming_data(self, data: bytes) -> None:
            events.append(("data", bytes(data)))

        def found_terminator(self) -> None:
            events.append(("end", b""))
            self.set_terminator(b"\r\n")

    chan = Counted(pair[0], chan_map)
    chan.set_terminator(10)
    peer = Peer(pair[1])
    peer.send(b"123456789")
    run_until(chan_map, lambda: b"".join(d for k, d in events if k == "data") == b"123456789")
    assert ("end", b"") not in events
    assert chan.get_terminator() == 1  # one byte still owed
    peer.send(b"0abc\r\n")
    run_until(chan_map, lambda: events.count(("end", b"")) == 2)
    first_end = events.index(("end", b""))
    assert b"".join(d for _, d in events[:first_end]) == b"1234567890"
    assert b"".join(d for _, d in events[first_end:]) == b"abc"


def test_terminator_split_across_reads(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    peer = Peer(pair[1])
    for piece in (b"hello\r", b"\nwor", b"ld\r", b"\n\r", b"\nlast\r"):
        peer.send(piece)
        turn(chan_map, 3)
    assert chan.frames == [b"hello", b"world", b""]
    assert b"".join(chan.parts) == b"last"
    assert chan.ac_in_buffer == b"\r"  # a possible start of the terminator is held back


def test_unread_puts_input_back_in_front(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}

    class Rewriter(Lines):
        def found_terminator(self) -> None:
            super().found_terminator()
            if self.frames[-1] == b"EXPAND":
                self.unread(b"one\r\ntwo\r\n")

    chan = Rewriter(pair[0], chan_map)
    Peer(pair[1]).send(b"EXPAND\r\nthree\r\n")
    run_until(chan_map, lambda: len(chan.frames) == 4)
    assert chan.frames == [b"EXPAND", b"one", b"two", b"three"]


# --------------------------------------------------------------------------- input limits


def test_max_frame_size_default_closes(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}

    class Limited(Lines):
        max_frame_size = 1000

    chan = Limited(pair[0], chan_map)
    peer = Peer(pair[1])
    peer.send(b"ok\r\n" + b"x" * 5000)
    run_until(chan_map, lambda: peer.eof, peer)
    assert chan.frames == [b"ok"]
    assert not chan.connected
    assert "frame_too_long" in chan.logger.events()


def test_endless_line_memory_stays_bounded(pair: tuple[socket.socket, socket.socket]) -> None:
    """10 MB without a terminator: the channel never holds more than the limit, then recovers."""
    limit = 100_000
    sizes: list[int] = []

    class Discarding(Lines):
        max_frame_size = limit
        ac_in_buffer_size = 65536

        def handle_frame_too_long(self, size: int) -> None:
            sizes.append(size)
            self.parts.clear()  # this class keeps its own frame buffer
            self.discard_frame()

    chan_map: dict[int, Any] = {}
    chan = Discarding(pair[0], chan_map)
    pair[1].setblocking(True)
    pair[1].settimeout(5)
    chunk = b"y" * 65536
    peak = 0
    for _ in range(160):  # 10 MiB
        pair[1].sendall(chunk)
        while _pending(pair[0]):
            chan.handle_read_event()
            peak = max(peak, chan.held())
    pair[1].sendall(b"tail of the long line\r\nnext\r\n")
    run_until(chan_map, lambda: chan.frames == [b"next"])
    assert 0 < peak <= limit  # never more than one frame's worth
    assert len(sizes) == 1 and sizes[0] > limit
    assert chan.connected


def _pending(sock: socket.socket) -> int:
    import fcntl
    import struct
    import termios

    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def test_discard_frame_then_frames_resume(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}

    class Skipper(Lines):
        max_frame_size = 8

        def handle_frame_too_long(self, size: int) -> None:
            self.frames.append(b"<too long %d>" % size)
            self.discard_frame()

    chan = Skipper(pair[0], chan_map)
    Peer(pair[1]).send(b"short\r\n" + b"z" * 20 + b"\r\nafter\r\n")
    run_until(chan_map, lambda: chan.frames[-1:] == [b"after"])
    assert chan.frames[0] == b"short"
    assert chan.frames[1].startswith(b"<too long")
    assert chan.frames[2:] == [b"after"]
    assert not any(b"z" in frame for frame in chan.frames)


def test_max_input_buffer_while_paused(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}

    class Pausing(Lines):
        max_input_buffer = 100

        def found_terminator(self) -> None:
            super().found_terminator()
            if self.frames[-1] == b"WAIT":
                self.pause_reading("backend")

    chan = Pausing(pair[0], chan_map)
    peer = Peer(pair[1])
    peer.send(b"WAIT\r\nqueued-1\r\nqueued-2\r\n")
    run_until(chan_map, lambda: chan.reading_paused)
    turn(chan_map, 3)
    assert chan.frames == [b"WAIT"]  # the rest waits while paused
    assert not chan.readable()
    chan.resume_reading("backend")
    assert chan.frames == [b"WAIT", b"queued-1", b"queued-2"]

    chan.pause_reading("backend")
    chan.feed(b"a" * 60)
    assert chan.connected
    chan.feed(b"b" * 60)  # 120 bytes held while paused: over the limit
    assert not chan.connected
    assert "input_overflow" in chan.logger.events()
    assert chan.ac_in_buffer == b""
    assert peer.drain() == b"" and peer.eof


# --------------------------------------------------------------------------- output limits


def test_high_water_pauses_reading_and_low_water_resumes(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    big = b"r" * 300_000
    pauses: list[int] = []
    resumes: list[int] = []

    class Flow(Lines):
        out_high_water = 500_000
        out_low_water = 100_000

        def pause_reading(self, reason: str = "user") -> None:
            pauses.append(self.out_buffered)
            super().pause_reading(reason)

        def resume_reading(self, reason: str = "user") -> None:
            resumes.append(self.out_buffered)
            super().resume_reading(reason)

    chan = Flow(pair[0], chan_map, reply=lambda frame: chan.push(big))
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    peer = Peer(pair[1])
    peer.send(b"a\r\nb\r\nc\r\nd\r\n")
    run_until(chan_map, lambda: chan.reading_paused)
    assert chan.frames == [b"a", b"b"]  # 600 kB queued after the second reply
    assert pauses == [600_000]
    turn(chan_map, 5)
    assert chan.frames == [b"a", b"b"]  # the peer reads nothing: neither do we
    assert not chan.readable()
    assert chan.out_buffered > 100_000
    assert resumes == []
    run_until(chan_map, lambda: len(chan.frames) == 4 and not chan.out_buffered, peer)
    assert resumes and all(queued <= 100_000 for queued in resumes)
    assert all(queued > 500_000 for queued in pauses)
    assert not chan.reading_paused
    peer.drain()
    assert len(peer.received) == 4 * len(big)


def test_hard_limit_disconnects_slow_consumer(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    seen: list[int] = []

    class Bounded(Lines):
        out_hard_limit = 1_000_000

        def handle_slow_consumer(self, queued: int) -> None:
            seen.append(queued)
            super().handle_slow_consumer(queued)

    chan = Bounded(pair[0], chan_map)
    for _ in range(100):
        if not chan.connected:
            break
        chan.push(b"s" * 100_000)
    assert seen and seen[0] > 1_000_000
    assert not chan.connected
    assert chan.out_buffered == 0
    assert "slow_consumer_disconnected" in chan.logger.events()


# --------------------------------------------------------------------------- output path


def test_pushes_in_one_framing_pass_are_coalesced(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map, reply=lambda frame: chan.push(b"+" + frame + b"\r\n"))
    counting = CountingSocket(pair[0])
    chan.socket = counting  # type: ignore[assignment]
    peer = Peer(pair[1])
    request = b"".join(b"cmd%03d\r\n" % i for i in range(200))
    peer.send(request)
    run_until(chan_map, lambda: len(chan.frames) == 200)
    expected = b"".join(b"+cmd%03d\r\n" % i for i in range(200))
    run_until(chan_map, lambda: peer.drain() == expected)
    assert counting.sends + counting.sendmsgs <= 4  # 200 replies, a handful of sends


def test_push_many_is_one_send(pair: tuple[socket.socket, socket.socket]) -> None:
    chan = Lines(pair[0], {})
    counting = CountingSocket(pair[0])
    chan.socket = counting  # type: ignore[assignment]
    chan.push_many([b"a", b"bb", b"", b"ccc"])
    assert counting.sends + counting.sendmsgs == 1
    assert Peer(pair[1]).drain() == b"abbccc"


def test_large_payload_via_sendmsg_arrives_intact(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    counting = CountingSocket(pair[0])
    chan.socket = counting  # type: ignore[assignment]
    peer = Peer(pair[1])
    pieces = [os.urandom(50_000 + i) for i in range(120)]  # about 6 MB
    for i, piece in enumerate(pieces):
        chan.push(memoryview(piece) if i % 3 == 0 else piece)
    whole = b"".join(pieces)
    run_until(chan_map, lambda: len(peer.drain()) >= len(whole), peer)
    assert hashlib.sha256(peer.received).digest() == hashlib.sha256(whole).digest()
    assert counting.sendmsgs > 0
    assert chan.out_buffered == 0


def test_file_producer_uses_sendfile(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_sendfile = os.sendfile

    def counting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(asynchat.os, "sendfile", counting_sendfile)
    content = os.urandom(3_000_000)
    path = tmp_path / "blob"
    path.write_bytes(content)
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    peer = Peer(pair[1])
    handle = path.open("rb")
    chan.push(b"HEADER\r\n")
    chan.push_with_producer(file_producer(handle, offset=100, count=2_000_000))
    chan.push(b"TRAILER\r\n")
    expected = b"HEADER\r\n" + content[100:2_000_100] + b"TRAILER\r\n"
    run_until(chan_map, lambda: len(peer.drain()) >= len(expected), peer)
    assert bytes(peer.received) == expected
    assert calls
    assert handle.closed


def test_file_producer_more_without_socket(tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"0123456789")
    producer = file_producer(path.open("rb"), offset=2, buffer_size=3)
    pieces = []
    while piece := producer.more():
        pieces.append(piece)
    assert pieces == [b"234", b"567", b"89"]
    assert producer.file.closed


def test_close_when_done_waits_for_everything_queued_before(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    peer = Peer(pair[1])
    first = os.urandom(1_500_000)
    second = os.urandom(700_000)
    chan.push(first)
    chan.push_with_producer(simple_producer(second, buffer_size=100_000))
    chan.close_when_done()
    chan.push(b"after close_when_done")
    assert chan.connected  # the socket could not take it all yet
    while not peer.eof:
        assert len(peer.received) < len(first) + len(second) or not chan.connected
        run_until(chan_map, lambda: True, peer)
        turn(chan_map)
        peer.drain()
    assert bytes(peer.received) == first + second
    assert not chan.connected


def test_held_output_waits_in_order_then_leaves_with_close(pair: tuple[socket.socket, socket.socket]) -> None:
    """hold_output(): pushes of every kind and a close wait; release_output() sends them in order."""
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    peer = Peer(pair[1])
    chan.push(b"before ")  # nothing held yet: straight to the socket
    chan.hold_output()
    assert chan.output_held
    chan.push(b"one ")
    chan.push_many([b"two ", b"three "])
    chan.push_with_producer(simple_producer(b"four ", buffer_size=2))
    chan.initiate_send()
    chan.close_when_done()
    chan.push(b"dropped")  # after the close: never sent
    turn(chan_map, 5)
    assert peer.drain() == b"before "
    assert chan.connected and chan.out_buffered > 0
    chan.release_output()
    assert not chan.output_held
    run_until(chan_map, lambda: peer.eof, peer)
    assert bytes(peer.received) == b"before one two three four "
    assert not chan.connected


def test_releasing_output_that_was_not_held_changes_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    peer = Peer(pair[1])
    chan.release_output()
    chan.push(b"x\r\n")
    assert peer.drain() == b"x\r\n"


def test_handle_error_logs_and_closes_only_that_channel() -> None:
    chan_map: dict[int, Any] = {}
    a_local, a_peer = socket.socketpair()
    b_local, b_peer = socket.socketpair()

    class Fragile(Lines):
        def found_terminator(self) -> None:
            super().found_terminator()
            if self.frames[-1] == b"boom":
                raise RuntimeError("handler failed")

    fragile = Fragile(a_local, chan_map)
    sturdy = Lines(b_local, chan_map, reply=lambda frame: sturdy.push(frame.upper() + b"\r\n"))
    a_peer.sendall(b"boom\r\n")
    b_peer.sendall(b"hello\r\n")
    b_peer.settimeout(5)
    run_until(chan_map, lambda: not fragile.connected and sturdy.frames == [b"hello"])
    assert b_peer.recv(100) == b"HELLO\r\n"
    assert sturdy.connected
    level, event, _, exc = fragile.logger.records[-1]
    assert (level, event) == ("exception", "channel_error")
    assert isinstance(exc, RuntimeError)
    assert set(chan_map.values()) == {sturdy}
    for sock in (a_peer, b_peer):
        sock.close()
    sturdy.close()


def test_backlog_drained_by_flush_does_not_recurse(pair: tuple[socket.socket, socket.socket]) -> None:
    """Thousands of pipelined requests, each over the high-water mark: framed iteratively."""
    chan_map: dict[int, Any] = {}

    class Echo(Lines):
        out_high_water = 100
        ac_in_buffer_size = 1 << 20

    chan = Echo(pair[0], chan_map, reply=lambda frame: chan.push(frame * 20 + b"\r\n"))
    for sock in pair:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    peer = Peer(pair[1])
    count = 5000
    peer.send(b"0123456789\r\n" * count)
    run_until(chan_map, lambda: len(chan.frames) == count, peer)
    run_until(chan_map, lambda: len(peer.drain()) == count * 202, peer)
    assert chan.connected


def test_push_after_close_is_dropped_and_reconnect_frames_again(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    chan_map: dict[int, Any] = {}
    chan = Lines(pair[0], chan_map)
    chan.close()
    chan.push(b"late reply")
    chan.push_many([b"more", b"replies"])
    path = tmp_path / "f"
    path.write_bytes(b"data")
    handle = path.open("rb")
    chan.push_with_producer(file_producer(handle))
    assert not chan.producer_fifo and chan.out_buffered == 0
    assert handle.closed
    # The same channel object given a fresh socket works again.
    local, peer = socket.socketpair()
    chan.set_socket(local, chan_map)
    chan.connected = True
    peer.sendall(b"again\r\n")
    run_until(chan_map, lambda: chan.frames == [b"again"])
    chan.close()
    peer.close()


def test_socketless_channel_frames_fed_input() -> None:
    chan = Lines.__new__(Lines)
    async_chat.__init__(chan)
    chan.parts, chan.frames, chan.reply = [], [], None
    chan.set_terminator(b"\n")
    chan.feed(b"a\nb")
    chan.feed(b"\n")
    assert chan.frames == [b"a", b"b"]


def test_frame_budget_without_a_reactor_does_not_stall(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    chan_map: dict[int, Any] = {}
    chan = Lines(ours, chan_map)
    chan.frame_budget = 10
    theirs.sendall(b"x\r\n" * 100)
    run_until(chan_map, lambda: len(chan.frames) == 100)
    assert not chan.reading_paused
    chan.close()
