"""INFO, CLIENT LIST/INFO/KILL/PAUSE/REPLY/NO-EVICT, CONFIG GET/SET/RESETSTAT; against redis-server where comparable."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import serve
from redis_wire import RawClient, cmd, real_redis

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    tmp: Path = tmp_path_factory.mktemp("intro")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


CORPUS: list[tuple[str, ...]] = [
    ("CLIENT", "REPLY", "BOGUS"),
    ("CLIENT", "NO-EVICT", "maybe"),
    ("CLIENT", "NO-EVICT", "on"),
    ("CLIENT", "NO-EVICT", "off"),
    ("CLIENT", "LIST", "TYPE", "bogus"),
    ("CLIENT", "LIST", "ID", "abc"),
    ("CLIENT", "LIST", "ID", "0"),
    ("CLIENT", "LIST", "ID", "999999"),
    ("CLIENT", "LIST", "TYPE", "pubsub"),
    ("CLIENT", "LIST", "BOGUS", "x"),
    ("CLIENT", "KILL", "1.2.3.4:5"),
    ("CLIENT", "KILL", "ID", "999999"),
    ("CLIENT", "KILL", "ID", "0"),
    ("CLIENT", "KILL", "TYPE", "bogus"),
    ("CLIENT", "KILL", "USER", "nobody"),
    ("CLIENT", "KILL", "SKIPME", "maybe"),
    ("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "no"),
    ("CLIENT", "KILL", "ID"),
    ("CLIENT", "PAUSE", "abc"),
    ("CLIENT", "PAUSE", "-1"),
    ("CLIENT", "PAUSE", "10", "SOME"),
    ("CLIENT", "UNPAUSE"),
    ("CONFIG", "SET", "timeout", "abc"),
    ("CONFIG", "SET", "nosuch", "1"),
    ("CONFIG", "SET", "databases", "3"),
    ("CONFIG", "SET", "dir", "/tmp"),
    ("CONFIG", "SET", "dbfilename", "x.rdb"),
    ("CONFIG", "SET", "timeout"),
    ("CONFIG", "SET", "timeout", "1", "timeout", "2"),
    ("CONFIG", "SET", "maxmemory-policy", "bogus"),
    ("CONFIG", "SET", "loglevel", "bogus"),
    ("CONFIG", "SET", "busy-reply-threshold", "4000"),
    ("CONFIG", "GET", "busy-reply-threshold"),
    ("CONFIG", "GET", "lua-time-limit"),
    ("CONFIG", "SET", "lua-time-limit", "5000"),
    ("CONFIG", "GET", "busy-reply-threshold"),
    ("CONFIG", "SET", "maxmemory", "10mb"),
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "0", "maxmemory-policy", "allkeys-lru"),
    ("CONFIG", "GET", "maxmemory-policy"),
    ("CONFIG", "SET", "maxmemory-policy", "noeviction"),
    ("CONFIG", "SET", "timeout", "0"),
    ("CONFIG", "RESETSTAT"),
    ("CONFIG", "RESETSTAT", "x"),
]


@needs_redis
@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_errors_and_settings_match_real_redis(both: tuple[tuple[str, int], tuple[str, int]], hello: int | None) -> None:
    def run(address: tuple[str, int]) -> list[bytes]:
        client = RawClient(address)
        if hello is not None:
            client.call("HELLO", hello)
        out = [client.call(*c) for c in CORPUS]
        client.close()
        return out

    expected, got = run(both[0]), run(both[1])
    mismatches = [(c, e, g) for c, e, g in zip(CORPUS, expected, got, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:20])


@needs_redis
def test_client_reply_matches_real_redis(both: tuple[tuple[str, int], tuple[str, int]]) -> None:
    """OFF and SKIP drop replies (their own included); ON says OK: the raw bytes are the same."""

    def run(address: tuple[str, int]) -> bytes:
        client = RawClient(address)
        client.send(
            cmd("CLIENT", "REPLY", "OFF")
            + cmd("SET", "r", "1")
            + cmd("GET", "r")
            + cmd("CLIENT", "REPLY", "ON")
            + cmd("CLIENT", "REPLY", "SKIP")
            + cmd("GET", "r")
            + cmd("ECHO", "after skip")
        )
        reply = client.reply() + client.reply()
        client.close()
        return reply

    assert run(both[0]) == b"+OK\r\n$10\r\nafter skip\r\n"
    assert run(both[1]) == b"+OK\r\n$10\r\nafter skip\r\n"


@needs_redis
def test_client_list_has_every_field(both: tuple[tuple[str, int], tuple[str, int]]) -> None:
    def fields(address: tuple[str, int]) -> list[str]:
        client = RawClient(address)
        line = client.call("CLIENT", "INFO").split(b"\r\n")[1].decode()
        client.close()
        return [pair.split("=", 1)[0] for pair in line.split()]

    assert fields(both[1]) == fields(both[0])


@needs_redis
def test_info_has_redis_sections(both: tuple[tuple[str, int], tuple[str, int]]) -> None:
    real = redis.Redis(*both[0])
    ours = redis.Redis(*both[1])
    info = ours.info()
    for field in ("redis_version", "arch_bits", "os", "process_id", "run_id", "tcp_port", "uptime_in_seconds"):
        assert field in info
    assert info["arch_bits"] == real.info()["arch_bits"]
    assert info["used_memory"] > 0 and info["maxmemory"] == 0 and info["role"] == "master"
    assert ours.info("clients")["connected_clients"] >= 1
    assert set(ours.info("server", "clients")) >= {"redis_version", "connected_clients"}
    assert "used_memory" not in ours.info("server")
    raw_ours, raw_real = RawClient(both[1]), RawClient(both[0])
    default = {line for line in raw_ours.call("INFO").split(b"\r\n") if line.startswith(b"#")}
    expected = {line for line in raw_real.call("INFO").split(b"\r\n") if line.startswith(b"#")}
    assert default == expected
    raw_ours.close()
    raw_real.close()
    ours.set("k", "v")
    assert ours.info("keyspace")["db0"]["keys"] >= 1
    real.close()
    ours.close()


def test_client_list_filters_and_kill(tmp_path: Path) -> None:
    with serve(RedisService, data_dir=tmp_path, settings={"services": {"redis": {"appendonly": False}}}) as srv:
        a = redis.Redis(*srv.address(), single_connection_client=True)
        b = redis.Redis(*srv.address(), single_connection_client=True)
        sub = RawClient(srv.address())
        sub.call("SUBSCRIBE", "ch")
        b.client_setname("bee")
        b_id = b.client_id()
        listed = {c["name"]: c for c in a.client_list()}
        assert listed["bee"]["id"] == str(b_id) and listed["bee"]["laddr"].endswith(f":{srv.address()[1]}")
        assert [c["id"] for c in a.client_list(client_id=[b_id])] == [str(b_id)]
        pubsub = a.client_list(_type="pubsub")
        assert len(pubsub) == 1 and pubsub[0]["flags"] == "P" and pubsub[0]["sub"] == "1"
        assert a.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        assert sub.closed_by_peer()
        assert a.client_kill_filter(_id=b_id) == 1
        assert str(b_id) not in {c["id"] for c in a.client_list()}
        assert a.client_kill_filter(_id=a.client_id(), skipme=True) == 0
        a.close()


def test_client_pause_write_holds_writes_not_reads(tmp_path: Path) -> None:
    with serve(RedisService, data_dir=tmp_path, settings={"services": {"redis": {"appendonly": False}}}) as srv:
        admin = RawClient(srv.address())
        writer = RawClient(srv.address())
        admin.call("SET", "k", "before")
        assert admin.call("CLIENT", "PAUSE", "60000", "WRITE") == b"+OK\r\n"
        writer.send(cmd("SET", "k", "during") + cmd("GET", "k"))
        assert admin.call("GET", "k") == b"$6\r\nbefore\r\n"  # reads go on; the write (and what follows) waits
        time.sleep(0.2)  # let the writer's commands reach the server: they must still be held
        assert admin.call("GET", "k") == b"$6\r\nbefore\r\n"
        assert admin.call("CLIENT", "UNPAUSE") == b"+OK\r\n"
        assert writer.reply() == b"+OK\r\n"
        assert writer.reply() == b"$6\r\nduring\r\n"
        admin.close()
        writer.close()


def test_config_set_takes_effect(tmp_path: Path) -> None:
    with serve(RedisService, data_dir=tmp_path, settings={"services": {"redis": {"appendonly": False}}}) as srv:
        r = redis.Redis(*srv.address(), single_connection_client=True)
        assert r.config_set("busy-reply-threshold", 1234)
        assert r.config_get("lua-time-limit") == {"lua-time-limit": "1234"}
        assert r.config_set("maxclients", 2)
        results, kept = [], []
        for _ in range(3):
            try:
                kept.append(redis.Redis(*srv.address(), single_connection_client=True))
                results.append(kept[-1].ping())
            except redis.ConnectionError as exc:
                results.append(str(exc))
        assert any("max number of clients" in str(x) for x in results)
        r.config_set("maxclients", 10000)
        assert r.info("stats")["rejected_connections"] >= 1
        r.config_resetstat()
        assert r.info("stats")["rejected_connections"] == 0
        with pytest.raises(redis.ResponseError, match="protected config"):
            r.config_set("dir", "/tmp")
        r.close()
