"""The chat service on real loopback sockets: a third-party IRC client, telnet users, many users, a stalled reader."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from irc_clients import DEADLINE, IrcBot, read_until
from linechat.services.chat import ChatService
from linechat.testing import LineClient, RunningServer

Server = Callable[..., RunningServer]


@pytest.fixture
def chat_server(linechat_server: Server) -> Callable[..., RunningServer]:
    """Start the chat service on loopback ports (both of them ephemeral)."""

    def start(**settings: Any) -> RunningServer:
        settings.setdefault("irc_port", 0)
        return linechat_server(ChatService, settings={"services": {"chat": settings}})

    return start


def telnet(address: tuple[str, int], nick: str) -> LineClient:
    """A raw-socket telnet user who chose *nick* (and so sits in the default room)."""
    client = LineClient(address, timeout=DEADLINE)
    read_until(client, b"What is your nickname?")
    client.send(f"{nick}\r\n")
    read_until(client, b"You are in #")
    return client


def test_irc_package_client_registers_joins_and_talks_with_a_telnet_user(chat_server: Server) -> None:
    srv = chat_server()
    bot = IrcBot(srv.address("chat", "irc"), "ircbot")
    try:
        welcome = bot.wait_for(lambda e: e.type == "welcome")
        assert welcome.target == "ircbot"
        bot.wait_for(lambda e: e.type == "featurelist")  # 005 parsed by the client
        bot.wait_for(lambda e: e.type == "nomotd")
        bot.conn.join("#lobby")
        bot.wait_for(lambda e: e.type == "endofnames")
        with telnet(srv.address("chat"), "tina") as tina:
            bot.wait_for(lambda e: e.type == "join" and e.source.nick == "tina")
            tina.send("hello from telnet\r\n")
            said = bot.wait_for(lambda e: e.type == "pubmsg")
            assert (said.source.nick, said.target, said.arguments) == ("tina", "#lobby", ["hello from telnet"])
            bot.conn.privmsg("#lobby", "hello from irc ☕")
            assert read_until(tina, b"hello from irc")[-1] == "<ircbot> hello from irc ☕".encode()
            bot.conn.action("#lobby", "waves")
            assert read_until(tina, b"waves")[-1] == b"* ircbot waves"
            bot.conn.privmsg("tina", "just you")
            assert read_until(tina, b"just you")[-1] == b"*ircbot* just you"
            tina.send("/msg ircbot back at you\r\n")
            private = bot.wait_for(lambda e: e.type == "privmsg")
            assert private.arguments == ["back at you"]
            bot.conn.topic("#lobby", "loopback")
            assert read_until(tina, b"topic")[-1] == b"*** ircbot set the topic of #lobby: loopback"
            bot.conn.list()
            listed = bot.wait_for(lambda e: e.type == "list")
            assert listed.arguments[:2] == ["#lobby", "2"]
            bot.conn.nick("ircbot2")
            assert read_until(tina, b"now known")[-1] == b"*** ircbot is now known as ircbot2"
            tina.send("/quit bye\r\n")
            quit_event = bot.wait_for(lambda e: e.type == "quit")
            assert quit_event.source.nick == "tina" and quit_event.arguments == ["bye"]
        bot.conn.ping("token")
        bot.wait_for(lambda e: e.type == "pong")
        bot.conn.send_raw("NOSUCH")
        bot.wait_for(lambda e: e.type == "unknowncommand")
        bot.conn.quit("done")
        bot.wait_for(lambda e: e.type == "disconnect")
    finally:
        bot.close()


def test_two_irc_package_clients_and_a_nick_collision(chat_server: Server) -> None:
    srv = chat_server()
    first = IrcBot(srv.address("chat", "irc"), "twin")
    second = IrcBot(srv.address("chat", "irc"), "twin")
    try:
        first.wait_for(lambda e: e.type == "welcome")
        second.wait_for(lambda e: e.type == "nicknameinuse")
        second.conn.nick("twin2")
        second.wait_for(lambda e: e.type == "welcome")
        for bot in (first, second):
            bot.conn.join("#pair")
            bot.wait_for(lambda e: e.type == "endofnames")
        second.conn.notice("#pair", "noticed?")
        notice = first.wait_for(lambda e: e.type == "pubnotice")
        assert notice.arguments == ["noticed?"]
        first.conn.part("#pair", "leaving")
        part = second.wait_for(lambda e: e.type == "part")
        assert part.source.nick == "twin" and part.arguments == ["leaving"]
    finally:
        first.close()
        second.close()


def test_telnet_users_with_lf_only_and_bad_bytes(chat_server: Server) -> None:
    srv = chat_server()
    with telnet(srv.address("chat"), "ann") as ann, telnet(srv.address("chat"), "ben") as ben:
        read_until(ann, b"ben joined")
        ben.send(b"lf only\n")
        assert read_until(ann, b"lf only")[-1] == b"<ben> lf only"
        ben.send(b"\xff\xfe\r\n")
        assert b"not valid UTF-8" in read_until(ben, b"Error")[-1]
        ben.send("/rooms\r\n")
        assert read_until(ben, b"#lobby")[-1] == b"***   #lobby (2)"


@pytest.fixture
def many_files(fd_limit: Callable[[int], None]) -> None:
    """Allow the descriptors this test's 1024 connections (both ends) need."""
    fd_limit(2048)


def test_one_message_reaches_a_room_of_500(chat_server: Server, many_files: None) -> None:
    srv = chat_server(default_room="")  # no join storm: everyone joins #big, then one talks
    address = srv.address("chat")
    socks: list[socket.socket] = []
    try:
        for n in range(500):
            sock = socket.create_connection(address, timeout=DEADLINE)
            sock.sendall(f"user{n}\r\n/join #big\r\n".encode())
            socks.append(sock)
        for sock in socks:  # each one is in the room before the talker comes
            buf = b""
            while b"You are in #big" not in buf:
                chunk = sock.recv(65536)
                assert chunk, "closed while joining"
                buf += chunk
        talker = LineClient(srv.address("chat", "irc"), timeout=DEADLINE)
        socks.append(talker.sock)
        talker.send("NICK talker\r\nUSER t 0 * :T\r\nJOIN #big\r\n")
        lines = read_until(talker, b" 366 ")
        names = b" ".join(line.split(b" :", 1)[1] for line in lines if b" 353 " in line).split()
        assert len(names) == 501
        talker.send("PRIVMSG #big :fan-out check\r\n")
        received = 0
        for sock in socks[:500]:
            buf = b""
            deadline = time.monotonic() + DEADLINE
            while b"<talker> fan-out check\r\n" not in buf and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            received += b"<talker> fan-out check\r\n" in buf
        assert received == 500
    finally:
        for sock in socks:
            sock.close()


def test_a_stalled_reader_is_cut_off_while_the_others_keep_receiving(chat_server: Server) -> None:
    srv = chat_server(
        default_room="#flow",
        out_hard_limit=64 << 10,
        out_high_water=16 << 10,
        out_low_water=4096,
        flood_rate=0,
        send_buffer=16 << 10,  # the kernel's share of what a stalled reader holds
    )
    address = srv.address("chat")
    stalled_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    stalled_sock.settimeout(DEADLINE)
    stalled_sock.connect(address)
    stalled = LineClient.from_socket(stalled_sock)
    read_until(stalled, b"nickname")
    stalled.send("stalled\r\n")
    read_until(stalled, b"You are in #flow")
    with telnet(address, "talker") as talker, telnet(address, "reader") as reader:
        watcher = LineClient(srv.address("chat", "irc"), timeout=DEADLINE)
        watcher.send("NICK watcher\r\nUSER w 0 * :W\r\nJOIN #flow\r\n")
        read_until(watcher, b" 366 ")
        read_until(reader, b"watcher joined")
        payload = "x" * 180
        total = 0
        cut = False
        # The stalled peer reads nothing from here on.  Send in rounds and let
        # the live readers drain each round, as live clients do.
        for round_no in range(400):
            talker.send("".join(f"{round_no:03d}-{n:02d} {payload}\r\n" for n in range(20)))
            total += 20
            last = f"{round_no:03d}-19".encode()
            got = read_until(reader, last)
            if any(b"stalled quit (Slow reader" in line for line in got):
                cut = True
            read_until(watcher, last)
            if cut and round_no >= 10:
                break
        assert cut, "the stalled reader was never cut off"
        # After the cut the room still works for everyone else.
        talker.send("still flowing\r\n")
        assert read_until(reader, b"still flowing")[-1] == b"<talker> still flowing"
        assert read_until(watcher, b"still flowing")[-1].endswith(b"PRIVMSG #flow :still flowing")
        watcher.close()
    # The stalled peer finds its connection closed once it reads again.
    stalled_sock.settimeout(DEADLINE)
    ended = False
    try:
        while stalled_sock.recv(65536):
            pass
        ended = True
    except ConnectionResetError:
        ended = True
    finally:
        stalled_sock.close()
    assert ended
