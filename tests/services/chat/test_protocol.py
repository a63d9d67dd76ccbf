"""The chat service in memory: both dialects, numerics, errors, limits and history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from linechat.services.chat import ChatService, Event, LocalBackplane
from linechat.testing import MemoryClient, ServiceHarness

Harness = Callable[..., ServiceHarness]


@pytest.fixture
def chat(linechat_harness: Harness) -> Callable[..., ServiceHarness]:
    """A chat harness with IRC pings off unless asked for."""

    def make(**settings: Any) -> ServiceHarness:
        settings.setdefault("ping_interval", 0)
        return linechat_harness(ChatService, **settings)

    return make


def plain(harness: ServiceHarness, nick: str) -> MemoryClient:
    """A telnet user who chose *nick* and sits in #lobby; its output so far is read."""
    client = harness.connect()
    client.send(f"{nick}\r\n")
    lines = client.read_lines()
    assert f"*** Hello {nick}." in lines, lines
    return client


def irc(harness: ServiceHarness, nick: str, *rooms: str) -> MemoryClient:
    """A registered IRC client in *rooms*; its output so far is read."""
    client = harness.connect("irc")
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick} real\r\n")
    assert any(" 001 " in line for line in client.read_lines())
    for room in rooms:
        client.send(f"JOIN {room}\r\n")
    client.read()
    return client


def codes(lines: list[str]) -> list[str]:
    """The numerics among server lines."""
    return [line.split()[1] for line in lines if line.startswith(":linechat ") and line.split()[1].isdigit()]


# --------------------------------------------------------------------------- plain text


def test_plain_welcome_asks_for_a_nickname_then_enters_the_lobby(chat: Harness) -> None:
    harness = chat()
    client = harness.connect()
    assert client.read_lines()[-1] == "*** What is your nickname?"
    client.send("alice\n")  # LF alone is accepted
    lines = client.read_lines()
    assert lines == ["*** alice joined #lobby", "*** Hello alice.", "*** You are in #lobby (1 here: alice)."]


def test_plain_lines_reach_the_room_and_joins_are_announced(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    bob = plain(harness, "bob")
    assert alice.read_lines() == ["*** bob joined #lobby"]
    bob.send("hello  there\r\n")
    assert alice.read_lines() == ["<bob> hello  there"]
    assert bob.read_lines() == []  # no echo of one's own line
    bob.send("/me waves\r\n")
    assert alice.read_lines() == ["* bob waves"]
    bob.send("//slash is said\r\n")
    assert alice.read_lines() == ["<bob> /slash is said"]


def test_plain_join_part_rooms_who(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    bob = plain(harness, "bob")
    alice.read()
    bob.send("/join games\r\n")
    assert alice.read_lines() == ["*** bob left #lobby (moved to #games)"]
    assert bob.read_lines()[-1] == "*** You are in #games (1 here: bob)."
    bob.send("/rooms\r\n")
    assert bob.read_lines() == ["*** 2 rooms:", "***   #games (1)", "***   #lobby (1)"]
    alice.send("/who #games\r\n/who\r\n")
    assert alice.read_lines() == ["*** #games (1): @bob", "*** #lobby (1): @alice"]  # creators operate
    bob.send("/part\r\nhello?\r\n")
    assert bob.read_lines() == [
        "*** bob left #games",
        "*** Join another room with /join #name.",
        "*** Error: you are not in a room; /join #name first",
    ]
    bob.send("/rooms\r\n")
    assert bob.read_lines() == ["*** 1 room:", "***   #lobby (1)"]


def test_plain_private_messages_nick_changes_and_errors(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    bob = plain(harness, "bob")
    alice.read()
    bob.send("/msg alice see you   later\r\n")
    assert bob.read_lines() == ["-> *alice* see you   later"]
    assert alice.read_lines() == ["*bob* see you   later"]
    bob.send("/msg nobody hi\r\n/msg alice\r\n/frobnicate\r\n")
    assert bob.read_lines() == [
        "*** Error: no one is called 'nobody'",
        "*** Error: usage: /msg nick text      private message",
        "*** Error: unknown command /frobnicate (try /help)",
    ]
    bob.send("/nick alice\r\n/nick 9lives\r\n")
    lines = bob.read_lines()
    assert lines[0] == "*** Error: the nickname 'alice' is taken; try another"
    assert lines[1].startswith("*** Error: '9lives' is not a valid nickname")
    bob.send("/nick robert\r\n")
    assert alice.read_lines() == ["*** bob is now known as robert"]
    assert bob.read_lines() == ["*** bob is now known as robert"]
    bob.send("/help\r\n")
    assert any(line.startswith("***   /msg nick text") for line in bob.read_lines())


def test_plain_nick_prompt_repeats_until_a_free_valid_nick(chat: Harness) -> None:
    harness = chat()
    plain(harness, "alice")
    client = harness.connect()
    client.read()
    client.send("ALICE\r\n")  # nicks compare without case
    assert client.read_lines() == ["*** Error: the nickname 'ALICE' is taken; try another"]
    client.send("/who\r\n")
    assert client.read_lines() == ["*** Error: choose a nickname first: type it, or /nick name"]
    client.send("/nick carol\r\n")
    assert "*** Hello carol." in client.read_lines()


def test_plain_bad_utf8_is_refused_and_the_connection_goes_on(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    bob = plain(harness, "bob")
    alice.read()
    bob.send(b"caf\xe9\r\n")
    assert bob.read_lines() == ["*** Error: that line is not valid UTF-8; nothing was sent"]
    bob.send("café ☕\r\n")
    assert alice.read_lines() == ["<bob> café ☕"]


def test_plain_too_long_line_is_skipped(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    alice.send(b"x" * 2000 + b"\r\nstill here\r\n")
    lines = alice.read_lines()
    assert lines[0].startswith("*** Error: line too long")
    assert not alice.closed


def test_plain_quit_announces_the_reason(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    bob = plain(harness, "bob")
    alice.read()
    bob.send("/quit off to lunch\r\n")
    assert bob.read_lines() == ["*** Goodbye (off to lunch)"]
    assert bob.closed
    assert alice.read_lines() == ["*** bob quit (off to lunch)"]
    assert harness.service.backplane.find("bob") is None


# --------------------------------------------------------------------------- IRC


def test_irc_registration_numerics(chat: Harness) -> None:
    harness = chat(motd="hello\nworld")
    client = harness.connect("irc")
    client.send("PASS secret\r\nNICK alice\r\nUSER al 0 * :Alice Liddell\r\n")
    lines = client.read_lines()
    assert codes(lines) == [
        "001", "002", "003", "004", "005", "005",
        "251", "252", "253", "254", "255", "265", "266",
        "375", "372", "372", "376",
    ]  # fmt: skip
    assert lines[0] == ":linechat 001 alice :Welcome to the linechat network, alice!~al@127.0.0.1"
    isupport = " ".join(lines[4:6])
    for token in (
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "PREFIX=(ov)@+",
        "CHANMODES=b,k,l,imnst",
        "TOPICLEN=300",
        "NICKLEN=30",
        "CHANNELLEN=50",
        "MAXTARGETS=4",
        "TARGMAX=PRIVMSG:4,NOTICE:4",
    ):
        assert token in isupport, token
    client.send("USER again 0 * :x\r\n")
    assert codes(client.read_lines()) == ["462"]


def test_irc_cap_negotiation_holds_registration_until_cap_end(chat: Harness) -> None:
    harness = chat()
    client = harness.connect("irc")
    client.send("CAP LS 302\r\nNICK alice\r\nUSER al 0 * :A\r\n")
    assert client.read_lines() == [
        ":linechat CAP * LS :away-notify cap-notify echo-message message-tags multi-prefix server-time "
        "userhost-in-names"
    ]
    client.send("CAP REQ :multi-prefix sasl\r\nCAP REQ :multi-prefix\r\nCAP END\r\n")
    lines = client.read_lines()
    assert lines[0] == ":linechat CAP alice NAK :multi-prefix sasl"  # all or nothing
    assert lines[1] == ":linechat CAP alice ACK :multi-prefix"
    lines = lines[2:]
    assert codes(lines)[:5] == ["001", "002", "003", "004", "005"]
    assert codes(lines)[-1] == "422"


def test_irc_errors_before_registration(chat: Harness) -> None:
    harness = chat()
    client = harness.connect("irc")
    client.send("JOIN #x\r\nNICK\r\nNICK 1abc\r\nUSER onlyone\r\nPING\r\nPING :tok\r\n")
    lines = client.read_lines()
    assert codes(lines) == ["451", "431", "432", "461", "409"]
    assert lines[-1] == ":linechat PONG linechat :tok"


def test_irc_nick_collision_across_dialects(chat: Harness) -> None:
    harness = chat()
    plain(harness, "alice")
    client = harness.connect("irc")
    client.send("NICK Alice\r\n")
    assert client.read_lines() == [":linechat 433 * Alice :Nickname is already in use"]
    client.send("NICK alice2\r\nUSER a 0 * :A\r\n")
    assert "001" in codes(client.read_lines())
    telnet = harness.connect()
    telnet.read()
    telnet.send("ALICE2\r\n")
    assert telnet.read_lines() == ["*** Error: the nickname 'ALICE2' is taken; try another"]


def test_irc_join_names_part_and_messages(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#room")
    bob = harness.connect("irc")
    bob.send("NICK bob\r\nUSER b 0 * :B\r\n")
    bob.read()
    bob.send("JOIN #Room,#other\r\n")
    lines = bob.read_lines()
    assert lines[:3] == [
        ":bob!~b@127.0.0.1 JOIN #room",
        ":linechat 353 bob = #room :@alice bob",
        ":linechat 366 bob #room :End of /NAMES list.",
    ]
    assert lines[3] == ":bob!~b@127.0.0.1 JOIN #other"
    assert alice.read_lines() == [":bob!~b@127.0.0.1 JOIN #room"]
    bob.send("PRIVMSG #room :hi all\r\nNOTICE alice :psst\r\nPRIVMSG alice,#room :two\r\n")
    assert alice.read_lines() == [
        ":bob!~b@127.0.0.1 PRIVMSG #room :hi all",
        ":bob!~b@127.0.0.1 NOTICE alice :psst",
        ":bob!~b@127.0.0.1 PRIVMSG alice :two",
        ":bob!~b@127.0.0.1 PRIVMSG #room :two",
    ]
    assert bob.read_lines() == []
    bob.send("PART #room :bye now\r\n")
    assert bob.read_lines() == [":bob!~b@127.0.0.1 PART #room :bye now"]
    assert alice.read_lines() == [":bob!~b@127.0.0.1 PART #room :bye now"]


def test_irc_message_errors(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    irc(harness, "bob", "#b")
    alice.send(
        "PRIVMSG nobody :x\r\nPRIVMSG #nowhere :x\r\nPRIVMSG #b :x\r\nPRIVMSG\r\nPRIVMSG #a\r\n"
        "NOTICE nobody :x\r\nPART #b\r\nPART #zzz\r\nPART\r\nTOPIC #b :mine\r\nBLAH\r\n"
    )
    assert codes(alice.read_lines()) == ["401", "403", "404", "411", "412", "442", "403", "461", "442", "421"]


def test_irc_nick_change_reaches_each_peer_once(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a", "#b")
    bob = irc(harness, "bob", "#a", "#b")
    alice.read()
    bob.send("NICK robert\r\n")
    assert alice.read_lines() == [":bob!~bob@127.0.0.1 NICK :robert"]
    assert bob.read_lines() == [":bob!~bob@127.0.0.1 NICK :robert"]
    bob.send("NICK alice\r\n")
    assert bob.read_lines() == [":linechat 433 robert alice :Nickname is already in use"]


def test_irc_topic_list_names_who_whois_mode(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = plain(harness, "bob")
    bob.send("/join #a\r\n")
    alice.read()
    alice.send("TOPIC #a\r\nTOPIC #a :the topic\r\nTOPIC #a\r\n")
    lines = alice.read_lines()
    assert lines[0] == ":linechat 331 alice #a :No topic is set"
    assert lines[1] == ":alice!~alice@127.0.0.1 TOPIC #a :the topic"
    assert lines[2] == ":linechat 332 alice #a :the topic"
    assert codes(lines[3:]) == ["333"]
    assert bob.read_lines()[-1] == "*** alice set the topic of #a: the topic"
    alice.send("LIST\r\n")
    assert alice.read_lines() == [
        ":linechat 321 alice Channel :Users  Name",
        ":linechat 322 alice #a 2 :the topic",
        ":linechat 323 alice :End of /LIST",
    ]
    alice.send("NAMES #a\r\nWHO #a\r\nWHOIS bob\r\nWHOIS ghost\r\nISON bob ghost alice\r\n")
    lines = alice.read_lines()
    assert lines[0] == ":linechat 353 alice = #a :@alice bob"
    assert codes(lines) == [
        "353", "366", "352", "352", "315", "311", "319", "312", "317", "318", "401", "318", "303"
    ]  # fmt: skip
    assert lines[-1] == ":linechat 303 alice :bob alice"
    bob.send("/mode +i\r\n")
    assert bob.read_lines() == ["*** Error: you are not an operator of #a"]
    alice.send("MODE #a\r\nMODE #a +b\r\nMODE #a +o bob\r\nMODE alice\r\nMODE alice +i\r\nMODE bob\r\n")
    lines = alice.read_lines()
    assert codes(lines) == ["324", "329", "368", "221", "502"]
    assert lines[0] == ":linechat 324 alice #a +nt"
    assert ":alice!~alice@127.0.0.1 MODE #a +o bob" in lines
    assert bob.read_lines() == ["*** alice set mode +o bob on #a"]


def test_irc_quit_and_close_announce_to_shared_rooms(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    carol = plain(harness, "carol")
    carol.send("/join #a\r\n")
    for client in (alice, bob, carol):
        client.read()
    bob.send("QUIT :gone fishing\r\n")
    assert bob.read_lines() == ["ERROR :Closing Link: 127.0.0.1 (Quit: gone fishing)"]
    assert bob.closed
    assert alice.read_lines() == [":bob!~bob@127.0.0.1 QUIT :Quit: gone fishing"]
    assert carol.read_lines() == ["*** bob quit (Quit: gone fishing)"]
    alice.close()  # the peer just goes away
    assert carol.read_lines() == ["*** alice quit (Connection closed)"]
    assert harness.service.backplane.members("#a")[0].nick == "carol"


def test_irc_latin1_fallback_and_long_lines(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = plain(harness, "bob")
    bob.send("/join #a\r\n")
    alice.send(b"PRIVMSG #a :caf\xe9\r\n")
    assert bob.read_lines()[-1] == "<alice> café"
    alice.send(b"PRIVMSG #a :" + b"y" * 600 + b"\r\nPING :ok\r\n")
    lines = alice.read_lines()
    assert codes(lines) == ["417"]
    assert lines[-1] == ":linechat PONG linechat :ok"


def test_irc_and_plain_see_each_other(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#lobby")
    bob = plain(harness, "bob")
    assert alice.read_lines() == [":bob!bob@127.0.0.1 JOIN #lobby"]
    bob.send("hi irc\r\n/me grins\r\n/msg alice secret\r\n")
    assert alice.read_lines() == [
        ":bob!bob@127.0.0.1 PRIVMSG #lobby :hi irc",
        ":bob!bob@127.0.0.1 PRIVMSG #lobby :\x01ACTION grins\x01",
        ":bob!bob@127.0.0.1 PRIVMSG alice :secret",
    ]
    bob.read()
    alice.send("PRIVMSG #lobby :hi telnet\r\nPRIVMSG #lobby :\x01ACTION nods\x01\r\nPRIVMSG bob :psst\r\n")
    assert bob.read_lines() == ["<alice> hi telnet", "* alice nods", "*alice* psst"]


def test_message_from_plain_is_cut_to_fit_an_irc_line(chat: Harness) -> None:
    harness = chat(max_line=2000)
    alice = irc(harness, "alice", "#lobby")
    bob = plain(harness, "bob")
    alice.read()
    bob.send("é" * 600 + "\r\n")
    data = alice.read()
    assert len(data) <= 512 and data.endswith(b"\r\n")
    data.decode("utf-8")  # cut between characters


# --------------------------------------------------------------------------- limits


def test_flood_slows_a_paste_down_and_delivers_all_of_it(chat: Harness) -> None:
    harness = chat(flood_rate=1.0, flood_burst=3)
    alice = plain(harness, "alice")
    bob = plain(harness, "bob")
    alice.read()
    harness.advance(10.0)  # the nickname lines are forgotten
    bob.send("".join(f"line {n}\r\n" for n in range(10)))
    assert alice.read_lines() == ["<bob> line 0", "<bob> line 1", "<bob> line 2", "<bob> line 3"]
    for n in range(4, 10):
        harness.advance(1.0)
        assert alice.read_lines() == [f"<bob> line {n}"]  # held, not dropped, one a second
    assert not bob.closed
    assert bob.read_lines() == []


def test_flood_clock_counts_over_long_and_undecodable_lines(chat: Harness) -> None:
    harness = chat(flood_rate=1.0, flood_burst=2)
    alice = plain(harness, "alice")
    harness.advance(10.0)
    alice.send(b"\xff\xfe\r\n" + b"x" * 600 + b"\r\n" + b"\xc3\r\n/who\r\n")
    lines = alice.read_lines()
    assert lines[0] == "*** Error: that line is not valid UTF-8; nothing was sent"
    assert lines[1].startswith("*** Error: line too long")
    assert len(lines) == 3  # the third bad line passed the burst: what follows waits
    harness.advance(1.0)
    assert alice.read_lines() == ["*** #lobby (1): @alice"]
    irc_client = irc(harness, "carol")
    harness.advance(10.0)
    irc_client.send(b"PRIVMSG alice :" + b"y" * 600 + b"\r\n" * 1)
    irc_client.send(b"NICK a\r\n" * 3 + b"PING :after\r\n")
    assert ":linechat PONG linechat :after" not in irc_client.read_lines()  # held behind the clock
    harness.advance(3.0)
    assert irc_client.read_lines()[-1] == ":linechat PONG linechat :after"


def test_flood_never_slows_lock_step_pings(chat: Harness) -> None:
    harness = chat(flood_rate=1.0, flood_burst=3)
    alice = irc(harness, "alice", "#a")
    for n in range(1000):  # no time passes at all: only a penalty-free command gets through
        alice.send(f"PING :{n}\r\n")
        assert alice.read_lines() == [f":linechat PONG linechat :{n}"]
    assert not alice.closed


def test_ping_timeout_drops_a_dead_irc_peer(chat: Harness) -> None:
    harness = chat(ping_interval=60, ping_timeout=30)
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    alice.read()
    harness.advance(30)
    bob.send("PING :x\r\n")  # bob talks, alice stays silent
    bob.read()
    harness.advance(30)
    assert alice.read_lines() == ["PING :linechat"]  # silent for 60 s
    assert bob.read_lines() == []  # bob spoke 30 s ago
    harness.advance(30)
    assert alice.closed  # no answer within 30 s
    assert alice.read_lines() == ["ERROR :Closing Link: 127.0.0.1 (Ping timeout: 90 seconds)"]
    assert bob.read_lines() == ["PING :linechat", ":alice!~alice@127.0.0.1 QUIT :Ping timeout: 90 seconds"]
    bob.send("PONG :linechat\r\n")
    harness.advance(60)
    assert not bob.closed


def test_slow_reader_is_cut_off_and_the_room_goes_on(chat: Harness) -> None:
    harness = chat(out_hard_limit=8192, out_high_water=4096, out_low_water=1024, flood_rate=0)
    talker = plain(harness, "talker")
    fast = irc(harness, "fast", "#lobby")
    slow = plain(harness, "slow")
    talker.read()
    fast.read()
    slow.stall()
    seen: list[str] = []
    for n in range(200):
        talker.send(f"message number {n:04d} " + "z" * 40 + "\r\n")
        seen.extend(fast.read_lines())
    assert slow.closed
    assert ":slow!slow@127.0.0.1 QUIT :Slow reader: output limit reached" in seen
    assert len([line for line in seen if "PRIVMSG" in line]) == 200  # the others got everything
    assert harness.service.backplane.find("slow") is None


# --------------------------------------------------------------------------- history and the backplane


def test_history_is_replayed_on_join(chat: Harness) -> None:
    harness = chat(history=2)
    alice = plain(harness, "alice")
    for text in ("one", "two", "three"):
        alice.send(f"{text}\r\n")
    bob = harness.connect()
    bob.read()
    bob.send("bob\r\n")
    assert bob.read_lines()[-3:] == ["*** Last 2 messages:", "<alice> two", "<alice> three"]
    carol = harness.connect("irc")
    carol.send("NICK carol\r\nUSER c 0 * :C\r\n")
    carol.read()
    carol.send("JOIN #lobby\r\n")
    assert carol.read_lines()[-2:] == [
        ":alice!alice@127.0.0.1 PRIVMSG #lobby :two",
        ":alice!alice@127.0.0.1 PRIVMSG #lobby :three",
    ]


def test_history_off_by_default(chat: Harness) -> None:
    harness = chat()
    alice = plain(harness, "alice")
    alice.send("one\r\n")
    bob = harness.connect()
    bob.read()
    bob.send("bob\r\n")
    assert bob.read_lines()[-1] == "*** You are in #lobby (2 here: alice, bob)."


class _Recorder:
    """A member that records what it is given."""

    dialect = "test"
    realname = ""
    user = "u"
    host = "h"

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.got: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.got.append(event)


def test_local_backplane_contract() -> None:
    backplane = LocalBackplane(history=1)
    a, b = _Recorder("a"), _Recorder("b")
    assert backplane.claim_nick("A", a) and not backplane.claim_nick("a", b)
    assert backplane.find("a") is a
    assert backplane.join("#Room", a) is not None and backplane.join("#room", a) is None
    info = backplane.join("#ROOM", b)
    assert info is not None and info.name == "#Room" and info.members == 2
    event = Event("message", "a", "u", "h", "#Room", "hi")
    assert backplane.publish("#room", event, exclude=a) == 1 and b.got == [event]
    assert backplane.history("#room") == [event]
    assert backplane.join("#two", b) is not None
    assert backplane.publish_rooms(["#room", "#two"], Event("quit", "a", "u", "h", "", "x"), exclude=a) == 1
    assert [room.name for room in backplane.rooms()] == ["#Room", "#two"]
    assert backplane.part("#room", a) and not backplane.part("#room", a)
    assert backplane.part("#two", b) and backplane.room("#two") is None
    backplane.release_nick("a", b)  # not b's: nothing happens
    assert backplane.find("a") is a
    backplane.release_nick("a", a)
    assert backplane.find("a") is None and not backplane.send("a", event)


def test_an_event_is_encoded_once_per_dialect(chat: Harness) -> None:
    harness = chat()
    listeners = [irc(harness, f"irc{n}", "#lobby") for n in range(3)] + [plain(harness, f"t{n}") for n in range(3)]
    for client in listeners:
        client.read()
    event = Event("message", "x", "x", "h", "#lobby", "hello")
    assert harness.service.backplane.publish("#lobby", event) == 6
    assert len(event._wire) == 2  # one rendering per dialect, shared by its members
    received = [client.read() for client in listeners]
    assert set(received[:3]) == {b":x!x@h PRIVMSG #lobby :hello\r\n"}
    assert set(received[3:]) == {b"<x> hello\r\n"}


def test_a_lock_step_talker_is_slowed_never_cut(chat: Harness) -> None:
    harness = chat(flood_rate=2.0, flood_burst=5)
    alice = irc(harness, "alice", "#a")
    alice.send("CAP REQ :echo-message\r\n")
    alice.read()
    waited = 0
    for n in range(300):  # each line waits for its echo, as a lock-step client does
        alice.send(f"PRIVMSG #a :line {n}\r\n")
        lines = alice.read_lines()
        while not lines:
            harness.advance(0.5)  # held by the flood clock: time has to pass
            waited += 1
            lines = alice.read_lines()
        assert lines == [f":alice!~alice@127.0.0.1 PRIVMSG #a :line {n}"]
    assert not alice.closed
    assert waited >= 250  # it was slowed down to about two lines a second
