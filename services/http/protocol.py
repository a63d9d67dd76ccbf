"""HTTP/1.1 on a linechat channel: bytes from a stream rule go into h11, events come out.

HTTP is a terminator protocol (headers end at a blank line, a body by
Content-Length or chunks), but the framing is h11's job: the channel hands
every read to :meth:`HttpProtocol.http_input` unframed, h11 parses, and
complete requests go to the service's router.  A reply is bytes h11 wrote, a
:class:`~linechat.Pending` (a long-poll answered later), or the start of an
event stream.

What a hostile peer gets:

- a request head over ``max_header_size`` bytes: ``431``, then close;
- a body over ``max_body_size`` (declared or chunked): ``413``, then close;
- both ``Content-Length`` and ``Transfer-Encoding`` (the request-smuggling
  shape, RFC 9112 section 6.1): ``400``, then close; h11 itself refuses
  conflicting lengths, bad chunk sizes and malformed lines (``400``);
- a request still incomplete ``request_timeout`` seconds after it began
  (slowloris): ``408``, then close; an idle keep-alive connection closes
  after ``idle_timeout``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import h11
from linechat import Pending, Protocol, Reply, terminator
from linechat.services.http.messages import REASONS, EventStream, Request, Response, error_response

if TYPE_CHECKING:
    from linechat.reactor import Timer
    from linechat.services.http.service import HttpService, HttpSettings

__all__ = ["HttpProtocol"]

_SERVER = b"linechat"


class HttpProtocol(Protocol):
    """One HTTP/1.1 connection (keep-alive, pipelined requests answered in order)."""

    initial_rule = "http"
    initial_state = "http"
    #: Sent to a connection refused for lack of room (too many connections or descriptors).
    refusal_line = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 21\r\n"
        b"connection: close\r\nretry-after: 1\r\n\r\ntoo many connections\n"
    )

    service: HttpService
    settings: HttpSettings

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.settings.max_header_size)
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False  # a response is pending or streaming: requests after it wait in h11
        self._stream: EventStream | None = None
        self._deadline: Timer | None = None
        self._keepalive: Timer | None = None
        self._last_input = 0.0
        self._started = 0.0
        self._method = "-"
        self._must_close = False  # the response just written ends the connection

    # ------------------------------------------------------------------ input

    @terminator("http", None, stream=True)
    def http_input(self, chunk: bytes, end: bool) -> Reply:
        """Feed a read to h11 and answer what it completes."""
        if chunk:
            self._last_input = self.reactor.time()
            if (
                self._busy
                and len(chunk) + self._buffered() > self.settings.max_header_size + self.settings.max_body_size
            ):
                # Pipelined input piling up behind a long response: stop it growing.
                self._fail(413, "too much pipelined input")
                return None
            self.conn.receive_data(chunk)
        return self._process()

    def _buffered(self) -> int:
        return len(self.conn.trailing_data[0])

    def _process(self) -> Reply:
        """Run h11 until it needs more bytes; return the responses for the requests it completed."""
        out: list[Any] = []
        while not self._busy and not self.closing:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                out.append(self._fail_bytes(exc.error_status_hint, str(exc)))
                self.close()
                break
            if event is h11.NEED_DATA:
                if self.conn.their_state is not h11.IDLE or self._buffered():
                    self._arm_deadline()
                else:
                    self._arm_keepalive()
                break
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                if isinstance(event, h11.ConnectionClosed):
                    self.close()
                break
            if isinstance(event, h11.Request):
                refusal = self._check_request(event)
                if refusal is not None:
                    out.append(self._fail_bytes(*refusal))
                    self.close()
                    break
                self._request = event
                self._body.clear()
                if self.conn.client_is_waiting_for_100_continue:
                    out.append(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.settings.max_body_size:
                    out.append(self._fail_bytes(413, "request body too large"))
                    self.close()
                    break
            elif isinstance(event, h11.EndOfMessage):
                self._disarm_deadline()
                reply = self._dispatch()
                out.append(reply)
                if self._must_close:
                    self.close()  # inside the handler: after this reply is queued
                    break
                if isinstance(reply, Pending) or self._stream is not None:
                    break
        if len(out) == 1:
            # One response as bytes: the channel can write it straight to the socket.
            return out[0]  # type: ignore[no-any-return]
        if out and all(item.__class__ is bytes for item in out):
            return b"".join(out)  # pipelined responses in one write
        return out

    def _check_request(self, request: h11.Request) -> tuple[int, str] | None:
        names = [name for name, _ in request.headers]
        if b"transfer-encoding" in names and b"content-length" in names:
            return 400, "both Content-Length and Transfer-Encoding"
        size = len(request.target) + len(request.method) + sum(len(n) + len(v) + 4 for n, v in request.headers)
        if size > self.settings.max_header_size:
            return 431, "request header fields too large"
        for name, value in request.headers:
            if name == b"content-length" and int(value) > self.settings.max_body_size:
                return 413, "request body too large"
        return None

    # ------------------------------------------------------------------ the request timer (slowloris)

    def _arm_deadline(self) -> None:
        if self._deadline is None and self.settings.request_timeout:
            self._deadline = self.reactor.call_later(self.settings.request_timeout, self._request_timed_out)

    def _arm_keepalive(self) -> None:
        # Between requests: an idle keep-alive connection goes after keep_alive_timeout.  One
        # timer per connection: input only stamps a time, and the timer re-arms from the stamp.
        if self._keepalive is None and self.settings.keep_alive_timeout:
            self._last_input = self.reactor.time()
            self._keepalive = self.reactor.call_later(self.settings.keep_alive_timeout, self._keepalive_expired)

    def _keepalive_expired(self) -> None:
        self._keepalive = None
        if self.closing:
            return
        idle = self.reactor.time() - self._last_input
        left = self.settings.keep_alive_timeout - idle
        if self._busy or left > 0 or self._deadline is not None:
            self._keepalive = self.reactor.call_later(max(left, 1.0), self._keepalive_expired)
            return
        self.close()

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        if not self._busy and not self.closing:
            self.log.info("http_request_timeout", timeout=self.settings.request_timeout)
            self._fail(408, "request not received in time")

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self) -> Reply:
        event = self._request
        assert event is not None
        self._request = None
        self._started = time.perf_counter()
        method = event.method.decode("ascii", "replace")
        try:
            request = Request(
                method=method,
                target=event.target.decode("utf-8", "replace"),
                headers={n.decode("latin-1"): v.decode("latin-1") for n, v in event.headers},
                body=bytes(self._body),
                protocol=self,
                http_version=event.http_version.decode("ascii"),
            )
            self._body.clear()
            result = self.service.handle(request)
        except Exception as exc:
            self.log.exception("http_handler_error", method=method)
            result = error_response(500, f"internal error: {type(exc).__name__}")
        self._method = method
        if isinstance(result, Pending):
            self._busy = True
            return result
        if isinstance(result, EventStream):
            return self._open_stream(result)
        return self.response_bytes(result)

    def response_bytes(self, response: Response) -> bytes:
        """Serialize *response* with h11 and finish the request/response cycle."""
        headers = [
            ("server", "linechat"),
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *response.headers,
        ]
        data = self.conn.send(
            h11.Response(
                status_code=response.status,
                headers=headers,
                reason=REASONS.get(response.status, "").encode(),
            )
        )
        if self._method != "HEAD" and response.body:
            data += self.conn.send(h11.Data(data=response.body))
        data += self.conn.send(h11.EndOfMessage())
        self._account(response.status, len(data))
        self._next_cycle()
        return data

    def respond_later(self, pending: Pending, response: Response) -> None:
        """Answer a request that was given *pending*, then go on with the requests behind it."""
        if pending.done or self.channel.closed:
            return
        self._busy = False
        pending.resolve(self.response_bytes(response))
        if self._must_close:
            self.close()
        elif not self.closing:
            self.send(self._process())

    def _next_cycle(self) -> None:
        if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
            self._must_close = True
            return
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()

    def _account(self, status: int, size: int) -> None:
        hooks = self.context.hooks
        if hooks is not None:
            duration = time.perf_counter() - self._started
            hooks.command_handled(self, self._method, "error" if status >= 400 else "ok", size, duration)

    # ------------------------------------------------------------------ event streams

    def _open_stream(self, stream: EventStream) -> bytes:
        # The head goes out in order after earlier pipelined responses; events follow it.
        head = self.conn.send(
            h11.Response(
                status_code=200,
                headers=[
                    ("server", "linechat"),
                    ("content-type", "text/event-stream; charset=utf-8"),
                    ("cache-control", "no-store"),
                ],
                reason=b"OK",
            )
        )
        self._account(200, len(head))
        self._stream = stream
        self._busy = True
        stream.protocol = self
        self.reactor.call_soon(stream.on_open, stream)
        return head

    def stream_data(self, data: bytes) -> None:
        """Send a piece of the open event stream."""
        if self._stream is not None and not self.channel.closed:
            self.send(self.conn.send(h11.Data(data=data)))

    # ------------------------------------------------------------------ errors and the end

    def _fail_bytes(self, status: int, message: str) -> bytes:
        """An error response written by hand (h11 may be in its error state), then close."""
        body = (REASONS.get(status, "Error") + ": " + message + "\n").encode("utf-8", "replace")
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"server: linechat\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.log.info("http_refused", status=status, reason=message)
        self._method = "-"
        self._started = time.perf_counter()
        self._account(status, len(head) + len(body))
        self._disarm_deadline()
        return head + body

    def _fail(self, status: int, message: str) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self._busy:
            self.send(self._fail_bytes(status, message))
        self.close()

    def on_frame_too_long(self, rule: Any, size: int) -> bool:
        return False

    def on_handler_error(self, name: str | None, exc: BaseException) -> Reply:
        self.close()
        return None

    def on_idle_timeout(self) -> Reply:
        return None

    def on_shutdown(self) -> Reply:
        return None

    def on_connect(self) -> Reply:
        self._arm_keepalive()
        return None

    def on_close(self) -> None:
        self._disarm_deadline()
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.protocol = None
            stream.on_close(stream)
        self.service.connection_gone(self)
