"""Requests, responses and routes of the HTTP service (what handlers see; no h11 here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from linechat.services.http.protocol import HttpProtocol

__all__ = ["EventStream", "Request", "Response", "Router", "json_response", "text_response"]

REASONS = {
    200: "OK",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


@dataclass
class Request:
    """One HTTP request, its body read in full."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    protocol: HttpProtocol
    http_version: str = "1.1"
    path: str = field(init=False)
    query: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = unquote(parts.path) or "/"
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))

    def json(self) -> Any:
        """The body parsed as JSON (ValueError if it is not)."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """A complete response: status, headers, body."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response (UTF-8, compact)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json")


def text_response(text: str, status: int = 200) -> Response:
    """A plain-text response."""
    return Response(status, text.encode("utf-8"))


def error_response(status: int, message: str | None = None) -> Response:
    """A JSON error: ``{"error": ...}``."""
    return json_response({"error": message or REASONS.get(status, "error")}, status)


class EventStream:
    """A Server-Sent Events response: headers now, events as they come, until either side closes."""

    def __init__(self, on_open: Callable[[EventStream], None], on_close: Callable[[EventStream], None]) -> None:
        self.on_open = on_open
        self.on_close = on_close
        self.protocol: HttpProtocol | None = None

    def send(self, event: str, data: Any) -> None:
        """Send one event whose data is JSON."""
        if self.protocol is not None:
            payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            self.protocol.stream_data(f"event: {event}\ndata: {payload}\n\n".encode())

    def comment(self, text: str = "") -> None:
        """Send a comment line (keeps proxies and the connection awake)."""
        if self.protocol is not None:
            self.protocol.stream_data(f": {text}\n\n".encode())


Handler = Callable[..., Any]


class Router:
    """Routes ``(method, path pattern)`` to handlers; ``{name}`` in a pattern captures one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register *handler* for *method* (GET also answers HEAD) and *pattern*."""
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def decorate(func: Handler) -> Handler:
            self.add(method, pattern, func)
            return func

        return decorate

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | int:
        """The handler and its path parameters, or 404 / 405."""
        allowed = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method or (method == "HEAD" and route_method == "GET"):
                return handler, found.groupdict()
            allowed = True
        return 405 if allowed else 404
