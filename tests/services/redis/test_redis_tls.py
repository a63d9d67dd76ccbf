"""The Redis service on its TLS port: redis-py with rediss:// and redis-cli --tls over loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, free_port, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = {"services": {"redis": {"tls_port": free_port(), "appendonly": False}}}
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("redis-tls"), settings=settings) as srv:
        yield srv


def ca_file(server: RunningServer) -> Path:
    tls = server.app.tls
    assert tls is not None
    tls.check()
    assert tls.ca_file is not None
    return tls.ca_file


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_rediss_url(server: RunningServer, protocol: int) -> None:
    _, port = server.address(listener="tls")
    client = redis.Redis.from_url(
        f"rediss://localhost:{port}/0", ssl_ca_certs=str(ca_file(server)), protocol=protocol, socket_timeout=20
    )
    assert client.ping() is True
    assert client.set(f"greeting{protocol}", "hello over tls") is True
    assert client.get(f"greeting{protocol}") == b"hello over tls"
    with client.pipeline(transaction=False) as pipe:
        for i in range(2000):
            pipe.set(f"k{protocol}:{i}", i)
            pipe.get(f"k{protocol}:{i}")
        results = pipe.execute()
    assert results[1::2] == [str(i).encode() for i in range(2000)]
    big = os.urandom(3 << 20)
    client.set(f"big{protocol}", big)
    assert client.get(f"big{protocol}") == big
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    client.close()


def test_plain_and_tls_ports_share_one_data_set(server: RunningServer) -> None:
    plain = redis.Redis(*server.address(), socket_timeout=20)
    plain.set("shared", "from plain")
    _, port = server.address(listener="tls")
    tls = redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=str(ca_file(server)), socket_timeout=20)
    assert tls.get("shared") == b"from plain"
    plain.close()
    tls.close()


def test_resp_in_the_clear_on_the_tls_port_is_closed(server: RunningServer) -> None:
    sock = socket.create_connection(server.address(listener="tls"), timeout=20)
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    got = b""
    while True:
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    assert b"PONG" not in got
    sock.close()
    assert redis.Redis(*server.address(), socket_timeout=20).ping() is True


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed (apt redis-tools)")
def test_redis_cli_tls(server: RunningServer) -> None:
    _, port = server.address(listener="tls")
    base = ["redis-cli", "-h", "localhost", "-p", str(port), "--tls", "--cacert", str(ca_file(server))]
    out = subprocess.run([*base, "SET", "cli", "via tls"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr
    out = subprocess.run([*base, "GET", "cli"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "via tls"
