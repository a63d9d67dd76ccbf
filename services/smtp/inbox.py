"""The index of stored mail that the inbox API reads: list, search, parse, delete, wait, retention.

The Maildir stays the record: the index is rebuilt from it at start (headers
only) and kept up to date by the deliveries, which run on worker threads, so
every method takes a lock.  Listeners (the HTTP service's long-polls and
event streams) are called on the reactor's thread.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import structlog

if TYPE_CHECKING:
    from linechat.reactor import Reactor

__all__ = ["Inbox", "Query", "StoredMessage", "html_with_inline_images", "parse_message"]

_log = structlog.get_logger("linechat.smtp")

_HEAD_LIMIT = 256 << 10
_TEXT_SEARCH_LIMIT = 4 << 20  # bigger messages are searched in their headers only
#: Decoded bytes of a message's own images that its HTML may get inline (as data: URLs), in all.
INLINE_IMAGES_LIMIT = 10 << 20
# A cid: URL (RFC 2392) in HTML or CSS: up to a quote, a bracket, white space or a closing parenthesis.
_CID_URL = re.compile(r"\bcid:([^\s\"'<>()\\]+)", re.IGNORECASE)
_IMAGE_TYPE = re.compile(r"image/[a-z0-9][a-z0-9.+-]*")

Listener = Callable[[str, dict[str, Any]], None]


def _decode(value: Any) -> str:
    """A header value with RFC 2047 words decoded; never raises."""
    text = str(value)
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def _addresses(msg: Message, name: str) -> list[dict[str, str]]:
    values = [_decode(v) for v in msg.get_all(name, [])]
    try:
        pairs = getaddresses(values)
    except Exception:
        return [{"name": "", "address": v} for v in values]
    return [{"name": n, "address": a} for n, a in pairs if a or n]


@dataclass
class StoredMessage:
    """One stored copy: where it is and what its headers say."""

    id: str
    path: Path
    mailbox: str | None  # the recipient folder under per_recipient delivery
    received: float  # seconds since the epoch
    size: int
    return_path: str = ""
    delivered_to: list[str] = field(default_factory=list)
    sender: list[dict[str, str]] = field(default_factory=list)  # the From: field
    to: list[dict[str, str]] = field(default_factory=list)
    cc: list[dict[str, str]] = field(default_factory=list)
    bcc: list[dict[str, str]] = field(default_factory=list)
    subject: str = ""
    date: str | None = None
    message_id: str = ""

    @classmethod
    def load(cls, path: Path, mailbox: str | None) -> StoredMessage:
        """Index a message file by its name and its head."""
        stat = path.stat()
        name = path.name.split(":", 1)[0]
        try:
            # Maildir names start with the delivery time: <seconds>.M<microseconds>...
            seconds, _, rest = name.partition(".M")
            received = int(seconds) + int(rest.split("P", 1)[0]) / 1e6
        except ValueError:
            received = stat.st_mtime
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_LIMIT)
        end = head.find(b"\r\n\r\n")
        if end < 0:
            end = head.find(b"\n\n")
        msg = BytesHeaderParser().parsebytes(head[: end + 2] if end >= 0 else head)
        date = msg.get("date")
        iso = None
        if date is not None:
            with contextlib.suppress(Exception):
                iso = parsedate_to_datetime(str(date)).isoformat()
        return cls(
            id=name,
            path=path,
            mailbox=mailbox,
            received=received,
            size=stat.st_size,
            return_path=str(msg.get("return-path", "")).strip().strip("<>"),
            delivered_to=[str(v).strip() for v in msg.get_all("delivered-to", [])],
            sender=_addresses(msg, "from"),
            to=_addresses(msg, "to"),
            cc=_addresses(msg, "cc"),
            bcc=_addresses(msg, "bcc") + _addresses(msg, "x-envelope-to"),
            subject=_decode(msg.get("subject", "")),
            date=iso,
            message_id=str(msg.get("message-id", "")).strip(),
        )

    def summary(self) -> dict[str, Any]:
        """The JSON form used in lists and events."""
        return {
            "id": self.id,
            "mailbox": self.mailbox,
            "received": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.received))
            + f".{int(self.received * 1000) % 1000:03d}Z",
            "size": self.size,
            "return_path": self.return_path,
            "delivered_to": self.delivered_to,
            "from": self.sender,
            "to": self.to,
            "cc": self.cc,
            "bcc": self.bcc,
            "subject": self.subject,
            "date": self.date,
            "message_id": self.message_id,
        }

    def recipients_text(self) -> str:
        """Every recipient, by name and address, lower-cased (for the ``to`` filter)."""
        people = [f"{p['name']} <{p['address']}>" for p in (*self.to, *self.cc, *self.bcc)]
        return "\n".join([*people, *self.delivered_to]).lower()

    def sender_text(self) -> str:
        """The sender, by name and address, and the envelope sender, lower-cased."""
        return "\n".join([*(f"{p['name']} <{p['address']}>" for p in self.sender), self.return_path]).lower()


@dataclass(frozen=True)
class Query:
    """A filter on messages: each given field must be found (case-insensitive substring)."""

    to: str | None = None
    sender: str | None = None
    subject: str | None = None
    text: str | None = None

    def matches(self, message: StoredMessage) -> bool:
        """True if *message* passes every given field (``text`` reads the message file)."""
        if self.to and self.to.lower() not in message.recipients_text():
            return False
        if self.sender and self.sender.lower() not in message.sender_text():
            return False
        if self.subject and self.subject.lower() not in message.subject.lower():
            return False
        if self.text:
            return self.text.lower() in _search_text(message)
        return True

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return not (self.to or self.sender or self.subject or self.text)


def _search_text(message: StoredMessage) -> str:
    head = " ".join([message.subject, message.sender_text(), message.recipients_text()])
    if message.size > _TEXT_SEARCH_LIMIT:
        return head.lower()
    try:
        parsed = parse_message(message.path.read_bytes())
    except OSError:
        return head.lower()
    return "\n".join([head, parsed["text"] or "", parsed["html"] or ""]).lower()


def _part_text(part: Message) -> str:
    """A text part decoded by its charset, line endings as ``\n``."""
    try:
        text = str(part.get_content())  # type: ignore[attr-defined]
    except Exception:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        else:
            text = str(part.get_payload())
    return text.replace("\r\n", "\n")


def parse_message(raw: bytes) -> dict[str, Any]:
    """Headers, the text and HTML bodies and the other parts of a raw message."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    headers = []
    for name, value in msg.raw_items():
        headers.append([name, _decode(value).replace("\r\n", "\n")])
    text_part = html_part = None
    with contextlib.suppress(Exception):
        text_part = msg.get_body(preferencelist=("plain",))
    with contextlib.suppress(Exception):
        html_part = msg.get_body(preferencelist=("html",))
    parts = []
    for index, part in enumerate(msg.walk()):
        if part.is_multipart() or part is text_part or part is html_part:
            continue
        if index == 0 and not part.is_multipart() and text_part is None and html_part is None:
            continue  # a single-part message of another type is its own body
        payload = part.get_payload(decode=True)
        parts.append(
            {
                "index": index,
                "filename": part.get_filename() or "",
                "content_type": part.get_content_type(),
                "content_id": _content_id(part),
                "inline": part.get_content_disposition() != "attachment",
                "size": len(payload) if isinstance(payload, bytes) else 0,
            }
        )
    return {
        "headers": headers,
        "text": _part_text(text_part) if text_part is not None else None,
        "html": _part_text(html_part) if html_part is not None else None,
        "attachments": parts,
    }


def _content_id(part: Message) -> str:
    value = str(part.get("content-id", "")).strip()
    return value[1:-1].strip() if value.startswith("<") and value.endswith(">") else value


def html_with_inline_images(raw: bytes, limit: int = INLINE_IMAGES_LIMIT) -> str | None:
    """The HTML body with each ``cid:`` reference to one of the message's own image parts made a ``data:`` URL.

    This is how a mail reader shows a ``multipart/related`` message: the
    images travel in the message and the HTML names them by Content-ID.  A
    reference to a part that is not an image, not in the message, or past
    *limit* decoded bytes of images in all stays as it is (a broken image);
    None when the message has no HTML body.
    """
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    html_part = None
    with contextlib.suppress(Exception):
        html_part = msg.get_body(preferencelist=("html",))
    if html_part is None:
        return None
    html = _part_text(html_part)
    if "cid:" not in html.lower():
        return html
    images: dict[str, Message] = {}
    for part in msg.walk():
        content_id = _content_id(part)
        if content_id and not part.is_multipart() and _IMAGE_TYPE.fullmatch(part.get_content_type()):
            images.setdefault(content_id, part)
            images.setdefault(content_id.lower(), part)  # some mailers change the case of the reference
    budget = limit
    urls: dict[str, str] = {}

    def inline(match: re.Match[str]) -> str:
        nonlocal budget
        name = unquote(match.group(1))
        if name in urls:
            return urls[name]
        part = images.get(name) or images.get(name.lower())
        data = part.get_payload(decode=True) if part is not None else None
        if part is None or not isinstance(data, bytes) or len(data) > budget:
            return match.group(0)
        budget -= len(data)
        urls[name] = f"data:{part.get_content_type()};base64,{base64.b64encode(data).decode('ascii')}"
        return urls[name]

    return _CID_URL.sub(inline, html)


def message_part(raw: bytes, index: int) -> tuple[str, str, bytes] | None:
    """The decoded content of part *index* (numbered as :func:`parse_message` does): type, file name, bytes."""
    msg = message_from_bytes(raw, policy=policy.default)
    for number, part in enumerate(msg.walk()):
        if number == index and not part.is_multipart():
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else str(part.get_payload()).encode()
            return part.get_content_type(), part.get_filename() or "", data
    return None


class Inbox:
    """The messages of one SMTP service's Maildir(s), oldest first, safe to use from several threads."""

    def __init__(
        self,
        root: Path,
        per_recipient: bool = False,
        reactor: Reactor | None = None,
        max_messages: int | None = None,
        max_age: float | None = None,
    ) -> None:
        self.root = root
        self.per_recipient = per_recipient
        self.reactor = reactor
        self.max_messages = max_messages
        self.max_age = max_age
        self._lock = threading.RLock()
        self._messages: dict[str, StoredMessage] = {}  # arrival order
        self._listeners: list[Listener] = []
        #: Messages ever added (a counter for metrics and for clients that poll).
        self.added_total = 0

    # ------------------------------------------------------------------ indexing

    def _roots(self) -> list[tuple[Path, str | None]]:
        if not self.per_recipient:
            return [(self.root, None)]
        if not self.root.is_dir():
            return []
        return [(p, p.name) for p in sorted(self.root.iterdir()) if (p / "new").is_dir()]

    def scan(self) -> int:
        """(Re)build the index from the Maildir(s); return the number of messages."""
        found: list[StoredMessage] = []
        for root, mailbox in self._roots():
            for sub in ("new", "cur"):
                folder = root / sub
                if not folder.is_dir():
                    continue
                for path in folder.iterdir():
                    if path.name.startswith("."):
                        continue
                    with contextlib.suppress(OSError):
                        found.append(StoredMessage.load(path, mailbox))
        found.sort(key=lambda m: (m.received, m.id))
        with self._lock:
            self._messages = {m.id: m for m in found}
        self.prune()
        return len(self._messages)

    def add(self, paths: Iterable[Path]) -> list[StoredMessage]:
        """Index freshly delivered files, apply the retention limits, tell the listeners."""
        added = []
        for path in paths:
            mailbox = path.parent.parent.name if self.per_recipient else None
            try:
                added.append(StoredMessage.load(path, mailbox))
            except OSError:
                continue
        with self._lock:
            for message in added:
                self._messages[message.id] = message
            self.added_total += len(added)
        for message in added:
            self._notify("message", message.summary())
        self.prune()
        return added

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._messages)

    def list(self, query: Query | None = None, offset: int = 0, limit: int = 50) -> tuple[int, list[StoredMessage]]:
        """Messages matching *query*, newest first: the number matching and the page asked for."""
        with self._lock:
            if query is None or query.empty:
                # The common case (the page, a poll): copy only the page asked for.
                page = list(itertools.islice(reversed(self._messages.values()), offset, offset + limit))
                return len(self._messages), page
            snapshot = list(reversed(self._messages.values()))
        snapshot = [m for m in snapshot if query.matches(m)]
        return len(snapshot), snapshot[offset : offset + limit]

    def get(self, message_id: str) -> StoredMessage | None:
        """The message with this id, or None."""
        with self._lock:
            return self._messages.get(message_id)

    def raw(self, message_id: str) -> bytes | None:
        """The stored bytes of a message, or None (a file deleted behind our back leaves the index)."""
        message = self.get(message_id)
        if message is None:
            return None
        try:
            return message.path.read_bytes()
        except FileNotFoundError:
            with self._lock:
                self._messages.pop(message_id, None)
            return None

    # ------------------------------------------------------------------ deleting

    def delete(self, message_id: str) -> bool:
        """Delete one message; False if there was none."""
        with self._lock:
            message = self._messages.pop(message_id, None)
        if message is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(message.path)
        self._notify("deleted", {"id": message_id})
        return True

    def clear(self) -> int:
        """Delete every message; return how many."""
        with self._lock:
            messages = list(self._messages.values())
            self._messages.clear()
        for message in messages:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(message.path)
        self._notify("cleared", {"deleted": len(messages)})
        return len(messages)

    def prune(self, now: float | None = None) -> int:
        """Delete the oldest messages beyond ``max_messages`` and those older than ``max_age``."""
        now = time.time() if now is None else now
        doomed: list[StoredMessage] = []
        with self._lock:
            ordered = list(self._messages.values())
            keep_from = 0
            if self.max_messages is not None and len(ordered) > self.max_messages:
                keep_from = len(ordered) - self.max_messages
            if self.max_age is not None:
                while keep_from < len(ordered) and now - ordered[keep_from].received > self.max_age:
                    keep_from += 1
            doomed = ordered[:keep_from]
            for message in doomed:
                del self._messages[message.id]
        for message in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(message.path)
            self._notify("deleted", {"id": message.id})
        return len(doomed)

    # ------------------------------------------------------------------ listeners

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event, data)`` on the reactor thread for "message", "deleted" and "cleared"."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling *listener*."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _notify(self, event: str, data: dict[str, Any]) -> None:
        if not self._listeners:
            return
        if self.reactor is not None:
            # Deliveries run on worker threads; listeners live on the reactor's.
            self.reactor.call_soon_threadsafe(self._fire, event, data)
        else:
            self._fire(event, data)

    def _fire(self, event: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, data)
            except Exception:  # one broken listener must not stop the others
                _log.exception("inbox_listener_failed", event=event)
