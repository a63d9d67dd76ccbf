"""Real clients over loopback: redis-py, redis-cli, redis-benchmark and a raw socket speaking inline."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, serve
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_wire import RawClient


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.fixture(params=["default", "resp2"])
def r(server: RunningServer, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """redis-py as users make it (RESP3 since redis-py 8, via HELLO 3), and asking for RESP2."""
    host, port = server.address()
    if request.param == "default":
        client = redis.Redis(host=host, port=port, socket_timeout=10)
    else:
        client = redis.Redis(host=host, port=port, socket_timeout=10, protocol=2)
    client.flushall()
    yield client
    client.close()


def _proto(client: redis.Redis) -> int:
    """The protocol of the client's connection, as HELLO reports it (a dict under RESP3, a flat list under RESP2)."""
    reply = client.execute_command("HELLO")
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    return int(fields[b"proto"])


# --------------------------------------------------------------------------- redis-py


def test_redis_py_types(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.set("s", "v", ex=100) is True
    assert r.get("s") == b"v"
    assert 99 <= r.ttl("s") <= 100
    assert r.set("s", "w", nx=True) is None
    assert r.incr("n") == 1 and r.incrby("n", 41) == 42 and r.decr("n") == 41
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "zz") == [b"1", b"2", None]
    assert r.rpush("l", "x", "y", "z") == 3
    assert r.lrange("l", 0, -1) == [b"x", b"y", b"z"]
    assert r.lpop("l", 2) == [b"x", b"y"]
    assert r.hset("h", mapping={"f1": "1", "f2": "2"}) == 2
    assert r.hgetall("h") == {b"f1": b"1", b"f2": b"2"}
    assert r.hincrby("h", "f1", 9) == 10
    assert r.sadd("st", "a", "b") == 2
    assert r.smembers("st") == {b"a", b"b"}
    assert r.type("h") == b"hash"
    assert sorted(r.keys("*")) == [b"a", b"b", b"f", b"h", b"l", b"n", b"s", b"st"]
    assert sorted(r.scan_iter(match="s*", count=2)) == [b"s", b"st"]
    assert r.dbsize() == 8
    assert r.client_setname("me") is True and r.client_getname() == "me"
    assert isinstance(r.time()[0], int)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.get("h")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("GET")
    info = r.info()
    assert info["redis_mode"] == "standalone"
    assert r.config_get("databases") == {"databases": "16"}
    assert r.client_info()["name"] == "me"
    assert r.get("nokey") is None and r.hget("h", "nokey") is None and r.lpop("nokey", 2) is None
    assert r.hgetall("nokey") == {} and r.smembers("nokey") == set()


def test_redis_py_default_is_resp3(server: RunningServer) -> None:
    host, port = server.address()
    with redis.Redis(host=host, port=port, socket_timeout=10) as client:
        assert _proto(client) == 3
        assert client.client_info()["resp"] == "3"
    with redis.Redis(host=host, port=port, socket_timeout=10, protocol=2) as client:
        assert _proto(client) == 2
        assert client.client_info()["resp"] == "2"


def test_redis_py_credentials(server: RunningServer) -> None:
    """No password is configured: as with Redis, the default user gets in with any password (via HELLO 3 AUTH)."""
    host, port = server.address()
    with redis.Redis(host=host, port=port, socket_timeout=10, password="any", client_name="named") as client:
        assert client.ping() is True
        assert client.client_getname() == "named"
    with redis.Redis(host=host, port=port, socket_timeout=10, username="default", password="pw") as client:
        assert client.ping() is True
    with (
        # No retries: redis-py retries a refused login with back-off (the same against Redis).
        redis.Redis(
            host=host, port=port, socket_timeout=10, username="bob", password="pw", retry=Retry(NoBackoff(), 0)
        ) as client,
        pytest.raises(redis.AuthenticationError),
    ):
        client.ping()


def test_redis_py_transaction_is_the_default_pipeline(r: redis.Redis) -> None:
    with r.pipeline() as pipe:  # transaction=True: MULTI ... EXEC
        pipe.set("tx", 1).incr("tx").lpush("tx", "x").get("tx")
        results = pipe.execute(raise_on_error=False)
    assert results[:2] == [True, 2]
    assert isinstance(results[2], redis.ResponseError) and "WRONGTYPE" in str(results[2])
    assert results[3] == b"2"
    with r.pipeline() as pipe:
        pipe.set("tx", 5)
        pipe.reset()  # nothing was sent: nothing ran
    assert r.get("tx") == b"2"
    with r.pipeline() as pipe:
        pipe.execute_command("NOSUCH")
        pipe.set("tx", 6)
        with pytest.raises(redis.ResponseError, match=r"EXECABORT|unknown command"):
            pipe.execute()
    assert r.get("tx") == b"2"


def test_redis_py_pipeline(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"k{i}", i)
    for i in range(500):
        pipe.get(f"k{i}")
    pipe.incr("k0")
    pipe.hget("missing", "f")
    results = pipe.execute()
    assert results[:500] == [True] * 500
    assert results[500:1000] == [str(i).encode() for i in range(500)]
    assert results[1000:] == [1, None]


def test_redis_py_large_value(r: redis.Redis) -> None:
    value = b"\x00\r\n" * 400_000
    r.set("big", value)
    assert r.get("big") == value


def test_redis_py_pubsub(r: redis.Redis) -> None:
    pubsub = r.pubsub()
    pubsub.subscribe("news")
    pubsub.psubscribe("sp*")
    assert pubsub.connection is not None
    resp3 = r.connection_pool.connection_kwargs.get("protocol") != 2
    # The RESP3 connection made its handshake with HELLO 3, so messages come as push frames.
    assert (pubsub.connection.handshake_metadata or {}).get(b"proto") == (3 if resp3 else None)
    received = []
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message is not None:
            received.append(message["type"])
    assert received == ["subscribe", "psubscribe"]
    assert r.publish("news", "hello") == 1
    assert r.publish("sport", "goal") == 1
    messages = []
    while len(messages) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message is not None:
            messages.append((message["type"], message["channel"], message["data"]))
    assert messages == [("message", b"news", b"hello"), ("pmessage", b"sport", b"goal")]
    pubsub.close()
    # The server drops the subscriptions when it sees the close: poll for it.
    while r.publish("news", "again") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)


# --------------------------------------------------------------------------- raw inline


def test_inline_over_a_socket(server: RunningServer) -> None:
    client = RawClient(server.address())
    client.send(b'SET greeting "hello world"\r\nGET greeting\r\nDEL greeting\r\nPING\r\n')
    assert [client.reply() for _ in range(4)] == [b"+OK\r\n", b"$11\r\nhello world\r\n", b":1\r\n", b"+PONG\r\n"]
    client.send(b"QUIT\r\n")
    assert client.reply() == b"+OK\r\n"
    assert client.closed_by_peer()
    client.close()


# --------------------------------------------------------------------------- redis-cli and redis-benchmark

needs_cli = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
needs_benchmark = pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="redis-benchmark is not installed")


def _cli(server: RunningServer, *args: str, stdin: str | None = None) -> str:
    host, port = server.address()
    done = subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return done.stdout


@needs_cli
def test_redis_cli_commands(server: RunningServer) -> None:
    assert _cli(server, "PING") == "PONG\n"
    assert _cli(server, "SET", "cli", "some value") == "OK\n"
    assert _cli(server, "GET", "cli") == "some value\n"
    assert _cli(server, "RPUSH", "cl", "a", "b") == "2\n"
    assert _cli(server, "LRANGE", "cl", "0", "-1") == "a\nb\n"
    assert _cli(server, "--no-raw", "LRANGE", "cl", "0", "-1") == '1) "a"\n2) "b"\n'
    assert _cli(server, "--no-raw", "GET", "nokey") == "(nil)\n"
    assert "WRONGTYPE" in _cli(server, "GET", "cl")
    assert _cli(server, "COMMAND", "COUNT").strip().isdigit()


def _cli_speaks_resp3() -> bool:
    done = subprocess.run(["redis-cli", "--help"], capture_output=True, text=True, timeout=20, check=False)
    return "\n  -3 " in done.stdout + done.stderr


@needs_cli
def test_redis_cli_resp3(server: RunningServer) -> None:
    if not _cli_speaks_resp3():
        pytest.skip("this redis-cli has no -3 (RESP3) option")
    # Expected outputs as redis-cli 7.0 prints them for a real redis-server.
    assert _cli(server, "-3", "HSET", "cli3", "f1", "1", "f2", "2") == "2\n"
    assert _cli(server, "-3", "--no-raw", "HGETALL", "cli3") == '1# "f1" => "1"\n2# "f2" => "2"\n'
    assert _cli(server, "-3", "SADD", "cli3s", "a") == "1\n"
    assert _cli(server, "-3", "--no-raw", "SMEMBERS", "cli3s") == '1~ "a"\n'
    assert _cli(server, "-3", "--no-raw", "GET", "nokey") == "(nil)\n"
    assert _cli(server, "-3", "--no-raw", "CONFIG", "GET", "databases") == '1# "databases" => "16"\n'
    assert _cli(server, "-3", "--no-raw", "HELLO", "3").startswith('1# "server" => "redis"\n')
    assert "# Server" in _cli(server, "-3", "INFO", "server")


@needs_cli
def test_redis_cli_reads_commands_from_stdin(server: RunningServer) -> None:
    out = _cli(server, stdin='SET piped "two words"\nGET piped\nINCR counter\nINCR counter\n')
    assert out == "OK\ntwo words\n1\n2\n"


@needs_cli
def test_redis_cli_pipe_mode_sends_inline_text(server: RunningServer) -> None:
    # --pipe sends the raw bytes we give it: inline commands, one per line.
    text = "".join(f"SET pipe{i} {i}\r\n" for i in range(100))
    out = _cli(server, "--pipe", stdin=text)
    assert "errors: 0, replies: 100" in out
    assert _cli(server, "GET", "pipe99") == "99\n"


@needs_benchmark
def test_redis_benchmark_smoke(server: RunningServer, tmp_path: Path) -> None:
    host, port = server.address()
    done = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", str(port), "-n", "2000", "-q", "-t", "ping,set,get"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in done.stdout.replace("\r", "\n").splitlines() if "requests per second" in line]
    assert [line.split(":")[0] for line in lines] == ["PING_INLINE", "PING_MBULK", "SET", "GET"]
