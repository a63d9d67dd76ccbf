"""Streams (XADD, XRANGE, XREAD, consumer groups, XINFO): against redis-server byte for byte, the AOF, redis-py."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import MemoryClient, RunningServer, ServiceHarness, serve
from redis_wire import RawClient, cmd, real_redis, split_replies

# Commands and their errors on one connection; ids are explicit so replies are deterministic.
BASICS: list[tuple[str, ...]] = [
    ("XADD", "s", "1-1", "a", "1"),
    ("XADD", "s", "1-1", "a", "1"),
    ("XADD", "s", "1-0", "a", "1"),
    ("XADD", "s", "0-0", "a", "1"),
    ("XADD", "s2", "0-0", "a", "1"),
    ("XADD", "s2", "0-*", "a", "1"),
    ("XADD", "s", "1-*", "b", "2", "c", "3"),
    ("XADD", "s", "5", "x", "y"),
    ("XADD", "s", "5-*", "x", "y"),
    ("XADD", "s", "4-*", "x", "y"),
    ("XADD", "s", "bad", "x", "y"),
    ("XADD", "s", "1-x", "x", "y"),
    ("XADD", "s", "-5-1", "x", "y"),
    ("XADD", "s", "6-1", "x"),
    ("XADD", "s", "6-1", "x", "y", "z"),
    ("XADD", "s", "6-1"),
    ("XADD", "s"),
    ("XADD", "s", "a", "b"),
    ("XADD", "s", "NOMKSTREAM", "7-1", "f", "v"),
    ("XADD", "nos", "NOMKSTREAM", "7-1", "f", "v"),
    ("EXISTS", "nos"),
    ("XADD", "s", "MAXLEN", "x", "8-1", "f", "v"),
    ("XADD", "s", "MAXLEN", "-1", "8-1", "f", "v"),
    ("XADD", "s", "MAXLEN", "10", "MINID", "1", "8-1", "f", "v"),
    ("XADD", "s", "LIMIT", "10", "8-1", "f", "v"),
    ("XADD", "s", "MAXLEN", "10", "LIMIT", "10", "8-1", "f", "v"),
    ("XADD", "s", "MAXLEN", "~", "10", "LIMIT", "-1", "8-1", "f", "v"),
    ("XADD", "s", "MAXLEN", "~", "10", "LIMIT", "x", "8-1", "f", "v"),
    ("XADD", "s", "MINID", "bad", "8-1", "f", "v"),
    ("XADD", "s", "MINID", "-", "8-1", "f", "v"),
    ("XLEN", "s"),
    ("XRANGE", "s", "-", "+"),
    ("XREVRANGE", "s", "+", "-"),
    ("XRANGE", "s", "-", "+", "COUNT", "2"),
    ("XRANGE", "s", "-", "+", "COUNT", "0"),
    ("XRANGE", "s", "-", "+", "COUNT", "-3"),
    ("XRANGE", "s", "-", "+", "COUNT"),
    ("XRANGE", "s", "-", "+", "FOO", "1"),
    ("XRANGE", "s", "(1-1", "+"),
    ("XRANGE", "s", "-", "(5-1"),
    ("XRANGE", "s", "(-", "+"),
    ("XRANGE", "s", "(18446744073709551615-18446744073709551615", "+"),
    ("XRANGE", "s", "-", "(0-0"),
    ("XRANGE", "s", "1", "1"),
    ("XRANGE", "s", "2", "5"),
    ("XRANGE", "s", "x", "+"),
    ("XRANGE", "nokey", "-", "+"),
    ("XRANGE", "nokey", "-", "+", "COUNT", "0"),
    ("XREVRANGE", "s", "5", "1", "COUNT", "1"),
    ("XREVRANGE", "s", "(5-1", "-"),
    ("XRANGE", "s", " 1", "+"),
    ("XRANGE", "s", "+1", "+"),
    ("XRANGE", "s", "-0", "+"),
    ("XDEL", "s", "1-1"),
    ("XDEL", "s", "1-1", "5-0", "99-1"),
    ("XDEL", "s", "bad"),
    ("XDEL", "nokey", "bad"),
    ("XDEL", "s", "-"),
    ("XLEN", "s"),
    ("XLEN", "nokey"),
    ("SET", "str", "x"),
    ("XADD", "str", "1-1", "a", "b"),
    ("XLEN", "str"),
    ("XRANGE", "str", "-", "+"),
    ("XINFO", "STREAM", "s"),
    ("XINFO", "STREAM", "nokey"),
    ("XINFO", "STREAM", "str"),
    ("XINFO", "STREAM", "s", "FULL"),
    ("XINFO", "STREAM", "s", "FOO"),
    ("XINFO", "GROUPS", "s"),
    ("XINFO", "FOO", "s"),
    ("XINFO",),
    ("XINFO", "HELP"),
    ("TYPE", "s"),
    ("XTRIM", "s"),
    ("XTRIM", "s", "MAXLEN"),
    ("XTRIM", "s", "FOO", "1"),
    ("XTRIM", "nokey", "MAXLEN", "1"),
    ("XTRIM", "s", "MAXLEN", "1", "EXTRA"),
    ("XTRIM", "s", "LIMIT", "1"),
    ("XTRIM", "s", "MAXLEN", "~", "0"),
    ("XTRIM", "s", "MINID", "5-1"),
    ("XRANGE", "s", "-", "+"),
    ("XTRIM", "s", "MAXLEN", "0"),
    ("XINFO", "STREAM", "s"),
    ("XADD", "s", "9-9", "f", "v"),
    ("XINFO", "STREAM", "s"),
    ("DEL", "s", "s2", "str"),
]

GROUPS: list[tuple[str, ...]] = [
    ("XADD", "s", "1-1", "a", "1"),
    ("XADD", "s", "2-1", "b", "2"),
    ("XADD", "s", "3-1", "c", "3"),
    ("XGROUP", "CREATE", "s", "g", "$"),
    ("XGROUP", "CREATE", "s", "g", "$"),
    ("XGROUP", "CREATE", "s", "g0", "0"),
    ("XGROUP", "CREATE", "s", "g1", "1-1", "ENTRIESREAD", "1"),
    ("XGROUP", "CREATE", "s", "g2", "0", "ENTRIESREAD", "-2"),
    ("XGROUP", "CREATE", "s", "g2", "0", "FOO"),
    ("XGROUP", "CREATE", "s", "g2", "bad"),
    ("XGROUP", "CREATE", "nokey", "g", "$"),
    ("XGROUP", "CREATE", "nokey", "g", "$", "MKSTREAM"),
    ("XINFO", "STREAM", "nokey"),
    ("XGROUP", "CREATE", "str", "g", "$"),
    ("XGROUP", "CREATE", "s"),
    ("XGROUP", "FOO", "s", "g"),
    ("XGROUP",),
    ("XGROUP", "HELP"),
    ("XINFO", "GROUPS", "s"),
    ("XREADGROUP", "GROUP", "g0", "c1", "COUNT", "1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "s", "0"),
    ("XREADGROUP", "GROUP", "g0", "c2", "STREAMS", "s", "0"),
    ("XREADGROUP", "GROUP", "g0", "c1", "COUNT", "1", "STREAMS", "s", "1-1"),
    ("XREADGROUP", "GROUP", "nog", "c1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "nokey2", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "s", "$"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "s"),
    ("XREADGROUP", "GROUP", "g0", "c1", "STREAMS", "s", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "STREAMS", "s", ">"),
    ("XREADGROUP", "COUNT", "1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "FOO", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "NOACK", "STREAMS", "s", "bad"),
    ("XREADGROUP", "GROUP", "g0", "c1", "BLOCK", "x", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "BLOCK", "-1", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g0", "c1", "COUNT", "x", "STREAMS", "s", ">"),
    ("XREADGROUP", "GROUP", "g1", "c3", "NOACK", "STREAMS", "s", ">"),
    ("XINFO", "GROUPS", "s"),
    ("XPENDING", "s", "g0"),
    ("XPENDING", "s", "g1"),
    ("XPENDING", "s", "nog"),
    ("XPENDING", "nokey", "g"),
    ("XPENDING", "s", "g0", "-", "+"),
    ("XPENDING", "s", "g0", "-", "+", "x"),
    ("XPENDING", "s", "g0", "x", "+", "10"),
    ("XPENDING", "s", "g0", "IDLE", "x", "-", "+", "10"),
    ("XPENDING", "s", "g0", "IDLE", "10", "-", "+"),
    ("XPENDING", "s", "g0", "-", "+", "10", "nocons"),
    ("XPENDING", "s", "g0", "-", "+", "0"),
    ("XPENDING", "s", "g0", "(3-1", "+", "10"),
    ("XACK", "s", "g0", "1-1"),
    ("XACK", "s", "g0", "1-1", "2-1", "9-9"),
    ("XACK", "s", "g0", "bad"),
    ("XACK", "s", "nog", "1-1"),
    ("XACK", "nokey", "g", "bad"),
    ("XPENDING", "s", "g0"),
    ("XGROUP", "CREATECONSUMER", "s", "g0", "c9"),
    ("XGROUP", "CREATECONSUMER", "s", "g0", "c9"),
    ("XGROUP", "CREATECONSUMER", "s", "nog", "c9"),
    ("XGROUP", "DELCONSUMER", "s", "g0", "c9"),
    ("XGROUP", "DELCONSUMER", "s", "g0", "c1"),
    ("XGROUP", "DELCONSUMER", "s", "g0", "zz"),
    ("XPENDING", "s", "g0"),
    ("XGROUP", "SETID", "s", "g0", "0"),
    ("XGROUP", "SETID", "s", "g0", "$", "ENTRIESREAD", "3"),
    ("XGROUP", "SETID", "s", "g0", "1", "ENTRIESREAD", "x"),
    ("XGROUP", "SETID", "s", "g0", "1", "FOO", "x"),
    ("XGROUP", "SETID", "s", "nog", "0"),
    ("XGROUP", "SETID", "s", "g0", "-"),
    ("XINFO", "GROUPS", "s"),
    ("XGROUP", "SETID", "s", "g0", "0"),
    ("XREADGROUP", "GROUP", "g0", "a", "STREAMS", "s", ">"),
    ("XCLAIM", "s", "g0", "b", "0", "1-1", "JUSTID"),
    ("XCLAIM", "s", "g0", "b", "0", "1-1", "2-1"),
    ("XCLAIM", "s", "g0", "b", "0", "9-9", "FORCE"),
    ("XCLAIM", "s", "g0", "b", "0", "3-1", "RETRYCOUNT", "7", "LASTID", "3-1", "IDLE", "0"),
    ("XCLAIM", "s", "g0", "b", "x", "3-1"),
    ("XCLAIM", "s", "g0", "b", "0", "3-1", "FOO"),
    ("XCLAIM", "s", "g0", "b", "0", "3-1", "IDLE", "x"),
    ("XCLAIM", "s", "g0", "b", "0", "3-1", "RETRYCOUNT"),
    ("XCLAIM", "s", "nog", "b", "0", "3-1"),
    ("XCLAIM", "s", "g0", "b", "100000000", "3-1"),
    ("XPENDING", "s", "g0"),
    ("XDEL", "s", "2-1"),
    ("XCLAIM", "s", "g0", "c", "0", "2-1", "1-1", "JUSTID"),
    ("XPENDING", "s", "g0"),
    ("XAUTOCLAIM", "s", "g0", "d", "0", "0-0"),
    ("XAUTOCLAIM", "s", "g0", "d", "0", "0-0", "COUNT", "1"),
    ("XAUTOCLAIM", "s", "g0", "d", "0", "0-0", "COUNT", "0"),
    ("XAUTOCLAIM", "s", "g0", "d", "0", "0-0", "JUSTID", "FOO"),
    ("XAUTOCLAIM", "s", "g0", "d", "x", "0-0"),
    ("XAUTOCLAIM", "s", "g0", "d", "0", "(0-0"),
    ("XAUTOCLAIM", "s", "nog", "d", "0", "0-0"),
    ("XAUTOCLAIM", "s", "g0", "d", "10000000", "-", "JUSTID"),
    ("XADD", "s", "4-1", "d", "4"),
    ("XDEL", "s", "3-1"),
    ("XREADGROUP", "GROUP", "g0", "e", "STREAMS", "s", ">"),
    ("XAUTOCLAIM", "s", "g0", "f", "0", "-", "JUSTID"),
    ("XINFO", "GROUPS", "s"),
    ("XINFO", "STREAM", "s"),
    ("XGROUP", "DESTROY", "s", "g0"),
    ("XGROUP", "DESTROY", "s", "g0"),
    ("XGROUP", "DESTROY", "nokey", "g0"),
    ("XINFO", "GROUPS", "s"),
    ("XREAD", "STREAMS", "s", "0"),
    ("XREAD", "COUNT", "1", "STREAMS", "s", "nokey", "0", "0"),
    ("XREAD", "STREAMS", "s", "$"),
    ("XREAD", "STREAMS", "s", ">"),
    ("XREAD", "STREAMS", "s"),
    ("XREAD", "GROUP", "g", "c", "STREAMS", "s", "0"),
    ("XREAD", "NOACK", "STREAMS", "s", "0"),
    ("XREAD", "BLOCK", "1", "STREAMS", "s", "$"),
    ("XREAD", "BLOCK", "x", "STREAMS", "s", "$"),
    ("XREAD", "STREAMS", "str", "0"),
    ("XREAD", "STREAMS", "s", "bad"),
    ("XREAD", "COUNT", "-1", "STREAMS", "s", "0"),
    ("MULTI",),
    ("XREAD", "BLOCK", "0", "STREAMS", "s", "$"),
    ("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"),
    ("EXEC",),
    ("XINFO", "CONSUMERS", "s", "nog"),
    ("XINFO", "CONSUMERS", "nokey", "g"),
    ("DEL", "s"),
    ("XINFO", "STREAM", "big"),
    ("XTRIM", "big", "MAXLEN", "~", "120"),
    ("XLEN", "big"),
    ("XTRIM", "big", "MINID", "~", "200"),
    ("XLEN", "big"),
    ("XINFO", "STREAM", "big"),
    ("XADD", "big", "MAXLEN", "~", "10", "251-1", "f", "v"),
    *[("XADD", "big", f"{i}-1", "f", f"v{i}") for i in range(2, 251)],  # three listpack nodes
    ("XLEN", "big"),
    ("XDEL", "big", "210-1", "220-1"),
    ("XADD", "big", "MAXLEN", "~", "10", "LIMIT", "20", "252-1", "f", "v"),
    ("XINFO", "STREAM", "big"),
    ("XTRIM", "big", "MAXLEN", "5"),
    ("XINFO", "STREAM", "big"),
    ("XINFO", "STREAM", "big", "FULL", "COUNT", "2"),
]


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
@pytest.mark.parametrize("corpus", ["basics", "groups"])
def test_corpus_matches_real_redis(
    both: tuple[tuple[str, int], tuple[str, int]], corpus: str, hello: int | None
) -> None:
    commands = BASICS if corpus == "basics" else GROUPS
    results = []
    for address in both:
        client = RawClient(address)
        if hello is not None:
            client.call("HELLO", hello)
        client.call("FLUSHALL")
        results.append([client.call(*c) for c in commands])
        client.close()
    mismatches = [(c, e, g) for c, e, g in zip(commands, *results, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:10])


# --------------------------------------------------------------------------- in memory


def talk(client: MemoryClient, *commands: tuple[str | bytes, ...]) -> list[bytes]:
    client.send(b"".join(cmd(*c) for c in commands))
    return split_replies(client.read())


def test_auto_ids_follow_the_clock_and_never_go_back(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        first = talk(c, ("XADD", "s", "*", "f", "1"))[0]
        second = talk(c, ("XADD", "s", "*", "f", "2"))[0]
        ms = int(first.split(b"\r\n")[1].split(b"-")[0])
        assert first.endswith(b"-0\r\n") and second == b"$%d\r\n%d-1\r\n" % (len(b"%d-1" % ms), ms)
        h.advance(0.005)
        third = talk(c, ("XADD", "s", "*", "f", "3"))[0]
        assert third.split(b"\r\n")[1] == b"%d-0" % (ms + 5)
        talk(c, ("XADD", "s", f"{ms + 10_000}-0", "f", "4"))
        assert talk(c, ("XADD", "s", "*", "f", "5"))[0].split(b"\r\n")[1] == b"%d-1" % (ms + 10_000)


def _state(c: MemoryClient) -> list[bytes]:
    return talk(
        c,
        ("XRANGE", "s", "-", "+"),
        ("XLEN", "s"),
        ("XPENDING", "s", "g"),
        ("XINFO", "GROUPS", "s"),
        ("XINFO", "STREAM", "s"),
        ("XPENDING", "s", "g", "-", "+", "10", "bob"),
        ("XRANGE", "t", "-", "+"),
        ("XINFO", "STREAM", "t"),
    )


def test_the_append_only_file_replays_to_the_same_state(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendfsync="always") as h:
        c = h.connect()
        for i in range(30):
            talk(c, ("XADD", "s", "MAXLEN", "~", "10", "*", "n", str(i)))
            h.advance(0.001)
        for i in range(250):
            talk(c, ("XADD", "t", "*", "n", str(i)))
        talk(c, ("XTRIM", "t", "MAXLEN", "~", "120"), ("XADD", "t", "MINID", "~", "0-1", "*", "x", "y"))
        talk(
            c,
            ("XGROUP", "CREATE", "s", "g", "0"),
            ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "3", "STREAMS", "s", ">"),
        )
        h.advance(1)
        talk(c, ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "2", "STREAMS", "s", ">"))
        talk(c, ("XREADGROUP", "GROUP", "g", "carol", "NOACK", "COUNT", "1", "STREAMS", "s", ">"))
        ids = re.findall(rb"\$\d+\r\n(\d+-\d+)\r\n", talk(c, ("XRANGE", "s", "-", "+"))[0])
        talk(c, ("XACK", "s", "g", ids[0]))
        h.advance(2)
        talk(c, ("XAUTOCLAIM", "s", "g", "bob", "1500", "0"), ("XGROUP", "CREATECONSUMER", "s", "g", "dave"))
        talk(c, ("XDEL", "s", ids[1], ids[-1]))
        before = _state(c)
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        after = _state(h.connect())
    assert before == after
    assert before[1] != b":0\r\n" and b"bob" in before[5]


def test_xread_block_wakes_on_xadd_and_times_out(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        reader, writer = h.connect(), h.connect()
        assert talk(reader, ("XREAD", "BLOCK", "0", "STREAMS", "s", "$")) == []
        talk(writer, ("XADD", "s", "1-1", "f", "v"))
        assert reader.read() == b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
        assert talk(reader, ("XREAD", "BLOCK", "1500", "STREAMS", "s", "$")) == []
        h.advance(1.4)
        assert reader.read() == b""
        h.advance(0.2)
        assert reader.read() == b"*-1\r\n"


def test_xreadgroup_block_delivers_each_entry_once(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        a, b, writer = h.connect(), h.connect(), h.connect()
        talk(writer, ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"))
        talk(a, ("XREADGROUP", "GROUP", "g", "a", "BLOCK", "0", "STREAMS", "s", ">"))
        talk(b, ("XREADGROUP", "GROUP", "g", "b", "BLOCK", "0", "STREAMS", "s", ">"))
        talk(writer, ("XADD", "s", "1-1", "f", "v"))
        assert b"1-1" in a.read() and b.read() == b""
        talk(writer, ("XADD", "s", "2-1", "f", "v"))
        assert b"2-1" in b.read()
        assert talk(writer, ("XPENDING", "s", "g"))[0] == (
            b"*4\r\n:2\r\n$3\r\n1-1\r\n$3\r\n2-1\r\n*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n1\r\n"
        )


# --------------------------------------------------------------------------- redis-py over loopback


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_streams_and_groups(server: RunningServer, protocol: int) -> None:
    host, port = server.address()
    r = redis.Redis(host=host, port=port, socket_timeout=10, protocol=protocol, decode_responses=True)
    r.delete("events")
    first = r.xadd("events", {"kind": "signup", "user": "ann"})
    r.xadd("events", {"kind": "login", "user": "ann"}, maxlen=1000, approximate=True)
    assert r.xlen("events") == 2
    assert r.xrange("events", count=1)[0] == (first, {"kind": "signup", "user": "ann"})
    r.xgroup_create("events", "workers", id="0")
    batch = r.xreadgroup("workers", "w1", {"events": ">"}, count=10)
    entries = batch[0][1] if isinstance(batch, list) else batch["events"][0]
    assert [fields["kind"] for _, fields in entries] == ["signup", "login"]
    assert r.xack("events", "workers", first) == 1
    pending = r.xpending("events", "workers")
    assert pending["pending"] == 1 and pending["consumers"] == [{"name": "w1", "pending": 1}]
    claimed = r.xautoclaim("events", "workers", "w2", min_idle_time=0, start_id="0-0", justid=True)
    assert claimed == [entries[1][0]]  # redis-py keeps only the ids with JUSTID
    assert r.xinfo_groups("events")[0]["pending"] == 1
    info = r.xinfo_stream("events")
    assert info["length"] == 2 and info["last-entry"][0] == entries[1][0]
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(r.xread({"events": "$"}, block=0)))
    thread.start()
    writer = redis.Redis(host=host, port=port, socket_timeout=10, decode_responses=True)
    deadline = time.monotonic() + 10
    while writer.info("clients")["blocked_clients"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    new_id = writer.xadd("events", {"kind": "logout"})
    thread.join(10)
    reply = got[0]
    items = reply[0][1] if isinstance(reply, list) else reply["events"][0]
    assert items == [(new_id, {"kind": "logout"})]
    r.close()
    writer.close()


def test_stream_and_blocking_helpers_are_not_shadowed() -> None:
    """The data-type mixins share one namespace: a helper defined twice silently runs the wrong one."""
    from linechat.services.redis.blocking import BlockingListCommands
    from linechat.services.redis.protocol import RedisProtocol
    from linechat.services.redis.streams import StreamCommands

    clashes = [
        (mine.__name__, name)
        for mine in (StreamCommands, BlockingListCommands)
        for name in vars(mine)
        if not name.startswith("__") and sum(name in vars(k) for k in RedisProtocol.__mro__) > 1
    ]
    assert clashes == []
