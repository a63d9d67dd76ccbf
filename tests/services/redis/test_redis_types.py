"""Lists, hashes, sets and keys in memory: replay of the newer commands from the AOF, OBJECT IDLETIME on the clock."""

from __future__ import annotations

from pathlib import Path

from linechat.services.redis import RedisService
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies


def talk(client: MemoryClient, data: bytes) -> list[bytes]:
    client.send(data)
    return split_replies(client.read())


WRITES = (
    cmd("RPUSH", "l", "a", "b", "c", "d")
    + cmd("LMOVE", "l", "m", "LEFT", "RIGHT")
    + cmd("RPOPLPUSH", "l", "m")
    + cmd("LINSERT", "m", "BEFORE", "d", "x")
    + cmd("LPUSHX", "m", "first")
    + cmd("LMPOP", "1", "l", "RIGHT", "COUNT", "5")
    + cmd("HINCRBYFLOAT", "h", "f", "10.6")
    + cmd("HINCRBYFLOAT", "h", "f", "-5")
    + cmd("SADD", "s", "a", "b", "c", "d", "e")
    + cmd("SMOVE", "s", "t", "a")
    + cmd("SPOP", "s", "2")
    + cmd("SADD", "u", "a", "z")
    + cmd("SINTERSTORE", "i", "t", "u")
    + cmd("SET", "k", "v", "PX", "100000")
    + cmd("COPY", "k", "k2", "DB", "2")
)
CHECKS = (
    cmd("LRANGE", "m", "0", "-1")
    + cmd("EXISTS", "l")
    + cmd("HGET", "h", "f")
    + cmd("SCARD", "s")
    + cmd("SMEMBERS", "i")
    + cmd("SELECT", "2")
    + cmd("GET", "k2")
    + cmd("PEXPIRETIME", "k2")
)


def test_aof_replays_the_newer_commands(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(WRITES)
        client.read()
        before = talk(client, CHECKS)
    assert before[:5] == [
        b"*4\r\n$5\r\nfirst\r\n$1\r\nx\r\n$1\r\nd\r\n$1\r\na\r\n",
        b":0\r\n",
        b"$3\r\n5.6\r\n",
        b":2\r\n",
        b"*1\r\n$1\r\na\r\n",
    ]
    aof = (tmp_path / "appendonly.aof").read_bytes()
    assert b"SPOP" not in aof  # recorded as the SREM of what was popped
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        assert talk(client, CHECKS) == before
        assert talk(client, cmd("SELECT", "0") + cmd("SCARD", "s")) == [b"+OK\r\n", b":2\r\n"]


def test_object_idletime_follows_reads_and_writes(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        talk(client, cmd("SET", "k", "v") + cmd("HSET", "h", "f", "v"))
        h.advance(5.0)
        assert talk(client, cmd("OBJECT", "IDLETIME", "h")) == [b":5\r\n"]
        assert talk(client, cmd("OBJECT", "IDLETIME", "h")) == [b":5\r\n"]  # looking is not an access
        talk(client, cmd("HGET", "h", "f"))
        h.advance(2.0)
        assert talk(client, cmd("OBJECT", "IDLETIME", "h")) == [b":2\r\n"]
        assert talk(client, cmd("OBJECT", "IDLETIME", "nokey")) == [b"$-1\r\n"]
