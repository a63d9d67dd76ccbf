"""IRC commands, IRCv3 capabilities, limits and safe text for terminals, in memory."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from linechat.services.chat import ChatService
from linechat.services.chat.names import irc_to_ansi, strip_formatting
from linechat.services.chat.opers import check_oper, hash_password
from linechat.testing import MemoryClient, ServiceHarness

Harness = Callable[..., ServiceHarness]

# Whatever a peer sends: CSI (clear screen), OSC (set title) ended by BEL and by ST,
# a C1 CSI, backspaces, a bare CR, DEL, and IRC bold/colour/reset.
HOSTILE = (
    "\x1b[2J\x1b[H*** Error: fake \x1b]0;owned\x07\x1b]2;x\x1b\\ \x9b31m\x08\x08\x7f\x02bold\x02 \x0304,02red\x0f end"
)


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


@pytest.fixture
def chat(linechat_harness: Harness) -> Callable[..., ServiceHarness]:
    """A chat harness with IRC pings and the flood clock off unless asked for."""

    def make(**settings: Any) -> ServiceHarness:
        settings.setdefault("ping_interval", 0)
        settings.setdefault("flood_rate", 0)
        return linechat_harness(ChatService, **settings)

    return make


def test_away_shows_in_privmsg_whois_who_userhost(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a", caps="away-notify")
    alice.read()
    alice.send("AWAY :lunch\r\n")
    assert codes(alice.read_lines()) == ["306"]
    assert bob.read_lines() == [":alice!~alice@127.0.0.1 AWAY :lunch"]
    bob.send("PRIVMSG alice :hi\r\nWHOIS alice\r\nWHO #a\r\nUSERHOST alice bob\r\n")
    lines = bob.read_lines()
    assert lines[0] == ":linechat 301 bob alice :lunch"
    assert ":linechat 301 bob alice :lunch" in lines[1:]  # in WHOIS too
    assert [line.split()[8] for line in lines if " 352 " in line] == ["G@", "H"]
    assert lines[-1] == ":linechat 302 bob :alice=-~alice@127.0.0.1 bob=+~bob@127.0.0.1"
    alice.send("AWAY\r\n")
    assert codes(alice.read_lines()) == ["305"]
    assert bob.read_lines() == [":alice!~alice@127.0.0.1 AWAY"]


def test_server_queries(chat: Harness) -> None:
    harness = chat(admin="Ann Admin", admin_email="ann@example.org")
    alice = irc(harness, "alice", "#a")
    plain(harness, "tom")
    alice.send("LUSERS\r\nVERSION\r\nTIME\r\nADMIN\r\nINFO\r\nMOTD\r\nISON tom ghost\r\n")
    lines = alice.read_lines()
    assert codes(lines)[:7] == ["251", "252", "253", "254", "255", "265", "266"]
    assert lines[0] == ":linechat 251 alice :There are 2 users and 0 invisible on 1 servers"
    assert lines[3] == ":linechat 254 alice 2 :channels formed"  # #a and the lobby
    rest = codes(lines)[7:]
    assert rest[:3] == ["351", "005", "005"]
    assert rest[3:] == ["391", "256", "257", "258", "259", "371", "371", "371", "374", "422", "303"]
    assert ":linechat 259 alice :ann@example.org" in lines
    assert lines[-1] == ":linechat 303 alice :tom"


def test_whowas_remembers_departed_and_renamed_nicks(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice")
    bob = irc(harness, "bob")
    bob.send("NICK robert\r\nQUIT\r\n")
    alice.send("WHOWAS bob\r\nWHOWAS robert\r\nWHOWAS ghost\r\nWHOWAS\r\n")
    lines = alice.read_lines()
    assert codes(lines) == ["314", "312", "369", "314", "312", "369", "406", "369", "431"]
    assert lines[0] == ":linechat 314 alice bob ~bob 127.0.0.1 * :bob real"


def test_oper_with_a_hashed_password_and_kill(chat: Harness) -> None:
    stored = hash_password("s3cret")
    assert "s3cret" not in stored and check_oper({"root": stored}, "root", "s3cret")
    assert not check_oper({"root": stored}, "root", "wrong") and not check_oper({"root": "garbage"}, "root", "s3cret")
    harness = chat(opers={"root": stored})
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    tom = plain(harness, "tom", "#a")
    alice.read()
    bob.read()
    alice.send("KILL bob\r\nOPER root wrong\r\nOPER nobody s3cret\r\n")
    assert codes(alice.read_lines()) == ["481", "464", "464"]
    alice.send("OPER root s3cret\r\nMODE alice\r\nWHO #a o\r\n")
    lines = alice.read_lines()
    assert codes(lines) == ["381", "221", "352", "315"]
    assert lines[1] == ":alice MODE alice :+o"
    assert lines[2] == ":linechat 221 alice :+o"
    assert lines[3].split()[8] == "H*@"
    alice.send("KILL bob :spam\r\nKILL tom :spam too\r\nKILL ghost\r\n")
    lines = alice.read_lines()
    assert codes(lines) == ["401"]
    assert bob.closed and tom.closed
    assert bob.read_lines()[:2] == [
        ":alice!~alice@127.0.0.1 KILL bob :spam",
        "ERROR :Closing Link: 127.0.0.1 (Killed (alice (spam)))",
    ]
    assert tom.read_lines()[-1] == "*** Goodbye (Killed (alice (spam too)))"
    assert ":bob!~bob@127.0.0.1 QUIT :Killed (alice (spam))" in lines + alice.read_lines()


def test_cap_server_time_message_tags_echo_message(chat: Harness) -> None:
    harness = chat()
    alice = irc(harness, "alice", "#a", caps="echo-message message-tags")
    bob = irc(harness, "bob", "#a", caps="server-time")
    carol = irc(harness, "carol", "#a")
    alice.read()
    bob.read()
    alice.send("@+draft/react=x;secret=1 PRIVMSG #a :hi\r\n@+typing=active TAGMSG #a\r\n")
    echo = alice.read_lines()
    assert re.fullmatch(r"@time=\S+Z;msgid=\w+;\+draft/react=x :alice!~alice@127.0.0.1 PRIVMSG #a :hi", echo[0])
    assert re.fullmatch(r"@time=\S+Z;msgid=\w+;\+typing=active :alice!~alice@127.0.0.1 TAGMSG #a", echo[1])
    timed = bob.read_lines()
    assert len(timed) == 1  # no TAGMSG without message-tags
    assert re.fullmatch(
        r"@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z :alice!~alice@127.0.0.1 PRIVMSG #a :hi", timed[0]
    )
    assert carol.read_lines() == [":alice!~alice@127.0.0.1 PRIVMSG #a :hi"]
    alice.send("CAP LIST\r\nCAP REQ :-echo-message\r\nPRIVMSG #a :quiet\r\n")
    lines = alice.read_lines()
    assert lines == [
        ":linechat CAP alice LIST :cap-notify echo-message message-tags",
        ":linechat CAP alice ACK :-echo-message",
    ]


def test_cap_negotiation_never_stalls_registration(chat: Harness) -> None:
    harness = chat(register_timeout=30)
    client = harness.connect("irc")
    client.send("CAP LS 302\r\nNICK alice\r\nUSER a 0 * :A\r\n")
    assert codes(client.read_lines()) == []
    harness.advance(30)  # a client that never ends negotiation is not kept forever
    assert client.closed
    assert client.read_lines()[-1] == "ERROR :Closing Link: 127.0.0.1 (Registration timeout)"
    other = harness.connect("irc")
    other.send("CAP LS\r\nCAP END\r\nCAP END\r\nNICK bob\r\nUSER b 0 * :B\r\n")
    assert "001" in codes(other.read_lines())
    telnet = harness.connect()
    harness.advance(30)
    assert telnet.closed  # the plain side too, before a nickname


def test_registration_limits_user_realname_and_nick_length(chat: Harness) -> None:
    harness = chat(nick_len=9)
    client = harness.connect("irc")
    client.send("NICK abcdefghij\r\nNICK alice\r\nUSER x 0 * :\r\nUSER x@trusted.example!y 0 * :Real\r\n")
    lines = client.read_lines()
    assert codes(lines)[:2] == ["432", "461"]
    assert lines[2] == ":linechat 001 alice :Welcome to the linechat network, alice!~xtrusted.@127.0.0.1"
    assert "NICKLEN=9" in " ".join(lines)


def test_targets_are_deduplicated_and_capped(chat: Harness) -> None:
    harness = chat(max_targets=3)
    alice = irc(harness, "alice", "#a")
    bob = irc(harness, "bob", "#a")
    alice.read()
    alice.send("PRIVMSG bob,BOB,#a,#A :once each\r\n")
    assert alice.read_lines() == []
    assert bob.read_lines() == [
        ":alice!~alice@127.0.0.1 PRIVMSG bob :once each",
        ":alice!~alice@127.0.0.1 PRIVMSG #a :once each",
    ]
    alice.send("PRIVMSG bob,#a,alice,carol :x\r\n")
    assert codes(alice.read_lines()) == ["407"]


def test_topic_and_room_lengths_hold_on_both_sides(chat: Harness) -> None:
    harness = chat(topic_len=20, room_len=8)
    tom = plain(harness, "tom", "#t")
    alice = irc(harness, "alice", "#t")
    tom.read()
    tom.send("/topic " + "é" * 15 + "\r\n")
    lines = tom.read_lines()
    assert lines[0] == "*** Note: your topic was cut to 20 bytes to fit IRC's line limit."
    assert lines[1] == "*** tom set the topic of #t: " + "é" * 10
    assert alice.read_lines() == [":tom!tom@127.0.0.1 TOPIC #t :" + "é" * 10]
    tom.send("/join #toolongname\r\n")
    assert tom.read_lines()[0].startswith("*** Error: '#toolongname' is not a valid room name")
    alice.send("JOIN #toolongname\r\n")
    assert codes(alice.read_lines()) == ["403"]


def test_a_plain_line_cut_for_irc_tells_its_sender(chat: Harness) -> None:
    harness = chat()
    tom = plain(harness, "tom", "#t")
    alice = irc(harness, "alice", "#t")
    tom.read()
    tom.send("x" * 500 + "\r\n")
    assert tom.read_lines()[0].startswith("*** Note: your line was cut to ")
    relayed = alice.read_lines()[0]
    assert len(relayed.encode()) + 2 <= 512
    assert relayed.startswith(":tom!tom@127.0.0.1 PRIVMSG #t :xxx")


def test_plain_lines_end_at_a_bare_cr(chat: Harness) -> None:
    harness = chat()
    tom = plain(harness, "tom", "#t")
    alice = irc(harness, "alice", "#t")
    tom.read()
    tom.send("one\rtwo\r\nthree\n\r\nfour\r")
    assert alice.read_lines() == [f":tom!tom@127.0.0.1 PRIVMSG #t :{word}" for word in ("one", "two", "three", "four")]


def test_no_escape_sequence_reaches_a_telnet_user_from_either_side(chat: Harness) -> None:
    harness = chat()
    tom = plain(harness, "tom", "#t")
    alice = irc(harness, "alice", "#t")
    eve = plain(harness, "eve", "#t")
    tom.send("/op alice\r\n")
    tom.read()
    alice.send(f"PRIVMSG #t :{HOSTILE}\r\nTOPIC #t :{HOSTILE}\r\nPART #t :{HOSTILE}\r\n")
    eve.send(f"{HOSTILE}\r\n/me {HOSTILE}\r\n/msg tom {HOSTILE}\r\n")
    data = tom.read()
    for bad in (b"\x1b", b"\x07", b"\x08", b"\x7f", b"\xc2\x9b", b"\x02", b"\x03", b"\x0f"):
        assert bad not in data, bad
    lines = data.decode().split("\r\n")
    assert "<alice> [2J[H*** Error: fake ]0;owned]2;x\\ 31mbold red end" in lines
    assert all("\r" not in line and "\n" not in line for line in lines)
    assert lines[-1] == ""
    assert len(lines) == 7  # four messages, topic, part, private message: nothing split a line


def test_irc_formatting_drawn_as_ansi_when_asked(chat: Harness) -> None:
    harness = chat(plain_formatting="ansi")
    tom = plain(harness, "tom", "#t")
    alice = irc(harness, "alice", "#t")
    tom.read()
    alice.send(f"PRIVMSG #t :{HOSTILE}\r\n")
    line = tom.read_lines()[0]
    sequences = re.findall(r"\x1b\[[0-9;]*m", line)
    assert sequences == ["\x1b[1m", "\x1b[22m", "\x1b[91;44m", "\x1b[0m", "\x1b[0m"]
    assert re.sub(r"\x1b\[[0-9;]*m", "", line) == "<alice> [2J[H*** Error: fake ]0;owned]2;x\\ 31mbold red end"


def test_text_filters() -> None:
    assert strip_formatting("\x02b\x02 \x0312,04c\x03 \x1dI\x1d \x04ff0000hex") == "b c I hex"
    assert irc_to_ansi("plain") == "plain"
    assert irc_to_ansi("\x1fu\x1f\x1b") == "\x1b[4mu\x1b[24m\x1b[0m"


def test_bot_mode_marks_a_bot_in_who_whois_and_tags(chat: Harness) -> None:
    harness = chat()
    bot = irc(harness, "beep", "#a")
    user = irc(harness, "user", "#a", caps="message-tags")
    bot.read()
    bot.send("MODE beep +B\r\nMODE beep\r\nPRIVMSG #a :boop\r\n")
    assert bot.read_lines() == [":beep MODE beep :+B", ":linechat 221 beep :+B"]
    assert re.fullmatch(r"@time=\S+;msgid=\w+;bot :beep!~beep@127.0.0.1 PRIVMSG #a :boop", user.read_lines()[0])
    user.send("WHO #a\r\nWHOIS beep\r\n")
    lines = user.read_lines()
    assert lines[0].split()[8] == "HB@"
    assert ":linechat 335 user beep :is a bot on linechat" in lines
