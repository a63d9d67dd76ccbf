"""The inbox API, /metrics and /health over loopback: mail sent with smtplib, read with urllib, curl and raw sockets."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from linechat.plugins.metrics import Metrics
from linechat.services.http import HttpService
from linechat.services.smtp import SmtpService
from linechat.testing import RunningServer, serve
from mail_samples import related_message, tiny_png
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT = 20.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = {
        "services": {
            "smtp": {"fsync": False, "hostname": "mx.test", "maildir": str(tmp_path / "maildir")},
            "http": {"request_timeout": 1.0},
        }
    }
    with serve([SmtpService, HttpService], data_dir=tmp_path / "data", plugins=[Metrics], settings=settings) as srv:
        yield srv


def url(srv: RunningServer, path: str) -> str:
    host, port = srv.address("http")
    return f"http://{host}:{port}{path}"


def fetch(srv: RunningServer, path: str, method: str = "GET") -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url(srv, path), method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def fetch_json(srv: RunningServer, path: str, method: str = "GET") -> Any:
    status, _, body = fetch(srv, path, method)
    assert status == 200, (status, body)
    return json.loads(body)


def send(srv: RunningServer, message: EmailMessage | bytes, sender: str = "", rcpts: list[str] | None = None) -> None:
    with smtplib.SMTP(*srv.address("smtp"), timeout=TIMEOUT) as client:
        if isinstance(message, EmailMessage):
            client.send_message(message)
        else:
            client.sendmail(sender, rcpts or [], message)


def rich_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Bcc"] = "audit@example.org"
    message["Subject"] = "Your order ✓"
    message.set_content("Thanks for the order, Bob.\n")
    message.add_alternative("<p>Thanks for the <b>order</b>, Bob.</p>\n", subtype="html")
    message.add_attachment(b"%PDF-1.4 fake\x00\x01", maintype="application", subtype="pdf", filename="invoice.pdf")
    return message


def test_list_filter_page_read_and_delete(server: RunningServer, tmp_path: Path) -> None:
    send(server, rich_message())
    for n in range(3):
        send(
            server,
            f"From: a@example.org\r\nTo: c{n}@example.org\r\nSubject: note {n}\r\n\r\nplain {n}\r\n".encode(),
            "a@example.org",
            [f"c{n}@example.org"],
        )
    listing = fetch_json(server, "/api/v1/messages")
    assert listing["total"] == 4
    assert [m["subject"] for m in listing["messages"]] == ["note 2", "note 1", "note 0", "Your order ✓"]
    assert fetch_json(server, "/api/v1/messages?limit=2&offset=1")["messages"][0]["subject"] == "note 1"
    assert fetch_json(server, "/api/v1/messages?to=bob")["total"] == 1
    assert fetch_json(server, "/api/v1/messages?to=audit%40example.org")["total"] == 1  # a Bcc recipient
    assert fetch_json(server, "/api/v1/messages?from=shop")["total"] == 1
    assert fetch_json(server, "/api/v1/messages?subject=NOTE")["total"] == 3
    assert fetch_json(server, "/api/v1/messages?text=order%2C+bob")["total"] == 1  # searches the body
    assert fetch_json(server, "/api/v1/messages?text=plain+1")["total"] == 1

    (order,) = fetch_json(server, "/api/v1/messages?to=bob")["messages"]
    assert [p["address"] for p in order["bcc"]] == ["audit@example.org"]
    full = fetch_json(server, f"/api/v1/messages/{order['id']}")
    assert full["text"] == "Thanks for the order, Bob.\n"
    assert "<b>order</b>" in full["html"]
    assert ["Subject", "Your order ✓"] in full["headers"]
    (attachment,) = full["attachments"]
    assert attachment["filename"] == "invoice.pdf" and attachment["content_type"] == "application/pdf"
    status, headers, data = fetch(server, f"/api/v1/messages/{order['id']}/parts/{attachment['index']}")
    assert status == 200 and data == b"%PDF-1.4 fake\x00\x01"
    assert headers["Content-Security-Policy"] == "sandbox"
    assert 'filename="invoice.pdf"' in headers["Content-Disposition"]
    status, _, raw = fetch(server, f"/api/v1/messages/{order['id']}/raw")
    stored = [p.read_bytes() for p in (tmp_path / "maildir" / "new").iterdir()]
    assert status == 200 and raw in stored

    assert fetch_json(server, f"/api/v1/messages/{order['id']}", "DELETE") == {"deleted": 1}
    assert fetch(server, f"/api/v1/messages/{order['id']}")[0] == 404
    assert fetch(server, f"/api/v1/messages/{order['id']}", "DELETE")[0] == 404
    assert fetch_json(server, "/api/v1/messages")["total"] == 3
    assert fetch_json(server, "/api/v1/messages", "DELETE") == {"deleted": 3}
    assert fetch_json(server, "/api/v1/messages")["total"] == 0
    assert list((tmp_path / "maildir" / "new").iterdir()) == []
    assert fetch(server, "/api/v1/messages/nope/raw")[0] == 404


def test_wait_returns_when_matching_mail_arrives(server: RunningServer) -> None:
    send(server, b"Subject: old\r\nTo: x@example.org\r\n\r\nx\r\n", "a@example.org", ["x@example.org"])
    # A message already there answers at once...
    assert fetch_json(server, "/api/v1/wait?to=x%40example.org&timeout=5")["message"]["subject"] == "old"
    # ...unless only new mail counts; the reply then waits for it.
    result: dict[str, Any] = {}

    def wait() -> None:
        result["reply"] = fetch(server, "/api/v1/wait?to=x%40example.org&subject=wanted&new=1&timeout=30")

    waiter = threading.Thread(target=wait)
    waiter.start()
    service = server.app.services["http"]
    deadline = time.monotonic() + TIMEOUT  # until the wait is registered (a safety net)
    while not service._waiters:
        assert time.monotonic() < deadline, "the wait was never registered"
        threading.Event().wait(0.005)
    send(server, b"Subject: other\r\nTo: x@example.org\r\n\r\nx\r\n", "a@example.org", ["x@example.org"])
    send(server, b"Subject: wanted\r\nTo: x@example.org\r\n\r\nx\r\n", "a@example.org", ["x@example.org"])
    waiter.join(TIMEOUT)
    status, _, body = result["reply"]
    assert status == 200 and json.loads(body)["message"]["subject"] == "wanted"
    assert fetch(server, "/api/v1/wait?subject=never&timeout=0.2")[0] == 204


def test_event_stream_over_loopback(server: RunningServer) -> None:
    host, port = server.address("http")
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    conn.request("GET", "/api/v1/events")
    response = conn.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline().startswith(b": linechat inbox events")
    assert response.readline() == b"\n"
    send(server, b"Subject: streamed\r\n\r\nx\r\n", "a@example.org", ["s@example.org"])
    lines = []
    while not lines or lines[-1] != b"\n":
        lines.append(response.readline())
    assert lines[0] == b"event: message\n"
    assert json.loads(lines[1].removeprefix(b"data: "))["subject"] == "streamed"
    conn.close()


def scrape(srv: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = fetch(srv, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_parse_and_move_with_traffic(server: RunningServer) -> None:
    before = scrape(server)
    mail = ("linechat_commands_total", (("command", "MAIL"), ("service", "smtp"), ("status", "ok")))
    smtp_conns = ("linechat_connections_total", (("service", "smtp"),))
    stored = ("linechat_smtp_messages_stored", (("service", "smtp"),))
    for _ in range(3):
        send(server, b"Subject: m\r\n\r\nx\r\n", "a@example.org", ["b@example.org"])
    with socket.create_connection(server.address("smtp"), timeout=TIMEOUT) as sock:
        sock.recv(1024)
        sock.sendall(b"BOGUS\r\nQUIT\r\n")
        while sock.recv(1024):
            pass
    after = scrape(server)
    assert after[mail] == before.get(mail, 0) + 3
    assert after[smtp_conns] == before.get(smtp_conns, 0) + 4
    assert after[stored] == 3
    assert after[("linechat_smtp_messages_received_total", (("service", "smtp"),))] == 3
    assert after[("linechat_errors_total", (("service", "smtp"),))] >= 1
    unknown = ("linechat_commands_total", (("command", "UNKNOWN"), ("service", "smtp"), ("status", "error")))
    assert after[unknown] == 1
    http_gets = ("linechat_commands_total", (("command", "GET"), ("service", "http"), ("status", "ok")))
    assert after[http_gets] > before.get(http_gets, 0)
    assert after[("linechat_connections_open", (("service", "http"),))] >= 1
    assert ("process_cpu_seconds_total", ()) in after
    assert after[("linechat_smtp_deliveries_pending", (("service", "smtp"),))] == 0  # every delivery answered
    assert after[("linechat_output_queued_bytes", (("service", "smtp"),))] == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_metrics_and_health(server: RunningServer) -> None:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", url(server, "/metrics")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    names = {family.name for family in text_string_to_metric_families(result.stdout)}
    assert {"linechat_connections", "linechat_commands", "linechat_connections_open"} <= names
    health = subprocess.run(
        ["curl", "-sS", "--max-time", "10", url(server, "/health")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert json.loads(health.stdout)["status"] == "ok"


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 40000 + b"\r\n\r\n", b"431"),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x",
            b"400",
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n", b"413"),
    ],
)
def test_hostile_requests_over_loopback(server: RunningServer, wire: bytes, status: bytes) -> None:
    with socket.create_connection(server.address("http"), timeout=TIMEOUT) as sock:
        sock.sendall(wire)
        data = read_all(sock)  # the server answers, then closes
    assert data.split(b" ", 2)[1] == status
    assert fetch(server, "/health")[0] == 200


def test_slowloris_is_cut_and_others_carry_on(server: RunningServer) -> None:
    with socket.create_connection(server.address("http"), timeout=TIMEOUT) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
        assert fetch(server, "/health")[0] == 200  # meanwhile others are served
        data = read_all(slow)  # request_timeout is 1 s here: then 408 and close
    assert data.startswith(b"HTTP/1.1 408 ")
    assert fetch(server, "/health")[0] == 200


def test_keep_alive_head_and_pipelining_with_real_clients(server: RunningServer) -> None:
    send(server, b"Subject: one\r\n\r\nx\r\n", "a@example.org", ["k@example.org"])
    host, port = server.address("http")
    # http.client keeps one connection across GET, HEAD (no body to read) and 404s.
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    for method, path, status in [
        ("GET", "/health", 200),
        ("HEAD", "/api/v1/messages", 200),
        ("GET", "/api/v1/messages?limit=1", 200),
        ("GET", "/nowhere", 404),
        ("HEAD", "/health", 200),
        ("DELETE", "/health", 405),
        ("GET", "/health", 200),
    ]:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == status, (method, path)
        assert response.headers["Connection"] is None  # kept alive
        if method == "HEAD":
            assert body == b"" and int(response.headers["Content-Length"]) > 0
        else:
            assert len(body) == int(response.headers["Content-Length"])
    sock = conn.sock
    conn.close()
    assert sock is not None
    # Pipelined: 100 requests in one write, 100 responses back in order, then close on request.
    wire = b"".join(
        b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % (b"/nowhere" if i % 3 == 0 else b"/health") for i in range(100)
    )
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        raw.sendall(wire + b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = read_all(raw)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)  # bodies are JSON: no status line in them
    assert statuses == [b"404" if i % 3 == 0 else b"200" for i in range(100)] + [b"200"]


def test_html_with_cid_images_inline_and_sandboxed(server: RunningServer) -> None:
    import base64

    png = tiny_png()
    send(server, related_message(png))
    listed = fetch_json(server, "/api/v1/messages?subject=logo")["messages"]
    assert len(listed) == 1
    mid = listed[0]["id"]
    status, headers, body = fetch(server, f"/api/v1/messages/{mid}/html")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "img-src data:" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    html = body.decode()
    inline = "data:image/png;base64," + base64.b64encode(png).decode()
    assert f'src="{inline}"' in html  # the message's own image, from its related part
    assert f"url({inline})" in html  # a CSS reference, whatever the case of the cid: URL
    assert "src='cid:nowhere@shop.example'" in html  # not in the message: left as it is
    assert "https://tracker.example/pixel.gif" in html  # the CSP stops it loading
    # The JSON keeps the HTML as sent and lists the related image by its Content-ID.
    parsed = fetch_json(server, f"/api/v1/messages/{mid}")
    assert "cid:logo.1@shop.example" in parsed["html"]
    logo = [p for p in parsed["attachments"] if p["content_id"] == "logo.1@shop.example"]
    assert logo and logo[0]["content_type"] == "image/png" and logo[0]["inline"]
    # An attachment named outside ASCII downloads under its name (RFC 6266 filename*).
    pdf = next(p for p in parsed["attachments"] if p["content_type"] == "application/pdf")
    status, headers, body = fetch(server, f"/api/v1/messages/{mid}/parts/{pdf['index']}")
    assert status == 200 and body == b"%PDF-1.4 x"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"_bersicht _.pdf\"; filename*=UTF-8''")
    assert disposition.endswith("%C3%9Cbersicht%20%E2%9C%93.pdf")
    # A message without HTML has no such view.
    send(server, b"Subject: plain\r\n\r\nx\r\n", "a@example.org", ["p@example.org"])
    plain = fetch_json(server, "/api/v1/messages?subject=plain")["messages"][0]["id"]
    assert fetch(server, f"/api/v1/messages/{plain}/html")[0] == 404
    assert fetch(server, "/api/v1/messages/nope/html")[0] == 404


def test_inbox_api_without_an_smtp_service(tmp_path: Path) -> None:
    with serve(HttpService, data_dir=tmp_path) as srv:
        status, _, body = fetch(srv, "/api/v1/messages")
        assert status == 503 and b"no SMTP service" in body
        assert fetch(srv, "/health")[0] == 200


def test_metrics_bytes_and_slow_consumer_cuts(tmp_path: Path) -> None:
    # Small output limits, so a peer that sends pipelined requests and never reads is cut off.
    http = {
        "out_high_water": 16384,
        "out_low_water": 0,
        "out_hard_limit": 65536,
        "out_soft_limit": 8192,
        "out_soft_seconds": 0.2,
        "send_buffer": 4096,
    }
    settings = {"services": {"smtp": {"fsync": False}, "http": http}}
    with serve([SmtpService, HttpService], data_dir=tmp_path, plugins=[Metrics], settings=settings) as srv:
        before = scrape(srv)
        sent_key = ("linechat_sent_bytes_total", (("service", "smtp"),))
        received_key = ("linechat_received_bytes_total", (("service", "smtp"),))
        message = b"Subject: bytes\r\n\r\n" + b"z" * 5000 + b"\r\n"
        send(srv, message, "a@example.org", ["b@example.org"])
        after = scrape(srv)
        assert after[received_key] - before[received_key] > len(message)  # the message and the commands
        assert after[sent_key] > before[sent_key]  # the replies
        with socket.create_connection(srv.address("http"), timeout=TIMEOUT) as greedy:
            greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            greedy.sendall(b"GET /static/app.js HTTP/1.1\r\nHost: t\r\n\r\n" * 400)  # and reads nothing
            slow = ("linechat_slow_consumer_disconnects_total", (("service", "http"),))
            deadline = time.monotonic() + TIMEOUT  # until the server has cut it (a safety net)
            while scrape(srv).get(slow, 0) != 1 and time.monotonic() < deadline:
                threading.Event().wait(0.02)
            assert scrape(srv)[slow] == 1
        assert fetch(srv, "/health")[0] == 200
