"""TLS on service channels over loopback: implicit TLS, STARTTLS, and hostile peers."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from linechat import Protocol, Service, ServiceSettings, command
from linechat.testing import LineClient, RunningServer, free_port, serve


class CounterProtocol(Protocol):
    """A tiny line protocol: a greeting, a counter, and STARTTLS."""

    def on_connect(self) -> str:
        return "+ hello"

    @command("PING")
    def ping(self) -> str:
        return "+PONG"

    @command("INCR")
    def incr(self) -> str:
        self.service.count += 1  # type: ignore[attr-defined]
        return f":{self.service.count}"  # type: ignore[attr-defined]

    @command("SECURE")
    def secure_command(self) -> str:
        return f"+{'yes' if self.secure else 'no'}"

    @command("STARTTLS")
    def starttls(self) -> str:
        if self.secure:
            return "- already secure"
        self.start_tls()
        return "+ go ahead"

    def error(self, message: str) -> str:
        return f"- {message}"


class CounterService(Service):
    name = "counter"
    Settings = ServiceSettings
    protocol = CounterProtocol
    starttls = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = 0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    # The default handshake timeout (10 s): the clients here complete theirs, however busy the machine.
    settings = {"services": {"counter": {"tls_port": free_port()}}}
    with serve(CounterService, data_dir=tmp_path, settings=settings) as running:
        yield running


class TlsLines:
    """A blocking TLS line client."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(sock, server_hostname="localhost")
        self.buf = b""

    def send(self, line: bytes) -> None:
        self.sock.sendall(line)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def close(self) -> None:
        self.sock.close()


def tls_connect(server: RunningServer) -> TlsLines:
    sock = socket.create_connection(server.address(listener="tls"), timeout=10)
    return TlsLines(sock, server.tls_client_context())


def wait_closed(sock: socket.socket) -> bytes:
    """Read until the server closes (a safety timeout only); return what came."""
    sock.settimeout(15)
    got = b""
    while True:
        try:
            data = sock.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            return got
        if not data:
            return got
        got += data


def test_implicit_tls_greets_and_answers_encrypted(server: RunningServer) -> None:
    client = tls_connect(server)
    assert client.line() == b"+ hello"
    client.send(b"SECURE\r\nPING\r\n")
    assert client.line() == b"+yes"
    assert client.line() == b"+PONG"
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    client.close()


def test_large_replies_cross_tls_intact(server: RunningServer) -> None:
    client = tls_connect(server)
    client.line()
    client.send(b"PING\r\n" * 5000)  # pipelined: 5,000 replies through TLS records
    for _ in range(5000):
        assert client.line() == b"+PONG"
    client.close()


def test_starttls_upgrades_and_drops_injected_plaintext(server: RunningServer) -> None:
    sock = socket.create_connection(server.address(), timeout=10)
    plain = LineClient.from_socket(sock)
    assert plain.read_line() == b"+ hello"
    # The classic injection: a command pipelined after STARTTLS in plaintext.
    sock.sendall(b"STARTTLS\r\nINCR\r\n")
    assert plain.read_line() == b"+ go ahead"
    client = TlsLines(sock, server.tls_client_context())
    client.send(b"SECURE\r\nINCR\r\n")
    assert client.line() == b"+yes"
    assert client.line() == b":1"  # the injected INCR never ran
    client.close()


def test_plaintext_on_tls_port_is_closed_and_others_carry_on(server: RunningServer) -> None:
    sock = socket.create_connection(server.address(listener="tls"), timeout=10)
    sock.sendall(b"PING\r\nPING\r\n")
    assert b"PONG" not in wait_closed(sock)
    sock.close()
    client = tls_connect(server)
    assert client.line() == b"+ hello"
    client.close()


def test_tls_client_on_plain_port_fails_cleanly(server: RunningServer) -> None:
    sock = socket.create_connection(server.address(), timeout=10)
    with pytest.raises((ssl.SSLError, OSError)):
        server.tls_client_context().wrap_socket(sock, server_hostname="localhost")
    sock.close()
    with LineClient(server.address()) as plain:
        assert plain.read_line() == b"+ hello"
        plain.send(b"PING\r\n")
        assert plain.read_line() == b"+PONG"


def test_stalled_handshake_is_cut_after_the_timeout(tmp_path: Path) -> None:
    # A short timeout only here, where no client is meant to complete a handshake.
    settings = {"services": {"counter": {"tls_port": free_port()}}, "tls": {"handshake_timeout": 1.0}}
    with serve(CounterService, data_dir=tmp_path, settings=settings) as server:
        sock = socket.create_connection(server.address(listener="tls"), timeout=10)
        started = time.monotonic()
        assert wait_closed(sock) == b""  # nothing sent, then closed by the server
        assert time.monotonic() - started < 15  # the safety net, not a speed claim
        sock.close()


def test_garbage_inside_tls_closes_only_that_connection(server: RunningServer) -> None:
    victim = tls_connect(server)
    victim.line()
    # Write beneath the TLS layer, on the same descriptor.
    raw_fd = socket.socket(fileno=victim.sock.fileno())
    raw_fd.sendall(b"\x17\x03\x03\x00\x10" + b"\x00" * 16)  # an application-data record that cannot decrypt
    assert b"PONG" not in wait_closed(raw_fd)
    raw_fd.detach()
    victim.close()
    other = tls_connect(server)
    other.line()
    other.send(b"PING\r\n")
    assert other.line() == b"+PONG"
    other.close()


def test_dev_certificate_made_in_the_data_folder(server: RunningServer, tmp_path: Path) -> None:
    assert (tmp_path / "tls" / "ca.pem").exists()
    assert server.app.tls is not None and server.app.tls.ca_file == tmp_path / "tls" / "ca.pem"


def test_sighup_reload_keeps_connections(server: RunningServer) -> None:
    client = tls_connect(server)
    client.line()
    tls = server.app.tls
    assert tls is not None
    before = tls.context
    reloaded = threading.Event()
    server.call(lambda: (tls.reload(), reloaded.set()))  # on the server's thread, as SIGHUP's callback runs
    assert reloaded.wait(60)  # a safety net: set as soon as the reload has run
    assert tls.context is not before
    client.send(b"PING\r\n")
    assert client.line() == b"+PONG"  # the old connection keeps its session
    fresh = tls_connect(server)
    assert fresh.line() == b"+ hello"
    fresh.close()
    client.close()


class WhoProtocol(CounterProtocol):
    @command("WHOAMI")
    def whoami(self) -> str:
        cert = self.peer_certificate()
        if cert is None:
            return "+ anonymous"
        subject = dict(item for rdn in cert["subject"] for item in rdn)
        return f"+ {subject.get('commonName', '?')}"


class WhoService(CounterService):
    name = "who"
    protocol = WhoProtocol


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_client_certificates(tmp_path: Path, mode: str) -> None:
    trustme = pytest.importorskip("trustme")
    clients_ca = trustme.CA()
    ca_file = tmp_path / "clients-ca.pem"
    clients_ca.cert_pem.write_to_path(str(ca_file))
    settings = {
        "services": {"who": {"tls_port": free_port()}},
        "tls": {"client_certs": mode, "ca_file": str(ca_file)},
    }
    with serve(WhoService, data_dir=tmp_path, settings=settings) as server:
        with_cert = server.tls_client_context()
        clients_ca.issue_cert("alice@example.test", common_name="alice").configure_cert(with_cert)
        client = TlsLines(socket.create_connection(server.address(listener="tls"), timeout=10), with_cert)
        assert client.line() == b"+ hello"
        client.send(b"WHOAMI\r\n")
        assert client.line() == b"+ alice"
        client.close()
        sock = socket.create_connection(server.address(listener="tls"), timeout=10)
        if mode == "optional":
            anonymous = TlsLines(sock, server.tls_client_context())
            anonymous.line()
            anonymous.send(b"WHOAMI\r\n")
            assert anonymous.line() == b"+ anonymous"
            anonymous.close()
        else:
            # TLS 1.3 reports a missing certificate after the handshake: the first read fails.
            with pytest.raises((ssl.SSLError, EOFError, ConnectionResetError)):
                refused = TlsLines(sock, server.tls_client_context())
                refused.line()
            sock.close()


def test_sighup_reloads_certificates_of_a_running_server(tmp_path: Path) -> None:
    """linechat serve in a subprocess: SIGHUP loads new certificate files; an open connection carries on."""
    import os
    import signal
    import subprocess
    import sys

    from linechat.testing import connect_when_listening
    from linechat.tls import make_dev_certificates

    first = make_dev_certificates(tmp_path / "first")
    second = make_dev_certificates(tmp_path / "second")
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.pem", "server-key.pem"):
        (live / name).write_bytes((first.folder / name).read_bytes())
    port, tls_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat", "serve", "--only", "echo", "--data-dir", str(tmp_path / "data"),
         "--log-format", "json", "--set", f"services.echo.port={port}", "--set", f"services.echo.tls_port={tls_port}",
         "--set", f"tls.cert_file={live / 'server.pem'}", "--set", f"tls.key_file={live / 'server-key.pem'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        connect_when_listening(tls_port).close()
        old = TlsLines(connect_when_listening(tls_port), ssl.create_default_context(cafile=str(first.ca_cert)))
        assert old.line() == b"+ linechat echo ready"
        for name in ("server.pem", "server-key.pem"):
            (live / name).write_bytes((second.folder / name).read_bytes())
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        trusting_second = ssl.create_default_context(cafile=str(second.ca_cert))
        while True:  # new connections get the new certificate once the reload has run
            try:
                fresh = TlsLines(connect_when_listening(tls_port), trusting_second)
                break
            except ssl.SSLError:
                assert time.monotonic() < deadline, "the new certificate was never served"
                time.sleep(0.1)
        assert fresh.line() == b"+ linechat echo ready"
        old.send(b"ECHO still here\r\n")
        assert old.line() == b"+ still here"
        fresh.close()
        old.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "tls_reloaded" in out
    assert os.fspath(live / "server.pem") in out
