"""linechat.transport: plain, memory and TLS transports, and the development CA."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
from linechat.tls import TlsContextProvider, TlsSettings, make_dev_certificates
from linechat.transport import MemoryTransport, SocketTransport, TlsTransport


@pytest.fixture(scope="module")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsContextProvider:
    """A provider using a development CA made once for this module."""
    return TlsContextProvider(TlsSettings(), tmp_path_factory.mktemp("data"))


def client_context(provider: TlsContextProvider) -> ssl.SSLContext:
    provider.context  # noqa: B018 - makes the CA
    assert provider.ca_file is not None
    return ssl.create_default_context(cafile=str(provider.ca_file))


def pump(a: MemoryTransport, b: MemoryTransport) -> None:
    """Move bytes both ways between two memory transports (a's output is b's input)."""
    b.feed(a.take())
    a.feed(b.take())


def test_memory_transport_roundtrip_and_eof() -> None:
    t = MemoryTransport()
    with pytest.raises(BlockingIOError):
        t.recv(10)
    t.feed(b"hello world")
    assert t.recv(5) == b"hello"
    assert t.recv(100) == b" world"
    assert t.send(b"reply") == 5
    assert t.take() == b"reply"
    t.feed_eof()
    assert t.recv(10) == b""


def test_memory_transport_capacity_is_backpressure() -> None:
    t = MemoryTransport(send_capacity=4)
    assert t.send(b"abcdef") == 4
    assert t.send(b"gh") == 0
    assert t.take() == b"abcd"
    assert t.send(b"gh") == 2


def test_dev_certificates_made_once_and_valid_for_localhost(tmp_path: Path) -> None:
    first = make_dev_certificates(tmp_path / "tls")
    stamp = first.cert.stat().st_mtime_ns
    again = make_dev_certificates(tmp_path / "tls")
    assert again.cert.stat().st_mtime_ns == stamp  # reused, not regenerated
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"
    assert oct(first.ca_key.stat().st_mode & 0o777) == "0o600"
    assert first.ca_cert.stat().st_mode & 0o044  # others can read the CA to trust it
    ctx = ssl.create_default_context(cafile=str(first.ca_cert))
    ctx.load_verify_locations(cafile=str(first.ca_cert))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(first.cert, first.key)
    for name in ("localhost", "127.0.0.1", "::1"):
        _handshake_in_memory(server, ctx, name)


def _handshake_in_memory(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str) -> None:
    s_raw, c_raw = MemoryTransport(), MemoryTransport()
    server = TlsTransport(s_raw, server_ctx)
    client = TlsTransport(c_raw, client_ctx, server_side=False, server_hostname=name)
    for _ in range(10):
        client.send(b"")
        with contextlib.suppress(BlockingIOError):
            server.recv(100)
        pump(c_raw, s_raw)
        with contextlib.suppress(BlockingIOError):
            client.recv(100)
        pump(c_raw, s_raw)
        if server.handshake_done and client.handshake_done:
            return
    raise AssertionError(f"handshake for {name} did not complete")


def test_tls_over_memory_both_ways(dev_ca: TlsContextProvider) -> None:
    s_raw, c_raw = MemoryTransport(), MemoryTransport()
    server = TlsTransport(s_raw, dev_ca.context)
    client = TlsTransport(c_raw, client_context(dev_ca), server_side=False, server_hostname="localhost")
    # Before the handshake nothing can be sent; the server waits for the peer.
    assert client.send(b"early") == 0
    pump(c_raw, s_raw)
    with pytest.raises(BlockingIOError):
        server.recv(100)
    # The server answered the hello; a send now must wait for the client.
    assert server.send(b"greeting") == 0
    assert server.write_blocked and not server.wants_write
    for _ in range(5):
        pump(c_raw, s_raw)
        for side in (client, server):
            with contextlib.suppress(BlockingIOError):
                side.recv(100)
    assert server.handshake_done and client.handshake_done
    assert client.send(b"ping\r\n") == 6
    pump(c_raw, s_raw)
    assert server.recv(100) == b"ping\r\n"
    payload = os.urandom(300_000)
    sent = 0
    received = bytearray()
    while len(received) < len(payload):
        if sent < len(payload):
            sent += server.send(payload[sent:])
        pump(c_raw, s_raw)
        with contextlib.suppress(BlockingIOError):
            received += client.recv(1 << 16)
    assert bytes(received) == payload
    # close_notify reads as the end of the stream on the other side.
    client.shutdown()
    pump(c_raw, s_raw)
    assert server.recv(100) == b""


def test_tls_garbage_is_an_ssl_error(dev_ca: TlsContextProvider) -> None:
    raw = MemoryTransport()
    server = TlsTransport(raw, dev_ca.context)
    raw.feed(b"EHLO plaintext.example\r\n")
    with pytest.raises(ssl.SSLError):
        server.recv(100)


def test_tls_transport_on_a_real_socket_with_stdlib_client(dev_ca: TlsContextProvider) -> None:
    """A blocking ssl-module client on a thread talks to a TlsTransport on a non-blocking socket."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    transport = TlsTransport(SocketTransport(ours), dev_ca.context)
    ctx = client_context(dev_ca)
    got: list[bytes] = []

    def client() -> None:
        with ctx.wrap_socket(theirs, server_hostname="localhost") as tls:
            tls.sendall(b"hello over tls\n")
            got.append(tls.recv(100))

    thread = threading.Thread(target=client)
    thread.start()
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(ours, selectors.EVENT_READ)
    data = b""
    while b"\n" not in data:
        sel.select(timeout=10)
        try:
            data += transport.recv(4096)
        except BlockingIOError:
            continue
    assert data == b"hello over tls\n"
    while transport.send(b"answer\n") == 0:
        sel.select(timeout=10)
        with contextlib.suppress(BlockingIOError):
            transport.recv(4096)
    thread.join(timeout=10)
    assert got == [b"answer\n"]
    assert transport.tls_version() in ("TLSv1.2", "TLSv1.3")
    ours.close()


def test_sendfile_fallback_sends_file_bytes_through_tls(dev_ca: TlsContextProvider) -> None:
    s_raw, c_raw = MemoryTransport(), MemoryTransport()
    server = TlsTransport(s_raw, dev_ca.context)
    client = TlsTransport(c_raw, client_context(dev_ca), server_side=False, server_hostname="localhost")
    for _ in range(5):
        client.send(b"")
        pump(c_raw, s_raw)
        for side in (client, server):
            with contextlib.suppress(BlockingIOError):
                side.recv(100)
    assert not server.can_sendfile
    body = os.urandom(100_000)
    with tempfile.TemporaryFile() as f:
        f.write(body)
        f.flush()
        offset = 0
        out = bytearray()
        while offset < len(body):
            offset += server.sendfile(f, offset, len(body) - offset)
            pump(c_raw, s_raw)
            with contextlib.suppress(BlockingIOError):
                out += client.recv(1 << 16)
        while len(out) < len(body):
            pump(c_raw, s_raw)
            out += client.recv(1 << 16)
    assert bytes(out) == body


def test_provider_reload_keeps_old_context_on_bad_files(tmp_path: Path) -> None:
    dev = make_dev_certificates(tmp_path / "tls")
    provider = TlsContextProvider(TlsSettings(cert_file=dev.cert, key_file=dev.key), tmp_path)
    first = provider.context
    dev.cert.write_text("not a certificate")
    assert provider.reload() is False
    assert provider.context is first
    make_dev_certificates(tmp_path / "tls2")
    second = tmp_path / "tls2"
    provider.settings = TlsSettings(cert_file=second / "server.pem", key_file=second / "server-key.pem")
    assert provider.reload() is True
    assert provider.context is not first


def test_settings_refuse_client_certs_without_ca() -> None:
    with pytest.raises(ValueError, match="ca_file"):
        TlsSettings(client_certs="required")
