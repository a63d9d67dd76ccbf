"""Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, CLIENT UNBLOCK): in memory, redis-py, redis-server."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.services.redis.blocking import parse_timeout
from linechat.services.redis.resp import RespError
from linechat.testing import MemoryClient, RunningServer, ServiceHarness, serve
from redis_wire import RawClient, cmd, real_redis, split_replies


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServiceHarness]:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        yield h


def talk(client: MemoryClient, *commands: tuple[str | bytes, ...]) -> list[bytes]:
    client.send(b"".join(cmd(*c) for c in commands))
    return split_replies(client.read())


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    ("raw", "millis"),
    [(b"0", 0), (b"1", 1000), (b"0.5", 500), (b"0.0001", 1), (b"1e-400", 1), (b"-0.0001", 0), (b"0x10", 16000)],
)
def test_timeouts_parse_as_redis_does(raw: bytes, millis: int) -> None:
    assert parse_timeout(raw) == millis


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"-1", "ERR timeout is negative"),
        (b"inf", "ERR timeout is negative"),
        (b"1e300", "ERR timeout is negative"),
        (b"abc", "ERR timeout is not a float or out of range"),
        (b"nan", "ERR timeout is not a float or out of range"),
        (b" 1", "ERR timeout is not a float or out of range"),
        (b"", "ERR timeout is not a float or out of range"),
        (b"1_0", "ERR timeout is not a float or out of range"),
    ],
)
def test_bad_timeouts(raw: bytes, message: str) -> None:
    with pytest.raises(RespError, match=message):
        parse_timeout(raw)


# --------------------------------------------------------------------------- in memory


def test_data_at_hand_is_served_at_once(harness: ServiceHarness) -> None:
    c = harness.connect()
    assert talk(c, ("RPUSH", "a", "1", "2"), ("BLPOP", "none", "a", "0"), ("BRPOP", "a", "0")) == [
        b":2\r\n",
        b"*2\r\n$1\r\na\r\n$1\r\n1\r\n",
        b"*2\r\n$1\r\na\r\n$1\r\n2\r\n",
    ]
    assert talk(c, ("EXISTS", "a")) == [b":0\r\n"]


def test_clients_are_served_in_the_order_they_blocked(harness: ServiceHarness) -> None:
    waiters = [harness.connect() for _ in range(3)]
    for w in waiters:
        assert talk(w, ("BLPOP", "q", "0")) == []
    writer = harness.connect()
    assert talk(writer, ("RPUSH", "q", "a", "b")) == [b":2\r\n"]
    assert [split_replies(w.read()) for w in waiters] == [
        [b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"],
        [b"*2\r\n$1\r\nq\r\n$1\r\nb\r\n"],
        [],
    ]
    assert talk(writer, ("RPUSH", "q", "c"), ("LLEN", "q")) == [b":1\r\n", b":0\r\n"]
    assert split_replies(waiters[2].read()) == [b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n"]


def test_timeout_uses_the_reactor_clock(harness: ServiceHarness) -> None:
    c = harness.connect()
    assert talk(c, ("BLPOP", "t", "1.5")) == []
    harness.advance(1.4)
    assert c.read() == b""
    harness.advance(0.2)
    assert c.read() == b"*-1\r\n"
    assert talk(c, ("HELLO", "3"))[0].startswith(b"%7")
    assert talk(c, ("BRPOPLPUSH", "t", "u", "0.25")) == []
    harness.advance(0.3)
    assert c.read() == b"_\r\n"
    assert talk(c, ("BLPOP", "t", "0")) == []
    harness.advance(10_000)  # 0 waits for ever
    assert c.read() == b""
    assert harness.service.blocking.blocked_clients == 1


def test_pipelined_commands_after_a_blocked_one_wait_in_order(harness: ServiceHarness) -> None:
    c, writer = harness.connect(), harness.connect()
    pipeline = cmd("SET", "x", "1") + cmd("BLPOP", "p", "0") + cmd("SET", "x", "2") + cmd("GET", "x")
    c.send(pipeline + b"INCR x\r\n" + cmd("ECHO", "cut")[:9])  # an inline command and a cut one too
    assert split_replies(c.read()) == [b"+OK\r\n"]
    c.send(cmd("ECHO", "cut")[9:])
    assert talk(writer, ("GET", "x")) == [b"$1\r\n1\r\n"]
    assert talk(writer, ("RPUSH", "p", "v")) == [b":1\r\n"]
    assert split_replies(c.read()) == [
        b"*2\r\n$1\r\np\r\n$1\r\nv\r\n",
        b"+OK\r\n",
        b"$1\r\n2\r\n",
        b":3\r\n",
        b"$3\r\ncut\r\n",
    ]


def test_a_parked_command_can_block_again(harness: ServiceHarness) -> None:
    c, writer = harness.connect(), harness.connect()
    c.send(cmd("BLPOP", "a", "0") + cmd("BLPOP", "b", "0") + cmd("PING"))
    talk(writer, ("RPUSH", "a", "1"))
    assert split_replies(c.read()) == [b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"]
    talk(writer, ("RPUSH", "b", "2"))
    assert split_replies(c.read()) == [b"*2\r\n$1\r\nb\r\n$1\r\n2\r\n", b"+PONG\r\n"]


def test_writer_pipeline_sees_the_key_after_the_waiter_took_it(harness: ServiceHarness) -> None:
    waiter, writer = harness.connect(), harness.connect()
    talk(waiter, ("BLPOP", "w", "0"))
    assert talk(writer, ("RPUSH", "w", "a"), ("LPOP", "w")) == [b":1\r\n", b"$-1\r\n"]
    assert waiter.read() == b"*2\r\n$1\r\nw\r\n$1\r\na\r\n"


def test_transaction_wakes_waiters_when_it_ends(harness: ServiceHarness) -> None:
    waiter, writer = harness.connect(), harness.connect()
    talk(waiter, ("BLPOP", "m", "0"))
    replies = talk(writer, ("MULTI",), ("RPUSH", "m", "a"), ("LPOP", "m"), ("RPUSH", "m", "b", "c"), ("EXEC",))
    assert replies[-1] == b"*3\r\n:1\r\n$1\r\na\r\n:2\r\n"
    assert waiter.read() == b"*2\r\n$1\r\nm\r\n$1\r\nb\r\n"
    assert talk(writer, ("LRANGE", "m", "0", "-1")) == [b"*1\r\n$1\r\nc\r\n"]


def test_no_blocking_inside_multi(harness: ServiceHarness) -> None:
    c = harness.connect()
    replies = talk(
        c,
        ("MULTI",),
        ("BLPOP", "none", "0"),
        ("BLMOVE", "none", "x", "LEFT", "LEFT", "0"),
        ("BLMPOP", "0", "1", "none", "LEFT"),
        ("EXEC",),
    )
    assert replies[-1] == b"*3\r\n*-1\r\n$-1\r\n*-1\r\n"
    assert harness.service.blocking.blocked_clients == 0


def test_disconnect_while_blocked_loses_nothing(harness: ServiceHarness) -> None:
    gone, stays, writer = harness.connect(), harness.connect(), harness.connect()
    talk(gone, ("BLPOP", "d", "0"))
    talk(stays, ("BRPOPLPUSH", "d", "e", "0"))
    gone.close()
    assert harness.service.blocking.blocked_clients == 1
    talk(writer, ("RPUSH", "d", "v"))
    assert stays.read() == b"$1\r\nv\r\n"
    assert talk(writer, ("LRANGE", "e", "0", "-1"), ("EXISTS", "d")) == [b"*1\r\n$1\r\nv\r\n", b":0\r\n"]
    last = harness.connect()
    talk(last, ("BLPOP", "f", "0"))
    last.close()
    assert talk(writer, ("RPUSH", "f", "kept"), ("LLEN", "f")) == [b":1\r\n", b":1\r\n"]
    assert harness.service.blocking.blocked_clients == 0
    assert harness.service.dbs[0].blocked == {}


def test_blmove_chain_and_wrong_type_destination(harness: ServiceHarness) -> None:
    mover, popper, writer = harness.connect(), harness.connect(), harness.connect()
    talk(mover, ("BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"))
    talk(popper, ("BLPOP", "dst", "0"))
    talk(writer, ("RPUSH", "src", "x"))
    assert mover.read() == b"$1\r\nx\r\n"
    assert popper.read() == b"*2\r\n$3\r\ndst\r\n$1\r\nx\r\n"
    talk(mover, ("BLMOVE", "src", "str", "LEFT", "LEFT", "0"))
    talk(writer, ("SET", "str", "s"), ("RPUSH", "src", "y"))
    assert mover.read().startswith(b"-WRONGTYPE")
    assert talk(writer, ("LRANGE", "src", "0", "-1")) == [b"*1\r\n$1\r\ny\r\n"]


def test_key_of_another_type_keeps_the_waiter_waiting(harness: ServiceHarness) -> None:
    waiter, writer = harness.connect(), harness.connect()
    talk(waiter, ("BLPOP", "k", "0"))
    talk(writer, ("SET", "k", "string"), ("DEL", "k"), ("HSET", "k", "f", "v"), ("DEL", "k"))
    assert waiter.read() == b""
    talk(writer, ("LPUSH", "k", "finally"))
    assert waiter.read() == b"*2\r\n$1\r\nk\r\n$7\r\nfinally\r\n"


def test_blmpop_takes_count_from_the_first_ready_key(harness: ServiceHarness) -> None:
    waiter, writer = harness.connect(), harness.connect()
    talk(waiter, ("BLMPOP", "0", "2", "x", "y", "RIGHT", "COUNT", "2"))
    talk(writer, ("RPUSH", "y", "1", "2", "3"))
    assert waiter.read() == b"*2\r\n$1\r\ny\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n"


def test_client_unblock(harness: ServiceHarness) -> None:
    waiter, other = harness.connect(), harness.connect()
    talk(waiter, ("BLPOP", "u", "0"))
    target = str(waiter.protocol.id).encode()
    assert talk(other, ("CLIENT", "UNBLOCK", target, "ERROR")) == [b":1\r\n"]
    assert waiter.read() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    assert talk(other, ("CLIENT", "UNBLOCK", target)) == [b":0\r\n"]
    waiter.send(cmd("BLPOP", "u", "0") + cmd("PING"))
    assert talk(other, ("CLIENT", "UNBLOCK", target, "timeout")) == [b":1\r\n"]
    assert split_replies(waiter.read()) == [b"*-1\r\n", b"+PONG\r\n"]


def test_quit_and_protocol_error_parked_behind_a_blocked_command(harness: ServiceHarness) -> None:
    c, writer = harness.connect(), harness.connect()
    c.send(cmd("BLPOP", "a", "0") + cmd("PING") + cmd("QUIT") + cmd("PING"))
    talk(writer, ("RPUSH", "a", "1"))
    assert split_replies(c.read()) == [b"*2\r\n$1\r\na\r\n$1\r\n1\r\n", b"+PONG\r\n", b"+OK\r\n"]
    assert c.closed
    c = harness.connect()
    c.send(cmd("BLPOP", "a", "0") + cmd("PING") + b"*1\r\nx\r\n")
    assert c.read() == b"" and not c.closed
    talk(writer, ("RPUSH", "a", "2"))
    assert c.read() == b"*2\r\n$1\r\na\r\n$1\r\n2\r\n+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n"
    assert c.closed


def test_blocked_pops_are_logged_as_plain_pops(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendfsync="always") as h:
        waiter, mover, writer = h.connect(), h.connect(), h.connect()
        talk(waiter, ("BLPOP", "a", "0"))
        talk(mover, ("BLMOVE", "b", "c", "LEFT", "RIGHT", "0"))
        talk(writer, ("RPUSH", "a", "1", "2"), ("RPUSH", "b", "3", "4"), ("BRPOP", "a", "0"))
        assert talk(writer, ("LRANGE", "c", "0", "-1"), ("LRANGE", "b", "0", "-1")) == [
            b"*1\r\n$1\r\n3\r\n",
            b"*1\r\n$1\r\n4\r\n",
        ]
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        assert talk(c, ("EXISTS", "a"), ("LRANGE", "c", "0", "-1"), ("LRANGE", "b", "0", "-1")) == [
            b":0\r\n",
            b"*1\r\n$1\r\n3\r\n",
            b"*1\r\n$1\r\n4\r\n",
        ]


def test_input_parked_while_blocked_is_bounded(harness: ServiceHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    from linechat.services.redis import protocol

    monkeypatch.setattr(protocol, "_DEFERRED_LIMIT", 10_000)
    c, other = harness.connect(), harness.connect()
    talk(c, ("BLPOP", "z", "0"))
    for _ in range(20):
        if c.closed:
            break
        c.send(cmd("SET", "k", "v" * 1000))
    assert c.closed
    assert harness.service.blocking.blocked_clients == 0
    assert talk(other, ("RPUSH", "z", "1"), ("LLEN", "z")) == [b":1\r\n", b":1\r\n"]


# --------------------------------------------------------------------------- redis-py over loopback


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("redis")) as srv:
        yield srv


def _wait_blocked(client: redis.Redis, count: int) -> None:
    deadline = time.monotonic() + 10
    while client.info("clients")["blocked_clients"] != count:
        assert time.monotonic() < deadline, "the client never blocked"
        time.sleep(0.005)


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_blpop_hand_off(server: RunningServer, protocol: int) -> None:
    host, port = server.address()
    waiter = redis.Redis(host=host, port=port, socket_timeout=10, protocol=protocol)
    writer = redis.Redis(host=host, port=port, socket_timeout=10, protocol=protocol)
    writer.delete("jobs", "done")
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(waiter.blpop(["jobs"], timeout=0)))
    thread.start()
    _wait_blocked(writer, 1)
    writer.rpush("jobs", "j1")
    thread.join(10)
    assert got == [(b"jobs", b"j1")] or got == [[b"jobs", b"j1"]]
    assert waiter.blpop(["jobs"], timeout=0.05) is None
    assert waiter.brpoplpush("jobs", "done", timeout=0.01) is None
    writer.rpush("jobs", "j2")
    assert waiter.blmove("jobs", "done", 1, "LEFT", "RIGHT") == b"j2"
    assert writer.lrange("done", 0, -1) == [b"j2"]
    waiter.close()
    writer.close()


def test_redis_py_pipeline_with_a_blocking_command_in_the_middle(server: RunningServer) -> None:
    host, port = server.address()
    client = redis.Redis(host=host, port=port, socket_timeout=10)
    writer = redis.Redis(host=host, port=port, socket_timeout=10)
    writer.delete("pq", "marker")
    pipe = client.pipeline(transaction=False)
    pipe.set("marker", "before").blpop(["pq"], timeout=0).set("marker", "after").get("marker")
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.extend(pipe.execute()))
    thread.start()
    _wait_blocked(writer, 1)
    assert writer.get("marker") == b"before"  # the commands after BLPOP have not run
    writer.lpush("pq", "item")
    thread.join(10)
    assert results[0] is True and results[2] is True and results[3] == b"after"
    assert list(results[1]) == [b"pq", b"item"]  # type: ignore[call-overload]
    client.close()
    writer.close()


def test_redis_py_client_unblock(server: RunningServer) -> None:
    host, port = server.address()
    waiter = redis.Redis(host=host, port=port, socket_timeout=10, protocol=2)
    admin = redis.Redis(host=host, port=port, socket_timeout=10)
    waiter_id = waiter.client_id()
    out: list[object] = []

    def wait() -> None:
        try:
            out.append(waiter.blpop(["never"], timeout=0))
        except redis.ResponseError as exc:
            out.append(str(exc))

    thread = threading.Thread(target=wait)
    thread.start()
    _wait_blocked(admin, 1)
    assert admin.client_unblock(waiter_id, error=True) == 1
    thread.join(10)
    assert out == ["UNBLOCKED client unblocked via CLIENT UNBLOCK"]
    waiter.close()
    admin.close()


# --------------------------------------------------------------------------- against redis-server


# Steps: (client, command) sends and reads the reply; (client, command, "block")
# sends a command that blocks and waits until the server counts it blocked;
# (client, "read") reads one reply; (client, "close") hangs up.
SCENARIOS: dict[str, list[tuple]] = {
    "fifo": [
        (1, ("BLPOP", "q", "0"), "block"),
        (2, ("BLPOP", "q", "0"), "block"),
        (3, ("BRPOP", "nothing", "q", "0"), "block"),
        (0, ("RPUSH", "q", "a", "b")),
        (1, "read"),
        (2, "read"),
        (0, ("RPUSH", "q", "c", "d")),
        (3, "read"),
        (0, ("LRANGE", "q", "0", "-1")),
    ],
    "chain": [
        (1, ("BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"), "block"),
        (2, ("BLPOP", "dst", "0"), "block"),
        (3, ("BRPOPLPUSH", "src", "src", "0"), "block"),
        (0, ("RPUSH", "src", "x", "y")),
        (1, "read"),
        (2, "read"),
        (3, "read"),
        (0, ("LRANGE", "src", "0", "-1")),
        (0, ("EXISTS", "dst")),
    ],
    "pipeline": [
        (1, ("PIPE", ("SET", "flag", "1"), ("BLPOP", "p", "0"), ("INCR", "flag"), ("GET", "flag")), "block"),
        (1, "read"),
        (0, ("GET", "flag")),
        (0, ("RPUSH", "p", "v")),
        (1, "read"),
        (1, "read"),
        (1, "read"),
    ],
    "writer_pipeline": [
        (1, ("BLPOP", "w", "0"), "block"),
        (0, ("PIPE", ("RPUSH", "w", "a"), ("LPOP", "w"), ("RPUSH", "w", "b"))),
        (1, "read"),
        (0, ("LRANGE", "w", "0", "-1")),
    ],
    "multi": [
        (1, ("BLPOP", "m", "0"), "block"),
        (0, ("MULTI",)),
        (0, ("RPUSH", "m", "a")),
        (0, ("LPOP", "m")),
        (0, ("RPUSH", "m", "b", "c")),
        (0, ("EXEC",)),
        (1, "read"),
        (0, ("LRANGE", "m", "0", "-1")),
        (0, ("MULTI",)),
        (0, ("BLPOP", "none", "0")),
        (0, ("BLMOVE", "none", "m", "LEFT", "LEFT", "0")),
        (0, ("EXEC",)),
    ],
    "types": [
        (1, ("BLPOP", "k", "0"), "block"),
        (2, ("BLMOVE", "s2", "str", "LEFT", "LEFT", "0"), "block"),
        (0, ("SET", "k", "string")),
        (0, ("DEL", "k")),
        (0, ("SET", "str", "x")),
        (0, ("RPUSH", "s2", "v")),
        (2, "read"),
        (0, ("LRANGE", "s2", "0", "-1")),
        (0, ("RPUSH", "k", "z")),
        (1, "read"),
    ],
    "blmpop": [
        (1, ("BLMPOP", "0", "2", "x", "y", "RIGHT", "COUNT", "2"), "block"),
        (2, ("BLMPOP", "0", "1", "y", "LEFT"), "block"),
        (0, ("RPUSH", "y", "1", "2", "3")),
        (1, "read"),
        (2, "read"),
        (0, ("EXISTS", "y")),
    ],
    "unblock": [
        (1, ("BLPOP", "u", "0"), "block"),
        (0, ("CLIENT", "UNBLOCK", "{1}", "ERROR")),
        (1, "read"),
        (1, ("BLMOVE", "u", "v", "LEFT", "LEFT", "0"), "block"),
        (0, ("CLIENT", "UNBLOCK", "{1}", "TIMEOUT")),
        (1, "read"),
        (0, ("CLIENT", "UNBLOCK", "{1}")),
        (1, ("BLPOP", "u", "0.01")),
        (1, ("BLMOVE", "u", "v", "LEFT", "LEFT", "0.01")),
        (1, ("BLMPOP", "0.01", "1", "u", "LEFT")),
    ],
    "xread": [
        (1, ("XREAD", "BLOCK", "0", "STREAMS", "s", "$"), "block"),
        (2, ("XREAD", "BLOCK", "0", "COUNT", "1", "STREAMS", "t", "s", "0", "0"), "block"),
        (0, ("XADD", "s", "1-1", "f", "v")),
        (1, "read"),
        (2, "read"),
        (1, ("XREAD", "BLOCK", "0", "STREAMS", "s", "1-1"), "block"),
        (0, ("PIPE", ("XADD", "s", "2-1", "a", "b"), ("XADD", "s", "3-1", "c", "d"))),
        (1, "read"),
        (1, ("XREAD", "BLOCK", "5", "STREAMS", "s", "$")),
        (1, ("XREAD", "BLOCK", "0", "STREAMS", "s", "0")),
    ],
    "xreadgroup": [
        (0, ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")),
        (1, ("XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "s", ">"), "block"),
        (2, ("XREADGROUP", "GROUP", "g", "c2", "BLOCK", "0", "COUNT", "1", "STREAMS", "s", ">"), "block"),
        (3, ("XREADGROUP", "GROUP", "g", "c3", "BLOCK", "0", "NOACK", "STREAMS", "s", ">"), "block"),
        (0, ("XADD", "s", "1-1", "f", "v")),
        (1, "read"),
        (0, ("PIPE", ("XADD", "s", "2-1", "f", "v"), ("XADD", "s", "3-1", "f", "v"))),
        (2, "read"),
        (3, "read"),
        (0, ("XPENDING", "s", "g")),
        (0, ("XINFO", "GROUPS", "s")),
        (1, ("XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "s", "0")),
        (1, ("XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "s", ">"), "block"),
        (0, ("XGROUP", "DESTROY", "s", "g")),
        (1, "read"),
    ],
    "zset": [
        (1, ("BZPOPMIN", "z", "0"), "block"),
        (2, ("BZPOPMAX", "nothing", "z", "0"), "block"),
        (3, ("BZMPOP", "0", "2", "y", "z", "MAX", "COUNT", "2"), "block"),
        (0, ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5.5", "e")),
        (1, "read"),
        (2, "read"),
        (3, "read"),
        (0, ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
        (1, ("BZPOPMIN", "z", "0")),
        (1, ("BZMPOP", "0.01", "1", "none", "MIN")),
        (1, ("BZPOPMAX", "none", "0.01")),
    ],
    "disconnect": [
        (1, ("BLPOP", "dc", "0"), "block"),
        (2, ("BLPOP", "dc", "0"), "block"),
        (1, "close"),
        (0, ("RPUSH", "dc", "v1", "v2")),
        (2, "read"),
        (0, ("LRANGE", "dc", "0", "-1")),
    ],
}


def _blocked_count(client: RawClient) -> int:
    info = split_replies(client.call("INFO", "clients"))[0]
    for line in info.split(b"\r\n"):
        if line.startswith(b"blocked_clients:"):
            return int(line.split(b":")[1])
    raise AssertionError("no blocked_clients in INFO")


def _play(address: tuple[str, int], steps: list[tuple], hello: int | None) -> list[bytes]:
    clients = [RawClient(address) for _ in range(4)]
    monitor = RawClient(address)  # asks INFO how many clients are blocked
    ids = {}
    out: list[bytes] = []
    blocked = 0
    try:
        for n, c in enumerate(clients):
            ids[n] = c.call("CLIENT", "ID")[1:-2].decode()
            if hello is not None:
                c.call("HELLO", hello)
        clients[0].call("FLUSHALL")
        for step in steps:
            c = clients[step[0]]
            action = step[1]
            if action == "read":
                out.append(c.reply())
                blocked = _blocked_count(monitor)
                continue
            if action == "close":
                c.close()
                blocked -= 1
                deadline = time.monotonic() + 10
                while _blocked_count(monitor) != blocked:
                    assert time.monotonic() < deadline
                    time.sleep(0.005)
                continue
            if action[0] == "PIPE":
                c.send(b"".join(cmd(*part) for part in action[1:]))
                if len(step) == 2:
                    out += [c.reply() for _ in action[1:]]
                    continue
            else:
                c.send(cmd(*(ids[int(a[1:-1])] if a.startswith("{") else a for a in action)))
            if len(step) > 2:
                blocked += 1
                deadline = time.monotonic() + 10
                while _blocked_count(monitor) != blocked:
                    assert time.monotonic() < deadline, f"{action} did not block"
                    time.sleep(0.005)
            else:
                out.append(c.reply())
    finally:
        for c in [*clients, monitor]:
            c.close()
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    tmp: Path = tmp_path_factory.mktemp("diff")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_real_redis(
    both: tuple[tuple[str, int], tuple[str, int]], name: str, hello: int | None
) -> None:
    real, ours = both
    expected = _play(real, SCENARIOS[name], hello)
    assert _play(ours, SCENARIOS[name], hello) == expected


# Errors, edge cases and the non-blocking paths, one connection, byte for byte.
CORPUS: list[tuple[str, ...]] = [
    ("BLPOP",),
    ("BLPOP", "k"),
    ("BLPOP", "k", "x"),
    ("BLPOP", "k", "-1"),
    ("BLPOP", "k", "0.001"),
    ("BLPOP", "k", "inf"),
    ("BLPOP", "k", "nan"),
    ("BLPOP", "k", "1e400"),
    ("RPUSH", "k", "a", "b", "c"),
    ("BLPOP", "k", "0"),
    ("BRPOP", "k", "0"),
    ("BRPOP", "nokey", "k", "0"),
    ("SET", "s", "x"),
    ("BLPOP", "s", "k", "0"),
    ("BLPOP", "nokey", "s", "0"),
    ("BLPOP", "k", "x"),
    ("RPUSH", "k", "a", "b", "c"),
    ("BLMOVE", "k", "d", "LEFT", "RIGHT", "0"),
    ("BLMOVE", "k", "d", "left", "middle", "0"),
    ("BLMOVE", "k", "d", "UP", "RIGHT", "x"),
    ("BLMOVE", "k", "s", "LEFT", "RIGHT", "0"),
    ("BLMOVE", "k", "s", "LEFT", "RIGHT", "x"),
    ("BLMOVE", "k", "d", "LEFT", "RIGHT", "-1"),
    ("BLMOVE", "k", "d", "LEFT", "RIGHT"),
    ("BLMOVE", "nokey", "d", "LEFT", "RIGHT", "0.001"),
    ("BLMOVE", "s", "d", "LEFT", "RIGHT", "0"),
    ("BRPOPLPUSH", "k", "d", "0"),
    ("BRPOPLPUSH", "k", "d", "-1"),
    ("BRPOPLPUSH", "nokey", "d", "0.001"),
    ("BRPOPLPUSH", "k", "s", "0"),
    ("LRANGE", "d", "0", "-1"),
    ("BLMPOP", "0"),
    ("BLMPOP", "0", "1"),
    ("BLMPOP", "0", "1", "d"),
    ("BLMPOP", "0", "1", "d", "LEFT"),
    ("BLMPOP", "0", "0", "d", "LEFT"),
    ("BLMPOP", "0", "x", "d", "LEFT"),
    ("BLMPOP", "0", "-1", "d", "LEFT"),
    ("BLMPOP", "0", "2", "d", "LEFT"),
    ("BLMPOP", "0", "2", "nokey", "d", "RIGHT", "COUNT", "10"),
    ("RPUSH", "d", "1", "2", "3"),
    ("BLMPOP", "0", "1", "d", "LEFT", "COUNT", "0"),
    ("BLMPOP", "0", "1", "d", "LEFT", "COUNT", "2", "COUNT", "2"),
    ("BLMPOP", "0", "1", "d", "LEFT", "COUNT"),
    ("BLMPOP", "0", "1", "d", "LEFT", "FOO"),
    ("BLMPOP", "x", "1", "d", "LEFT"),
    ("BLMPOP", "-1", "1", "d", "LEFT"),
    ("BLMPOP", "-1", "1", "d", "UP"),
    ("BLMPOP", "0", "1", "d", "UP"),
    ("BLMPOP", "0", "1", "s", "LEFT"),
    ("BLMPOP", "0", "1", "d", "RIGHT", "COUNT", "2"),
    ("BLMPOP", "0.001", "1", "nokey", "RIGHT", "COUNT", "2"),
    ("MULTI",),
    ("BLPOP", "nokey", "0"),
    ("BLMOVE", "nokey", "x", "LEFT", "LEFT", "0"),
    ("BLMPOP", "0", "1", "nokey", "LEFT"),
    ("BRPOPLPUSH", "nokey", "x", "0"),
    ("EXEC",),
    ("BZPOPMIN",),
    ("BZPOPMIN", "z", "-1"),
    ("BZPOPMIN", "z", "x"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
    ("BZPOPMIN", "z", "0"),
    ("BZPOPMAX", "nokey", "z", "0"),
    ("BZPOPMIN", "s", "z", "0"),
    ("BZPOPMIN", "nokey", "0.001"),
    ("BZMPOP", "0"),
    ("BZMPOP", "0", "1", "z", "MIN"),
    ("BZMPOP", "0", "0", "z", "MIN"),
    ("BZMPOP", "0", "1", "z", "LEFT"),
    ("BZMPOP", "x", "1", "z", "MIN"),
    ("BZMPOP", "-1", "1", "z", "MIN"),
    ("BZMPOP", "0", "1", "s", "MIN"),
    ("BZMPOP", "0.001", "1", "nokey", "MAX", "COUNT", "3"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
    ("BZMPOP", "0", "2", "nokey", "z", "MAX", "COUNT", "10"),
    ("MULTI",),
    ("BZPOPMIN", "nokey", "0"),
    ("BZMPOP", "0", "1", "nokey", "MIN"),
    ("EXEC",),
    ("CLIENT", "UNBLOCK"),
    ("CLIENT", "UNBLOCK", "x"),
    ("CLIENT", "UNBLOCK", "999999"),
    ("CLIENT", "UNBLOCK", "999999", "TIMEOUT"),
    ("CLIENT", "UNBLOCK", "999999", "foo"),
    ("CLIENT", "UNBLOCK", "x", "foo"),
    ("CLIENT", "UNBLOCK", "1", "error", "x"),
]


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_corpus_matches_real_redis(both: tuple[tuple[str, int], tuple[str, int]], hello: int | None) -> None:
    results = []
    for address in both:
        client = RawClient(address)
        if hello is not None:
            client.call("HELLO", hello)
        client.call("FLUSHALL")
        results.append([client.call(*c) for c in CORPUS])
        client.close()
    mismatches = [(c, e, g) for c, e, g in zip(CORPUS, *results, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches)
