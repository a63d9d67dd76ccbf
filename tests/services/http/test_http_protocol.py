"""The HTTP protocol in memory: keep-alive, pipelining, limits, hostile input, long-polls, event streams."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import pytest
from linechat.services.http import HttpService
from linechat.services.smtp.inbox import Inbox
from linechat.services.smtp.maildir import MaildirWriter
from linechat.testing import MemoryClient, ServiceHarness


@pytest.fixture
def harness(linechat_harness: Callable[..., ServiceHarness], tmp_path: Path) -> ServiceHarness:
    made = linechat_harness(HttpService, max_header_size=2048, max_body_size=1000, request_timeout=5.0)
    root = tmp_path / "maildir"
    MaildirWriter(fsync=False).ensure(root)
    made.service.inbox_override = Inbox(root, reactor=made.reactor)
    return made


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split what the server sent into (status, headers, body), parsed by h11 as a client."""
    client = h11.Connection(h11.CLIENT)
    out = []
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    status, headers, body = 0, {}, b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            break
        if isinstance(event, h11.InformationalResponse):
            out.append((event.status_code, {}, b""))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {n.decode(): v.decode() for n, v in event.headers}
            body = b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((status, headers, body))
            if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                break
            client.start_next_cycle()
            client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
    return out


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


def status_line(client: MemoryClient) -> str:
    return client.read().split(b"\r\n", 1)[0].decode()


def test_keep_alive_and_pipelined_requests_answered_in_order(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(get("/health") + get("/nowhere") + get("/api/v1/messages"))
    got = responses(client.read())
    assert [status for status, _, _ in got] == [200, 404, 200]
    assert json.loads(got[0][2])["status"] == "ok"
    assert json.loads(got[2][2])["total"] == 0
    assert not client.closed
    client.send(get("/health"))  # the same connection goes on
    assert responses(client.read())[0][0] == 200


def test_requests_cut_anywhere_still_parse(harness: ServiceHarness) -> None:
    client = harness.connect()
    wire = get("/health") + b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
    for index in range(len(wire)):
        client.send(wire[index : index + 1])
    assert [s for s, _, _ in responses(client.read())] == [200, 405]


def test_http_10_and_connection_close_end_the_connection(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"GET /health HTTP/1.0\r\n\r\n")
    assert status_line(client) == "HTTP/1.1 200 OK"
    assert client.closed
    client = harness.connect()
    client.send(get("/health", "Connection: close\r\n") + get("/health"))
    assert len(responses(client.read())) == 1
    assert client.closed


def test_head_has_no_body_and_wrong_method_is_405(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n")
    data = client.read()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n")
    client.send(b"PUT /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert status_line(client) == "HTTP/1.1 405 Method Not Allowed"


def test_expect_100_continue(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert client.read() == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(b"hi")
    assert status_line(client) == "HTTP/1.1 405 Method Not Allowed"


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        # request smuggling: both framings (CL.TE and TE.CL shapes)
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 3000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"3e8\r\n"
            + b"x" * 1000
            + b"\r\n"
            + b"3e8\r\n"
            + b"x" * 1000
            + b"\r\n0\r\n\r\n",
            413,
        ),
    ],
)
def test_bad_requests_get_4xx_and_close(harness: ServiceHarness, wire: bytes, status: int) -> None:
    client = harness.connect()
    client.send(wire)
    data = client.read()
    if status == 501:  # h11 does not implement other codings: it refuses, we answer 501 or 400
        assert data.split(b" ", 2)[1] in (b"400", b"501")
    else:
        assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:80]
    assert b"connection: close" in data.lower()
    assert client.closed
    other = harness.connect()  # the server carries on
    other.send(get("/health"))
    assert status_line(other) == "HTTP/1.1 200 OK"


def test_oversized_header_sent_in_pieces_gets_431(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
    for _ in range(100):
        if client.closed:
            break
        client.send(b"X-Filler: " + b"y" * 100 + b"\r\n")
    assert client.read().startswith(b"HTTP/1.1 431 ")
    assert client.closed


def test_slowloris_gets_408(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    for _ in range(4):  # a byte a second keeps no request alive past request_timeout
        harness.advance(1.0)
        client.send(b"X")
    assert client.read() == b""
    harness.advance(2.0)
    assert client.read().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert client.closed


def test_slow_body_gets_408(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
    harness.advance(6.0)
    assert client.read().startswith(b"HTTP/1.1 408 ")


def test_idle_keep_alive_connection_closes_quietly(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(get("/health"))
    client.read()
    harness.advance(59.0)
    assert not client.closed
    harness.advance(2.0)
    assert client.closed
    assert client.read() == b""


def test_a_long_poll_holds_later_pipelined_requests_in_order(harness: ServiceHarness, tmp_path: Path) -> None:
    inbox = harness.service.inbox_override
    assert inbox is not None
    client = harness.connect()
    client.send(get("/api/v1/wait?to=bob&timeout=30") + get("/health"))
    assert client.read() == b""  # nothing yet: the wait holds the line
    harness.advance(10.0)  # the request timer must not fire on a pending reply
    assert client.read() == b""
    path = MaildirWriter("mx.test", fsync=False).deliver(
        inbox.root, b"", _Body(b"To: Bob <bob@example.org>\r\nSubject: hi\r\n\r\nx\r\n")
    )
    inbox.add([path])
    harness.run_ready()
    got = responses(client.read())
    assert [s for s, _, _ in got] == [200, 200]
    assert json.loads(got[0][2])["message"]["subject"] == "hi"
    assert "services" in json.loads(got[1][2])


def test_a_long_poll_times_out_with_204(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(get("/api/v1/wait?subject=never&timeout=3"))
    harness.advance(3.5)
    assert status_line(client) == "HTTP/1.1 204 No Content"
    client.send(get("/health"))
    assert status_line(client) == "HTTP/1.1 200 OK"


def test_event_stream_sends_new_messages(harness: ServiceHarness) -> None:
    inbox = harness.service.inbox_override
    assert inbox is not None
    client = harness.connect()
    client.send(get("/api/v1/events"))
    harness.run_ready()
    head = client.read()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"text/event-stream" in head
    path = MaildirWriter("mx.test", fsync=False).deliver(inbox.root, b"", _Body(b"Subject: live\r\n\r\nx\r\n"))
    inbox.add([path])
    harness.run_ready()
    data = client.read()
    assert b"event: message\ndata: {" in data and b'"subject":"live"' in data
    harness.advance(15.0)
    assert b": keep-alive" in client.read()
    client.close()
    assert harness.service._streams == []


def exchange(data: bytes, requests: list[tuple[str, str]]) -> list[tuple[int, dict[str, str], bytes]]:
    """Parse *data* as h11 (a client) does, as the answers to *requests* ``(method, target)`` in order."""
    client = h11.Connection(h11.CLIENT)
    out: list[tuple[int, dict[str, str], bytes]] = []
    pending = list(requests)
    client.send(h11.Request(method=pending[0][0], target=pending[0][1], headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    status, headers, body = 0, {}, b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            break
        if isinstance(event, h11.Response):
            status, headers, body = event.status_code, {n.decode(): v.decode() for n, v in event.headers}, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((status, headers, body))
            pending.pop(0)
            if not pending or client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                break
            client.start_next_cycle()
            client.send(h11.Request(method=pending[0][0], target=pending[0][1], headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
    return out


def test_pipelined_mixed_requests_get_whole_responses_in_order(harness: ServiceHarness) -> None:
    # Different methods, bodies and statuses back to back in one read: each response must be
    # framed exactly (h11 as the client checks Content-Length against the bytes), in order.
    requests = [
        ("GET", "/health"),
        ("HEAD", "/health"),
        ("POST", "/health"),
        ("GET", "/nowhere"),
        ("HEAD", "/api/v1/messages"),
        ("GET", "/api/v1/messages?limit=1"),
        ("DELETE", "/api/v1/messages/none"),
        ("GET", "/static/app.js"),
    ]
    wire = b""
    for method, target in requests:
        if method == "POST":
            wire += b"POST /health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        else:
            wire += f"{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    client = harness.connect()
    client.send(wire * 3)
    got = exchange(client.read(), requests * 3)
    assert [status for status, _, _ in got] == [200, 200, 405, 404, 200, 200, 404, 200] * 3
    get_health, head_health = got[0], got[1]
    assert head_health[2] == b"" and head_health[1]["content-length"] == str(len(get_health[2]))
    assert json.loads(got[5][2])["limit"] == 1
    assert got[7][1]["content-type"] == "text/javascript; charset=utf-8" and got[7][2]
    assert all(headers["server"] == "linechat" and "connection" not in headers for _, headers, _ in got)
    assert not client.closed


def test_a_long_pipeline_in_one_read_is_answered_whole(harness: ServiceHarness) -> None:
    client = harness.connect()
    pattern = ["/health", "/nowhere", "/health", "/api/v1/messages"]
    targets = [pattern[i % 4] if i % 7 else "/nowhere" for i in range(600)]
    client.send(b"".join(get(t) for t in targets))
    got = exchange(client.read(), [("GET", t) for t in targets])
    assert [s for s, _, _ in got] == [404 if t == "/nowhere" else 200 for t in targets]
    client.send(get("/health"))  # and the connection goes on
    assert status_line(client) == "HTTP/1.1 200 OK"


def test_http_10_gets_close_semantics(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n")
    data = client.read()
    assert data.count(b"HTTP/1.1 ") == 1  # the second request is never read
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head and json.loads(body)["status"] == "ok"
    assert client.closed
    client = harness.connect()  # HEAD from a 1.0 client: no body either
    client.send(b"HEAD /health HTTP/1.0\r\n\r\n")
    assert client.read().endswith(b"connection: close\r\n\r\n")
    assert client.closed


def test_keep_alive_survives_many_requests_then_close_is_honoured(harness: ServiceHarness) -> None:
    client = harness.connect()
    for index in range(50):
        client.send(get("/health") if index % 2 else get("/nowhere"))
        assert status_line(client) == ("HTTP/1.1 200 OK" if index % 2 else "HTTP/1.1 404 Not Found")
    client.send(get("/health", "Connection: close\r\n"))
    got = exchange(client.read(), [("GET", "/health")])
    assert got[0][0] == 200 and got[0][1]["connection"] == "close"
    assert client.closed


def test_no_content_response_has_no_length_or_body(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(get("/api/v1/wait?subject=never&timeout=1") + get("/health"))
    harness.advance(1.5)
    data = client.read()
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 204 No Content\r\n") and b"content-length" not in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")  # the next response follows at once


def test_a_handler_header_cannot_inject_lines(harness: ServiceHarness) -> None:
    from linechat.services.http import Response

    def evil(request: Any) -> Response:
        return Response(200, b"x", "text/plain", [("x-note", "a\r\nset-cookie: stolen=1")])

    def evil_type(request: Any) -> Response:
        return Response(200, b"x", "text/html\r\n\r\n<script>")

    harness.service.router.add("GET", "/evil", evil)
    harness.service.router.add("GET", "/evil-type", evil_type)
    client = harness.connect()
    client.send(get("/evil") + get("/evil-type") + get("/health"))
    data = client.read()
    got = exchange(data, [("GET", "/evil"), ("GET", "/evil-type"), ("GET", "/health")])
    assert [s for s, _, _ in got] == [500, 500, 200]
    assert b"set-cookie" not in data.lower() and b"<script>" not in data


def test_a_handler_may_close_the_connection(harness: ServiceHarness) -> None:
    from linechat.services.http import Response

    harness.service.router.add("GET", "/bye", lambda request: Response(200, b"bye", headers=[("Connection", "close")]))
    client = harness.connect()
    client.send(get("/bye") + get("/health"))
    got = exchange(client.read(), [("GET", "/bye"), ("GET", "/health")])
    assert [(s, h.get("connection"), b) for s, h, b in got] == [(200, "close", b"bye")]
    assert client.closed


def test_event_stream_is_chunked_for_11_and_close_delimited_for_10(harness: ServiceHarness) -> None:
    inbox = harness.service.inbox_override
    assert inbox is not None
    client = harness.connect()
    client.send(get("/api/v1/events"))
    harness.run_ready()
    older = harness.connect()
    older.send(b"GET /api/v1/events HTTP/1.0\r\n\r\n")
    harness.run_ready()
    inbox.add([MaildirWriter("mx.test", fsync=False).deliver(inbox.root, b"", _Body(b"Subject: sse\r\n\r\nx\r\n"))])
    harness.run_ready()
    # HTTP/1.1: h11 (a client) reads the chunks back as the event text.
    reader = h11.Connection(h11.CLIENT)
    reader.send(h11.Request(method="GET", target="/api/v1/events", headers=[("host", "x")]))
    reader.send(h11.EndOfMessage())
    reader.receive_data(client.read())
    response = reader.next_event()
    assert isinstance(response, h11.Response) and (b"transfer-encoding", b"chunked") in response.headers
    text = b""
    while isinstance(event := reader.next_event(), h11.Data):
        text += event.data
    assert text.startswith(b": linechat inbox events\n\n") and b'"subject":"sse"' in text
    # HTTP/1.0: no chunks, the end of the connection ends the body.
    head, _, body = older.read().partition(b"\r\n\r\n")
    assert b"connection: close" in head and b"transfer-encoding" not in head
    assert body.startswith(b": linechat inbox events\n\n") and b"event: message\ndata: {" in body


def test_head_of_the_event_stream_opens_no_stream(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"HEAD /api/v1/events HTTP/1.1\r\nHost: t\r\n\r\n" + get("/health"))
    harness.run_ready()
    data = client.read()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"text/event-stream" in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert harness.service._streams == []


class _Body:
    """A tiny file-like body for MaildirWriter."""

    def __init__(self, data: bytes) -> None:
        import io

        self._io = io.BytesIO(data)

    def seek(self, pos: int) -> None:
        self._io.seek(pos)

    def read(self, size: int = -1) -> bytes:
        return self._io.read(size)


def _unused(*_: Any) -> None:
    pass


def test_cid_images_inline_within_a_budget() -> None:
    from email.message import EmailMessage

    from linechat.services.smtp.inbox import html_with_inline_images
    from mail_samples import related_message, tiny_png

    png = tiny_png()
    raw = related_message(png).as_bytes()
    html = html_with_inline_images(raw)
    assert html is not None and html.count("data:image/png;base64,") == 2  # img src and CSS url()
    # Past the budget the reference stays (the image shows broken): a huge part cannot bloat the page.
    assert "data:" not in (html_with_inline_images(raw, limit=len(png) - 1) or "")
    # Only images are inlined: an HTML part named by a cid: reference stays a reference.
    message = EmailMessage()
    message.set_content("t")
    message.add_alternative("<iframe src='cid:page@x'></iframe>", subtype="html")
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    body.add_related("<script>alert(1)</script>", subtype="html", cid="<page@x>")
    assert html_with_inline_images(message.as_bytes()) == "<iframe src='cid:page@x'></iframe>\n"
    plain = EmailMessage()
    plain.set_content("no html")
    assert html_with_inline_images(plain.as_bytes()) is None


def test_switch_proposals_are_refused_and_the_connection_goes_on(harness: ServiceHarness) -> None:
    # CONNECT and Upgrade ask h11 to switch protocols; we never do: each gets its answer and the
    # pipelined request behind it is served on the same connection.
    client = harness.connect()
    client.send(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n" + get("/health"))
    got = exchange(client.read(), [("CONNECT", "example.org:443"), ("GET", "/health")])
    assert [s for s, _, _ in got] == [404, 200]
    upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    upgrade += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    client.send(get("/api/v1/events", upgrade))
    harness.run_ready()
    assert client.read().startswith(b"HTTP/1.1 200 OK\r\n")  # the event stream, not a switch
    other = harness.connect()
    other.send(get("/health", upgrade) + get("/nowhere"))
    assert [s for s, _, _ in exchange(other.read(), [("GET", "/health"), ("GET", "/nowhere")])] == [200, 404]
    assert not client.closed and not other.closed
