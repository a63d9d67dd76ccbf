"""List, hash, set and key commands beyond the basics, against a real redis-server: replies byte for byte.

Random commands (SPOP, SRANDMEMBER, HRANDFIELD) are compared where the
answer is certain (a one-member collection, missing keys, errors); set
replies, whose order is the server's hash order, are compared sorted.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.services.redis import RedisService
from linechat.testing import serve
from redis_wire import RawClient, real_redis, split_replies

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

Address = tuple[str, int]

CORPUS: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    ("SET", "str", "v"),
    # lists
    ("RPUSH", "l", "a", "b", "c", "b", "a", "b"),
    ("LPUSHX", "l", "x", "y"),
    ("RPUSHX", "l", "z"),
    ("LPUSHX", "nolist", "x"),
    ("RPUSHX", "nolist", "x"),
    ("EXISTS", "nolist"),
    ("LPUSHX", "str", "x"),
    ("LPUSHX", "l"),
    ("LRANGE", "l", "0", "-1"),
    ("LINSERT", "l", "BEFORE", "b", "B"),
    ("LINSERT", "l", "after", "z", "Z"),
    ("LINSERT", "l", "AFTER", "nosuch", "q"),
    ("LINSERT", "l", "MIDDLE", "b", "q"),
    ("LINSERT", "nolist", "BEFORE", "b", "q"),
    ("LINSERT", "str", "BEFORE", "b", "q"),
    ("LINSERT", "nolist", "MIDDLE", "b", "q"),
    ("LRANGE", "l", "0", "-1"),
    ("LPOS", "l", "b"),
    ("LPOS", "l", "b", "RANK", "2"),
    ("LPOS", "l", "b", "RANK", "-1"),
    ("LPOS", "l", "b", "RANK", "-2", "COUNT", "0"),
    ("LPOS", "l", "b", "COUNT", "0"),
    ("LPOS", "l", "b", "COUNT", "2"),
    ("LPOS", "l", "b", "COUNT", "2", "MAXLEN", "4"),
    ("LPOS", "l", "b", "MAXLEN", "2"),
    ("LPOS", "l", "nosuch"),
    ("LPOS", "l", "nosuch", "COUNT", "3"),
    ("LPOS", "l", "b", "RANK", "0"),
    ("LPOS", "l", "b", "RANK", "x"),
    ("LPOS", "l", "b", "RANK", "-9223372036854775808"),
    ("LPOS", "l", "b", "COUNT", "-1"),
    ("LPOS", "l", "b", "COUNT", "x"),
    ("LPOS", "l", "b", "MAXLEN", "-1"),
    ("LPOS", "l", "b", "COUNT"),
    ("LPOS", "l", "b", "BOGUS", "1"),
    ("LPOS", "nolist", "b"),
    ("LPOS", "nolist", "b", "COUNT", "1"),
    ("LPOS", "str", "b"),
    ("RPUSH", "src", "1", "2", "3"),
    ("LMOVE", "src", "dst", "LEFT", "RIGHT"),
    ("LMOVE", "src", "dst", "right", "left"),
    ("LRANGE", "dst", "0", "-1"),
    ("LMOVE", "src", "src", "LEFT", "RIGHT"),
    ("LRANGE", "src", "0", "-1"),
    ("LMOVE", "src", "dst", "UP", "LEFT"),
    ("LMOVE", "nolist", "dst", "LEFT", "LEFT"),
    ("LMOVE", "nolist", "dst", "UP", "LEFT"),
    ("LMOVE", "src", "str", "LEFT", "LEFT"),
    ("LMOVE", "str", "dst", "LEFT", "LEFT"),
    ("LRANGE", "src", "0", "-1"),
    ("RPOPLPUSH", "src", "dst"),
    ("RPOPLPUSH", "src", "fresh"),
    ("EXISTS", "src"),
    ("RPOPLPUSH", "src", "dst"),
    ("RPOPLPUSH", "dst", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("LRANGE", "fresh", "0", "-1"),
    ("RPUSH", "m1", "a", "b", "c"),
    ("LMPOP", "2", "nolist", "m1", "LEFT"),
    ("LMPOP", "2", "nolist", "m1", "RIGHT", "COUNT", "5"),
    ("EXISTS", "m1"),
    ("LMPOP", "1", "m1", "LEFT"),
    ("LMPOP", "0", "m1", "LEFT"),
    ("LMPOP", "x", "m1", "LEFT"),
    ("LMPOP", "2", "m1", "LEFT"),
    ("LMPOP", "1", "m1", "UP"),
    ("LMPOP", "1", "m1", "LEFT", "COUNT", "0"),
    ("LMPOP", "1", "m1", "LEFT", "COUNT"),
    ("LMPOP", "1", "m1", "LEFT", "BOGUS", "1"),
    ("LMPOP", "1", "str", "LEFT"),
    ("LMPOP", "1", "m1"),
    ("LSET", "dst", "0", "new"),
    ("LSET", "dst", "99", "new"),
    ("LSET", "nolist", "0", "new"),
    # hashes
    ("HSET", "h", "f", "1.5", "s", "hello", "i", "10", "t", "text"),
    ("HINCRBYFLOAT", "h", "f", "0.1"),
    ("HINCRBYFLOAT", "h", "i", "-2.5"),
    ("HINCRBYFLOAT", "h", "new", "3"),
    ("HINCRBYFLOAT", "h", "new", "3e3"),
    ("HINCRBYFLOAT", "h", "t", "1"),
    ("HINCRBYFLOAT", "h", "f", "x"),
    ("HINCRBYFLOAT", "h", "f", "inf"),
    ("HINCRBYFLOAT", "h", "f", "1e5000"),
    ("HINCRBYFLOAT", "nohash", "f", "1.25"),
    ("HINCRBYFLOAT", "str", "f", "1"),
    ("HGETALL", "h"),
    ("HSTRLEN", "h", "s"),
    ("HSTRLEN", "h", "nosuch"),
    ("HSTRLEN", "nohash", "s"),
    ("HSTRLEN", "str", "s"),
    ("HSETNX", "h", "s", "x"),
    ("HSETNX", "h", "u", "x"),
    ("HSET", "one", "k", "v"),
    ("HRANDFIELD", "one"),
    ("HRANDFIELD", "one", "1"),
    ("HRANDFIELD", "one", "5", "WITHVALUES"),
    ("HRANDFIELD", "one", "-3", "WITHVALUES"),
    ("HRANDFIELD", "one", "-2"),
    ("HRANDFIELD", "one", "0"),
    ("HRANDFIELD", "nohash"),
    ("HRANDFIELD", "nohash", "3"),
    ("HRANDFIELD", "one", "x"),
    ("HRANDFIELD", "one", "1", "BOGUS"),
    ("HRANDFIELD", "one", "1", "WITHVALUES", "x"),
    ("HRANDFIELD", "one", "-9223372036854775807", "WITHVALUES"),
    ("HRANDFIELD", "str"),
    # sets
    ("SADD", "s1", "a", "b", "c", "d"),
    ("SADD", "s2", "c", "d", "e"),
    ("SADD", "s3", "d", "x"),
    ("SINTER", "s1", "s2"),
    ("SINTER", "s1", "s2", "s3"),
    ("SINTER", "s1", "nokey"),
    ("SINTER", "nokey", "str"),
    ("SINTER", "s1", "str"),
    ("SUNION", "s1", "s2", "nokey"),
    ("SUNION", "nokey"),
    ("SUNION", "s1", "str"),
    ("SDIFF", "s1", "s2"),
    ("SDIFF", "s1", "s2", "s3"),
    ("SDIFF", "nokey", "s1"),
    ("SDIFF", "s1", "str"),
    ("SINTERSTORE", "out", "s1", "s2"),
    ("SMEMBERS", "out"),
    ("SUNIONSTORE", "out", "s1", "s3"),
    ("SMEMBERS", "out"),
    ("SDIFFSTORE", "out", "s1", "s2"),
    ("SMEMBERS", "out"),
    ("SINTERSTORE", "out", "s1", "nokey"),
    ("EXISTS", "out"),
    ("SINTERSTORE", "str2", "s1", "str"),
    ("SDIFFSTORE", "s1copy", "s1"),
    ("SINTERCARD", "2", "s1", "s2"),
    ("SINTERCARD", "3", "s1", "s2", "s3"),
    ("SINTERCARD", "2", "s1", "s2", "LIMIT", "1"),
    ("SINTERCARD", "2", "s1", "s2", "LIMIT", "0"),
    ("SINTERCARD", "2", "s1", "nokey"),
    ("SINTERCARD", "0", "s1"),
    ("SINTERCARD", "x", "s1"),
    ("SINTERCARD", "3", "s1", "s2"),
    ("SINTERCARD", "2", "s1", "s2", "LIMIT", "-1"),
    ("SINTERCARD", "2", "s1", "s2", "LIMIT"),
    ("SINTERCARD", "2", "s1", "s2", "BOGUS"),
    ("SINTERCARD", "1", "str"),
    ("SMISMEMBER", "s1", "a", "nosuch", "d"),
    ("SMISMEMBER", "nokey", "a"),
    ("SMISMEMBER", "str", "a"),
    ("SMOVE", "s1", "s2", "a"),
    ("SMOVE", "s1", "s2", "a"),
    ("SMOVE", "s1", "s1", "b"),
    ("SMOVE", "s1", "s1", "zz"),
    ("SMOVE", "nokey", "s2", "a"),
    ("SMOVE", "s1", "str", "b"),
    ("SMOVE", "str", "s1", "b"),
    ("SMOVE", "s3", "newset", "x"),
    ("SMOVE", "s3", "newset", "d"),
    ("EXISTS", "s3"),
    ("SMEMBERS", "newset"),
    ("SADD", "single", "only"),
    ("SRANDMEMBER", "single"),
    ("SRANDMEMBER", "single", "3"),
    ("SRANDMEMBER", "single", "-3"),
    ("SRANDMEMBER", "single", "0"),
    ("SRANDMEMBER", "nokey"),
    ("SRANDMEMBER", "nokey", "2"),
    ("SRANDMEMBER", "single", "x"),
    ("SRANDMEMBER", "single", "1", "2"),
    ("SRANDMEMBER", "single", "-9223372036854775808"),
    ("SRANDMEMBER", "str"),
    ("SPOP", "single", "0"),
    ("SPOP", "single"),
    ("EXISTS", "single"),
    ("SPOP", "single"),
    ("SPOP", "single", "2"),
    ("SADD", "single", "only"),
    ("SPOP", "single", "5"),
    ("SPOP", "single", "-1"),
    ("SPOP", "single", "x"),
    ("SPOP", "single", "1", "2"),
    ("SPOP", "str"),
    # keys
    ("SET", "k", "val"),
    ("PEXPIREAT", "k", "4102444800123"),
    ("COPY", "k", "k2"),
    ("GET", "k2"),
    ("PEXPIRETIME", "k2"),
    ("EXPIRETIME", "k2"),
    ("COPY", "k", "k2"),
    ("COPY", "k", "k2", "REPLACE"),
    ("COPY", "k", "k"),
    ("COPY", "k", "k", "DB", "0"),
    ("COPY", "k", "k", "DB", "1"),
    ("COPY", "nokey", "k3"),
    ("COPY", "k", "k3", "DB", "16"),
    ("COPY", "k", "k3", "DB", "x"),
    ("COPY", "k", "k3", "BOGUS"),
    ("COPY", "k", "k3", "DB"),
    ("COPY", "l", "lcopy"),
    ("LPUSH", "lcopy", "extra"),
    ("LLEN", "l"),
    ("LLEN", "lcopy"),
    ("COPY", "h", "hcopy"),
    ("HGETALL", "hcopy"),
    ("COPY", "s2", "scopy"),
    ("SMEMBERS", "scopy"),
    ("ZADD", "z", "1", "a", "2", "b"),
    ("COPY", "z", "zcopy"),
    ("ZADD", "zcopy", "3", "c"),
    ("ZCARD", "z"),
    ("ZRANGE", "zcopy", "0", "-1", "WITHSCORES"),
    ("SELECT", "1"),
    ("GET", "k"),
    ("PEXPIRETIME", "k"),
    ("SELECT", "0"),
    ("TOUCH", "k", "nokey", "h", "k"),
    ("TOUCH",),
    ("EXPIRETIME", "nokey"),
    ("EXPIRETIME", "h"),
    ("PEXPIRETIME", "nokey"),
    ("PEXPIRETIME", "h"),
    ("SET", "n", "123"),
    ("SET", "big", "12345"),
    ("SET", "neg", "-5"),
    ("SET", "short", "hello"),
    ("SET", "long", "x" * 45),
    ("SET", "e44", "y" * 44),
    ("SET", "lead0", "0123"),
    ("SADD", "ints", "1", "2", "3"),
    ("HSET", "bighash", "f", "z" * 65),
    ("OBJECT", "ENCODING", "n"),
    ("OBJECT", "ENCODING", "neg"),
    ("OBJECT", "ENCODING", "short"),
    ("OBJECT", "ENCODING", "long"),
    ("OBJECT", "ENCODING", "e44"),
    ("OBJECT", "ENCODING", "lead0"),
    ("OBJECT", "ENCODING", "l"),
    ("OBJECT", "ENCODING", "h"),
    ("OBJECT", "ENCODING", "bighash"),
    ("OBJECT", "ENCODING", "ints"),
    ("OBJECT", "ENCODING", "s2"),
    ("OBJECT", "ENCODING", "z"),
    ("OBJECT", "ENCODING", "nokey"),
    ("OBJECT", "REFCOUNT", "n"),
    ("OBJECT", "REFCOUNT", "big"),
    ("OBJECT", "REFCOUNT", "short"),
    ("OBJECT", "REFCOUNT", "l"),
    ("OBJECT", "REFCOUNT", "nokey"),
    ("OBJECT", "FREQ", "n"),
    ("OBJECT", "FREQ", "nokey"),
    ("OBJECT", "IDLETIME", "nokey"),
    ("OBJECT", "IDLETIME", "str"),
    ("OBJECT", "HELP"),
    ("OBJECT", "ENCODING"),
    ("OBJECT", "ENCODING", "a", "b"),
    ("OBJECT", "BOGUS", "n"),
    ("OBJECT",),
]

# Replies whose element order is the server's hash order: compare them sorted.
UNORDERED = {"SINTER", "SUNION", "SDIFF", "SMEMBERS", "HGETALL"}


def _normalise(command: tuple[str, ...], reply: bytes) -> bytes | list[bytes]:
    if command[0] in UNORDERED and reply[:1] in (b"*", b"~", b"%"):
        head = reply.index(b"\r\n") + 2
        return [reply[:head], *sorted(split_replies(reply[head:]))]
    return reply


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Address, Address]]:
    """A real redis-server and ours, side by side."""
    tmp: Path = tmp_path_factory.mktemp("tdiff")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


def _run(address: Address, commands: list[tuple[str, ...]], hello: int | None) -> list[bytes | list[bytes]]:
    client = RawClient(address)
    try:
        if hello is not None:
            client.call("HELLO", hello)
        return [_normalise(c, client.call(*(a.encode("latin-1") for a in c))) for c in commands]
    finally:
        client.close()


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_type_commands_match_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    real, ours = both
    expected = _run(real, CORPUS, hello)
    got = _run(ours, CORPUS, hello)
    mismatches = [(c, e, g) for c, e, g in zip(CORPUS, expected, got, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:20])
