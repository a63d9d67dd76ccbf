"""Django's built-in RedisCache (django.core.cache.backends.redis) against our server over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import RunningServer, serve

django = pytest.importorskip("django")
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(RedisService, data_dir=tmp_path_factory.mktemp("django")) as srv:
        yield srv


@pytest.fixture
def cache(server: RunningServer) -> Iterator[object]:
    from django.conf import settings
    from django.core.cache.backends.redis import RedisCache

    if not settings.configured:
        settings.configure(USE_TZ=True)
    host, port = server.address()
    backend = RedisCache(f"redis://{host}:{port}/3", {"KEY_PREFIX": "app", "TIMEOUT": 300})
    backend.clear()
    yield backend
    backend.close()


def test_django_redis_cache_round_trips(cache: object, server: RunningServer) -> None:
    c: Any = cache
    c.set("greeting", "hello")
    c.set("obj", {"a": [1, 2.5, None]})
    c.set("n", 10)
    assert c.get("greeting") == "hello"
    assert c.get("obj") == {"a": [1, 2.5, None]}
    assert c.get("missing", "default") == "default"
    assert c.add("greeting", "other") is False
    assert c.add("fresh", "x") is True
    assert c.incr("n", 5) == 15
    assert c.decr("n") == 14
    with pytest.raises(ValueError):
        c.incr("nope")
    assert c.get_many(["greeting", "n", "missing"]) == {"greeting": "hello", "n": 14}
    c.set_many({"k1": 1, "k2": "two"}, timeout=100)
    assert c.get_many(["k1", "k2"]) == {"k1": 1, "k2": "two"}
    assert c.has_key("k1")
    assert c.touch("k1", 1000) is True
    assert c.touch("missing", 10) is False
    assert c.delete("k1") is True
    assert c.delete("k1") is False
    c.delete_many(["k2", "fresh"])
    assert c.get_or_set("lazy", lambda: "computed") == "computed"
    # What Django wrote, seen from a plain client: database 3, prefixed keys, deadlines set.
    host, port = server.address()
    raw = redis.Redis(host=host, port=port, db=3)
    keys = sorted(raw.keys("*"))
    assert keys == [b"app:1:greeting", b"app:1:lazy", b"app:1:n", b"app:1:obj"]
    assert 0 < raw.ttl(keys[0]) <= 300
    c.clear()
    assert raw.dbsize() == 0
    raw.close()
