"""DUMP and RESTORE: payloads cross between a real redis-server 7.0 and ours, both ways, for every type.

A value made on redis-server (in each of its encodings) is DUMPed there and
RESTOREd here, and ours is DUMPed and RESTOREd there; the value read back
(elements, scores, stream entries, ids, counters, consumer groups and their
pending entries) must be the same on both.  Mutated payloads get
redis-server's errors and never hurt the server.
"""

from __future__ import annotations

import contextlib
import shutil
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.services.redis.rdb import BadPayloadError, crc64, dump_payload, load_payload, lzf_decompress, payload_ok
from linechat.testing import ServiceHarness, serve
from redis_wire import cmd, real_redis

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """redis-py clients of a real redis-server and of ours."""
    tmp: Path = tmp_path_factory.mktemp("dump")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        theirs = redis.Redis(*real, protocol=2, socket_timeout=10)
        ours = redis.Redis(*srv.address(), protocol=2, socket_timeout=10)
        yield theirs, ours
        theirs.close()
        ours.close()


def _fill(c: redis.Redis) -> None:
    """One key of each type and encoding redis-server 7.0 has."""
    c.set("str", "hello")
    c.set("int", "12345")
    c.set("bigint", "-9223372036854775808")
    c.set("long", "x" * 1000)  # LZF-compressed by redis-server
    c.set("bin", bytes(range(256)) * 3)
    c.set("empty", "")
    c.rpush("list", "a", "1", "-5000", "99999999999", "é")
    c.rpush("biglist", *[str(i) for i in range(600)], "a" * 100, "b" * 9000, "c" * 70000)
    c.sadd("intset", 1, 2, 3, -4, 2**40)
    c.sadd("set", "a", "b", "17")
    c.sadd("bigset", *range(1000))
    c.hset("hash", mapping={"f": "v", "n": "1"})
    c.hset("bighash", mapping={f"f{i}": "v" * i for i in range(200)})
    c.zadd("zset", {"a": 1, "b": 2.5, "c": float("inf"), "d": -3, "e": float("-inf"), "f": 0.1})
    c.zadd("bigzset", {f"m{i}": i / 3 for i in range(300)})
    for i in range(250):
        c.xadd("stream", {"a": i, "b": "x"} if i % 7 else {"other": i})
    c.xdel("stream", c.xrange("stream", count=3)[1][0])
    c.xgroup_create("stream", "g", id="0")
    c.xreadgroup("g", "c1", {"stream": ">"}, count=5)
    c.xreadgroup("g", "c2", {"stream": ">"}, count=2)
    c.xack("stream", "g", c.xrange("stream", count=1)[0][0])
    c.xgroup_create("stream", "g2", id="$")
    c.xgroup_createconsumer("stream", "g2", "idle")
    c.xgroup_create("emptystream", "g", id="$", mkstream=True)
    c.xadd("trimmed", {"k": "v"}, id="5-1")
    c.xadd("trimmed", {"k": "w"}, id="7-3")
    c.xdel("trimmed", "5-1", "7-3")


def _view(c: redis.Redis, key: str) -> Any:
    """Everything a client can read of a key, timings aside."""
    kind = c.type(key).decode()
    if kind == "string":
        return c.get(key)
    if kind == "list":
        return c.lrange(key, 0, -1)
    if kind == "set":
        return sorted(c.smembers(key))
    if kind == "hash":
        return sorted(c.hgetall(key).items())
    if kind == "zset":
        return c.zrange(key, 0, -1, withscores=True)
    assert kind == "stream", kind
    info = c.xinfo_stream(key)
    fields = ("length", "last-generated-id", "max-deleted-entry-id", "entries-added", "recorded-first-entry-id")
    groups = []
    for g in c.xinfo_groups(key):
        pending = c.xpending_range(key, g["name"], "-", "+", 1000)
        consumers = sorted((x["name"], x["pending"]) for x in c.xinfo_consumers(key, g["name"]))
        groups.append(
            (
                g["name"],
                g["last-delivered-id"],
                g["entries-read"],
                g["lag"],
                [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending],
                consumers,
            )
        )
    return c.xrange(key), [info[f] for f in fields], sorted(groups)


@needs_redis
def test_payloads_cross_both_ways(both: tuple[redis.Redis, redis.Redis]) -> None:
    theirs, ours = both
    theirs.flushall()
    ours.flushall()
    _fill(theirs)
    keys = sorted(k.decode() for k in theirs.keys("*"))
    assert len(keys) == 18
    for key in keys:
        payload = theirs.dump(key)
        assert payload is not None
        assert ours.restore(key, 0, payload)
        assert _view(ours, key) == _view(theirs, key), key
        back = ours.dump(key)
        assert theirs.restore(key + ":back", 0, back)
        assert _view(theirs, key + ":back") == _view(theirs, key), key
        # And ours reads its own payloads.
        assert ours.restore(key + ":again", 0, back)
        assert _view(ours, key + ":again") == _view(theirs, key), key
    # redis-server chose its compact encodings for what we sent as plain collections.
    assert theirs.object("encoding", "intset:back") == b"intset"
    assert theirs.object("encoding", "hash:back") == b"listpack"
    assert theirs.object("encoding", "zset:back") == b"listpack"


@needs_redis
def test_restore_options_match_redis(both: tuple[redis.Redis, redis.Redis]) -> None:
    theirs, ours = both
    for c in (theirs, ours):
        c.flushall()
        c.set("src", "value")
    payload = theirs.dump("src")
    results = []
    for c in (theirs, ours):
        out = []
        for args in (
            ("src", 0, payload),  # BUSYKEY
            ("src", 0, payload, "REPLACE"),
            ("k", 100000, payload),
            ("k2", 1, payload, "ABSTTL"),  # long past: not created
            ("src", 1, payload, "ABSTTL", "REPLACE"),  # replaced by an expired key: deleted
            ("k3", 0, payload, "IDLETIME", 1000),
            ("k4", 0, payload, "FREQ", 5),
            ("k5", 0, payload, "FREQ", 256),
            ("k5", 0, payload, "IDLETIME", -1),
            ("k5", 0, payload, "IDLETIME", 1, "FREQ", 1),
            ("k5", 0, payload, "IDLETIME"),
            ("k5", 0, payload, "BOGUS"),
            ("k5", -1, payload),
            ("k5", "x", payload),
            ("k5", 0, b"short"),
            ("k5", 0, payload[:-1] + bytes([payload[-1] ^ 1])),
            ("k5", 0, payload[:-10] + b"\x0b\x00" + payload[-8:]),  # RDB version 11
        ):
            try:
                out.append(c.execute_command("RESTORE", *args))
            except redis.ResponseError as exc:
                out.append(str(exc))
        out += [c.object("idletime", "k3") >= 1000, c.exists("src", "k", "k2", "k3", "k4"), c.pttl("k") > 90000]
        out.append(c.dump("nosuch"))
        results.append(out)
    assert results[0] == results[1]
    assert results[0][0] == "BUSYKEY Target key name already exists."


def _payloads() -> list[bytes]:
    values: list[Any] = [
        b"hello",
        b"123",
        deque([b"a", b"12", b"x" * 300]),
        {b"a", b"b"},
        {b"f": b"v"},
    ]
    return [dump_payload(v) for v in values]


def test_crc_is_redis_crc64() -> None:
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA  # the check value of CRC-64/REDIS


def test_lzf_refuses_bad_streams() -> None:
    assert lzf_decompress(b"\x02abc\x20\x02", 6) == b"abcabc"
    assert lzf_decompress(b"\x00a\xe0\x01\x00", 11) == b"a" * 11  # an overlapping copy
    for data, size in ((b"\x05ab", 6), (b"\x20\x00", 3), (b"\x00a\xe0", 9), (b"\x00a", 5)):
        with pytest.raises(BadPayloadError):
            lzf_decompress(data, size)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, 4),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 40),
    fix_crc=st.booleans(),
)
def test_mutated_payloads_never_crash(which: int, edits: list[tuple[int, int]], cut: int, fix_crc: bool) -> None:
    """Bytes changed, the end cut, the checksum fixed up or not: an error reply or a value, never a crash."""
    payload = bytearray(_payloads()[which])
    body = payload[:-10]
    for at, byte in edits:
        if body:
            body[at % len(body)] = byte
    body = body[: max(1, len(body) - cut)]
    mutated = bytes(body) + payload[-10:-8]
    mutated += (crc64(mutated) if fix_crc else int.from_bytes(payload[-8:], "little")).to_bytes(8, "little")
    if payload_ok(mutated):
        with contextlib.suppress(BadPayloadError):
            load_payload(mutated)
    with ServiceHarness(RedisService, appendonly=False) as h:
        client = h.connect()
        client.send(cmd("RESTORE", "k", "0", mutated) + cmd("DUMP", "k") + cmd("PING"))
        reply = client.read()
        assert reply.endswith(b"+PONG\r\n")
        assert reply.startswith(
            (b"+OK\r\n$", b"-ERR DUMP payload version or checksum are wrong\r\n", b"-ERR Bad data format\r\n")
        ), reply


def test_restore_is_replayed_from_the_aof_with_its_deadline(tmp_path: Path) -> None:
    payload = dump_payload({b"f": b"v"})
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(cmd("RESTORE", "h", "100000", payload) + cmd("PEXPIRETIME", "h"))
        first = client.read()
        assert first.startswith(b"+OK\r\n:")
        h.service.stop()
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(cmd("HGETALL", "h") + cmd("PEXPIRETIME", "h"))
        assert client.read() == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n" + first[5:]
