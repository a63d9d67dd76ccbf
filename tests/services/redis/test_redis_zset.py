"""Sorted sets in memory: the value type against a plain model, score text, the AOF, the pop API."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.services.redis.resp import RespError
from linechat.services.redis.zset import SortedSet, format_score, parse_score
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServiceHarness]:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        yield h


def talk(client: MemoryClient, data: bytes) -> list[bytes]:
    client.send(data)
    return split_replies(client.read())


@pytest.mark.parametrize(
    ("score", "text"),
    [
        (1.1, b"1.1000000000000001"),
        (0.5, b"0.5"),
        (3.0, b"3"),
        (1e20, b"1e+20"),
        (-2.5e-7, b"-2.4999999999999999e-07"),
        (math.inf, b"inf"),
        (-math.inf, b"-inf"),
    ],
)
def test_score_text(score: float, text: bytes) -> None:
    assert format_score(score) == text


@pytest.mark.parametrize("text", [b"nan", b"x", b"1e400", b"-1e400", b"1e-400", b" 1", b"1 ", b"", b"1_0", b"0x"])
def test_invalid_scores(text: bytes) -> None:
    with pytest.raises(RespError):
        parse_score(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [(b"+Infinity", math.inf), (b"-inf", -math.inf), (b"0x10", 16.0), (b".5", 0.5), (b"5.", 5.0), (b"0e-999", 0.0)],
)
def test_valid_scores(text: bytes, value: float) -> None:
    assert parse_score(text) == value


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "discard", "pop_min", "pop_max"]),
        st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"aa", b""]),
        st.sampled_from([0.0, 1.0, -1.0, 2.5, math.inf, -math.inf]),
    ),
    max_size=60,
)


@given(OPS)
def test_sorted_set_agrees_with_a_sorted_dict(ops: list[tuple[str, bytes, float]]) -> None:
    zset = SortedSet()
    model: dict[bytes, float] = {}
    for op, member, score in ops:
        if op == "add":
            assert zset.add(member, score) == (member not in model)
            model[member] = score
        elif op == "discard":
            assert zset.discard(member) == (member in model)
            model.pop(member, None)
        else:
            ordered = sorted((s, m) for m, s in model.items())
            expected = ordered[-2:][::-1] if op == "pop_max" else ordered[:2]
            assert zset.pop(2, op == "pop_max") == [(m, s) for s, m in expected]
            for _, m in expected:
                del model[m]
        ordered = sorted((s, m) for m, s in model.items())
        assert list(zset) == ordered
        for rank, (_, m) in enumerate(ordered):
            assert zset.rank(m) == rank
        low, high = zset.score_span(-1.0, False, 1.0, True)
        assert [m for _, m in ordered[low:high]] == [m for s, m in ordered if -1.0 <= s < 1.0]


def test_zadd_then_ranges(harness: ServiceHarness) -> None:
    client = harness.connect()
    replies = talk(
        client,
        cmd("ZADD", "z", "1", "a", "2", "b", "3", "c")
        + cmd("ZRANGE", "z", "+inf", "(1", "BYSCORE", "REV", "LIMIT", "0", "1", "WITHSCORES")
        + cmd("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "10")
        + cmd("TYPE", "z")
        + cmd("ZPOPMIN", "z", "5")
        + cmd("EXISTS", "z"),
    )
    assert replies == [
        b":3\r\n",
        b"*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
        b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
        b"+zset\r\n",
        b"*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n",
        b":0\r\n",
    ]


def test_pop_api_deletes_the_emptied_key_and_records_the_pop(harness: ServiceHarness) -> None:
    """The internal pop (for the blocking forms) works on a connection's keyspace and its AOF."""
    client = harness.connect()
    talk(client, cmd("ZADD", "q", "1", "a", "2", "b", "3", "c"))
    conn = next(iter(harness.service.clients()))
    assert conn.zset_pop(b"q", 2, True) == [(b"c", 3.0), (b"b", 2.0)]
    assert conn.zset_pop(b"q", 5, False) == [(b"a", 1.0)]
    assert conn.zset_pop(b"q", 1, False) == []
    assert talk(client, cmd("EXISTS", "q")) == [b":0\r\n"]
    talk(client, cmd("SET", "s", "v"))
    with pytest.raises(RespError):
        conn.zset_pop(b"s", 1, False)


WRITES = (
    cmd("ZADD", "z", "1.1", "a", "2", "b", "3", "c", "inf", "d")
    + cmd("ZINCRBY", "z", "0.5", "a")
    + cmd("ZADD", "z", "INCR", "1", "b")
    + cmd("ZPOPMAX", "z")
    + cmd("ZREM", "z", "c")
    + cmd("ZADD", "y", "5", "x", "1", "a")
    + cmd("ZUNIONSTORE", "u", "2", "z", "y", "WEIGHTS", "0.1", "3")
    + cmd("ZRANGESTORE", "r", "y", "0", "0")
    + cmd("ZADD", "gone", "1", "m")
    + cmd("ZREMRANGEBYSCORE", "gone", "-inf", "+inf")
    + cmd("ZMPOP", "1", "y", "MAX")
)
CHECKS = (
    cmd("ZRANGE", "z", "0", "-1", "WITHSCORES")
    + cmd("ZRANGE", "u", "0", "-1", "WITHSCORES")
    + cmd("ZRANGE", "r", "0", "-1", "WITHSCORES")
    + cmd("ZRANGE", "y", "0", "-1", "WITHSCORES")
    + cmd("EXISTS", "gone")
)


def test_aof_replay_restores_sorted_sets(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(WRITES)
        client.read()
        before = talk(client, CHECKS)
    # As redis-server computes it (float sums in the same order).
    assert before[1] == (
        b"*6\r\n$1\r\nb\r\n$19\r\n0.30000000000000004\r\n$1\r\na\r\n$18\r\n3.1600000000000001\r\n$1\r\nx\r\n$2\r\n15\r\n"
    )
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert talk(h.connect(), CHECKS) == before


BOUND = st.sampled_from([-math.inf, -2.0, -1.0, 0.0, 0.5, 1.0, 3.0, math.inf])


@given(
    st.lists(st.tuples(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0]), st.binary(max_size=2)), max_size=60),
    BOUND,
    st.booleans(),
    BOUND,
    st.booleans(),
    st.integers(0, 8),
    st.integers(-1, 8),
    st.booleans(),
)
def test_score_walk_across_sublists_agrees_with_a_model(
    pairs: list[tuple[float, bytes]],
    low: float,
    low_ex: bool,
    high: float,
    high_ex: bool,
    offset: int,
    limit: int,
    reverse: bool,
) -> None:
    """The range walk cuts the SortedList's sublists; a load of 4 makes every range cross several."""
    zset = SortedSet()
    zset.order._reset(4)
    for score, member in pairs:
        zset.add(member, score)
    inside = [
        (s, m) for s, m in zset.order if (s > low if low_ex else s >= low) and (s < high if high_ex else s <= high)
    ]
    if reverse:
        inside.reverse()
    expected = inside[offset:] if limit < 0 else inside[offset : offset + limit]
    assert zset.score_walk(low, low_ex, high, high_ex, offset, limit, reverse) == expected
