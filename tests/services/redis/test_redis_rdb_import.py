"""redis-server 7.0's own files loaded by ours: a dump.rdb, and an appendonlydir with an RDB base and commands.

Each data set is read back key by key (type, value, absolute deadline, stream
entries, counters, groups, pending entries and consumers) from redis-server
while it ran, from redis-server restarted on its files, and from ours
started on a copy of them: all must agree.  Then ours is restarted on the
append-only file it wrote after the import (the imported files removed), and
redis-server is started on that file too.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import serve
from redis_wire import real_redis
from test_redis_aof_interop import dump, populate, populate_db3, wait_loaded
from test_redis_dump import _fill

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

DEADLINE = 60.0
DBS = (0, 1, 3, 15)


def fill(address: tuple[str, int]) -> None:
    """Every type and encoding redis-server 7.0 writes, deadlines (ms and s), several databases."""
    r0 = redis.Redis(*address, db=0, socket_timeout=DEADLINE)
    _fill(r0)
    r0.set("embstr", "short string")  # embstr; "str"/"int"/"long" of _fill are raw, int and LZF
    r0.set("negative", -123456789)
    r0.set("seconds", "v", ex=5000)
    r0.set("millis", "v", px=7_000_123)
    r0.rpush("quicklist", *[f"item-{i}" * 10 for i in range(3000)])  # several quicklist nodes
    r0.expire("hash", 9000)
    r0.close()
    r1 = redis.Redis(*address, db=1, socket_timeout=DEADLINE)
    populate(r1)
    r1.close()
    r3 = redis.Redis(*address, db=3, socket_timeout=DEADLINE)
    populate_db3(r3)
    r3.close()
    r15 = redis.Redis(*address, db=15, socket_timeout=DEADLINE)
    r15.hset("last-db", mapping={"a": "1"})
    r15.close()


def read_all(address: tuple[str, int]) -> dict[int, dict[bytes, Any]]:
    wait_loaded(address)
    out = {}
    for db in DBS:
        r = redis.Redis(*address, db=db, socket_timeout=DEADLINE)
        out[db] = dump(r)
        r.close()
    return out


def ours_on(folder: Path, **settings: Any) -> tuple[dict[int, dict[bytes, Any]], dict[str, Any]]:
    """Our service started on *folder* (its files in folder/redis): the data set and INFO persistence."""
    with serve(RedisService, data_dir=folder, settings={"services": {"redis": settings}} if settings else None) as s:
        state = read_all(s.address())
        r = redis.Redis(*s.address(), socket_timeout=DEADLINE)
        info = r.info("persistence")
        r.close()
    return state, info


def test_a_dump_rdb_loads_key_by_key_as_redis_server_loads_it(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    with real_redis(theirs) as address:
        fill(address)
        r = redis.Redis(*address, socket_timeout=DEADLINE)
        r.set("expiring", "x", px=300)
        assert r.save()
        live = read_all(address)
        r.close()
    assert b"expiring" in live[0]
    time.sleep(0.5)  # "expiring" is past its deadline in the file: neither server loads it
    del live[0][b"expiring"]
    rdb = (theirs / "dump.rdb").read_bytes()
    assert rdb.startswith(b"REDIS0010")

    again = tmp_path / "theirs-again"
    again.mkdir()
    (again / "dump.rdb").write_bytes(rdb)
    with real_redis(again) as address:
        restarted = read_all(address)

    ours_dir = tmp_path / "ours"
    (ours_dir / "redis").mkdir(parents=True)
    (ours_dir / "redis" / "dump.rdb").write_bytes(rdb)
    ours, info = ours_on(ours_dir)
    assert ours == restarted == live
    # "expiring", and db 1's "short" unless redis-server's expiry cycle removed it before SAVE.
    assert info["rdb_last_load_keys_expired"] in (1, 2)
    assert info["rdb_last_load_keys_loaded"] == sum(map(len, live.values()))
    # Every encoding was there to be read.
    assert {b"intset", b"bigset", b"bighash", b"bigzset", b"stream", b"long", b"quicklist"} <= set(ours[0])
    assert ours[1][b"st"][2] and ours[1][b"mk"][0] == b"stream"

    # The import was written as our append-only file: it alone gives the same data set next time.
    aof = ours_dir / "redis" / "appendonly.aof"
    assert aof.read_bytes().startswith(b"*2\r\n$6\r\nSELECT")
    (ours_dir / "redis" / "dump.rdb").write_bytes(b"not loaded any more")
    assert ours_on(ours_dir)[0] == live
    # redis-server takes our file over as its own (the way back).
    back = tmp_path / "back"
    back.mkdir()
    shutil.copyfile(aof, back / "appendonly.aof")
    with real_redis(back, "--appendonly", "yes") as address:
        assert read_all(address) == live


def test_with_appendonly_off_a_dump_rdb_is_loaded_and_nothing_written(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    with real_redis(theirs) as address:
        fill(address)
        redis.Redis(*address).save()
        live = read_all(address)
    ours_dir = tmp_path / "ours" / "redis"
    ours_dir.mkdir(parents=True)
    shutil.copyfile(theirs / "dump.rdb", ours_dir / "snapshot.rdb")
    ours, info = ours_on(ours_dir.parent, appendonly=False, dbfilename="snapshot.rdb")
    assert ours == live and info["aof_enabled"] == 0
    assert sorted(p.name for p in ours_dir.iterdir()) == ["snapshot.rdb"]


def test_an_appendonlydir_with_an_rdb_base_and_incremental_commands_loads(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    with real_redis(theirs, "--appendonly", "yes", "--aof-use-rdb-preamble", "yes") as address:
        fill(address)
        r = redis.Redis(*address, socket_timeout=DEADLINE)
        r.bgrewriteaof()
        deadline = time.monotonic() + DEADLINE
        while (info := r.info("persistence"))["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # Written after the rewrite: these go to the incremental file.
        r.set("after", "rewrite")
        r.rpush("quicklist", "tail")
        r.hset("bighash", "f1", "changed")
        r.delete("str")
        r.xadd("stream", {"late": "1"})
        r.xreadgroup("g", "c3", {"stream": ">"}, count=1)
        r.pexpire("embstr", 8_000_000)
        pipe = r.pipeline(transaction=True)
        pipe.incr("tx-counter")
        pipe.sadd("set", "added-in-tx")
        pipe.execute()
        redis.Redis(*address, db=3).set("db3-after", "x")
        live = read_all(address)
        r.close()
    folder = theirs / "appendonlydir"
    manifest = (folder / "appendonly.aof.manifest").read_text()
    base = next(folder.glob("appendonly.aof.*.base.rdb"))
    incr = sorted(folder.glob("appendonly.aof.*.incr.aof"))
    assert base.read_bytes().startswith(b"REDIS") and incr and b"rewrite" in incr[-1].read_bytes()
    assert "type b" in manifest and "type i" in manifest
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    ours_dir = tmp_path / "ours"
    shutil.copytree(folder, ours_dir / "redis" / "appendonlydir")
    ours, info = ours_on(ours_dir)
    assert ours == live
    assert ours[0][b"after"][1] == b"rewrite" and b"str" not in ours[0] and ours[3][b"db3-after"][1] == b"x"
    # redis-server's files are left as they were; ours is written beside them and used from now on.
    assert {p.name: p.read_bytes() for p in (ours_dir / "redis" / "appendonlydir").iterdir()} == before
    shutil.rmtree(ours_dir / "redis" / "appendonlydir")
    assert ours_on(ours_dir)[0] == live

    # An old-style file with an RDB preamble (what redis-server 6 writes): the base and the commands in one file.
    single = tmp_path / "single" / "redis"
    single.mkdir(parents=True)
    (single / "appendonly.aof").write_bytes(base.read_bytes() + b"".join(p.read_bytes() for p in incr))
    assert ours_on(single.parent)[0] == live
