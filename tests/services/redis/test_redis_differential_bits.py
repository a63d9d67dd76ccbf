"""Bit commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD) against a real redis-server, byte for byte.

Runs on a fresh (RESP2) connection and after ``HELLO 3``.  A hypothesis
test then drives random bit commands through both servers and compares
every reply and the resulting strings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.testing import serve
from redis_wire import RawClient, real_redis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

Address = tuple[str, int]

CORPUS: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    # SETBIT / GETBIT
    ("SETBIT", "b", "7", "1"),
    ("GET", "b"),
    ("SETBIT", "b", "7", "1"),
    ("SETBIT", "b", "7", "0"),
    ("SETBIT", "b", "100", "1"),
    ("STRLEN", "b"),
    ("GET", "b"),
    ("GETBIT", "b", "100"),
    ("GETBIT", "b", "101"),
    ("GETBIT", "b", "100000"),
    ("GETBIT", "nokey", "0"),
    ("SETBIT", "b", "-1", "1"),
    ("SETBIT", "b", "x", "1"),
    ("SETBIT", "b", "4294967296", "1"),
    ("SETBIT", "b", "4294967295", "2"),
    ("SETBIT", "b", "0", "2"),
    ("SETBIT", "b", "0", "-1"),
    ("SETBIT", "b", "0", "x"),
    ("SETBIT", "b", "0", ""),
    ("SETBIT", "b", "01", "1"),
    ("GETBIT", "b", "-1"),
    ("GETBIT", "b", "x"),
    ("GETBIT", "b", "4294967296"),
    ("SETBIT", "b"),
    ("GETBIT", "b"),
    ("SET", "s", "foobar"),
    ("SETBIT", "s", "1", "0"),
    ("GET", "s"),
    ("APPEND", "s", "xyz"),
    ("GET", "s"),
    ("SETBIT", "s", "0", "1"),
    ("GETRANGE", "s", "0", "3"),
    ("SETRANGE", "s", "1", "AB"),
    ("GET", "s"),
    ("SETBIT", "s", "80", "1"),
    ("STRLEN", "s"),
    ("TYPE", "s"),
    ("OBJECT", "ENCODING", "s"),
    ("DUMP", "s"),
    ("LCS", "s", "s"),
    ("SETBIT", "dn", "3", "1"),
    ("DUMP", "dn"),
    ("GETEX", "dn", "PX", "100000"),
    ("GETEX", "dn", "PERSIST"),
    ("SET", "n", "1234"),
    ("SETBIT", "n", "0", "1"),
    ("GET", "n"),
    ("INCR", "n"),
    ("SET", "n", "1"),
    ("SETBIT", "n", "6", "1"),
    ("INCR", "n"),
    ("GET", "n"),
    ("SET", "t", "x", "EX", "100"),
    ("SETBIT", "t", "20", "1"),
    ("TTL", "t"),
    ("RPUSH", "l", "a"),
    ("SETBIT", "l", "0", "1"),
    ("GETBIT", "l", "0"),
    ("BITCOUNT", "l"),
    ("BITPOS", "l", "1"),
    ("BITOP", "AND", "dest", "l"),
    ("BITFIELD", "l", "GET", "u8", "0"),
    ("BITFIELD_RO", "l", "GET", "u8", "0"),
    # BITCOUNT
    ("SET", "foo", "foobar"),
    ("BITCOUNT", "foo"),
    ("BITCOUNT", "foo", "0", "0"),
    ("BITCOUNT", "foo", "1", "1"),
    ("BITCOUNT", "foo", "1", "1", "BYTE"),
    ("BITCOUNT", "foo", "5", "30", "BIT"),
    ("BITCOUNT", "foo", "5", "30", "bit"),
    ("BITCOUNT", "foo", "0", "-1", "BIT"),
    ("BITCOUNT", "foo", "-5", "-1", "BIT"),
    ("BITCOUNT", "foo", "-1", "-5", "BIT"),
    ("BITCOUNT", "foo", "-1", "-5"),
    ("BITCOUNT", "foo", "-100", "100"),
    ("BITCOUNT", "foo", "3", "2"),
    ("BITCOUNT", "foo", "7", "7", "BIT"),
    ("BITCOUNT", "foo", "47", "100", "BIT"),
    ("BITCOUNT", "foo", "48", "100", "BIT"),
    ("BITCOUNT", "foo", "1"),
    ("BITCOUNT", "foo", "1", "2", "3"),
    ("BITCOUNT", "foo", "1", "2", "BYTE", "x"),
    ("BITCOUNT", "foo", "x", "2"),
    ("BITCOUNT", "foo", "1", "x"),
    ("BITCOUNT", "nokey"),
    ("BITCOUNT", "nokey", "0", "-1"),
    ("BITCOUNT", "nokey", "x", "y"),
    ("BITCOUNT", "nokey", "1"),
    ("BITCOUNT", "nokey", "0", "1", "BOGUS"),
    ("BITCOUNT", "foo", "0", "1", "BOGUS"),
    ("BITCOUNT", "l", "x", "y"),
    ("SET", "e", ""),
    ("BITCOUNT", "e"),
    ("BITCOUNT", "e", "0", "-1"),
    ("BITPOS", "e", "0"),
    ("BITPOS", "e", "1"),
    # BITPOS
    ("SET", "p", "\xff\xf0\x00"),
    ("BITPOS", "p", "0"),
    ("BITPOS", "p", "1"),
    ("BITPOS", "p", "1", "1"),
    ("BITPOS", "p", "1", "2"),
    ("BITPOS", "p", "0", "2"),
    ("BITPOS", "p", "1", "2", "-1"),
    ("BITPOS", "p", "1", "0", "-1", "BIT"),
    ("BITPOS", "p", "1", "7", "15", "BIT"),
    ("BITPOS", "p", "0", "7", "15", "BIT"),
    ("BITPOS", "p", "0", "3", "11", "BIT"),
    ("BITPOS", "p", "1", "12", "15", "BIT"),
    ("BITPOS", "p", "1", "13", "14", "BIT"),
    ("BITPOS", "p", "0", "13", "14", "BIT"),
    ("BITPOS", "p", "1", "-3", "-1", "BIT"),
    ("BITPOS", "p", "0", "-3", "-1", "BIT"),
    ("BITPOS", "p", "1", "5", "2"),
    ("BITPOS", "p", "1", "100"),
    ("BITPOS", "p", "0", "100"),
    ("BITPOS", "p", "1", "2", "1", "BYTE"),
    ("BITPOS", "p", "2"),
    ("BITPOS", "p", "-1"),
    ("BITPOS", "p", "x"),
    ("BITPOS", "p", "1", "x"),
    ("BITPOS", "p", "1", "0", "x"),
    ("BITPOS", "p", "1", "0", "1", "BOGUS"),
    ("BITPOS", "p", "1", "0", "1", "BIT", "x"),
    ("BITPOS", "nokey", "0"),
    ("BITPOS", "nokey", "1"),
    ("BITPOS", "nokey", "2"),
    ("BITPOS", "nokey", "1", "x"),
    ("SET", "ones", "\xff\xff\xff"),
    ("BITPOS", "ones", "0"),
    ("BITPOS", "ones", "0", "1"),
    ("BITPOS", "ones", "0", "1", "-1"),
    ("BITPOS", "ones", "0", "0", "-1", "BIT"),
    ("BITPOS", "ones", "0", "4", "BIT"),
    ("BITPOS", "ones", "1", "4", "BIT"),
    ("SET", "zeros", "\x00\x00\x00"),
    ("BITPOS", "zeros", "1"),
    ("BITPOS", "zeros", "0", "1"),
    ("BITPOS", "zeros", "1", "1", "-1"),
    ("BITPOS", "zeros", "0", "9", "BIT"),
    # BITOP
    ("SET", "k1", "foobar"),
    ("SET", "k2", "abcdef"),
    ("SET", "k3", "\x01\x02"),
    ("BITOP", "AND", "dest", "k1", "k2"),
    ("GET", "dest"),
    ("BITOP", "OR", "dest", "k1", "k2", "k3"),
    ("GET", "dest"),
    ("BITOP", "XOR", "dest", "k1", "k3"),
    ("GET", "dest"),
    ("BITOP", "AND", "dest", "k1", "k3"),
    ("GET", "dest"),
    ("BITOP", "and", "dest", "k1", "nokey"),
    ("GET", "dest"),
    ("BITOP", "NOT", "dest", "k1"),
    ("GET", "dest"),
    ("BITOP", "not", "dest", "k1", "k2"),
    ("BITOP", "NOT", "dest", "nokey"),
    ("EXISTS", "dest"),
    ("BITOP", "OR", "dest", "nokey", "nokey2"),
    ("BITOP", "NAND", "dest", "k1"),
    ("BITOP", "AND", "dest"),
    ("BITOP", "AND", "k1", "k1", "k2"),
    ("GET", "k1"),
    ("SET", "dt", "x", "EX", "100"),
    ("BITOP", "OR", "dt", "k2"),
    ("TTL", "dt"),
    ("BITOP", "OR", "l", "k2"),
    ("TYPE", "l"),
    ("BITOP", "OR", "dest", "k2", "l"),
    # BITFIELD
    ("DEL", "bf"),
    ("BITFIELD", "bf"),
    ("BITFIELD", "bf", "SET", "i8", "0", "100", "GET", "i8", "0"),
    ("BITFIELD", "bf", "INCRBY", "i8", "0", "100"),
    ("BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "100", "INCRBY", "i8", "0", "-300"),
    ("BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "-300", "GET", "i8", "0"),
    ("BITFIELD", "bf", "SET", "u4", "#3", "15", "GET", "u4", "#3", "GET", "u16", "0"),
    ("BITFIELD", "bf", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102", "1"),
    ("BITFIELD", "bf", "INCRBY", "u2", "100", "5", "OVERFLOW", "FAIL", "INCRBY", "u2", "102", "5"),
    ("BITFIELD", "bf", "SET", "u8", "5", "-1", "GET", "u8", "5"),
    ("BITFIELD", "bf", "OVERFLOW", "SAT", "SET", "u8", "5", "-1", "SET", "i4", "5", "100"),
    ("BITFIELD", "bf", "OVERFLOW", "FAIL", "SET", "u8", "5", "300", "SET", "i4", "5", "-9"),
    ("BITFIELD", "bf", "SET", "i64", "0", "-9223372036854775808", "INCRBY", "i64", "0", "-1"),
    ("BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i64", "0", "-1", "INCRBY", "i64", "0", "9223372036854775807"),
    ("BITFIELD", "bf", "SET", "u63", "3", "9223372036854775807", "GET", "u63", "3", "GET", "i64", "3"),
    ("BITFIELD", "bf", "INCRBY", "u63", "3", "1", "GET", "u1", "3"),
    ("BITFIELD", "bf", "GET", "i1", "0", "GET", "u1", "0", "GET", "i3", "1000"),
    ("GET", "bf"),
    ("BITFIELD", "bf", "GET", "u64", "0"),
    ("BITFIELD", "bf", "GET", "i65", "0"),
    ("BITFIELD", "bf", "GET", "i0", "0"),
    ("BITFIELD", "bf", "GET", "x8", "0"),
    ("BITFIELD", "bf", "GET", "i", "0"),
    ("BITFIELD", "bf", "GET", "I8", "0", "GET", "U8", "#1"),
    ("BITFIELD", "bf", "GET", "i8", "0", "GET", "u8", "#1"),
    ("BITFIELD", "bf", "GET", "i8", "-1"),
    ("BITFIELD", "bf", "GET", "i8", "#-1"),
    ("BITFIELD", "bf", "GET", "i8", "x"),
    ("BITFIELD", "bf", "GET", "i8", "#"),
    ("BITFIELD", "bf", "GET", "i8", "4294967296"),
    ("BITFIELD", "bf", "GET", "i8", "#536870912"),
    ("BITFIELD", "bf", "SET", "i8", "0"),
    ("BITFIELD", "bf", "SET", "i8", "0", "x"),
    ("BITFIELD", "bf", "INCRBY", "i8", "0", "1.5"),
    ("BITFIELD", "bf", "GET", "i8"),
    ("BITFIELD", "bf", "BOGUS", "i8", "0"),
    ("BITFIELD", "bf", "OVERFLOW", "BOGUS", "GET", "i8", "0"),
    ("BITFIELD", "bf", "OVERFLOW"),
    ("BITFIELD", "bf", "OVERFLOW", "wrap"),
    ("BITFIELD", "bf", "GET", "i8", "0", "BOGUS"),
    ("BITFIELD", "bf", "SET", "i8", "0", "1", "GET", "i8", "x"),
    ("GET", "bf"),
    ("BITFIELD", "nokey", "GET", "i8", "0", "GET", "u63", "100"),
    ("EXISTS", "nokey"),
    ("BITFIELD", "nokey", "OVERFLOW", "FAIL", "SET", "u2", "0", "9"),
    ("EXISTS", "nokey"),
    ("BITFIELD", "nokey", "SET", "u2", "10", "1"),
    ("GET", "nokey"),
    ("BITFIELD_RO", "bf", "GET", "i8", "0", "GET", "u4", "#2"),
    ("BITFIELD_RO", "bf", "SET", "i8", "0", "1"),
    ("BITFIELD_RO", "bf", "INCRBY", "i8", "0", "1"),
    ("BITFIELD_RO", "bf", "OVERFLOW", "SAT"),
    ("BITFIELD_RO", "bf", "BOGUS"),
    ("BITFIELD_RO", "nokey2", "GET", "u8", "0"),
    ("BITFIELD_RO", "bf"),
    ("BITFIELD", "t", "SET", "u8", "64", "255"),
    ("TTL", "t"),
    ("GET", "t"),
    # offsets within proto-max-bulk-len
    ("CONFIG", "SET", "proto-max-bulk-len", "1048576"),
    ("SETBIT", "big", "8388608", "1"),
    ("BITFIELD", "big", "SET", "u8", "8388608", "1"),
    ("BITFIELD", "big", "GET", "u8", "#1048576"),
    ("SETBIT", "big", "8388607", "1"),
    ("STRLEN", "big"),
    ("CONFIG", "SET", "proto-max-bulk-len", "536870912"),
    ("SETBIT", "big", "8388608", "1"),
    ("STRLEN", "big"),
    ("DEL", "big"),
    # arity
    ("BITCOUNT",),
    ("BITPOS", "p"),
    ("BITOP", "AND"),
    ("BITFIELD",),
    ("BITFIELD_RO",),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Address, Address]]:
    """A real redis-server and ours, side by side."""
    tmp: Path = tmp_path_factory.mktemp("bitdiff")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


def _run(address: Address, commands: list[tuple[str, ...]], hello: int | None = None) -> list[bytes]:
    client = RawClient(address)
    try:
        if hello is not None:
            client.call("HELLO", hello)
        return [client.call(*(a.encode("latin-1") for a in c)) for c in commands]
    finally:
        client.close()


def _compare(both: tuple[Address, Address], commands: list[tuple[str, ...]], hello: int | None) -> None:
    real, ours = both
    expected = _run(real, commands, hello)
    got = _run(ours, commands, hello)
    mismatches = [(c, e, g) for c, e, g in zip(commands, expected, got, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:20])


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_bit_corpus_matches_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    _compare(both, CORPUS, hello)


KEYS = st.sampled_from(["x", "y"])
OFFSETS = st.integers(min_value=0, max_value=70).map(str)
INDEX = st.integers(min_value=-12, max_value=12).map(str)
FIELD = st.sampled_from(["i1", "u1", "i5", "u7", "i8", "u8", "i13", "u16", "i32", "u33", "i64", "u63"])
FIELD_OFFSET = st.one_of(OFFSETS, st.integers(min_value=0, max_value=6).map(lambda n: f"#{n}"))
VALUES = st.sampled_from(["0", "1", "-1", "7", "-128", "127", "255", "300", "-300", "9223372036854775807"])


def _op() -> st.SearchStrategy[tuple[str, ...]]:
    return st.one_of(
        st.tuples(st.just("SETBIT"), KEYS, OFFSETS, st.sampled_from(["0", "1"])),
        st.tuples(st.just("GETBIT"), KEYS, OFFSETS),
        st.tuples(st.just("BITCOUNT"), KEYS, INDEX, INDEX, st.sampled_from(["BYTE", "BIT"])),
        st.tuples(st.just("BITPOS"), KEYS, st.sampled_from(["0", "1"]), INDEX),
        st.tuples(st.just("BITPOS"), KEYS, st.sampled_from(["0", "1"]), INDEX, INDEX, st.sampled_from(["BYTE", "BIT"])),
        st.tuples(st.just("BITOP"), st.sampled_from(["AND", "OR", "XOR"]), KEYS, KEYS, KEYS),
        st.tuples(st.just("BITOP"), st.just("NOT"), KEYS, KEYS),
        st.tuples(
            st.just("BITFIELD"),
            KEYS,
            st.just("OVERFLOW"),
            st.sampled_from(["WRAP", "SAT", "FAIL"]),
            st.sampled_from(["SET", "INCRBY"]),
            FIELD,
            FIELD_OFFSET,
            VALUES,
            st.just("GET"),
            FIELD,
            FIELD_OFFSET,
        ),
        st.tuples(st.just("GET"), KEYS),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op(), min_size=1, max_size=25))
def test_random_bit_operations_match_real_redis(both: tuple[Address, Address], ops: list[tuple[str, ...]]) -> None:
    _compare(both, [("DEL", "x", "y"), *ops, ("GET", "x"), ("GET", "y")], None)
