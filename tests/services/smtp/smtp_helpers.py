"""Shared helpers for the SMTP service tests (imported by the test modules)."""

from __future__ import annotations

import mailbox
from pathlib import Path

RECEIVED_END = b"\r\n\t"  # our Received: header folds its continuation lines with CRLF + tab


def stored_messages(root: Path) -> list[bytes]:
    """Raw bytes of every message in the Maildir at *root*, Received: header removed."""
    # mailbox.Maildir lists the messages; we read the files ourselves because
    # get_bytes() rewrites line endings and we check bytes exactly.
    box = mailbox.Maildir(root, create=False)
    return [strip_received((root / "new" / key).read_bytes()) for key in sorted(box.keys())]


OUR_HEADERS = (b"Return-Path: ", b"Delivered-To: ", b"Bcc: ", b"X-Envelope-To: ")


def strip_received(raw: bytes) -> bytes:
    """Drop the headers the server adds (envelope headers, then Received:) with their folded lines."""
    while raw.startswith(OUR_HEADERS):
        raw = _drop_first_header(raw)
    assert raw.startswith(b"Received: "), raw[:60]
    return _drop_first_header(raw)


def _drop_first_header(raw: bytes) -> bytes:
    pos = raw.index(b"\r\n")
    while raw[pos + 2 : pos + 3] in (b"\t", b" "):
        pos = raw.index(b"\r\n", pos + 2)
    return raw[pos + 2 :]


def maildir_files(root: Path) -> list[Path]:
    """Every file under tmp/ and new/ of a Maildir (cur/ is for readers)."""
    return [p for sub in ("tmp", "new") if (root / sub).is_dir() for p in (root / sub).iterdir()]
