"""Start-up without silence: a large AOF is replayed in slices while clients get -LOADING; bad files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from linechat.services.echo import EchoService
from linechat.services.redis import RedisService
from linechat.services.redis import service as service_module
from linechat.services.redis.service import SYNC_LOAD_BYTES
from linechat.testing import LineClient, MemoryClient, ServiceHarness, connect_when_listening, free_port, serve
from redis_wire import RawClient, cmd, real_redis, split_replies
from structlog.testing import capture_logs

LOADING = b"-LOADING Redis is loading the dataset in memory\r\n"
DEADLINE = 60.0


def talk(client: MemoryClient, *commands: tuple[str | bytes, ...]) -> list[bytes]:
    client.send(b"".join(cmd(*c) for c in commands))
    return split_replies(client.read())


def big_aof(path: Path, keys: int) -> bytes:
    """An AOF of *keys* SETs (and a list) past the size replayed inside start()."""
    data = b"".join(cmd("SET", f"key:{i}", "v" * 20 + str(i)) for i in range(keys)) + cmd("RPUSH", "l", "a", "b")
    assert len(data) > SYNC_LOAD_BYTES
    path.write_bytes(data)
    return data


def persistence(client: MemoryClient) -> dict[str, str]:
    text = talk(client, ("INFO", "persistence"))[0].decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def run_slices(h: ServiceHarness, most: int = 100_000) -> int:
    """Turn the reactor until the replay is done; how many turns it took."""
    turns = 0
    while h.service.loading:
        assert turns < most
        h.reactor._run_ready()
        turns += 1
    return turns


def test_a_large_file_loads_in_slices_while_clients_get_loading_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slices of 64 commands (the budget is checked every 64): a count, not a time.  The harness runs
    # up to 100 queued callbacks when a client reads, so 200,000 commands outlast the reads below.
    monkeypatch.setattr(service_module, "LOAD_SLICE", 0.0)
    big_aof(tmp_path / "appendonly.aof", 200_000)
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert h.service.loading and h.service.aof is None
        c = h.connect()
        assert talk(c, ("PING",), ("GET", "key:1"), ("SET", "new", "1"), ("DBSIZE",)) == [LOADING] * 4
        # Commands flagged `loading` in Redis's table run: INFO, SELECT, CONFIG GET, ECHO.
        assert talk(c, ("SELECT", "0"), ("ECHO", "hi"), ("CONFIG", "GET", "appendonly")) == [
            b"+OK\r\n",
            b"$2\r\nhi\r\n",
            b"*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n",
        ]
        # Queued inside MULTI, a refused command aborts the transaction, as any rejected command does.
        assert talk(c, ("MULTI",), ("GET", "key:1"), ("EXEC",)) == [
            b"+OK\r\n",
            LOADING,
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        ]
        info = persistence(c)
        assert info["loading"] == "1"
        assert int(info["loading_total_bytes"]) == (tmp_path / "appendonly.aof").stat().st_size
        earlier = int(info["loading_loaded_bytes"])
        h.reactor._run_ready()  # one slice
        info = persistence(c)
        loaded = int(info["loading_loaded_bytes"])
        assert earlier < loaded < int(info["loading_total_bytes"])
        assert 0 < float(info["loading_loaded_perc"]) < 100 and int(info["loading_eta_seconds"]) >= 0
        assert run_slices(h) >= 1
        assert persistence(c)["loading"] == "0"
        assert talk(c, ("PING",), ("GET", "key:39999"), ("DBSIZE",), ("LRANGE", "l", "0", "-1")) == [
            b"+PONG\r\n",
            b"$25\r\nvvvvvvvvvvvvvvvvvvvv39999\r\n",
            b":200001\r\n",
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ]
        talk(c, ("SET", "after", "load"))
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        run_slices(h)
        assert talk(h.connect(), ("GET", "after"), ("GET", "key:0")) == [
            b"$4\r\nload\r\n",
            b"$21\r\nvvvvvvvvvvvvvvvvvvvv0\r\n",
        ]


def test_a_small_file_is_loaded_before_any_client(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_bytes(cmd("SET", "a", "1"))
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert not h.service.loading
        assert talk(h.connect(), ("GET", "a")) == [b"$1\r\n1\r\n"]


def test_a_truncated_tail_of_a_large_file_is_cut_back(tmp_path: Path) -> None:
    path = tmp_path / "appendonly.aof"
    whole = big_aof(path, 40_000)
    path.write_bytes(whole + cmd("SET", "cut", "x")[:-3])
    with capture_logs() as logs, ServiceHarness(RedisService, data_dir=tmp_path) as h:
        run_slices(h)
        assert path.read_bytes() == whole
        warnings = [e for e in logs if e["event"] == "aof_truncated"]
        assert warnings[0]["log_level"] == "warning" and warnings[0]["valid_bytes"] == len(whole)
        assert talk(h.connect(), ("EXISTS", "cut"), ("EXISTS", "key:39999")) == [b":0\r\n", b":1\r\n"]


def test_a_corrupt_middle_refuses_to_start_naming_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "appendonly.aof"
    good = cmd("SET", "a", "1") + cmd("SET", "b", "2")
    path.write_bytes(good + b"garbage\r\n" + cmd("SET", "c", "3"))
    with pytest.raises(RuntimeError, match=f"offset {len(good)}"):
        ServiceHarness(RedisService, data_dir=tmp_path)
    assert path.read_bytes().startswith(good + b"garbage")  # never cut: the operator decides
    # In a large file, found during the sliced replay: the service stops the process the same way.
    whole = big_aof(path, 40_000)
    bad = whole[: len(whole) // 2]
    bad = bad[: bad.rindex(b"*3\r\n$3\r\nSET")]
    path.write_bytes(bad + b"*3\r\n$3\r\nSET\r\n$x\r\n" + whole[len(bad) :])
    h = ServiceHarness(RedisService, data_dir=tmp_path)
    try:
        with capture_logs() as logs, pytest.raises(SystemExit, match=f"bad bulk length at offset {len(bad) + 13}"):
            run_slices(h)
        assert [e["log_level"] for e in logs if e["event"] == "aof_corrupt"] == ["error"]
    finally:
        h.close()


@pytest.mark.heavy
def test_redis_py_sees_busy_loading_then_the_data(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "appendonly.aof").write_bytes(b"".join(cmd("SET", f"key:{i}", str(i)) for i in range(3000)))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat", "serve", "--only", "redis", "--data-dir", str(tmp_path),
         "--set", f"services.redis.port={port}", "--set", "services.redis.key_load_delay=1000",
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # 1 ms per command: the replay takes at least 3 s, far longer than a connection takes.
        r = redis.Redis(port=port, socket_timeout=DEADLINE, retry_on_error=[], retry=None)
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                r.get("key:1")
                pytest.fail("answered before the replay was done")
            except redis.BusyLoadingError:
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        info = r.info("persistence")
        assert (
            info["loading"] == 1
            and info["loading_total_bytes"] == (tmp_path / "redis" / "appendonly.aof").stat().st_size
        )
        while r.info("persistence")["loading"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert r.get("key:2999") == b"2999" and r.dbsize() == 3000
        r.close()
    finally:
        proc.terminate()
        proc.wait(DEADLINE)


# What a client may do while the data set loads: replies compared with redis-server 7.0 loading the same file.
WHILE_LOADING: list[tuple[str, ...]] = [
    ("PING",),
    ("GET", "key:1"),
    ("GET",),
    ("SET", "k", "v"),
    ("DBSIZE",),
    ("CLIENT", "NO-SUCH-SUB"),
    ("ECHO", "hi"),
    ("SELECT", "0"),
    ("CONFIG", "GET", "appendonly"),
    ("TIME", "extra"),
    ("MULTI",),
    ("GET", "key:1"),
    ("EXEC",),
    ("WATCH", "key:1"),
    ("UNWATCH",),
    ("XSETID",),
    ("NOSUCHCOMMAND",),
    ("KEYS", "*"),
    ("BGREWRITEAOF",),
    ("SUBSCRIBE", "ch"),
    ("UNSUBSCRIBE", "ch"),
    ("PUBLISH", "ch", "m"),
    ("AUTH", "nobody", "x"),
]


@pytest.mark.heavy
def test_what_runs_while_loading_is_what_redis_server_runs(tmp_path: Path) -> None:
    data = b"".join(cmd("SET", f"key:{i}", str(i)) for i in range(20_000))
    theirs_dir, ours_dir = tmp_path / "theirs", tmp_path / "ours"
    theirs_dir.mkdir()
    (ours_dir / "redis").mkdir(parents=True)
    (theirs_dir / "appendonly.aof").write_bytes(data)  # an old-style single file: 7.0 loads (and upgrades) it
    (ours_dir / "redis" / "appendonly.aof").write_bytes(data)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat", "serve", "--only", "redis", "--data-dir", str(ours_dir),
         "--set", f"services.redis.port={port}", "--set", "services.redis.key_load_delay=1000",
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # 1 ms per command: both take at least 20 s to load, far longer than these exchanges.
        with real_redis(theirs_dir, "--appendonly", "yes", "--key-load-delay", "1000") as address:
            peer = RawClient(address)
            # One pipeline: redis-server 7.0 reads clients only every 1024 commands while it loads.
            peer.send(b"".join(cmd(*c) for c in WHILE_LOADING))
            theirs = [peer.reply() for _ in WHILE_LOADING]
            assert b"loading:1" in peer.call("INFO", "persistence")
            peer.close()
        ours_client = connect_when_listening(port, within=DEADLINE)
        ours_client.close()
        mine = RawClient(("127.0.0.1", port))
        mine.send(b"".join(cmd(*c) for c in WHILE_LOADING))
        ours = [mine.reply() for _ in WHILE_LOADING]
        assert b"loading:1" in mine.call("INFO", "persistence")
        mine.close()
    finally:
        proc.terminate()
        proc.wait(DEADLINE)
    assert ours == theirs


def test_other_services_answer_while_redis_loads(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "appendonly.aof").write_bytes(b"".join(cmd("SET", f"key:{i}", str(i)) for i in range(3000)))
    settings = {"services": {"redis": {"key_load_delay": 1000}}}  # 1 ms a command: at least 3 s of loading
    with serve([RedisService, EchoService], data_dir=tmp_path, settings=settings) as server:
        echo = LineClient(server.address("echo"))
        assert echo.read_line().startswith(b"+ ")
        redis_client = RawClient(server.address("redis"))
        for i in range(5):
            # Between slices of the replay the reactor serves both services, a request at a time.
            echo.send(f"ECHO hello {i}\r\n")
            assert echo.read_line() == f"+ hello {i}".encode()
            assert redis_client.call("GET", "key:1") == LOADING
        assert b"loading:1" in redis_client.call("INFO", "persistence")
        echo.close()
        redis_client.close()
