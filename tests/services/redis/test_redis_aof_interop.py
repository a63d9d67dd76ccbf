"""Our append-only file read by redis-server 7.0 and redis-check-aof, before and after a rewrite."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import serve
from redis_wire import real_redis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-check-aof") is None,
    reason="redis-server and redis-check-aof (redis-tools) are not installed",
)

DEADLINE = 60.0
DATABASES = (0, 3)


def populate(r: redis.Redis) -> None:
    """Every type through many kinds of write (each recorded its own way), in two databases."""
    r.set("s", "hello")
    r.set("n", 10)
    r.incrby("n", 5)
    r.incrbyfloat("f", "1.1")
    r.append("s", " world")
    r.set("ttl", "v", ex=1000)
    r.set("pttl", "v", px=2_000_000)
    r.expire("s", 5000)
    r.set("short", "v", px=1)  # expired by the time the file is read
    r.setrange("range", 5, "x")
    r.rpush("l", *range(100))
    r.lpush("l", "head")
    r.lrem("l", 1, 50)
    r.lmove("l", "l2", "LEFT", "RIGHT")
    r.ltrim("l", 0, 80)
    r.hset("h", mapping={f"f{i}": i for i in range(80)})
    r.hincrbyfloat("h", "f1", 0.5)
    r.hdel("h", "f2")
    r.sadd("set", *range(70))
    r.spop("set")
    r.smove("set", "set2", 10)
    r.zadd("z", {"a": 1.5, "b": float("inf"), "c": float("-inf"), "d": 1 / 3})
    r.zincrby("z", 2, "a")
    r.zadd("bigz", {f"m{i}": i / 7 for i in range(150)})
    r.zunionstore("zu", ["z", "bigz"])
    r.sort("l", start=0, num=5, store="sorted")
    r.rename("l2", "renamed")
    r.copy("h", "hcopy")
    r.eval("redis.call('SET', 'by-script', ARGV[1]); redis.call('RPUSH', 'sl', 'x', 'y')", 0, "v")
    pipe = r.pipeline(transaction=True)
    pipe.incr("tx")
    pipe.sadd("txset", "a", "b")
    pipe.execute()
    ids = [r.xadd("st", {"n": i, "k": "v"}) for i in range(120)]
    r.xgroup_create("st", "g", id="0")
    r.xgroup_create("st", "g2", id="$")
    r.xreadgroup("g", "alice", {"st": ">"}, count=10)
    r.xreadgroup("g", "bob", {"st": ">"}, count=5)
    r.xclaim("st", "g", "carol", 0, [ids[0], ids[1]])
    r.xack("st", "g", ids[2])
    r.xgroup_createconsumer("st", "g", "dave")
    r.xdel("st", ids[50], ids[51])
    r.xadd("capped", {"a": 1}, id="1-1")
    r.xadd("capped", {"a": 2}, id="2-1", maxlen=1)
    r.xadd("emptied", {"a": 1}, id="5-1")
    r.xdel("emptied", "5-1")
    r.xgroup_create("mk", "g", id="$", mkstream=True)
    time.sleep(0.01)  # "short" is past its deadline


def populate_db3(r: redis.Redis) -> None:
    r.set("in3", "x", ex=3000)
    r.rpush("l3", "a", "b")


def dump(r: redis.Redis) -> dict[bytes, Any]:
    """Every key of the client's database: type, value, absolute deadline; streams with their state."""
    out: dict[bytes, Any] = {}
    for key in sorted(r.keys("*")):
        kind = r.type(key)
        if kind == b"string":
            value: Any = r.get(key)
        elif kind == b"list":
            value = r.lrange(key, 0, -1)
        elif kind == b"hash":
            value = r.hgetall(key)
        elif kind == b"set":
            value = sorted(r.smembers(key))
        elif kind == b"zset":
            value = r.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            info = r.xinfo_stream(key)
            for volatile in ("radix-tree-keys", "radix-tree-nodes"):
                info.pop(volatile, None)
            groups = []
            for group in r.xinfo_groups(key):
                name = group["name"]
                pending = r.xpending_range(key, name, "-", "+", 1000)
                consumers = r.xinfo_consumers(key, name)
                groups.append(
                    (
                        group,
                        [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pending],
                        [(c["name"], c["pending"]) for c in consumers],
                    )
                )
            value = (r.xrange(key), info, groups)
        else:
            raise AssertionError(f"unexpected type {kind!r}")
        out[key] = (kind, value, r.pexpiretime(key))
    return out


def dump_all(address: tuple[str, int]) -> dict[int, dict[bytes, Any]]:
    result = {}
    for db in DATABASES:
        r = redis.Redis(host=address[0], port=address[1], db=db, socket_timeout=DEADLINE)
        result[db] = dump(r)
        r.close()
    return result


def wait_loaded(address: tuple[str, int]) -> None:
    r = redis.Redis(host=address[0], port=address[1], socket_timeout=DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            if not r.info("persistence")["loading"]:
                break
        except redis.BusyLoadingError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r.close()


def ours_on(folder: Path) -> dict[int, dict[bytes, Any]]:
    with serve(RedisService, data_dir=folder) as server:
        address = server.address()
        wait_loaded(address)
        return dump_all(address)


def redis_server_on(folder: Path) -> dict[int, dict[bytes, Any]]:
    """redis-server 7.0 started with appendonly on a directory holding an old-style appendonly.aof."""
    with real_redis(folder, "--appendonly", "yes") as address:
        wait_loaded(address)
        state = dump_all(address)
    # 7.0 took the file over as the base of its multi-part AOF (so it really read ours).
    assert (folder / "appendonlydir").is_dir()
    return state


def check_aof(path: Path) -> None:
    done = subprocess.run(["redis-check-aof", str(path)], capture_output=True, timeout=DEADLINE, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 0 and b"is valid" in text, text.decode(errors="replace")


def copy_aof(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    target = folder / "appendonly.aof"
    shutil.copyfile(source, target)
    return target


@pytest.mark.heavy
def test_redis_server_loads_our_file_before_and_after_a_rewrite(tmp_path: Path) -> None:
    data = tmp_path / "ours"
    aof = data / "redis" / "appendonly.aof"
    with serve(RedisService, data_dir=data) as server:
        host, port = server.address()
        r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
        populate(r)
        populate_db3(redis.Redis(host=host, port=port, db=3, socket_timeout=DEADLINE))
        r.close()
        time.sleep(0.2)  # "short" expired by the server itself (its DEL is in the file)
        live = {"before": dump_all((host, port))}
    before = copy_aof(aof, tmp_path / "before")
    assert b"MULTI" in before.read_bytes() and b"PXAT" in before.read_bytes()

    with serve(RedisService, data_dir=data) as server:
        host, port = server.address()
        r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
        assert r.bgrewriteaof() in (True, b"Background append only file rewriting started")
        r.set("during-or-after", "1")
        deadline = time.monotonic() + DEADLINE
        while r.info("persistence")["aof_rewrite_in_progress"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
        r.hset("h", "after", "rewrite")
        r.close()
        live["after"] = dump_all((host, port))
    after = copy_aof(aof, tmp_path / "after")
    assert b"XSETID" in after.read_bytes() and b"MULTI" not in after.read_bytes()

    for stage, path in (("before", before), ("after", after)):
        check_aof(path)
        # Each server gets a copy of its own (ours may append, redis-server moves the file into its directory).
        theirs = redis_server_on(copy_aof(path, path.parent / "theirs").parent)
        ours = ours_on(copy_aof(path, path.parent / "ours" / "redis").parent.parent)
        assert ours == theirs == live[stage]
        assert set(ours[0]) >= {b"s", b"l", b"h", b"set", b"z", b"st", b"mk", b"emptied"} and b"in3" in ours[3]
        assert b"short" not in ours[0]
    assert ours[0][b"h"][1][b"after"] == b"rewrite" and ours[0][b"during-or-after"][1] == b"1"

    # And back: redis-server rewrites the data set as commands (no RDB preamble); we load its base and
    # incremental files, put end to end as one old-style file.
    theirs_dir = tmp_path / "theirs-rewrite"
    copy_aof(after, theirs_dir)
    with real_redis(theirs_dir, "--appendonly", "yes", "--aof-use-rdb-preamble", "no") as address:
        wait_loaded(address)
        r = redis.Redis(host=address[0], port=address[1], socket_timeout=DEADLINE)
        r.bgrewriteaof()
        deadline = time.monotonic() + DEADLINE
        while (info := r.info("persistence"))["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        r.close()
    parts = sorted((theirs_dir / "appendonlydir").glob("appendonly.aof.*.base.aof"))
    parts += sorted((theirs_dir / "appendonlydir").glob("appendonly.aof.*.incr.aof"))
    assert parts and parts[0].read_bytes().startswith(b"*")
    merged = tmp_path / "from-redis" / "redis"
    merged.mkdir(parents=True)
    (merged / "appendonly.aof").write_bytes(b"".join(part.read_bytes() for part in parts))
    assert ours_on(merged.parent) == live["after"]


def test_redis_check_aof_sees_a_truncated_file_as_we_do(tmp_path: Path) -> None:
    with serve(RedisService, data_dir=tmp_path) as server:
        host, port = server.address()
        r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
        for i in range(50):
            r.set(f"k{i}", i)
        r.close()
    path = tmp_path / "redis" / "appendonly.aof"
    check_aof(path)
    whole = path.read_bytes()
    path.write_bytes(whole + b"*3\r\n$3\r\nSET\r\n$2\r\nzz")
    done = subprocess.run(["redis-check-aof", str(path)], capture_output=True, timeout=DEADLINE, check=False)
    assert done.returncode != 0 and b"ok_up_to=%d" % len(whole) in done.stdout + done.stderr
    with serve(RedisService, data_dir=tmp_path) as server:
        host, port = server.address()
        r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
        assert r.dbsize() == 50
        r.close()
    assert path.read_bytes() == whole  # cut back where redis-check-aof says the valid part ends
    check_aof(path)
