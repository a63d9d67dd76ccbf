"""requirepass (AUTH, HELLO AUTH, -NOAUTH), protected mode, and the warning for a wide bind without authentication."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from linechat import app as app_module
from linechat.crossprotocol import is_loopback_host, is_loopback_peer
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness, connect_when_listening, free_port, serve
from redis_wire import RawClient, cmd, split_replies
from structlog.testing import capture_logs

PASSWORD = "s3cret-Passw0rd"
DEADLINE = 20.0


def test_loopback_recognised() -> None:
    assert is_loopback_peer(("127.0.0.1", 1)) and is_loopback_peer(("127.8.9.10", 1)) and is_loopback_peer(("::1", 1))
    assert is_loopback_peer(("::ffff:127.0.0.1", 1)) and is_loopback_peer(None)
    assert not is_loopback_peer(("192.0.2.7", 1)) and not is_loopback_peer(("2001:db8::1", 1))
    assert is_loopback_host("localhost") and is_loopback_host("127.0.0.1") and is_loopback_host("::1")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("::") and not is_loopback_host("")


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[Any]:
    with serve(RedisService, data_dir=tmp_path, settings={"services": {"redis": {"requirepass": PASSWORD}}}) as srv:
        yield srv


def test_noauth_before_auth_and_nothing_runs(protected: Any) -> None:
    c = RawClient(protected.address())
    assert c.call("PING") == b"-NOAUTH Authentication required.\r\n"
    assert c.call("SET", "k", "v") == b"-NOAUTH Authentication required.\r\n"
    # Unknown commands and arity come first, as in Redis.
    assert c.call("NOSUCH").startswith(b"-ERR unknown command 'NOSUCH'")
    assert c.call("GET").startswith(b"-ERR wrong number of arguments")
    # A pipeline sent before AUTH: none of it runs.
    c.send(cmd("SET", "k", "v") + cmd("INCR", "n") + cmd("FLUSHALL"))
    assert [c.reply() for _ in range(3)] == [b"-NOAUTH Authentication required.\r\n"] * 3
    assert c.call("HELLO", "3").startswith(b"-NOAUTH HELLO must be called with the client already authenticated")
    assert c.call("AUTH", "wrong") == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    assert c.call("AUTH", "someone", PASSWORD) == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    assert c.call("AUTH", PASSWORD) == b"+OK\r\n"
    assert c.call("GET", "k") == b"$-1\r\n"
    assert c.call("EXISTS", "n") == b":0\r\n"
    assert c.call("RESET") == b"+RESET\r\n"
    assert c.call("PING") == b"-NOAUTH Authentication required.\r\n"  # RESET logs out, as in Redis
    assert c.call("AUTH", "default", PASSWORD) == b"+OK\r\n"
    assert c.call("PING") == b"+PONG\r\n"
    assert c.call("QUIT") == b"+OK\r\n"


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_with_and_without_the_password(protected: Any, protocol: int) -> None:
    host, port = protected.address()
    anonymous = redis.Redis(host=host, port=port, socket_timeout=DEADLINE, protocol=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    wrong = redis.Redis(host=host, port=port, password="nope", socket_timeout=DEADLINE, protocol=protocol)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()
    # protocol=3 logs in with HELLO 3 AUTH default <password>.
    r = redis.Redis(host=host, port=port, password=PASSWORD, socket_timeout=DEADLINE, protocol=protocol)
    assert r.set("a", "1") and r.get("a") == b"1"
    named = redis.Redis(
        host=host, port=port, username="default", password=PASSWORD, socket_timeout=DEADLINE, protocol=protocol
    )
    assert named.get("a") == b"1"
    assert r.config_get("requirepass") == {"requirepass": PASSWORD}
    named.close()
    r.close()


def test_passwords_are_never_logged(tmp_path: Path) -> None:
    with capture_logs() as logs, ServiceHarness(RedisService, data_dir=tmp_path, requirepass=PASSWORD) as h:
        h.service.access_log = True
        c = h.connect()
        c.send(b"AUTH wrong-one\r\nAUTH default also-wrong\r\nHELLO 3 AUTH default third-wrong\r\n")
        c.send(b"*2\r\n$4\r\nAUTH\r\n$" + str(len(PASSWORD)).encode() + b"\r\n" + PASSWORD.encode())
        c.send(b"\r\n")  # the command cut across reads takes the line-by-line (access-logged) path
        c.send(b"AUTH " + PASSWORD.encode() + b"\r\nSET k v\r\n")
        replies = split_replies(c.read())
        assert replies[-1] == b"+OK\r\n" and replies[-2] == b"+OK\r\n"
        assert h.service.auth_failures == 3
    text = repr(logs)
    for secret in (PASSWORD, "wrong-one", "also-wrong", "third-wrong"):
        assert secret not in text


def test_protected_mode_refuses_remote_clients_without_a_password(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        remote = h.connect(peer=("192.0.2.7", 40000))
        assert remote.read().startswith(b"-DENIED Redis is running in protected mode")
        assert remote.closed
        local = h.connect()
        assert not local.closed
        local.send(b"CONFIG SET protected-mode no\r\n")
        assert local.read() == b"+OK\r\n"
        remote = h.connect(peer=("192.0.2.7", 40001))
        remote.send(b"PING\r\n")
        assert remote.read() == b"+PONG\r\n"
    # With a password, remote clients are let in (to authenticate).
    with ServiceHarness(RedisService, data_dir=tmp_path, requirepass=PASSWORD) as h:
        remote = h.connect(peer=("2001:db8::5", 40000))
        remote.send(b"PING\r\n")
        assert remote.read() == b"-NOAUTH Authentication required.\r\n"
        remote.send(b"AUTH " + PASSWORD.encode() + b"\r\nPING\r\n")
        assert remote.read() == b"+OK\r\n+PONG\r\n"


def test_a_wide_bind_without_authentication_is_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app warns per listener whose service lets anyone in (the test stays on loopback and calls it wide)."""
    monkeypatch.setattr(app_module, "is_loopback_host", lambda host: False)
    with capture_logs() as logs:
        with serve(RedisService, data_dir=tmp_path / "a"):
            pass
        with serve(RedisService, data_dir=tmp_path / "b", settings={"services": {"redis": {"requirepass": "x"}}}):
            pass
    warned = [e for e in logs if e["event"] == "listening_beyond_loopback_without_authentication"]
    assert len(warned) == 1 and warned[0]["service"] == "redis"


# ------------------------------------------------------------------ the same replies as redis-server

CORPUS: list[tuple[str, ...]] = [
    ("PING",),
    ("GET", "k"),
    ("GET",),
    ("NOSUCH", "x"),
    ("SET", "k", "v"),
    ("AUTH",),
    ("AUTH", "wrong"),
    ("AUTH", "default", "wrong"),
    ("AUTH", "nobody", PASSWORD),
    ("AUTH", "a", "b", "c"),
    ("HELLO", "3"),
    ("HELLO", "4"),
    ("HELLO", "3", "AUTH", "default", "wrong"),
    ("MULTI",),
    ("EXEC",),
    ("DISCARD",),
    ("AUTH", PASSWORD),
    ("MULTI",),
    ("AUTH", "wrong"),
    ("EXEC",),
    ("GET", "k"),
    ("SET", "k", "v"),
    ("GET", "k"),
    ("AUTH", "wrong"),
    ("GET", "k"),  # a failed AUTH after a good one keeps the login, as in Redis
    ("RESET",),
    ("GET", "k"),
    ("AUTH", "default", PASSWORD),
    ("GET", "k"),
]


def test_replies_match_redis_server(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    real = subprocess.Popen(
        [
            "redis-server",
            "--save",
            "",
            "--appendonly",
            "no",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp_path),
            "--requirepass",
            PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connect_when_listening(port, within=DEADLINE).close()
        with serve(
            RedisService, data_dir=tmp_path / "ours", settings={"services": {"redis": {"requirepass": PASSWORD}}}
        ) as srv:
            theirs, ours = RawClient(("127.0.0.1", port)), RawClient(srv.address())
            for command in CORPUS:
                assert ours.call(*command) == theirs.call(*command), command
            theirs.close()
            ours.close()
    finally:
        real.terminate()
        real.wait(DEADLINE)
