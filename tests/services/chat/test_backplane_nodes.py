"""Chat across ``linechat serve`` processes sharing rooms through a real redis-server (the Redis backplane)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from irc_clients import IrcBot, read_until
from linechat.testing import LineClient, connect_when_listening
from nodes import REDIS_SERVER, Node, RedisServer

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (.ci/install-tools)"),
]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_node(tmp_path: Path, redis_server: RedisServer) -> Iterator[object]:
    started: list[Node] = []

    def start(**kwargs: object) -> Node:
        node = Node(tmp_path, redis_server.url, **kwargs)  # type: ignore[arg-type]
        started.append(node)
        node.connected()
        return node

    try:
        yield start
    finally:
        for node in started:
            node.kill()


def _said(bot: IrcBot, kind: str, text: str) -> object:
    return bot.wait_for(lambda e: e.type == kind and text in " ".join(e.arguments))


def test_telnet_and_irc_users_on_two_nodes_share_a_room(start_node) -> None:  # type: ignore[no-untyped-def]
    a, b = start_node(), start_node()
    alice = a.telnet("alice")
    bob = IrcBot(b.irc_address, "bob", welcome=True)
    bob.conn.join("#lobby")
    # The join crosses to node a, and NAMES on node b lists the telnet user of node a.
    read_until(alice, b"bob joined #lobby")
    names = bob.wait_for(lambda e: e.type == "namreply")
    assert "alice" in names.arguments[-1] and "bob" in names.arguments[-1]

    alice.send("hello from node a\r\n")
    event = bob.wait_for(lambda e: e.type == "pubmsg" and e.arguments == ["hello from node a"])
    assert event.source.nick == "alice" and event.target == "#lobby"

    bob.conn.privmsg("#lobby", "hello from node b")
    read_until(alice, b"<bob> hello from node b")

    # Private messages, both ways.
    bob.conn.privmsg("alice", "just you")
    read_until(alice, b"*bob* just you")
    alice.send("/msg bob and you\r\n")
    bob.wait_for(lambda e: e.type == "privmsg" and e.arguments == ["and you"])

    # Nick changes, both ways.
    bob.conn.nick("robert")
    read_until(alice, b"bob is now known as robert")
    alice.send("/nick alicia\r\n")
    event = bob.wait_for(lambda e: e.type == "nick" and e.source.nick == "alice")
    assert event.target == "alicia"

    # A room the IRC user creates (so operates): its topic reaches node a, and a telnet join reaches node b.
    bob.conn.join("#ops")
    bob.wait_for(lambda e: e.type == "join" and e.target == "#ops")
    alice.send("/join #ops\r\n")
    read_until(alice, b"You are in #ops")
    bob.wait_for(lambda e: e.type == "join" and e.source.nick == "alicia" and e.target == "#ops")
    bob.conn.topic("#ops", "shared across nodes")
    read_until(alice, b"robert set the topic of #ops: shared across nodes")
    # Node a's mirror has the topic: a user joining there later is shown it.
    carol = IrcBot(a.irc_address, "carol", welcome=True)
    carol.conn.join("#ops")
    topic = carol.wait_for(lambda e: e.type == "currenttopic")
    assert topic.arguments[-1] == "shared across nodes"
    # And the IRC user of node b is operator there (a telnet user of node a can see it).
    names = carol.wait_for(lambda e: e.type == "namreply")
    assert "@robert" in names.arguments[-1].split()

    # Parts and quits cross too.
    alice.send("/part #ops\r\n")
    bob.wait_for(lambda e: e.type == "part" and e.source.nick == "alicia")
    carol.conn.quit("bye now")
    bob.wait_for(lambda e: e.type == "quit" and e.source.nick == "carol" and "bye now" in e.arguments[0])
    for bot in (bob, carol):
        bot.close()
    alice.close()


def test_a_nick_taken_on_one_node_is_refused_on_another(start_node) -> None:  # type: ignore[no-untyped-def]
    a, b = start_node(), start_node()
    alice = a.telnet("alice")
    dave = IrcBot(b.irc_address, "dave", welcome=True)
    dave.conn.join("#lobby")
    dave.wait_for(lambda e: e.type == "endofnames")
    dave.conn.nick("Alice")  # nicks compare case-insensitively across nodes too
    dave.wait_for(lambda e: e.type == "nicknameinuse")
    # A telnet user of node b is refused it too.
    other = LineClient.from_socket(connect_when_listening(b.port))
    read_until(other, b"nickname")
    other.send("ALICE\r\n")
    read_until(other, b"taken")
    # Once alice leaves, the nick is free everywhere.
    alice.send("/quit\r\n")
    dave.wait_for(lambda e: e.type == "quit" and e.source.nick == "alice")
    dave.conn.nick("alice")
    dave.wait_for(lambda e: e.type == "nick" and e.target == "alice")
    dave.close()
    other.close()
