"""redis-py over loopback: sharded pub/sub, MONITOR, DUMP/RESTORE, SLOWLOG as the library uses them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.fixture(params=["default", "resp2"])
def r(server: RunningServer, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """redis-py as users make it (RESP3) and asking for RESP2."""
    host, port = server.address()
    kwargs = {} if request.param == "default" else {"protocol": 2}
    client = redis.Redis(host=host, port=port, socket_timeout=10, **kwargs)  # type: ignore[arg-type]
    client.flushall()
    yield client
    client.close()


def _messages(pubsub: redis.client.PubSub, count: int) -> list[tuple[str, bytes, object]]:
    received: list[tuple[str, bytes, object]] = []
    deadline = time.monotonic() + 10
    while len(received) < count and time.monotonic() < deadline:
        message = pubsub.get_sharded_message(timeout=1.0)
        if message is not None:
            received.append((message["type"], message["channel"], message["data"]))
    return received


def test_redis_py_sharded_pubsub(r: redis.Redis) -> None:
    pubsub = r.pubsub()
    pubsub.ssubscribe("orders", "stock")
    assert _messages(pubsub, 2) == [("ssubscribe", b"orders", 1), ("ssubscribe", b"stock", 2)]
    assert r.pubsub_shardnumsub("orders", "nothing") == [(b"orders", 1), (b"nothing", 0)]
    assert sorted(r.pubsub_shardchannels()) == [b"orders", b"stock"]
    assert r.spublish("orders", "42") == 1
    assert r.publish("orders", "plain") == 0  # plain and shard channels are apart
    assert _messages(pubsub, 1) == [("smessage", b"orders", b"42")]
    pubsub.sunsubscribe("orders")
    assert _messages(pubsub, 1) == [("sunsubscribe", b"orders", 1)]
    assert r.spublish("orders", "late") == 0
    assert r.spublish("stock", "7") == 1
    assert _messages(pubsub, 1) == [("smessage", b"stock", b"7")]
    pubsub.close()
    deadline = time.monotonic() + 10
    while r.spublish("stock", "again") != 0:  # the server drops the subscription when it sees the close
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_redis_py_monitor(r: redis.Redis) -> None:
    with r.monitor() as monitor:
        r.set("watched", "value with spaces")
        r.incr("counter")
        seen = []
        while not seen or seen[-1][0] != "INCRBY counter 1":  # after the connection's own handshake (HELLO...)
            event = monitor.next_command()
            seen.append((event["command"], event["db"], event["client_type"]))
    assert seen[-2:] == [("SET watched value with spaces", 0, "tcp"), ("INCRBY counter 1", 0, "tcp")]


def test_redis_py_slowlog(r: redis.Redis) -> None:
    r.config_set("slowlog-log-slower-than", 0)
    try:
        r.slowlog_reset()
        r.client_setname("slow-client")
        r.set("a", "b")
        entries = r.slowlog_get(2)
        assert [e["command"] for e in entries] == [b"SET a b", b"CLIENT SETNAME slow-client"]  # newest first
        assert entries[0]["client_name"] == b"slow-client"
        assert entries[0]["duration"] >= 0
        assert r.slowlog_len() >= 2
    finally:
        r.config_set("slowlog-log-slower-than", 10000)


def test_a_monitor_that_does_not_read_is_cut_and_others_carry_on() -> None:
    """The monitor's queued lines pass the output hard limit: it is disconnected; memory stays bounded."""
    from linechat.testing import ServiceHarness
    from redis_wire import cmd

    with ServiceHarness(RedisService, appendonly=False, out_hard_limit=64 * 1024, out_soft_limit=None) as h:
        monitor = h.connect()
        monitor.send(cmd("MONITOR"))
        assert monitor.read() == b"+OK\r\n"
        monitor.stall()
        writer = h.connect()
        value = "v" * 1000
        for i in range(200):  # about 200 KB of monitor lines
            writer.send(cmd("SET", f"k{i}", value))
            assert writer.read() == b"+OK\r\n"
            if monitor.closed:
                break
        assert monitor.closed
        assert h.service.monitoring.monitors == []
        writer.send(cmd("GET", "k0"))
        assert writer.read() == b"$1000\r\n" + value.encode() + b"\r\n"


def test_redis_py_latency_monitor(r: redis.Redis) -> None:
    """A script that surely runs past 1 ms is recorded as a "command" latency event."""
    r.config_set("latency-monitor-threshold", 1)
    try:
        r.latency_reset()
        r.eval("local n = 0 for i = 1, 3000000 do n = n + i end return n", 0)
        latest = r.latency_latest()
        assert [event[0] for event in latest] == [b"command"]
        assert latest[0][2] >= 1 and latest[0][3] >= latest[0][2]
        history = r.latency_history("command")
        assert len(history) == 1 and history[0][1] >= 1
        doctor = r.execute_command("LATENCY", "DOCTOR")
        assert b"command: 1 latency spikes" in (doctor if isinstance(doctor, bytes) else str(doctor).encode())
        assert r.latency_reset("command", "nothing") == 1
        assert r.latency_latest() == []
    finally:
        r.config_set("latency-monitor-threshold", 0)


def test_redis_py_memory(r: redis.Redis) -> None:
    r.set("small", "x")
    r.set("large", "x" * 100_000)
    r.rpush("list", *range(1000))
    small, large = r.memory_usage("small"), r.memory_usage("large")
    assert small is not None and large is not None and large > 100_000 > small
    assert (r.memory_usage("list", samples=0) or 0) > 1000 * 30  # every element counted
    assert r.memory_usage("nothing") is None
    stats = r.memory_stats()
    assert stats["keys.count"] == 3 and "db.0" in stats
    assert r.memory_purge()


def test_debug_follows_enable_debug_command() -> None:
    from linechat.testing import ServiceHarness
    from redis_wire import cmd

    refused = b"-ERR DEBUG command not allowed."
    for setting, local, remote in (("no", False, False), ("yes", True, True), ("local", True, False)):
        with ServiceHarness(RedisService, appendonly=False, protected_mode=False, enable_debug_command=setting) as h:
            for peer, allowed in ((("127.0.0.1", 4000), local), (("192.0.2.7", 4000), remote)):
                client = h.connect(peer=peer)
                client.send(cmd("DEBUG", "ERROR", "LOADING fake\r\nmessage") + cmd("DEBUG", "SLEEP", "0"))
                reply = client.read()
                if allowed:
                    assert reply == b"-LOADING fake  message\r\n+OK\r\n"
                else:
                    assert reply.startswith(refused) and reply.count(refused) == 2
