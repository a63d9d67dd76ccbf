"""HTTP/1.1 on a linechat channel: bytes from a stream rule go into h11, events come out.

HTTP is a terminator protocol (headers end at a blank line, a body by
Content-Length or chunks), but the framing is h11's job: the channel hands
every read to :meth:`HttpProtocol.http_input` unframed, h11 parses, and
complete requests go to the service's router.  A reply is the bytes of a
response, a :class:`~linechat.Pending` (a long-poll answered later), or the
start of an event stream.

h11 parses every request; responses are written here (see
:mod:`linechat.services.http.wire`), because h11's writer and its event
objects cost more than the rest of a request.  h11's state machine still
decides what the client's side allows: a request ends at h11's
``EndOfMessage``, the connection ends when h11 says the client's side must
close (HTTP/1.0, ``Connection: close``).  After a response the connection
starts its next cycle on a fresh ``h11.Connection`` (the state h11 returns to
after a complete exchange) when nothing more is buffered; pipelined requests
already in h11's buffer are reached by completing h11's cycle with a cached
empty response, so each byte is parsed once.

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
from linechat.services.http.messages import EventStream, Request, Response, error_response
from linechat.services.http.wire import CONTINUE, error_bytes, response_head, stream_head

if TYPE_CHECKING:
    from linechat.reactor import Timer
    from linechat.services.http.service import HttpService, HttpSettings

__all__ = ["HttpProtocol"]

_Request = h11.Request
_Data = h11.Data
_EndOfMessage = h11.EndOfMessage
_NEED_DATA = h11.NEED_DATA
_PAUSED = h11.PAUSED
_MUST_CLOSE = h11.MUST_CLOSE
_IDLE = h11.IDLE
_SERVER = h11.SERVER

# What h11 is told was sent when a pipelined request waits in its buffer (or a
# request proposed a protocol switch): any complete final response moves its
# state machine the same way, provided its status accepts no switch (h11 takes
# a 2xx to CONNECT, or a 101, as switching; this service never switches).  Built
# (and validated) once.
_CYCLE_RESPONSE = h11.Response(status_code=400, headers=[(b"content-length", b"0")])
_CYCLE_END = h11.EndOfMessage()

# Method names as str without a decode per request (others are decoded).
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}


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
        self._max_head = self.settings.max_header_size
        self._max_body = self.settings.max_body_size
        self.conn = h11.Connection(_SERVER, max_incomplete_event_size=self._max_head)
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False  # a response is pending or streaming: requests after it wait in h11
        self._answered = False  # h11's cycle is complete on our side: renew before parsing on
        self._stream: EventStream | None = None
        self._chunked = False  # the open event stream is sent in chunks (an HTTP/1.1 client)
        self._deadline: Timer | None = None
        self._keepalive: Timer | None = None
        self._last_input = 0.0
        self._started = 0.0
        self._method = "-"
        self._version_11 = True  # the request being answered is HTTP/1.1 (chunks allowed)
        self._close_after = False  # the client's side must close: the response says so, then we do
        self._must_close = False  # the response just written ends the connection

    # ------------------------------------------------------------------ input

    @terminator("http", None, stream=True)
    def http_input(self, chunk: bytes, end: bool) -> Reply:
        """Feed a read to h11 and answer what it completes."""
        if chunk:
            self._last_input = self.reactor.time()
            if self._busy and len(chunk) + self._buffered() > self._max_head + self._max_body:
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
        conn = self.conn
        while not self._busy and not self.closing:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                out.append(self._fail_bytes(exc.error_status_hint, str(exc)))
                self.close()
                break
            kind = event.__class__
            if kind is _Request:
                refusal = self._check_request(event)  # type: ignore[arg-type]
                if refusal is not None:
                    out.append(self._fail_bytes(*refusal))
                    self.close()
                    break
                self._request = event  # type: ignore[assignment]
                if conn.client_is_waiting_for_100_continue:
                    out.append(CONTINUE)
            elif kind is _EndOfMessage:
                if self._deadline is not None:
                    self._disarm_deadline()
                self._close_after = conn.their_state is _MUST_CLOSE
                reply = self._dispatch()
                out.append(reply)
                if self._must_close:
                    self.close()  # inside the handler: after this reply is queued
                    break
                self._answered = True
                if reply.__class__ is not bytes:
                    break  # a Pending or a stream: what follows waits (in h11's buffer)
            elif kind is _Data:
                self._body += event.data  # type: ignore[union-attr]
                if len(self._body) > self._max_body:
                    out.append(self._fail_bytes(413, "request body too large"))
                    self.close()
                    break
            elif event is _NEED_DATA:
                if self._answered:
                    # Nothing buffered after the last request: the next parses on a fresh
                    # h11 connection, the state h11 would come back to.
                    self._answered = False
                    conn = self.conn = h11.Connection(_SERVER, max_incomplete_event_size=self._max_head)
                    self._arm_keepalive()
                elif conn.their_state is not _IDLE or self._buffered():
                    self._arm_deadline()
                else:
                    self._arm_keepalive()
                break
            elif event is _PAUSED and self._answered:
                # Pipelined: the next request is in h11's buffer already (or the last one
                # proposed a switch, which our answer refused).  Complete h11's cycle with
                # the cached response so it parses on from where it is.
                self._answered = False
                conn.send(_CYCLE_RESPONSE)
                conn.send(_CYCLE_END)
                conn.start_next_cycle()
            else:  # ConnectionClosed, or PAUSED on an upgrade we do not do
                if event.__class__ is h11.ConnectionClosed:
                    self.close()
                break
        if len(out) == 1:
            # One response as bytes: the channel can write it straight to the socket.
            return out[0]  # type: ignore[no-any-return]
        if out and all(item.__class__ is bytes for item in out):
            return b"".join(out)  # pipelined responses in one write
        return out

    def _check_request(self, request: h11.Request) -> tuple[int, str] | None:
        size = len(request.target) + len(request.method)
        framing = 0
        for name, value in request.headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                framing |= 1
                if int(value) > self._max_body:
                    return 413, "request body too large"
            elif name == b"transfer-encoding":
                framing |= 2
        if framing == 3:
            return 400, "both Content-Length and Transfer-Encoding"
        if size > self._max_head:
            return 431, "request header fields too large"
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
        method = _METHODS.get(event.method) or event.method.decode("ascii", "replace")
        self._method = method
        self._version_11 = event.http_version >= b"1.1"
        body = self._body
        try:
            request = Request(
                method,
                event.target.decode("utf-8", "replace"),
                event.headers,
                bytes(body) if body else b"",
                self,
                "1.1" if event.http_version == b"1.1" else event.http_version.decode("ascii"),
            )
            if body:
                body.clear()
            result = self.service.handle(request)
        except Exception as exc:
            self.log.exception("http_handler_error", method=method)
            result = error_response(500, f"internal error: {type(exc).__name__}")
        if result.__class__ is Response:
            return self.response_bytes(result)  # type: ignore[arg-type]
        if isinstance(result, Pending):
            self._busy = True
            return result
        if isinstance(result, EventStream):
            return self._open_stream(result)
        return self.response_bytes(result)  # type: ignore[arg-type]

    def response_bytes(self, response: Response) -> bytes:
        """Serialize *response* for the request being answered (HEAD: no body; close if either side must)."""
        try:
            head, close = response_head(response, self._close_after)
        except ValueError as exc:
            # A handler's header that cannot go on the wire (a line break in a value, say).
            self.log.error("http_bad_response_header", method=self._method, error=str(exc))
            response = error_response(500, "internal error: bad response header")
            head, close = response_head(response, self._close_after)
        if close:
            self._must_close = True
        status = response.status
        if self._method == "HEAD" or status < 200 or status == 204 or status == 304 or not response.body:
            data = head
        else:
            data = head + response.body
        self._account(status, len(data))
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

    def _account(self, status: int, size: int) -> None:
        hooks = self.context.hooks
        if hooks is not None:
            duration = time.perf_counter() - self._started
            hooks.command_handled(self, self._method, "error" if status >= 400 else "ok", size, duration)

    # ------------------------------------------------------------------ event streams

    def _open_stream(self, stream: EventStream) -> bytes:
        # The head goes out in order after earlier pipelined responses; events follow it.
        if self._method == "HEAD":
            # Only the head: no stream opens (its body would be the events).
            head = stream_head(head_only=True, close=self._close_after)
            self._must_close = self._close_after
            self._account(200, len(head))
            return head
        self._chunked = self._version_11
        head = stream_head(chunked=self._chunked, close=self._close_after or not self._chunked)
        self._account(200, len(head))
        self._stream = stream
        self._busy = True
        stream.protocol = self
        self.reactor.call_soon(stream.on_open, stream)
        return head

    def stream_data(self, data: bytes) -> None:
        """Send a piece of the open event stream."""
        if self._stream is not None and data and not self.channel.closed:
            self.send(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)

    # ------------------------------------------------------------------ errors and the end

    def _fail_bytes(self, status: int, message: str) -> bytes:
        """An error response that closes the connection."""
        data = error_bytes(status, message)
        self.log.info("http_refused", status=status, reason=message)
        self._method = "-"
        self._started = time.perf_counter()
        self._account(status, len(data))
        self._disarm_deadline()
        return data

    def _fail(self, status: int, message: str) -> None:
        if not self._busy:  # nothing half-sent: a response can still go out
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
