"""Real applications over loopback: optimistic transactions, locks and rate limiters built on our Redis.

Each test drives a library nobody here wrote (redis-py's ``transaction()``
and ``Lock``, python-redis-lock, django-redis, limits) against our server
and checks the outcome, not just the absence of errors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, serve

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("apps")) as srv:
        yield srv


@pytest.fixture
def r(server: RunningServer) -> Iterator[redis.Redis]:
    host, port = server.address()
    client = redis.Redis(host=host, port=port, socket_timeout=10)
    client.flushall()
    yield client
    client.close()


# --------------------------------------------------------------------------- redis-py transaction()


def test_transaction_helper_retries_until_no_one_interferes(r: redis.Redis, server: RunningServer) -> None:
    """redis-py's transaction(): WATCH, read, MULTI/EXEC; a write by another client in between forces a retry."""
    host, port = server.address()
    other = redis.Redis(host=host, port=port, socket_timeout=10)
    r.set("balance", 100)
    attempts = []

    def debit(pipe: redis.client.Pipeline) -> None:
        balance = int(pipe.get("balance"))
        attempts.append(balance)
        if len(attempts) == 1:
            other.incrby("balance", 50)  # interferes once, between WATCH and EXEC
        pipe.multi()
        pipe.set("balance", balance - 30)

    result = r.transaction(debit, "balance")
    assert result == [True]
    assert attempts == [100, 150]  # the first EXEC failed on the watched key, the retry saw the new value
    assert r.get("balance") == b"120"
    other.close()


def test_concurrent_optimistic_increments_lose_nothing(server: RunningServer) -> None:
    """Several threads incrementing one counter with WATCH/GET/MULTI/SET/EXEC: every increment counts."""
    host, port = server.address()
    redis.Redis(host=host, port=port).set("counter", 0)
    per_thread, threads = 25, 4

    def work() -> None:
        client = redis.Redis(host=host, port=port, socket_timeout=10)
        for _ in range(per_thread):
            client.transaction(lambda p: (v := int(p.get("counter")), p.multi(), p.set("counter", v + 1)), "counter")
        client.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert redis.Redis(host=host, port=port).get("counter") == b"%d" % (per_thread * threads)


def test_watch_error_surfaces_to_the_caller(r: redis.Redis, server: RunningServer) -> None:
    """Without the retry helper, redis-py raises WatchError when EXEC is refused."""
    host, port = server.address()
    r.set("k", "v")
    with r.pipeline() as pipe:
        pipe.watch("k")
        redis.Redis(host=host, port=port).set("k", "changed")
        pipe.multi()
        pipe.set("k", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("k") == b"changed"
