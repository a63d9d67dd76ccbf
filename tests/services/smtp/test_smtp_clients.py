"""The SMTP service on a loopback port, driven by clients we did not write: smtplib and swaks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from linechat.services.smtp import SmtpService
from linechat.testing import LineClient, RunningServer, serve
from smtp_helpers import maildir_files, stored_messages

TIMEOUT = 20.0  # socket timeouts keep every test bounded


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    maildir = tmp_path / "maildir"
    settings = {"services": {"smtp": {"maildir": str(maildir), "hostname": "mx.test", "max_message_size": 1 << 20}}}
    with serve(SmtpService, data_dir=tmp_path / "data", settings=settings) as srv:
        yield srv, maildir


def wait_for_no_connections(srv: RunningServer) -> None:
    """Wait (bounded) until the server has noticed every client left."""
    service = srv.app.services["smtp"]
    deadline = time.monotonic() + TIMEOUT
    while service.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not service.connections


def test_smtplib_sendmail(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    message = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\n.dot line\r\nbody\r\n"
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        code, banner = client.ehlo("client.test")
        assert code == 250 and b"PIPELINING" in banner
        assert client.has_extn("size") and client.esmtp_features["size"] == str(1 << 20)
        refused = client.sendmail("a@example.org", ["b@example.org", "c@example.org"], message)
        assert refused == {}
    assert stored_messages(maildir) == [message]


def test_smtplib_send_message_8bitmime_and_smtputf8(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    plain = EmailMessage()
    plain["From"] = "a@example.org"
    plain["To"] = "b@example.org"
    plain["Subject"] = "8bit"
    plain.set_content("Grüße aus Köln\n", cte="8bit")
    utf8 = EmailMessage()
    utf8["From"] = "jöran@exämple.org"
    utf8["To"] = "δοκιμή@παράδειγμα.δοκιμή"
    utf8["Subject"] = "ünïcode"
    utf8.set_content("ça marche\n", cte="8bit")
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        client.ehlo("client.test")
        assert client.has_extn("8bitmime") and client.has_extn("smtputf8")
        assert client.send_message(plain, mail_options=["BODY=8BITMIME"]) == {}
        # Non-ASCII addresses make smtplib use SMTPUTF8 (and BODY=8BITMIME) by itself.
        assert client.send_message(utf8) == {}
    stored = stored_messages(maildir)
    assert len(stored) == 2
    assert any("Grüße aus Köln".encode() in raw for raw in stored)
    assert any("To: δοκιμή@παράδειγμα.δοκιμή".encode() in raw for raw in stored)
    raws = [path.read_bytes() for path in maildir_files(maildir)]
    assert any(b"with UTF8SMTP" in raw for raw in raws)


def test_smtplib_pipelined_session(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        client.ehlo("client.test")
        assert client.has_extn("pipelining")
        # RFC 2920: the whole envelope in one write, replies read afterwards in order.
        client.send(
            "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<oops>\r\n"
            "RCPT TO:<c@example.org>\r\nDATA\r\n"
        )
        assert [client.getreply()[0] for _ in range(5)] == [250, 250, 501, 250, 354]
        client.send("Subject: piped\r\n\r\n..x\r\n.\r\nNOOP\r\nRSET\r\n")
        assert [client.getreply()[0] for _ in range(3)] == [250, 250, 250]
    assert stored_messages(maildir) == [b"Subject: piped\r\n\r\n.x\r\n"]


def test_over_the_limit_gets_552_and_nothing_stored(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100  # over 1 MiB
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        # With EHLO, smtplib declares SIZE= and is refused at MAIL already.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@example.org", ["b@example.org"], big)
        assert refused.value.smtp_code == 552
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        # With HELO nothing is declared: the limit is enforced while reading DATA.
        client.helo("client.test")
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.sendmail("a@example.org", ["b@example.org"], big)
        assert failed.value.smtp_code == 552
        assert client.noop()[0] == 250
    assert maildir_files(maildir) == []


def test_client_vanishing_mid_data_leaves_nothing(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    with LineClient(srv.address(), timeout=TIMEOUT) as client:
        client.read_line()
        client.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        while not client.read_line().startswith(b"354"):
            pass
        client.send(b"Subject: half\r\n\r\n" + b"y" * 300_000)
    wait_for_no_connections(srv)
    assert maildir_files(maildir) == []


def _sender(address: tuple[str, int], worker: int, count: int, sent: dict[str, bytes], errors: list[Any]) -> None:
    try:
        with smtplib.SMTP(*address, timeout=TIMEOUT) as client:
            client.ehlo(f"worker{worker}.test")
            for index in range(count):
                key = f"{worker}-{index}"
                body = b"".join(b".line %d of %s\r\n" % (n, key.encode()) for n in range(index * 7 + 1))
                message = b"Message-ID: <%s@test>\r\nSubject: load\r\n\r\n%s..\r\n.\r\nend\r\n" % (key.encode(), body)
                client.sendmail("load@example.org", [f"r{worker}@example.org"], message)
                sent[key] = message
    except Exception as exc:  # reported by the test thread
        errors.append(exc)


def test_200_messages_over_20_concurrent_connections(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    sent: dict[str, bytes] = {}
    errors: list[Any] = []
    threads = [threading.Thread(target=_sender, args=(srv.address(), worker, 10, sent, errors)) for worker in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    assert not errors, errors
    assert len(sent) == 200
    stored = stored_messages(maildir)
    assert sorted(stored) == sorted(sent.values())


def test_killed_after_250_loses_nothing(tmp_path: Path) -> None:
    """Run the real server process, kill -9 it right after the 250: the message is in new/."""
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat", "serve", "--only", "smtp", "--data-dir", str(data_dir),
         "--set", "services.smtp.port=0", "--set", "services.smtp.host=127.0.0.1", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        port = None
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: the process either logs "listening" or exits
            if '"listening"' in line:
                port = json.loads(line)["port"]
                break
        assert port is not None, "the server did not start"
        message = b"Subject: durable\r\n\r\n" + b"z" * 200_000 + b"\r\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
            client.sendmail("a@example.org", ["b@example.org"], message)
            proc.send_signal(signal.SIGKILL)
            proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()
    maildir = data_dir / "smtp" / "maildir"
    assert stored_messages(maildir) == [message]
    assert list((maildir / "tmp").iterdir()) == []


# --------------------------------------------------------------------------- swaks

swaks = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(swaks is None, reason="swaks is not installed (apt-get install swaks)")


def run_swaks(srv: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    host, port = srv.address()
    assert swaks is not None
    return subprocess.run(
        [swaks, "--server", host, "--port", str(port), "--helo", "swaks.test", "--timeout", "15", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        env={**os.environ, "LC_ALL": "C"},
    )


@needs_swaks
def test_swaks_plain_and_pipelined(server: tuple[RunningServer, Path], tmp_path: Path) -> None:
    srv, maildir = server
    data = tmp_path / "message.eml"
    # swaks ends the data with its own CRLF before the dot, so the file has no final one.
    data.write_bytes(b"Subject: from swaks\r\n\r\n.starts with a dot\r\n..\r\nlast")
    result = run_swaks(srv, "--from", "a@example.org", "--to", "b@example.org,c@example.org", "--data", str(data))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 2.0.0 OK: queued as" in result.stdout
    result = run_swaks(srv, "--pipeline", "--from", "a@example.org", "--to", "d@example.org", "--data", str(data))
    assert result.returncode == 0, result.stdout + result.stderr
    # Pipelined: MAIL, RCPT and DATA all go out before the first reply comes back.
    transcript = result.stdout
    assert transcript.index(" -> DATA") < transcript.index("<-  250 2.1.0 OK")
    stored = stored_messages(maildir)
    assert stored == [b"Subject: from swaks\r\n\r\n.starts with a dot\r\n..\r\nlast\r\n"] * 2


@needs_swaks
def test_swaks_refused_recipient_and_quit_after_rcpt(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    result = run_swaks(srv, "--from", "a@example.org", "--to", "nobody")
    assert result.returncode != 0
    assert "501 5.1.3" in result.stdout
    result = run_swaks(srv, "--from", "a@example.org", "--to", "b@example.org", "--quit-after", "RCPT")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "221 2.0.0 Bye" in result.stdout
    assert maildir_files(maildir) == []


# --------------------------------------------------------------------------- the envelope, LMTP


def test_smtplib_bcc_recipients_are_recorded(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    message = EmailMessage()
    message["From"] = "a@example.org"
    message["To"] = "to@example.org"
    message["Cc"] = "cc@example.org"
    message["Bcc"] = "hidden@example.org, other@example.org"
    message["Subject"] = "with bcc"
    message.set_content("hello\n")
    with smtplib.SMTP(*srv.address(), timeout=TIMEOUT) as client:
        # send_message sends to every To/Cc/Bcc address and drops the Bcc field, as Django and nodemailer do.
        assert client.send_message(message) == {}
    (path,) = maildir_files(maildir)
    raw = path.read_bytes()
    head = raw[: raw.index(b"Received: ")].decode().replace("\r\n\t", " ").split("\r\n")[:-1]
    assert head[0] == "Return-Path: <a@example.org>"
    delivered = {line.removeprefix("Delivered-To: ") for line in head[1:5]}
    assert delivered == {"to@example.org", "cc@example.org", "hidden@example.org", "other@example.org"}
    assert head[5].startswith("Bcc: ")
    assert set(head[5].removeprefix("Bcc: ").split(", ")) == {"hidden@example.org", "other@example.org"}
    assert len(head) == 6
    assert stored_messages(maildir)[0].startswith(b"From: a@example.org\r\nTo: to@example.org\r\n")


def test_unbracketed_mail_from_over_loopback(server: tuple[RunningServer, Path]) -> None:
    srv, maildir = server
    with LineClient(srv.address(), timeout=TIMEOUT) as client:
        client.read_line()
        client.send(b"HELO c\r\nMAIL FROM:a@example.org\r\nRCPT TO:b@example.org\r\nDATA\r\n")
        assert [client.read_line()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        client.send(b"Subject: plain\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        assert client.read_line().startswith(b"250 2.0.0 OK")
    assert stored_messages(maildir) == [b"Subject: plain\r\n\r\nhi\r\n"]


@pytest.fixture
def lmtp_server(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    maildir = tmp_path / "boxes"
    smtp = {"maildir": str(maildir), "hostname": "mx.test", "lmtp": True, "delivery": "per_recipient"}
    with serve(SmtpService, data_dir=tmp_path / "data", settings={"services": {"smtp": smtp}}) as srv:
        yield srv, maildir


def test_smtplib_lmtp(lmtp_server: tuple[RunningServer, Path]) -> None:
    srv, maildir = lmtp_server
    host, port = srv.address()
    with smtplib.LMTP(host, port, timeout=TIMEOUT) as client:
        code, _ = client.ehlo("client.test")  # smtplib.LMTP sends LHLO here
        assert code == 250
        refused = client.sendmail("a@example.org", ["x@example.org", "y@example.org"], b"Subject: l\r\n\r\nhi\r\n")
        assert refused == {}
        # smtplib's sendmail reads only the first reply after DATA; LMTP sends one per recipient.
        code, text = client.getreply()
        assert code == 250 and text.startswith(b"2.0.0 OK: queued as")
    for rcpt in ("x@example.org", "y@example.org"):
        assert stored_messages(maildir / rcpt) == [b"Subject: l\r\n\r\nhi\r\n"]


@needs_swaks
def test_swaks_lmtp(lmtp_server: tuple[RunningServer, Path]) -> None:
    srv, maildir = lmtp_server
    result = run_swaks(srv, "--protocol", "LMTP", "--from", "a@example.org", "--to", "p@example.org,q@example.org")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " -> LHLO swaks.test" in result.stdout
    assert result.stdout.count("<-  250 2.0.0 OK: queued as") == 2  # one reply per recipient after DATA
    assert len(maildir_files(maildir / "p@example.org")) == 1
    assert len(maildir_files(maildir / "q@example.org")) == 1
