"""The IRC server side on real loopback sockets: flood control, moderation across dialects, safe text.

The ``irc`` package (a client no one here wrote) and raw sockets talk to a
running chat service; telnet users are raw sockets.
"""

from __future__ import annotations

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


def telnet(address: tuple[str, int], nick: str, room: str = "") -> LineClient:
    """A raw-socket telnet user who chose *nick* (and moved to *room*)."""
    client = LineClient(address, timeout=DEADLINE)
    read_until(client, b"What is your nickname?")
    client.send(f"{nick}\r\n")
    read_until(client, f"*** Hello {nick}.".encode())
    if room:
        client.send(f"/join {room}\r\n")
        read_until(client, f"You are in {room}".encode())
    return client


def test_a_lock_step_client_sending_1000_pings_is_never_cut(chat_server: Server) -> None:
    srv = chat_server()  # the default flood clock: 4 lines a second, 20 at once
    client = LineClient(srv.address("chat", "irc"), timeout=DEADLINE)
    client.send("NICK pinger\r\nUSER p 0 * :P\r\n")
    read_until(client, b" 422 ")
    for n in range(1000):
        client.send(f"PING :n{n}\r\n")
        assert client.read_line() == f":linechat PONG linechat :n{n}".encode()
    client.send("QUIT\r\n")
    assert read_until(client, b"ERROR")[-1] == b"ERROR :Closing Link: 127.0.0.1 (Quit)"
    client.close()


def test_a_200_line_paste_is_delivered_whole_from_either_side(chat_server: Server) -> None:
    # A fast clock keeps the test short; the paste still outruns the burst many times over.
    srv = chat_server(flood_rate=100.0, flood_burst=10, default_room="#paste")
    bot = IrcBot(srv.address("chat", "irc"), "reader", welcome=True)
    try:
        bot.conn.join("#paste")
        bot.wait_for(lambda e: e.type == "endofnames")
        with telnet(srv.address("chat"), "paster") as paster:
            paster.send("".join(f"line {n:03d}\r\n" for n in range(200)))
            bot.wait_for(lambda e: e.type == "pubmsg" and e.arguments == ["line 199"])
            said = [e.arguments[0] for e in bot.events if e.type == "pubmsg" and e.source.nick == "paster"]
            assert said == [f"line {n:03d}" for n in range(200)]  # all of it, in order
            ircpaster = LineClient(srv.address("chat", "irc"), timeout=DEADLINE)
            ircpaster.send("NICK ircpaster\r\nUSER i 0 * :I\r\nJOIN #paste\r\n")
            read_until(ircpaster, b" 366 ")
            ircpaster.send("".join(f"PRIVMSG #paste :irc {n:03d}\r\n" for n in range(200)) + "PING :done\r\n")
            got = read_until(paster, b"<ircpaster> irc 199")
            assert [line for line in got if line.startswith(b"<ircpaster>")] == [
                f"<ircpaster> irc {n:03d}".encode() for n in range(200)
            ]
            assert read_until(ircpaster, b"PONG")[-1] == b":linechat PONG linechat :done"  # still connected
            ircpaster.close()
    finally:
        bot.close()


def test_a_telnet_user_sees_no_escape_sequence_from_any_peer(chat_server: Server) -> None:
    srv = chat_server(default_room="#t")
    hostile = "\x1b[2J\x1b[H*** Error: you have been kicked \x1b]0;owned\x07 \x9b2J \x02bold\x02 \x0304red\x0f"
    with telnet(srv.address("chat"), "victim") as victim, telnet(srv.address("chat"), "eve") as eve:
        victim.send("/op bot\r\n")  # not there yet: refused, harmless
        bot = IrcBot(srv.address("chat", "irc"), "bot", welcome=True)
        try:
            bot.conn.join("#t")
            bot.wait_for(lambda e: e.type == "endofnames")
            bot.conn.privmsg("#t", hostile)
            bot.conn.privmsg("victim", hostile)
            bot.conn.notice("#t", hostile)
            bot.conn.part("#t", hostile)
            eve.send(f"{hostile}\r\n/me {hostile}\r\n")
            eve.send("/quit " + hostile + "\r\n")
            lines = read_until(victim, b"eve quit")
            data = b"\r\n".join(lines)
            for bad in (b"\x1b", b"\x07", b"\xc2\x9b", b"\x02", b"\x03", b"\x0f"):
                assert bad not in data, (bad, lines)
            assert b"<bot> [2J[H*** Error: you have been kicked ]0;owned 2J bold red" in lines
        finally:
            bot.close()


def test_operators_kick_and_ban_across_both_sides(chat_server: Server) -> None:
    srv = chat_server(default_room="")
    op = IrcBot(srv.address("chat", "irc"), "chanop", welcome=True)
    troll = IrcBot(srv.address("chat", "irc"), "troll", welcome=True)
    try:
        op.conn.join("#mod")
        op.wait_for(lambda e: e.type == "namreply" and "@chanop" in e.arguments[2])
        with telnet(srv.address("chat"), "tom", "#mod") as tom, telnet(srv.address("chat"), "spammer", "#mod") as sp:
            op.conn.mode("#mod", "+o tom")  # an IRC operator makes a telnet user an operator
            assert read_until(tom, b"set mode")[-1] == b"*** chanop set mode +o tom on #mod"
            troll.conn.join("#mod")
            troll.wait_for(lambda e: e.type == "join")
            tom.send("/ban troll\r\n/kick troll go away\r\n")  # the telnet operator acts on an IRC user
            kicked = troll.wait_for(lambda e: e.type == "kick")
            assert (kicked.source.nick, kicked.arguments) == ("tom", ["troll", "go away"])
            troll.conn.join("#mod")
            troll.wait_for(lambda e: e.type == "bannedfromchan")
            op.conn.mode("#mod", "+b spammer!*@*")  # the IRC operator acts on a telnet user
            op.conn.kick("#mod", "spammer", "bye")
            assert read_until(sp, b"spammer was kicked")[-1] == b"*** spammer was kicked from #mod by chanop (bye)"
            sp.send("/join #mod\r\n")
            assert read_until(sp, b"Error")[-1] == b"*** Error: you are banned from #mod"
            op.conn.send_raw("MODE #mod +b")
            ban = op.wait_for(lambda e: e.type == "banlist" and e.arguments[1] == "troll!*@*")
            assert ban.arguments[2].startswith("tom!")
            op.wait_for(lambda e: e.type == "endofbanlist")
    finally:
        op.close()
        troll.close()
