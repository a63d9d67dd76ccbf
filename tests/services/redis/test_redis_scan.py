"""Cursor iteration: redis-py scan helpers, writes during an iteration, small values against redis-server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.services.redis.scan import ScanCursors
from linechat.testing import RunningServer, serve
from redis_wire import RawClient, real_redis


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("scan")) as srv:
        yield srv


@pytest.fixture(params=["default", "resp2"])
def r(server: RunningServer, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    host, port = server.address()
    protocol = 3 if request.param == "default" else 2
    client = redis.Redis(host=host, port=port, socket_timeout=10, protocol=protocol)
    client.flushall()
    yield client
    client.close()


def test_scan_iter_helpers(r: redis.Redis) -> None:
    """Small values come back in one call, large ones page by page: every helper sees every element once."""
    for size in (5, 1000):
        r.flushall()
        r.hset("h", mapping={f"f{i}": f"v{i}" for i in range(size)})
        r.sadd("s", *[f"m{i}" for i in range(size)])
        r.zadd("z", {f"m{i}": i / 2 for i in range(size)})
        r.mset({f"key:{i}": i for i in range(size)})
        assert dict(r.hscan_iter("h", count=7)) == {f"f{i}".encode(): f"v{i}".encode() for i in range(size)}
        assert sorted(r.sscan_iter("s", count=7)) == sorted(f"m{i}".encode() for i in range(size))
        assert dict(r.zscan_iter("z", count=7)) == {f"m{i}".encode(): i / 2 for i in range(size)}
        keys = list(r.scan_iter(match="key:*", count=7))
        assert sorted(keys) == sorted(f"key:{i}".encode() for i in range(size))
        assert list(r.scan_iter(_type="zset")) == [b"z"]
        assert sorted(r.hscan_iter("h", match="f1?", count=50)) == sorted(
            (f"f{i}".encode(), f"v{i}".encode()) for i in range(10, 20) if i < size
        )


def test_a_large_iteration_pages(r: redis.Redis) -> None:
    r.hset("h", mapping={f"f{i}": "v" for i in range(500)})
    cursor, page = r.hscan("h", 0, count=10)
    assert cursor != 0 and len(page) == 10


def test_elements_present_throughout_are_returned_despite_writes(r: redis.Redis) -> None:
    """Between calls, add and delete other elements: those present from start to end all come back."""
    r.sadd("s", *[f"keep{i}" for i in range(600)], *[f"gone{i}" for i in range(600)])
    r.hset("h", mapping={f"keep{i}": "v" for i in range(600)})
    seen_s: set[bytes] = set()
    seen_h: set[bytes] = set()
    cursor_s = cursor_h = 0
    done_s = done_h = False
    rounds = 0
    while not (done_s and done_h):
        if not done_s:
            cursor_s, members = r.sscan("s", cursor_s, count=25)
            seen_s.update(members)
            done_s = cursor_s == 0
        if not done_h:
            cursor_h, fields = r.hscan("h", cursor_h, count=25)
            seen_h.update(fields)
            done_h = cursor_h == 0
        # Churn: delete some that were never meant to survive, add new ones.
        r.srem("s", *[f"gone{i}" for i in range(rounds * 20, rounds * 20 + 20)])
        r.sadd("s", *[f"new{rounds}-{i}" for i in range(30)])
        r.hset("h", mapping={f"new{rounds}-{i}": "v" for i in range(30)})
        r.hdel("h", f"new{rounds - 1}-0")
        rounds += 1
        assert rounds < 1000
    assert {f"keep{i}".encode() for i in range(600)} <= seen_s
    assert {f"keep{i}".encode() for i in range(600)} <= seen_h
    assert rounds > 10  # the writes really happened between calls


def test_cursor_table_is_bounded_and_a_lost_snapshot_restarts() -> None:
    cursors = ScanCursors(max_elements=100)
    first, batch = cursors.page(0, lambda: range(60), 10)
    assert batch == list(range(10)) and first != 0
    second, _ = cursors.page(0, lambda: range(60), 10)  # a second iteration pushes the first out
    assert cursors._held <= 100 or len(cursors._snapshots) == 1
    again, batch = cursors.page(first, lambda: range(60), 10)
    assert batch == list(range(10))  # started over: elements repeat, none is lost
    assert second != 0 and again != 0


CORPUS: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    ("SET", "str", "v"),
    ("HSET", "h", "b", "2", "a", "1", "c", "3", "ab", "4"),
    ("HSCAN", "h", "0"),
    ("HSCAN", "h", "0", "MATCH", "a*"),
    ("HSCAN", "h", "0", "COUNT", "1"),
    ("HSCAN", "h", "0", "MATCH", "*", "COUNT", "100"),
    ("HSCAN", "h", "x"),
    ("HSCAN", "h", "-1"),
    ("HSCAN", "h", "+0"),
    ("HSCAN", "h", " 0"),
    ("HSCAN", "h", "18446744073709551616"),
    ("HSCAN", "h", "0", "COUNT", "0"),
    ("HSCAN", "h", "0", "COUNT", "x"),
    ("HSCAN", "h", "0", "MATCH"),
    ("HSCAN", "h", "0", "TYPE", "string"),
    ("HSCAN", "h", "0", "BOGUS", "1"),
    ("HSCAN", "nokey", "0"),
    ("HSCAN", "nokey", "0", "BOGUS"),
    ("HSCAN", "str", "0"),
    ("HSCAN", "h"),
    ("ZADD", "z", "2", "b", "1.5", "a", "inf", "c", "-3", "d"),
    ("ZSCAN", "z", "0"),
    ("ZSCAN", "z", "0", "MATCH", "[ab]"),
    ("ZSCAN", "nokey", "0"),
    ("ZSCAN", "str", "0"),
    ("SADD", "ints", "30", "-2", "7", "100"),
    ("SSCAN", "ints", "0"),
    ("SSCAN", "ints", "0", "MATCH", "*0"),
    ("SSCAN", "nokey", "0"),
    ("SSCAN", "str", "0"),
    ("SSCAN", "ints", "0", "COUNT", "-1"),
    ("SCAN", "0", "COUNT", "0"),
    ("SCAN", "x"),
    ("SCAN", "0", "TYPE"),
    ("SCAN", "0", "NOVALUES"),
]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_small_values_and_errors_match_real_redis(tmp_path: Path, hello: int | None) -> None:
    outputs = []
    with (
        real_redis(tmp_path) as real,
        serve(RedisService, data_dir=tmp_path / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        for address in (real, srv.address()):
            client = RawClient(address)
            if hello is not None:
                client.call("HELLO", hello)
            outputs.append([client.call(*c) for c in CORPUS])
            client.close()
    mismatches = [(c, e, g) for c, e, g in zip(CORPUS, *outputs, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches)
