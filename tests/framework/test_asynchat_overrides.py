"""Subclasses that hook ``send()``/``recv()`` or wrap their socket see every byte, as with the standard library.

Real asynchat code counts bytes, throttles bandwidth and speaks TLS by
overriding ``send``/``recv`` (pyftpdlib does all three) or by replacing
``self.socket`` with an ``ssl.SSLSocket``.  Each test runs a server channel
under ``asyncore.loop`` on a loopback TCP socket against a blocking client in
a thread, and checks byte for byte what both sides saw.  Loops are bounded by
turns; the client's socket timeouts are only a safety net.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from linechat import asynchat
from linechat._compat import asyncore
from linechat.asynchat import async_chat, file_producer, simple_producer

MAX_TURNS = 20_000
TIMEOUT = 30.0

# What the client sends: lines, 105,006 bytes in all (the size in the report
# that found the drop-in bypassing send()).
LINES = [b"%05d " % i + b"x" * 92 + b"\r\n" for i in range(1050)] + [b"y" * 4 + b"\r\n"]
UPLOAD = b"".join(LINES)
assert len(UPLOAD) == 105_006


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def no_sendfile(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record any os.sendfile the drop-in makes (it must make none here)."""
    calls: list[int] = []
    real = os.sendfile

    def recording(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(asynchat.os, "sendfile", recording)
    return calls


def download_parts(tmp_path: Path) -> tuple[list[Any], bytes]:
    """What the server pushes after the upload: every kind of queue item, 400 KB or so."""
    blob = os.urandom(150_000)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    pieces: list[Any] = [
        b"hello\r\n",
        os.urandom(40_000),  # big enough for sendmsg when queued with others
        memoryview(os.urandom(30_000)),
        bytearray(os.urandom(20_000)),
        simple_producer(os.urandom(50_000), buffer_size=7_000),
        ("file", path),
        os.urandom(100_000),
        b"bye\r\n",
    ]
    whole = b"".join(
        blob if isinstance(p, tuple) else bytes(p.data if isinstance(p, simple_producer) else p) for p in pieces
    )
    return pieces, whole


class Server(async_chat):
    """Collects the client's lines; on the last one, queues the download in one go."""

    def __init__(self, sock: socket.socket, map: dict[int, Any], download: list[Any]) -> None:  # noqa: A002
        super().__init__(sock, map)
        self.set_terminator(b"\r\n")
        self.download = download
        self.lines: list[bytes] = []
        self._line: list[bytes] = []

    def collect_incoming_data(self, data: bytes) -> None:
        self._line.append(bytes(data))

    def found_terminator(self) -> None:
        self.lines.append(b"".join(self._line) + b"\r\n")
        self._line.clear()
        if len(self.lines) == len(LINES):
            for piece in self.download:
                if isinstance(piece, tuple):
                    self.push_with_producer(file_producer(open(piece[1], "rb")))  # noqa: SIM115 - closed by the producer
                elif isinstance(piece, simple_producer):
                    self.push_with_producer(piece)
                else:
                    self.push(piece)
            self.close_when_done()

    def handle_error(self) -> None:
        raise  # surface the failure in the test


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener


def run(
    make_server: Callable[[socket.socket, dict[int, Any]], Server],
    client_wrap: Callable[[socket.socket], socket.socket] | None = None,
    expected: int = 0,
) -> tuple[Server, bytes]:
    """Serve one client that uploads LINES and reads until the server closes; return (server, received)."""
    listener = _listener()
    received = bytearray()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            sock = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
            if client_wrap is not None:
                sock = client_wrap(sock)
            with sock:
                sock.sendall(UPLOAD)
                while chunk := sock.recv(65536):
                    received.extend(chunk)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    conn, _ = listener.accept()
    listener.close()
    conn.setblocking(False)
    chan_map: dict[int, Any] = {}
    server = make_server(conn, chan_map)
    for _ in range(MAX_TURNS):
        if not chan_map:
            break
        asyncore.loop(timeout=0.05, map=chan_map, count=1)
    thread.join(TIMEOUT)
    assert not chan_map, "the server did not finish"
    assert not errors, errors
    assert not thread.is_alive()
    return server, bytes(received)


def check(server: Server, received: bytes, whole: bytes) -> None:
    assert b"".join(server.lines) == UPLOAD
    assert len(received) == len(whole)
    assert hashlib.sha256(received).digest() == hashlib.sha256(whole).digest()


# --------------------------------------------------------------------------- counting


class Counting(Server):
    """Counts every byte through send() and recv(), as accounting code does."""

    def __init__(self, *args: Any) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.send_sizes: list[int] = []
        super().__init__(*args)

    def send(self, data: Any) -> int:
        self.send_sizes.append(len(data))
        sent = super().send(data)
        self.bytes_out += sent
        return sent

    def recv(self, buffer_size: int) -> bytes:
        data = super().recv(buffer_size)
        self.bytes_in += len(data)
        return data


def test_counting_subclass_sees_every_byte(tmp_path: Path, no_sendfile: list[int]) -> None:
    download, whole = download_parts(tmp_path)
    server, received = run(lambda sock, m: Counting(sock, m, download))
    check(server, received, whole)
    assert isinstance(server, Counting)
    assert server.bytes_in == len(UPLOAD)
    assert server.bytes_out == len(whole)
    assert max(server.send_sizes) <= server.ac_out_buffer_size  # as the standard library sliced it
    assert no_sendfile == []  # a file producer goes through send() too


def test_the_choice_is_made_per_class() -> None:
    assert async_chat._class_plain_send and async_chat._class_plain_recv
    assert not Counting._class_plain_send and not Counting._class_plain_recv
    assert Server._class_plain_send and Server._class_plain_recv

    class OnlyRecv(Server):
        def recv(self, buffer_size: int) -> bytes:
            return super().recv(buffer_size)

    class OwnInitiateSend(Server):
        def initiate_send(self) -> None:
            super().initiate_send()

    assert OnlyRecv._class_plain_send and not OnlyRecv._class_plain_recv
    assert not OwnInitiateSend._class_plain_send and OwnInitiateSend._class_plain_recv


# --------------------------------------------------------------------------- throttling


class Throttled(Server):
    """Bandwidth limits as throttling handlers do: small pieces, and now and then nothing at all."""

    def __init__(self, *args: Any) -> None:
        self.calls = 0
        self.bytes_in = 0
        self.bytes_out = 0
        super().__init__(*args)

    def send(self, data: Any) -> int:
        self.calls += 1
        if self.calls % 3 == 0:
            return 0  # over budget this time: the rest waits for the next write event
        sent = super().send(data[:997])
        self.bytes_out += sent
        return sent

    def recv(self, buffer_size: int) -> bytes:
        data = super().recv(min(buffer_size, 333))
        self.bytes_in += len(data)
        return data


def test_throttling_subclass_sees_every_byte_in_order(tmp_path: Path) -> None:
    download, whole = download_parts(tmp_path)
    server, received = run(lambda sock, m: Throttled(sock, m, download))
    check(server, received, whole)
    assert isinstance(server, Throttled)
    assert server.bytes_in == len(UPLOAD)
    assert server.bytes_out == len(whole)


# --------------------------------------------------------------------------- TLS


class TlsBySendRecv(Server):
    """TLS the way pyftpdlib does it: wrap the socket, handle the handshake and SSL errors in send()/recv()."""

    def __init__(self, sock: socket.socket, map: dict[int, Any], download: list[Any], context: ssl.SSLContext) -> None:  # noqa: A002
        wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.handshaken = False
        self.bytes_in = 0
        self.bytes_out = 0
        super().__init__(wrapped, map, download)  # type: ignore[arg-type]

    def _handshake(self) -> None:
        try:
            self.socket.do_handshake()  # type: ignore[union-attr]
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        self.handshaken = True

    def handle_read_event(self) -> None:
        if not self.handshaken:
            self._handshake()
        else:
            super().handle_read_event()

    def handle_write_event(self) -> None:
        if not self.handshaken:
            self._handshake()
        else:
            super().handle_write_event()

    def send(self, data: Any) -> int:
        try:
            sent = super().send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0
        self.bytes_out += sent
        return sent

    def recv(self, buffer_size: int) -> bytes:
        try:
            data = super().recv(buffer_size)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return b""
        self.bytes_in += len(data)
        return data


class TlsSocketOnly(Server):
    """TLS by replacing the socket only: send()/recv() are not overridden, the drop-in meets the SSLSocket."""

    def __init__(self, sock: socket.socket, map: dict[int, Any], download: list[Any], context: ssl.SSLContext) -> None:  # noqa: A002
        self.handshaken = False
        super().__init__(sock, map, download)
        self.socket = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    def writable(self) -> bool:
        return not self.handshaken or super().writable()

    def handle_read_event(self) -> None:
        if self.handshaken:
            super().handle_read_event()
            return
        try:
            self.socket.do_handshake()  # type: ignore[union-attr]
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        self.handshaken = True

    def handle_write_event(self) -> None:
        if self.handshaken:
            super().handle_write_event()
        else:
            self.handle_read_event()


@pytest.mark.parametrize("server_cls", [TlsBySendRecv, TlsSocketOnly])
def test_tls_subclass_sees_every_byte(
    server_cls: type[Server],
    tmp_path: Path,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    no_sendfile: list[int],
) -> None:
    download, whole = download_parts(tmp_path)
    server, received = run(
        lambda sock, m: server_cls(sock, m, download, server_context),  # type: ignore[call-arg]
        lambda sock: client_context.wrap_socket(sock, server_hostname="localhost"),
    )
    check(server, received, whole)
    assert no_sendfile == []  # os.sendfile would have put plaintext on a TLS connection
    if isinstance(server, TlsBySendRecv):
        assert server.bytes_in == len(UPLOAD)
        assert server.bytes_out == len(whole)


# --------------------------------------------------------------------------- "not now" errors


class WantReadError(Exception):
    """Named as pyOpenSSL's, which is not an OSError: recognised by name."""


class SometimesNotNow(Server):
    """recv()/send() that now and then say "not now", the way ssl and pyOpenSSL do."""

    def __init__(self, *args: Any) -> None:
        self.recv_calls = 0
        self.send_calls = 0
        self.raised: list[str] = []
        super().__init__(*args)

    def recv(self, buffer_size: int) -> bytes:
        self.recv_calls += 1
        if self.recv_calls == 1:
            self.raised.append("WantReadError")
            raise WantReadError()
        if self.recv_calls == 3:
            self.raised.append("SSLWantReadError")
            raise ssl.SSLWantReadError()
        return super().recv(buffer_size)

    def send(self, data: Any) -> int:
        self.send_calls += 1
        if self.send_calls in (1, 4):
            self.raised.append("SSLWantWriteError")
            raise ssl.SSLWantWriteError()
        return super().send(data)


def test_want_read_and_write_are_not_fatal(tmp_path: Path) -> None:
    download, whole = download_parts(tmp_path)
    server, received = run(lambda sock, m: SometimesNotNow(sock, m, download))
    check(server, received, whole)
    assert isinstance(server, SometimesNotNow)
    assert server.raised == ["WantReadError", "SSLWantReadError", "SSLWantWriteError", "SSLWantWriteError"]


# --------------------------------------------------------------------------- sockets without sendmsg


class NoScatterGather:
    """A socket wrapper without sendmsg (as an SSLSocket refuses it)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent = 0

    def sendmsg(self, buffers: Any) -> int:
        raise NotImplementedError("sendmsg not allowed here")

    def send(self, data: Any) -> int:
        sent = self._sock.send(data)
        self.sent += sent
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.fixture
def wrapped_server(tmp_path: Path) -> Iterator[tuple[list[Any], bytes]]:
    yield download_parts(tmp_path)


def test_wrapper_without_sendmsg_falls_back(wrapped_server: tuple[list[Any], bytes], no_sendfile: list[int]) -> None:
    download, whole = wrapped_server
    wrappers: list[NoScatterGather] = []

    def make(sock: socket.socket, chan_map: dict[int, Any]) -> Server:
        server = Server(sock, chan_map, download)
        wrapper = NoScatterGather(sock)
        wrappers.append(wrapper)
        server.socket = wrapper  # type: ignore[assignment]
        return server

    server, received = run(make)
    check(server, received, whole)
    assert wrappers[0].sent == len(whole)
    assert no_sendfile == []  # not a socket: its file producer went through more()
