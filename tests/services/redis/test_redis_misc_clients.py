"""redis-py over loopback: sharded pub/sub, MONITOR, DUMP/RESTORE, SLOWLOG as the library uses them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.fixture(params=["default", "resp2"])
def r(server: RunningServer, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """redis-py as users make it (RESP3) and asking for RESP2."""
    host, port = server.address()
    kwargs = {} if request.param == "default" else {"protocol": 2}
    client = redis.Redis(host=host, port=port, socket_timeout=10, **kwargs)  # type: ignore[arg-type]
    client.flushall()
    yield client
    client.close()


def _messages(pubsub: redis.client.PubSub, count: int) -> list[tuple[str, bytes, object]]:
    received: list[tuple[str, bytes, object]] = []
    deadline = time.monotonic() + 10
    while len(received) < count and time.monotonic() < deadline:
        message = pubsub.get_sharded_message(timeout=1.0)
        if message is not None:
            received.append((message["type"], message["channel"], message["data"]))
    return received


def test_redis_py_sharded_pubsub(r: redis.Redis) -> None:
    pubsub = r.pubsub()
    pubsub.ssubscribe("orders", "stock")
    assert _messages(pubsub, 2) == [("ssubscribe", b"orders", 1), ("ssubscribe", b"stock", 2)]
    assert r.pubsub_shardnumsub("orders", "nothing") == [(b"orders", 1), (b"nothing", 0)]
    assert sorted(r.pubsub_shardchannels()) == [b"orders", b"stock"]
    assert r.spublish("orders", "42") == 1
    assert r.publish("orders", "plain") == 0  # plain and shard channels are apart
    assert _messages(pubsub, 1) == [("smessage", b"orders", b"42")]
    pubsub.sunsubscribe("orders")
    assert _messages(pubsub, 1) == [("sunsubscribe", b"orders", 1)]
    assert r.spublish("orders", "late") == 0
    assert r.spublish("stock", "7") == 1
    assert _messages(pubsub, 1) == [("smessage", b"stock", b"7")]
    pubsub.close()
    deadline = time.monotonic() + 10
    while r.spublish("stock", "again") != 0:  # the server drops the subscription when it sees the close
        assert time.monotonic() < deadline
        time.sleep(0.01)
