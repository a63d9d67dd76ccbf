"""The service API driven in memory: dispatch, validation, rules, replies, limits."""

from __future__ import annotations

from typing import Any

import pytest
from linechat import CommandError, Pending, Protocol, Service, ServiceSettings, command, terminator
from linechat.testing import ServiceHarness


class KVProtocol(Protocol):
    """A small protocol that exercises most of the API."""

    line_ending = b"\n"

    def on_connect(self) -> str:
        return "hi"

    def error(self, message: str) -> str:
        return f"ERR {message}"

    @command("LOGIN")
    def login(self, user: str) -> str:
        self.set_state("ready")
        return f"OK {user}"

    @command("SET", state="ready")
    def set_(self, key: str, value: str) -> str:
        self.service.store[key] = value
        return "OK"

    @command("GET", "FETCH", state="ready")
    def get(self, key: str) -> str:
        return self.service.store.get(key, "(nil)")

    @command("SUM")
    def sum_(self, *numbers: int) -> str:
        return str(sum(numbers))

    @command("SCALE")
    def scale(self, value: float, factor: float = 2.0) -> str:
        return str(value * factor)

    @command("BOOM")
    def boom(self) -> str:
        raise RuntimeError("handler bug")

    @command("REFUSE")
    def refuse(self) -> str:
        raise CommandError("not today")

    @command("BLOB")
    def blob(self, size: int) -> str:
        self.switch("blob", count=size)
        return "SEND"

    @terminator("blob", count=True)
    def got_blob(self, data: bytes) -> str:
        self.switch("command")
        return f"GOT {len(data)} {data.decode()}"

    @command("BODY")
    def body(self) -> str:
        self.switch("body")
        return "GO"

    @terminator("body", b"\n.\n", stream=True)
    def body_chunk(self, chunk: bytes, end: bool) -> str | None:
        self.service.body.append(chunk)
        if end:
            self.switch("command")
            return f"BODY {len(b''.join(self.service.body))}"
        return None

    @command("WAIT")
    def wait(self) -> Pending:
        pending = self.later()
        self.service.waiting.append(pending)
        return pending

    @command("WAKE")
    def wake(self, text: str) -> str:
        for pending in self.service.waiting:
            pending.resolve(f"WOKE {text}")
        self.service.waiting.clear()
        return "OK"

    @command("QUIT")
    def quit(self) -> str:
        self.close()
        return "BYE"

    def on_idle_timeout(self) -> str:
        return "TIMEOUT"


class KVSettings(ServiceSettings):
    max_line: int = 64
    idle_timeout: float | None = 30.0


class KVService(Service):
    name = "kv"
    Settings = KVSettings
    protocol = KVProtocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store: dict[str, str] = {}
        self.body: list[bytes] = []
        self.waiting: list[Pending] = []


@pytest.fixture
def kv() -> ServiceHarness:
    return ServiceHarness(KVService)


def talk(harness: ServiceHarness, data: bytes) -> list[str]:
    client = harness.connect()
    client.send(data)
    return client.read_lines()


def test_greeting_and_dispatch_case_insensitive(kv: ServiceHarness) -> None:
    assert talk(kv, b"login ann\r\nSet a 1\r\nget a\r\nFETCH a\r\n") == ["hi", "OK ann", "OK", "1", "1"]


def test_state_gate(kv: ServiceHarness) -> None:
    assert talk(kv, b"GET a\n") == ["hi", "ERR 'get' is not allowed now"]


def test_arity_and_types(kv: ServiceHarness) -> None:
    lines = talk(kv, b"LOGIN\nLOGIN a b\nSUM 1 2 3\nSUM\nSUM 1 x\nSCALE 1.5\nSCALE 1 3\n")
    assert lines == [
        "hi",
        "ERR wrong number of arguments for 'login' command",
        "ERR wrong number of arguments for 'login' command",
        "6",
        "0",
        "ERR invalid value for 'args' of 'sum'",
        "3.0",
        "3.0",
    ]


def test_unknown_empty_and_bad_utf8(kv: ServiceHarness) -> None:
    lines = talk(kv, b"NOPE 1\n\n   \nSUM \xff\xfe\nSUM 2\n")
    assert lines == ["hi", "ERR unknown command 'NOPE'", "ERR invalid utf-8 in command line", "2"]


def test_handler_errors_keep_the_connection(kv: ServiceHarness) -> None:
    client = kv.connect()
    client.send(b"BOOM\nREFUSE\nSUM 1 1\n")
    assert client.read_lines() == ["hi", "ERR internal error", "ERR not today", "2"]
    assert not client.closed


def test_count_rule_switches_and_returns(kv: ServiceHarness) -> None:
    client = kv.connect()
    # The blob holds a newline and arrives split; the next command follows at once.
    client.send(b"BLOB 7\nab")
    client.send(b"c\ndefSUM 4 4\n")
    assert client.read_lines() == ["hi", "SEND", "GOT 7 abc", "def", "8"]


def test_streamed_rule(kv: ServiceHarness) -> None:
    client = kv.connect()
    client.send(b"BODY\nline one\nline")
    client.send(b" two\n.")
    client.send(b"\nSUM 1\n")
    assert client.read_lines() == ["hi", "GO", "BODY 17", "1"]
    assert b"".join(kv.service.body) == b"line one\nline two"


def test_line_too_long_is_skipped_with_an_error(kv: ServiceHarness) -> None:
    client = kv.connect()
    client.send(b"SUM " + b"1 " * 100)  # over max_line=64, no newline yet
    client.send(b"1 1\nSUM 5\n")
    assert client.read_lines() == ["hi", "ERR line too long", "5"]
    assert not client.closed


def test_endless_line_keeps_memory_bounded(kv: ServiceHarness) -> None:
    client = kv.connect()
    for _ in range(200):
        client.send(b"x" * 4096)
    assert len(client.channel.ac_in_buffer) < 4096
    assert not client.channel._chunks
    client.send(b"\nSUM 3\n")
    assert client.read_lines() == ["hi", "ERR line too long", "3"]


def test_pending_reply_holds_later_commands_in_order(kv: ServiceHarness) -> None:
    waiter = kv.connect()
    waiter.send(b"WAIT\nSUM 1 2\n")
    assert waiter.read_lines() == ["hi"]  # SUM waits behind WAIT
    other = kv.connect()
    other.send(b"WAKE now\n")
    assert other.read_lines() == ["hi", "OK"]
    assert waiter.read_lines() == ["WOKE now", "3"]


def test_close_after_reply(kv: ServiceHarness) -> None:
    client = kv.connect()
    client.send(b"QUIT\nSUM 1\n")
    assert client.read_lines() == ["hi", "BYE"]
    assert client.closed


def test_idle_timeout_by_timer(kv: ServiceHarness) -> None:
    client = kv.connect()
    client.read()
    kv.advance(20)
    client.send(b"SUM 1\n")
    kv.advance(20)  # 20 s since the last input: still open
    assert not client.closed
    kv.advance(11)
    assert client.read_lines() == ["1", "TIMEOUT"]
    assert client.closed


def test_slow_consumer_is_cut_off(kv: ServiceHarness) -> None:
    kv.service.settings.out_hard_limit = 4096
    kv.service.settings.out_high_water = 2048
    slow = kv.connect()
    slow.stall()
    # Output pushed from elsewhere (as a broadcast would be) piles up unread.
    for _ in range(10):
        if slow.closed:
            break
        slow.protocol.send("x" * 1000)
    assert slow.closed
    assert slow.channel.out_buffered == 0  # the queue was dropped, not kept
    fast = kv.connect()
    fast.send(b"SUM 2 2\n")
    assert fast.read_lines() == ["hi", "4"]


def test_input_driven_output_pauses_instead_of_disconnecting(kv: ServiceHarness) -> None:
    kv.service.settings.out_hard_limit = 4096
    kv.service.settings.out_high_water = 2048
    client = kv.connect()
    client.stall()
    client.send(b"SCALE 123456789 1000000\n" * 400)
    assert client.channel.reading_paused
    assert not client.closed
    assert client.channel.out_buffered <= 4096


def test_backpressure_pauses_reading_then_resumes(kv: ServiceHarness) -> None:
    kv.service.settings.out_high_water = 1024
    client = kv.connect()
    client.stall()
    client.send(b"SUM 1\n" * 2000)
    assert client.channel.reading_paused
    held = len(client.channel.ac_in_buffer)
    assert held > 0  # the rest waits, unframed, in the input buffer
    client.unstall()
    kv.run_ready()
    out = client.read_lines()
    assert out.count("1") == 2000
    assert not client.channel.reading_paused


def test_commands_listing() -> None:
    listed = KVProtocol.commands()
    assert {"SET", "GET", "FETCH", "BLOB"} <= set(listed)
