"""IRC over TLS, the server password (PASS) and SASL PLAIN, with the irc package and raw sockets over loopback."""

from __future__ import annotations

import base64
import functools
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import irc.client
import irc.connection
import pytest
from irc_clients import DEADLINE, IrcBot, read_until
from linechat.auth import hash_password
from linechat.services.chat import ChatService
from linechat.testing import LineClient, RunningServer, free_port

Server = Callable[..., RunningServer]


@pytest.fixture
def chat_server(linechat_server: Server, tmp_path: Path) -> Callable[..., RunningServer]:
    """The chat service with an IRC TLS port and a SASL users file (alice / wonderland)."""
    users = tmp_path / "irc-users"
    users.write_text(f"alice:{hash_password('wonderland')}\n")

    def start(**settings: Any) -> RunningServer:
        settings.setdefault("irc_port", 0)
        settings.setdefault("irc_tls_port", free_port())
        settings.setdefault("sasl_users_file", str(users))
        return linechat_server(ChatService, settings={"services": {"chat": settings}})

    return start


def tls_bot(server: RunningServer, nick: str, password: str | None = None, sasl: bool = False) -> IrcBot:
    """An ``irc`` package client over TLS: its connect_factory wraps the socket, trusting the server's CA."""
    context = server.tls_client_context()
    factory = irc.connection.Factory(wrapper=functools.partial(context.wrap_socket, server_hostname="localhost"))
    _, port = server.address(listener="irc-tls")
    return IrcBot(("localhost", port), nick, password=password, sasl=sasl, connect_factory=factory)


def test_irc_package_over_tls_with_sasl(chat_server: Server) -> None:
    server = chat_server()
    alice = tls_bot(server, "alice", password="wonderland", sasl=True)
    alice.wait_for(lambda e: e.type == "saslsuccess")
    logged_in = next(e for e in alice.events if e.type in ("900", "loggedin"))
    assert "alice" in logged_in.arguments
    alice.wait_for(lambda e: e.type == "welcome")
    assert isinstance(alice.conn.socket, ssl.SSLSocket)
    # A plain IRC user in the same room hears what the TLS user says.
    plain = LineClient(server.address(listener="irc"), timeout=DEADLINE)
    plain.send(b"NICK bob\r\nUSER bob 0 * :Bob\r\n")
    while b" 001 " not in plain.read_line():
        pass
    plain.send(b"JOIN #tls\r\n")
    alice.conn.join("#tls")
    alice.wait_for(lambda e: e.type == "join" and e.target == "#tls")
    while b"JOIN" not in plain.read_line():
        pass
    alice.conn.privmsg("#tls", "hello from tls")
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = plain.read_line()
        if b"hello from tls" in line:
            assert line.startswith(b":alice!")
            break
    else:
        raise AssertionError("the message did not cross")
    alice.close()
    plain.close()


def test_sasl_with_a_wrong_password_fails_and_registration_goes_on(chat_server: Server) -> None:
    server = chat_server()
    bot = tls_bot(server, "alice", password="looking-glass", sasl=True)
    bot.wait_for(lambda e: e.type == "saslfail")
    bot.wait_for(lambda e: e.type == "welcome")  # the client ends CAP and registers without an account
    bot.close()


def raw_irc(server: RunningServer) -> LineClient:
    return LineClient(server.address(listener="irc"), timeout=DEADLINE)


def test_server_password_enforced(chat_server: Server) -> None:
    server = chat_server(password=hash_password("letmein"))
    nobody = raw_irc(server)
    nobody.send(b"NICK nopass\r\nUSER u 0 * :No Pass\r\n")
    lines = read_until(nobody, b"ERROR")
    assert any(b" 464 " in line for line in lines)
    assert nobody.read_line() == b"" and nobody.eof
    wrong = raw_irc(server)
    wrong.send(b"PASS guess\r\nNICK wrong\r\nUSER u 0 * :Wrong\r\n")
    assert any(b" 464 " in line for line in read_until(wrong, b"ERROR"))
    right = raw_irc(server)
    right.send(b"PASS letmein\r\nNICK right\r\nUSER u 0 * :Right\r\n")
    read_until(right, b" 001 ")
    for client in (nobody, wrong, right):
        client.close()


def test_sasl_exchange_by_hand(chat_server: Server) -> None:
    server = chat_server()
    client = raw_irc(server)
    client.send(b"CAP LS 302\r\n")
    caps = read_until(client, b"CAP * LS")[-1]
    assert b"sasl=PLAIN" in caps
    client.send(b"NICK carol\r\nUSER carol 0 * :Carol\r\nCAP REQ :sasl\r\n")
    read_until(client, b"ACK")
    client.send(b"AUTHENTICATE EXTERNAL\r\n")
    assert any(b" 908 " in line for line in read_until(client, b" 904 "))
    client.send(b"AUTHENTICATE PLAIN\r\n")
    assert client.read_line() == b"AUTHENTICATE +"
    client.send(b"AUTHENTICATE %%%garbage\r\n")
    read_until(client, b" 904 ")
    client.send(b"AUTHENTICATE PLAIN\r\n")
    client.read_line()
    client.send(b"AUTHENTICATE " + base64.b64encode(b"\0alice\0wonderland") + b"\r\n")
    lines = read_until(client, b" 903 ")
    assert any(b" 900 " in line and b"alice" in line for line in lines)
    client.send(b"CAP END\r\n")
    read_until(client, b" 001 ")
    client.close()


def test_plaintext_on_the_irc_tls_port_is_closed(chat_server: Server) -> None:
    server = chat_server()
    sock = socket.create_connection(server.address(listener="irc-tls"), timeout=DEADLINE)
    sock.sendall(b"NICK plain\r\nUSER p 0 * :P\r\n")
    got = b""
    while True:
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    assert b" 001 " not in got
    sock.close()
