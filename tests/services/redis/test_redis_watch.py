"""WATCH/UNWATCH and transactions: two clients against a real redis-server and ours, replies byte for byte;
expiry and the append-only file in memory."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness, serve
from redis_wire import RawClient, cmd, real_redis, split_replies

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

# Steps of two clients, "a" and "b"; ("sleep", seconds) lets a deadline pass (only ever waited past, never raced).
Step = tuple[str, ...]
SCENARIOS: dict[str, list[Step]] = {
    "touched by another client": [
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "1"),
        ("a", "MULTI"),
        ("a", "GET", "k"),
        ("a", "EXEC"),
        ("a", "GET", "k"),
    ],
    "untouched": [("a", "WATCH", "k"), ("a", "MULTI"), ("a", "SET", "k", "2"), ("a", "EXEC"), ("b", "GET", "k")],
    "touched by the watcher itself": [("a", "WATCH", "k"), ("a", "SET", "k", "3"), ("a", "MULTI"), ("a", "EXEC")],
    "deleted": [("a", "SET", "k", "1"), ("a", "WATCH", "k"), ("b", "DEL", "k"), ("a", "MULTI"), ("a", "EXEC")],
    "delete of a missing key is no change": [
        ("a", "WATCH", "k"),
        ("b", "DEL", "k"),
        ("b", "LPOP", "k"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "failed conditional writes are no change": [
        ("a", "SET", "k", "1"),
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "2", "NX"),
        ("b", "SETNX", "k", "2"),
        ("b", "PERSIST", "k"),
        ("b", "HDEL", "k", "f"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "one of several keys": [
        ("a", "WATCH", "x", "y", "z"),
        ("b", "MSET", "q", "1", "z", "2"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "rename onto a watched key": [
        ("a", "SET", "src", "v"),
        ("a", "WATCH", "dst"),
        ("b", "RENAME", "src", "dst"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "container changed in place": [
        ("a", "RPUSH", "l", "x"),
        ("a", "WATCH", "l"),
        ("b", "RPUSH", "l", "y"),
        ("a", "MULTI"),
        ("a", "LRANGE", "l", "0", "-1"),
        ("a", "EXEC"),
    ],
    "expire set on a watched key": [
        ("a", "SET", "k", "1"),
        ("a", "WATCH", "k"),
        ("b", "EXPIRE", "k", "100"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "flushall with the key present": [
        ("a", "SET", "k", "1"),
        ("a", "WATCH", "k"),
        ("b", "FLUSHALL"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "flushall with the key absent": [("a", "WATCH", "k"), ("b", "FLUSHALL"), ("a", "MULTI"), ("a", "EXEC")],
    "flushdb of another database": [
        ("a", "SET", "k", "1"),
        ("a", "WATCH", "k"),
        ("b", "SELECT", "1"),
        ("b", "FLUSHDB"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "same name in another database": [
        ("a", "SELECT", "2"),
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "1"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "unwatch forgets": [("a", "WATCH", "k"), ("b", "SET", "k", "1"), ("a", "UNWATCH"), ("a", "MULTI"), ("a", "EXEC")],
    "discard forgets": [
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "1"),
        ("a", "MULTI"),
        ("a", "DISCARD"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "exec forgets": [
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "1"),
        ("a", "MULTI"),
        ("a", "EXEC"),
        ("b", "SET", "k", "2"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "watch inside multi": [
        ("a", "MULTI"),
        ("a", "WATCH", "k"),
        ("a", "SET", "k", "1"),
        ("a", "EXEC"),
        ("a", "WATCH"),
        ("a", "UNWATCH", "x"),
        ("a", "EXEC"),
    ],
    "unwatch inside multi is queued": [
        ("a", "WATCH", "k"),
        ("a", "MULTI"),
        ("a", "UNWATCH"),
        ("b", "SET", "k", "1"),
        ("a", "EXEC"),
    ],
    "abort wins over a touched key": [
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "1"),
        ("a", "MULTI"),
        ("a", "NOSUCH"),
        ("a", "EXEC"),
    ],
    "reset forgets": [("a", "WATCH", "k"), ("b", "SET", "k", "1"), ("a", "RESET"), ("a", "MULTI"), ("a", "EXEC")],
    "a watched key that expires": [
        ("a", "SET", "k", "v", "PX", "30"),
        ("a", "WATCH", "k"),
        ("sleep", "0.1"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "a key expired before WATCH, then deleted on access": [
        ("a", "SET", "k", "v", "PX", "1"),
        ("sleep", "0.05"),
        ("a", "WATCH", "k"),
        ("b", "GET", "k"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
    "a key expired before WATCH, then set again": [
        ("a", "SET", "k", "v", "PX", "1"),
        ("sleep", "0.05"),
        ("a", "WATCH", "k"),
        ("b", "SET", "k", "new"),
        ("a", "MULTI"),
        ("a", "EXEC"),
    ],
}


def _session(address: tuple[str, int], steps: list[Step], hello: int | None) -> list[bytes]:
    clients = {"a": RawClient(address), "b": RawClient(address)}
    try:
        for client in clients.values():
            client.call("FLUSHALL")
            if hello is not None:
                client.call("HELLO", hello)
        out = []
        for who, *words in steps:
            if who == "sleep":
                time.sleep(float(words[0]))
                continue
            out.append(clients[who].call(*words))
        return out
    finally:
        for client in clients.values():
            client.close()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """A real redis-server and ours, side by side."""
    tmp: Path = tmp_path_factory.mktemp("watch")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


@needs_redis
@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_watch_matches_real_redis(both: tuple[tuple[str, int], tuple[str, int]], name: str, hello: int | None) -> None:
    steps = SCENARIOS[name]
    expected = _session(both[0], steps, hello)
    assert _session(both[1], steps, hello) == expected


def test_scenarios_really_differ() -> None:
    """Guard: the corpus holds both outcomes, so a server that ignored WATCH would fail it."""
    with serve(RedisService, settings={"services": {"redis": {"appendonly": False}}}) as srv:
        last = {name: _session(srv.address(), steps, None)[-1] for name, steps in SCENARIOS.items()}
    for name in ("touched by another client", "deleted", "flushall with the key present", "a watched key that expires"):
        assert SCENARIOS[name][-2:] == [("a", "MULTI"), ("a", "EXEC")] or SCENARIOS[name][-1][1] == "GET"
    assert last["deleted"] == last["flushall with the key present"] == b"*-1\r\n"
    assert last["a watched key that expires"] == b"*-1\r\n"
    assert last["delete of a missing key is no change"] == b"*0\r\n"
    assert last["a key expired before WATCH, then deleted on access"] == b"*0\r\n"
    assert last["a key expired before WATCH, then set again"] == b"*-1\r\n"


# --------------------------------------------------------------------------- in memory


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServiceHarness]:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        yield h


def test_active_expiry_of_a_watched_key(harness: ServiceHarness) -> None:
    a, b = harness.connect(), harness.connect()
    a.send(cmd("SET", "k", "v", "PX", "100") + cmd("WATCH", "k"))
    a.read()
    harness.advance(2.0)  # the expiry timer deletes it meanwhile
    assert harness.service.dbs[0].data == {}  # type: ignore[attr-defined]
    b.send(cmd("SET", "other", "1"))
    b.read()
    a.send(cmd("MULTI") + cmd("SET", "k", "2") + cmd("EXEC"))
    assert split_replies(a.read())[-1] == b"*-1\r\n"


def test_watchers_are_forgotten_on_disconnect(harness: ServiceHarness) -> None:
    a = harness.connect()
    a.send(cmd("WATCH", "k1", "k2"))
    a.read()
    service = harness.service
    assert len(service.watchers) == 2  # type: ignore[attr-defined]
    a.close()
    harness.run_ready()
    assert service.watchers == {}  # type: ignore[attr-defined]
    assert service.propagating is (service.aof is not None)  # type: ignore[attr-defined]


def test_transaction_is_one_unit_in_the_aof(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(
            cmd("SET", "before", "1")
            + cmd("MULTI")
            + cmd("SET", "a", "1")
            + cmd("INCR", "a")
            + cmd("GET", "a")
            + cmd("EXEC")
            + cmd("MULTI")
            + cmd("GET", "a")
            + cmd("EXEC")
        )
        client.read()
    path = tmp_path / "appendonly.aof"
    data = path.read_bytes()
    # The read-only transaction left no trace; the other is wrapped.
    assert data.count(b"MULTI") == 1 and data.count(b"EXEC") == 1
    assert data.index(b"MULTI") < data.index(b"INCR") < data.index(b"EXEC")
    # A crash in the middle of writing the transaction: replay drops all of it and cuts the file.
    whole = data
    path.write_bytes(whole[: whole.index(b"EXEC") - 8])
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(cmd("MGET", "before", "a"))
        assert split_replies(client.read()) == [b"*2\r\n$1\r\n1\r\n$-1\r\n"]
    assert path.read_bytes() == whole[: whole.index(b"*1\r\n$5\r\nMULTI")]
