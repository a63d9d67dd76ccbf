"""Descriptor exhaustion and connection caps: refused politely, never a spinning listener."""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from linechat.limits import LogThrottle, raise_fd_limit
from linechat.services.echo import EchoService
from linechat.services.redis import RedisService
from linechat.testing import LineClient, serve

HERE = Path(__file__).parent


def _greeted(address: tuple[str, int]) -> LineClient:
    client = LineClient(address)
    assert client.read_line().startswith(b"+ ")
    return client


def test_connections_past_the_cap_get_the_refusal_line_and_the_rest_carry_on() -> None:
    with serve(EchoService, settings={"services": {"echo": {"max_connections": 2}}}) as server:
        address = server.address("echo")
        canary, other = _greeted(address), _greeted(address)
        for _ in range(3):
            with LineClient(address) as refused:
                assert refused.read_line() == b"- server busy: too many connections, try again later"
                assert refused.read_line() == b""
        canary.send(b"ECHO still here\r\n")
        assert canary.read_line() == b"+ still here"
        other.close()
        # A place came free: the next client is served (the close is seen on a later turn).
        deadline = time.monotonic() + 10
        while True:
            client = LineClient(address)
            line = client.read_line()
            if line.startswith(b"+ ") or time.monotonic() > deadline:
                break
            client.close()
        assert line == b"+ linechat echo ready"
        client.close()
        canary.close()


def test_redis_py_gets_max_clients_reached(tmp_path: Path) -> None:
    with serve(
        RedisService, data_dir=tmp_path, settings={"services": {"redis": {"max_connections": 1, "appendonly": False}}}
    ) as server:
        host, port = server.address("redis")
        first = redis.Redis(host=host, port=port, single_connection_client=True)
        assert first.ping()
        second = redis.Redis(host=host, port=port)
        with pytest.raises(redis.exceptions.ConnectionError, match="max number of clients reached"):
            second.ping()
        second.close()
        assert first.set("k", "v") and first.get("k") == b"v"
        first.close()


def test_descriptor_cap_is_computed_and_logged_once() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_fd_limit(soft) == (soft, hard)  # nothing to do: nothing changes
    if hard != resource.RLIM_INFINITY and hard < 40_000:
        with serve(EchoService, settings={"services": {"echo": {"max_connections": 1_000_000}}}) as server:
            assert server.app.connection_limits["echo"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 32


def test_log_throttle_summarises() -> None:
    now = [0.0]
    lines: list[dict[str, object]] = []
    throttle = LogThrottle(burst=2, interval=10.0, clock=lambda: now[0])
    for _ in range(100):
        throttle.hit(lambda event, **kw: lines.append(kw), "x")
    assert len(lines) == 2
    now[0] = 11.0
    throttle.hit(lambda event, **kw: lines.append(kw), "x")
    assert lines[-1] == {"repeated": 99, "total": 101}


def test_out_of_descriptors_refuses_backs_off_and_resumes() -> None:
    # 64 descriptors in all, 40 of them eaten: the process runs out long before
    # the connection cap (64 - 32 reserved).
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fd_server.py"), "64", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    clients: list[LineClient] = []
    refused: list[bytes] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        address = ("127.0.0.1", port)
        while len(clients) < 60 and not refused:
            client = LineClient(address)
            line = client.read_line()
            if line.startswith(b"+ "):
                clients.append(client)
            else:
                refused.append(line)
                assert client.read_line() == b""
                client.close()
        assert refused == [b"- server busy: too many connections, try again later"], refused
        assert clients, "no connection was served before descriptors ran out"
        # Hold the exhaustion with peers waiting in the backlog while the canary talks.
        waiting = [socket.create_connection(address, timeout=10) for _ in range(5)]
        canary = clients[0]
        for n in range(20):
            canary.send(b"ECHO %d\r\n" % n)
            assert canary.read_line() == b"+ %d" % n
            time.sleep(0.05)
        for sock in waiting:
            sock.close()
        # Descriptors come back: the listener resumes by itself.
        for client in clients[1:4]:
            client.close()
        deadline = time.monotonic() + 20
        while True:
            client = LineClient(address)
            line = client.read_line()
            if line.startswith(b"+ ") or time.monotonic() > deadline:
                break
            client.close()
            time.sleep(0.05)
        assert line == b"+ linechat echo ready"
        client.close()
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    wakeups = int(out.split()[-1])
    events = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    # A listener that spins on EMFILE is woken thousands of times a second.
    assert wakeups < 500, wakeups
    assert names.count("max_connections_capped") == 1
    capped = next(event for event in events if event["event"] == "max_connections_capped")
    assert capped["soft_limit"] == 64 and capped["services"] == {"echo": "10000->32"}
    # The first refusal is logged, later ones only as periodic counts.
    assert 1 <= names.count("connections_refused") <= 3


def test_http_clients_past_the_cap_get_503(tmp_path: Path) -> None:
    import http.client

    from linechat.services.http import HttpService

    with serve(HttpService, data_dir=tmp_path, settings={"services": {"http": {"max_connections": 1}}}) as server:
        host, port = server.address("http")
        holder = socket.create_connection((host, port), timeout=10)
        refused = http.client.HTTPConnection(host, port, timeout=10)
        refused.request("GET", "/health")
        response = refused.getresponse()
        assert response.status == 503
        assert response.read() == b"too many connections\n"
        refused.close()
        holder.close()
