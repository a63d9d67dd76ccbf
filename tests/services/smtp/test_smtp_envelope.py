"""The envelope kept in stored mail, all-or-nothing delivery, tmp/ clean-up, retention, leniency, LMTP."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from linechat.services.smtp import SmtpService
from linechat.services.smtp.maildir import MaildirWriter
from linechat.testing import MemoryClient, ServiceHarness
from smtp_helpers import maildir_files, stored_messages

MESSAGE = (
    b"From: Sender <s@example.org>\r\n"
    b"To: Alice <alice@example.org>,\r\n bob@EXAMPLE.org\r\n"
    b"Cc: carol@example.org\r\n"
    b"Subject: envelope\r\n"
    b"\r\n"
    b"body line\r\n"
)


@pytest.fixture
def make(linechat_harness: Callable[..., ServiceHarness]) -> Callable[..., ServiceHarness]:
    def factory(**settings: Any) -> ServiceHarness:
        settings.setdefault("delivery_threads", 0)
        settings.setdefault("hostname", "mx.test")
        return linechat_harness(SmtpService, **settings)

    return factory


def send(client: MemoryClient, rcpts: list[str], body: bytes = MESSAGE, sender: str = "<s@example.org>") -> list[str]:
    client.send(b"EHLO client.test\r\n")
    client.read()
    lines = [f"MAIL FROM:{sender}"] + [f"RCPT TO:<{r}>" for r in rcpts] + ["DATA"]
    client.send(("\r\n".join(lines) + "\r\n").encode() + body + b".\r\n")
    return [line[:3] for line in client.read_lines()]


def headers_before_received(raw: bytes) -> list[bytes]:
    head = raw[: raw.index(b"Received: ")]
    return head.split(b"\r\n")[:-1]


def test_return_path_delivered_to_and_bcc_then_the_message_unchanged(make: Any, tmp_path: Path) -> None:
    harness = make()
    rcpts = ["alice@example.org", "bob@example.org", "Carol@Example.org", "dave@example.org", "erin@example.org"]
    assert send(harness.connect(), rcpts) == ["250"] * 6 + ["354", "250"]
    root = tmp_path / "data" / "maildir"
    (path,) = maildir_files(root)
    raw = path.read_bytes()
    assert headers_before_received(raw) == [
        b"Return-Path: <s@example.org>",
        b"Delivered-To: alice@example.org",
        b"Delivered-To: bob@example.org",
        b"Delivered-To: Carol@Example.org",
        b"Delivered-To: dave@example.org",
        b"Delivered-To: erin@example.org",
        b"Bcc: dave@example.org,",
        b"\terin@example.org",
    ]
    assert re.search(rb"Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test \(linechat\) with ESMTP", raw)
    assert stored_messages(root) == [MESSAGE]  # byte for byte after our headers
    summary = harness.service.inbox.list()[1][0].summary()
    assert [p["address"] for p in summary["bcc"]] == ["dave@example.org", "erin@example.org"]
    assert summary["return_path"] == "s@example.org"


def test_null_sender_and_x_envelope_to(make: Any, tmp_path: Path) -> None:
    harness = make(hidden_recipients="x-envelope-to")
    assert send(harness.connect(), ["alice@example.org", "zed@example.org"], sender="<>") == ["250"] * 3 + [
        "354",
        "250",
    ]
    (path,) = maildir_files(tmp_path / "data" / "maildir")
    assert headers_before_received(path.read_bytes()) == [
        b"Return-Path: <>",
        b"Delivered-To: alice@example.org",
        b"Delivered-To: zed@example.org",
        b"X-Envelope-To: zed@example.org",
    ]


def test_hidden_recipients_none_and_an_existing_bcc_field(make: Any, tmp_path: Path) -> None:
    harness = make(hidden_recipients="none")
    send(harness.connect(), ["zed@example.org"])
    (path,) = maildir_files(tmp_path / "data" / "maildir")
    assert b"Bcc" not in headers_before_received(path.read_bytes())[-1]
    path.unlink()
    harness2 = make(maildir=tmp_path / "other")
    with_bcc = b"To: alice@example.org\r\nBcc: someone@example.org\r\n\r\nhi\r\n"
    send(harness2.connect(), ["alice@example.org", "zed@example.org"], body=with_bcc)
    (path,) = maildir_files(tmp_path / "other")
    # The message keeps its one Bcc field; the hidden recipient goes to X-Envelope-To.
    assert headers_before_received(path.read_bytes())[-1] == b"X-Envelope-To: zed@example.org"


def test_per_recipient_copies_carry_their_own_recipient(make: Any, tmp_path: Path) -> None:
    harness = make(delivery="per_recipient", maildir=tmp_path / "boxes")
    assert send(harness.connect(), ["alice@example.org", "zed@example.org"])[-1] == "250"
    (alice,) = maildir_files(tmp_path / "boxes" / "alice@example.org")
    (zed,) = maildir_files(tmp_path / "boxes" / "zed@example.org")
    assert headers_before_received(alice.read_bytes()) == [
        b"Return-Path: <s@example.org>",
        b"Delivered-To: alice@example.org",
    ]
    assert headers_before_received(zed.read_bytes()) == [
        b"Return-Path: <s@example.org>",
        b"Delivered-To: zed@example.org",
        b"Bcc: zed@example.org",
    ]
    assert b"\tfor <zed@example.org>; " in zed.read_bytes()


def test_recipient_that_cannot_be_stored_is_refused_at_rcpt(make: Any, tmp_path: Path) -> None:
    harness = make(delivery="per_recipient", maildir=tmp_path / "boxes")
    long_local = "x" * 250 + "@example.org"  # a folder name over 255 bytes
    replies = send(harness.connect(), ["alice@example.org", long_local])
    assert replies == ["250", "250", "553", "354", "250"]
    assert sorted(p.name for p in (tmp_path / "boxes").iterdir()) == ["alice@example.org"]


def test_delivery_is_all_or_nothing_and_a_retry_makes_no_duplicate(
    make: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = make(delivery="per_recipient", maildir=tmp_path / "boxes")
    real_rename = os.rename
    calls = {"n": 0}

    def failing_rename(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the third copy's rename fails, after two copies went to new/
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    rcpts = ["a@example.org", "b@example.org", "c@example.org"]
    client = harness.connect()
    assert send(client, rcpts)[-1] == "451"
    assert [p for box in (tmp_path / "boxes").iterdir() for p in maildir_files(box)] == []
    assert len(harness.service.inbox) == 0
    monkeypatch.setattr(os, "rename", real_rename)
    for _ in range(3):  # the client retries; once it succeeds there is one copy each
        client.send(b"RSET\r\n")
        client.read()
        if send(client, rcpts)[-1] == "250":
            break
    for rcpt in rcpts:
        assert stored_messages(tmp_path / "boxes" / rcpt) == [MESSAGE]


def test_tmp_leftovers_cleaned_at_start(make: Any, tmp_path: Path) -> None:
    root = tmp_path / "data" / "maildir"
    writer = MaildirWriter("mx.test")
    writer.ensure(root)
    dead_pid = 2**22 + 12345  # above pid_max on Linux: no such process
    ours_dead = root / "tmp" / f"1700000000.M1P{dead_pid}Q1.mx.test"
    ours_alive = root / "tmp" / f"1700000000.M1P{os.getpid()}Q2.mx.test"
    foreign_old = root / "tmp" / "written-by-someone-else-long-ago"
    foreign_new = root / "tmp" / "written-by-someone-else-now"
    for path in (ours_dead, ours_alive, foreign_old, foreign_new):
        path.write_bytes(b"partial")
    old = time.time() - 40 * 3600
    os.utime(foreign_old, (old, old))
    make()
    assert sorted(p.name for p in (root / "tmp").iterdir()) == sorted([ours_alive.name, foreign_new.name])


def test_retention_keeps_the_newest_messages(make: Any, tmp_path: Path) -> None:
    harness = make(retention_max_messages=3)
    client = harness.connect()
    for n in range(5):
        body = f"Subject: n{n}\r\n\r\nhi\r\n".encode()
        assert send(client, ["a@example.org"], body=body)[-1] == "250"
    root = tmp_path / "data" / "maildir"
    subjects = sorted(raw.split(b"\r\n")[0] for raw in stored_messages(root))
    assert subjects == [b"Subject: n2", b"Subject: n3", b"Subject: n4"]
    assert [m.subject for m in harness.service.inbox.list()[1]] == ["n4", "n3", "n2"]


def test_retention_by_age(make: Any, tmp_path: Path) -> None:
    harness = make(retention_max_age=60)
    client = harness.connect()
    assert send(client, ["a@example.org"])[-1] == "250"
    inbox = harness.service.inbox
    assert inbox.prune(now=time.time() + 30) == 0
    assert inbox.prune(now=time.time() + 120) == 1
    assert maildir_files(tmp_path / "data" / "maildir") == []


def test_retention_applies_at_start(make: Any, tmp_path: Path) -> None:
    harness = make()
    client = harness.connect()
    for _ in range(4):
        send(client, ["a@example.org"])
    harness.close()
    again = make(retention_max_messages=1)
    assert len(again.service.inbox) == 1
    assert len(maildir_files(tmp_path / "data" / "maildir")) == 1


@pytest.mark.parametrize("allow", [True, False])
def test_unbracketed_paths_are_a_setting(make: Any, allow: bool) -> None:
    client = make(allow_unbracketed=allow).connect()
    client.send(b"EHLO c\r\n")
    client.read()
    client.send(b"MAIL FROM:a@example.org SIZE=10\r\nRCPT TO: b@example.org\r\n")
    expected = ["250", "250"] if allow else ["501", "503"]
    assert [line[:3] for line in client.read_lines()] == expected


def test_unbracketed_garbage_still_refused(make: Any) -> None:
    client = make().connect()
    client.send(b"EHLO c\r\nMAIL FROM:a@example.org>\r\nMAIL FROM:\r\nMAIL FROM:local\r\n")
    assert [line[:3] for line in client.read_lines()[-3:]] == ["501", "501", "501"]


def lmtp_session(harness: ServiceHarness) -> MemoryClient:
    client = harness.connect()
    assert client.read_lines() == ["220 mx.test LMTP linechat ready"]
    return client


def test_lmtp_lhlo_and_a_reply_per_recipient(make: Any, tmp_path: Path) -> None:
    harness = make(lmtp=True)
    client = lmtp_session(harness)
    client.send(b"EHLO c\r\nHELO c\r\nLHLO c\r\n")
    lines = client.read_lines()
    assert lines[0].startswith("500 5.5.1") and lines[1].startswith("500 5.5.1")
    assert lines[2] == "250-mx.test Hello c" and "250-PIPELINING" in lines
    client.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    client.send(MESSAGE + b".\r\n")
    lines = client.read_lines()
    assert [line[:3] for line in lines] == ["250", "250", "250", "354", "250", "250"]
    (path,) = maildir_files(tmp_path / "data" / "maildir")
    assert b" with LMTP id " in path.read_bytes()


def test_lmtp_per_recipient_status_after_data(make: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    harness = make(lmtp=True, delivery="per_recipient", maildir=tmp_path / "boxes")
    writer = harness.service.writer
    real = writer.deliver_all

    def flaky(copies: list[tuple[Path, bytes]], body: Any) -> list[Path]:
        if copies[0][0].name == "b@example.org":
            raise OSError(5, "I/O error")
        return real(copies, body)

    monkeypatch.setattr(writer, "deliver_all", flaky)
    client = lmtp_session(harness)
    client.send(b"LHLO c\r\n")
    client.read()
    client.send(
        b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
        b"RCPT TO:<A@example.org>\r\nDATA\r\n" + MESSAGE + b".\r\n"
    )
    assert [line[:3] for line in client.read_lines()] == ["250", "250", "250", "250", "354", "250", "451", "250"]
    assert stored_messages(tmp_path / "boxes" / "a@example.org") == [MESSAGE]
    assert not (tmp_path / "boxes" / "b@example.org" / "new").exists() or not maildir_files(
        tmp_path / "boxes" / "b@example.org"
    )


def test_lmtp_too_big_gets_a_reply_per_recipient(make: Any) -> None:
    client = lmtp_session(make(lmtp=True, max_message_size=10))
    client.send(b"LHLO c\r\n")
    client.read()
    client.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    client.send(b"x" * 100 + b"\r\n.\r\n")
    assert [line[:3] for line in client.read_lines()] == ["250", "250", "250", "354", "552", "552"]


def test_deliveries_pending_counts_messages_being_stored(
    linechat_harness: Callable[..., ServiceHarness], tmp_path: Path
) -> None:
    import threading

    release = threading.Event()

    class Slow(SmtpService):
        def handle_message(self, envelope: Any) -> Any:
            release.wait(20)
            return super().handle_message(envelope)

    harness = linechat_harness(Slow, delivery_threads=1, hostname="mx.test", fsync=False)
    client = harness.connect()
    client.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nhi\r\n.\r\n")
    assert harness.service.deliveries_pending == 1  # the reply waits for the delivery thread
    release.set()
    for _ in range(2000):  # bounded wait for the thread's answer
        harness.run_ready()
        if harness.service.deliveries_pending == 0:
            break
        time.sleep(0.005)
    assert harness.service.deliveries_pending == 0
    assert client.read_lines()[-1].startswith("250 2.0.0 OK")


def test_ensure_completes_a_maildir_whose_root_another_process_made(tmp_path: Path) -> None:
    # Two workers of `serve --workers` start at once: one has made the root, not yet its subfolders.
    root = tmp_path / "maildir"
    root.mkdir()
    (root / "cur").mkdir()
    MaildirWriter("test.host", fsync=True).ensure(root)
    assert all((root / sub).is_dir() for sub in ("tmp", "new", "cur"))
