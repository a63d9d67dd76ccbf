"""Chat across ``linechat serve`` processes sharing rooms through a real redis-server (the Redis backplane)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from irc_clients import IrcBot, read_until
from linechat.testing import LineClient, connect_when_listening
from nodes import REDIS_SERVER, LinechatRedis, Node, RedisServer

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
        for i, node in enumerate(started):
            node.kill()
            (tmp_path / f"node{i}.log").write_text("".join(node.lines))  # kept by pytest for a failure's post-mortem


def _said(bot: IrcBot, kind: str, text: str) -> object:
    return bot.wait_for(lambda e: e.type == kind and text in " ".join(e.arguments))


def test_telnet_and_irc_users_on_two_nodes_share_a_room(start_node) -> None:  # type: ignore[no-untyped-def]
    a, b = start_node(), start_node()
    alice = a.telnet("alice")
    bob = IrcBot(b.irc_address, "bob", welcome=True)
    bob.conn.join("#lobby")
    # The join crosses to node a.
    read_until(alice, b"bob joined #lobby")

    alice.send("hello from node a\r\n")
    event = bob.wait_for(lambda e: e.type == "pubmsg" and e.arguments == ["hello from node a"])
    assert event.source.nick == "alice" and event.target == "#lobby"
    # NAMES on node b lists the telnet user of node a (node b's mirror has her; what one node
    # says reaches the others in order, so her join came before her message).
    bob.conn.names(["#lobby"])
    names = bob.wait_for(lambda e: e.type == "namreply" and "alice" in e.arguments[-1])
    assert "bob" in names.arguments[-1]

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
    bob.conn.privmsg("#lobby", "made #ops")  # once node a has this, it has the join before it
    read_until(alice, b"<robert> made #ops")
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


def test_two_nodes_on_linechats_own_redis_service(tmp_path: Path) -> None:
    """The backplane needs nothing redis-server has and linechat's Redis service lacks."""
    server = LinechatRedis(tmp_path)
    server.start()
    nodes: list[Node] = []
    try:
        for _ in range(2):
            node = Node(tmp_path, server.url, node_timeout=2)
            nodes.append(node)
            node.connected()
        a, b = nodes
        alice = a.telnet("alice")
        bob = IrcBot(b.irc_address, "bob", welcome=True)
        bob.conn.join("#lobby")
        read_until(alice, b"bob joined #lobby")
        alice.send("through linechat's redis\r\n")
        bob.wait_for(lambda e: e.type == "pubmsg" and e.arguments == ["through linechat's redis"])
        bob.conn.nick("alice")
        bob.wait_for(lambda e: e.type == "nicknameinuse")
        b.kill()
        read_until(alice, b"bob quit (Lost in the network)")
    finally:
        for node in nodes:
            node.kill()
        server.stop()


def test_history_is_shared_and_a_stopped_node_says_goodbye(start_node) -> None:  # type: ignore[no-untyped-def]
    history = ("--set", "services.chat.history=5")
    a, b = start_node(extra=history), start_node(extra=history, node_timeout=60)
    alice, bob = a.telnet("alice"), b.telnet("bob")
    read_until(alice, b"bob joined #lobby")
    alice.send("remember me\r\n")
    read_until(bob, b"<alice> remember me")
    # A user of the other node who joins later is shown what was said on the first.
    carol = b.telnet("carol")
    read_until(carol, b"<alice> remember me")
    # So is one of a node started afterwards: it read the history from Redis.
    c = start_node(extra=history)
    dave = c.telnet("dave")
    read_until(dave, b"<alice> remember me")
    # A node stopped gracefully quits its users everywhere at once (no node_timeout to wait: 60 s).
    assert b.stop() == 0
    read_until(alice, b"bob quit (Server shutting down)")
    read_until(dave, b"carol quit (Server shutting down)")


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


def test_three_nodes_and_one_killed(start_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, c = start_node(node_timeout=2), start_node(node_timeout=2), start_node(node_timeout=2)
    alice, carol = a.telnet("alice"), c.telnet("carol")
    read_until(alice, b"carol joined #lobby")
    bob = IrcBot(b.irc_address, "bob", welcome=True)
    bob.conn.join("#lobby")
    for user in (alice, carol):
        read_until(user, b"bob joined #lobby")
    bob.conn.privmsg("#lobby", "three nodes")
    for user in (alice, carol):
        read_until(user, b"<bob> three nodes")
    carol.send("from c\r\n")
    read_until(alice, b"<carol> from c")
    bob.wait_for(lambda e: e.type == "pubmsg" and e.arguments == ["from c"])

    # Node b dies without a word: after node_timeout its user quits on a and c, cleaned up once.
    b.kill()
    for user in (alice, carol):
        read_until(user, b"bob quit (Lost in the network)")

    def reaped() -> list[dict[str, object]]:
        return [e for node in (a, c) for e in node.events if e["event"] == "backplane_node_reaped"]

    deadline = time.monotonic() + 30
    while not reaped() and time.monotonic() < deadline:
        time.sleep(0.05)
    # Its nick is free again, on any node.
    alice.send("/nick bob\r\n")
    read_until(carol, b"alice is now known as bob")
    # The survivors carry on.
    carol.send("still here\r\n")
    read_until(alice, b"<carol> still here")
    # One survivor cleaned up after node b, once.
    assert len(reaped()) == 1


def test_redis_restart_users_told_and_chat_resumes(start_node, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    a, b = start_node(node_timeout=2), start_node(node_timeout=2)
    alice, ann = a.telnet("alice"), a.telnet("ann")
    bob = b.telnet("bob")
    read_until(alice, b"bob joined #lobby")
    bob.send("before\r\n")
    read_until(alice, b"<bob> before")

    redis_server.stop()
    for user in (alice, ann, bob):
        read_until(user, b"Lost the connection to the chat backplane")
    # Local chat carries on; nothing crashes.
    alice.send("while redis is away\r\n")
    read_until(ann, b"<alice> while redis is away")
    assert a.proc.poll() is None and b.proc.poll() is None

    redis_server.start()
    for node in (a, b):
        node.connected(times=2)
    for user in (alice, bob):
        read_until(user, b"backplane is back")
    bob.send("after\r\n")
    read_until(alice, b"<bob> after")
    alice.send("to b again\r\n")
    read_until(bob, b"<alice> to b again")
    # Redis came back empty: the nodes filled it again (nick keys, users), so nicks are still held across nodes.
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    deadline = time.monotonic() + 30
    while not (client.get("linechat:chat:nick:alice") and client.get("linechat:chat:nick:bob")):
        assert time.monotonic() < deadline, client.keys("*")
        time.sleep(0.05)
    assert client.scard("linechat:chat:nodes") == 2
    client.close()
    other = LineClient.from_socket(connect_when_listening(b.port))
    read_until(other, b"nickname")
    other.send("alice\r\n")
    read_until(other, b"taken")


def test_chat_under_workers_with_the_redis_backplane(tmp_path: Path, redis_server: RedisServer) -> None:
    node = Node(tmp_path, redis_server.url, extra=("--workers", "2"))
    try:
        # Both workers join the backplane (each has its own node id).
        node.wait_for(lambda events: len({e["node"] for e in events if e["event"] == "backplane_connected"}) >= 2)
        users = [node.telnet(f"user{i}") for i in range(6)]
        users[0].send("to everyone\r\n")
        for user in users[1:]:
            read_until(user, b"<user0> to everyone")
    finally:
        assert node.stop() == 0


def test_garbage_on_the_channel_is_ignored(start_node, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    import redis

    a, b = start_node(), start_node()
    alice, bob = a.telnet("alice"), b.telnet("bob")
    read_until(alice, b"bob joined #lobby")
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    channel = "linechat:chat:events"
    for junk in (
        b"not json",
        b"\xff\xfe",
        b"[1, 2, 3]",
        b'{"o": "pub"}',
        b'{"o": "pub", "n": "x", "r": "#lobby", "e": [1]}',
        b'{"o": "join", "n": "x", "t": "x/1", "r": 5}',
        b'{"o": "gone", "n": "x"}',
        b'{"o": "sync", "n": "x", "users": "nope"}',
        b'{"o": "_link_up", "n": "x"}',
        b"{" * 10000,
    ):
        client.publish(channel, junk)
    client.close()
    bob.send("after the junk\r\n")
    read_until(alice, b"<bob> after the junk")
    assert a.proc.poll() is None and b.proc.poll() is None


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _netns_usable() -> str | None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    probe = f"lcbprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot create a network namespace here: {exc}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@pytest.fixture
def two_hosts() -> Iterator[list[tuple[str, str, str]]]:
    """Two network namespaces, each joined to this one by a veth pair: (namespace, its address, our address)."""
    why = _netns_usable()
    if why:
        pytest.skip(why)
    tag = f"{os.getpid() % 100000}"
    net = 200 + os.getpid() % 50
    hosts: list[tuple[str, str, str]] = []
    made: list[str] = []
    try:
        for i in (1, 2):
            ns, outer, inner = f"lcbp{tag}n{i}", f"lcb{tag}o{i}", f"lcb{tag}i{i}"
            ours, theirs = f"10.{net}.{i}.1", f"10.{net}.{i}.2"
            _run("ip", "netns", "add", ns)
            made.append(ns)
            _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _run("ip", "link", "set", inner, "netns", ns)
            _run("ip", "addr", "add", f"{ours}/24", "dev", outer)
            _run("ip", "link", "set", outer, "up")
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{theirs}/24", "dev", inner)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            hosts.append((ns, theirs, ours))
        yield hosts
    finally:
        # Deleting a namespace deletes its end of the veth pair, and so the pair.
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_nodes_on_separate_hosts(tmp_path: Path, two_hosts: list[tuple[str, str, str]]) -> None:
    """Two nodes in their own network namespaces reach redis-server over their own veth links."""
    (_, host1, gw1), (_, host2, gw2) = two_hosts
    server = RedisServer(host=gw1)
    assert REDIS_SERVER is not None
    server.proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(server.port), "--bind", gw1, gw2, "--save", "", "--appendonly", "no",
         "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    nodes: list[Node] = []
    try:
        connect_when_listening(server.port, gw1, within=30).close()
        for ns, host, gw in two_hosts:
            node = Node(tmp_path, f"redis://{gw}:{server.port}/0", host=host, prefix=("ip", "netns", "exec", ns))
            nodes.append(node)
            node.connected()
        a, b = nodes
        alice = a.telnet("alice")
        bob = IrcBot(b.irc_address, "bob", welcome=True)
        bob.conn.join("#lobby")
        read_until(alice, b"bob joined #lobby")
        alice.send("across hosts\r\n")
        bob.wait_for(lambda e: e.type == "pubmsg" and e.arguments == ["across hosts"])
        bob.conn.privmsg("#lobby", "and back")
        read_until(alice, b"<bob> and back")
        # redis-server sees the two nodes come from their own addresses on the network, not loopback.
        import redis

        client = redis.Redis(host=gw1, port=server.port)
        addresses = {entry["addr"].rsplit(":", 1)[0] for entry in client.client_list()}
        client.close()
        assert {host1, host2} <= addresses
        bob.close()
    finally:
        for node in nodes:
            node.kill()
        server.stop()
