"""The sorted set's own writes into its SortedList's sublists keep every invariant of the structure.

SortedSet.add moves an updated member within (or between) sublists and inserts
a new one itself, keeping ``_maxes`` and the positional ``_index`` right.  A
load factor of 4 makes splits, merges and moves across sublists happen within
a few dozen writes; the results are checked against a plain sorted list.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.services.redis.zset import SortedSet, format_score
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies

MEMBERS = [b"m%d" % i for i in range(24)]
# Few distinct scores, so equal scores (ordered by member) are common.
SCORES = st.sampled_from([-math.inf, -2.5, -1.0, 0.0, 0.5, 1.0, 3.0, 7.25, math.inf]) | st.floats(
    -10, 10, allow_nan=False
)
OPS = st.lists(
    st.tuples(st.sampled_from(["add", "incr", "rem", "rank"]), st.sampled_from(MEMBERS), SCORES),
    min_size=1,
    max_size=120,
)


def check(zset: SortedSet, model: dict[bytes, float]) -> None:
    """The structure's invariants, and its contents, ranks and a score range against a plain sorted list."""
    order = zset.order
    order._check()  # sublists sorted and within the load bounds, _maxes, _len and _index consistent
    expected = sorted((score, member) for member, score in model.items())
    assert list(order) == expected
    assert zset.scores == model
    for rank, (_, member) in enumerate(expected):
        assert zset.rank(member) == rank
        assert order[rank][1] == member
    low, high = zset.score_span(-1.0, False, 3.0, True)
    assert list(order.islice(low, high)) == [pair for pair in expected if -1.0 <= pair[0] < 3.0]
    walked = zset.score_walk(-1.0, True, 3.0, False, 1, 3, False)
    assert walked == [pair for pair in expected if -1.0 < pair[0] <= 3.0][1:4]
    # The reverse shortcut ("max -inf LIMIT off count") against the plain list, read from the top.
    for high, high_ex in [(3.0, False), (3.0, True), (math.inf, False), (math.inf, True), (-math.inf, False)]:
        below = [pair for pair in reversed(expected) if pair[0] < high or (pair[0] == high and not high_ex)]
        for offset, limit in [(0, 1), (0, 3), (2, 4), (0, 200)]:
            walked = zset.score_walk(-math.inf, False, high, high_ex, offset, limit, True)
            assert walked == below[offset : offset + limit]


@settings(max_examples=150, deadline=None)
@given(st.lists(SCORES, min_size=8, max_size=len(MEMBERS)), OPS, st.booleans())
def test_random_writes_keep_the_structure(
    start: list[float], ops: list[tuple[str, bytes, float]], indexed: bool
) -> None:
    zset = SortedSet()
    zset.order._reset(4)
    model: dict[bytes, float] = {}
    # A start of several sublists, so that the first writes already move members across them.
    for member, score in zip(MEMBERS, start, strict=False):
        zset.add(member, score)
        model[member] = score + 0.0
    for op, member, score in ops:
        if op == "add":
            assert zset.add(member, score) == (member not in model)
            model[member] = score + 0.0
        elif op == "incr":
            total = model.get(member, 0.0) + score
            if math.isnan(total):
                continue
            zset.add(member, total)
            model[member] = total + 0.0
        elif op == "rem":
            assert zset.discard(member) == (model.pop(member, None) is not None)
        else:
            # A positional read builds the index, which later writes must keep right.
            assert zset.rank(member) == (
                sorted((s, m) for m, s in model.items()).index((model[member], member)) if member in model else None
            )
        if indexed and len(zset):
            zset.order[0]  # builds the index if a split or merge dropped it
        zset.order._check()
    check(zset, model)


def talk(client: MemoryClient, data: bytes) -> list[bytes]:
    client.send(data)
    return split_replies(client.read())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ZADD", "ZINCRBY", "ZREM", "ZRANK"]), st.sampled_from(MEMBERS), st.integers(-20, 20)
        ),
        max_size=80,
    )
)
def test_commands_keep_the_structure(ops: list[tuple[str, bytes, int]]) -> None:
    """ZADD, ZINCRBY and ZREM on the wire (ZADD's fast path included) against a plain model."""
    with ServiceHarness(RedisService, appendonly=False) as harness:
        client = harness.connect()
        start = [word for i, member in enumerate(MEMBERS) for word in (str(i % 7), member.decode())]
        talk(client, cmd("ZADD", "z", "0", "seed", *start))
        conn = next(iter(harness.service.clients()))
        zset = conn.db.get(b"z")
        zset.order._reset(4)  # small sublists: the same writes now split, merge and move across them
        model: dict[bytes, float] = {b"seed": 0.0, **{member: float(i % 7) for i, member in enumerate(MEMBERS)}}
        for op, member, number in ops:
            if op == "ZADD":
                talk(client, cmd("ZADD", "z", str(number), member.decode()))
                model[member] = float(number)
            elif op == "ZINCRBY":
                talk(client, cmd("ZINCRBY", "z", str(number), member.decode()))
                model[member] = model.get(member, 0.0) + number
            elif op == "ZREM" and member != b"seed":  # the key stays, and so does this SortedSet
                talk(client, cmd("ZREM", "z", member.decode()))
                model.pop(member, None)
            else:
                talk(client, cmd("ZRANK", "z", member.decode()))  # builds the index
        assert conn.db.get(b"z") is zset
        check(zset, model)
        expected = sorted((score, member) for member, score in model.items())
        replies = talk(client, cmd("ZRANGE", "z", "0", "-1", "WITHSCORES"))
        body = b"".join(
            b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(m), m, len(format_score(s)), format_score(s)) for s, m in expected
        )
        assert replies == [b"*%d\r\n" % (2 * len(expected)) + body]


def test_zadd_fast_path_reads_scores_as_strtod() -> None:
    """Digit-only scores take a shortcut: past a double's range they are refused, as Redis does."""
    with ServiceHarness(RedisService, appendonly=False) as harness:
        client = harness.connect()
        replies = talk(
            client,
            cmd("ZADD", "z", "9" * 400, "a")
            + cmd("ZADD", "z", "000000001234", "a")
            + cmd("ZADD", "z", "-0", "b")
            + cmd("ZADD", "z", "1e3", "a")
            + cmd("ZADD", "z", "1_0", "c")
            + cmd("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        )
    assert replies == [
        b"-ERR value is not a valid float\r\n",
        b":1\r\n",
        b":1\r\n",
        b":0\r\n",
        b"-ERR value is not a valid float\r\n",
        b"*4\r\n$1\r\nb\r\n$1\r\n0\r\n$1\r\na\r\n$4\r\n1000\r\n",
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(SCORES, st.sampled_from(MEMBERS)), min_size=1, max_size=60),
    SCORES,
    st.booleans(),
    st.integers(0, 30),
    st.integers(1, 30),
)
def test_reverse_page_shortcut_matches_the_walk(
    pairs: list[tuple[float, bytes]], high: float, high_ex: bool, offset: int, limit: int
) -> None:
    """A reverse page from -inf read in one sublist is the pairs below max, highest first, as the full walk gives."""
    zset = SortedSet()
    zset.order._reset(4)  # many small sublists: pages start, end and straddle them
    for score, member in pairs:
        zset.add(member, score)
    expected = sorted((score, member) for member, score in zset.scores.items())
    below = [pair for pair in reversed(expected) if pair[0] < high or (pair[0] == high and not high_ex)]
    assert zset.score_walk(-math.inf, False, high, high_ex, offset, limit, True) == below[offset : offset + limit]
    # The same range through the general walk (an exclusive -inf is the same range here unless a member sits at -inf).
    if not any(score == -math.inf for score, _ in expected):
        assert zset.score_walk(-math.inf, True, high, high_ex, offset, limit, True) == below[offset : offset + limit]
