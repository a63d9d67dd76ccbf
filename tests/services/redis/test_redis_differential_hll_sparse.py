"""The sparse HyperLogLog encoding against a real redis-server 7.0: the stored bytes, not only the counts.

After every step the value is read back with ``GET`` (and ``STRLEN``), so
each opcode split, each merge of neighbouring VALs, the move to dense (past
``hll-sparse-max-bytes`` or for a value above 32) and the cached count in the
header must come out the same bytes as redis-server's.  Elements are made
to land on chosen registers with chosen values (``hll_craft``), so the
adversarial cases do not depend on luck.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator

import pytest
from hll_craft import element_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_wire import Address, assert_same_replies, run_commands, side_by_side

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

Command = tuple[str | bytes, ...]
HELLOS = pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Address, Address]]:
    """A real redis-server and ours, side by side."""
    with side_by_side(tmp_path_factory.mktemp("hllsparse")) as pair:
        yield pair


def with_reads(commands: list[Command], keys: tuple[str, ...]) -> list[Command]:
    """*commands*, each followed by GET and STRLEN of *keys*."""
    out: list[Command] = []
    for command in commands:
        out.append(command)
        for key in keys:
            out += [("GET", key), ("STRLEN", key)]
    return out


def assert_same(
    both: tuple[Address, Address], commands: list[Command], keys: tuple[str, ...], hello: int | None = None
) -> None:
    """Run *commands* on both servers from empty keys, reading *keys* back after each; all replies equal."""
    for address in both:
        run_commands(address, [("DEL", *keys)])
    assert_same_replies(both, with_reads(commands, keys), hello)


def pfadd(key: str, *registers: tuple[int, int]) -> Command:
    """PFADD of elements that set these (register, value) pairs."""
    return ("PFADD", key, *(element_for(i, v, salt) for salt, (i, v) in enumerate(registers)))


@pytest.fixture
def sparse_limit(both: tuple[Address, Address]) -> Iterator[None]:
    """Put hll-sparse-max-bytes back to its default on both servers after the test."""
    yield
    for address in both:
        run_commands(address, [("CONFIG", "SET", "hll-sparse-max-bytes", "3000")])


@HELLOS
def test_new_key_and_the_cached_count(both: tuple[Address, Address], hello: int | None) -> None:
    """A new key is an 18-byte XZERO; PFCOUNT caches the count in the header, PFADD marks it stale."""
    commands: list[Command] = [
        ("PFADD", "h"),
        ("PFCOUNT", "h"),
        ("PFADD", "h", "a"),
        ("PFCOUNT", "h"),
        ("PFADD", "h", "a"),
        ("PFCOUNT", "h"),
        ("PFADD", "h", "b", "c"),
        ("PFADD", "h"),
        ("PFCOUNT", "h"),
        ("OBJECT", "ENCODING", "h"),
        ("PFADD", "g", "x"),
        ("TYPE", "g"),
    ]
    assert_same(both, commands, ("h", "g"), hello)


@HELLOS
def test_one_register_climbs_to_dense(both: tuple[Address, Address], hello: int | None) -> None:
    """Values 1..32 fit a VAL opcode; 33 turns the value dense, keeping the header's cached count."""
    commands: list[Command] = [pfadd("h", (100, 1)), ("PFCOUNT", "h")]
    for value in (2, 2, 1, 5, 17, 31, 32, 32):
        commands += [pfadd("h", (100, value)), ("PFCOUNT", "h")]
    commands += [pfadd("h", (100, 33)), ("PFCOUNT", "h"), pfadd("h", (101, 40)), ("PFCOUNT", "h")]
    commands += [pfadd("e", (0, 51)), ("PFCOUNT", "e"), pfadd("f", (5, 3), (6, 3), (16383, 36), (7, 3))]
    assert_same(both, commands, ("h", "e", "f"), hello)


@HELLOS
def test_splits_and_merges_of_neighbours(both: tuple[Address, Address], hello: int | None) -> None:
    """Runs of equal values join into VALs of up to four; raising one in the middle splits them again."""
    commands: list[Command] = []
    for i in range(10, 20):  # left to right: each new VAL joins the one before it
        commands.append(pfadd("a", (i, 2)))
    for i in range(40, 28, -1):  # right to left
        commands.append(pfadd("a", (i, 3)))
    commands += [pfadd("a", (12, 4)), pfadd("a", (11, 4)), pfadd("a", (13, 4)), pfadd("a", (14, 4))]
    commands += [pfadd("a", (35, 2)), pfadd("a", (20, 2)), pfadd("a", (9, 2)), pfadd("a", (21, 3))]
    # The zero-run boundaries: ZERO holds up to 64, XZERO beyond; first and last registers.
    commands += [pfadd("b", (0, 1)), pfadd("b", (16383, 1)), pfadd("b", (65, 1)), pfadd("b", (130, 1))]
    commands += [pfadd("b", (64, 1)), pfadd("b", (195, 7)), pfadd("b", (1, 1)), pfadd("b", (16382, 1))]
    commands += [pfadd("b", (2, 1), (3, 1), (4, 1), (5, 1), (6, 1))]
    assert_same(both, commands, ("a", "b"), hello)


@HELLOS
def test_growing_past_the_limit(both: tuple[Address, Address], hello: int | None) -> None:
    """Random elements in small batches until the value crosses 3000 bytes and turns dense."""
    rng = random.Random(7)
    commands: list[Command] = []
    for batch in range(90):
        commands.append(("PFADD", "big", *(b"%d" % rng.getrandbits(40) for _ in range(25))))
        if batch % 10 == 0:
            commands.append(("PFCOUNT", "big"))
    replies = run_commands(both[1], [("DEL", "big"), *commands, ("STRLEN", "big")])
    assert replies[-1] == b":12304\r\n"  # it did go dense on the way
    assert_same(both, commands, ("big",), hello)


@HELLOS
def test_merges(both: tuple[Address, Address], hello: int | None) -> None:
    """PFMERGE: sparse into new, sparse into sparse (cached count kept then marked stale), dense involved."""
    rng = random.Random(3)
    small = [("PFADD", "s1", *(b"s1:%d" % i for i in range(40)))]
    small += [("PFADD", "s2", *(b"s2:%d" % i for i in range(60))), ("PFCOUNT", "s2")]
    dense = [("PFADD", "d", *(b"d:%d" % rng.getrandbits(32) for _ in range(4000)))]
    commands: list[Command] = [
        *small,
        *dense,
        ("PFMERGE", "m", "s1", "s2"),
        ("PFCOUNT", "m"),
        ("PFMERGE", "m", "s1"),
        ("PFMERGE", "s2", "s1"),
        ("PFCOUNT", "s2", "s1", "nokey"),
        ("PFMERGE", "empty", "nokey"),
        ("PFMERGE", "empty2"),
        ("PFMERGE", "md", "s1", "d"),
        ("PFMERGE", "s1", "d"),
        ("PFCOUNT", "s1", "s2", "d"),
        ("PFMERGE", "d", "s2"),
        pfadd("x", (3, 9), (4, 9)),
        pfadd("y", (5, 9), (2, 9), (9000, 32)),
        ("PFMERGE", "x", "y"),
        ("PFCOUNT", "x", "y"),
    ]
    keys = ("s1", "s2", "m", "empty", "empty2", "md", "x", "y")
    assert_same(both, commands, keys, hello)


@HELLOS
def test_merge_crossing_the_limit(both: tuple[Address, Address], hello: int | None) -> None:
    """A merge of sparse values whose union no longer fits goes dense midway, as redis-server's does."""
    commands: list[Command] = [("PFADD", f"p{n}", *(b"p%d:%d" % (n, i) for i in range(700))) for n in range(4)]
    commands += [("PFMERGE", "u", "p0", "p1"), ("PFMERGE", "u", "p2"), ("PFMERGE", "u", "p3"), ("PFCOUNT", "u")]
    assert_same(both, commands, ("p0", "p1", "u"), hello)


@HELLOS
def test_sparse_limit_is_a_config_parameter(
    both: tuple[Address, Address], hello: int | None, sparse_limit: None
) -> None:
    """CONFIG SET hll-sparse-max-bytes: 0 turns dense at the first split, a large one keeps big values sparse."""
    commands: list[Command] = [
        ("CONFIG", "GET", "hll-sparse-max-bytes"),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "0"),
        ("PFADD", "z", "a"),
        ("PFADD", "z2"),
        pfadd("z2", (0, 1)),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "25"),
        pfadd("t", (10, 1), (11, 1), (30, 2), (50, 3), (51, 3), (52, 4), (90, 1), (91, 2)),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "100kb"),
        ("CONFIG", "GET", "hll-sparse-max-bytes"),
        ("PFADD", "large", *(b"%d" % i for i in range(6000))),
        ("PFCOUNT", "large"),
        ("PFMERGE", "lm", "large", "z2"),
        ("PFMERGE", "lm2", "large", "t"),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "-1"),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "1.5"),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "9223372036854775808"),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "9223372036854775807"),
        ("CONFIG", "GET", "hll-sparse-max-bytes"),
        ("CONFIG", "SET", "hll-sparse-max-bytes", "3000"),
        ("PFADD", "large", "more"),
    ]
    assert_same(both, commands, ("z", "z2", "t", "large", "lm", "lm2"), hello)


@HELLOS
def test_sparse_values_set_from_outside(both: tuple[Address, Address], hello: int | None) -> None:
    """Values written with SET (non-canonical opcodes, odd header bytes, corrupt runs) are read alike."""
    head = b"HYLL\x01\x07\x00\x09" + (12345).to_bytes(8, "little")  # unused bytes set, count cached
    values = {
        "odd": head + b"\x00\x00" + bytes([0x40, 0x00]) + bytes([0x7F, 0xFC]),  # ZERO ZERO, XZERO of 1
        "vals": head + bytes([0x83, 0x83, 0x80]) + bytes([0x7F, 0xF6]),  # VALs that a merge could join
        "short": head + bytes([0x7F, 0xFE]),  # covers 16383 registers
        "long": head + bytes([0x7F, 0xFF, 0x00]),  # covers 16385
    }
    commands: list[Command] = []
    for key, value in values.items():
        commands += [("SET", key, value), ("PFCOUNT", key), ("SET", key, value), ("PFADD", key)]
        commands += [pfadd(key, (1, 1)), pfadd(key, (2, 3)), ("PFCOUNT", key), ("PFCOUNT", key, "odd")]
        commands += [("SET", key, value), pfadd(key, (16383, 2)), pfadd(key, (16382, 2), (1, 1)), ("PFCOUNT", key)]
        commands += [("SET", key, value), pfadd(key, (7, 40)), ("PFMERGE", key, "odd"), ("PFMERGE", "odd", key)]
    commands += [("SET", "c", head + bytes([0x7F, 0xFF])), ("PFADD", "c", "a"), ("PFMERGE", "odd", "c", "vals")]
    commands += [
        ("EXPIRE", "odd", "1000"),
        pfadd("odd", (5, 5)),
        ("TTL", "odd"),
        ("PFMERGE", "odd", "c"),
        ("TTL", "odd"),
    ]
    assert_same(both, commands, ("odd", "vals", "c"), hello)


def registers() -> st.SearchStrategy[tuple[int, int]]:
    """A (register, value) pair: registers packed near each other (to meet and merge) or anywhere."""
    index = st.one_of(st.integers(0, 40), st.integers(16340, 16383), st.integers(0, 16383))
    value = st.one_of(st.integers(1, 4), st.integers(1, 32), st.integers(30, 40))
    return st.tuples(index, value)


KEYS = ("k0", "k1", "k2")
OPERATION = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(KEYS), st.lists(registers(), max_size=12)),
    st.tuples(st.just("adds"), st.sampled_from(KEYS), st.integers(0, 400)),
    st.tuples(st.just("merge"), st.sampled_from(KEYS), st.lists(st.sampled_from(KEYS), max_size=3)),
    st.tuples(st.just("count"), st.sampled_from(KEYS), st.lists(st.sampled_from(KEYS), max_size=2)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.sampled_from([3000, 3000, 0, 40, 200, 5000]), ops=st.lists(OPERATION, min_size=1, max_size=14))
def test_random_sequences(
    both: tuple[Address, Address], sparse_limit: None, limit: int, ops: list[tuple[str, str, object]]
) -> None:
    """Random PFADD/PFMERGE/PFCOUNT programs under a random hll-sparse-max-bytes: every reply and value equal."""
    commands: list[Command] = [("CONFIG", "SET", "hll-sparse-max-bytes", str(limit))]
    for n, (kind, key, arg) in enumerate(ops):
        if kind == "add":
            assert isinstance(arg, list)
            commands.append(pfadd(key, *arg))
        elif kind == "adds":  # many plain elements: the value grows by hundreds of bytes
            assert isinstance(arg, int)
            commands.append(("PFADD", key, *(b"%d:%d" % (n, i) for i in range(arg))))
        elif kind == "merge":
            assert isinstance(arg, list)
            commands.append(("PFMERGE", key, *arg))
        else:
            assert isinstance(arg, list)
            commands.append(("PFCOUNT", key, *arg))
    assert_same(both, commands, KEYS, None)
