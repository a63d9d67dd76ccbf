"""The SMTP protocol in memory: sequences, syntax, pipelining, DATA, limits, timeouts, delivery hook."""

from __future__ import annotations

import errno
import hashlib
import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linechat.services.smtp import Envelope, SmtpService, format_reply
from linechat.testing import MemoryClient, ServiceHarness
from smtp_helpers import maildir_files, stored_messages


class CapturingService(SmtpService):
    """Keeps accepted messages in memory instead of storing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[Envelope, bytes]] = []

    def handle_message(self, envelope: Envelope) -> tuple[int, str] | None:
        self.received.append((envelope, envelope.read_content()))
        return None


@pytest.fixture
def make(linechat_harness: Callable[..., ServiceHarness]) -> Callable[..., ServiceHarness]:
    def factory(service: type[SmtpService] = SmtpService, **settings: Any) -> ServiceHarness:
        settings.setdefault("delivery_threads", 0)  # store inline: the fake clock drives everything
        settings.setdefault("hostname", "mx.test")
        return linechat_harness(service, **settings)

    return factory


def session(harness: ServiceHarness, ehlo: bool = True) -> MemoryClient:
    client = harness.connect()
    client.send(b"EHLO client.test\r\n" if ehlo else b"HELO client.test\r\n")
    client.read()
    return client


def codes(client: MemoryClient) -> list[str]:
    return [line[:3] for line in client.read_lines()]


def transaction(client: MemoryClient, body: bytes, rcpts: int = 1) -> list[str]:
    """Send a whole transaction in one piece; return the reply codes."""
    rcpt = b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(rcpts))
    client.send(b"MAIL FROM:<s@example.org>\r\n" + rcpt + b"DATA\r\n" + body + b".\r\n")
    return codes(client)


def test_greeting_and_ehlo_extensions(make: Any) -> None:
    harness = make(max_message_size=12345)
    client = harness.connect()
    client.send(b"EHLO client.test\r\n")
    lines = client.read_lines()
    assert lines[0] == "220 mx.test ESMTP linechat ready"
    assert lines[1] == "250-mx.test Hello client.test"
    assert lines[2:] == [
        "250-SIZE 12345",
        "250-8BITMIME",
        "250-PIPELINING",
        "250-ENHANCEDSTATUSCODES",
        "250-SMTPUTF8",
        "250 HELP",
    ]


def test_simple_commands(make: Any) -> None:
    client = session(make())
    client.send(b"NOOP\r\nNOOP hello\r\nVRFY bob\r\nVRFY\r\nEXPN list\r\nHELP\r\nRSET\r\nRSET x\r\nQUIT\r\n")
    lines = client.read_lines()
    assert [line[:3] for line in lines] == ["250", "250", "252", "501", "502", "214", "250", "501", "221"]
    assert lines[2].startswith("252 2.5.0 ")
    assert client.closed


def test_bad_sequences_get_503(make: Any) -> None:
    harness = make()
    client = harness.connect()
    client.read()
    client.send(b"MAIL FROM:<a@example.org>\r\n")  # before EHLO
    assert client.read_lines() == ["503 5.5.1 Error: send HELO/EHLO first"]
    client.send(b"EHLO c\r\n")
    client.read()
    client.send(b"RCPT TO:<b@example.org>\r\nDATA\r\n")  # no MAIL yet
    assert codes(client) == ["503", "503"]
    client.send(b"MAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\nDATA\r\n")  # nested MAIL, no RCPT
    lines = client.read_lines()
    assert [line[:3] for line in lines] == ["250", "503", "503"]
    assert "need RCPT" in lines[2]
    client.send(b"RSET\r\nRCPT TO:<b@example.org>\r\n")  # RSET ends the transaction
    assert codes(client) == ["250", "503"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"EHLO", "501 5.5.4"),
        (b"HELO", "501 5.5.4"),
        (b"MAIL", "501 5.5.4"),
        (b"MAIL TO:<a@example.org>", "501 5.5.4"),
        (b"MAIL FROM:a@example.org", "501 5.5.4"),
        (b"MAIL FROM:<a@example.org", "501 5.5.4"),
        (b"MAIL FROM:<a b@example.org>", "501 5.5.4"),
        (b"MAIL FROM:<local-only>", "501 5.1.7"),
        (b"MAIL FROM:<a@example.org> SIZE=abc", "501 5.5.4"),
        (b"MAIL FROM:<a@example.org> BODY=BINARYMIME", "501 5.5.4"),
        (b"MAIL FROM:<a@example.org> SMTPUTF8=yes", "501 5.5.4"),
        (b"MAIL FROM:<a@example.org> AUTH=<>", "555 5.5.4"),
        (b"MAIL FROM:<a@example.org> SIZE=99999999999", "552 5.3.4"),
        (b"MAIL FROM:<\xc3\xa9@example.org>", "553 5.6.7"),
        (b"FROBNICATE", "502 5.5.2"),
        (b"", "500 5.5.2"),
        (b"   ", "500 5.5.2"),
        (b"MAIL FROM:<\xff@example.org>", "500 5.5.2"),
        (b"\x00\x01\x02", "502 5.5.2"),
        (b"DATA now", "501 5.5.4"),
    ],
)
def test_syntax_errors(make: Any, line: bytes, reply: str) -> None:
    client = session(make(allow_unbracketed=False))
    client.send(line + b"\r\n")
    assert client.read_lines()[0].startswith(reply + " ")
    client.send(b"NOOP\r\n")  # the session goes on
    assert codes(client) == ["250"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"RCPT TO:<>", "501 5.1.3"),
        (b"RCPT TO:<nobody>", "501 5.1.3"),
        (b"RCPT FROM:<a@example.org>", "501 5.5.4"),
        (b"RCPT TO:<a@example.org> NOTIFY=NEVER", "555 5.5.4"),
        (b"RCPT TO:<\xc3\xa9@example.org>", "553 5.6.7"),
        (b"RCPT TO:<Postmaster>", "250 2.1.5"),
        (b"RCPT TO:<@relay.example,@other.example:a@example.org>", "250 2.1.5"),
        (b'RCPT TO:<"odd > local"@example.org>', "250 2.1.5"),
        (b"rcpt to: <a@example.org>", "250 2.1.5"),
    ],
)
def test_rcpt_syntax(make: Any, line: bytes, reply: str) -> None:
    client = session(make())
    client.send(b"MAIL FROM:<>\r\n")
    assert codes(client) == ["250"]
    client.send(line + b"\r\n")
    assert client.read_lines()[0].startswith(reply + " ")


def test_helo_session_refuses_extension_parameters(make: Any) -> None:
    client = session(make(), ehlo=False)
    client.send(b"MAIL FROM:<a@example.org> BODY=8BITMIME\r\nMAIL FROM:<a@example.org>\r\n")
    assert codes(client) == ["555", "250"]


def test_pipelined_batch_answered_in_order(make: Any) -> None:
    harness = make(service=CapturingService)
    client = harness.connect()
    client.read()
    # RFC 2920: everything up to DATA in one packet, then the body and QUIT in another.
    client.send(
        b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
        b"RCPT TO:<bad>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"
    )
    assert codes(client) == ["250"] * 7 + ["250", "250", "501", "250", "354"]
    client.send(b"Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.org>\r\nQUIT\r\n")
    lines = client.read_lines()
    assert [line[:3] for line in lines] == ["250", "250", "250", "221"]
    assert client.closed
    envelope, content = harness.service.received[0]
    assert envelope.rcpt_tos == ["b@example.org", "c@example.org"]
    assert content == b"Subject: one\r\n\r\nbody\r\n"


TRICKY = (
    b"Subject: dots\r\n\r\n"
    b".\r\n"  # a lone dot (stuffed on the wire)
    b"..\r\n"
    b".leading\r\n"
    b"middle.\r\n"
    b"\r\n"
    b".\r\n"
    b"last . line\r\n"
)


def stuff(message: bytes) -> bytes:
    """Dot-stuff as a client does (RFC 5321 section 4.5.2)."""
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def test_dot_unstuffing_at_every_chunk_split(make: Any) -> None:
    harness = make(service=CapturingService)
    wire = stuff(TRICKY) + b".\r\n"
    for split in range(len(wire) + 1):
        client = session(harness)
        client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        assert codes(client) == ["250", "250", "354"]
        client.send(wire[:split])
        client.send(wire[split:])
        assert codes(client) == ["250"], split
        assert harness.service.received[-1][1] == TRICKY, split


def test_dot_unstuffing_byte_by_byte_and_leading_dot(make: Any) -> None:
    harness = make(service=CapturingService)
    message = b".starts with a dot\r\n..two\r\nend\r\n"
    client = session(harness)
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    client.read()
    for byte in stuff(message) + b".\r\n":
        client.send(bytes([byte]))
    assert codes(client) == ["250"]
    assert harness.service.received[-1][1] == message


@pytest.mark.parametrize(
    ("wire", "content"),
    [
        (b".\r\n", b""),  # an empty message
        (b"\r\n.\r\n", b"\r\n"),  # one empty line
        (b"no newline at all\r\n.\r\n", b"no newline at all\r\n"),
        (b"bare\nLF\n.\n still data\r\n.\r\n", b"bare\nLF\n.\n still data\r\n"),
    ],
)
def test_data_edge_cases(make: Any, wire: bytes, content: bytes) -> None:
    harness = make(service=CapturingService)
    client = session(harness)
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + wire)
    assert codes(client) == ["250", "250", "354", "250"]
    assert harness.service.received[-1][1] == content


def test_message_is_stored_in_maildir_with_received_header(make: Any, tmp_path: Path) -> None:
    harness = make()
    client = session(harness)
    assert transaction(client, stuff(TRICKY)) == ["250", "250", "354", "250"]
    root = tmp_path / "data" / "maildir"
    assert stored_messages(root) == [TRICKY]
    (path,) = (root / "new").iterdir()
    raw = path.read_bytes()
    # TRICKY has no To/Cc: the recipient is recorded as hidden (Bcc).
    assert raw.startswith(
        b"Return-Path: <s@example.org>\r\nDelivered-To: r0@example.org\r\nBcc: r0@example.org\r\n"
        b"Received: from client.test ([127.0.0.1])\r\n\tby mx.test (linechat) with ESMTP id "
    )
    assert b"\r\n\tfor <r0@example.org>; " in raw
    assert list((root / "tmp").iterdir()) == []


def test_per_recipient_delivery(make: Any, tmp_path: Path) -> None:
    harness = make(delivery="per_recipient", maildir=tmp_path / "boxes")
    client = session(harness)
    assert transaction(client, b"Subject: x\r\n\r\nhi\r\n", rcpts=2) == ["250", "250", "250", "354", "250"]
    for name in ("r0@example.org", "r1@example.org"):
        assert stored_messages(tmp_path / "boxes" / name) == [b"Subject: x\r\n\r\nhi\r\n"]


def test_size_limit_enforced_while_reading(make: Any, tmp_path: Path) -> None:
    harness = make(max_message_size=100)
    client = session(harness)
    exact = b"x" * 98 + b"\r\n"  # 100 bytes: just fits
    assert transaction(client, exact) == ["250", "250", "354", "250"]
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert codes(client) == ["250", "250", "354"]
    for _ in range(50):  # far past the limit, in pieces: everything is read, nothing kept
        client.send(b"y" * 60 + b"\r\n")
    assert client.read() == b""
    client.send(b".\r\n")
    assert client.read_lines() == ["552 5.3.4 Error: message size exceeds fixed maximum message size"]
    client.send(b"NOOP\r\n")  # the session goes on
    assert codes(client) == ["250"]
    assert stored_messages(tmp_path / "data" / "maildir") == [exact]


def test_too_many_recipients(make: Any) -> None:
    harness = make(service=CapturingService, max_recipients=3)
    client = session(harness)
    assert transaction(client, b"hi\r\n", rcpts=4) == ["250", "250", "250", "250", "452", "354", "250"]
    assert len(harness.service.received[0][0].rcpt_tos) == 3


def test_line_too_long_is_refused_and_session_continues(make: Any) -> None:
    client = session(make())
    client.send(b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n")
    assert client.read_lines() == ["500 5.5.2 Error: line too long", "250 2.0.0 OK"]


def test_long_text_lines_in_data_are_accepted(make: Any) -> None:
    harness = make(service=CapturingService)
    client = session(harness)
    body = b"z" * 5000 + b"\r\n"  # longer than RFC 5321's 1000: kept, not refused
    assert transaction(client, body) == ["250", "250", "354", "250"]
    assert harness.service.received[0][1] == body


def test_idle_timeout_sends_421(make: Any) -> None:
    harness = make(idle_timeout=30)
    client = session(harness)
    harness.advance(29)
    assert not client.closed
    harness.advance(2)
    assert client.read_lines() == ["421 4.4.2 mx.test Error: timeout exceeded, closing connection"]
    assert client.closed


def test_idle_timeout_mid_data_stores_nothing(make: Any, tmp_path: Path) -> None:
    harness = make(idle_timeout=30)
    client = session(harness)
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: half\r\n")
    client.read()
    harness.advance(31)
    assert client.read_lines()[0].startswith("421 4.4.2 ")
    assert client.closed
    assert maildir_files(tmp_path / "data" / "maildir") == []


def test_shutdown_sends_421(make: Any, tmp_path: Path) -> None:
    harness = make()
    idle = session(harness)
    busy = session(harness)
    busy.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: half\r\n")
    busy.read()
    for client in (idle, busy):
        client.channel.handle_shutdown()
        assert client.read_lines() == ["421 4.3.2 mx.test Service shutting down, closing transmission channel"]
        assert client.closed
    assert maildir_files(tmp_path / "data" / "maildir") == []


def test_client_vanishing_mid_data_stores_nothing(make: Any, tmp_path: Path) -> None:
    harness = make(spool_threshold=1024)
    client = session(harness)
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    client.send(b"x" * 5000 + b"\r\n")  # past the spool threshold: a temp file exists now
    client.close()
    assert maildir_files(tmp_path / "data" / "maildir") == []


def test_smtputf8_addresses(make: Any) -> None:
    harness = make(service=CapturingService)
    client = session(harness)
    client.send(
        "MAIL FROM:<jöran@exämple.org> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n"
        "DATA\r\nSubject: ünïcode\r\n\r\nbödy\r\n.\r\n".encode()
    )
    assert codes(client) == ["250", "250", "354", "250"]
    envelope, content = harness.service.received[0]
    assert envelope.mail_from == "jöran@exämple.org"
    assert envelope.rcpt_tos == ["δοκιμή@παράδειγμα.δοκιμή"]
    assert envelope.smtputf8 and envelope.body_type == "8BITMIME"
    assert content == "Subject: ünïcode\r\n\r\nbödy\r\n".encode()
    assert b"with UTF8SMTP" in harness.service.received_header(envelope)


class RejectingService(SmtpService):
    def handle_message(self, envelope: Envelope) -> tuple[int, str] | None:
        if envelope.rcpt_tos[0].startswith("spam"):
            return 550, "no thanks"
        if envelope.rcpt_tos[0].startswith("later"):
            return 451, "4.7.1 try again later"
        if envelope.rcpt_tos[0].startswith("boom"):
            raise RuntimeError("handler bug")
        return super().handle_message(envelope)


def test_delivery_hook_verdicts(make: Any, tmp_path: Path) -> None:
    client = session(make(service=RejectingService))
    replies = []
    for rcpt in (b"spam", b"later", b"boom", b"fine"):
        client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<" + rcpt + b"@example.org>\r\nDATA\r\nhi\r\n.\r\n")
        replies.append(client.read_lines()[-1])
    assert replies[0] == "550 5.0.0 no thanks"
    assert replies[1] == "451 4.7.1 try again later"
    assert replies[2] == "451 4.3.0 Error: local error in processing"
    assert replies[3].startswith("250 2.0.0 OK: queued as ")
    assert stored_messages(tmp_path / "data" / "maildir") == [b"hi\r\n"]


def test_format_reply() -> None:
    assert format_reply(250, "fine") == "250 2.0.0 fine"
    assert format_reply(554, "5.7.1 denied") == "554 5.7.1 denied"
    assert format_reply(550, "one\ntwo") == "550-5.0.0 one\r\n550 5.0.0 two"
    with pytest.raises(ValueError):
        format_reply(99, "x")


def test_large_message_memory_stays_bounded(make: Any, tmp_path: Path) -> None:
    """20 MB through DATA: the peak of Python allocations stays a small fraction of it."""
    harness = make(spool_threshold=256 << 10)
    client = session(harness)
    client.send(b"MAIL FROM:<a@example.org> SIZE=20971520\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert codes(client) == ["250", "250", "354"]
    line = b".0123456789abcdef" * 60 + b"\r\n"  # 1022 bytes; every line needs unstuffing
    piece = line * 64  # about 64 KiB, like one socket read
    pieces = (20 << 20) // len(piece)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        for _ in range(pieces):
            client.send(stuff(piece))
            digest.update(piece)
        client.send(b".\r\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes(client) == ["250"]
    assert peak < 4 << 20, peak  # the message is 20 MiB
    (path,) = (tmp_path / "data" / "maildir" / "new").iterdir()
    assert path.stat().st_size > pieces * len(piece)
    check = hashlib.sha256()
    with path.open("rb") as stored:
        head = stored.read(512)
        skip = head.index(b"\r\n", head.index(b"\tfor <")) + 2
        stored.seek(skip)
        while chunk := stored.read(1 << 20):
            check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()


class FullDisk(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_spool_failure_answers_4xx_after_the_data(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("linechat.services.smtp.data.tempfile.SpooledTemporaryFile", lambda **kw: FullDisk())
    client = session(make())
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    assert codes(client) == ["250", "250", "354"]
    client.send(b"RCPT TO:<c@example.org>\r\n")  # message text, not a command
    assert client.read() == b""
    client.send(b".\r\nNOOP\r\n")
    assert client.read_lines() == ["452 4.3.1 Error: insufficient system storage", "250 2.0.0 OK"]


def test_unexpected_error_mid_data_answers_451_and_hangs_up(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, chunk: bytes) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("linechat.services.smtp.data.DataReader.feed", broken)
    client = session(make())
    client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nRCPT TO:<c@example.org>\r\n")
    assert client.read_lines()[-1] == "451 4.3.0 Error: local error in processing"
    assert client.closed


@pytest.mark.parametrize("name", [b"a b", b"a\rb", b"a\x00b"])
def test_helo_name_must_be_one_printable_word(make: Any, name: bytes) -> None:
    client = make().connect()
    client.read()
    client.send(b"EHLO " + name + b"\r\nHELO " + name + b"\r\n")
    assert codes(client) == ["501", "501"]


TOKENS = [
    b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<a@b.c>\r\n", b"MAIL FROM:<>", b" SIZE=", b"RCPT TO:<d@e.f>\r\n",
    b"DATA\r\n", b"RSET\r\n", b"NOOP\r\n", b"\r\n", b"\r", b"\n", b".", b"\r\n.\r\n", b"<", b">", b":", b"\xff",
    b"\xc3\xa9", b"\x00", b"x" * 700, b"SMTPUTF8", b" BODY=8BITMIME", b"VRFY", b"HELP\r\n",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(TOKENS) | st.binary(max_size=20), max_size=25))
def test_random_input_never_wedges_a_session(make: Any, pieces: list[bytes]) -> None:
    harness = make(service=CapturingService, max_message_size=2000)
    client = harness.connect()
    for piece in pieces:
        if client.closed:
            return
        client.send(piece)
    if client.closed:
        return
    client.read()
    # Whatever state the junk left: end a line, end a possible DATA, reset, and ask.
    client.send(b"\r\n.\r\nRSET\r\nNOOP\r\n")
    assert client.closed or client.read_lines()[-1] == "250 2.0.0 OK"


def test_per_recipient_folder_names_stay_inside_the_maildir(make: Any, tmp_path: Path) -> None:
    harness = make(delivery="per_recipient", maildir=tmp_path / "boxes")
    client = session(harness)
    client.send(
        b'MAIL FROM:<a@example.org>\r\nRCPT TO:<"../../evil"@example.org>\r\nRCPT TO:<.hidden@example.org>\r\n'
        b"RCPT TO:<Bob@Example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nhi\r\n.\r\n"
    )
    assert codes(client) == ["250"] * 5 + ["354", "250"]
    names = sorted(path.name for path in (tmp_path / "boxes").iterdir())
    assert names == ['".._.._evil"@example.org', "_.hidden@example.org", "bob@example.org"]
    assert stored_messages(tmp_path / "boxes" / "bob@example.org") == [b"hi\r\n"]  # one copy for both spellings
