"""Responses on the wire: the status line and headers written as bytes (h11 parses requests; this writes).

What h11's writer would do for the responses this service sends, without its
per-response event objects: ``Content-Length`` framing (none for 1xx, 204 and
304), no body after a HEAD (the caller's part), ``connection: close`` when
either side ends the connection, chunks for an event stream to an HTTP/1.1
client.  Header names and values from handlers are checked as h11 checks
them: a name must be a token and a value may hold no line break or other
control character, so a value can never start a header or a response of its
own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from linechat.services.http.messages import REASONS, Response

__all__ = ["CONTINUE", "error_bytes", "response_head", "stream_head"]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# A field value (RFC 9110 section 5.5): visible characters, with spaces or tabs inside.
_VALUE = re.compile(rb"[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?")
# The framing is ours to write: a handler may not set it.
_FRAMING = {b"content-length", b"transfer-encoding"}

_STATUS_LINES: dict[int, bytes] = {}
_CONTENT_TYPES: dict[str, bytes] = {}
_CONTENT_TYPES_KEPT = 64  # content types can come from stored mail: remember only the first few


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if status.__class__ is not int or not 100 <= status <= 999:
            raise ValueError(f"not an HTTP status: {status!r}")
        line = b"HTTP/1.1 %d %s\r\nserver: linechat\r\n" % (status, REASONS.get(status, "").encode("ascii"))
        _STATUS_LINES[status] = line
    return line


def _field(name: str, value: str) -> bytes:
    raw_name = name.encode("ascii").lower()
    raw_value = value.encode("ascii")
    if _TOKEN.fullmatch(raw_name) is None:
        raise ValueError(f"bad header name {name!r}")
    if raw_value and _VALUE.fullmatch(raw_value) is None:
        raise ValueError(f"bad value for header {name!r}")
    return raw_name + b": " + raw_value + b"\r\n"


def _content_type_line(content_type: str) -> bytes:
    line = _CONTENT_TYPES.get(content_type)
    if line is None:
        line = _field("content-type", content_type)
        if len(_CONTENT_TYPES) < _CONTENT_TYPES_KEPT:
            _CONTENT_TYPES[content_type] = line
    return line


def _extra_headers(headers: Iterable[tuple[str, str]]) -> tuple[bytes, bool]:
    """A handler's own headers as bytes, and whether one of them asks to close."""
    lines = []
    close = False
    for name, value in headers:
        line = _field(name, value)
        key = line[: line.index(b":")]
        if key in _FRAMING:
            raise ValueError(f"a handler may not set {name!r}")
        if key == b"connection":
            close = close or "close" in value.lower()
            continue  # ours is written below
        lines.append(line)
    return b"".join(lines), close


def response_head(response: Response, close: bool) -> tuple[bytes, bool]:
    """The status line and headers of *response*, and whether the connection ends after it.

    Raises ValueError for a header that cannot go on the wire.
    """
    status = response.status
    head = _status_line(status)
    if response.headers:
        extra, wants_close = _extra_headers(response.headers)
        close = close or wants_close
    else:
        extra = b""
    if status < 200 or status == 204 or status == 304:
        head += extra  # no content, so no content headers
    else:
        head += _content_type_line(response.content_type) + b"content-length: %d\r\n" % len(response.body) + extra
    return (head + b"connection: close\r\n\r\n" if close else head + b"\r\n"), close


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nserver: linechat\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-store\r\n"
)


def stream_head(*, chunked: bool = False, close: bool = False, head_only: bool = False) -> bytes:
    """The head of a Server-Sent Events response (chunked for HTTP/1.1, else ended by the close)."""
    head = _STREAM_HEAD
    if chunked and not head_only:
        head += b"transfer-encoding: chunked\r\n"
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n"


def error_bytes(status: int, message: str) -> bytes:
    """A complete plain-text error response that ends the connection."""
    reason = REASONS.get(status, "Error")
    body = (reason + ": " + message + "\n").encode("utf-8", "replace")
    return (
        _status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )
