"""Cross-protocol scripting: an HTTP request sent to a line service (by a browser, say) is refused, not run."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.crossprotocol import is_http_header, is_http_request_line
from linechat.services.chat import ChatService
from linechat.services.redis import RedisService
from linechat.services.smtp import SmtpService
from linechat.testing import RunningServer, serve
from structlog.testing import capture_logs

DEADLINE = 20.0  # a safety net for each wait, never a performance bound

# What a page's fetch("http://127.0.0.1:PORT/", {method: "POST", body}) sends, body lines included.
FORM = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\n"


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    sock.settimeout(DEADLINE)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def attacks(logs: list[dict[str, object]]) -> int:
    return sum(1 for entry in logs if entry["event"] == "possible_security_attack")


def post_with_urllib(port: int, body: bytes) -> None:
    """A POST from urllib: it must fail (no HTTP answer comes back), whatever way it fails."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST")
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        urllib.request.urlopen(request, timeout=DEADLINE)


def test_recognisers() -> None:
    assert is_http_request_line(b"POST / HTTP/1.1")
    assert is_http_request_line("get /index.html HTTP/1.0\r")
    assert not is_http_request_line(b"GET key")
    assert not is_http_request_line(b"POST to the room about HTTP/2")
    assert is_http_header(b"Host: example.org") and is_http_header(b"HOST:x")
    assert not is_http_header(b"Hostile: no") and not is_http_header(b"host")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path) as srv:
        yield srv


def test_redis_drops_a_post_without_running_its_body(redis_server: RunningServer) -> None:
    host, port = redis_server.address()
    r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
    with capture_logs() as logs:
        for _ in range(3):
            with socket.create_connection((host, port), timeout=DEADLINE) as sock:
                sock.sendall(FORM + b"SET pwned 1\r\nCONFIG SET appendonly no\r\nFLUSHALL\r\n")
                assert read_all(sock) == b""  # no reply at all, as redis-server
        post_with_urllib(port, b"SET pwned 2\r\nFLUSHALL\r\n")
        assert r.get("pwned") is None
    assert attacks(logs) == 1  # logged once, not once per connection
    assert r.ping()
    r.close()


def test_redis_answers_commands_before_the_host_header_then_drops(redis_server: RunningServer) -> None:
    """A GET request line is a (wrong) Redis GET; the Host header after it ends the connection."""
    host, port = redis_server.address()
    r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
    r.set("keep", "1")
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nDEL keep\r\n")
        data = read_all(sock)
    assert b"DEL" not in data and data.count(b"\r\n") <= 1
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(b"PING\r\n")  # a command that is not HTTP-looking first: served
        assert sock.recv(100) == b"+PONG\r\n"
        sock.sendall(b"host: x\r\nDEL keep\r\n")
        assert read_all(sock) == b""
    assert r.get("keep") == b"1"
    r.close()


def test_smtp_refuses_an_http_request(tmp_path: Path) -> None:
    with capture_logs() as logs, serve(SmtpService, data_dir=tmp_path) as srv:
        host, port = srv.address()
        with socket.create_connection((host, port), timeout=DEADLINE) as sock:
            sock.recv(1000)  # the greeting
            sock.sendall(FORM + b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nspam\r\n.\r\n")
            replies = read_all(sock).decode()
        assert replies.startswith("221 2.7.0") and replies.count("\r\n") == 1
        post_with_urllib(port, b"HELO x\r\nMAIL FROM:<a@b>\r\n")
        # The same words inside a message body are mail, not an attack.
        with socket.create_connection((host, port), timeout=DEADLINE) as sock:
            sock.recv(1000)
            sock.sendall(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            got = b""
            while got.count(b"\r\n") < 4:
                got += sock.recv(1000)
            sock.sendall(FORM + b"body\r\n.\r\nQUIT\r\n")
            replies = read_all(sock).decode()
            assert replies.startswith("250") and "221 2.0.0" in replies
    assert attacks(logs) == 1
    assert len(list(tmp_path.rglob("new/*"))) == 1  # the one real message


def test_chat_refuses_an_http_request_on_both_dialects() -> None:
    with capture_logs() as logs, serve(ChatService, settings={"services": {"chat": {"irc_port": 0}}}) as srv:
        for listener, refusal in (("main", b"*** Goodbye (HTTP request refused"), ("irc", b"ERROR :Closing Link")):
            address = srv.address("chat", listener)
            with socket.create_connection(address, timeout=DEADLINE) as sock:
                sock.sendall(FORM + b"NICK spammer\r\nUSER s 0 * :s\r\nJOIN #x\r\nPRIVMSG #x :buy\r\n")
                data = read_all(sock)
            assert refusal in data
            assert b"spammer" not in data
            post_with_urllib(address[1], b"NICK spammer\r\nUSER s 0 * :s\r\n")
        # A registered user may still say the words: only the first line is checked.
        with socket.create_connection(srv.address("chat", "main"), timeout=DEADLINE) as sock:
            sock.sendall(b"alice\r\nPOST / HTTP/1.1\r\n/quit\r\n")
            data = read_all(sock)
            assert b"HTTP request refused" not in data
    assert attacks(logs) == 1  # one service: once a minute
