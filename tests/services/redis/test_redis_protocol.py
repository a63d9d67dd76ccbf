"""In-memory tests of the Redis service: framing splits, errors, limits, expiry, pub/sub, the AOF."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.services.redis import RedisService
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServiceHarness]:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        yield h


def talk(client: MemoryClient, data: bytes) -> list[bytes]:
    client.send(data)
    return split_replies(client.read())


# --------------------------------------------------------------------------- framing


PIPELINE = (
    cmd("SET", "k", "v" * 50)
    + b"GET k\r\n"
    + cmd("ECHO", "a\r\nb")
    + b'SET q "two words"\r\n'
    + cmd("GET", "q")
    + cmd("MSET", "x", "1", "y", "")
    + cmd("MGET", "x", "y", "none")
)
PIPELINE_REPLIES = [
    b"+OK\r\n",
    b"$50\r\n" + b"v" * 50 + b"\r\n",
    b"$4\r\na\r\nb\r\n",
    b"+OK\r\n",
    b"$9\r\ntwo words\r\n",
    b"+OK\r\n",
    b"*3\r\n$1\r\n1\r\n$0\r\n\r\n$-1\r\n",
]


def test_pipeline_in_one_read(harness: ServiceHarness) -> None:
    assert talk(harness.connect(), PIPELINE) == PIPELINE_REPLIES


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_pipeline_split_everywhere(harness: ServiceHarness, size: int) -> None:
    client = harness.connect()
    for start in range(0, len(PIPELINE), size):
        client.send(PIPELINE[start : start + size])
    assert split_replies(client.read()) == PIPELINE_REPLIES


def test_every_split_point_of_one_command(harness: ServiceHarness) -> None:
    data = cmd("SET", "key", "value\r\nwith crlf") + cmd("GET", "key")
    for cut in range(1, len(data)):
        client = harness.connect()
        client.send(data[:cut])
        client.send(data[cut:])
        assert split_replies(client.read()) == [b"+OK\r\n", b"$16\r\nvalue\r\nwith crlf\r\n"]


def test_large_value_across_reads(harness: ServiceHarness) -> None:
    client = harness.connect()
    value = bytes(range(256)) * 4000
    data = cmd("SET", "big", value) + cmd("STRLEN", "big")
    for start in range(0, len(data), 65536):
        client.send(data[start : start + 65536])
    assert split_replies(client.read()) == [b"+OK\r\n", b":1024000\r\n"]
    assert talk(client, cmd("GET", "big")) == [b"$1024000\r\n" + value + b"\r\n"]


def test_inline_quotes_and_blank_lines(harness: ServiceHarness) -> None:
    client = harness.connect()
    replies = talk(client, b"\r\n\r\nSET a 'it''s'\r\nSET b \"tab\\there\\x21\"\r\nGET b\n  \r\nECHO  x  \r\n")
    assert replies == [b"-ERR Protocol error: unbalanced quotes in request\r\n"]
    assert client.closed
    client = harness.connect()
    assert talk(client, b'SET b "tab\\there\\x21"\r\nGET b\n  \r\nECHO  x  \r\n') == [
        b"+OK\r\n",
        b"$9\r\ntab\there!\r\n",
        b"$1\r\nx\r\n",
    ]


def test_command_names_are_case_insensitive(harness: ServiceHarness) -> None:
    assert talk(harness.connect(), b"pInG\r\n" + cmd("echo", "x")) == [b"+PONG\r\n", b"$1\r\nx\r\n"]


# --------------------------------------------------------------------------- errors and limits


def test_error_texts(harness: ServiceHarness) -> None:
    client = harness.connect()
    replies = talk(
        client,
        cmd("GET")
        + cmd("LPUSH", "l", "a")
        + cmd("GET", "l")
        + cmd("INCR", "l")
        + cmd("SET", "n", "x")
        + cmd("INCR", "n")
        + cmd("SET", "a", "b", "NX", "XX")
        + cmd("FOO", "bar"),
    )
    assert replies == [
        b"-ERR wrong number of arguments for 'get' command\r\n",
        b":1\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        b"+OK\r\n",
        b"-ERR value is not an integer or out of range\r\n",
        b"-ERR syntax error\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n",
    ]


def _hello(proto: int, client_id: int) -> bytes:
    header = b"%7\r\n" if proto == 3 else b"*14\r\n"
    return (
        header
        + b"$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:%d\r\n" % proto
        + b"$2\r\nid\r\n:%d\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n" % client_id
        + b"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
    )


def test_hello_switches_the_protocol(harness: ServiceHarness) -> None:
    client = harness.connect()
    assert client.channel is not None
    cid = client.channel.protocol.id  # type: ignore[attr-defined]
    replies = talk(
        client,
        cmd("HELLO")
        + cmd("GET", "nokey")
        + cmd("HELLO", "3")
        + cmd("GET", "nokey")
        + cmd("HELLO")
        + cmd("HELLO", "4")
        + cmd("HELLO", "x")
        + cmd("GET", "nokey")
        + cmd("HELLO", "2")
        + cmd("GET", "nokey"),
    )
    assert replies == [
        _hello(2, cid),
        b"$-1\r\n",
        _hello(3, cid),
        b"_\r\n",
        _hello(3, cid),
        b"-NOPROTO unsupported protocol version\r\n",
        b"-ERR Protocol version is not an integer or out of range\r\n",
        b"_\r\n",  # a refused HELLO leaves the protocol as it was
        _hello(2, cid),
        b"$-1\r\n",
    ]


def test_hello_options_apply_in_order(harness: ServiceHarness) -> None:
    client = harness.connect()
    replies = talk(
        client,
        cmd("HELLO", "3", "SETNAME", "first", "AUTH", "bob", "pw")  # the name stays, the protocol does not change
        + cmd("CLIENT", "GETNAME")
        + cmd("GET", "nokey")
        + cmd("HELLO", "3", "AUTH", "default", "anything", "SETNAME", "second")
        + cmd("CLIENT", "GETNAME")
        + cmd("HELLO", "3", "SETNAME", "")
        + cmd("CLIENT", "GETNAME")
        + cmd("HELLO", "3", "AUTH", "default")
        + cmd("AUTH", "pw")
        + cmd("AUTH", "default", "pw")
        + cmd("AUTH", "bob", "pw"),
    )
    assert replies[:3] == [
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        b"$5\r\nfirst\r\n",
        b"$-1\r\n",
    ]
    assert replies[3].startswith(b"%7\r\n")
    assert replies[4:] == [
        b"$6\r\nsecond\r\n",
        replies[3],
        b"_\r\n",
        b"-ERR Syntax error in HELLO option 'AUTH'\r\n",
        b"-ERR AUTH <password> called without any password configured for the default user. "
        b"Are you sure your configuration is correct?\r\n",
        b"+OK\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    ]


def test_resp3_reply_shapes(harness: ServiceHarness) -> None:
    client = harness.connect()
    talk(client, cmd("HELLO", "3"))
    replies = talk(
        client,
        cmd("SET", "s", "v")
        + cmd("SET", "s", "w", "NX", "GET")
        + cmd("SET", "t", "w", "XX")
        + cmd("GETSET", "nokey", "x")
        + cmd("GETDEL", "none")
        + cmd("MGET", "s", "none")
        + cmd("LPOP", "none")
        + cmd("LPOP", "none", "2")
        + cmd("LINDEX", "none", "0")
        + cmd("HSET", "h", "f", "1", "g", "2")
        + cmd("HGETALL", "h")
        + cmd("HGETALL", "none")
        + cmd("HGET", "h", "zz")
        + cmd("HMGET", "h", "f", "zz")
        + cmd("HKEYS", "h")
        + cmd("SADD", "st", "m")
        + cmd("SMEMBERS", "st")
        + cmd("SMEMBERS", "none")
        + cmd("CONFIG", "GET", "databases")
        + cmd("CLIENT", "GETNAME")
        + cmd("INCRBYFLOAT", "fl", "1.5")
        + cmd("FLUSHDB")
        + cmd("RANDOMKEY"),
    )
    assert replies == [
        b"+OK\r\n",
        b"$1\r\nv\r\n",
        b"_\r\n",
        b"_\r\n",
        b"_\r\n",
        b"*2\r\n$1\r\nv\r\n_\r\n",
        b"_\r\n",
        b"_\r\n",
        b"_\r\n",
        b":2\r\n",
        b"%2\r\n$1\r\nf\r\n$1\r\n1\r\n$1\r\ng\r\n$1\r\n2\r\n",
        b"%0\r\n",
        b"_\r\n",
        b"*2\r\n$1\r\n1\r\n_\r\n",
        b"*2\r\n$1\r\nf\r\n$1\r\ng\r\n",
        b":1\r\n",
        b"~1\r\n$1\r\nm\r\n",
        b"~0\r\n",
        b"%1\r\n$9\r\ndatabases\r\n$2\r\n16\r\n",
        b"_\r\n",
        b"$3\r\n1.5\r\n",  # a bulk string in RESP3 too, as in Redis 7
        b"+OK\r\n",
        b"_\r\n",
    ]


def test_resp3_text_and_command_replies(harness: ServiceHarness) -> None:
    client = harness.connect()
    talk(client, cmd("HELLO", "3"))
    info, client_info, docs, command_info = talk(
        client,
        cmd("INFO", "server")
        + cmd("CLIENT", "INFO")
        + cmd("COMMAND", "DOCS", "get")
        + cmd("COMMAND", "INFO", "get", "nosuch"),
    )
    body = info.split(b"\r\n", 1)[1]
    assert info.startswith(b"=%d\r\ntxt:# Server\r\n" % (len(body) - 2))
    assert client_info.startswith(b"=") and client_info.endswith(b" resp=3\n\r\n")
    assert docs.startswith(b"%1\r\n$3\r\nget\r\n%2\r\n$7\r\nsummary\r\n")
    assert command_info.startswith(b"*2\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n")
    assert command_info.endswith(b"$5\r\nlimit\r\n:0\r\n~0\r\n_\r\n")


def test_resp3_pipeline_split_everywhere(harness: ServiceHarness) -> None:
    """Framing does not depend on the protocol: the same pipeline, cut anywhere, under RESP3."""
    expected = [*PIPELINE_REPLIES[:-1], b"*3\r\n$1\r\n1\r\n$0\r\n\r\n_\r\n"]
    for size in (1, 3, 7):
        client = harness.connect()
        talk(client, cmd("HELLO", "3"))
        for start in range(0, len(PIPELINE), size):
            client.send(PIPELINE[start : start + size])
        assert split_replies(client.read()) == expected


def test_reset_goes_back_to_resp2(harness: ServiceHarness) -> None:
    client = harness.connect()
    replies = talk(client, cmd("HELLO", "3") + cmd("SUBSCRIBE", "c") + cmd("RESET") + cmd("GET", "x") + cmd("PING"))
    assert replies[1:] == [b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", b"+RESET\r\n", b"$-1\r\n", b"+PONG\r\n"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*9999999\r\n", b"invalid multibulk length"),
        (b"*1\r\n$999999999999\r\n", b"invalid bulk length"),
        (b"*1\r\n$-5\r\n", b"invalid bulk length"),
        (b"*1\r\n$\r\n", b"invalid bulk length"),
        (b"*1\r\n+x\r\n", b"expected '$', got '+'"),
        (b'\x00\xff garbage "\r\n', b"unbalanced quotes in request"),
    ],
)
def test_protocol_errors_close(tmp_path: Path, data: bytes, message: bytes) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, max_bulk_len=1 << 20, max_multibulk_len=1000) as h:
        for cut in (len(data), 3):  # in one read, and cut so the frame rules see it
            client = h.connect()
            client.send(b"PING\r\n" + data[:cut])
            if cut < len(data):
                client.send(data[cut:])
            assert client.read() == b"+PONG\r\n-ERR Protocol error: " + message + b"\r\n"
            assert client.closed


def test_long_inline_line_is_refused(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, max_line=1024) as h:
        client = h.connect()
        client.send(b"SET a " + b"x" * 2000)
        assert client.read() == b"-ERR Protocol error: too big inline request\r\n"
        assert client.closed
        client = h.connect()
        client.send(b"*" + b"1" * 2000)
        assert client.read() == b"-ERR Protocol error: too big mbulk count string\r\n"


def test_garbage_never_crashes(harness: ServiceHarness) -> None:
    import random

    rng = random.Random(7)
    alphabet = b"*$:+-\r\n 0123456789abcGETSET\"'\\x"
    for _ in range(200):
        client = harness.connect()
        blob = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
        try:
            client.send(blob)
            client.send(b"\r\n")
        except ConnectionError:
            pass  # closed after a protocol error: fine
        out = client.read()
        assert b"internal error" not in out
    assert talk(harness.connect(), b"PING\r\n") == [b"+PONG\r\n"]


def test_max_clients(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, maxclients=2) as h:
        first, second = h.connect(), h.connect()
        third = h.connect()
        assert third.read() == b"-ERR max number of clients reached\r\n"
        assert third.closed
        assert talk(first, b"PING\r\n") == [b"+PONG\r\n"]
        assert not second.closed


def test_idle_timeout_an_hour_by_default_subscribers_spared_and_settable(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client, subscriber = h.connect(), h.connect()
        assert talk(subscriber, cmd("SUBSCRIBE", "news"))
        h.advance(3599)
        assert not client.closed
        h.advance(2)
        assert client.closed
        assert not subscriber.closed
        h.advance(7200)
        assert not subscriber.closed
        assert talk(subscriber, cmd("UNSUBSCRIBE"))
        h.advance(3601)
        assert subscriber.closed
    with ServiceHarness(RedisService, data_dir=tmp_path, idle_timeout=0) as h:
        client = h.connect()
        h.advance(100_000)
        assert not client.closed
    with ServiceHarness(RedisService, data_dir=tmp_path, idle_timeout=5) as h:
        client = h.connect()
        h.advance(6)
        assert client.closed
        assert client.read() == b""


def test_a_command_trickled_byte_by_byte_is_cut_off(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        slow, fine = h.connect(), h.connect()
        for piece in (b"*2\r\n$3\r\nGE", b"T\r", b"\n$1\r\n"):
            slow.send(piece)
            h.advance(20)  # each piece resets the idle timer, not the line clock
            assert talk(fine, b"PING\r\n") == [b"+PONG\r\n"]
        h.advance(1)
        assert slow.closed
        # A client whose reads often end mid-command is never hurt by it.
        for _ in range(5):
            fine.send(b"*1\r\n$4\r\nPI")
            h.advance(59)
            fine.send(b"NG\r\n")
            assert fine.read() == b"+PONG\r\n"
        assert not fine.closed


def test_quit_replies_then_closes(harness: ServiceHarness) -> None:
    client = harness.connect()
    assert client.channel is not None
    client.send(b"QUIT\r\nPING\r\n")
    assert client.read() == b"+OK\r\n"
    assert client.closed


# --------------------------------------------------------------------------- expiry


def test_lazy_expiry_with_the_clock(harness: ServiceHarness) -> None:
    client = harness.connect()
    assert talk(client, cmd("SET", "k", "v", "EX", "10") + cmd("TTL", "k") + cmd("PEXPIRE", "k", "9500")) == [
        b"+OK\r\n",
        b":10\r\n",
        b":1\r\n",
    ]
    harness.advance(9.0)
    assert talk(client, cmd("PTTL", "k")) == [b":500\r\n"]
    harness.advance(0.6)
    assert talk(client, cmd("GET", "k") + cmd("TTL", "k") + cmd("EXISTS", "k")) == [b"$-1\r\n", b":-2\r\n", b":0\r\n"]


def test_active_expiry_removes_keys_nobody_reads(harness: ServiceHarness) -> None:
    client = harness.connect()
    client.send(b"".join(cmd("SET", f"k{i}", "v", "PX", "100") for i in range(500)) + cmd("SET", "keep", "v"))
    client.read()
    db = harness.service.dbs[0]  # type: ignore[attr-defined]
    assert len(db) == 501
    harness.advance(0.2)
    for _ in range(50):  # each timer tick samples; many ticks clear everything
        harness.advance(0.1)
    assert len(db) == 1
    assert harness.service.expired_keys == 500  # type: ignore[attr-defined]


def test_persist_and_set_drop_or_keep_deadlines(harness: ServiceHarness) -> None:
    client = harness.connect()
    replies = talk(
        client,
        cmd("SET", "a", "1", "EX", "5")
        + cmd("INCR", "a")
        + cmd("TTL", "a")
        + cmd("SET", "a", "2")
        + cmd("TTL", "a")
        + cmd("EXPIRE", "a", "5")
        + cmd("PERSIST", "a")
        + cmd("TTL", "a"),
    )
    assert replies == [b"+OK\r\n", b":2\r\n", b":5\r\n", b"+OK\r\n", b":-1\r\n", b":1\r\n", b":1\r\n", b":-1\r\n"]


# --------------------------------------------------------------------------- pub/sub


def test_pubsub_in_memory(harness: ServiceHarness) -> None:
    sub, pub = harness.connect(), harness.connect()
    assert talk(sub, cmd("SUBSCRIBE", "news", "sport") + cmd("PSUBSCRIBE", "n*")) == [
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n",
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n",
    ]
    assert talk(pub, cmd("PUBLISH", "news", "hi")) == [b":2\r\n"]
    assert split_replies(sub.read()) == [
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
        b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
    ]
    assert talk(sub, cmd("GET", "x") + cmd("PING")) == [
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
        b"this context\r\n",
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
    ]
    assert talk(sub, cmd("UNSUBSCRIBE") + cmd("PUNSUBSCRIBE") + cmd("UNSUBSCRIBE")) == [
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:2\r\n",
        b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:1\r\n",
        b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n",
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    ]
    assert talk(sub, cmd("GET", "x")) == [b"$-1\r\n"]
    sub.close()
    assert talk(pub, cmd("PUBLISH", "news", "hi")) == [b":0\r\n"]


def test_pubsub_resp3_pushes_and_any_command(harness: ServiceHarness) -> None:
    sub3, sub2, pub = harness.connect(), harness.connect(), harness.connect()
    talk(sub3, cmd("HELLO", "3"))
    assert talk(sub3, cmd("SUBSCRIBE", "news") + cmd("PSUBSCRIBE", "n*")) == [
        b">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
        b">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n",
    ]
    talk(sub2, cmd("SUBSCRIBE", "news"))
    assert talk(pub, cmd("PUBLISH", "news", "hi")) == [b":3\r\n"]
    # One message, framed per subscriber: a push for RESP3, an array for RESP2.
    assert split_replies(sub3.read()) == [
        b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
        b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
    ]
    assert split_replies(sub2.read()) == [b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"]
    # Under RESP3 a subscribed connection runs any command, and PING is the plain one.
    assert talk(sub3, cmd("SET", "k", "v") + cmd("GET", "k") + cmd("GET", "k") + cmd("PING")) == [
        b"+OK\r\n",
        b"$1\r\nv\r\n",
        b"$1\r\nv\r\n",
        b"+PONG\r\n",
    ]
    assert talk(sub3, cmd("UNSUBSCRIBE") + cmd("PUNSUBSCRIBE") + cmd("UNSUBSCRIBE")) == [
        b">3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n",
        b">3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n",
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n",
    ]


# --------------------------------------------------------------------------- append-only file

WRITES = (
    cmd("SET", "s", "v")
    + cmd("SET", "t", "v", "EX", "100")
    + cmd("SET", "short", "v", "PX", "500")
    + cmd("RPUSH", "l", "a", "b", "c")
    + cmd("LPOP", "l")
    + cmd("HSET", "h", "f", "1")
    + cmd("HINCRBY", "h", "f", "41")
    + cmd("SADD", "z", "m1", "m2")
    + cmd("INCRBYFLOAT", "fl", "1.5")
    + cmd("SELECT", "3")
    + cmd("SET", "in3", "x")
    + cmd("EXPIRE", "in3", "1000")
)
CHECKS = (
    cmd("GET", "s")
    + cmd("TTL", "t")
    + cmd("EXISTS", "short")
    + cmd("LRANGE", "l", "0", "-1")
    + cmd("HGET", "h", "f")
    + cmd("SCARD", "z")
    + cmd("GET", "fl")
    + cmd("SELECT", "3")
    + cmd("GET", "in3")
    + cmd("TTL", "in3")
)
CHECK_REPLIES = [
    b"$1\r\nv\r\n",
    b":90\r\n",
    b":0\r\n",
    b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
    b"$2\r\n42\r\n",
    b":2\r\n",
    b"$3\r\n1.5\r\n",
    b"+OK\r\n",
    b"$1\r\nx\r\n",
    b":990\r\n",
]


def test_aof_replay_restores_data_and_absolute_deadlines(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(WRITES)
        client.read()
    aof = (tmp_path / "appendonly.aof").read_bytes()
    assert b"PXAT" in aof and b"PEXPIREAT" in aof and b"EX\r\n" not in aof
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        # Time has moved on for the new process: 10 s later, absolute deadlines still hold.
        h.service._epoch_offset += 10  # type: ignore[attr-defined]
        assert talk(h.connect(), CHECKS) == CHECK_REPLIES


def test_aof_truncated_last_record(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(cmd("SET", "a", "1") + cmd("SET", "b", "2"))
        client.read()
    path = tmp_path / "appendonly.aof"
    whole = path.read_bytes()
    path.write_bytes(whole + cmd("SET", "c", "3")[:-4])  # a crash mid-append
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert path.read_bytes() == whole  # cut back to the valid prefix
        client = h.connect()
        assert talk(client, cmd("MGET", "a", "b", "c") + cmd("SET", "d", "4")) == [
            b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n",
            b"+OK\r\n",
        ]
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:  # and appends after the cut stay readable
        assert talk(h.connect(), cmd("MGET", "a", "d")) == [b"*2\r\n$1\r\n1\r\n$1\r\n4\r\n"]


def test_aof_records_expiry_as_deletes(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendfsync="always") as h:
        client = h.connect()
        client.send(cmd("SET", "k", "v", "PX", "100") + cmd("APPEND", "k", "w"))
        client.read()
        h.advance(1.0)
        client.send(cmd("SET", "k", "new", "NX"))
        client.read()
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        # Replayed without expiring anything meanwhile, the DEL makes NX succeed again: same result.
        assert talk(h.connect(), cmd("GET", "k") + cmd("TTL", "k")) == [b"$3\r\nnew\r\n", b":-1\r\n"]


def test_aof_off(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendonly=False) as h:
        client = h.connect()
        client.send(cmd("SET", "a", "1"))
        client.read()
    assert not (tmp_path / "appendonly.aof").exists()


def test_random_picks_leave_the_process_random_state_alone(harness: ServiceHarness) -> None:
    """The service samples with a generator of its own: the global ``random`` state of the process it runs in
    (an application's, or a test's: Hypothesis watches it) neither moves nor steers the picks."""
    c = harness.connect()
    talk(
        c,
        cmd("SADD", "s", *"abcdefgh")
        + cmd("HSET", "h", "f1", "1", "f2", "2", "f3", "3")
        + cmd("ZADD", "z", "1", "a", "2", "b", "3", "c")
        + b"".join(cmd("SET", f"t{n}", "v", "PX", "100000000") for n in range(30)),
    )
    state = random.getstate()
    replies = talk(
        c,
        cmd("RANDOMKEY")
        + cmd("SRANDMEMBER", "s", "3")
        + cmd("SRANDMEMBER", "s", "-5")
        + cmd("SPOP", "s", "2")
        + cmd("HRANDFIELD", "h", "-4")
        + cmd("ZRANDMEMBER", "z")
        + cmd("ZRANDMEMBER", "z", "-4"),
    )
    assert len(replies) == 7 and not any(reply.startswith(b"-") for reply in replies)
    harness.advance(1.0)  # the active expiry cycle samples keys with deadlines
    assert random.getstate() == state
