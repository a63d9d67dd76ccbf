"""The Redis glob matcher: Redis's semantics against a reference and redis-server, and no backtracking blow-up."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.services.redis.resp import compile_glob, glob_match
from linechat.testing import serve
from redis_wire import real_redis


def _low(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def reference(p: bytes, s: bytes, nocase: bool = False) -> bool:
    """A plain recursive (exponential) reading of redis-server's glob rules, as the oracle."""
    if not s:
        # redis-server's loop never starts on an empty string: only the empty pattern matches it.
        return not p
    if not p:
        return False
    c = p[0]
    if c == 0x2A:  # '*'
        return any(reference(p[1:], s[i:], nocase) for i in range(len(s))) or all(x == 0x2A for x in p)
    ch = s[0]
    if c == 0x3F:  # '?'
        rest = 1
        ok = True
    elif c == 0x5B:  # '['
        i = 1
        negate = i < len(p) and p[i] == 0x5E
        if negate:
            i += 1
        hit = False
        while i < len(p) and p[i] != 0x5D:
            if p[i] == 0x5C and i + 1 < len(p):
                i += 1
                hit |= p[i] == ch
            elif i + 2 < len(p) and p[i + 1] == 0x2D:
                lo, hi = sorted((p[i], p[i + 2]))
                x = ch
                if nocase:
                    lo, hi, x = _low(lo), _low(hi), _low(ch)
                hit |= lo <= x <= hi
                i += 2
            else:
                hit |= (_low(p[i]) == _low(ch)) if nocase else p[i] == ch
            i += 1
        rest = min(i + 1, len(p))
        ok = hit != negate
    else:
        rest = 1
        if c == 0x5C and len(p) > 1:
            c = p[1]
            rest = 2
        ok = (_low(c) == _low(ch)) if nocase else c == ch
    if not ok:
        return False
    tail, more = p[rest:], s[1:]
    if not more:
        return all(x == 0x2A for x in tail)
    return reference(tail, more, nocase)


# Small alphabets so that matches are common; the pattern alphabet carries every special byte.
VALUES = st.binary(max_size=10).map(lambda b: bytes(b"abAB-]\\"[x % 7] for x in b))
PATTERN_BYTES = b"abAB*?[]^-\\z"
PATTERNS = st.lists(st.sampled_from(PATTERN_BYTES), max_size=9).map(bytes)


@settings(max_examples=1000, deadline=None)
@given(PATTERNS, VALUES, st.booleans())
def test_matches_the_reference(pattern: bytes, value: bytes, nocase: bool) -> None:
    assert glob_match(pattern, value, nocase) == reference(pattern, value, nocase), (pattern, value, nocase)


@pytest.mark.parametrize(
    ("pattern", "value", "nocase", "expected"),
    [
        (b"h?llo", b"hello", False, True),
        (b"h*llo", b"heeeello", False, True),
        (b"h[ae]llo", b"hallo", False, True),
        (b"h[^e]llo", b"hello", False, False),
        (b"h[a-b]llo", b"hbllo", False, True),
        (b"h[b-a]llo", b"hbllo", False, True),  # a reversed range is swapped
        (b"h\\*llo", b"h*llo", False, True),
        (b"h\\*llo", b"hello", False, False),
        (b"[abc", b"c", False, True),  # an unclosed class runs to the end
        (b"a\\", b"a\\", False, True),  # a trailing backslash is itself
        (b"HeLLo", b"hello", True, True),
        (b"HeLLo", b"hello", False, False),
        (b"[A-C]x", b"bx", True, True),
        (b"[\\A]", b"a", True, False),  # an escaped class member is exact even under nocase
        (b"*", b"", False, False),  # the matcher itself: KEYS and SCAN short-cut "*"
        (b"", b"", False, True),
        (b"a*", b"a", False, True),
        (b"*a*b*", b"xxaxxbxx", False, True),
        (b"*a*b", b"xxaxxbxx", False, False),
    ],
)
def test_examples(pattern: bytes, value: bytes, nocase: bool, expected: bool) -> None:
    assert glob_match(pattern, value, nocase) is expected
    assert reference(pattern, value, nocase) is expected


ADVERSARIAL = [
    (b"*a" * 8 + b"*b", b"a" * 40),
    (b"*a" * 30 + b"*b", b"a" * 5000),
    (b"a*" * 50 + b"b", b"a" * 10000),
    (b"*" + b"?" * 20 + b"*[^a]", b"a" * 10000),
    (b"*[a-z]*[^x]" * 40 + b"*b", b"a" * 8000),
]


@pytest.mark.parametrize(("pattern", "value"), ADVERSARIAL)
def test_adversarial_patterns_make_one_search_per_segment(pattern: bytes, value: bytes) -> None:
    """Each star-free segment is searched at most once, whatever the value: nothing is retried."""
    glob = compile_glob(pattern)
    segments = pattern.count(b"*") + 1
    for candidate, expected in ((value, False), (value + b"b", True)):
        steps = [0]
        assert glob.match(candidate, steps) is expected
        assert 0 < steps[0] <= segments
    # The oracle agrees on a short instance (it is exponential, so only there).
    short = value[:12]
    assert glob.match(short) is reference(pattern, short) and glob.match(short + b"b") is reference(
        pattern, short + b"b"
    )


def test_adversarial_keys_and_psubscribe_answer(tmp_path: Path) -> None:
    """KEYS, SCAN MATCH and PSUBSCRIBE with a 30-star pattern over long keys answer, and the server carries on."""
    with serve(RedisService, data_dir=tmp_path) as srv:
        host, port = srv.address()
        r = redis.Redis(host=host, port=port, socket_timeout=60)
        long = "a" * 4000
        r.mset({f"{long}{i}": i for i in range(20)})
        r.set("a" * 30 + "b", 1)
        r.set("a" * 29 + "b", 1)
        evil = "*a" * 30 + "*b"
        assert r.keys(evil) == [b"a" * 30 + b"b"]
        assert sorted(r.keys("*a*a*a*a*a*a*a*a*b")) == [b"a" * 30 + b"b", b"a" * 29 + b"b"]
        assert list(r.scan_iter(match=evil, count=100)) == [b"a" * 30 + b"b"]
        p = r.pubsub()
        p.psubscribe(evil)
        assert p.get_message(timeout=10)["type"] == "psubscribe"
        assert r.publish(long, "x") == 0
        assert r.publish("a" * 31 + "b", "y") == 1
        msg = p.get_message(timeout=10)
        assert msg is not None and msg["data"] == b"y"
        p.close()
        assert r.ping()
        r.close()


def test_config_get_and_command_list_are_case_insensitive(tmp_path: Path) -> None:
    with serve(RedisService, data_dir=tmp_path) as srv:
        host, port = srv.address()
        r = redis.Redis(host=host, port=port, socket_timeout=10, decode_responses=True)
        assert "maxmemory" in r.config_get("MAXMEM*")
        assert "maxmemory" in r.config_get("max[L-N]emory")
        assert "get" in r.command_list(pattern="G?T")
        r.close()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with (
        real_redis(tmp_path_factory.mktemp("real")) as address,
        serve(RedisService, data_dir=tmp_path_factory.mktemp("ours")) as srv,
    ):
        real = redis.Redis(*address, socket_timeout=30)
        ours = redis.Redis(*srv.address(), socket_timeout=30)
        yield real, ours
        real.close()
        ours.close()


def test_keys_agree_with_redis_server(both: tuple[redis.Redis, redis.Redis]) -> None:
    """A random sample of patterns over the same keys: KEYS gives the same set on both servers."""
    real, ours = both
    rng = random.Random(13)
    keys = {bytes(rng.choice(b"abAB-]\\^[") for _ in range(rng.randint(0, 7))) for _ in range(150)}
    for r in both:
        r.flushall()
        r.mset({k: 1 for k in keys})
    patterns = [bytes(rng.choice(PATTERN_BYTES) for _ in range(rng.randint(1, 7))) for _ in range(400)]
    patterns += [b"*", b"**", b"[", b"\\", b"[^", b"[a-", b"[\\]", b"*[]*"]
    for pattern in patterns:
        assert sorted(ours.keys(pattern)) == sorted(real.keys(pattern)), pattern
        assert sorted(ours.scan_iter(match=pattern, count=1000)) == sorted(real.scan_iter(match=pattern, count=1000))
