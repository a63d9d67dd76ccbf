"""The HTTP service: the mail catcher's inbox API and web page, ``/metrics`` and ``/health``."""

from __future__ import annotations

import mimetypes
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from linechat import Pending, Service, ServiceSettings
from linechat.services.http.messages import (
    EventStream,
    Request,
    Response,
    Router,
    error_response,
    json_response,
)
from linechat.services.http.protocol import HttpProtocol
from pydantic import Field

if TYPE_CHECKING:
    from linechat.services.smtp.inbox import Inbox

__all__ = ["HttpService", "HttpSettings"]

# The page runs our own script and styles only; a message's HTML is shown in a
# sandboxed iframe (no scripts, no same origin) and may load nothing remote.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-src 'self' about:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
)
# Raw messages and parts are the sender's bytes: never let them run as our origin.
UNTRUSTED = [("content-security-policy", "sandbox"), ("x-content-type-options", "nosniff")]
# A message's HTML as the page frames it: no scripts, no origin of ours (sandbox), nothing loaded
# from anywhere (its own images come inline as data: URLs), no forms, no referrer.
MESSAGE_HTML = [
    (
        "content-security-policy",
        "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
]


class HttpSettings(ServiceSettings):
    """Settings of the HTTP service."""

    port: int = Field(8026, ge=0, le=65535, description="TCP port (next to the SMTP service's 8025)")
    idle_timeout: float | None = Field(
        None, ge=0, description="framework input-silence cutoff (off: keep_alive_timeout and request_timeout rule)"
    )
    max_header_size: int = Field(16 << 10, ge=1024, description="largest request line plus headers (431 above)")
    max_body_size: int = Field(1 << 20, ge=0, description="largest request body (413 above)")
    request_timeout: float = Field(
        10.0, gt=0, description="seconds to receive a whole request once it began (408 after: slowloris)"
    )
    keep_alive_timeout: float = Field(60.0, gt=0, description="seconds an idle keep-alive connection stays open")
    smtp_service: str = Field("smtp", description="the SMTP service (by name) whose mail the inbox API serves")
    max_wait: float = Field(300.0, gt=0, description="longest wait a client may ask of /api/v1/wait (seconds)")
    heartbeat: float = Field(15.0, gt=0, description="seconds between keep-alive comments on event streams")


class _Waiter:
    """One long-poll: a filter, its pending reply and its timer."""

    __slots__ = ("pending", "protocol", "query", "timer")

    def __init__(self, protocol: HttpProtocol, pending: Pending, query: Any) -> None:
        self.protocol = protocol
        self.pending = pending
        self.query = query
        self.timer: Any = None


class HttpService(Service):
    """An HTTP/1.1 server on the framework (h11 parses): inbox API, web page, metrics, health."""

    name = "http"
    Settings = HttpSettings
    protocol = HttpProtocol
    description = "HTTP: the mail inbox API and page, /metrics, /health"

    settings: HttpSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.router = Router()
        #: Set to serve an inbox directly (tests, embedding); otherwise found through the app.
        self.inbox_override: Inbox | None = None
        self._waiters: list[_Waiter] = []
        self._streams: list[EventStream] = []
        self._subscribed: Inbox | None = None
        self._heartbeat: Any = None
        self._registry: Any = None
        self._add_routes()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the event-stream heartbeat."""
        self._heartbeat = self.reactor.call_every(self.settings.heartbeat, self._beat)

    def stop(self) -> None:
        """Stop the heartbeat and forget the inbox."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._subscribed is not None:
            self._subscribed.unsubscribe(self._inbox_event)
            self._subscribed = None

    def inbox(self) -> Inbox | None:
        """The inbox served: the SMTP service named by ``smtp_service`` in the same app, looked up per request."""
        inbox = self.inbox_override
        if inbox is None:
            smtp = self.context.services.get(self.settings.smtp_service)
            inbox = getattr(smtp, "inbox", None)
        if inbox is not None and inbox is not self._subscribed:
            if self._subscribed is not None:
                self._subscribed.unsubscribe(self._inbox_event)
            inbox.subscribe(self._inbox_event)
            self._subscribed = inbox
        return inbox

    def connection_gone(self, protocol: HttpProtocol) -> None:
        """Forget the long-polls of a closed connection."""
        for waiter in [w for w in self._waiters if w.protocol is protocol]:
            self._drop_waiter(waiter)

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Response | Pending | EventStream:
        """Answer one request."""
        found = self.router.match(request.method, request.path)
        if isinstance(found, int):
            return error_response(found)
        handler, params = found
        result: Response | Pending | EventStream = handler(request, **params)
        return result

    def _add_routes(self) -> None:
        add = self.router.add
        add("GET", "/", self.page)
        add("GET", "/static/{name}", self.static)
        add("GET", "/health", self.health)
        add("GET", "/metrics", self.metrics)
        add("GET", "/api/v1/messages", self.list_messages)
        add("DELETE", "/api/v1/messages", self.delete_all)
        add("GET", "/api/v1/messages/{id}", self.get_message)
        add("DELETE", "/api/v1/messages/{id}", self.delete_message)
        add("GET", "/api/v1/messages/{id}/raw", self.raw_message)
        add("GET", "/api/v1/messages/{id}/html", self.message_html)
        add("GET", "/api/v1/messages/{id}/parts/{index}", self.message_part)
        add("GET", "/api/v1/wait", self.wait)
        add("GET", "/api/v1/events", self.events)

    # ------------------------------------------------------------------ page, health, metrics

    def page(self, request: Request) -> Response:
        """The web page."""
        return self._static_file("index.html")

    def static(self, request: Request, name: str) -> Response:
        """A file shipped in the package's static/ folder."""
        return self._static_file(name)

    def _static_file(self, name: str) -> Response:
        if "/" in name or "\\" in name or name.startswith("."):
            return error_response(404)
        resource = resources.files("linechat.services.http").joinpath("static", name)
        if not resource.is_file():
            return error_response(404)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        headers = [("content-security-policy", PAGE_CSP), ("cache-control", "no-cache")]
        return Response(200, resource.read_bytes(), content_type, headers)

    def health(self, request: Request) -> Response:
        """Liveness: every service with its open connections."""
        services: dict[str, Any] = {}
        if self.context.services:
            for name, service in self.context.services.items():
                services[name] = {"connections": len(service.connections)}
        else:
            services[self.name] = {"connections": len(self.connections)}
        return json_response({"status": "ok", "services": services})

    def metrics(self, request: Request) -> Response:
        """The Prometheus text exposition of the whole server."""
        if not self.context.services:
            return error_response(503, "metrics need the server (App)")
        from linechat.services.http.metrics import CONTENT_TYPE, exposition, make_registry

        if self._registry is None:
            self._registry = make_registry(self.context.services, self.context.plugins)
        return Response(200, exposition(self._registry), CONTENT_TYPE)

    # ------------------------------------------------------------------ the inbox API

    def _need_inbox(self) -> Inbox | Response:
        inbox = self.inbox()
        if inbox is None:
            return error_response(503, f"no SMTP service {self.settings.smtp_service!r} with a store in this server")
        return inbox

    @staticmethod
    def _query(request: Request) -> Any:
        from linechat.services.smtp.inbox import Query

        q = request.query
        return Query(
            to=q.get("to") or None,
            sender=q.get("from") or None,
            subject=q.get("subject") or None,
            text=q.get("text") or q.get("q") or None,
        )

    @staticmethod
    def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
        try:
            value = int(request.query.get(name, default))
        except ValueError:
            value = default
        return max(low, min(high, value))

    def list_messages(self, request: Request) -> Response:
        """``GET /api/v1/messages?to=&from=&subject=&text=&offset=&limit=``: newest first."""
        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        offset = self._int(request, "offset", 0, 0, 1 << 30)
        limit = self._int(request, "limit", 50, 1, 1000)
        total, page = inbox.list(self._query(request), offset, limit)
        return json_response(
            {
                "total": total,
                "offset": offset,
                "limit": limit,
                "count": len(page),
                "messages": [m.summary() for m in page],
            }
        )

    def get_message(self, request: Request, id: str) -> Response:  # noqa: A002 - the route's name
        """``GET /api/v1/messages/{id}``: the summary plus headers, text, HTML and parts."""
        from linechat.services.smtp.inbox import parse_message

        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        message = inbox.get(id)
        raw = inbox.raw(id) if message is not None else None
        if message is None or raw is None:
            return error_response(404, "no such message")
        return json_response({**message.summary(), **parse_message(raw)})

    def raw_message(self, request: Request, id: str) -> Response:  # noqa: A002
        """``GET /api/v1/messages/{id}/raw``: the stored bytes."""
        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        raw = inbox.raw(id)
        if raw is None:
            return error_response(404, "no such message")
        headers = list(UNTRUSTED)
        if "download" in request.query:
            headers.append(("content-disposition", _disposition("attachment", f"{id}.eml")))
        return Response(
            200, raw, "text/plain; charset=utf-8" if "download" not in request.query else "message/rfc822", headers
        )

    def message_html(self, request: Request, id: str) -> Response:  # noqa: A002
        """``GET /api/v1/messages/{id}/html``: the HTML body to show, its ``cid:`` images inline, sandboxed."""
        from linechat.services.smtp.inbox import html_with_inline_images

        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        raw = inbox.raw(id)
        if raw is None:
            return error_response(404, "no such message")
        html = html_with_inline_images(raw)
        if html is None:
            return error_response(404, "no HTML body")
        return Response(200, html.encode("utf-8", "replace"), "text/html; charset=utf-8", list(MESSAGE_HTML))

    def message_part(self, request: Request, id: str, index: str) -> Response:  # noqa: A002
        """``GET /api/v1/messages/{id}/parts/{index}``: one decoded part (an attachment)."""
        from linechat.services.smtp.inbox import message_part

        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        raw = inbox.raw(id)
        if raw is None or not index.isdigit():
            return error_response(404, "no such message")
        part = message_part(raw, int(index))
        if part is None:
            return error_response(404, "no such part")
        content_type, filename, data = part
        disposition = "inline" if "inline" in request.query else "attachment"
        headers = [*UNTRUSTED, ("content-disposition", _disposition(disposition, filename or f"part-{index}"))]
        return Response(200, data, content_type, headers)

    def delete_message(self, request: Request, id: str) -> Response:  # noqa: A002
        """``DELETE /api/v1/messages/{id}``."""
        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        if not inbox.delete(id):
            return error_response(404, "no such message")
        return json_response({"deleted": 1})

    def delete_all(self, request: Request) -> Response:
        """``DELETE /api/v1/messages``: every message."""
        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        return json_response({"deleted": inbox.clear()})

    # ------------------------------------------------------------------ waiting for mail

    def wait(self, request: Request) -> Response | Pending:
        """``GET /api/v1/wait?to=&from=&subject=&text=&timeout=&new=1``: the first matching message.

        A message already stored that matches answers at once (unless
        ``new=1``: then only mail arriving after the request counts).
        Otherwise the reply waits (a :class:`~linechat.Pending`) until a
        matching message arrives (``200``) or ``timeout`` seconds pass (``204``).
        """
        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        query = self._query(request)
        if request.query.get("new") not in ("1", "true", "yes"):
            _, found = inbox.list(query, 0, 1)
            if found:
                return json_response({"message": found[0].summary()})
        try:
            timeout = float(request.query.get("timeout", 30))
        except ValueError:
            return error_response(400, "timeout must be a number of seconds")
        timeout = max(0.0, min(timeout, self.settings.max_wait))
        protocol = request.protocol
        waiter = _Waiter(protocol, protocol.later(), query)
        waiter.timer = self.reactor.call_later(timeout, self._wait_timed_out, waiter)
        self._waiters.append(waiter)
        return waiter.pending

    def _wait_timed_out(self, waiter: _Waiter) -> None:
        waiter.timer = None
        if self._drop_waiter(waiter):
            waiter.protocol.respond_later(waiter.pending, Response(204))

    def _drop_waiter(self, waiter: _Waiter) -> bool:
        if waiter not in self._waiters:
            return False
        self._waiters.remove(waiter)
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        return True

    def _inbox_event(self, event: str, data: dict[str, Any]) -> None:
        """Called on the reactor thread for each stored or deleted message."""
        for stream in list(self._streams):
            stream.send(event, data)
        if event != "message" or not self._waiters:
            return
        inbox = self._subscribed
        message = inbox.get(data["id"]) if inbox is not None else None
        if message is None:
            return
        for waiter in list(self._waiters):
            if waiter.query.matches(message) and self._drop_waiter(waiter):
                waiter.protocol.respond_later(waiter.pending, json_response({"message": data}))

    # ------------------------------------------------------------------ event stream

    def events(self, request: Request) -> Response | EventStream:
        """``GET /api/v1/events``: Server-Sent Events ``message``, ``deleted``, ``cleared`` as they happen."""
        inbox = self._need_inbox()
        if isinstance(inbox, Response):
            return inbox
        return EventStream(self._stream_opened, self._stream_closed)

    def _stream_opened(self, stream: EventStream) -> None:
        self._streams.append(stream)
        stream.comment("linechat inbox events")

    def _stream_closed(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    def _beat(self) -> None:
        for stream in list(self._streams):
            stream.comment("keep-alive")


def _safe_name(name: str) -> str:
    """A file name safe inside a quoted Content-Disposition parameter (ASCII: a header value is ASCII)."""
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "._-+@ " else "_" for c in name).strip()
    return cleaned[:120] or "file"


def _disposition(kind: str, name: str) -> str:
    """A Content-Disposition value: an ASCII ``filename`` and, for any other name, ``filename*`` (RFC 6266)."""
    plain = _safe_name(name)
    # Path separators and control characters never reach the client's file name.
    cleaned = "".join(c for c in name if c.isprintable() and c not in "/\\").strip()[:120]
    if not cleaned or cleaned == plain:
        return f'{kind}; filename="{plain}"'
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(cleaned, safe='')}"
