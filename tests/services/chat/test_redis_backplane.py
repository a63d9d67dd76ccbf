"""The Redis backplane's mirror: what a node does with the other nodes' messages (no Redis needed)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("redis")

from linechat.reactor import Reactor
from linechat.services.chat.backplane import Event
from linechat.services.chat.redis_backplane import RedisBackplane, RemoteMember

OTHER = "other-1-beef"


class User:
    """A local member that records what it is given."""

    dialect = "plain"

    def __init__(self, nick: str) -> None:
        self.nick, self.user, self.host, self.realname, self.away = nick, "~" + nick, "127.0.0.1", nick, ""
        self.rooms: dict[str, str] = {}
        self.got: list[Event] = []
        self.removed_from: list[str] = []
        self.killed = ""

    def deliver(self, event: Event) -> None:
        self.got.append(event)

    def removed(self, room: str) -> None:
        self.removed_from.append(room)
        self.rooms.pop(room.lower(), None)

    def kill(self, reason: str) -> None:
        self.killed = reason

    def lines(self) -> list[tuple[str, str, str]]:
        return [(event.kind, event.nick, event.text) for event in self.got]


def _info(nick: str) -> list[Any]:
    return [nick, "~" + nick, "10.0.0.2", "remote user", "", "irc", False, False, False, 5, 1]


@pytest.fixture
def node() -> RedisBackplane:
    backplane = RedisBackplane(Reactor(), "redis://127.0.0.1:1/0")  # never started: messages are fed by hand
    return backplane


def _local(backplane: RedisBackplane, nick: str, room: str = "#lobby") -> User:
    user = User(nick)
    assert backplane.claim_nick(nick, user)
    backplane.join(room, user)
    user.rooms[room.lower()] = room
    return user


def _remote_join(backplane: RedisBackplane, token: str, nick: str, room: str = "#lobby", status: str = "") -> None:
    backplane._apply_batch(
        [
            {"o": "claim", "n": OTHER, "t": token, "k": nick, "i": _info(nick)},
            {"o": "join", "n": OTHER, "t": token, "r": room, "s": status},
        ]
    )


def test_a_remote_user_joins_speaks_changes_nick_and_quits(node: RedisBackplane) -> None:
    alice = _local(node, "alice")
    _remote_join(node, f"{OTHER}/1", "bob", status="v")
    bob = node.find("BOB")
    assert isinstance(bob, RemoteMember) and bob.host == "10.0.0.2"
    assert node.status("#lobby", bob) == "v"
    assert {member.nick for member in node.members("#lobby")} == {"alice", "bob"}
    assert not node.claim_nick("bob", User("bob"))  # held on another node: refused without asking Redis

    said = ["message", "bob", "~bob", "10.0.0.2", "#lobby", "hi", 1.0, "", ""]
    node._apply_batch([{"o": "pub", "n": OTHER, "r": "#lobby", "e": said, "x": f"{OTHER}/1"}])
    assert alice.lines()[-1] == ("message", "bob", "hi")

    node._apply_batch(
        [
            {"o": "claim", "n": OTHER, "t": f"{OTHER}/1", "k": "robert", "i": _info("bob")},
            {"o": "release", "n": OTHER, "t": f"{OTHER}/1", "k": "bob"},
            {"o": "info", "n": OTHER, "t": f"{OTHER}/1", "i": _info("robert")},
        ]
    )
    assert node.find("bob") is None and node.find("robert") is bob and bob.nick == "robert"

    node._apply_batch([{"o": "quit", "n": OTHER, "t": f"{OTHER}/1", "why": "Quit: bye"}])
    assert alice.lines()[-1] == ("quit", "robert", "Quit: bye")
    assert node.find("robert") is None and [m.nick for m in node.members("#lobby")] == ["alice"]


def test_a_dead_node_quits_its_users_once_per_shared_user(node: RedisBackplane) -> None:
    alice = _local(node, "alice")
    carol = _local(node, "carol", "#other")
    _remote_join(node, f"{OTHER}/1", "bob")
    _remote_join(node, f"{OTHER}/2", "dan", "#other")
    node._apply_batch([{"o": "gone", "n": "third-node", "node": OTHER, "why": "Lost in the network"}])
    assert alice.lines()[-1] == ("quit", "bob", "Lost in the network")
    assert carol.lines()[-1] == ("quit", "dan", "Lost in the network")
    assert node.users() == [alice, carol]
    # A second notice of the same death changes nothing.
    node._apply_batch([{"o": "gone", "n": "fourth-node", "node": OTHER, "why": "Lost in the network"}])
    assert len(alice.got) == 1 and len(carol.got) == 1


def test_a_kick_from_another_node_takes_a_local_user_out(node: RedisBackplane) -> None:
    alice = _local(node, "alice")
    token = node._tokens[id(alice)]
    node._apply_batch([{"o": "part", "n": OTHER, "t": token, "r": "#lobby"}])
    assert alice.removed_from == ["#lobby"] and node.room("#lobby") is None


def test_a_sync_tells_local_users_what_changed(node: RedisBackplane) -> None:
    alice = _local(node, "alice")
    _remote_join(node, f"{OTHER}/1", "bob")
    _remote_join(node, f"{OTHER}/2", "eve")
    # The other node comes back (say after a Redis restart): bob left the room meanwhile, eve quit, fay came.
    users = [
        {"t": f"{OTHER}/1", "i": _info("bob"), "k": ["bob"], "r": {}},
        {"t": f"{OTHER}/3", "i": _info("fay"), "k": ["fay"], "r": {"#lobby": "o"}},
    ]
    node._apply_batch([{"o": "sync", "n": OTHER, "users": users}])
    assert sorted(alice.lines()) == sorted(
        [("part", "bob", "Lost in the network"), ("quit", "eve", "Lost in the network"), ("join", "fay", "")]
    )
    fay = node.find("fay")
    assert fay is not None and node.status("#lobby", fay) == "o"
    assert node.find("eve") is None and node.find("bob") is not None


def test_messages_from_this_node_and_garbage_are_ignored(node: RedisBackplane) -> None:
    alice = _local(node, "alice")
    said = ["message", "x", "x", "x", "#lobby", "echo", 1.0, "", ""]
    node._apply_batch(
        [
            {"o": "pub", "n": node.node, "r": "#lobby", "e": said, "x": ""},  # our own, back from Redis
            {"o": "pub", "n": OTHER, "r": "#lobby", "e": ["short"]},
            {"o": "join", "n": OTHER, "t": f"{OTHER}/9", "r": 5},
            {"o": "kill", "n": OTHER},
            {"o": "no-such-op", "n": OTHER},
            {"n": OTHER},
        ]
    )
    assert alice.got == []
    node._apply_batch([{"o": "pub", "n": OTHER, "r": "#lobby", "e": said, "x": ""}])
    assert alice.lines() == [("message", "x", "echo")]


def test_a_kill_from_another_node_reaches_the_local_user(node: RedisBackplane) -> None:
    alice = _local(node, "alice")
    node._apply_batch([{"o": "kill", "n": OTHER, "t": node._tokens[id(alice)], "why": "Killed (op (spam))"}])
    assert alice.killed == "Killed (op (spam))"


def test_without_redis_claims_and_rooms_stay_local(node: RedisBackplane) -> None:
    # Never connected: nothing is queued for Redis, and the node works on its own.
    alice = _local(node, "alice")
    bob = _local(node, "bob")
    assert node.publish("#lobby", Event("message", "alice", "~alice", "h", "#lobby", "hi"), exclude=alice) == 1
    assert bob.lines() == [("message", "alice", "hi")]
    assert node._out.qsize() == 0
