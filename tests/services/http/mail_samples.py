"""Messages the HTTP tests send: HTML mail with a ``multipart/related`` image, and a real PNG for it."""

from __future__ import annotations

import struct
import zlib
from email.message import EmailMessage


def tiny_png() -> bytes:
    """A real 2x2 red PNG (a browser decodes it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def related_message(png: bytes) -> EmailMessage:
    """HTML mail with its logo as a multipart/related part, as mail clients and newsletters send it."""
    message = EmailMessage()
    message["From"] = "Shop <shop@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Subject"] = "With a logo"
    message.set_content("Plain text.\n")
    message.add_alternative(
        "<p><img id='logo' src=\"cid:logo.1@shop.example\" width='2'>"
        "<img id='missing' src='cid:nowhere@shop.example'>"
        "<img id='remote' src='https://tracker.example/pixel.gif'>"
        '<span style="background: url(CID:LOGO.1@shop.example)">x</span></p>\n',
        subtype="html",
    )
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    html_part.add_related(
        png, maintype="image", subtype="png", cid="<logo.1@shop.example>", filename="logo.png", disposition="inline"
    )
    message.add_attachment(b"%PDF-1.4 x", maintype="application", subtype="pdf", filename="Übersicht ✓.pdf")
    return message
