"""AOF rewrite: BGREWRITEAOF and the automatic trigger, every type and stream state through a rewrite and a replay."""

from __future__ import annotations

import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from linechat.services.redis import RedisService, aof_rewrite
from linechat.services.redis.stream_type import Stream
from linechat.services.redis.zset import SortedSet
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import RawClient, cmd, real_redis, split_replies


def talk(client: MemoryClient, *commands: tuple[str | bytes, ...]) -> list[bytes]:
    client.send(b"".join(cmd(*c) for c in commands))
    return split_replies(client.read())


def state(service: RedisService) -> dict[int, dict[bytes, Any]]:
    """Everything a replay must restore, database by database: values, deadlines, stream internals."""
    out: dict[int, dict[bytes, Any]] = {}
    now = service.now_ms()
    for db in service.dbs:
        keys: dict[bytes, Any] = {}
        for key, value in db.data.items():
            deadline = db.expires.get(key)
            if deadline is not None and deadline <= now:
                continue
            kind = type(value)
            if kind is bytearray:  # a string changed in place by a bit command; replayed as a SET
                kind, value = bytes, bytes(value)
            if kind is deque:
                value = list(value)
            elif kind is dict:
                value = sorted(value.items())
            elif kind is set:
                value = sorted(value)
            elif kind is SortedSet:
                value = list(value)
            elif kind is Stream:
                value = (
                    [(sid, value.entries[sid]) for sid in value.ids],
                    value.last_id,
                    value.entries_added,
                    value.max_deleted,
                    {
                        name: (
                            g.last_id,
                            g.entries_read,
                            {
                                sid: (p.consumer.name if p.consumer else None, p.time, p.count)
                                for sid, p in g.pel.items()
                            },
                            {c.name: sorted(c.pending) for c in g.consumers.values()},
                        )
                        for name, g in value.groups.items()
                    },
                )
            keys[key] = (kind.__name__, value, deadline)
        if keys:
            out[db.index] = keys
    return out


def fill(h: ServiceHarness, c: MemoryClient) -> None:
    """Every type, large and small, in two databases, with deadlines and stream groups."""
    talk(c, ("SET", "str", "hello"), ("SET", "int", "12345"), ("SET", "bin", b"\x00\r\n\xff" * 50))
    talk(c, ("SET", "ttl", "v", "PX", "500000"), ("SET", "gone", "v", "PX", "10"))
    talk(c, ("RPUSH", "big-list", *[str(i) for i in range(200)]), ("LPUSH", "small-list", "a", "b"))
    talk(c, ("HSET", "big-hash", *[x for i in range(150) for x in (f"f{i}", f"v{i}")]), ("HSET", "h", "a", "1"))
    talk(c, ("SADD", "big-set", *[f"m{i}" for i in range(130)]), ("SADD", "ints", "1", "2", "3"))
    talk(c, ("ZADD", "z", "1.5", "a", "-inf", "low", "inf", "high", "0.1", "tenth", "1e300", "huge"))
    talk(c, ("ZADD", "big-z", *[x for i in range(140) for x in (str(i / 7), f"m{i}")]))
    talk(c, ("PEXPIRE", "big-hash", "900000"), ("INCRBYFLOAT", "fl", "3.0000000000000004"))
    talk(c, ("SETBIT", "bitmap", "1000", "1"), ("PFADD", "hll", *[f"e{i}" for i in range(100)]), ("PFCOUNT", "hll"))
    talk(c, ("GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"))
    for i in range(150):
        talk(c, ("XADD", "s", "*", "n", str(i), "other", "x"))
        h.advance(0.001)
    talk(c, ("XTRIM", "s", "MAXLEN", "140"))
    talk(
        c,
        ("XGROUP", "CREATE", "s", "g", "0"),
        ("XGROUP", "CREATE", "s", "late", "$"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "5", "STREAMS", "s", ">"),
    )
    h.advance(1)
    talk(c, ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "3", "STREAMS", "s", ">"))
    ids = re.findall(rb"\$\d+\r\n(\d+-\d+)\r\n", talk(c, ("XRANGE", "s", "-", "+", "COUNT", "20"))[0])
    h.advance(2)
    talk(c, ("XCLAIM", "s", "g", "carol", "1000", ids[0], ids[1]), ("XACK", "s", "g", ids[2]))
    # Deleted entries that are not pending (a pending id whose entry is gone is dropped by a replay of
    # the rewritten file, by redis-server's as by ours).
    talk(c, ("XGROUP", "CREATECONSUMER", "s", "g", "dave"), ("XDEL", "s", ids[10], ids[11]))
    # A stream emptied by XDEL (last id and max deleted id kept) and one made empty by MKSTREAM.
    talk(c, ("XADD", "emptied", "5-1", "a", "b"), ("XADD", "emptied", "6-1", "a", "b"))
    talk(c, ("XDEL", "emptied", "5-1", "6-1"), ("XGROUP", "CREATE", "fresh", "g", "$", "MKSTREAM"))
    talk(c, ("SELECT", "7"), ("SET", "in7", "x", "EX", "1000"), ("RPUSH", "l7", "a"), ("SELECT", "0"))
    h.advance(0.1)  # "gone" is past its deadline (not yet deleted, or deleted by expiry)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The next server starts *seconds* later than the fake clocks of the last one reached."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


def test_every_type_survives_a_rewrite_and_a_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        fill(h, c)
        for i in range(300):  # history the rewrite drops
            talk(c, ("SET", "counter", str(i)))
        before = state(h.service)
        xinfo = talk(c, ("XINFO", "STREAM", "s"), ("XINFO", "GROUPS", "s"), ("XPENDING", "s", "g"))
        grown = (tmp_path / "appendonly.aof").stat().st_size
        assert talk(c, ("BGREWRITEAOF",)) == [b"+Background append only file rewriting started\r\n"]
        h.service.rewriter.wait()
        rewritten = (tmp_path / "appendonly.aof").read_bytes()
        assert len(rewritten) < grown
        assert b"PEXPIREAT" in rewritten and b"XSETID" in rewritten and b"XCLAIM" in rewritten
        assert b"gone" not in rewritten  # past its deadline when the child forked
        assert [p.name for p in tmp_path.iterdir()] == ["appendonly.aof"]  # no temporary file left
    assert b"gone" not in b"".join(str(k).encode() for k in before[0])
    later(monkeypatch, 60)  # deliveries recorded in the past replay as such
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        after = state(h.service)
        assert after == before
        c = h.connect()
        assert talk(c, ("XINFO", "STREAM", "s"), ("XINFO", "GROUPS", "s"), ("XPENDING", "s", "g")) == (xinfo)
        assert talk(c, ("XINFO", "STREAM", "emptied"))[0].count(b"6-1") == 2  # last id and max deleted id


def test_writes_during_a_rewrite_are_kept_and_later_ones_follow(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendfsync="always") as h:
        c = h.connect()
        talk(c, ("RPUSH", "l", "a", "b"), ("SELECT", "3"), ("SET", "k3", "before"))
        talk(c, ("BGREWRITEAOF",))
        assert h.service.rewriter.in_progress
        # The child has its image: these reach only the parent, which must keep them for the new file.
        talk(c, ("SET", "k3", "during"), ("SELECT", "0"), ("RPUSH", "l", "c"))
        talk(c, ("MULTI",), ("INCR", "n"), ("INCR", "n"), ("EXEC",))
        h.service.rewriter.wait()
        assert not h.service.rewriter.in_progress
        talk(c, ("SET", "after", "1"))  # database 0 again: the new file must say so
        before = state(h.service)
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert state(h.service) == before
        assert before[3][b"k3"][1] == b"during" and before[0][b"after"][1] == b"1"


def test_rewrite_replies_scheduling_and_info(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        info = talk(c, ("INFO", "persistence"))[0]
        for field in (b"aof_rewrite_in_progress:0", b"aof_rewrite_scheduled:0", b"aof_last_rewrite_time_sec:-1"):
            assert field in info
        talk(c, ("SET", "a", "1"))
        # Inside EXEC the rewrite is scheduled, as redis-server does, and the cron starts it.
        assert talk(c, ("MULTI",), ("SET", "b", "2"), ("BGREWRITEAOF",), ("EXEC",))[-1] == (
            b"*2\r\n+OK\r\n+Background append only file rewriting scheduled\r\n"
        )
        assert b"aof_rewrite_scheduled:1" in talk(c, ("INFO", "persistence"))[0]
        h.advance(1.0 / h.service.settings.hz)
        assert h.service.rewriter.in_progress
        info = talk(c, ("INFO", "persistence"))[0]
        assert b"aof_rewrite_in_progress:1" in info and b"aof_rewrite_scheduled:0" in info
        assert talk(c, ("BGREWRITEAOF",)) == [b"-ERR Background append only file rewriting already in progress\r\n"]
        h.service.rewriter.wait()
        info = talk(c, ("INFO", "persistence"))[0].decode()
        assert "aof_rewrites:1" in info and "aof_last_bgrewrite_status:ok" in info
        fields = dict(line.split(":", 1) for line in info.split("\r\n") if ":" in line)
        size = (tmp_path / "appendonly.aof").stat().st_size
        assert int(fields["aof_base_size"]) == int(fields["aof_current_size"]) == size
        assert talk(c, ("EVAL", "return redis.call('BGREWRITEAOF')", "0"))[0].startswith(b"-ERR This Redis command")


def test_automatic_rewrite_by_growth(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, auto_aof_rewrite_min_size=1 << 30) as h:
        c = h.connect()
        assert talk(c, ("CONFIG", "GET", "auto-aof-rewrite-*")) == [
            b"*4\r\n$27\r\nauto-aof-rewrite-percentage\r\n$3\r\n100\r\n"
            b"$25\r\nauto-aof-rewrite-min-size\r\n$10\r\n1073741824\r\n"
        ]
        for i in range(200):
            talk(c, ("SET", "k", "x" * 40 + str(i)))
        h.advance(0.5)
        assert not h.service.rewriter.in_progress  # below the minimum size
        assert talk(c, ("CONFIG", "SET", "auto-aof-rewrite-min-size", "4kb")) == [b"+OK\r\n"]
        h.advance(1.0 / h.service.settings.hz)
        assert h.service.rewriter.in_progress
        h.service.rewriter.wait()
        base = (tmp_path / "appendonly.aof").stat().st_size
        assert base < 4096
        # Next time only after the file doubled past its new base size (100%) and the minimum.
        assert talk(c, ("CONFIG", "SET", "auto-aof-rewrite-percentage", "0")) == [b"+OK\r\n"]
        for i in range(200):
            talk(c, ("SET", "k", "y" * 40 + str(i)))
        h.advance(0.5)
        assert not h.service.rewriter.in_progress  # 0 turns it off
        talk(c, ("CONFIG", "SET", "auto-aof-rewrite-percentage", "100"))
        h.advance(0.2)
        assert h.service.rewriter.in_progress
        h.service.rewriter.wait()
        assert b"aof_rewrites:2" in talk(c, ("INFO", "persistence"))[0]
        assert talk(c, ("CONFIG", "SET", "auto-aof-rewrite-percentage", "-1"))[0].startswith(b"-ERR CONFIG SET failed")


def test_a_failed_rewrite_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(aof_rewrite, "write_snapshot", broken)  # the child inherits the patched module
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        talk(c, ("SET", "a", "1"), ("BGREWRITEAOF",), ("SET", "b", "2"))
        h.service.rewriter.wait()
        info = talk(c, ("INFO", "persistence"))[0]
        assert b"aof_last_bgrewrite_status:err" in info and b"aof_rewrites_consecutive_failures:1" in info
        assert h.service.aof is not None and h.service.aof.rewrite_buf is None
        talk(c, ("SET", "c", "3"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["appendonly.aof"]
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert talk(h.connect(), ("MGET", "a", "b", "c")) == [b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"]


def test_stopping_during_a_rewrite_ends_the_child(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        talk(c, ("SET", "a", "1"), ("BGREWRITEAOF",))
        pid = h.service.rewriter.pid
        assert pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped by the stop
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appendonly.aof"]


XSETID_CASES: list[tuple[str, ...]] = [
    ("XSETID", "nokey", "1-1"),
    ("XADD", "s", "5-0", "a", "b"),
    ("XADD", "s", "6-0", "a", "b"),
    ("XDEL", "s", "6-0"),
    ("XSETID", "s", "5-5"),
    ("XSETID", "s", "4-0"),
    ("XSETID", "s", "7-0", "ENTRIESADDED", "0"),
    ("XSETID", "s", "7-0", "ENTRIESADDED", "-1"),
    ("XSETID", "s", "7-0", "ENTRIESADDED", "x"),
    ("XSETID", "s", "7-0", "MAXDELETEDID", "8-0"),
    ("XSETID", "s", "7-0", "foo"),
    ("XSETID", "s", "7-0", "ENTRIESADDED"),
    ("XSETID", "s", "7-0", "ENTRIESADDED", "5", "MAXDELETEDID", "7-0"),
    ("XINFO", "STREAM", "s"),
    ("XSETID", "s", "abc"),
    ("XSETID", "s", "+"),
    ("XSETID", "s", "6"),
    ("XINFO", "STREAM", "s"),
    ("SET", "str", "x"),
    ("XSETID", "str", "1-1"),
    ("XSETID", "s"),
]


def test_xsetid_answers_as_redis_server(tmp_path: Path) -> None:
    with real_redis(tmp_path) as address:
        peer = RawClient(address)
        theirs = [peer.call(*c) for c in XSETID_CASES]
        peer.close()
    with ServiceHarness(RedisService) as h:
        c = h.connect()
        ours = [talk(c, case)[0] for case in XSETID_CASES]
    assert ours == theirs


# ------------------------------------------------------------------ bounded memory during a rewrite


def spill_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("temp-rewriteaof-incr-*.aof"))


def test_writes_during_a_rewrite_spill_past_the_limit_and_all_reach_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 300
    # A small copy chunk: the spill file is appended over many turns, with writes between them.
    monkeypatch.setattr(aof_rewrite, "CATCH_UP_CHUNK", 64)
    with ServiceHarness(RedisService, data_dir=tmp_path, aof_rewrite_buffer_limit=limit, appendfsync="always") as h:
        aof = h.service.aof
        assert aof is not None
        c = h.connect()
        talk(c, ("SET", "base", "1"), ("RPUSH", "l", "a"))
        talk(c, ("BGREWRITEAOF",))
        # The child has its image; its exit is only noticed when the clock moves, so every
        # write below arrives during the rewrite.
        most = 0
        for i in range(400):
            talk(c, ("SET", f"k{i}", "v" * (i % 50)), ("RPUSH", "l", str(i)))
            if i % 100 == 0:
                talk(c, ("SELECT", "2"), ("INCR", "n"), ("SELECT", "0"))
            assert aof.rewrite_buf is not None
            most = max(most, len(aof.rewrite_buf))
        assert most <= limit
        info = talk(c, ("INFO", "persistence"))[0]
        assert b"aof_rewrite_in_progress:1" in info
        held = int(re.search(rb"aof_rewrite_buffer_length:(\d+)", info).group(1))  # type: ignore[union-attr]
        assert held <= limit
        [spill] = spill_files(tmp_path)
        assert spill.stat().st_size == aof.spill_size > 20_000
        # Wait for the child to exit without reaping it; then the parent's next look sees it and the copy starts.
        os.waitid(os.P_PID, h.service.rewriter.pid, os.WEXITED | os.WNOWAIT)
        h.advance(aof_rewrite.POLL_INTERVAL)
        # 100 turns of 64 bytes are not enough to copy the spill file: still catching up.
        assert h.service.rewriter.in_progress and aof.spill_unread > 0
        assert b"aof_rewrite_in_progress:1" in talk(c, ("INFO", "persistence"))[0]
        for i in range(400, 500):  # written while the copy catches up: appended to the spill file
            talk(c, ("SET", f"k{i}", "late"), ("RPUSH", "l", str(i)))
            h.run_ready()
        for _ in range(100):
            if not h.service.rewriter.in_progress:
                break
            h.run_ready()
        assert not h.service.rewriter.in_progress
        assert talk(c, ("INFO", "persistence"))[0].count(b"aof_last_bgrewrite_status:ok") == 1
        assert spill_files(tmp_path) == [] and aof.rewrite_buf is None
        talk(c, ("SET", "after", "1"))
        before = state(h.service)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["appendonly.aof"]
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert state(h.service) == before
    assert before[0][b"l"][1] == [b"a", *(str(i).encode() for i in range(500))]
    assert before[2][b"n"][1] == b"4" and before[0][b"k499"][1] == b"late"


def test_a_failed_spill_fails_the_rewrite_and_keeps_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def refuse_spill(path: Any, *args: Any, **kwargs: Any) -> int:
        if "temp-rewriteaof-incr" in str(path):
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    with ServiceHarness(RedisService, data_dir=tmp_path, aof_rewrite_buffer_limit=0) as h:
        c = h.connect()
        talk(c, ("SET", "a", "1"), ("BGREWRITEAOF",))
        monkeypatch.setattr(os, "open", refuse_spill)
        talk(c, ("SET", "b", "2"), ("SET", "c", "3"))
        monkeypatch.setattr(os, "open", real_open)
        h.service.rewriter.wait()
        info = talk(c, ("INFO", "persistence"))[0]
        assert b"aof_last_bgrewrite_status:err" in info and b"aof_rewrite_in_progress:0" in info
        talk(c, ("SET", "d", "4"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["appendonly.aof"]
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert talk(h.connect(), ("MGET", "a", "b", "c", "d")) == [
            b"*4\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n"
        ]


def test_leftover_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        talk(h.connect(), ("SET", "a", "1"))
    for name in ("temp-rewriteaof-bg-4242.aof", "temp-rewriteaof-incr-4242.aof"):
        (tmp_path / name).write_bytes(b"*1\r\n$4\r\nPING\r\n")
    (tmp_path / "notes.txt").write_text("kept")
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["appendonly.aof", "notes.txt"]
        assert talk(h.connect(), ("GET", "a")) == [b"$1\r\n1\r\n"]
