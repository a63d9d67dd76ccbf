"""Channel operators and modes in memory: both dialects, operators on either side acting on both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from linechat.services.chat import ChatService
from linechat.testing import MemoryClient, ServiceHarness

Harness = Callable[..., ServiceHarness]


@pytest.fixture
def chat(linechat_harness: Harness) -> Callable[..., ServiceHarness]:
    """A chat harness with IRC pings and the flood clock off unless asked for."""

    def make(**settings: Any) -> ServiceHarness:
        settings.setdefault("ping_interval", 0)
        settings.setdefault("flood_rate", 0)
        return linechat_harness(ChatService, **settings)

    return make


def plain(harness: ServiceHarness, nick: str, room: str = "") -> MemoryClient:
    """A telnet user called *nick*, moved to *room* if given; its output so far is read."""
    client = harness.connect()
    client.send(f"{nick}\r\n")
    if room:
        client.send(f"/join {room}\r\n")
    client.read()
    return client


def irc(harness: ServiceHarness, nick: str, *rooms: str, caps: str = "") -> MemoryClient:
    """A registered IRC client in *rooms* (with *caps* negotiated); its output so far is read."""
    client = harness.connect("irc")
    if caps:
        client.send(f"CAP LS 302\r\nCAP REQ :{caps}\r\nCAP END\r\n")
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick} real\r\n")
    assert any(" 001 " in line for line in client.read_lines())
    for room in rooms:
        client.send(f"JOIN {room}\r\n")
    client.read()
    return client


def codes(lines: list[str]) -> list[str]:
    """The numerics among server lines."""
    return [line.split()[1] for line in lines if line.startswith(":linechat ") and line.split()[1].isdigit()]


def test_creator_operates_and_prefixes_show_in_names_and_who(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    alice.read()
    alice.send("MODE #a +v bob\r\nNAMES #a\r\nWHO #a\r\n")
    lines = alice.read_lines()
    assert lines[0] == ":alice!~alice@127.0.0.1 MODE #a +v bob"
    assert lines[1] == ":linechat 353 alice = #a :@alice +bob"
    assert [line.split()[8] for line in lines if " 352 " in line] == ["H@", "H+"]
    assert bob.read_lines() == [":alice!~alice@127.0.0.1 MODE #a +v bob"]
    carol = irc(harness, "carol", caps="multi-prefix userhost-in-names")
    alice.send("MODE #a +o bob\r\n")
    carol.send("NAMES #a\r\n")
    assert carol.read_lines()[0] == ":linechat 353 carol = #a :@alice!~alice@127.0.0.1 @+bob!~bob@127.0.0.1"


def test_only_operators_change_modes_and_topic_under_plus_t(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    tom = plain(harness, "tom", "#a")
    alice.read()
    bob.send("MODE #a +m\r\nTOPIC #a :mine\r\nKICK #a alice\r\nMODE #a +o bob\r\n")
    assert codes(bob.read_lines()) == ["482", "482", "482", "482"]
    tom.send("/topic mine\r\n/mode +s\r\n/kick alice\r\n/op tom\r\n")
    assert tom.read_lines() == ["*** Error: you are not an operator of #a"] * 4
    alice.send("MODE #a -t\r\n")
    tom.send("/topic now it is mine\r\n")
    assert alice.read_lines()[-1] == ":tom!tom@127.0.0.1 TOPIC #a :now it is mine"
    alice.send("MODE #a +z\r\nMODE #a +o ghost\r\nMODE #a +l 0\r\nMODE #a +k\r\n")
    assert codes(alice.read_lines()) == ["472", "401", "696", "696"]


def test_moderated_room_needs_voice_on_both_sides(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    tom = plain(harness, "tom", "#a")
    alice.send("MODE #a +m\r\n")
    alice.read()
    bob.read()
    tom.read()
    bob.send("PRIVMSG #a :hello?\r\n")
    assert codes(bob.read_lines()) == ["404"]
    tom.send("hello?\r\n")
    assert tom.read_lines() == ["*** Error: you cannot speak in #a (moderated, banned, or not in it)"]
    assert alice.read_lines() == []
    alice.send("MODE #a +vv bob tom\r\n")
    assert tom.read_lines() == ["*** alice set mode +vv bob tom on #a"]
    tom.send("now I can\r\n")
    assert alice.read_lines()[-1] == ":tom!tom@127.0.0.1 PRIVMSG #a :now I can"


def test_key_limit_and_invite_only_refuse_joins_on_both_sides(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    alice.send("MODE #a +k sesame\r\n")
    bob = irc(harness, "bob")
    tom = plain(harness, "tom")
    bob.send("JOIN #a\r\nJOIN #a wrong\r\n")
    assert codes(bob.read_lines()) == ["475", "475"]
    tom.send("/join #a\r\n")
    assert tom.read_lines() == ["*** Error: #a needs a key: /join #a key"]
    tom.send("/join #a sesame\r\n")
    assert tom.read_lines()[-1] == "*** You are in #a (2 here: alice, tom)."
    alice.send("MODE #a\r\n")
    assert alice.read_lines()[-2:][0] == ":linechat 324 alice #a +ntk sesame"
    bob.send("MODE #a\r\n")
    assert bob.read_lines()[0] == ":linechat 324 bob #a +ntk *"  # outsiders do not learn the key
    alice.send("MODE #a -k *\r\nMODE #a +l 2\r\n")
    bob.send("JOIN #a\r\n")
    assert codes(bob.read_lines()) == ["471"]
    alice.send("MODE #a -l+i\r\n")
    alice.read()
    bob.send("JOIN #a\r\n")
    assert codes(bob.read_lines()) == ["473"]
    tom.read()
    tom.send("/invite bob\r\n")  # +i: only operators invite
    assert tom.read_lines() == ["*** Error: you are not an operator of #a"]
    alice.send("INVITE bob #a\r\nINVITE tom #a\r\n")
    lines = alice.read_lines()
    assert lines[0] == ":linechat 341 alice bob #a"
    assert codes(lines[1:]) == ["443"]
    assert bob.read_lines() == [":alice!~alice@127.0.0.1 INVITE bob #a"]
    bob.send("JOIN #a\r\n")
    assert bob.read_lines()[0] == ":bob!~bob@127.0.0.1 JOIN #a"


def test_plain_operator_kicks_and_bans_an_irc_user(chat: Harness) -> None:
    harness = chat()
    tom = plain(harness, "tom", "#t")  # tom created #t: he operates it
    bob = irc(harness, "bob", "#t")
    tom.read()
    tom.send("/ban bob\r\n/kick bob spamming\r\n")
    assert tom.read_lines() == [
        "*** tom set mode +b bob!*@* on #t",
        "*** bob was kicked from #t by tom (spamming)",
    ]
    assert bob.read_lines() == [
        ":tom!tom@127.0.0.1 MODE #t +b bob!*@*",
        ":tom!tom@127.0.0.1 KICK #t bob :spamming",
    ]
    bob.send("JOIN #t\r\nPRIVMSG #t :let me in\r\nMODE #t b\r\n")
    lines = bob.read_lines()
    assert codes(lines) == ["474", "404", "367", "368"]
    assert lines[2].startswith(":linechat 367 bob #t bob!*@* tom!tom@127.0.0.1 ")
    tom.send("/ban\r\n/unban bob!*@*\r\n")
    assert tom.read_lines() == [
        "*** ban bob!*@* (set by tom)",
        "*** 1 ban(s) on #t",
        "*** tom set mode -b bob!*@* on #t",
    ]
    bob.send("JOIN #t\r\n")
    assert bob.read_lines()[0] == ":bob!~bob@127.0.0.1 JOIN #t"


def test_irc_operator_kicks_and_bans_a_telnet_user(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    tom = plain(harness, "tom", "#a")
    alice.read()
    alice.send("MODE #a +b *!*@127.0.0.*\r\nKICK #a tom :out\r\n")
    assert tom.read_lines() == [
        "*** alice set mode +b *!*@127.0.0.* on #a",
        "*** tom was kicked from #a by alice (out)",
    ]
    tom.send("still here?\r\n")
    assert tom.read_lines() == ["*** Error: you are not in a room; /join #name first"]
    tom.send("/join #a\r\n")
    assert tom.read_lines() == ["*** Error: you are banned from #a"]
    alice.send("INVITE tom #a\r\n")  # an invitation gets past a ban
    assert tom.read_lines() == ["*** alice invites you to #a (/join #a)"]
    tom.send("/join #a\r\n")
    assert tom.read_lines()[-1] == "*** You are in #a (2 here: alice, tom)."
    alice.read()
    alice.send("KICK #a ghost\r\nKICK #nowhere tom\r\n")
    assert codes(alice.read_lines()) == ["401", "403"]


def test_an_operator_may_be_made_on_the_other_side(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    tom = plain(harness, "tom", "#a")
    alice.send("MODE #a +o tom\r\n")
    tom.read()
    tom.send("/mode +im\r\n/who\r\n/mode\r\n")
    assert tom.read_lines() == [
        "*** tom set mode +im on #a",
        "*** #a (2): @alice, @tom",
        "*** Modes of #a: +imnt",
    ]
    assert alice.read_lines()[-1] == ":tom!tom@127.0.0.1 MODE #a +im"
