"""Real applications over loopback: optimistic transactions, locks and rate limiters built on our Redis.

Each test drives a library nobody here wrote (redis-py's ``transaction()``
and ``Lock``, python-redis-lock, django-redis, limits) against our server
and checks the outcome, not just the absence of errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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


# --------------------------------------------------------------------------- redis-py Lock


def test_redis_py_lock(r: redis.Redis, server: RunningServer) -> None:
    """redis-py's Lock (Lua scripts for release, extend, reacquire) against a second client."""
    host, port = server.address()
    other = redis.Redis(host=host, port=port, socket_timeout=10)
    mine = r.lock("resource", timeout=60)
    theirs = other.lock("resource", timeout=60)
    assert mine.acquire(blocking=False) is True
    assert mine.locked() and mine.owned()
    assert theirs.acquire(blocking=False) is False
    assert not theirs.owned()
    theirs.local.token = b"someone else"  # pretend: the release script compares tokens on the server
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        theirs.release()
    theirs.local.token = None
    assert mine.extend(30) is True
    assert 60 < r.pttl("resource") / 1000 <= 90
    assert mine.reacquire() is True
    assert 50 < r.pttl("resource") / 1000 <= 60
    mine.release()
    assert r.exists("resource") == 0
    assert theirs.acquire(blocking=True, blocking_timeout=5) is True
    mine.local.token = b"stale token"  # a holder whose lock was taken over
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        mine.extend(10)
    theirs.release()
    other.close()


# --------------------------------------------------------------------------- python-redis-lock


def test_python_redis_lock(r: redis.Redis, server: RunningServer) -> None:
    """python-redis-lock: Lua acquire/release/extend, and a waiter woken through its signal list (BLPOP)."""
    import redis_lock

    host, port = server.address()
    holder = redis_lock.Lock(r, "job", expire=60)
    assert holder.acquire(blocking=False) is True
    assert r.get("lock:job") is not None
    assert redis_lock.Lock(r, "job", expire=60).acquire(blocking=False) is False
    holder.extend(expire=120)
    assert 60 < r.ttl("lock:job") <= 120

    waiter_conn = redis.Redis(host=host, port=port, socket_timeout=30)
    waiter = redis_lock.Lock(waiter_conn, "job", expire=60)
    got: list[bool] = []
    started = threading.Event()

    def wait() -> None:
        started.set()
        got.append(waiter.acquire(blocking=True, timeout=30))

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait(10)
    holder.release()  # signals the waiter, which is blocked in BLPOP on the signal list
    thread.join(30)
    assert got == [True]
    assert waiter.locked() and redis_lock.Lock(r, "job").get_owner_id() == waiter.id
    with pytest.raises(redis_lock.NotAcquired):
        holder.release()
    waiter.release()
    assert not waiter.locked()
    redis_lock.reset_all(r)
    waiter_conn.close()


# --------------------------------------------------------------------------- django-redis

DJANGO_SCRIPT = r"""
import json, sys, threading
import django
from django.conf import settings

settings.configure(
    CACHES={
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": sys.argv[1],
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
)
django.setup()
from django.core.cache import cache

out = {}
cache.clear()
cache.set("greeting", {"text": "hello", "n": 1}, timeout=300)
out["get"] = cache.get("greeting")
out["ttl"] = cache.ttl("greeting")
cache.set("counter", 10)
out["incr"] = cache.incr("counter", 5)
out["decr"] = cache.decr("counter", 3)
out["add_existing"] = cache.add("counter", 99)
cache.set_many({"a": 1, "b": 2, "c": 3})
out["many"] = cache.get_many(["a", "b", "c", "missing"])
out["delete_pattern"] = cache.delete_pattern("[ab]")
out["after_pattern"] = sorted(cache.get_many(["a", "b", "c"]))
out["persist"] = cache.persist("greeting")
out["ttl_after_persist"] = cache.ttl("greeting")
try:
    cache.incr("missing-key")
except ValueError:
    out["incr_missing"] = "ValueError"

lock = cache.lock("django-lock", timeout=30)
out["lock_acquired"] = lock.acquire(blocking=False)
out["lock_contended"] = cache.lock("django-lock", timeout=30).acquire(blocking=False)
lock.release()
out["lock_reacquired"] = cache.lock("django-lock", timeout=30).acquire(blocking=False)

# Concurrent increments through the cache lose nothing.
def bump():
    for _ in range(50):
        cache.incr("shared")
cache.set("shared", 0)
threads = [threading.Thread(target=bump) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
out["shared"] = cache.get("shared")
print(json.dumps(out))
"""


def test_django_redis_cache_and_lock(server: RunningServer, tmp_path: Path) -> None:
    """django-redis in its own process (Django settings are global): cache calls, its Lua-backed lock."""
    host, port = server.address()
    script = tmp_path / "django_app.py"
    script.write_text(DJANGO_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), f"redis://{host}:{port}/3"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["get"] == {"text": "hello", "n": 1}
    assert 290 < out["ttl"] <= 300
    assert (out["incr"], out["decr"], out["add_existing"]) == (15, 12, False)
    assert out["many"] == {"a": 1, "b": 2, "c": 3}
    assert out["delete_pattern"] == 2 and out["after_pattern"] == ["c"]
    assert out["persist"] is True and out["ttl_after_persist"] is None
    assert out["incr_missing"] == "ValueError"
    assert (out["lock_acquired"], out["lock_contended"], out["lock_reacquired"]) == (True, False, True)
    assert out["shared"] == 200


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    "strategy", ["FixedWindowRateLimiter", "MovingWindowRateLimiter", "SlidingWindowCounterRateLimiter"]
)
def test_limits_strategies(server: RunningServer, strategy: str) -> None:
    """The limits package's three Redis strategies (Lua scripts, sorted sets, lists): the limit holds, per key."""
    import limits
    import limits.storage
    import limits.strategies

    host, port = server.address()
    storage = limits.storage.RedisStorage(f"redis://{host}:{port}/5")
    limiter = getattr(limits.strategies, strategy)(storage)
    rule = limits.parse("5/hour")
    storage.reset()
    assert storage.check()
    assert [limiter.hit(rule, "user", "1") for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.test(rule, "user", "1") is False
    assert limiter.hit(rule, "user", "2") is True  # another key has its own budget
    stats = limiter.get_window_stats(rule, "user", "1")
    assert stats.remaining == 0 and stats.reset_time > 0
    assert limiter.get_window_stats(rule, "user", "2").remaining == 4
    limiter.clear(rule, "user", "1")
    assert limiter.hit(rule, "user", "1") is True
    # Several hits at once (cost), as applications charge expensive calls.
    assert limiter.hit(rule, "user", "3", cost=5) is True
    assert limiter.hit(rule, "user", "3") is False
