"""ServiceHarness drives a protocol in memory in the clear and through TLS, with one set of tests."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from linechat.services.echo import EchoService
from linechat.services.smtp import SmtpService
from linechat.testing import ServiceHarness


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_echo_protocol_over_each_transport(tls: bool) -> None:
    with ServiceHarness(EchoService) as harness:
        client = harness.connect(tls=tls)
        assert client.secure is tls
        assert client.read_lines() == ["+ linechat echo ready"]
        client.send("ECHO hello world\r\nADD 2 3\r\nADD 2 x\r\n")
        assert client.read_lines() == ["+ hello world", "+ 5", "- invalid value for 'b' of 'add'"]
        client.send(b"ECHO " + b"y" * 3000 + b"\r\n")  # a line larger than one TLS record fragment
        assert client.read_lines() == ["+ " + "y" * 3000]
        client.send("QUIT\r\n")
        assert client.read_lines() == ["+ bye"]
        assert client.closed


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_echo_idle_timeout_over_each_transport(tls: bool) -> None:
    with ServiceHarness(EchoService, idle_timeout=30) as harness:
        client = harness.connect(tls=tls)
        client.read()
        harness.advance(31)
        assert client.closed


def test_smtp_starttls_and_auth_in_memory(tmp_path: Path) -> None:
    with ServiceHarness(SmtpService, data_dir=tmp_path, hostname="mx.test") as harness:
        harness.tls_client_context()  # give the service its certificate, as the app does at start
        client = harness.connect()
        client.read()
        client.send("EHLO c.test\r\n")
        ehlo = client.read_lines()
        assert "250-STARTTLS" in ehlo and not any("AUTH" in line for line in ehlo)
        client.send("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        assert client.read_lines() == ["220 2.0.0 Ready to start TLS"]
        client.start_tls()
        client.send("RCPT TO:<b@example.org>\r\n")
        assert client.read_lines()[0].startswith("503")  # the pipelined MAIL FROM was dropped
        client.send("EHLO c.test\r\n")
        assert "250-AUTH PLAIN LOGIN" in client.read_lines()
        client.send(b"AUTH PLAIN " + base64.b64encode(b"\0dev\0pw") + b"\r\n")
        assert client.read_lines() == ["235 2.7.0 Authentication successful"]
        assert client.protocol.secure and client.protocol.auth_user == "dev"  # type: ignore[attr-defined]
