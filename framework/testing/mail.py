"""An SMTP sink for tests: point the code under test at it, then look at what it sent.

The ``linechat_inbox`` pytest fixture starts one per test::

    def test_signup_sends_a_welcome(linechat_inbox):
        app.config["SMTP_PORT"] = linechat_inbox.port
        client.post("/signup", data={"email": "ann@example.test"})
        mail = linechat_inbox.wait_for(to="ann@example.test", subject="Welcome")
        assert "activate" in mail.text
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linechat.services.smtp.inbox import Inbox, StoredMessage
    from linechat.testing import RunningServer

__all__ = ["CaughtMessage", "MailInbox", "smtp_sink"]


@dataclass
class CaughtMessage:
    """One message the sink stored: its envelope and the parsed message."""

    id: str
    mail_from: str
    #: The envelope recipients (everyone the client gave at RCPT, Bcc'd ones included).
    recipients: list[str]
    raw: bytes = field(repr=False)
    message: EmailMessage = field(repr=False)

    @property
    def subject(self) -> str:
        """The decoded Subject."""
        return str(self.message.get("subject", ""))

    @property
    def to(self) -> list[str]:
        """The addresses in To and Cc."""
        return [a.addr_spec for name in ("to", "cc") for h in self.message.get_all(name, []) for a in h.addresses]

    @property
    def bcc(self) -> list[str]:
        """Envelope recipients absent from To/Cc (recorded by the sink as Bcc)."""
        return [a.addr_spec for h in self.message.get_all("bcc", []) for a in h.addresses]

    @property
    def text(self) -> str:
        """The plain-text body ("" if none), line endings as ``\\n``."""
        return self._body("plain")

    @property
    def html(self) -> str:
        """The HTML body ("" if none)."""
        return self._body("html")

    def _body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None:
            return ""
        return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]

    @property
    def attachments(self) -> list[tuple[str, str, bytes]]:
        """Each attachment as ``(filename, content type, bytes)``."""
        out = []
        for part in self.message.iter_attachments():
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            out.append((part.get_filename() or "", part.get_content_type(), data))
        return out


class MailInbox:
    """The mail a running SMTP sink received, safe to use from the test's thread."""

    def __init__(self, server: RunningServer, service: str = "smtp") -> None:
        self.server = server
        self.host, self.port = server.address(service)
        smtp = server.app.services[service]
        inbox = getattr(smtp, "inbox", None)
        if inbox is None:
            raise RuntimeError(f"service {service!r} keeps no inbox")
        self._inbox: Inbox = inbox
        self._changed = threading.Condition()
        inbox.subscribe(self._on_event)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the SMTP sink."""
        return self.host, self.port

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        with self._changed:
            self._changed.notify_all()

    @staticmethod
    def _load(stored: StoredMessage, raw: bytes) -> CaughtMessage:
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return CaughtMessage(stored.id, stored.return_path, list(stored.delivered_to), raw, parsed)

    @property
    def messages(self) -> list[CaughtMessage]:
        """Every message stored so far, oldest first."""
        out = []
        for stored in reversed(self._inbox.list(None, 0, 1 << 30)[1]):
            raw = self._inbox.raw(stored.id)
            if raw is not None:
                out.append(self._load(stored, raw))
        return out

    def find(
        self, to: str | None = None, subject: str | None = None, sender: str | None = None, text: str | None = None
    ) -> list[CaughtMessage]:
        """Messages matching every given filter (case-insensitive substrings), oldest first."""
        from linechat.services.smtp.inbox import Query

        query = Query(to=to, sender=sender, subject=subject, text=text)
        found = []
        for stored in reversed(self._inbox.list(query, 0, 1 << 30)[1]):
            raw = self._inbox.raw(stored.id)
            if raw is not None:
                found.append(self._load(stored, raw))
        return found

    def wait_for(
        self,
        to: str | None = None,
        subject: str | None = None,
        sender: str | None = None,
        text: str | None = None,
        timeout: float = 10.0,
    ) -> CaughtMessage:
        """The first message matching the filters, waiting up to *timeout* seconds for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.find(to=to, subject=subject, sender=sender, text=text)
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    wanted = {
                        k: v
                        for k, v in {"to": to, "subject": subject, "sender": sender, "text": text}.items()
                        if v is not None
                    }
                    have = [(m.subject, m.recipients) for m in self.messages]
                    raise AssertionError(f"no message matching {wanted} within {timeout} s; the sink has {have}")
                self._changed.wait(min(left, 0.5))

    def clear(self) -> int:
        """Delete every message; return how many."""
        return self._inbox.clear()

    def __len__(self) -> int:
        return len(self._inbox)

    def close(self) -> None:
        """Stop listening to the sink."""
        self._inbox.unsubscribe(self._on_event)


@contextmanager
def smtp_sink(data_dir: str | Path, **smtp_settings: Any) -> Iterator[MailInbox]:
    """Run an SMTP sink on a free loopback port in a thread; yield its :class:`MailInbox`."""
    from linechat.services.smtp import SmtpService
    from linechat.testing import serve

    smtp = {"fsync": False, "hostname": "localhost", **smtp_settings}
    with serve(SmtpService, data_dir=data_dir, settings={"services": {"smtp": smtp}}) as server:
        inbox = MailInbox(server)
        try:
            yield inbox
        finally:
            inbox.close()
