"""Requests, responses and routes of the HTTP service (what handlers see; no h11 here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
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


class Request:
    """One HTTP request, its body read in full; the path, query and headers are decoded when first read."""

    __slots__ = (
        "_headers",
        "_path",
        "_query",
        "_query_string",
        "_raw_headers",
        "body",
        "http_version",
        "method",
        "protocol",
        "target",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]],
        body: bytes,
        protocol: HttpProtocol,
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.target = target
        self.body = body
        self.protocol = protocol
        self.http_version = http_version
        if isinstance(headers, Mapping):
            self._headers: dict[str, str] | None = {k.lower(): v for k, v in headers.items()}
            self._raw_headers: Iterable[tuple[bytes, bytes]] = ()
        else:
            self._headers = None
            self._raw_headers = headers  # as h11 gives them: lower-case names, bytes
        self._path: str | None = None
        self._query_string = ""
        self._query: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r}>"

    @property
    def headers(self) -> dict[str, str]:
        """The header fields by lower-case name (a repeated field: its last value)."""
        if self._headers is None:
            self._headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in self._raw_headers}
        return self._headers

    @property
    def path(self) -> str:
        """The target's path, percent-decoded."""
        if self._path is None:
            self._split()
        return self._path  # type: ignore[return-value]

    @property
    def query(self) -> dict[str, str]:
        """The query string's fields (a repeated field: its last value)."""
        if self._query is None:
            if self._path is None:
                self._split()
            qs = self._query_string
            self._query = dict(parse_qsl(qs, keep_blank_values=True)) if qs else {}
        return self._query

    def _split(self) -> None:
        target = self.target
        if target[:1] == "/" and target[:2] != "//" and "#" not in target:
            path, _, self._query_string = target.partition("?")  # origin form, the usual case
        else:
            parts = urlsplit(target)  # absolute form (or odd shapes): as urllib reads them
            path, self._query_string = parts.path, parts.query
        self._path = unquote(path) or "/"

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


# json.dumps with options builds an encoder per call: one, made once.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response (UTF-8, compact)."""
    body = _JSON(data).encode("utf-8")
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
    """Routes ``(method, path pattern)`` to handlers; ``{name}`` in a pattern captures one path segment.

    Paths without a ``{name}`` are looked up in a dict, before any pattern.
    """

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Handler]] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register *handler* for *method* (GET also answers HEAD) and *pattern*."""
        if "{" not in pattern:
            self._exact.setdefault(pattern, {}).setdefault(method.upper(), handler)
            return
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
        methods = self._exact.get(path)
        allowed = False
        if methods is not None:
            handler = methods.get(method)
            if handler is None and method == "HEAD":
                handler = methods.get("GET")
            if handler is not None:
                return handler, {}
            allowed = True
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method or (method == "HEAD" and route_method == "GET"):
                return handler, found.groupdict()
            allowed = True
        return 405 if allowed else 404
