"""Dead and slow peers are reaped: TCP keepalive, idle timeouts, a deadline for a begun line."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from linechat.services.chat import ChatService
from linechat.services.echo import EchoService
from linechat.services.redis import RedisService
from linechat.services.smtp import SmtpService
from linechat.testing import LineClient, ServiceHarness, serve


def _server_socket(keepalive: int) -> tuple[int, ...]:
    with serve(EchoService, settings={"services": {"echo": {"tcp_keepalive": keepalive}}}) as server:
        client = LineClient(server.address("echo"))
        assert client.read_line().startswith(b"+ ")
        (channel,) = server.app.services["echo"].connections
        sock = channel.socket
        options = (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )
        client.close()
        return options


def test_accepted_sockets_get_tcp_keepalive_as_redis_sets_it() -> None:
    assert _server_socket(120) == (1, 120, 40, 3)
    assert _server_socket(0)[0] == 0


def test_every_bundled_service_has_an_idle_timeout_a_line_deadline_and_keepalive() -> None:
    for service in (EchoService, ChatService, RedisService, SmtpService):
        settings = service.Settings()
        assert settings.idle_timeout, service.name
        assert settings.line_timeout, service.name
        assert settings.tcp_keepalive == 300, service.name


def test_a_trickled_line_is_cut_off_but_the_idle_timer_alone_would_not() -> None:
    with ServiceHarness(EchoService) as h:
        slow, canary = h.connect(), h.connect()
        slow.read()
        canary.read()
        for byte in b"ECHO this line is never going to be finished":
            slow.send(bytes([byte]))
            h.advance(3)
            canary.send(b"ECHO hi\r\n")
            assert canary.read_lines() == ["+ hi"]
            if slow.closed:
                break
        assert slow.closed
        assert not canary.closed


def test_smtp_line_deadline_says_421(tmp_path: Path) -> None:
    with ServiceHarness(SmtpService, data_dir=tmp_path, line_timeout=10) as h:
        client = h.connect()
        client.read()
        client.send(b"EHLO slow")
        h.advance(11)
        assert client.read_lines()[-1].startswith("421 4.4.2")
        assert client.closed


def test_slowloris_connections_are_reaped_over_loopback(tmp_path: Path) -> None:
    settings = {"services": {"echo": {"line_timeout": 1}, "redis": {"line_timeout": 1, "appendonly": False}}}
    with serve([EchoService, RedisService], data_dir=tmp_path, settings=settings) as server:
        echo, redis_addr = server.address("echo"), server.address("redis")
        slow = []
        for n in range(20):
            sock = socket.create_connection(echo if n % 2 else redis_addr, timeout=30)
            sock.sendall(b"ECHO aaa" if n % 2 else b"*2\r\n$3\r\nGET\r\n$5\r\nab")
            slow.append(sock)
        with LineClient(echo) as canary:
            canary.read_line()
            for sock in slow:
                # Each is closed by the server (the socket timeout is only a safety net).
                data = b""
                while chunk := sock.recv(4096):
                    data += chunk
                sock.close()
                canary.send(b"ECHO alive\r\n")
                assert canary.read_line() == b"+ alive"
        deadline = time.monotonic() + 30
        while server.app.services["echo"].connections or server.app.services["redis"].connections:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_plain_chat_line_trickled_is_cut_off() -> None:
    with ServiceHarness(ChatService) as h:
        slow = h.connect()
        slow.read()
        for byte in b"alice and a nickname that never ends":
            slow.send(bytes([byte]))
            h.advance(3)
            if slow.closed:
                break
        assert slow.closed
