"""Lua scripting against a real redis-server and ours: conversions, errors, sandbox, SCRIPT, BUSY and SCRIPT KILL;
the append-only file records a script's effects."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness, serve
from redis_wire import RawClient, cmd, real_redis, split_replies

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

CORPUS: list[tuple[str, ...]] = [
    ("SCRIPT", "FLUSH"),
    ("FLUSHALL",),
    ("EVAL", "return 1", "0"),
    ("EVAL", "return 3.99", "0"),
    ("EVAL", "return -3.99", "0"),
    ("EVAL", "return 'x'", "0"),
    ("EVAL", "return true", "0"),
    ("EVAL", "return false", "0"),
    ("EVAL", "return nil", "0"),
    ("EVAL", "return {1,2,{3,'x'},nil,5}", "0"),
    ("EVAL", "return {ok='fine'}", "0"),
    ("EVAL", "return {err='bad thing'}", "0"),
    ("EVAL", "return {err='WRONG bad thing'}", "0"),
    ("EVAL", "return redis.error_reply('My Error')", "0"),
    ("EVAL", "return redis.error_reply('-My Error')", "0"),
    ("EVAL", "return redis.status_reply('Fine')", "0"),
    ("EVAL", "return redis.sha1hex('')", "0"),
    ("EVAL", "x = 5", "0"),
    ("EVAL", "return y", "0"),
    ("EVAL", "return os", "0"),
    ("EVAL", "return loadfile", "0"),
    ("EVAL", "return require", "0"),
    ("EVAL", "return dofile", "0"),
    ("EVAL", "return io", "0"),
    ("EVAL", "return print", "0"),
    ("EVAL", "return redis.call('nosuch')", "0"),
    ("EVAL", "return redis.call('get')", "0"),
    ("EVAL", "return redis.call('get', {})", "0"),
    ("EVAL", "return redis.call('incr', 'str')", "0"),
    ("EVAL", "redis.call('set','str','x'); return redis.call('incr', 'str')", "1", "str"),
    ("EVAL", "return redis.pcall('incr', 'str')", "1", "str"),
    ("EVAL", "return redis.call('multi')", "0"),
    ("EVAL", "return redis.call('get', KEYS[1])", "1", "str"),
    ("EVAL", "return {KEYS[1], ARGV[1], #KEYS, #ARGV}", "1", "k", "a"),
    ("EVAL", "return 1", "2", "k"),
    ("EVAL", "return 1", "-1"),
    ("EVAL", "return 1", "x"),
    ("EVAL", "return (", "0"),
    ("EVAL", "error('boom')", "0"),
    ("EVAL", "error({err='TABLE boom'})", "0"),
    ("EVAL", "return redis.call('set', 'a', 1.5)", "0"),
    ("EVAL", "return redis.call('set', 'a', 10)", "0"),
    ("EVAL", "return redis.call('get', 'a')", "0"),
    ("EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"),
    ("SCRIPT", "LOAD", "return 7"),
    ("EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"),
    ("SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "abc"),
    ("SCRIPT", "KILL"),
    ("EVAL_RO", "return redis.call('set','a','b')", "0"),
    ("EVAL_RO", "return redis.call('get','a')", "0"),
    ("EVAL", "return redis.call('ping')", "0"),
    ("EVAL", "return redis.call('hgetall','nohash')", "0"),
    ("EVAL", "redis.call('hset','h','f','v'); return redis.call('hgetall','h')", "0"),
    ("EVAL", "return redis.setresp(3)", "0"),
    ("EVAL", "redis.setresp(3); return redis.call('hgetall','h')", "0"),
    ("EVAL", "redis.setresp(3); return redis.call('get','nokey')", "0"),
    ("EVAL", "return redis.call('get','nokey')", "0"),
    ("EVAL", "return type(redis.call('get','nokey'))", "0"),
    ("EVAL", "return {1,false,3}", "0"),
    ("EVAL", "return {1,nil,3}", "0"),
    ("EVAL", "return {double=3.5}", "0"),
    ("EVAL", "return redis.call('select', 5)", "0"),
    ("EVAL", "return type(bit)", "0"),
    ("EVAL", "return type(cjson)", "0"),
    ("EVAL", "return _G.x", "0"),
    ("EVAL", "return redis.log(redis.LOG_WARNING, 'hi')", "0"),
    ("EVAL", "return tostring(1e20)", "0"),
    ("EVAL", "return 1e20", "0"),
    ("EVAL", "return unpack({1,2})", "0"),
    ("EVAL", "return loadstring('return 1')()", "0"),
    ("EVAL", "return redis.call('eval','return 1','0')", "0"),
    ("EVAL", "return redis.call('set','x')", "0"),
    ("EVAL", "local t = {} ; t[1]='a'; t[3]='c'; return t", "0"),
    ("EVAL", "return {1,{err='inner'}}", "0"),
    ("EVAL", "return {1,{ok='inner'}}", "0"),
    ("EVAL", "return math.huge", "0"),
    ("EVAL", "return -math.huge", "0"),
    ("EVAL", "return type(getfenv)", "0"),
    ("EVAL", "return type(setfenv)", "0"),
    ("EVAL", "return type(debug)", "0"),
    ("EVAL", "return type(newproxy)", "0"),
    ("EVAL", "return type(gcinfo)", "0"),
    ("EVAL", "return type(collectgarbage)", "0"),
    ("EVAL", "return type(module)", "0"),
    ("EVAL", "return type(load)", "0"),
    ("EVAL", "string.x = 1", "0"),
    ("EVAL", "redis.x = 1", "0"),
    ("EVAL", "return redis.call('config','get','x')", "0"),
    ("EVAL", "return redis.call('client','id')", "0"),
    ("EVAL", "return redis.call('script','load','return 1')", "0"),
    ("EVAL", "return redis.call('lpush','str','x')", "0"),
    ("EVAL", "local ok, e = pcall(redis.call, 'lpush','str','x'); return e", "0"),
    ("EVAL", "return redis.pcall('lpush','str','x')", "0"),
    ("EVAL", "return {1, redis.pcall('lpush','str','x')}", "0"),
    ("EVAL", "return redis.pcall('nosuch')", "0"),
    ("EVAL", "error('x', 0)", "0"),
    ("EVAL", "error()", "0"),
    ("EVAL", "return {err=5}", "0"),
    ("EVAL", "return {ok=5}", "0"),
    ("EVAL", "return redis.error_reply()", "0"),
    ("EVAL", "return redis.sha1hex()", "0"),
    ("EVAL", "return redis.call()", "0"),
    ("SCRIPT", "FLUSH", "x"),
    ("SCRIPT", "FLUSH"),
    ("SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"),
    ("SCRIPT", "LOAD", "return ("),
    ("EVAL", "return redis.call('set',KEYS[1],'x') ", "1", "ab"),
    ("SET", "str", "x"),
    ("EVAL", "local ok, e = pcall(redis.call, 'lpush','str','x'); return type(e)", "0"),
    ("EVAL", "local ok, e = pcall(redis.call, 'lpush','str','x'); return {type(e), tostring(e)}", "0"),
    ("EVAL", "local ok, e = pcall(redis.call, 'lpush','str','x'); return e.err", "0"),
    ("EVAL", "local ok, e = pcall(redis.call, 'nosuch'); return {type(e), e.err}", "0"),
    ("EVAL", "local ok, e = pcall(error, 'x'); return {type(e), e}", "0"),
    ("EVAL", "local e = redis.pcall('lpush','str','x'); return {type(e), e.err}", "0"),
    ("EVAL", "local e = redis.error_reply('X y'); return {type(e), e.err}", "0"),
    ("EVAL", "local e = redis.status_reply('X y'); return {type(e), e.ok}", "0"),
    ("EVAL", "return {err='x', ok='y'}", "0"),
    ("EVAL", "\n\nerror('boom')", "0"),
    ("EVAL", "local function f() error('deep') end\n f()", "0"),
    ("EVAL", "local function f() redis.call('lpush','str','x') end\n\n f()", "0"),
    ("EVAL", "error('WRONG boom', 0)", "0"),
    ("EVAL", "error({err='noprefix'})", "0"),
    ("EVAL", "return redis.error_reply('')", "0"),
    ("EVAL", "return {err=''}", "0"),
    ("EVAL", "return redis.call('ECHO', 12.5)", "0"),
    ("EVAL", "return redis.call('ECHO', 1e20)", "0"),
    ("EVAL", "return redis.call('ECHO', -0.1)", "0"),
    ("EVAL", "return redis.call('ECHO', 3)", "0"),
    ("EVAL", "return redis.call('ECHO', true)", "0"),
    ("EVAL", "return tonumber('0x10')", "0"),
    ("EVAL", "return {1, 2.5, 'a', true, false}", "0"),
    ("EVAL", "return redis.call('INCRBYFLOAT','fl','1.5')", "0"),
    ("EVAL", "return redis.call('TYPE','fl')", "0"),
    ("EVAL", "local t = redis.call('TYPE','fl'); return t.ok", "0"),
    ("EVAL", "return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 1), bit.lshift(1, 31), bit.tohex(255)}", "0"),
    ("EVAL", "return {bit.bnot(0), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.tobit(2^32 + 5)}", "0"),
    ("EVAL", "return cjson.encode({1, 2, 'x'})", "0"),
    ("EVAL", "local t = cjson.decode(ARGV[1]); return {t.a[1], t.a[3].b}", "0", '{"a":[1,2,{"b":"c"}]}'),
    ("EVAL", "return redis.error_reply('NoSpace')", "0"),
    ("EVAL", "return {redis.call('SET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[1])}", "1", "sk", "sv"),
    ("EVAL", "redis.call('SELECT', 3); redis.call('SET', 'in3', 'x'); return redis.call('DBSIZE')", "0"),
    ("GET", "in3"),
    ("SELECT", "3"),
    ("GET", "in3"),
    ("SELECT", "0"),
    ("EVAL", "redis.setresp(3); return redis.call('HGETALL', 'h')", "0"),
    ("EVAL", "redis.setresp(3); local r = redis.call('HGETALL', 'h'); return r.map.f", "0"),
    ("EVAL", "redis.setresp(3); return {type(redis.call('GET', 'nokey'))}", "0"),
    ("EVAL", "redis.setresp(4)", "0"),
    ("EVAL", "return redis.call('SADD', 'st', 'm')", "0"),
    ("EVAL", "redis.setresp(3); return redis.call('SMEMBERS', 'st')", "0"),
    ("EVAL", "return {map={a=1}}", "0"),
    ("EVAL", "return {set={a=true}}", "0"),
    ("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "x"),
    ("EVAL", "return 1", "0", "extra", "args"),
    ("EVAL",),
    ("EVAL", "return 1"),
    ("SCRIPT",),
    ("SCRIPT", "BOGUS"),
    ("SCRIPT", "LOAD"),
    ("SCRIPT", "EXISTS"),
    ("SCRIPT", "FLUSH", "ASYNC"),
    ("SCRIPT", "FLUSH", "SYNC", "x"),
    ("EVAL", "return redis.call('BLPOP', 'nolist', 0)", "0"),
    ("EVAL", "redis.call('RPUSH', 'bl', 'x') return redis.call('BLPOP', 'bl', 0)", "0"),
    ("EVAL", "return redis.call('ZADD', 'z', 1, 'a', 2.5, 'b')", "0"),
    ("EVAL", "return redis.call('ZRANGE', 'z', 0, -1, 'WITHSCORES')", "0"),
    ("EVAL", "redis.setresp(3) return redis.call('ZRANGE', 'z', 0, -1, 'WITHSCORES')", "0"),
    ("EVAL", "redis.setresp(3) return redis.call('ZSCORE', 'z', 'b')", "0"),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """A real redis-server and ours, both answering BUSY after 100 ms of script."""
    tmp: Path = tmp_path_factory.mktemp("lua")
    settings = {"services": {"redis": {"appendonly": False, "busy_reply_threshold": 100}}}
    with real_redis(tmp) as real, serve(RedisService, data_dir=tmp / "ours", settings=settings) as srv:
        client = RawClient(real)
        assert client.call("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
        client.close()
        yield real, srv.address()


def _run(address: tuple[str, int], commands: list[tuple[str, ...]], hello: int | None) -> list[bytes]:
    client = RawClient(address)
    try:
        if hello is not None:
            client.call("HELLO", hello)
        return [client.call(*c) for c in commands]
    finally:
        client.close()


@needs_redis
@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_scripts_match_real_redis(both: tuple[tuple[str, int], tuple[str, int]], hello: int | None) -> None:
    real, ours = both
    expected = _run(real, CORPUS, hello)
    got = _run(ours, CORPUS, hello)
    mismatches = [(c, e, g) for c, e, g in zip(CORPUS, expected, got, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:20])


def _wait_busy(client: RawClient) -> bytes:
    """PING until the server answers BUSY (a script is past the threshold); return that reply."""
    deadline = time.monotonic() + 60  # a safety net only
    while time.monotonic() < deadline:
        reply = client.call("PING")
        if reply.startswith(b"-BUSY"):
            return reply
        time.sleep(0.02)
    raise AssertionError("the server never reported BUSY")


def _kill_session(address: tuple[str, int]) -> list[bytes]:
    """A runaway script, BUSY for the others, SCRIPT KILL, and the server answering again."""
    runner, other = RawClient(address, timeout=60), RawClient(address, timeout=60)
    try:
        other.call("SET", "k", "before")
        runner.send(cmd("EVAL", "local n = 0 while true do n = n + 1 end", "0"))
        out = [_wait_busy(other)]
        other.send(cmd("MULTI"))
        out.append(other.reply())
        out.append(other.call("GET", "k"))  # refused, and the transaction is doomed
        out.append(other.call("DISCARD"))
        out.append(other.call("SCRIPT", "KILL"))
        out.append(runner.reply())
        out.append(other.call("PING"))
        out.append(runner.call("GET", "k"))
        out.append(other.call("SCRIPT", "KILL"))
        return out
    finally:
        runner.close()
        other.close()


@needs_redis
def test_busy_and_script_kill_match_real_redis(both: tuple[tuple[str, int], tuple[str, int]]) -> None:
    real, ours = both
    expected = _kill_session(real)
    got = _kill_session(ours)
    # The runner's error names the script's line, which is the loop's either way.
    assert got == expected


def test_a_script_that_wrote_is_unkillable(tmp_path: Path) -> None:
    """SCRIPT KILL refuses a script that already wrote; it runs to its end (here: until TIME moves on)."""
    settings = {"services": {"redis": {"appendonly": False, "busy_reply_threshold": 50}}}
    script = (
        "redis.call('SET', KEYS[1], 'written') "
        "local stop = tonumber(redis.call('TIME')[1]) + 2 "
        "while tonumber(redis.call('TIME')[1]) < stop do end "
        "return redis.call('GET', KEYS[1])"
    )
    with serve(RedisService, data_dir=tmp_path, settings=settings) as srv:
        runner, other = RawClient(srv.address(), timeout=60), RawClient(srv.address(), timeout=60)
        runner.send(cmd("EVAL", script, "1", "w"))
        assert _wait_busy(other).startswith(b"-BUSY")
        assert other.call("SCRIPT", "KILL").startswith(b"-UNKILLABLE Sorry the script already executed write")
        assert runner.reply() == b"$7\r\nwritten\r\n"
        assert other.call("GET", "w") == b"$7\r\nwritten\r\n"
        runner.close()
        other.close()


# --------------------------------------------------------------------------- in memory


def test_aof_records_the_effects_not_the_script(tmp_path: Path) -> None:
    script = (
        "local t = redis.call('TIME') "
        "redis.call('SET', KEYS[1], t[1] .. '.' .. t[2]) "
        "redis.call('INCRBY', KEYS[2], 5) "
        "redis.call('EXPIRE', KEYS[2], 100) "
        "return redis.call('GET', KEYS[1])"
    )
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(cmd("EVAL", script, "2", "stamp", "n") + cmd("EVAL", "return redis.call('GET', 'n')", "0"))
        stamp, n = split_replies(client.read())
        assert n == b"$1\r\n5\r\n"
    data = (tmp_path / "appendonly.aof").read_bytes()
    assert b"EVAL" not in data and b"TIME" not in data
    assert data.count(b"MULTI") == 1 and data.count(b"EXEC") == 1  # the read-only script left nothing
    assert data.index(b"MULTI") < data.index(b"INCRBY") < data.index(b"PEXPIREAT") < data.index(b"EXEC")
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(cmd("GET", "stamp") + cmd("GET", "n") + cmd("TTL", "n"))
        assert split_replies(client.read()) == [stamp, b"$1\r\n5\r\n", b":100\r\n"]


def test_a_script_touches_watched_keys(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        watcher, other = h.connect(), h.connect()
        watcher.send(cmd("WATCH", "k"))
        watcher.read()
        other.send(cmd("EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", "k"))
        other.read()
        watcher.send(cmd("MULTI") + cmd("GET", "k") + cmd("EXEC"))
        assert split_replies(watcher.read())[-1] == b"*-1\r\n"


def test_scripts_are_atomic_among_clients(tmp_path: Path) -> None:
    """Clients racing a read-modify-write script lose no update (the script runs as one step)."""
    script = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], v + 1) return v + 1"
    settings = {"services": {"redis": {"appendonly": False}}}
    with serve(RedisService, data_dir=tmp_path, settings=settings) as srv:
        sha = RawClient(srv.address()).call("SCRIPT", "LOAD", script).split(b"\r\n")[1]

        def work() -> None:
            client = RawClient(srv.address())
            client.send(b"".join(cmd("EVALSHA", sha, "1", "counter") for _ in range(200)))
            for _ in range(200):
                client.reply()
            client.close()

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert RawClient(srv.address()).call("GET", "counter") == b"$3\r\n800\r\n"


def test_sandbox_has_no_way_out(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        probes = ["os", "io", "require", "loadfile", "dofile", "package", "debug", "python", "getfenv", "setfenv"]
        client.send(b"".join(cmd("EVAL", f"return type({name})", "0") for name in probes))
        for reply in split_replies(client.read()):
            assert reply.startswith(b"-ERR user_script:1: Script attempted to access nonexistent global variable")
        # Nor through what is there: the string metatable, loadstring'd code, or a library table.
        client.send(
            cmd("EVAL", "return loadstring('return os')()", "0")
            + cmd("EVAL", "string.rep = nil", "0")
            + cmd("EVAL", "return type(getmetatable('').__index.rep)", "0")
        )
        replies = split_replies(client.read())
        assert replies[0].startswith(b"-ERR") and b"nonexistent global variable 'os'" in replies[0]
        assert b"Attempt to modify a readonly table" in replies[1]
        assert replies[2] == b"$8\r\nfunction\r\n"


def test_a_script_inside_a_transaction_is_one_unit_in_the_aof(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(
            cmd("MULTI")
            + cmd("SET", "a", "1")
            + cmd("EVAL", "return redis.call('INCR', KEYS[1])", "1", "a")
            + cmd("SET", "b", "2")
            + cmd("EXEC")
        )
        assert split_replies(client.read())[-1] == b"*3\r\n+OK\r\n:2\r\n+OK\r\n"
    data = (tmp_path / "appendonly.aof").read_bytes()
    assert data.count(b"MULTI") == 1 and data.count(b"EXEC") == 1
    assert data.index(b"MULTI") < data.index(b"INCR") < data.index(b"$1\r\nb\r\n") < data.index(b"EXEC")
