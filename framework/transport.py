"""Transports: what a channel's bytes pass through beneath it when they are not plain socket I/O.

A transport is non-blocking and speaks in plaintext: ``recv`` returns what
the peer sent (``b""`` at end of stream) or raises :class:`BlockingIOError`
when there is nothing yet; ``send`` and ``sendmsg`` return how many
plaintext bytes they took (0 when they can take nothing now); ``sendfile``
does the same for a file.  Three kinds exist:

- :class:`SocketTransport`: a connected non-blocking socket; the fast case,
  with ``sendmsg`` and ``os.sendfile``.
- :class:`MemoryTransport`: two in-memory byte queues, for tests that drive a
  protocol without any socket.
- :class:`TlsTransport`: TLS over any other transport, on
  :class:`ssl.SSLObject` and two :class:`ssl.MemoryBIO` buffers.  Keeping the
  TLS state machine off the socket means it layers on the memory transport
  as well as on a socket, a handshake never blocks, "want read" and "want
  write" are ordinary return values, and on STARTTLS we decide exactly which
  received bytes the TLS layer sees (plaintext pipelined after the command is
  dropped, never decrypted as if it had been protected).

A transport also tells its owner what it is waiting for: ``wants_write``
(ciphertext is queued although the owner has nothing to send) and
``write_blocked`` (a send must wait for the peer, as during a handshake), so
the reactor's interest follows the transport and not just the owner's queue.

A channel on a plain socket calls the socket itself (the fast paths:
``sendmsg``, ``os.sendfile``); after ``wrap_tls()`` or ``start_tls()`` its
socket attribute holds a :class:`TlsTransport`, which offers the socket's
``recv``/``send``/``sendmsg``/``fileno``/``close`` with the meanings above,
so every code path of the channel works through it unchanged.

This module imports nothing beyond the standard library (``ssl`` only when
TLS is used): the asynchat drop-in uses it and must stay cheap to import.
"""

from __future__ import annotations

import errno
import os
import socket
from collections import deque

# typing.TYPE_CHECKING without importing typing, and ssl only when TLS is
# used: the asynchat drop-in imports this module and must stay cheap.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence
    from typing import IO, Any

__all__ = ["MemoryTransport", "SocketTransport", "TlsTransport", "Transport"]

_Buffer = bytes | bytearray | memoryview

# Largest piece of a file read for a transport that cannot use sendfile.
_FILE_CHUNK = 256 * 1024
# Largest plaintext handed to one SSLObject.write: a few TLS records.
_TLS_WRITE = 64 * 1024
# Ciphertext read from the raw transport per recv.
_TLS_READ = 64 * 1024


class Transport:
    """The interface every transport offers (documented behaviour, no I/O of its own)."""

    #: True when :meth:`sendfile` can hand a file to the kernel directly.
    can_sendfile = False
    #: True when :meth:`sendmsg` sends several buffers in one call.
    can_sendmsg = False

    def fileno(self) -> int:
        """The descriptor the reactor watches, or -1 when there is none."""
        return -1

    def recv(self, size: int) -> bytes:
        """Up to about *size* bytes of plaintext; ``b""`` at end of stream; BlockingIOError if none yet."""
        raise NotImplementedError

    def send(self, data: _Buffer) -> int:
        """Take a prefix of *data*; return its length (0, or BlockingIOError: nothing can be taken now)."""
        raise NotImplementedError

    def sendmsg(self, buffers: Sequence[_Buffer]) -> int:
        """Take a prefix of the concatenation of *buffers*; return its length."""
        if len(buffers) == 1:
            return self.send(buffers[0])
        return self.send(b"".join(buffers))

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """Send up to *count* bytes of *file* from *offset*; 0 at its end; BlockingIOError when full."""
        data = os.pread(file.fileno(), min(count, _FILE_CHUNK), offset)
        if not data:
            return 0
        sent = self.send(data)
        if not sent:
            raise BlockingIOError(errno.EAGAIN, "transport full")
        return sent

    @property
    def wants_write(self) -> bool:
        """True when the transport itself has bytes to flush (the owner should ask for writability)."""
        return False

    @property
    def write_blocked(self) -> bool:
        """True when sending must wait for input from the peer (a TLS handshake in progress)."""
        return False

    def flush(self) -> None:
        """Push bytes the transport holds towards the peer, as far as possible now."""

    def shutdown(self) -> None:
        """Say goodbye (TLS close_notify, then a write shutdown); errors are ignored."""

    def close(self) -> None:
        """Release what the transport holds (the owner closes the socket itself)."""

    def peer_certificate(self) -> dict[str, Any] | None:
        """The peer's verified certificate (as :meth:`ssl.SSLObject.getpeercert`), or None."""
        return None

    @property
    def secure(self) -> bool:
        """True when bytes travel encrypted."""
        return False


class SocketTransport(Transport):
    """A connected non-blocking socket: the fast path, with sendmsg and sendfile.

    ``recv``, ``send`` and ``sendmsg`` are the socket's own bound methods, so
    the fast path costs no extra call; ``send`` and ``sendmsg`` raise
    BlockingIOError when the kernel buffer is full, as the socket does.
    """

    can_sendmsg = True
    can_sendfile = True

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recv = sock.recv  # type: ignore[method-assign,assignment]
        self.send = sock.send  # type: ignore[method-assign,assignment]
        self.sendmsg = sock.sendmsg  # type: ignore[method-assign,assignment]

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """``os.sendfile``: the kernel copies the file, not us."""
        return os.sendfile(self.sock.fileno(), file.fileno(), offset, count)

    def shutdown(self) -> None:
        """Half-close the write side."""
        try:  # noqa: SIM105
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __getattr__(self, name: str) -> Any:
        # Whatever else a channel asks of its socket (getpeername, setsockopt).
        if name == "sock":
            raise AttributeError(name)
        return getattr(self.sock, name)


class MemoryTransport(Transport):
    """Two in-memory byte queues: what the peer sent (``feed``) and what we sent (``take``)."""

    def __init__(self, send_capacity: int | None = None) -> None:
        self._inbox: deque[bytes] = deque()
        self._eof = False
        self._outbox = bytearray()
        #: Most bytes ``send`` takes before the peer reads (None: unbounded).
        self.send_capacity = send_capacity
        self.closed = False
        self.shut_down = False

    # -- the peer's side

    def feed(self, data: bytes) -> None:
        """Make *data* arrive from the peer."""
        if data:
            self._inbox.append(bytes(data))

    def feed_eof(self) -> None:
        """The peer closed its side."""
        self._eof = True

    def take(self) -> bytes:
        """Everything sent so far and not yet taken."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    @property
    def pending_input(self) -> bool:
        """True when fed bytes (or an end of stream) wait to be received."""
        return bool(self._inbox) or self._eof

    # -- the owner's side

    def recv(self, size: int) -> bytes:
        """Fed bytes, at most *size*; ``b""`` after ``feed_eof``."""
        if self.closed:
            raise OSError(errno.EBADF, "transport closed")
        if not self._inbox:
            if self._eof:
                return b""
            raise BlockingIOError(errno.EAGAIN, "no input")
        data = self._inbox.popleft()
        if len(data) > size:
            self._inbox.appendleft(data[size:])
            data = data[:size]
        return data

    def send(self, data: _Buffer) -> int:
        """Append to the outbox, up to ``send_capacity``."""
        if self.closed or self.shut_down:
            raise BrokenPipeError(errno.EPIPE, "transport closed")
        size = len(data)
        if self.send_capacity is not None:
            size = min(size, max(0, self.send_capacity - len(self._outbox)))
        self._outbox += memoryview(data)[:size]
        return size

    def shutdown(self) -> None:
        """Remember that we said goodbye."""
        self.shut_down = True

    def close(self) -> None:
        """Refuse further I/O."""
        self.closed = True


class TlsTransport(Transport):
    """TLS over another transport, on an SSLObject between two memory BIOs."""

    def __init__(
        self,
        raw: Transport,
        context: ssl.SSLContext,
        *,
        server_side: bool = True,
        server_hostname: str | None = None,
    ) -> None:
        global ssl  # imported on first use, for the module's other functions too
        import ssl

        self.raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=server_hostname)
        self._pending = b""  # ciphertext the raw transport has not taken yet
        self._handshaken = False
        self._want_read_to_write = False
        self._raw_eof = False
        self._closed_notify = False

    @property
    def handshake_done(self) -> bool:
        """True once the handshake has completed."""
        return self._handshaken

    @property
    def secure(self) -> bool:
        """Always True: bytes travel encrypted."""
        return True

    def fileno(self) -> int:
        """The raw transport's descriptor."""
        return self.raw.fileno()

    def peer_certificate(self) -> dict[str, Any] | None:
        """The peer's certificate, once the handshake is done and if one was verified."""
        if not self._handshaken:
            return None
        return self._obj.getpeercert() or None

    def tls_version(self) -> str | None:
        """The negotiated protocol version (``TLSv1.3``...)."""
        return self._obj.version()

    def cipher(self) -> tuple[str, str, int] | None:
        """The negotiated cipher suite."""
        return self._obj.cipher()

    # -- ciphertext plumbing

    @property
    def wants_write(self) -> bool:
        """True while ciphertext waits for the raw transport."""
        return bool(self._pending) or self._out.pending > 0

    @property
    def write_blocked(self) -> bool:
        """True while a handshake waits for the peer: writability would not help."""
        return self._want_read_to_write and not self.wants_write

    def flush(self) -> None:
        """Hand queued ciphertext to the raw transport."""
        out = self._out
        if not self._pending:
            # The usual case: what one write produced goes out in one send.
            if not out.pending:
                return
            data = out.read()
            try:
                sent = self.raw.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                self._pending = data[sent:]
            return
        if out.pending:
            self._pending += out.read()
        while self._pending:
            try:
                sent = self.raw.send(self._pending)
            except BlockingIOError:
                return
            if not sent:
                return
            self._pending = self._pending[sent:]

    def _pull(self) -> bool:
        """Read ciphertext from the raw transport into the TLS layer; False when none came."""
        try:
            data = self.raw.recv(_TLS_READ)
        except BlockingIOError:
            return False
        if data:
            self._in.write(data)
        else:
            self._raw_eof = True
            self._in.write_eof()
        return True

    def _handshake(self) -> bool:
        """Advance the handshake; True once it is done."""
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._want_read_to_write = True
            self.flush()
            return False
        self._handshaken = True
        self._want_read_to_write = False
        self.flush()
        return True

    # -- plaintext interface

    def recv(self, size: int) -> bytes:
        """Decrypt what has arrived: all complete records of one raw read (never leaves plaintext behind)."""
        got_raw = self._pull()
        if not self._handshaken and not self._handshake():
            if self._raw_eof:
                raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "peer closed during the TLS handshake")
            raise BlockingIOError(errno.EAGAIN, "TLS handshake in progress")
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._obj.read(_TLS_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLEOFError:
                chunk = b""  # a peer that drops TCP without close_notify: end of stream too
            if not chunk:
                # close_notify (read returns nothing) or a dropped stream.
                self._closed_notify = True
                self.flush()
                if chunks:
                    break
                return b""
            chunks.append(chunk)
            if not self._in.pending and not self._obj.pending():
                break  # nothing left to decrypt: spare the read that would only say "want read"
        # Reading may have produced ciphertext (key updates, session tickets).
        self.flush()
        if chunks:
            return b"".join(chunks)
        if self._raw_eof:
            return b""
        if not got_raw:
            raise BlockingIOError(errno.EAGAIN, "no input")
        raise BlockingIOError(errno.EAGAIN, "incomplete TLS record")

    def send(self, data: _Buffer) -> int:
        """Encrypt a prefix of *data*; 0 while the handshake or the raw transport holds things up."""
        if not self._handshaken and not self._handshake():
            return 0
        self.flush()
        if self._pending:
            return 0  # earlier ciphertext first: that is our backpressure
        try:
            written = self._obj.write(data if len(data) <= _TLS_WRITE else memoryview(data)[:_TLS_WRITE])
        except ssl.SSLWantReadError:
            self._want_read_to_write = True
            self.flush()
            return 0
        self.flush()
        return written

    def sendmsg(self, buffers: Sequence[_Buffer]) -> int:
        """Join small buffers into one TLS write (records are framed by the TLS layer anyway)."""
        total = 0
        for buf in buffers:
            sent = self.send(buf)
            total += sent
            if sent < len(buf):
                break
        return total

    def shutdown(self) -> None:
        """Send close_notify (best effort), then half-close the raw transport."""
        if self._handshaken:
            try:  # noqa: SIM105 - contextlib is not worth importing here
                self._obj.unwrap()
            except (ssl.SSLError, OSError):
                pass
            try:  # noqa: SIM105
                self.flush()
            except OSError:
                pass
        self.raw.shutdown()

    def close(self) -> None:
        """Close the raw transport."""
        self.raw.close()

    def pending(self) -> int:
        """Decrypted bytes held back: none, as :meth:`recv` hands out all it decrypts."""
        return 0

    def __getattr__(self, name: str) -> Any:
        # A channel may ask the socket beneath (getpeername, setsockopt).
        if name == "raw":
            raise AttributeError(name)
        return getattr(self.raw, name)
