"""Sharded pub/sub, PUBSUB, GETEX, LCS, DUMP/RESTORE errors, SLOWLOG, LATENCY, MEMORY... against a real redis-server.

Every reply is compared byte for byte, on a RESP2 connection and after
``HELLO 3``.  Replies that are the server's own by nature (timings, memory
sizes, hash order) are compared by shape only, where the corpus says so.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.services.redis import RedisService
from linechat.testing import serve
from redis_wire import RawClient, cmd, real_redis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

Address = tuple[str, int]

CORPUS: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    # PUBSUB with no subscribers
    ("PUBSUB",),
    ("PUBSUB", "HELP"),
    ("PUBSUB", "HELP", "x"),
    ("PUBSUB", "FOO"),
    ("PUBSUB", "CHANNELS"),
    ("PUBSUB", "CHANNELS", "a*"),
    ("PUBSUB", "CHANNELS", "x", "y"),
    ("PUBSUB", "SHARDCHANNELS"),
    ("PUBSUB", "SHARDCHANNELS", "x", "y"),
    ("PUBSUB", "NUMSUB"),
    ("PUBSUB", "NUMSUB", "a", "b"),
    ("PUBSUB", "SHARDNUMSUB", "a"),
    ("PUBSUB", "NUMPAT"),
    ("PUBSUB", "NUMPAT", "x"),
    ("SPUBLISH", "a"),
    ("SPUBLISH", "a", "b"),
    ("SPUBLISH", "a", "b", "c"),
    ("SUNSUBSCRIBE",),
    ("SUNSUBSCRIBE", "a"),
    ("SSUBSCRIBE",),
    ("MULTI",),
    ("SSUBSCRIBE", "a"),
    ("SPUBLISH", "a", "m"),
    ("EXEC",),
    # GETEX, GETDEL
    ("SET", "s", "hello"),
    ("GETEX", "s"),
    ("TTL", "s"),
    ("GETEX", "s", "EX", "1000"),
    ("TTL", "s"),
    ("GETEX", "s", "PX", "2000000"),
    ("TTL", "s"),
    ("GETEX", "s", "EXAT", "99999999999"),
    ("EXPIRETIME", "s"),
    ("GETEX", "s", "PXAT", "99999999999000"),
    ("PEXPIRETIME", "s"),
    ("GETEX", "s", "PERSIST"),
    ("TTL", "s"),
    ("GETEX", "s", "PERSIST", "PERSIST"),
    ("GETEX", "s", "EX", "10", "EX", "20"),
    ("TTL", "s"),
    ("GETEX", "s", "EX", "10", "PX", "20"),
    ("GETEX", "s", "PERSIST", "EX", "10"),
    ("GETEX", "s", "EX", "10", "PERSIST"),
    ("GETEX", "s", "EX"),
    ("GETEX", "s", "KEEPTTL"),
    ("GETEX", "s", "NX"),
    ("GETEX", "s", "BOGUS"),
    ("GETEX", "s", "EX", "0"),
    ("GETEX", "s", "EX", "-1"),
    ("GETEX", "s", "EX", "abc"),
    ("GETEX", "s", "EX", "9223372036854775807"),
    ("GETEX", "s", "PX", "9223372036854775807"),
    ("GETEX", "s", "EXAT", "9223372036854775"),
    ("GETEX", "missing", "EX", "abc"),
    ("GETEX", "missing", "BOGUS"),
    ("GETEX", "missing"),
    ("GETEX", "s", "EXAT", "1"),
    ("EXISTS", "s"),
    ("SET", "s", "v"),
    ("GETEX", "s", "PXAT", "1"),
    ("EXISTS", "s"),
    ("GETEX",),
    ("RPUSH", "list", "a"),
    ("GETEX", "list"),
    ("GETEX", "list", "EX", "abc"),
    ("GETDEL", "list"),
    ("SET", "s", "v"),
    ("GETDEL", "s"),
    ("GETDEL", "s"),
    ("GETDEL", "s", "x"),
    # LCS
    ("MSET", "a", "ohmytext", "b", "mynewtext", "n", "12345", "m", "2x4y5"),
    ("LCS", "a", "b"),
    ("LCS", "a", "b", "LEN"),
    ("LCS", "a", "b", "IDX"),
    ("LCS", "a", "b", "IDX", "WITHMATCHLEN"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "4"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "-4"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "x"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN"),
    ("LCS", "a", "b", "IDX", "LEN"),
    ("LCS", "a", "b", "LEN", "IDX"),
    ("LCS", "a", "b", "BOGUS"),
    ("LCS", "n", "m"),
    ("LCS", "n", "m", "IDX", "WITHMATCHLEN"),
    ("LCS", "a", "missing"),
    ("LCS", "missing", "nothere", "IDX"),
    ("LCS", "missing", "nothere", "LEN"),
    ("LCS", "a", "list"),
    ("LCS", "list", "a", "LEN"),
    ("LCS", "a"),
    ("LCS", "a", "a", "LEN"),
    ("SET", "big1", "ab" * 300),
    ("SET", "big2", "ba" * 300),
    ("CONFIG", "SET", "proto-max-bulk-len", "1mb"),
    ("LCS", "big1", "big2", "LEN"),
    ("LCS", "big1", "a", "LEN"),
    ("CONFIG", "SET", "proto-max-bulk-len", "512mb"),
    ("LCS", "big1", "big2", "LEN"),
    # DUMP and RESTORE errors (payloads are compared in test_redis_dump.py)
    ("DUMP", "nosuch"),
    ("DUMP",),
    ("RESTORE", "r", "0"),
    ("RESTORE", "r", "0", "garbage"),
    ("RESTORE", "r", "0", ""),
    ("RESTORE", "r", "x", "garbage"),
    ("RESTORE", "r", "-1", "garbage"),
    ("RESTORE", "a", "0", "garbage"),
    ("RESTORE", "a", "x", "garbage", "REPLACE"),
    ("RESTORE", "r", "0", "garbage", "IDLETIME", "1", "FREQ", "2"),
    ("RESTORE", "r", "0", "garbage", "FREQ", "2", "IDLETIME", "1"),
    ("RESTORE", "r", "0", "garbage", "FREQ", "x"),
    ("RESTORE", "r", "0", "garbage", "FREQ"),
    ("RESTORE", "r", "0", "garbage", "NOPE"),
    # SLOWLOG, LATENCY, MEMORY, OBJECT and MONITOR's errors and fixed texts
    ("CONFIG", "SET", "slowlog-log-slower-than", "100000000"),
    ("CONFIG", "GET", "slowlog-log-slower-than"),
    ("SLOWLOG", "RESET"),
    ("SLOWLOG", "LEN"),
    ("SLOWLOG", "GET"),
    ("SLOWLOG", "GET", "-1"),
    ("SLOWLOG", "GET", "-2"),
    ("SLOWLOG", "GET", "x"),
    ("SLOWLOG", "GET", "1", "2"),
    ("SLOWLOG", "HELP"),
    ("SLOWLOG", "NOPE"),
    ("SLOWLOG",),
    ("SLOWLOG", "LEN", "x"),
    ("CONFIG", "SET", "slowlog-max-len", "x"),
    ("CONFIG", "SET", "slowlog-log-slower-than", "10000"),
    ("CONFIG", "GET", "slowlog-max-len"),
    ("LATENCY", "HELP"),
    ("LATENCY", "LATEST"),
    ("LATENCY", "HISTORY", "command"),
    ("LATENCY", "HISTORY"),
    ("LATENCY", "RESET"),
    ("LATENCY", "RESET", "command", "fast-command"),
    ("LATENCY", "DOCTOR"),
    ("CONFIG", "GET", "latency-monitor-threshold"),
    ("CONFIG", "SET", "latency-monitor-threshold", "-1"),
    ("CONFIG", "SET", "latency-monitor-threshold", "100000"),
    ("LATENCY", "DOCTOR"),
    ("LATENCY", "LATEST"),
    ("CONFIG", "SET", "latency-monitor-threshold", "0"),
    ("LATENCY", "NOPE"),
    ("MEMORY", "HELP"),
    ("MEMORY", "USAGE", "nosuch"),
    ("MEMORY", "USAGE", "a", "SAMPLES"),
    ("MEMORY", "USAGE", "a", "SAMPLES", "x"),
    ("MEMORY", "USAGE", "a", "BOGUS", "1"),
    ("MEMORY", "USAGE", "nosuch", "SAMPLES", "0"),
    ("MEMORY", "USAGE"),
    ("MEMORY", "PURGE"),
    ("MEMORY", "NOPE"),
    ("OBJECT", "HELP"),
    ("MULTI",),
    ("MONITOR",),
    ("EXEC",),
    ("COMMAND", "GETKEYS", "SORT", "abc", "STORE", "def"),
    ("COMMAND", "GETKEYS", "SORT", "abc", "BY", "w_*", "GET", "o_*", "STORE", "def", "LIMIT", "0", "1"),
    ("COMMAND", "GETKEYS", "SORT", "abc"),
    ("COMMAND", "GETKEYS", "SORT", "abc", "store", "x", "STORE", "y"),
    ("COMMAND", "GETKEYS", "SORT", "abc", "LIMIT", "0", "STORE", "x"),
    ("COMMAND", "GETKEYS", "SORT_RO", "abc", "STORE", "x"),
    ("COMMAND", "GETKEYSANDFLAGS", "LMOVE", "a", "b", "LEFT", "RIGHT"),
    ("COMMAND", "GETKEYSANDFLAGS", "SORT", "abc", "STORE", "def"),
    ("COMMAND", "GETKEYSANDFLAGS", "EVAL", "return 1", "0"),
    ("COMMAND", "GETKEYSANDFLAGS", "GET"),
    ("COMMAND", "GETKEYSANDFLAGS", "PING", "x"),
    ("COMMAND", "GETKEYSANDFLAGS", "NOSUCH", "x"),
    ("COMMAND", "GETKEYSANDFLAGS", "MSET", "a", "1", "b", "2"),
    # small server commands
    ("ROLE",),
    ("ROLE", "x"),
    ("CLIENT", "GETREDIR"),
    ("CLIENT", "GETREDIR", "x"),
    ("LASTSAVE", "x"),
    ("LOLWUT", "VERSION", "x"),
    ("DEBUG", "ERROR", "LOADING fake"),
    ("DEBUG",),
    # the cmsgpack library of scripts
    ("EVAL", "return cmsgpack.pack({1,2,3}, 'a', 1.5, -200, 0.1, {}, true, false, 300, 70000, 5000000000)", "0"),
    ("EVAL", "return cmsgpack.pack(-5000000000, -33, -129, -40000, string.rep('x', 40), string.rep('y', 300))", "0"),
    ("EVAL", "return cmsgpack.pack({a={b={c=1}}}, {[1]='x', [3]='y'}, 1/0, -1/0)", "0"),
    ("EVAL", "local t = {} for i = 1, 20 do t[i] = i end return cmsgpack.pack(t)", "0"),
    ("EVAL", "local t = {} for i = 1, 20 do t['k' .. i] = i end return #cmsgpack.pack(t)", "0"),
    ("EVAL", "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, 4}, {x = 'y'}, true, 2.5))}", "0"),
    ("EVAL", "local m = cmsgpack.unpack(ARGV[1]) return 'hello ' .. m['name']", "0", "\x81\xa4name\xa3Joe"),
    ("EVAL", "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2), 0)}", "0"),
    ("EVAL", "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}", "0"),
    ("EVAL", "return {cmsgpack.unpack(string.char(0xdc))}", "0"),
    ("EVAL", "\nreturn {cmsgpack.unpack(string.char(0xc1))}", "0"),
    ("EVAL", "return cmsgpack.pack()", "0"),
    ("EVAL", "local ok, e = pcall(cmsgpack.unpack, string.char(0xdc)) return ok", "0"),
    ("EVAL", "cmsgpack.pack = nil", "0"),
    # the struct library of scripts
    *[
        ("EVAL", script, "0")
        for script in (
            "return struct.pack('>iIhHbBlL', -2, 3, -4, 5, -6, 7, -8, 9)",
            "return struct.pack('<i2I3i8I9', -2, 3, -4, 5)",
            "return struct.pack('!4 b i b d', 1, 2, 3, 1.5)",
            "return struct.pack('fdxc3c0s', 1.5, 2.25, 'abcdef', 'xy', 'zz')",
            "return {struct.unpack('>iIhH', struct.pack('>iIhH', -2, 3, -4, 5))}",
            "return {struct.unpack('b c0 s', struct.pack('b c0 s', 3, 'abc', 'hi'))}",
            "return {struct.unpack('i', struct.pack('i', 7) .. 'xx', 1)}",
            "return {struct.unpack('c2', 'abcdef', 3)}",
            "return {struct.unpack('>l', struct.pack('>l', 2^53))}",
            "return struct.pack('i', 2.7) .. struct.pack('i', -2.7) .. struct.pack('i', '12')",
            "return struct.size('!8 b d i2 c5 x')",
            "return struct.size('s')",
            "return struct.size('c0')",
            "return struct.pack('z', 1)",
            "return struct.pack('i')",
            "return struct.pack('i', 'x')",
            "return struct.pack('c5', 'ab')",
            "return struct.pack(5, 1)",
            "return struct.pack('i33', 1)",
            "return struct.pack('!3 i', 1)",
            "return struct.unpack('i', 'ab')",
            "return struct.unpack('s', 'ab')",
            "return struct.unpack('c0', 'ab')",
            "return struct.unpack('i', 'abcd', 0)",
            "return struct.unpack('i')",
            "return cjson.encode({1, nil, 3})",
            "return cjson.encode({[5]=1})",
            "return cjson.encode({[1]=1, [20]=2})",
            "return cjson.encode({[11]=1})",
            "return cjson.encode({[1]=1,[2]=2,[3]=3,[4]=4,[5]=5,[6]=6,[13]=7})",
            "return cjson.encode({})",
            "local t = cmsgpack.unpack(ARGV[1] or string.rep(string.char(0x91), 600) .. string.char(1)) return type(t)",
        )
    ],
    # ACL channel permissions cover the shard channels
    ("ACL", "SETUSER", "sharder", "on", "nopass", "+@all", "~*", "resetchannels", "&news*"),
    ("AUTH", "sharder", "x"),
    ("SPUBLISH", "news1", "m"),
    ("SPUBLISH", "other", "m"),
    ("PUBLISH", "other", "m"),
    ("SSUBSCRIBE", "news1", "other"),
    ("AUTH", "default", "x"),
    ("ACL", "DELUSER", "sharder"),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Address, Address]]:
    """A real redis-server and ours, side by side."""
    tmp: Path = tmp_path_factory.mktemp("mdiff")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


def _run(address: Address, commands: list[tuple[str, ...]], hello: int | None) -> list[bytes]:
    client = RawClient(address)
    try:
        if hello is not None:
            client.call("HELLO", hello)
        return [client.call(*(a.encode("latin-1") for a in c)) for c in commands]
    finally:
        client.close()


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_misc_commands_match_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    real, ours = both
    expected = _run(real, CORPUS, hello)
    got = _run(ours, CORPUS, hello)
    mismatches = [(c, e, g) for c, e, g in zip(CORPUS, expected, got, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:20])


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice("abcd") for _ in range(rng.randint(0, 40)))


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_lcs_of_random_strings_matches_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    """The subsequence redis-server picks among equals, and its ranges, for many random pairs."""
    rng = random.Random(12)
    commands: list[tuple[str, ...]] = []
    for n in range(60):
        commands.append(("MSET", f"x{n}", _random_text(rng), f"y{n}", _random_text(rng)))
        commands.append(("LCS", f"x{n}", f"y{n}"))
        commands.append(("LCS", f"x{n}", f"y{n}", "IDX", "WITHMATCHLEN", "MINMATCHLEN", str(n % 3)))
    real, ours = both
    expected = _run(real, commands, hello)
    got = _run(ours, commands, hello)
    assert got == expected


def _monitor_session(address: Address, hello: int | None) -> list[bytes]:
    """What a MONITOR client sees of another client's commands, with the time and the port masked."""
    monitor, client = RawClient(address), RawClient(address)
    try:
        if hello is not None:
            monitor.call("HELLO", hello)
        client.call("CLIENT", "SETNAME", "worker")
        port = str(client.sock.getsockname()[1]).encode()
        assert monitor.call("MONITOR") == b"+OK\r\n"
        commands: list[tuple[str, ...]] = [
            ("SET", "k", 'quote" back\\ nl\n tab\t bell\x07 high\xe9 nul\x00'),
            ("GET", "k"),
            ("AUTH", "secret"),
            ("HELLO", "2", "AUTH", "default", "pw", "SETNAME", "worker"),
            ("GET",),
            ("NOSUCH", "x"),
            ("CONFIG", "GET", "maxmemory"),
            ("CLIENT", "ID"),
            ("CLIENT", "NOSUCH"),
            ("CLIENT", "ID", "x"),
            ("OBJECT", "ENCODING", "k"),
            ("SLOWLOG", "LEN"),
            ("MULTI",),
            ("INCR", "n"),
            ("INCR", "n"),
            ("EXEC",),
            ("EVAL", "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])", "1", "lk", "lv"),
            ("BLPOP", "nolist", "0.01"),  # blocks, then times out: shown when called
            ("SELECT", "3"),
            ("PING",),
            ("SELECT", "0"),
        ]
        for command in commands:
            client.call(*(a.encode("latin-1") for a in command))
        client.call("ECHO", "last")
        lines = []
        while True:
            line = monitor.reply()
            lines.append(line)
            if b'"ECHO" "last"' in line:
                break
        assert monitor.call("PING") == b"+PONG\r\n"  # a monitor still gets its replies
        own = monitor.reply()  # and sees its own command
        lines.append(own)
        out = []
        for line in lines:
            assert line[:1] == b"+" and line.endswith(b"\r\n"), line
            stamp, rest = line[1:].split(b" ", 1)
            assert stamp.count(b".") == 1 and len(stamp.split(b".")[1]) == 6, line
            out.append(rest.replace(b":" + port + b"]", b":PORT]"))
        out.append(monitor.call("RESET"))
        out.append(monitor.call("MONITOR"))
        monitor.send(cmd("MONITOR") + cmd("PING"))  # a second MONITOR has no reply
        out.append(monitor.reply())
        return out
    finally:
        monitor.close()
        client.close()


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_monitor_matches_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    real, ours = both
    for address in both:
        RawClient(address).call("FLUSHALL")
    expected = _monitor_session(real, hello)
    assert any(b"(redacted)" in line for line in expected)
    got = _monitor_session(ours, hello)
    masked = [line.split(b":", 1)[0] + b"]" + line.split(b"]", 1)[1] if line.startswith(b"[") else line for line in got]
    their_masked = [
        line.split(b":", 1)[0] + b"]" + line.split(b"]", 1)[1] if line.startswith(b"[") else line for line in expected
    ]
    assert masked == their_masked


def _slowlog_session(address: Address) -> list[object]:
    """Every command logged (threshold 0): the arguments, address and name of each entry, newest first."""
    client = RawClient(address)
    try:
        client.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        client.call("SLOWLOG", "RESET")
        client.call("CLIENT", "SETNAME", "slowpoke")
        client.call("SET", "k", "v" * 200)
        client.call("RPUSH", "l", *[str(i) for i in range(40)])
        client.call("AUTH", "x")
        client.call("MULTI")
        client.call("INCR", "n")
        client.call("EXEC")
        client.call("GET", "k")
        client.call("GET")
        length = client.call("SLOWLOG", "LEN")
        entries = client.call("SLOWLOG", "GET", "-1")
        two = client.call("SLOWLOG", "GET", "2")
        client.call("CONFIG", "SET", "slowlog-log-slower-than", "10000")
        client.call("CONFIG", "SET", "slowlog-max-len", "2")
        client.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        for _ in range(5):
            client.call("PING")
        capped = client.call("SLOWLOG", "LEN")
        client.call("CONFIG", "SET", "slowlog-max-len", "128")
        client.call("CONFIG", "SET", "slowlog-log-slower-than", "10000")
        port = str(client.sock.getsockname()[1]).encode()
        out: list[object] = [length, capped, two.count(b"\r\n*6\r\n") + two.startswith(b"*2\r\n*6\r\n")]
        # Each entry: drop id, time and duration (the server's own), keep the rest.
        for entry in entries.split(b"*6\r\n")[1:]:
            fields = entry.split(b"\r\n")
            out.append(b"\r\n".join(fields[3:]).replace(b":" + port, b":PORT"))
        return out
    finally:
        client.close()


def test_slowlog_matches_real_redis(both: tuple[Address, Address]) -> None:
    real, ours = both
    expected = _slowlog_session(real)
    assert _slowlog_session(ours) == expected


def _sharded_session(address: Address, hello: int | None) -> list[bytes]:
    """SSUBSCRIBE beside SUBSCRIBE and PSUBSCRIBE, SPUBLISH, PUBSUB counts, the subscribed context: every raw reply."""
    sub, other, pub = RawClient(address), RawClient(address), RawClient(address)
    out = []
    try:
        if hello is not None:
            sub.call("HELLO", hello)
        sub.send(
            cmd("SSUBSCRIBE", "sa", "sb") + cmd("SUBSCRIBE", "c") + cmd("PSUBSCRIBE", "p*") + cmd("SSUBSCRIBE", "sa")
        )
        out += [sub.reply() for _ in range(5)]
        out.append(other.call("SSUBSCRIBE", "sa"))
        out.append(pub.call("SPUBLISH", "sa", "one"))
        out += [sub.reply(), other.reply()]
        out.append(pub.call("SPUBLISH", "sb", "two"))
        out.append(sub.reply())
        out.append(pub.call("PUBLISH", "sa", "not-shard"))  # a plain channel of the same name has no subscriber
        out.append(pub.call("PUBSUB", "SHARDNUMSUB", "sa", "sb", "sc"))
        out.append(pub.call("PUBSUB", "NUMSUB", "c", "sa"))
        out.append(pub.call("PUBSUB", "NUMPAT"))
        out.append(pub.call("PUBSUB", "SHARDCHANNELS", "sb"))
        out.append(pub.call("PUBSUB", "CHANNELS"))
        for command in (("PING",), ("GET", "x"), ("SPUBLISH", "sa", "x"), ("PUBSUB", "NUMPAT"), ("SUNSUBSCRIBE", "zz")):
            out.append(sub.call(*command))
        sub.send(cmd("SUNSUBSCRIBE", "sb") + cmd("SUNSUBSCRIBE") + cmd("SUNSUBSCRIBE"))
        out += [sub.reply() for _ in range(3)]
        out.append(pub.call("SPUBLISH", "sa", "three"))
        out.append(other.reply())
        out.append(sub.call("UNSUBSCRIBE"))
        out.append(sub.call("PUNSUBSCRIBE"))
        out.append(sub.call("GET", "x"))
        out.append(other.call("RESET"))
        out.append(pub.call("SPUBLISH", "sa", "gone"))
        out.append(pub.call("PUBSUB", "SHARDCHANNELS"))
    finally:
        sub.close()
        other.close()
        pub.close()
    return out


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_sharded_pubsub_matches_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    real, ours = both
    expected = _sharded_session(real, hello)
    assert expected[-2] == b":0\r\n"
    assert _sharded_session(ours, hello) == expected
