"""SMTP with STARTTLS, implicit TLS and AUTH, driven by smtplib, swaks, msmtp and Django over loopback."""

from __future__ import annotations

import base64
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.auth import hash_password
from linechat.services.smtp import SmtpService
from linechat.testing import LineClient, RunningServer, free_port, serve
from smtp_helpers import stored_messages

TIMEOUT = 20.0
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: secret\r\n\r\nline one\r\n.dot line\r\n"


def _serve(tmp_path: Path, **smtp: object) -> Iterator[tuple[RunningServer, Path]]:
    maildir = tmp_path / "maildir"
    settings = {
        "services": {"smtp": {"maildir": str(maildir), "hostname": "mx.test", "tls_port": free_port(), **smtp}},
    }
    with serve(SmtpService, data_dir=tmp_path / "data", settings=settings) as srv:
        yield srv, maildir


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    yield from _serve(tmp_path)


@pytest.fixture
def users_server(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('wonderland')}\n")
    yield from _serve(tmp_path, auth="users", auth_users_file=str(users))


def received_header(maildir: Path) -> bytes:
    files = sorted((maildir / "new").iterdir())
    raw = files[-1].read_bytes()
    start = raw.index(b"Received: ")
    end = raw.index(b"\r\n", raw.index(b"; ", start))
    return raw[start:end]


def test_ehlo_offers_starttls_and_auth_only_inside_tls(server: tuple[RunningServer, Path]) -> None:
    srv, _ = server
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        client.ehlo("client.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0u\0p").decode())[0] == 538
        client.starttls(context=srv.tls_client_context())
        client.ehlo("client.test")
        assert client.has_extn("auth") and not client.has_extn("starttls")
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}


def test_smtplib_starttls_and_login_store_the_message(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        client.starttls(context=srv.tls_client_context())
        client.login("dev", "anything")  # auth = "any": the development sink
        assert client.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}
    assert stored_messages(maildir) == [MESSAGE]
    header = received_header(maildir)
    assert b"with ESMTPSA" in header and b"Authenticated sender: dev" in header and b"using TLSv1." in header


def test_smtplib_implicit_tls_with_login(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    host, port = srv.address(listener="tls")
    with smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=srv.tls_client_context()) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        client.login("dev", "pw")
        assert client.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}
    assert stored_messages(maildir) == [MESSAGE]


def test_users_file_accepts_the_right_password_only(users_server: tuple[RunningServer, Path]) -> None:
    srv, maildir = users_server
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        client.starttls(context=srv.tls_client_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("alice", "looking-glass")
        assert info.value.smtp_code == 535
        client.login("alice", "wonderland")
        client.sendmail("a@example.org", ["b@example.org"], MESSAGE)
    assert stored_messages(maildir) == [MESSAGE]


def test_auth_login_steps_and_broken_base64(server: tuple[RunningServer, Path]) -> None:
    srv, _ = server
    host, port = srv.address(listener="tls")
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    raw = srv.tls_client_context().wrap_socket(sock, server_hostname="localhost")
    client = LineClient.from_socket(raw)
    assert client.read_line().startswith(b"220 ")
    client.send(b"EHLO c.test\r\n")
    while not client.read_line().startswith(b"250 "):
        pass
    client.send(b"AUTH PLAIN %%%notbase64\r\n")
    assert client.read_line().startswith(b"501 5.5.2")
    client.send(b"AUTH LOGIN\r\n")
    assert client.read_line() == b"334 VXNlcm5hbWU6"
    client.send(base64.b64encode(b"bob") + b"\r\n")
    assert client.read_line() == b"334 UGFzc3dvcmQ6"
    client.send(b"!!!\r\n")
    assert client.read_line().startswith(b"501 5.5.2")
    client.send(b"AUTH PLAIN\r\n")
    assert client.read_line() == b"334 "
    client.send(b"*\r\n")
    assert client.read_line().startswith(b"501 5.7.0")
    client.send(b"AUTH LOGIN " + base64.b64encode(b"bob") + b"\r\n")
    assert client.read_line() == b"334 UGFzc3dvcmQ6"
    client.send(base64.b64encode(b"secret") + b"\r\n")
    assert client.read_line().startswith(b"235 2.7.0")
    client.send(b"AUTH PLAIN " + base64.b64encode(b"\0bob\0x") + b"\r\n")
    assert client.read_line().startswith(b"503")
    client.send(b"QUIT\r\n")
    assert client.read_line().startswith(b"221")
    client.close()


def test_unknown_verbs_get_502(server: tuple[RunningServer, Path]) -> None:
    srv, _ = server
    with LineClient(srv.address()) as client:
        client.read_line()
        client.send(b"BDAT 10\r\nXYZZY\r\n")
        assert client.read_line().startswith(b"502 ")
        assert client.read_line().startswith(b"502 ")


def test_plaintext_pipelined_after_starttls_is_dropped(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    sock = socket.create_connection(srv.address(), timeout=TIMEOUT)
    plain = LineClient.from_socket(sock)
    plain.read_line()
    sock.sendall(b"EHLO c.test\r\n")
    while not plain.read_line().startswith(b"250 "):
        pass
    # Injection: commands sent in the clear behind STARTTLS must not count inside TLS.
    sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    assert plain.read_line().startswith(b"220 2.0.0")
    tls = LineClient.from_socket(srv.tls_client_context().wrap_socket(sock, server_hostname="localhost"))
    tls.send(b"RCPT TO:<b@example.org>\r\n")
    assert tls.read_line().startswith(b"503")  # no MAIL FROM survived, and no EHLO either
    tls.send(b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n")
    while not tls.read_line().startswith(b"250 "):
        pass
    assert tls.read_line().startswith(b"250 2.1.0")
    tls.close()
    assert not (maildir / "new").exists() or not list((maildir / "new").iterdir())


def test_plaintext_client_on_the_tls_port_is_closed(server: tuple[RunningServer, Path]) -> None:
    srv, _ = server
    sock = socket.create_connection(srv.address(listener="tls"), timeout=TIMEOUT)
    sock.sendall(b"EHLO plain.test\r\n")
    got = b""
    while True:
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    assert b"250" not in got
    sock.close()
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:  # the server carries on
        assert client.ehlo()[0] == 250


swaks = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(swaks is None, reason="swaks is not installed (apt-get install swaks)")


def run_swaks(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert swaks is not None
    return subprocess.run(
        [
            swaks,
            "--server",
            "127.0.0.1",
            "--port",
            str(port),
            "--helo",
            "swaks.test",
            "--timeout",
            "15",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        env={**os.environ, "LC_ALL": "C"},
    )


@needs_swaks
def test_swaks_starttls_implicit_tls_and_auth(users_server: tuple[RunningServer, Path]) -> None:
    srv, maildir = users_server
    port, tls_port = srv.address()[1], srv.address(listener="tls")[1]
    result = run_swaks(port, "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wonderland")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "235 2.7.0" in result.stdout
    result = run_swaks(tls_port, "--tlsc", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "wonderland")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_swaks(port, "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "nope")
    assert result.returncode != 0 and "535 5.7.8" in result.stdout
    assert len(stored_messages(maildir)) == 2


msmtp = shutil.which("msmtp")


@pytest.mark.skipif(msmtp is None, reason="msmtp is not installed (apt-get install msmtp)")
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_msmtp_tls_and_auth(users_server: tuple[RunningServer, Path], tmp_path: Path, mode: str) -> None:
    srv, maildir = users_server
    tls = srv.app.tls
    assert tls is not None and tls.ca_file is not None
    port = srv.address(listener="tls")[1] if mode == "implicit" else srv.address()[1]
    config = tmp_path / "msmtprc"
    config.write_text(
        "defaults\n"
        "tls on\n"
        f"tls_starttls {'off' if mode == 'implicit' else 'on'}\n"
        f"tls_trust_file {tls.ca_file}\n"
        "auth on\nuser alice\npassword wonderland\n"
        "account default\nhost localhost\n"
        f"port {port}\nfrom a@example.org\n"
    )
    config.chmod(0o600)
    assert msmtp is not None
    result = subprocess.run(
        [msmtp, "-C", str(config), "b@example.org"], input=MESSAGE, capture_output=True, timeout=TIMEOUT * 2
    )
    assert result.returncode == 0, result.stderr
    stored = stored_messages(maildir)
    assert len(stored) == 1 and b"Subject: secret" in stored[0] and stored[0].endswith(b"line one\r\n.dot line\r\n")


DJANGO_SCRIPT = """
import sys
import django
from django.conf import settings
port, use_tls, use_ssl, cafile = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]
settings.configure(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="localhost",
                   EMAIL_PORT=port, EMAIL_USE_TLS=use_tls, EMAIL_USE_SSL=use_ssl,
                   EMAIL_HOST_USER="alice", EMAIL_HOST_PASSWORD="wonderland", EMAIL_TIMEOUT=20)
django.setup()
from django.core.mail import EmailMessage
sent = EmailMessage("hello from django", "body text", "a@example.org", ["b@example.org"], bcc=["c@example.org"]).send()
print(sent)
"""


@pytest.mark.parametrize("mode", ["EMAIL_USE_TLS", "EMAIL_USE_SSL"])
def test_django_smtp_backend_with_tls_and_credentials(users_server: tuple[RunningServer, Path], mode: str) -> None:
    pytest.importorskip("django", reason="Django is in the test extra")
    srv, maildir = users_server
    tls = srv.app.tls
    assert tls is not None and tls.ca_file is not None
    port = srv.address(listener="tls")[1] if mode == "EMAIL_USE_SSL" else srv.address()[1]
    env = {**os.environ, "SSL_CERT_FILE": str(tls.ca_file)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            DJANGO_SCRIPT,
            str(port),
            "1" if mode == "EMAIL_USE_TLS" else "0",
            "1" if mode == "EMAIL_USE_SSL" else "0",
            str(tls.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    (stored,) = stored_messages(maildir)
    assert b"Subject: hello from django" in stored and b"body text" in stored
    header = received_header(maildir)
    assert b"ESMTPSA" in header and b"alice" in header


def test_tls_failure_does_not_stop_the_service(server: tuple[RunningServer, Path]) -> None:
    srv, _ = server
    # A client that distrusts the certificate aborts the handshake; the server carries on.
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client, pytest.raises(ssl.SSLError):
        client.starttls(context=ssl.create_default_context())
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        client.starttls(context=srv.tls_client_context())
        assert client.noop()[0] == 250
