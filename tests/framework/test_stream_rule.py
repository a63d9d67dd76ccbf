"""A protocol that reads whole chunks (a stream rule with no delimiter), in memory and over loopback.

Such a rule gets every read straight from the socket (no framing pass), so
these tests hold that path to what the framing loop promises: replies in
order, input put back with ``unread`` framed by the next rule, a handler's
own ``send`` before its reply, errors answered without losing the
connection, ``close`` after the reply, and a ``Pending`` reply holding
later input back until it is resolved.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from linechat import Pending, Protocol, Reply, Service, terminator
from linechat.testing import LineClient, ServiceHarness, serve


class WordsProtocol(Protocol):
    """Words end in ";"; "line:" hands the rest of the input to a line rule."""

    encoding = None
    line_ending = b"\n"
    initial_rule = "words"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.partial = b""

    @terminator("words", None, stream=True)
    def on_words(self, data: bytes, end: bool) -> Reply:
        data = self.partial + data
        self.partial = b""
        out: list[bytes] = []
        pos = 0
        while pos < len(data):
            if data.startswith(b"line:", pos):
                self.unread(data[pos + 5 :])
                self.switch("line")
                break
            semi = data.find(b";", pos)
            if semi < 0:
                self.partial = data[pos:]  # a word cut by the end of the read
                break
            word = data[pos:semi]
            pos = semi + 1
            if word == b"boom":
                raise RuntimeError("handler bug")
            if word == b"send":
                self.send(b"first\n")  # queued before the reply returned below
                out.append(b"second\n")
            elif word == b"bye":
                self.close()
                out.append(b"bye\n")
                break
            elif word == b"wait":
                if out:
                    self.send(b"".join(out))
                self.unread(data[pos:])  # held back until the reply is resolved
                pending = self.later()
                self.service.waiting.append(pending)
                return pending
            else:
                out.append(word.upper() + b"\n")
        return b"".join(out) or None

    @terminator("line", b"\n")
    def on_line(self, line: bytes) -> Reply:
        self.switch("words")
        return b"LINE " + line + b"\n"

    def error(self, message: str) -> Reply:
        return f"ERR {message}"


class WordsService(Service):
    name = "words"
    protocol = WordsProtocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting: list[Pending] = []


@pytest.fixture
def harness() -> ServiceHarness:
    return ServiceHarness(WordsService)


def test_every_word_of_a_chunk_answered_in_order(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"a;b;c;")
    assert client.read() == b"A\nB\nC\n"


def test_a_word_cut_by_the_read_is_finished_by_the_next(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"ab;c")
    assert client.read() == b"AB\n"
    client.send(b"d;")
    assert client.read() == b"CD\n"


def test_unread_input_goes_to_the_next_rule_then_back(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"a;line:hello there\nb;line:x")
    # The line rule frames the put-back input; "b" comes back to the stream rule.
    assert client.read() == b"A\nLINE hello there\nB\n"
    client.send(b"y\nc;")
    assert client.read() == b"LINE xy\nC\n"


def test_own_send_comes_before_the_reply(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"send;")
    assert client.read() == b"first\nsecond\n"


def test_handler_error_is_answered_and_the_connection_lives(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"boom;")
    assert client.read() == b"ERR internal error\n"
    assert not client.closed
    client.send(b"ok;")
    assert client.read() == b"OK\n"


def test_close_goes_after_the_reply_and_later_input_is_ignored(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"a;bye;never;")
    assert client.read() == b"A\nbye\n"
    assert client.closed


def test_pending_reply_holds_later_input_back(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"x;wait;more;")
    assert client.read() == b"X\n"
    client.send(b"after;")  # arrives while the reply is pending
    assert client.read() == b""
    harness.service.waiting.pop().resolve(b"done\n")
    assert client.read() == b"done\nMORE\nAFTER\n"


def test_over_loopback() -> None:
    """The same behaviour through the reactor and real sockets."""
    with serve(WordsService) as server, LineClient(server.address()) as client:
        client.send(b"a;b;")
        assert [client.read_line(), client.read_line()] == [b"A", b"B"]
        client.send(b"line:over tcp\nc;")
        assert [client.read_line(), client.read_line()] == [b"LINE over tcp", b"C"]
        client.send(b"send;")
        assert [client.read_line(), client.read_line()] == [b"first", b"second"]
        client.send(b"boom;")  # the rest of a chunk whose handler raised is lost with it
        assert client.read_line() == b"ERR internal error"
        client.send(b"ok;")
        assert client.read_line() == b"OK"
        client.send(b"x;wait;then;")
        assert client.read_line() == b"X"
        service = server.app.services["words"]
        while not service.waiting:  # the reactor thread parks the reply
            time.sleep(0.01)
        server.call(lambda: service.waiting.pop().resolve(b"done\n"))
        assert [client.read_line(), client.read_line()] == [b"done", b"THEN"]
        client.send(b"bye;")
        assert client.read_line() == b"bye"
        assert client.read_line() == b""
        assert client.eof  # closed after the reply
