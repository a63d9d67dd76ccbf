"""HyperLogLog (PFADD, PFCOUNT, PFMERGE) against a real redis-server: the same counts, replies byte for byte.

Both servers hash with MurmurHash64A and estimate with the same formula, so
PFCOUNT must agree exactly, from one element to a hundred thousand.  Values
are also exchanged: HYLL strings made by redis-server are counted and merged
here, and those made here by redis-server (the stored bytes themselves are
compared in test_redis_differential_hll_sparse.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_wire import Address, assert_same_replies, run_commands, side_by_side

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


CORPUS: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    ("PFADD", "h", "a", "b", "c"),
    ("PFADD", "h", "a"),
    ("PFADD", "h"),
    ("PFADD", "new"),
    ("PFCOUNT", "new"),
    ("PFADD", "new"),
    ("PFCOUNT", "h"),
    ("PFCOUNT", "h"),
    ("PFCOUNT", "nokey"),
    ("PFCOUNT", "nokey", "nokey2"),
    ("PFADD", "h2", "c", "d", "e", "f"),
    ("PFCOUNT", "h", "h2"),
    ("PFCOUNT", "h", "h2", "nokey"),
    ("PFMERGE", "m", "h", "h2"),
    ("PFCOUNT", "m"),
    ("PFMERGE", "m"),
    ("PFCOUNT", "m"),
    ("PFMERGE", "m2", "nokey"),
    ("EXISTS", "m2"),
    ("PFCOUNT", "m2"),
    ("TYPE", "h"),
    ("SET", "s", "not an hll"),
    ("PFADD", "s", "a"),
    ("PFCOUNT", "s"),
    ("PFCOUNT", "h", "s"),
    ("PFMERGE", "s", "h"),
    ("PFMERGE", "m", "s"),
    ("SET", "i", "12345"),
    ("PFADD", "i", "a"),
    ("SET", "short", "HYLL"),
    ("PFCOUNT", "short"),
    ("SET", "badenc", "HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
    ("PFCOUNT", "badenc"),
    ("SET", "baddense", "HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00xx"),
    ("PFADD", "baddense", "a"),
    ("SET", "badsparse", "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff"),
    ("PFCOUNT", "badsparse"),
    ("PFADD", "badsparse", "x"),
    ("PFCOUNT", "h", "badsparse"),
    ("SET", "sparse0", "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff"[:16] + "\x7f\xff"),
    ("PFCOUNT", "sparse0"),
    ("RPUSH", "l", "a"),
    ("PFADD", "l", "a"),
    ("PFCOUNT", "l"),
    ("PFCOUNT", "h", "l"),
    ("PFMERGE", "l", "h"),
    ("PFMERGE", "h", "l"),
    ("SET", "t", "x", "EX", "100"),
    ("DEL", "t"),
    ("PFADD", "t", "a"),
    ("EXPIRE", "t", "100"),
    ("PFADD", "t", "b"),
    ("TTL", "t"),
    ("PFMERGE", "t", "h"),
    ("TTL", "t"),
    ("PFADD",),
    ("PFCOUNT",),
    ("PFMERGE",),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Address, Address]]:
    """A real redis-server and ours, side by side."""
    with side_by_side(tmp_path_factory.mktemp("hlldiff")) as pair:
        yield pair


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_hll_corpus_matches_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    assert_same_replies(both, CORPUS, hello)


@pytest.mark.parametrize("size", [1, 10, 200, 3000, 20000, 100000])
def test_counts_match_real_redis(both: tuple[Address, Address], size: int) -> None:
    """PFCOUNT after adding *size* distinct elements in batches, and the union with an overlapping set."""
    commands: list[tuple[str | bytes, ...]] = [("DEL", "big", "other", "u")]
    for start in range(0, size, 1000):
        commands.append(("PFADD", "big", *(f"element:{i}" for i in range(start, min(size, start + 1000)))))
    commands += [("PFCOUNT", "big"), ("PFADD", "other", *(f"element:{i}" for i in range(size // 2, size // 2 + 500)))]
    commands += [("PFCOUNT", "big", "other"), ("PFMERGE", "u", "big", "other"), ("PFCOUNT", "u"), ("PFCOUNT", "u")]
    commands += [("GET", "big"), ("GET", "other"), ("GET", "u")]  # sparse or dense, the same bytes
    assert_same_replies(both, commands, None)


def test_values_cross_between_servers(both: tuple[Address, Address]) -> None:
    """Sparse and dense HYLL strings made by one server count and merge the same on the other."""
    real, ours = both
    elements = [b"x%d" % i for i in range(300)]
    sparse = run_commands(real, [("DEL", "sp"), ("PFADD", "sp", *elements), ("GET", "sp")])[2]
    payload = sparse.split(b"\r\n", 1)[1][:-2]
    assert payload[4] == 1  # redis-server keeps a small HLL sparse
    assert run_commands(ours, [("DEL", "sp"), ("PFADD", "sp", *elements), ("GET", "sp")])[2] == sparse
    counted = run_commands(ours, [("SET", "sp", payload), ("PFCOUNT", "sp"), ("PFADD", "sp", "y"), ("PFCOUNT", "sp")])
    expected = run_commands(real, [("SET", "sp", payload), ("PFCOUNT", "sp"), ("PFADD", "sp", "y"), ("PFCOUNT", "sp")])
    assert counted == expected
    many = [b"x%d" % i for i in range(5000)]
    dense = run_commands(ours, [("DEL", "dn"), ("PFADD", "dn", *many), ("GET", "dn")])[2]
    payload = dense.split(b"\r\n", 1)[1][:-2]
    assert payload[4] == 0 and len(payload) == 12304
    theirs = run_commands(real, [("SET", "dn", payload), ("PFCOUNT", "dn"), ("PFCOUNT", "dn", "sp")])
    mine = run_commands(ours, [("SET", "dn", payload), ("PFCOUNT", "dn"), ("PFCOUNT", "dn", "sp")])
    assert theirs == mine
    assert 4900 <= int(theirs[1][1:-2]) <= 5100


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.tuples(st.sampled_from(["p", "q"]), st.lists(st.binary(max_size=12), min_size=0, max_size=40)),
        min_size=1,
        max_size=8,
    )
)
def test_random_adds_count_the_same(both: tuple[Address, Address], batches: list[tuple[str, list[bytes]]]) -> None:
    commands: list[tuple[str | bytes, ...]] = [("DEL", "p", "q", "r")]
    for key, elements in batches:
        commands += [("PFADD", key, *elements), ("PFCOUNT", key)]
    commands += [("PFCOUNT", "p", "q"), ("PFMERGE", "r", "p", "q"), ("PFCOUNT", "r")]
    assert_same_replies(both, commands, None)
