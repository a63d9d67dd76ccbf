"""A drop-in ``asynchat`` for Python 3.11+: terminator framing and a producer FIFO.

The public names and their behaviour follow the documentation of the
standard library's old ``asynchat`` module.  The implementation is our own:
input is scanned with offsets (linear in the bytes received, however many
frames a read holds), output is coalesced into few ``send``/``sendmsg``
calls, and optional limits keep a hostile peer from growing memory.

When a channel lives in a :class:`linechat.reactor.Reactor` map it tells the
reactor when its interest in reading or writing changes, so the loop never
has to ask every channel on every turn.  Under a plain ``asyncore.loop()``
it behaves like any dispatcher.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections import deque

from linechat._compat import asyncore, lazy_logger
from linechat.producers import Producer, fifo, file_producer, find_prefix_at_end, simple_producer
from linechat.transport import SocketTransport, Transport

# typing.TYPE_CHECKING without importing typing: ``import linechat.asynchat``
# loads no more than the standard library's asynchat did (type checkers treat
# any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from linechat.reactor import Reactor, Timer

__all__ = [
    "READ",
    "WRITE",
    "Producer",
    "async_chat",
    "fifo",
    "file_producer",
    "find_prefix_at_end",
    "install",
    "simple_producer",
]

#: Interest bits, identical to ``selectors.EVENT_READ`` / ``EVENT_WRITE``.
READ = 1
WRITE = 2


_log: Any = lazy_logger("linechat.channel")

# Errors after which a peer is gone: close quietly instead of reporting.
_DISCONNECTED = frozenset(
    {errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EPIPE, errno.EBADF}
)

# One send call never carries more than this many bytes or buffers: bounded
# work per turn keeps one fast consumer from starving the others.
_SEND_LIMIT = 1 << 20
_IOV_LIMIT = 64

_BYTES_TYPES = (bytes, bytearray, memoryview)

# os.sendfile only onto a socket whose send() is the socket's own: an
# ssl.SSLSocket (or a wrapper object) would have its encryption bypassed.
_SOCKET = socket.socket
_SOCKET_SEND = socket.socket.send
#: Reads of unhandled input taken off a socket before a queued close (see _discard_unread).
_DISCARD_READS = 16

# Errors of a TLS layer that mean "not now", not "broken": a record is not
# complete yet, or the layer must read before it can write.  ssl raises
# SSLWant*Error, pyOpenSSL Want*Error (not an OSError); recognised by name so
# that neither module is imported here.
_WANT_IO = frozenset({"SSLWantReadError", "SSLWantWriteError", "WantReadError", "WantWriteError"})
# ... and errors that mean the peer closed the TLS session (cleanly or not).
_TLS_CLOSED = frozenset({"SSLZeroReturnError", "SSLEOFError", "ZeroReturnError"})
# Reads in a row taken from a TLS layer's own buffer after one readiness event.
_PENDING_READS = 16


def _named(exc: BaseException, names: frozenset[str]) -> bool:
    return any(klass.__name__ in names for klass in type(exc).__mro__)


def _sendfile_safe(sock: Any) -> bool:
    """True for a socket whose bytes go to the wire as they are (os.sendfile cannot bypass anything)."""
    return isinstance(sock, _SOCKET) and type(sock).send is _SOCKET_SEND


# Frames per pass when no budget is set (asynchat's behaviour: all of them).
_NO_BUDGET = 1 << 62


class _EmptyFifo(deque):  # type: ignore[type-arg]
    """The output queue of every channel with nothing queued: shared, so nothing may be added to it."""

    __slots__ = ()

    def append(self, item: Any) -> None:
        raise RuntimeError("the shared empty FIFO takes nothing: use _fifo()")

    appendleft = extend = extendleft = insert = append  # type: ignore[assignment]


# An idle channel holds no deque (760 bytes) and no set of its own: they are
# made when first needed and dropped when empty again.
_NO_FIFO: deque[Any] = _EmptyFifo()
_NO_REASONS: frozenset[str] = frozenset()

# A frame or backlog this large leaves holes in the heap when freed: ask the
# reactor to hand free pages back (glibc keeps them otherwise).
BIG_BUFFER = 1 << 20


Terminator = bytes | int | None
_FifoItem = bytes | bytearray | memoryview | Producer | None


class async_chat(asyncore.dispatcher):  # noqa: N801 - name fixed by the asynchat API
    """A dispatcher that frames input by a terminator and queues output as producers.

    Subclasses implement :meth:`collect_incoming_data` and :meth:`found_terminator`.
    Limits (all off by default, for compatibility; the service framework turns
    them on): ``max_frame_size``, ``max_input_buffer``, ``out_high_water`` /
    ``out_low_water`` / ``out_hard_limit`` and ``idle_timeout``.
    """

    ac_in_buffer_size = 4096
    ac_out_buffer_size = 4096
    use_encoding = 0
    encoding = "latin-1"

    #: Largest frame (bytes collected before a byte-string terminator, or while
    #: the terminator is None) before :meth:`handle_frame_too_long` is called.
    max_frame_size: int | None = None
    #: Largest amount of received but unprocessed input held while paused.
    max_input_buffer: int | None = None
    #: Above this many queued output bytes, stop reading from the peer ...
    out_high_water: int | None = None
    #: ... until the queue drains below this.
    out_low_water: int | None = None
    #: Queued output above this when more is queued: the peer is too slow,
    #: disconnect it.  A single reply of any size into a short queue is fine.
    out_hard_limit: int | None = None
    #: Queued output that may stay above this for at most ``out_soft_seconds``
    #: (needs a reactor) before the peer is disconnected.
    out_soft_limit: int | None = None
    out_soft_seconds: float = 60.0
    #: Seconds without input before :meth:`handle_idle_timeout` (needs a reactor).
    idle_timeout: float | None = None
    #: Seconds a peer may take to finish a delimited frame (a line) it has
    #: begun, before :meth:`handle_line_timeout` (needs a reactor): a peer that
    #: trickles a line byte by byte keeps the idle timer happy but not this one.
    line_timeout: float | None = None

    #: Frames handed out in one framing pass before the channel yields to the
    #: others until a later turn of the reactor (None: no limit).  One peer's
    #: pipeline then cannot hold the loop however many frames it holds.
    frame_budget: int | None = None

    terminator: Terminator = None

    # Decided once per class (see __init_subclass__): does a subclass hook
    # recv(), send() or get_terminator()?  The plain case takes the fast paths.
    # Each instance copies the answers into slots, which read faster on the
    # hot paths than class attributes do.
    _class_plain_recv = True
    _class_plain_send = True
    _class_plain_get_terminator = True

    # Per-connection state that most connections never change lives on the
    # class until they do: an idle connection's __dict__ stays small.
    _line_timer: Timer | None = None
    _line_since = 0.0  # when the frame in progress began (0: none)
    _turn_left = _NO_BUDGET  # frames this pass may still hand out
    _deferred: Callable[[], Any] | None = None  # run when a yielded turn comes back
    _turn_scheduled = False
    _soft_since = 0.0  # when the backlog went above out_soft_limit (0: it is not)
    _soft_timer: Timer | None = None
    _big = False  # a large backlog is queued: release memory when it is gone
    _draining = False  # reading what a TLS layer holds (see _read_pending)
    _no_sendmsg: Any = None  # the socket object found to refuse sendmsg
    # After wrap_tls()/start_tls() the socket attribute holds a TlsTransport
    # (linechat.transport): TLS on memory BIOs over the real socket.  Only
    # then ("layered") is the transport asked whether it holds bytes of its
    # own to flush or waits for the peer before it can send.
    _layered = False
    _tls_request: tuple[Any, bool, str | None] | None = None  # start TLS once the queue drains
    _handshake_timer: Timer | None = None
    #: Seconds a peer gets to complete a TLS handshake (needs a reactor; None: no limit).
    tls_handshake_timeout: float | None = None

    # Per-connection state set by __init__ lives in slots rather than the
    # instance dict (dispatcher's attributes keep that one small and shared).
    __slots__ = (
        "_ac_closed",
        "_ac_closing",
        "_discarding",
        "_dispatching",
        "_events",
        "_flush_wanted",
        "_frame_len",
        "_gen",
        "_ibuf",
        "_idle_timer",
        "_ipos",
        "_last_input",
        "_ofifo",
        "_out_bytes",
        "_output_held",
        "_pause_reasons",
        "_plain_get_terminator",
        "_plain_recv",
        "_plain_send",
        "_reactor",
        "incoming",
        "logger",
    )

    def __init__(self, sock: socket.socket | None = None, map: dict[int, Any] | None = None) -> None:  # noqa: A002
        cls = type(self)
        self._plain_recv = cls._class_plain_recv
        self._plain_send = cls._class_plain_send
        self._plain_get_terminator = cls._class_plain_get_terminator
        self._ibuf = b""  # received input; bytes before _ipos are consumed
        self._ipos = 0
        self._frame_len = 0  # bytes collected for the current frame
        self._discarding = False  # skipping the rest of an over-long frame
        self._gen = 0  # bumped by anything that must interrupt a framing pass
        self.incoming: list[bytes] = []
        self._ofifo: deque[_FifoItem] = _NO_FIFO
        self._out_bytes = 0  # queued bytes, producers not counted
        self._output_held = False  # hold_output(): queued output waits for release_output()
        self._pause_reasons: set[str] | frozenset[str] = _NO_REASONS
        self._dispatching = 0  # >0 while inside the framing loop
        self._flush_wanted = False
        self._ac_closing = False
        self._ac_closed = False
        self._reactor: Reactor | None = None
        self._events = 0  # interest last told to the reactor
        self._idle_timer: Timer | None = None
        self._last_input = 0.0
        self.logger: Any = _log  # services bind connection context onto it
        super().__init__(sock, map)
        self._update_interest()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that overrides recv() or send() (TLS, throttling, byte
        # counting) sees every byte: all input then comes through self.recv()
        # and all output through self.send(), as with the standard library.
        cls._class_plain_recv = cls.recv is asyncore.dispatcher.recv
        # An initiate_send() override (pyftpdlib's updates its own loop's
        # interest there) must see every send, so a push goes through it.
        cls._class_plain_send = (
            cls.send is asyncore.dispatcher.send and cls.initiate_send is async_chat.initiate_send
        )
        cls._class_plain_get_terminator = cls.get_terminator is async_chat.get_terminator

    # ------------------------------------------------------------------ TLS

    @property
    def transport(self) -> Transport:
        """The transport bytes go through (see :mod:`linechat.transport`): TLS once switched, else the socket."""
        if self._layered:
            return self.socket  # type: ignore[return-value]
        return SocketTransport(self.socket)  # type: ignore[arg-type]

    def start_tls(self, context: Any, *, server_side: bool = True, server_hostname: str | None = None) -> None:
        """Switch to TLS once everything queued so far has been sent (STARTTLS).

        Reading stops now; input received after the command but not yet
        framed is dropped when the switch happens, never handled as if it
        had been protected (the STARTTLS injection class, CVE-2011-0411).
        """
        self._tls_request = (context, server_side, server_hostname)
        self.pause_reading("starttls")
        if not self._ofifo and not self._dispatching:
            self._switch_tls()
        else:
            self._send_soon()

    def _switch_tls(self) -> None:
        request = self._tls_request
        if request is None or self._ac_closed:
            return
        self._tls_request = None
        context, server_side, server_hostname = request
        dropped = len(self._ibuf) - self._ipos
        self._ibuf = b""
        self._ipos = 0
        self._gen += 1
        self.incoming.clear()
        if dropped:
            self.logger.info("starttls_plaintext_dropped", size=dropped)
        self.wrap_tls(context, server_side=server_side, server_hostname=server_hostname)
        self.resume_reading("starttls")

    def wrap_tls(self, context: Any, *, server_side: bool = True, server_hostname: str | None = None) -> None:
        """Speak TLS from now on, at once (implicit TLS: before any byte is sent or read)."""
        from linechat.transport import TlsTransport

        if self._layered:
            raise TypeError("this channel already speaks TLS")
        if self.socket is None:
            raise OSError("wrap_tls needs a connected socket")
        self.socket = TlsTransport(  # type: ignore[assignment]
            SocketTransport(self.socket), context, server_side=server_side, server_hostname=server_hostname
        )
        self._layered = True
        reactor = self._reactor
        if self.tls_handshake_timeout and reactor is not None:
            self._handshake_timer = reactor.call_later(self.tls_handshake_timeout, self._check_handshake)
        self._update_interest()
        if not server_side:
            self._after_layered_io()  # a client speaks first

    def _check_handshake(self) -> None:
        self._handshake_timer = None
        if self._ac_closed or getattr(self.socket, "handshake_done", True):
            return
        self.handle_handshake_timeout()

    def handle_handshake_timeout(self) -> None:
        """Called when a peer did not complete the TLS handshake in time; the default closes."""
        self.logger.info("tls_handshake_timeout", timeout=self.tls_handshake_timeout)
        self.close()

    def handle_transport_error(self, exc: OSError) -> None:
        """Called when TLS fails for a reason of the peer's (an alert, garbage, plaintext); the default closes."""
        self.logger.debug("tls_error", error=str(exc))
        self.close()

    def _after_layered_io(self) -> None:
        """After a read through TLS: send what waited for the handshake, re-aim interest."""
        transport: Any = self.socket
        if self._handshake_timer is not None and transport.handshake_done:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._ofifo and not self._dispatching and not transport.write_blocked and not self._output_held:
            self.initiate_send()
        elif transport.wants_write:
            try:
                transport.flush()
            except OSError as exc:
                self._send_failed(exc)
                return
        self._update_interest()

    # ------------------------------------------------------------------ terminators

    def set_terminator(self, term: bytes | str | int | None) -> None:
        """Set the input delimiter: a byte string, a byte count, or None to collect everything."""
        if isinstance(term, str):
            if not self.use_encoding:
                raise TypeError("a str terminator needs use_encoding; pass bytes")
            term = term.encode(self.encoding)
        elif isinstance(term, int) and not isinstance(term, bool):
            if term < 0:
                raise ValueError("the number of received bytes must be positive")
        elif term is not None and not isinstance(term, bytes):
            raise TypeError(f"terminator must be bytes, int or None, not {type(term).__name__}")
        self.terminator = term
        self._frame_len = 0
        self._discarding = False
        self._gen += 1

    def get_terminator(self) -> Terminator:
        """Return the current terminator."""
        return self.terminator

    # ------------------------------------------------------------------ input

    def collect_incoming_data(self, data: bytes) -> None:
        """Called with data that belongs to the current frame (override it)."""
        raise NotImplementedError("must be implemented in subclass")

    def _collect_incoming_data(self, data: bytes) -> None:
        self.incoming.append(data)

    def _get_data(self) -> bytes:
        data = b"".join(self.incoming)
        self.incoming.clear()
        return data

    def found_terminator(self) -> None:
        """Called when the current terminator has been seen (override it)."""
        raise NotImplementedError("must be implemented in subclass")

    def handle_read_event(self) -> None:
        """Readable: read, accept or finish connecting (one call shallower for connected channels)."""
        if self.connected and not self.accepting:
            self.handle_read()
        else:
            super().handle_read_event()

    def handle_read(self) -> None:
        """Read once from the socket and run the framing over what arrived."""
        try:
            if self._plain_recv:
                # asyncore's recv, one call shallower: this runs once per read.
                data = self.socket.recv(self.ac_in_buffer_size)  # type: ignore[union-attr]
                if not data:
                    self.handle_close()
                    return
            else:
                data = self.recv(self.ac_in_buffer_size)
        except OSError as exc:
            self._recv_failed(exc)
            return
        except Exception as exc:  # pyOpenSSL's errors are not OSErrors
            if _named(exc, _WANT_IO):
                return
            if _named(exc, _TLS_CLOSED):
                self.handle_close()
                return
            raise
        if data:
            if self._idle_timer is not None:
                self._last_input = self._reactor.time()  # type: ignore[union-attr]
            self.feed(data)
            if self._layered:
                if not self._ac_closed:
                    self._after_layered_io()
            elif self.socket.__class__ is not _SOCKET and not self._draining:
                self._read_pending()

    def _recv_failed(self, exc: OSError) -> None:
        if isinstance(exc, BlockingIOError) or _named(exc, _WANT_IO):
            if self._layered:
                self._after_layered_io()  # a handshake step may have bytes to send
            return  # a spurious wake-up, or half a TLS record: nothing to read yet
        if exc.errno in _DISCONNECTED or _named(exc, _TLS_CLOSED):
            self.handle_close()
        elif self._layered and type(exc).__module__ == "ssl":
            self.handle_transport_error(exc)
        else:
            self.handle_error()

    def _tls_pending(self) -> bool:
        """True if the socket object (a TLS layer) holds received bytes of its own that epoll cannot see."""
        sock = self.socket
        if sock is None or sock.__class__ is _SOCKET:
            return False
        pending = getattr(sock, "pending", None)
        if pending is None:
            return False
        try:
            return bool(pending())
        except Exception:
            return False

    def _read_pending(self) -> None:
        """Read what a TLS layer already holds: no readiness event would come for it."""
        self._draining = True
        try:
            for _ in range(_PENDING_READS):
                if self._ac_closed or self._pause_reasons or not self.connected or not self._tls_pending():
                    return
                self.handle_read()
        finally:
            self._draining = False
        if self._tls_pending() and self._reactor is not None:
            self._reactor.call_soon(self._read_pending)  # more than one turn's worth: go on next turn

    def feed(self, data: bytes) -> None:
        """Run the framing over *data* as if it had just been received."""
        if self._ipos < len(self._ibuf):
            self._ibuf = self._ibuf[self._ipos :] + data
        else:
            self._ibuf = bytes(data)
        self._ipos = 0
        self._gen += 1
        limit = self.max_input_buffer
        if limit is not None and self._pause_reasons and len(self._ibuf) > limit:
            self.handle_input_overflow(len(self._ibuf))
            return
        self._process_input()

    def unread(self, data: bytes) -> None:
        """Put *data* back in front of the input not yet framed."""
        self._ibuf = bytes(data) + self._ibuf[self._ipos :]
        self._ipos = 0
        self._gen += 1

    @property
    def ac_in_buffer(self) -> bytes:
        """Input received but not yet framed."""
        return self._ibuf[self._ipos :]

    @ac_in_buffer.setter
    def ac_in_buffer(self, data: bytes) -> None:
        self._ibuf = bytes(data)
        self._ipos = 0
        self._gen += 1

    @property
    def producer_fifo(self) -> deque[_FifoItem]:
        """The output queue: byte strings, producers, and None for a pending close."""
        return self._fifo()

    def _fifo(self) -> deque[_FifoItem]:
        fifo = self._ofifo
        if fifo is _NO_FIFO:
            fifo = self._ofifo = deque()
        return fifo

    def _process_input(self) -> None:
        """The framing loop: hand out frames while input, a terminator and no pause remain."""
        self._dispatching += 1
        if self._dispatching == 1:
            self._turn_left = self.frame_budget or _NO_BUDGET
        try:
            while True:
                while not self._pause_reasons and not self._ac_closed and self._ipos < len(self._ibuf):
                    term = self.terminator if self._plain_get_terminator else self.get_terminator()
                    if not term:
                        self._take_all()
                    elif term.__class__ is int:
                        self._take_count(term)  # type: ignore[arg-type]
                    elif not self._scan_delimited(term):  # type: ignore[arg-type]
                        break
                    else:
                        continue
                    self._turn_left -= 1
                    if self._turn_left <= 0:
                        self.yield_turn()
                if self._dispatching > 1 or not self._flush_wanted:
                    break
                # Send the replies of this batch.  If that drains a backlog and
                # resumes reading, keep framing here rather than recursing.
                self._flush_wanted = False
                self.initiate_send()
                if self._pause_reasons or self._ac_closed or self._ipos >= len(self._ibuf):
                    break
        finally:
            self._dispatching -= 1
            if not self._dispatching and self._flush_wanted:
                # A handler raised with replies pending: make sure a write
                # event will still send them.
                self._update_interest()
        if self._ipos and self._ipos >= len(self._ibuf):
            self._ibuf = b""
            self._ipos = 0
        if self.line_timeout and not self._dispatching:
            self._watch_line()

    def _watch_line(self) -> None:
        """Start (or stop) the clock on a delimited frame left unfinished by this read."""
        # While reading is paused the peer cannot finish its line: no clock then.
        if self._pause_reasons or not self.frame_unfinished():
            self._line_since = 0.0
            return
        reactor = self._reactor
        if self._line_since or reactor is None or self._ac_closed:
            return
        self._line_since = reactor.time()
        if self._line_timer is None:
            # The timer re-arms itself from the stamp, so a peer whose reads
            # often end mid-line costs one timer per period, not one per read.
            self._line_timer = reactor.call_later(self.line_timeout, self._check_line)  # type: ignore[arg-type]

    def frame_unfinished(self) -> bool:
        """True while part of a delimited frame is held (the ``line_timeout`` clock runs)."""
        return self.terminator.__class__ is bytes and bool(
            self._frame_len or self._discarding or self._ipos < len(self._ibuf)
        )

    def _check_line(self) -> None:
        self._line_timer = None
        reactor = self._reactor
        if reactor is None or not self._line_since or not self.line_timeout or self._ac_closed:
            return
        due = self._line_since + self.line_timeout
        now = reactor.time()
        if now >= due:
            self._line_since = 0.0
            self.handle_line_timeout()
        else:
            self._line_timer = reactor.call_later(due - now, self._check_line)

    def handle_line_timeout(self) -> None:
        """Called when a begun line was not finished within ``line_timeout`` seconds; the default closes."""
        self.logger.info("line_timeout", timeout=self.line_timeout)
        self.close()

    def _take_all(self) -> None:
        buf, pos = self._ibuf, self._ipos
        data = buf[pos:] if pos else buf
        self._ipos = len(buf)
        if self._discarding:
            return
        self._frame_len += len(data)
        limit = self.max_frame_size
        if limit is not None and self._frame_len > limit:
            self._too_long()
            return
        self.collect_incoming_data(data)

    def _take_count(self, count: int) -> None:
        buf, pos = self._ibuf, self._ipos
        avail = len(buf) - pos
        if avail < count:
            self.terminator = count - avail
            self._ipos = len(buf)
            self.collect_incoming_data(buf[pos:] if pos else buf)
            return
        self._ipos = pos + count
        self.collect_incoming_data(buf[pos : pos + count])
        self.terminator = 0
        self.found_terminator()

    def _scan_delimited(self, term: bytes) -> bool:
        """Hand out every frame ending in *term*; False once the input is exhausted."""
        if self._discarding or self.max_frame_size is not None or not self._plain_get_terminator:
            return self._scan_checked(term)
        # The hot path: no limits to account for.  Anything a handler can do
        # that matters here (pause, close, feed, unread, set_terminator,
        # discard_frame) bumps _gen, so one comparison per frame suffices.
        buf = self._ibuf
        pos = self._ipos
        tlen = len(term)
        find = buf.find
        collect = self.collect_incoming_data
        found = self.found_terminator
        gen = self._gen
        idx = find(term, pos)
        if idx >= 0:
            self._frame_len = 0
            while True:
                if idx > pos:
                    collect(buf[pos:idx])
                pos = idx + tlen
                self._ipos = pos
                found()
                if self._gen != gen or self.terminator is not term:
                    self._turn_left -= 1
                    return True
                self._turn_left -= 1
                if self._turn_left <= 0:
                    self.yield_turn()
                    return True
                idx = find(term, pos)
                if idx < 0:
                    break
        return self._collect_tail(buf, pos, term)

    def _scan_checked(self, term: bytes) -> bool:
        """:meth:`_scan_delimited` with frame limits, discarding and dynamic terminators."""
        buf = self._ibuf
        pos = self._ipos
        tlen = len(term)
        find = buf.find
        limit = self.max_frame_size
        collect = self.collect_incoming_data
        plain = self._plain_get_terminator
        while True:
            idx = find(term, pos)
            if idx < 0:
                break
            if self._discarding:
                # The over-long frame ends here; its terminator is eaten too.
                self._discarding = False
                self._frame_len = 0
                self._ipos = idx + tlen
                return True
            if limit is not None and self._frame_len + idx - pos > limit:
                self._frame_len += idx - pos
                self._ipos = pos
                self._too_long()
                return True
            gen = self._gen
            if idx > pos:
                collect(buf[pos:idx])
            pos = idx + tlen
            self._ipos = pos
            self._frame_len = 0
            self.found_terminator()
            self._turn_left -= 1
            if self._turn_left <= 0:
                self.yield_turn()
                return True
            # The handler may have changed the terminator, paused us, pushed
            # input back or closed: start over from the outer loop then.  A
            # get_terminator() override is asked again after every frame.
            if self._gen != gen or self.terminator is not term or not plain:
                return True
        return self._collect_tail(buf, pos, term)

    def _collect_tail(self, buf: bytes, pos: int, term: bytes) -> bool:
        """No terminator after *pos*: hand over all but a possible start of one."""
        end = len(buf)
        keep = find_prefix_at_end(buf, term) if len(term) > 1 else 0
        if keep > end - pos:
            keep = end - pos
        stop = end - keep
        if stop > pos:
            self._ipos = stop
            if self._discarding:
                return False
            self._frame_len += stop - pos
            limit = self.max_frame_size
            if limit is not None and self._frame_len > limit:
                self._too_long()
                return False
            self.collect_incoming_data(buf[pos:stop])
        return False

    def _too_long(self) -> None:
        # Whatever the hook does, the rest of the frame is never buffered.
        self._discarding = True
        self.incoming.clear()
        self.handle_frame_too_long(self._frame_len)

    def discard_frame(self) -> None:
        """Drop input up to and including the next terminator (call from a limit hook)."""
        self._discarding = True
        self.incoming.clear()
        self._gen += 1

    def handle_frame_too_long(self, size: int) -> None:
        """Called when a frame passes ``max_frame_size``; the default reports it and closes."""
        self.logger.warning("frame_too_long", size=size, limit=self.max_frame_size)
        self.close()

    def handle_input_overflow(self, size: int) -> None:
        """Called when unprocessed input passes ``max_input_buffer``; the default closes."""
        self.logger.warning("input_overflow", size=size, limit=self.max_input_buffer)
        self._ibuf = b""
        self._ipos = 0
        self._gen += 1
        self.close()

    # ------------------------------------------------------------------ pausing

    def pause_reading(self, reason: str = "user") -> None:
        """Stop reading from the peer and framing buffered input until resumed for *reason*."""
        reasons = self._pause_reasons
        if reason not in reasons:
            if reasons is _NO_REASONS:
                self._pause_reasons = {reason}
            else:
                reasons.add(reason)  # type: ignore[union-attr]
            self._gen += 1
            self._update_interest()

    def resume_reading(self, reason: str = "user") -> None:
        """Undo :meth:`pause_reading` for *reason*; buffered input is framed again."""
        if reason not in self._pause_reasons:
            return
        reasons = self._pause_reasons
        reasons.discard(reason)  # type: ignore[union-attr]
        if reasons:
            return
        self._pause_reasons = _NO_REASONS
        self._update_interest()
        if self.socket is not None and self.socket.__class__ is not _SOCKET and self._tls_pending():
            # Input held inside a TLS layer raises no readiness event: read it.
            if self._reactor is not None:
                self._reactor.call_soon(self._read_pending)
            else:
                self._read_pending()
        if self._ipos < len(self._ibuf) and not self._dispatching:
            # Frame what was held back, but not in the caller's stack: the
            # caller may be another channel's handler.
            if self._reactor is not None:
                self._reactor.call_soon(self._resume_input)
            else:
                self._process_input()

    def yield_turn(self, then: Callable[[], Any] | None = None) -> None:
        """Stop framing until a later turn of the reactor; then call *then* (if given) and go on.

        A handler that runs many commands of one read calls this to put the
        rest off (see :meth:`turn_allowance`).  While the peer's backlog is
        above the high-water mark the turn waits for it to drain.
        """
        if self._reactor is None:
            # Under a plain asyncore loop there is no later turn to come back
            # on: go on now rather than stay paused for good.
            if then is not None:
                then()
            return
        if then is not None:
            self._deferred = then
        if "turn" not in self._pause_reasons:
            self.pause_reading("turn")
        if self._reactor is not None and not self._turn_scheduled:
            self._turn_scheduled = True
            self._reactor.call_soon(self._end_turn)

    def turn_allowance(self) -> tuple[int, int]:
        """(frames, bytes of output) one read's handler may still produce before it should yield."""
        high = self.out_high_water
        room = high - self._out_bytes if high is not None else _NO_BUDGET
        return (self.frame_budget or _NO_BUDGET), room

    def _end_turn(self) -> None:
        self._turn_scheduled = False
        if self._ac_closed or "turn" not in self._pause_reasons:
            return
        if "backpressure" in self._pause_reasons:
            return  # the drain that lifts backpressure brings the turn back (_after_send)
        then = self._deferred
        if then is not None:
            self._deferred = None
            self._dispatching += 1
            try:
                then()
            except Exception:
                self.handle_error()
                return
            finally:
                self._dispatching -= 1
            if self._flush_wanted:
                self._flush_wanted = False
                self.initiate_send()
            if self._deferred is not None or self._ac_closed:
                return  # it yielded again: a later turn goes on
        self.resume_reading("turn")

    def _resume_input(self) -> None:
        if self.connected and not self._pause_reasons and not self._dispatching:
            self._process_input()

    @property
    def reading_paused(self) -> bool:
        """True while any reason to pause reading is in force."""
        return bool(self._pause_reasons)

    def readable(self) -> bool:
        """True unless reading is paused."""
        return not self._pause_reasons

    def writable(self) -> bool:
        """True while output is queued, or while a connection is being made."""
        return bool(self._ofifo) or not self.connected

    # ------------------------------------------------------------------ output

    def push(self, data: bytes | bytearray | memoryview) -> None:
        """Queue *data* for sending; small pushes are coalesced into one send."""
        if data.__class__ is bytes:
            size = len(data)
        elif isinstance(data, _BYTES_TYPES):
            size = data.nbytes if isinstance(data, memoryview) else len(data)
        else:
            raise TypeError(f"data argument must be byte-ish ({type(data).__name__!r})")
        if not size or self._ac_closed:  # output for a closed channel would only pile up
            self._send_soon()
            return
        if not self._ofifo and not self._dispatching and self.connected:
            # Nothing queued and no batch being framed (a broadcast, a timer):
            # hand the bytes to the socket now.
            self._send_direct(data, size)
            return
        self._fifo().append(data)
        self._out_bytes += size
        self._check_output_limits(size)
        self._send_soon()

    def _send_direct(self, data: bytes | bytearray | memoryview, size: int) -> None:
        """Send *data* (*size* bytes) now, nothing being queued before it; queue only what the socket refuses."""
        if self._output_held:
            self._queue_unsent(data, 0)
            return
        if not self._plain_send:
            self._queue_unsent(data, 0)
            self.initiate_send()
            return
        try:
            sent = self.socket.send(data)  # type: ignore[union-attr]
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if not _named(exc, _WANT_IO):
                self._send_failed(exc)
                return
            sent = 0
        if sent < size:
            self._queue_unsent(data, sent)

    def _queue_unsent(self, data: bytes | bytearray | memoryview, sent: int) -> None:
        """Queue what a direct send left of *data* and ask for a write event."""
        rest = memoryview(data)[sent:]
        self._fifo().append(rest)
        self._out_bytes += rest.nbytes
        self._check_output_limits(rest.nbytes)
        self._update_interest()

    def push_with_producer(self, producer: Producer | bytes) -> None:
        """Queue a producer (or a byte string) whose output is sent in order."""
        if self._ac_closed:
            if isinstance(producer, file_producer):
                producer.done()
            return
        self._fifo().append(producer)
        if isinstance(producer, _BYTES_TYPES):
            size = producer.nbytes if isinstance(producer, memoryview) else len(producer)
            self._out_bytes += size
            self._check_output_limits(size)
        self._send_soon()

    def push_many(self, items: Iterable[bytes]) -> None:
        """Queue several byte strings at once (one send attempt for all)."""
        if self._ac_closed:
            return
        fifo = self._fifo()
        total = 0
        for data in items:
            if data:
                fifo.append(data)
                total += len(data)
        self._out_bytes += total
        self._check_output_limits(total)
        self._send_soon()

    def _send_soon(self) -> None:
        if self._dispatching and self._plain_send:
            # Inside the framing loop: replies to a pipelined batch go out
            # together when the loop ends.  Not for a class that hooks
            # send()/initiate_send(): such code expects a push to be sent at
            # once, as the standard library did (an FTP server answers AUTH TLS,
            # then wraps its socket in TLS in the same handler).
            self._flush_wanted = True
        else:
            self.initiate_send()

    def close_when_done(self) -> None:
        """Close once everything queued before this call has been sent."""
        self._ac_closing = True
        self._fifo().append(None)
        if self._plain_send:
            self._send_soon()
        else:
            # As the standard library did: the close waits for the next write
            # event, where a hooking class may have work of its own to do
            # first (a TLS handshake on a data connection, say).
            self._update_interest()

    @property
    def out_buffered(self) -> int:
        """Bytes queued for the peer (producers not yet run are not counted)."""
        return self._out_bytes

    def _check_output_limits(self, added: int) -> None:
        queued = self._out_bytes
        hard = self.out_hard_limit
        # The reader is judged, not the reply: only output queued behind a
        # backlog already over the limit cuts the peer off.
        if hard is not None and queued - added > hard:
            self.handle_slow_consumer(queued)
            return
        if queued >= BIG_BUFFER:
            self._big = True
        soft = self.out_soft_limit
        if soft is not None and queued > soft and not self._soft_since:
            self._soft_exceeded()
        high = self.out_high_water
        if high is not None and queued > high:
            self.pause_reading("backpressure")

    def memory_freed(self) -> None:
        """A large buffer of this channel was freed: let the reactor give the memory back soon."""
        self._big = False
        if self._reactor is not None:
            self._reactor.release_memory_soon()

    def _soft_exceeded(self) -> None:
        reactor = self._reactor
        if reactor is None or self._ac_closed:
            return
        self._soft_since = reactor.time()
        if self._soft_timer is None:
            self._soft_timer = reactor.call_later(self.out_soft_seconds, self._check_soft)

    def _check_soft(self) -> None:
        self._soft_timer = None
        reactor = self._reactor
        if reactor is None or self._ac_closed or not self._soft_since:
            return
        soft = self.out_soft_limit
        if soft is None or self._out_bytes <= soft:
            self._soft_since = 0.0
            return
        due = self._soft_since + self.out_soft_seconds
        now = reactor.time()
        if now >= due:
            self.handle_slow_consumer(self._out_bytes)
        else:
            self._soft_timer = reactor.call_later(due - now, self._check_soft)

    def handle_slow_consumer(self, queued: int) -> None:
        """Called when queued output passes ``out_hard_limit``; the default disconnects."""
        self.logger.warning("slow_consumer_disconnected", queued=queued, limit=self.out_hard_limit)
        self.discard_buffers()
        self.close()

    def hold_output(self) -> None:
        """Queue output (and a close after it) without sending it, until :meth:`release_output`.

        For a service that must not let replies leave before something else
        is done (the Redis AOF's fsync under ``appendfsync always``): what is
        pushed meanwhile keeps its order and counts against the output limits.
        """
        self._output_held = True

    def release_output(self) -> None:
        """End :meth:`hold_output`: send what was queued meanwhile (and close, if a close was queued)."""
        if self._output_held:
            self._output_held = False
            if self._ofifo:
                self.initiate_send()

    @property
    def output_held(self) -> bool:
        """True between :meth:`hold_output` and :meth:`release_output`."""
        return self._output_held

    def initiate_send(self) -> None:
        """Send as much queued output as the socket takes now (nothing while output is held)."""
        if self._output_held:
            return
        if not self._plain_send:
            self._send_hooked()
            return
        if self._layered:
            try:
                self.socket.flush()  # type: ignore[union-attr]  # TLS records of its own go first
            except OSError as exc:
                self._send_failed(exc)
                return
        fifo = self._ofifo
        if len(fifo) == 1 and fifo[0].__class__ is bytes and self.connected:
            # Request/response traffic mostly queues one reply per turn: send
            # it without building a buffer list (same outcome as below).
            data: bytes = fifo[0]  # type: ignore[assignment]
            sock: Any = self.socket
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                if not _named(exc, _WANT_IO):
                    self._send_failed(exc)
                    return
                sent = 0
            if sent == len(data):
                fifo.clear()
            elif sent:
                fifo[0] = memoryview(data)[sent:]
            self._out_bytes -= sent
            self._after_send()
            return
        while fifo and self.connected:
            first = fifo[0]
            if first is None:
                fifo.popleft()
                self._discard_unread()
                self.handle_close()
                return
            if isinstance(first, _BYTES_TYPES):
                if not self._send_buffers():
                    break
                continue
            if isinstance(first, file_producer) and _sendfile_safe(self.socket):
                try:
                    sent = first.sendfile(self.socket)  # type: ignore[arg-type]  # checked just above
                except BlockingIOError:
                    break
                except OSError as exc:
                    self._send_failed(exc)
                    return
                if sent == 0:
                    fifo.popleft()
                continue
            data = first.more()  # type: ignore[union-attr]
            if data:
                if isinstance(data, str):
                    data = data.encode(self.encoding)
                fifo.appendleft(data)
                self._out_bytes += len(data)
            else:
                fifo.popleft()
        self._after_send()

    def _send_buffers(self) -> bool:
        """Send the byte strings at the head of the FIFO; False if the socket is full."""
        fifo = self._ofifo
        bufs: list[bytes | bytearray | memoryview] = []
        total = 0
        for item in fifo:
            if item is None or not isinstance(item, _BYTES_TYPES):
                break
            bufs.append(item)
            total += item.nbytes if isinstance(item, memoryview) else len(item)
            if total >= _SEND_LIMIT or len(bufs) >= _IOV_LIMIT:
                break
        if not total:
            for _ in bufs:
                fifo.popleft()
            return True
        sock: Any = self.socket
        try:
            if len(bufs) == 1:
                sent = sock.send(bufs[0])
            elif total <= 16384 or sock is self._no_sendmsg:
                # Copying a few small replies is cheaper than an iovec per reply.
                sent = sock.send(b"".join(bufs))
            else:
                try:
                    sent = sock.sendmsg(bufs)
                except (NotImplementedError, AttributeError):
                    # An ssl.SSLSocket (or a wrapper) without scatter/gather:
                    # join from now on for this socket.
                    self._no_sendmsg = sock
                    sent = sock.send(b"".join(bufs))
        except BlockingIOError:
            return False
        except OSError as exc:
            if not _named(exc, _WANT_IO):
                self._send_failed(exc)
            return False
        self._consume(sent)
        return sent == total

    def _consume(self, sent: int) -> None:
        """Drop *sent* bytes from the head of the FIFO (byte strings only)."""
        fifo = self._ofifo
        self._out_bytes -= sent
        left = sent
        while left:
            item = fifo[0]
            size = item.nbytes if isinstance(item, memoryview) else len(item)  # type: ignore[union-attr,arg-type]
            if size <= left:
                fifo.popleft()
                left -= size
            else:
                fifo[0] = memoryview(item)[left:]  # type: ignore[arg-type]
                left = 0

    def _send_hooked(self) -> None:
        """Send queued output through ``self.send()``, which a subclass overrides.

        As the standard library did: at most ``ac_out_buffer_size`` bytes per
        call, producers asked for ``more()`` (no sendfile), no sendmsg, and an
        error the override raises goes to ``handle_error``.
        """
        fifo = self._ofifo
        limit = self.ac_out_buffer_size
        while fifo and self.connected:
            first = fifo[0]
            if first is None:
                fifo.popleft()
                self._discard_unread()
                self.handle_close()
                return
            if isinstance(first, _BYTES_TYPES):
                data = self._head_bytes(limit)
                if not data:
                    fifo.popleft()
                    continue
                try:
                    sent = self.send(data)
                except BlockingIOError:
                    break
                except Exception as exc:
                    if _named(exc, _WANT_IO):
                        break
                    if isinstance(exc, OSError):
                        self._send_failed(exc)
                    else:
                        self.handle_error()
                    return
                if sent:
                    self._consume(sent)
                if sent < len(data):
                    break  # the socket (or the override) took what it could
                continue
            data = first.more()  # type: ignore[union-attr]
            if data:
                if isinstance(data, str):
                    data = data.encode(self.encoding)
                fifo.appendleft(data)
                self._out_bytes += len(data)
            else:
                fifo.popleft()
        self._after_send()

    def _head_bytes(self, limit: int) -> bytes:
        """Up to *limit* bytes from the byte strings at the head of the FIFO, as one bytes object."""
        parts: list[bytes | bytearray | memoryview] = []
        total = 0
        for item in self._ofifo:
            if item is None or not isinstance(item, _BYTES_TYPES):
                break
            size = item.nbytes if isinstance(item, memoryview) else len(item)
            if total + size > limit:
                parts.append(memoryview(item)[: limit - total])
                total = limit
                break
            parts.append(item)
            total += size
            if total >= limit:
                break
        if len(parts) == 1 and parts[0].__class__ is bytes:
            return parts[0]  # type: ignore[return-value]
        return b"".join(parts)

    def _discard_unread(self) -> None:
        """Read and drop input that arrived but will not be handled, before a queued close.

        Closing a TCP socket with unread input makes the kernel send a reset
        instead of a FIN, and a reset can overtake the last reply on its way
        (a command that came in while the server was stopping would turn the
        farewell into ``Connection reset by peer``).  Bounded: a peer that
        keeps sending gets its reset.
        """
        sock = self.socket
        if sock.__class__ is not _SOCKET or sock.gettimeout() != 0.0:
            return  # TLS and other transports, or a blocking socket: close as it is
        try:
            for _ in range(_DISCARD_READS):
                if not sock.recv(self.ac_in_buffer_size):  # type: ignore[union-attr]
                    break
        except OSError:
            pass  # nothing more to read (EAGAIN) or already gone: close as it is

    def _send_failed(self, exc: OSError) -> None:
        if exc.errno in _DISCONNECTED:
            self.handle_close()
        else:
            self.handle_error()

    def _after_send(self) -> None:
        if not self._ofifo:
            self._out_bytes = 0
            self._ofifo = _NO_FIFO
            if self._big:
                self.memory_freed()
            if self._tls_request is not None:
                self._switch_tls()  # the "go ahead" is out: switch now
                return
        if self._soft_since and self._out_bytes <= self.out_soft_limit:  # type: ignore[operator]
            self._soft_since = 0.0  # back under the soft limit: its clock stops
        if self._pause_reasons:
            if "backpressure" in self._pause_reasons:
                low = self.out_low_water if self.out_low_water is not None else (self.out_high_water or 0) // 2
                if self._out_bytes <= low:
                    self.resume_reading("backpressure")
                    if "turn" in self._pause_reasons and not self._turn_scheduled and self._reactor is not None:
                        self._turn_scheduled = True
                        self._reactor.call_soon(self._end_turn)
        elif not self._ofifo and self._events == READ:
            return  # still wanting just READ: nothing to tell the reactor
        self._update_interest()

    def discard_buffers(self) -> None:
        """Drop all buffered input and queued output."""
        self._ibuf = b""
        self._ipos = 0
        self._gen += 1
        self.incoming.clear()
        for item in self._ofifo:
            if isinstance(item, file_producer):
                item.done()
        self._ofifo = _NO_FIFO
        self._out_bytes = 0

    def handle_write(self) -> None:
        """The socket can take more: send."""
        self.initiate_send()

    def handle_close(self) -> None:
        """The peer closed or a close was queued: close the channel."""
        self.close()

    # ------------------------------------------------------------------ reactor glue

    def add_channel(self, map: dict[int, Any] | None = None) -> None:  # noqa: A002
        """Enter the channel map; in a reactor's map, also register interest."""
        super().add_channel(map)
        self._update_interest()

    def set_socket(self, sock: socket.socket, map: dict[int, Any] | None = None) -> None:  # noqa: A002
        """Adopt *sock* (a channel may be given a new socket after a close, to reconnect)."""
        self._ac_closed = False
        self._gen += 1
        super().set_socket(sock, map)

    def listen(self, num: int) -> None:
        """Start accepting connections (then only read readiness is watched)."""
        super().listen(num)
        self._update_interest()

    def _reactor_attach(self, reactor: Reactor) -> None:
        """Called by the reactor when this channel enters its map."""
        self._reactor = reactor
        self._events = 0
        if self._idle_timer is not None:  # entering the map again: one timer only
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.idle_timeout:
            self._last_input = reactor.time()
            self._idle_timer = reactor.call_later(self.idle_timeout, self._check_idle)

    def _reactor_detach(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None
        if self._soft_timer is not None:
            self._soft_timer.cancel()
            self._soft_timer = None
        self._reactor = None
        self._events = 0

    def _wanted_events(self) -> int:
        if self.accepting:
            return READ
        events = 0 if self._pause_reasons else READ
        if (self._ofifo and not self._output_held) or not self.connected:
            events |= WRITE
        if self._layered:
            transport: Any = self.socket
            if transport.wants_write:
                events |= WRITE
            elif transport.write_blocked:
                # A handshake waits for the peer: writability would only spin.
                events = (events & ~WRITE) | READ
        return events

    def _update_interest(self) -> None:
        reactor = self._reactor
        if reactor is None:
            return
        events = self._wanted_events()
        if events != self._events:
            self._events = events
            reactor.set_interest(self, events)

    def _check_idle(self) -> None:
        reactor = self._reactor
        if reactor is None or self.idle_timeout is None:
            return
        # Activity only stamps a time; the timer re-arms itself from the
        # stamp, so busy channels cost no heap operations per read.
        due = self._last_input + self.idle_timeout
        now = reactor.time()
        if now >= due:
            self._idle_timer = None
            self.handle_idle_timeout()
        else:
            self._idle_timer = reactor.call_later(due - now, self._check_idle)

    def handle_idle_timeout(self) -> None:
        """Called when no input arrived for ``idle_timeout`` seconds; the default closes."""
        self.logger.info("idle_timeout", timeout=self.idle_timeout)
        self.close()

    def handle_shutdown(self) -> None:
        """Called when the reactor stops gracefully; the default flushes, then closes."""
        self.close_when_done()

    def close(self) -> None:
        """Close the socket and leave the channel map (idempotent)."""
        if self._big:
            self.memory_freed()  # before leaving the reactor
        self._ac_closed = True
        self._gen += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None
        if self._soft_timer is not None:
            self._soft_timer.cancel()
            self._soft_timer = None
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        for item in self._ofifo:
            if isinstance(item, file_producer):
                item.done()
        super().close()

    # ------------------------------------------------------------------ errors and logs

    def handle_error(self) -> None:
        """Log the exception being handled with its traceback, then close this channel only."""
        self.logger.exception("channel_error")
        self.close()

    def log_info(self, message: str, type: str = "info") -> None:  # noqa: A002 - asyncore's name
        """Route asyncore's own messages to structlog instead of stdout."""
        level = type if type in ("debug", "info", "warning", "error") else "info"
        getattr(self.logger, level)(message)


# --------------------------------------------------------------------------- standing in for the stdlib module


def install(*, replace: bool = False) -> object:
    """Make ``import asynchat`` give this module, for code written for the standard library's; return it.

    Call it before anything imports ``asynchat``.  If another ``asynchat``
    (the standard library's on 3.11, ``pyasynchat``'s) was imported already,
    this raises ``RuntimeError`` unless *replace* is true, since code holding
    the other module would keep it.  ``import asyncore`` already gives the
    module this one runs on (the standard library's on 3.11, ``pyasyncore``'s
    on 3.12 and later).
    """
    me = sys.modules[__name__]
    current = sys.modules.get("asynchat")
    if current is not None and current is not me and not replace:
        where = getattr(current, "__file__", None) or repr(current)
        raise RuntimeError(f"asynchat was already imported from {where}: call install() before anything imports it")
    sys.modules["asynchat"] = me
    return me


_USAGE = """usage: python -m linechat.asynchat run -m MODULE [ARG ...]
       python -m linechat.asynchat run SCRIPT [ARG ...]

Run a program written for the standard library's asynchat with linechat's
module standing in for it: `import asynchat` anywhere in the program (and in
the packages it uses) gives linechat.asynchat.  The arguments are passed on
as python would pass them.
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m linechat.asynchat run ...``: install, then run a module or script as ``__main__``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] != "run" or (args[1] == "-m" and len(args) < 3):
        sys.stderr.write(_USAGE)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    import runpy

    install()
    if args[1] == "-m":
        module = args[2]
        sys.argv = [module, *args[3:]]  # runpy puts the module's path in argv[0]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = args[1]
        sys.argv = args[1:]
        # As `python script.py` does: the script's folder comes first on the path.
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    # Run as a script, this file is __main__: install the imported module, not this copy.
    from linechat.asynchat import main as _main

    sys.exit(_main())
