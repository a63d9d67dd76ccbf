"""Sorted sets: the value type and every ZSET command of Redis 7.0.

A sorted set keeps two views of the same members: a dict from member to
score (ZSCORE, membership in O(1)) and a ``SortedList`` of ``(score,
member)`` pairs, which is Redis's own order (by score, then by the bytes of
the member).  Adding, removing and finding a rank are O(log n) there, and a
range by rank, score or member starts with one bisection.

Scores are Python floats (IEEE doubles, as in Redis) and are written as
Redis 7.0 writes them: ``%.17g``, or ``inf`` / ``-inf``; in RESP3 as a double
reply.  Parsing follows Redis too: a member's score must be a whole valid
``strtod`` number (no NaN, no overflow), while range bounds accept what
``strtod`` reads, ``(`` marking an exclusive bound.

``SortedSetCommands.zset_pop`` is the one place that pops the lowest or
highest members of a key (used by ZPOPMIN/ZPOPMAX/ZMPOP, and meant for their
blocking forms): it deletes the key when it empties and records the pop in
the append-only file.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from linechat.services.redis.base import CommandContext
from linechat.services.redis.lists import parse_mpop
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    ZERO,
    RespError,
    bulk,
    integer,
    parse_int,
)
from linechat.services.redis.scan import EMPTY_SCAN, SMALL, matching, parse_cursor, parse_scan_options, scan_reply
from linechat.services.redis.store import MAX_RANDOM_REPEATS, RNG, register_type
from linechat.services.redis.table import KeySpec, redis_command
from sortedcontainers import SortedList

__all__ = ["SortedSet", "SortedSetCommands", "format_score", "parse_score"]

NOT_FLOAT = "ERR value is not a valid float"
NOT_INTEGER = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NAN_RESULT = "ERR resulting score is not a number (NaN)"
BAD_SCORE_RANGE = "ERR min or max is not a float"
BAD_LEX_RANGE = "ERR min or max not valid string range item"
INF = math.inf
LONG_MAX = (1 << 63) - 1

# What strtod reads as a whole number: decimal, hexadecimal, or an infinity.
_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEXADECIMAL = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_NONZERO_MANTISSA = re.compile(rb"[1-9]")
_C_SPACE = b" \t\n\v\f\r"


def _strtod(text: bytes) -> tuple[float, bool] | None:
    """Read *text* whole as C's strtod would; (value, out of range) or None if it is not a number."""
    if _DECIMAL.fullmatch(text) is not None:
        value = float(text)
        if math.isinf(value):
            return value, True
        if value == 0.0:
            mantissa = re.split(rb"[eE]", text, maxsplit=1)[0]
            return value, _NONZERO_MANTISSA.search(mantissa) is not None
        return value, False
    if _INFINITY.fullmatch(text) is not None:
        return (-INF if text[:1] == b"-" else INF), False
    if _HEXADECIMAL.fullmatch(text) is not None:
        body = text.lstrip(b"+-")
        if b"p" not in body.lower():
            body += b"p0"
        try:
            value = float.fromhex(body.decode("ascii"))
        except OverflowError:
            return (-INF if text[:1] == b"-" else INF), True
        return (-value if text[:1] == b"-" else value), False
    return None


_NUMBER_START = frozenset(bytes([c]) for c in b"0123456789+-.")


def _quick_score(text: bytes) -> float:
    """parse_score for the usual decimal text, without the regular expression; odd text takes the full path."""
    if b"_" not in text and text[-1:] not in _SPACE_BYTES:
        try:
            value = float(text)
        except ValueError:
            return parse_score(text)
        if value != 0.0 and value - value == 0.0:  # finite, not NaN, not an underflow to 0
            return value
    return parse_score(text)


_SPACE_BYTES = frozenset(bytes([c]) for c in _C_SPACE)


def parse_score(text: bytes, message: str = NOT_FLOAT) -> float:
    """A score or weight as Redis reads one: a whole number, no NaN, no overflow or underflow to zero."""
    read = _strtod(text)
    if read is None or read[1]:
        raise RespError(message)
    return read[0]


def _parse_bound(text: bytes) -> tuple[float, bool]:
    """A score range bound: (value, exclusive).  strtod skips leading space and reads "" as 0."""
    exclusive = text[:1] == b"("
    if exclusive:
        text = text[1:]
    if b"_" not in text and text[-1:] not in _SPACE_BYTES:
        try:
            value = float(text)  # what float() reads here, strtod reads the same way
        except ValueError:
            pass
        else:
            if value == value:
                return value, exclusive
    text = text.lstrip(_C_SPACE)
    if not text:
        return 0.0, exclusive
    read = _strtod(text)
    if read is None or math.isnan(read[0]):
        raise RespError(BAD_SCORE_RANGE)
    return read[0], exclusive


# Bounds read without a parse: the infinities as clients usually spell them.
_NAMED_BOUNDS: dict[bytes, tuple[float, bool]] = {
    b"+inf": (INF, False),
    b"-inf": (-INF, False),
    b"inf": (INF, False),
    b"(+inf": (INF, True),
    b"(-inf": (-INF, True),
    b"(inf": (INF, True),
}


def _quick_bound(text: bytes) -> tuple[float, bool]:
    """_parse_bound, with plain digits (strtod and float() agree on them) and the named infinities first."""
    if text.isdigit():  # ASCII digits only, at least one
        return float(text), False
    named = _NAMED_BOUNDS.get(text)
    if named is not None:
        return named
    return _parse_bound(text)


def format_score(score: float) -> bytes:
    """A score's text as Redis 7.0 writes it (17 significant digits, inf and -inf)."""
    if score == INF:
        return b"inf"
    if score == -INF:
        return b"-inf"
    return b"%.17g" % score


def _end_key(high: float, high_ex: bool) -> tuple[float, bytes] | None:
    """The first (score, member) pair past a range's top bound (None: the range runs to the end)."""
    if high_ex:
        return (high, b"")
    return None if high == INF else (math.nextafter(high, INF), b"")


def _range_end(lists: list[Any], maxes: list[Any], end_key: tuple[float, bytes] | None) -> tuple[int, int]:
    """The sublist and index just past a range's last pair, in a SortedList's non-empty *lists*/*maxes*."""
    if end_key is not None:
        pos = bisect_left(maxes, end_key)
        if pos < len(maxes):
            return pos, bisect_left(lists[pos], end_key)
    pos = len(lists) - 1
    return pos, len(lists[pos])


class _Top:
    """Sorts after every member (the upper end of a lex range that is ``+``)."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return other is not self

    def __le__(self, other: object) -> bool:
        return other is self

    def __ge__(self, other: object) -> bool:
        return True


_TOP = _Top()


class SortedSet:
    """A Redis sorted set: members with float scores, ordered by (score, member)."""

    __slots__ = ("order", "scores")

    def __init__(self, pairs: Iterable[tuple[float, bytes]] = ()) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: SortedList = SortedList()
        for score, member in pairs:
            self.add(member, score)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        return iter(self.order)

    def add(self, member: bytes, score: float) -> bool:
        """Set a member's score; True if the member is new."""
        score += 0.0  # -0 is stored as 0, as Redis's compact encoding does
        scores = self.scores
        old = scores.get(member)
        if old is not None:
            if old != score:
                scores[member] = score
                self._move((old, member), (score, member))
            return False
        scores[member] = score
        self._insert((score, member))
        return True

    # The two writes below work on the SortedList's documented internals
    # (``_lists`` of sublists, ``_maxes`` of their last items, ``_index`` the
    # positional tree of sublist lengths, empty when not built) for the common
    # cases, and leave splits and merges to SortedList itself.  The same
    # O(log n) steps as ``remove`` + ``add``, without their repeated lookups
    # and calls; test_redis_zset_structure.py checks the invariants.

    def _insert(self, key: tuple[float, bytes]) -> None:
        """Insert a (score, member) pair that is not there yet."""
        order = self.order
        maxes = order._maxes
        if not maxes:
            order.add(key)
            return
        pos = bisect_right(maxes, key)
        if pos == len(maxes):
            pos -= 1
            chunk = order._lists[pos]
            chunk.append(key)
            maxes[pos] = key
        else:
            chunk = order._lists[pos]
            insort(chunk, key)
        order._len += 1
        if order._index or len(chunk) > order._load << 1:
            order._expand(pos)  # splits the sublist, or counts the new item in the index

    def _move(self, old: tuple[float, bytes], new: tuple[float, bytes]) -> None:
        """Replace the pair *old* (which is there) by *new* (which is not)."""
        order = self.order
        lists, maxes = order._lists, order._maxes
        pos = bisect_left(maxes, old)
        chunk = lists[pos]
        idx = bisect_left(chunk, old)
        to = bisect_right(maxes, new)
        if to == len(maxes):
            to -= 1
        if to == pos:
            # Same sublist: its length, and so the index, do not change.
            del chunk[idx]
            insort(chunk, new)
            maxes[pos] = chunk[-1]
            return
        target = lists[to]
        if len(chunk) <= (order._load >> 1) + 1 or len(target) >= order._load << 1:
            # The removal would merge sublists, or the insertion split one.
            order.remove(old)
            order.add(new)
            return
        del chunk[idx]
        maxes[pos] = chunk[-1]
        insort(target, new)
        maxes[to] = target[-1]
        index = order._index
        if index:
            # One item fewer under pos's leaf, one more under to's; the root total is unchanged.
            child = order._offset + pos
            while child:
                index[child] -= 1
                child = (child - 1) >> 1
            child = order._offset + to
            while child:
                index[child] += 1
                child = (child - 1) >> 1

    def discard(self, member: bytes) -> bool:
        """Remove a member; True if it was there."""
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove((score, member))
        return True

    def rank(self, member: bytes) -> int | None:
        """The member's 0-based position from the lowest score, or None."""
        score = self.scores.get(member)
        if score is None:
            return None
        return self.order.bisect_left((score, member))

    def pop(self, count: int, highest: bool) -> list[tuple[bytes, float]]:
        """Remove and return up to *count* members from the low (or high) end, in pop order."""
        order = self.order
        taken = min(count, len(order))
        if highest:
            popped = [order[i] for i in range(len(order) - 1, len(order) - 1 - taken, -1)]
            del order[len(order) - taken :]
        else:
            popped = list(order.islice(0, taken))
            del order[:taken]
        scores = self.scores
        for _, member in popped:
            del scores[member]
        return [(member, score) for score, member in popped]

    # ---------------------------------------------------------------- ranges as index spans

    def score_span(self, low: float, low_ex: bool, high: float, high_ex: bool) -> tuple[int, int]:
        """Positions [start, stop) of the members whose score lies in the range."""
        order = self.order
        if low_ex:
            start = len(order) if low == INF else order.bisect_left((math.nextafter(low, INF), b""))
        else:
            start = order.bisect_left((low, b""))
        if high_ex:
            stop = order.bisect_left((high, b""))
        else:
            stop = len(order) if high == INF else order.bisect_left((math.nextafter(high, INF), b""))
        return start, max(start, stop)

    def score_walk(
        self, low: float, low_ex: bool, high: float, high_ex: bool, offset: int, limit: int, reverse: bool
    ) -> list[tuple[float, bytes]]:
        """The (score, member) pairs in a score range, after skipping *offset*, at most *limit* (< 0: all).

        This walks the SortedList's own sublists from one bisection, so a
        ``LIMIT 0 10`` costs O(log n + 10) with no positional index lookups
        (``bisect`` + ``islice`` would compute two global positions).
        """
        if not reverse and not low_ex and high == INF and not high_ex and limit > 0:
            # The usual "min +inf LIMIT off count": when the first sublist holds
            # the whole page, it is one slice of it (everything past min is in range).
            maxes = self.order._maxes
            key = (low, b"")
            pos = bisect_left(maxes, key)
            if pos < len(maxes):
                chunk = self.order._lists[pos]
                idx = bisect_left(chunk, key) + offset
                if idx + limit <= len(chunk):
                    return chunk[idx : idx + limit]
        elif reverse and not low_ex and low == -INF and limit > 0 and not (high_ex and high == -INF):
            # Its mirror, "max -inf LIMIT off count" (max may be "+inf" or exclusive):
            # when the sublist holding the range's top also holds the page, the page
            # is one slice of it, reversed (everything below max is in range).
            lists, maxes = self.order._lists, self.order._maxes
            if maxes:
                pos, idx = _range_end(lists, maxes, _end_key(high, high_ex))
                idx -= offset
                if idx >= limit:
                    return lists[pos][idx - limit : idx][::-1]
        if (low_ex and low == INF) or (high_ex and high == -INF):
            return []
        start_key = (math.nextafter(low, INF), b"") if low_ex else (low, b"")
        end_key = _end_key(high, high_ex)
        lists, maxes = self.order._lists, self.order._maxes
        out: list[tuple[float, bytes]] = []
        if not maxes or limit == 0:
            return out
        want = limit if limit > 0 else -1  # -1: no limit
        # Each sublist is cut with bisections and slices (C speed), not walked pair by pair.
        if not reverse:
            pos = bisect_left(maxes, start_key)
            if pos == len(maxes):
                return out
            idx = bisect_left(lists[pos], start_key)
            while pos < len(lists):
                chunk = lists[pos]
                end = len(chunk) if end_key is None or chunk[-1] < end_key else bisect_left(chunk, end_key, idx)
                if offset:
                    skip = min(offset, end - idx)
                    idx += skip
                    offset -= skip
                if want >= 0:
                    end = min(end, idx + want - len(out))
                out += chunk[idx:end]
                if len(out) == want or (end_key is not None and end < len(chunk) and chunk[end] >= end_key):
                    return out
                pos += 1
                idx = 0
            return out
        pos, idx = _range_end(lists, maxes, end_key)
        while pos >= 0:
            chunk = lists[pos]
            # Walk down from idx (exclusive) to the first pair >= start_key.
            low = 0 if chunk[0] >= start_key else bisect_left(chunk, start_key, 0, idx)
            if offset:
                skip = min(offset, idx - low)
                idx -= skip
                offset -= skip
            top = idx
            if want >= 0:
                low = max(low, top - (want - len(out)))
            out += chunk[low:top][::-1]
            if len(out) == want or (low > 0 and chunk[low - 1] < start_key):
                return out
            pos -= 1
            if pos >= 0:
                idx = len(lists[pos])
        return out

    def _member_bisect(self, member: Any, after: bool) -> int:
        """First position whose member is >= (or > when *after*) the given one, assuming member order."""
        order = self.order
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            value = order[mid][1]
            if value < member or (after and value == member):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def lex_span(self, low: tuple[Any, bool], high: tuple[Any, bool]) -> tuple[int, int]:
        """Positions [start, stop) of the members in a lex range (meaningful when all scores are equal)."""
        (lo, lo_ex), (hi, hi_ex) = low, high
        if lo is _TOP or hi is None:
            return 0, 0
        start = 0 if lo is None else self._member_bisect(lo, lo_ex)
        stop = len(self.order) if hi is _TOP else self._member_bisect(hi, not hi_ex)
        return start, max(start, stop)

    def encoding(self) -> bytes:
        """The encoding Redis 7.0 reports for a sorted set this size (OBJECT ENCODING)."""
        small = len(self.scores) <= 128 and all(len(m) <= 64 for m in self.scores)
        return b"listpack" if small else b"skiplist"

    def copy(self) -> SortedSet:
        """An independent copy."""
        clone = SortedSet()
        clone.scores = dict(self.scores)
        clone.order = SortedList(self.order)
        return clone


register_type(SortedSet, b"zset")


def _parse_lex_item(text: bytes) -> tuple[Any, bool]:
    """A lex range bound: (member or None for ``-`` or _TOP for ``+``, exclusive)."""
    if text == b"+":
        return _TOP, False
    if text == b"-":
        return None, False
    if text[:1] == b"(":
        return text[1:], True
    if text[:1] == b"[":
        return text[1:], False
    raise RespError(BAD_LEX_RANGE)


def _rank_span(start: int, stop: int, length: int) -> tuple[int, int] | None:
    """Redis's inclusive rank range normalised to [first, last]; None when empty."""
    if start < 0:
        start += length
    if stop < 0:
        stop += length
    if start < 0:
        start = 0
    if start > stop or start >= length:
        return None
    return start, min(stop, length - 1)


def _int(value: bytes, message: str = NOT_INTEGER) -> int:
    number = parse_int(value)
    if number is None:
        raise RespError(message)
    return number


# The canonical text of the small integers a LIMIT usually holds ("-1" is "no limit"):
# only these exact spellings, so a leading zero, a sign or a space still takes parse_int.
_SMALL_INTS: dict[bytes, int] = {b"%d" % n: n for n in range(-1, 1025)}


def _limit_int(value: bytes) -> int:
    """_int for a LIMIT offset or count, with the common small values looked up."""
    number = _SMALL_INTS.get(value)
    return number if number is not None else _int(value)


# "$0" ... "$255": the bulk headers of a member reply, by length.
_BULK_HEADS = tuple(b"$%d" % size for size in range(256))
# "\r\n$0\r\n" ... : what comes between two members of the same length in a member reply.
_BULK_SEPARATORS = tuple(b"\r\n$%d\r\n" % size for size in range(256))
# "*0\r\n" ... "*1024\r\n": array headers by count.
_ARRAY_HEADS = tuple(b"*%d\r\n" % count for count in range(1025))
_member_of = itemgetter(1)


def _members_reply(pairs: list[tuple[float, bytes]]) -> bytes:
    """The members of (score, member) pairs as an array of bulk strings.

    Members of one length (a page of keys that share a format, the usual
    case) are one join at the separator that holds their common length
    header, all in C; other pages are one join at CRLFs of the headers
    and members.
    """
    members = list(map(_member_of, pairs))
    sizes = list(map(len, members))
    count = len(sizes)
    if count and count < 1025:
        size = sizes[0]
        if size < 256 and sizes.count(size) == count:
            separator = _BULK_SEPARATORS[size]
            return b"".join((_ARRAY_HEADS[count], separator[2:], separator.join(members), b"\r\n"))
    parts = [b"*%d" % count]
    append = parts.append
    heads = _BULK_HEADS
    for member, size in zip(members, sizes, strict=True):
        append(heads[size] if size < 256 else b"$%d" % size)
        append(member)
    append(b"")
    return b"\r\n".join(parts)


def _sum(a: float, b: float) -> float:
    total = a + b
    return 0.0 if math.isnan(total) else total


_AGGREGATES: dict[bytes, Callable[[float, float], float]] = {b"SUM": _sum, b"MIN": min, b"MAX": max}


class SortedSetCommands(CommandContext):
    """The sorted set commands (Redis's t_zset.c)."""

    # ---------------------------------------------------------------- helpers

    def _zset(self, key: bytes) -> SortedSet | None:
        value = self.db.get(key)
        if value is not None and type(value) is not SortedSet:
            raise RespError(WRONGTYPE)
        return value

    def score_reply(self, score: float) -> bytes:
        """A score as a reply: a bulk string in RESP2, a double in RESP3."""
        text = format_score(score)
        if self.dialect.version == 2:
            return b"$%d\r\n%s\r\n" % (len(text), text)
        return b",%s\r\n" % text

    def scored_reply(self, pairs: Iterable[tuple[bytes, float]], withscores: bool, nested: bool = True) -> bytes:
        """Members (with their scores): flat in RESP2, pairs of [member, score] in RESP3 when *nested*."""
        parts = [b""]
        count = 0
        if not withscores:
            for member, _ in pairs:
                parts.append(b"$%d\r\n%s\r\n" % (len(member), member))
                count += 1
            parts[0] = b"*%d\r\n" % count
            return b"".join(parts)
        score_reply = self.score_reply
        pair_head = b"*2\r\n" if nested and self.dialect.version == 3 else b""
        for member, score in pairs:
            parts.append(pair_head + b"$%d\r\n%s\r\n" % (len(member), member) + score_reply(score))
            count += 1
        parts[0] = b"*%d\r\n" % (count if pair_head else 2 * count)
        return b"".join(parts)

    def zset_pop(self, key: bytes, count: int, highest: bool) -> list[tuple[bytes, float]]:
        """Pop up to *count* lowest (or highest) members of the sorted set at *key*; [] if there is none.

        Raises WRONGTYPE for another type.  An emptied key is deleted, and
        the pop is recorded in the append-only file as ZPOPMIN/ZPOPMAX.
        """
        zset = self._zset(key)
        if zset is None or count <= 0:
            return []
        popped = zset.pop(count, highest)
        if not zset:
            self.db.delete(key)
        self._propagate([b"ZPOPMAX" if highest else b"ZPOPMIN", key, b"%d" % len(popped)])
        return popped

    def _store(self, key: bytes, zset: SortedSet) -> None:
        """Replace *key* by *zset* (deleting it when empty) and record the result, not the computation."""
        self.db.delete(key)
        if zset:
            self.db.set(key, zset)
            record = [b"ZADD", key]
            for score, member in zset.order:
                record += [format_score(score), member]
            self._propagate([b"DEL", key])
            self._propagate(record)
        else:
            self._propagate([b"DEL", key])

    # ---------------------------------------------------------------- writes

    @redis_command(
        "ZADD", arity=-4, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW update", group="sorted-set"
    )
    def cmd_zadd(self, key: bytes, first: bytes, second: bytes, *more: bytes) -> bytes:
        """Add members with scores (NX, XX, GT, LT, CH, INCR)."""
        if not more and ((digits := first.isdigit()) or first[:1] in _NUMBER_START):
            # The common form, one score and one member without flags.  A score
            # of ASCII digits alone is a whole number float() reads as strtod
            # does; only too many digits (inf, which strtod flags) need a look.
            if digits:
                score = float(first)
                if score == INF:
                    raise RespError(NOT_FLOAT)
            else:
                score = _quick_score(first)
            zset = self.db.get(key)
            if zset is None:
                zset = SortedSet()
                self.db.set(key, zset)
            elif type(zset) is not SortedSet:
                raise RespError(WRONGTYPE)
            # SortedSet.add and _propagate, inlined: this is the hottest write of the type.
            known = zset.scores
            old = known.get(second)
            if old is None:
                score += 0.0  # -0 is stored as 0
                known[second] = score
                zset._insert((score, second))
                reply = b":1\r\n"
            elif old == score:
                return ZERO
            else:
                score += 0.0
                known[second] = score
                zset._move((old, second), (score, second))
                reply = ZERO
            server = self.server
            if server.propagating:
                server.propagate(self.dbindex, self.argv)
            return reply
        args = (first, second, *more)
        nx = xx = gt = lt = ch = incr = False
        i = 0
        while i < len(args):
            flag = args[i].upper()
            if flag == b"NX":
                nx = True
            elif flag == b"XX":
                xx = True
            elif flag == b"GT":
                gt = True
            elif flag == b"LT":
                lt = True
            elif flag == b"CH":
                ch = True
            elif flag == b"INCR":
                incr = True
            else:
                break
            i += 1
        rest = args[i:]
        if not rest or len(rest) % 2:
            raise RespError(SYNTAX)
        if nx and xx:
            raise RespError("ERR XX and NX options at the same time are not compatible")
        if (gt and nx) or (lt and nx) or (gt and lt):
            raise RespError("ERR GT, LT, and/or NX options at the same time are not compatible")
        if incr and len(rest) > 2:
            raise RespError("ERR INCR option supports a single increment-element pair")
        scores = [parse_score(rest[j]) for j in range(0, len(rest), 2)]
        zset = self._zset(key)
        if zset is None:
            if xx:
                return self.null if incr else ZERO
            zset = SortedSet()
            self.db.set(key, zset)
        added = updated = processed = 0
        score = 0.0
        for j, score in enumerate(scores):
            member = rest[2 * j + 1]
            current = zset.scores.get(member)
            if current is None:
                if xx:
                    continue
                zset.add(member, score)
                added += 1
                processed += 1
                continue
            if nx:
                continue
            if incr:
                score += current
                if math.isnan(score):
                    if not zset:
                        self.db.delete(key)
                    raise RespError(NAN_RESULT)
            if (lt and score >= current) or (gt and score <= current):
                continue
            processed += 1
            if score != current:
                zset.add(member, score)
                updated += 1
        if not zset:
            self.db.delete(key)
        if added or updated:
            self._propagate()
        if incr:
            return self.score_reply(score) if processed else self.null
        return integer(added + updated if ch else added)

    @redis_command("ZINCRBY", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zincrby(self, key: bytes, increment: bytes, member: bytes) -> bytes:
        """Add to a member's score (0 if it is new); return the new score."""
        delta = parse_score(increment)
        zset = self._zset(key)
        current = 0.0 if zset is None else zset.scores.get(member, 0.0)
        score = current + delta
        if math.isnan(score):
            raise RespError(NAN_RESULT)
        if zset is None:
            zset = SortedSet()
            self.db.set(key, zset)
        zset.add(member, score)
        self._propagate()
        return self.score_reply(score)

    @redis_command("ZREM", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW delete", group="sorted-set")
    def cmd_zrem(self, key: bytes, member: bytes, *more: bytes) -> bytes:
        """Remove members; return how many were there."""
        zset = self._zset(key)
        if zset is None:
            return ZERO
        removed = sum(1 for m in (member, *more) if zset.discard(m))
        if not zset:
            self.db.delete(key)
        if removed:
            self._propagate()
        return integer(removed)

    def _remove_span(self, key: bytes, zset: SortedSet, start: int, stop: int) -> bytes:
        if stop <= start:
            return ZERO
        order = zset.order
        scores = zset.scores
        for _, member in order.islice(start, stop):
            del scores[member]
        del order[start:stop]
        if not zset:
            self.db.delete(key)
        self._propagate()
        return integer(stop - start)

    @redis_command("ZREMRANGEBYRANK", arity=4, flags="write", keys=(1, 1, 1), key_flags="RW delete", group="sorted-set")
    def cmd_zremrangebyrank(self, key: bytes, start: bytes, stop: bytes) -> bytes:
        """Remove the members between two ranks (inclusive, negative from the end)."""
        first, last = _int(start), _int(stop)
        zset = self._zset(key)
        if zset is None:
            return ZERO
        span = _rank_span(first, last, len(zset))
        if span is None:
            return ZERO
        return self._remove_span(key, zset, span[0], span[1] + 1)

    @redis_command(
        "ZREMRANGEBYSCORE", arity=4, flags="write", keys=(1, 1, 1), key_flags="RW delete", group="sorted-set"
    )
    def cmd_zremrangebyscore(self, key: bytes, low: bytes, high: bytes) -> bytes:
        """Remove the members whose score is in a range."""
        lo, lo_ex = _parse_bound(low)
        hi, hi_ex = _parse_bound(high)
        zset = self._zset(key)
        if zset is None:
            return ZERO
        return self._remove_span(key, zset, *zset.score_span(lo, lo_ex, hi, hi_ex))

    @redis_command("ZREMRANGEBYLEX", arity=4, flags="write", keys=(1, 1, 1), key_flags="RW delete", group="sorted-set")
    def cmd_zremrangebylex(self, key: bytes, low: bytes, high: bytes) -> bytes:
        """Remove the members in a lex range."""
        lo, hi = _parse_lex_item(low), _parse_lex_item(high)
        zset = self._zset(key)
        if zset is None:
            return ZERO
        return self._remove_span(key, zset, *zset.lex_span(lo, hi))

    # ---------------------------------------------------------------- reads

    @redis_command("ZCARD", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="sorted-set")
    def cmd_zcard(self, key: bytes) -> bytes:
        """Number of members."""
        zset = self._zset(key)
        return integer(0 if zset is None else len(zset))

    @redis_command("ZSCORE", arity=3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zscore(self, key: bytes, member: bytes) -> bytes:
        """A member's score, or null."""
        zset = self._zset(key)
        score = None if zset is None else zset.scores.get(member)
        return self.null if score is None else self.score_reply(score)

    @redis_command("ZMSCORE", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zmscore(self, key: bytes, member: bytes, *more: bytes) -> bytes:
        """The scores of several members (null for the missing)."""
        zset = self._zset(key)
        scores = {} if zset is None else zset.scores
        members = (member, *more)
        parts = [b"*%d\r\n" % len(members)]
        for m in members:
            score = scores.get(m)
            parts.append(self.null if score is None else self.score_reply(score))
        return b"".join(parts)

    def _rank(self, key: bytes, member: bytes, reverse: bool) -> bytes:
        zset = self._zset(key)
        rank = None if zset is None else zset.rank(member)
        if rank is None:
            return self.null
        return integer(len(zset) - 1 - rank if reverse else rank)  # type: ignore[arg-type]

    @redis_command("ZRANK", arity=3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrank(self, key: bytes, member: bytes) -> bytes:
        """A member's rank from the lowest score."""
        return self._rank(key, member, False)

    @redis_command("ZREVRANK", arity=3, flags="readonly fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrevrank(self, key: bytes, member: bytes) -> bytes:
        """A member's rank from the highest score."""
        return self._rank(key, member, True)

    @redis_command("ZCOUNT", arity=4, flags="readonly fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zcount(self, key: bytes, low: bytes, high: bytes) -> bytes:
        """Number of members with a score in a range."""
        lo, lo_ex = _parse_bound(low)
        hi, hi_ex = _parse_bound(high)
        zset = self._zset(key)
        if zset is None:
            return ZERO
        start, stop = zset.score_span(lo, lo_ex, hi, hi_ex)
        return integer(stop - start)

    @redis_command("ZLEXCOUNT", arity=4, flags="readonly fast", keys=(1, 1, 1), group="sorted-set")
    def cmd_zlexcount(self, key: bytes, low: bytes, high: bytes) -> bytes:
        """Number of members in a lex range."""
        lo, hi = _parse_lex_item(low), _parse_lex_item(high)
        zset = self._zset(key)
        if zset is None:
            return ZERO
        start, stop = zset.lex_span(lo, hi)
        return integer(stop - start)

    # ---------------------------------------------------------------- ranges

    def _range(
        self, args: tuple[bytes, ...], kind: bytes | None, reverse: bool | None, store: bytes | None = None
    ) -> bytes:
        """ZRANGE and its older forms: ``args`` is (key, min, max, options...)."""
        key, first, second = args[0], args[1], args[2]
        withscores = False
        offset, limit = 0, -1
        limited = False
        i = 3
        while i < len(args):
            opt = args[i].upper()
            left = len(args) - i - 1
            if opt == b"WITHSCORES" and store is None:
                withscores = True
            elif opt == b"LIMIT" and left >= 2:
                offset, limit = _limit_int(args[i + 1]), _limit_int(args[i + 2])
                limited = True
                i += 2
            elif opt == b"REV" and reverse is None:
                reverse = True
            elif opt == b"BYLEX" and kind is None:
                kind = b"LEX"
            elif opt == b"BYSCORE" and kind is None:
                kind = b"SCORE"
            else:
                raise RespError(SYNTAX)
            i += 1
        reverse = bool(reverse)
        kind = kind or b"RANK"
        if limited and kind == b"RANK":
            raise RespError("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        if withscores and kind == b"LEX":
            raise RespError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        if reverse and kind != b"RANK":
            first, second = second, first
        if kind == b"RANK":
            start_rank, stop_rank = _int(first), _int(second)
        elif kind == b"SCORE":
            lo, lo_ex = _quick_bound(first)
            hi, hi_ex = _quick_bound(second)
        else:
            lo_lex, hi_lex = _parse_lex_item(first), _parse_lex_item(second)
        zset = self._zset(key)
        if zset is None:
            if store is not None:
                self._store(store, SortedSet())
                return ZERO
            return EMPTY_ARRAY
        order = zset.order
        if kind == b"RANK":
            span = _rank_span(start_rank, stop_rank, len(order))
            if span is None:
                chosen: list[tuple[float, bytes]] = []
            elif reverse:
                n = len(order)
                chosen = list(order.islice(n - 1 - span[1], n - span[0], reverse=True))
            else:
                chosen = list(order.islice(span[0], span[1] + 1))
        else:
            if offset < 0 or (offset > 0 and offset >= len(order)):
                chosen = []
            elif kind == b"SCORE":
                chosen = zset.score_walk(lo, lo_ex, hi, hi_ex, offset, limit, reverse)
            else:
                start, stop = zset.lex_span(lo_lex, hi_lex)
                count = stop - start - offset
                if limit >= 0:
                    count = min(count, limit)
                if count <= 0:
                    chosen = []
                elif reverse:
                    chosen = list(order.islice(stop - offset - count, stop - offset, reverse=True))
                else:
                    chosen = list(order.islice(start + offset, start + offset + count))
        if store is not None:
            self._store(store, SortedSet(chosen))
            return integer(len(chosen))
        if not withscores:
            return _members_reply(chosen)
        return self.scored_reply(((m, s) for s, m in chosen), withscores)

    @redis_command("ZRANGE", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrange(self, key: bytes, start: bytes, stop: bytes, *options: bytes) -> bytes:
        """Members by rank, score (BYSCORE) or member (BYLEX), REV, LIMIT, WITHSCORES."""
        if options:
            page = self._zrange_byscore(key, start, stop, options)
            if page is not None:
                return page
        return self._range((key, start, stop, *options), None, None)

    def _zrange_byscore(self, key: bytes, start: bytes, stop: bytes, options: tuple[bytes, ...]) -> bytes | None:
        """ZRANGE ... BYSCORE [REV] [LIMIT offset count], each option once: _score_page; None for any other form."""
        byscore = reverse = False
        limit_args: tuple[bytes, ...] = ()
        i = 0
        while i < len(options):
            word = options[i].upper()
            if word == b"BYSCORE" and not byscore:
                byscore = True
            elif word == b"REV" and not reverse:
                reverse = True
            elif word == b"LIMIT" and not limit_args and i + 2 < len(options):
                limit_args = options[i + 1 : i + 3]
                i += 2
            else:
                return None  # WITHSCORES, BYLEX, a repeated or unknown word: _range reads (or refuses) it
            i += 1
        if not byscore:
            return None
        # With REV the first bound is the maximum, as ZREVRANGEBYSCORE takes them.
        return self._score_page(key, stop, start, limit_args, True) if reverse else (
            self._score_page(key, start, stop, limit_args, False)
        )

    @redis_command(
        "ZRANGESTORE",
        arity=-5,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2)],
        group="sorted-set",
    )
    def cmd_zrangestore(self, dest: bytes, key: bytes, start: bytes, stop: bytes, *options: bytes) -> bytes:
        """Store a ZRANGE result in another key; return its size."""
        return self._range((key, start, stop, *options), None, None, store=dest)

    @redis_command("ZREVRANGE", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrevrange(self, key: bytes, start: bytes, stop: bytes, *options: bytes) -> bytes:
        """Members by rank from the highest score."""
        return self._range((key, start, stop, *options), b"RANK", True)

    def _score_page(self, key: bytes, low: bytes, high: bytes, limit_args: tuple[bytes, ...], reverse: bool) -> bytes:
        """ZRANGEBYSCORE / ZREVRANGEBYSCORE without WITHSCORES: *limit_args* is () or (offset, count).

        The plain and ``LIMIT offset count`` forms, without _range's option
        loop; the checks and their order (LIMIT, then the bounds, then the
        key's type) are _range's.
        """
        if limit_args:
            offset = _SMALL_INTS.get(limit_args[0])
            if offset is None:
                offset = _int(limit_args[0])
            limit = _SMALL_INTS.get(limit_args[1])
            if limit is None:
                limit = _int(limit_args[1])
        else:
            offset, limit = 0, -1
        # _quick_bound, inlined for the usual spellings (plain digits, then the named infinities).
        lo, lo_ex = (float(low), False) if low.isdigit() else _NAMED_BOUNDS.get(low) or _parse_bound(low)
        hi, hi_ex = (float(high), False) if high.isdigit() else _NAMED_BOUNDS.get(high) or _parse_bound(high)
        zset = self.db.get(key)
        if zset is None:
            return EMPTY_ARRAY
        if type(zset) is not SortedSet:
            raise RespError(WRONGTYPE)
        if offset < 0 or (offset > 0 and offset >= len(zset.scores)):
            return EMPTY_ARRAY
        if limit > 0 and not lo_ex and not hi_ex:
            # score_walk's one-sublist shortcuts, inlined for the forms clients send most:
            # "min +inf LIMIT off count" and "max -inf LIMIT off count" from the top.
            order = zset.order
            maxes = order._maxes
            if not reverse and hi == INF:
                probe = (lo, b"")
                pos = bisect_left(maxes, probe)
                if pos < len(maxes):
                    chunk = order._lists[pos]
                    idx = bisect_left(chunk, probe) + offset
                    if idx + limit <= len(chunk):
                        return _members_reply(chunk[idx : idx + limit])
            elif reverse and lo == -INF and hi != INF:
                probe = (math.nextafter(hi, INF), b"")
                pos = bisect_left(maxes, probe)
                if pos < len(maxes):
                    chunk = order._lists[pos]
                    idx = bisect_left(chunk, probe) - offset
                    if idx >= limit:
                        return _members_reply(chunk[idx - limit : idx][::-1])
        return _members_reply(zset.score_walk(lo, lo_ex, hi, hi_ex, offset, limit, reverse))

    @redis_command("ZRANGEBYSCORE", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrangebyscore(self, key: bytes, low: bytes, high: bytes, *options: bytes) -> bytes:
        """Members with a score in a range (WITHSCORES, LIMIT)."""
        if not options:
            return self._score_page(key, low, high, options, False)
        if len(options) == 3 and ((word := options[0]) == b"LIMIT" or word.upper() == b"LIMIT"):
            return self._score_page(key, low, high, options[1:], False)
        return self._range((key, low, high, *options), b"SCORE", False)

    @redis_command("ZREVRANGEBYSCORE", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrevrangebyscore(self, key: bytes, high: bytes, low: bytes, *options: bytes) -> bytes:
        """Members with a score in a range, highest first."""
        if not options:
            return self._score_page(key, low, high, options, True)
        if len(options) == 3 and ((word := options[0]) == b"LIMIT" or word.upper() == b"LIMIT"):
            return self._score_page(key, low, high, options[1:], True)
        return self._range((key, high, low, *options), b"SCORE", True)

    @redis_command("ZRANGEBYLEX", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrangebylex(self, key: bytes, low: bytes, high: bytes, *options: bytes) -> bytes:
        """Members in a lex range (LIMIT)."""
        return self._range((key, low, high, *options), b"LEX", False)

    @redis_command("ZREVRANGEBYLEX", arity=-4, flags="readonly", keys=(1, 1, 1), group="sorted-set")
    def cmd_zrevrangebylex(self, key: bytes, high: bytes, low: bytes, *options: bytes) -> bytes:
        """Members in a lex range, last first."""
        return self._range((key, high, low, *options), b"LEX", True)

    # ---------------------------------------------------------------- pops and random members

    def _zpop(self, key: bytes, count: bytes | None, highest: bool) -> bytes:
        wanted = 1
        if count is not None:
            parsed = parse_int(count)
            if parsed is None or parsed < 0:
                raise RespError("ERR value is out of range, must be positive")
            wanted = parsed
        popped = self.zset_pop(key, wanted, highest)
        return self.scored_reply(popped, True, nested=count is not None)

    @redis_command(
        "ZPOPMIN", arity=-2, flags="write fast", keys=(1, 1, 1), key_flags="RW access delete", group="sorted-set"
    )
    def cmd_zpopmin(self, key: bytes, *count: bytes) -> bytes:
        """Remove and return the members with the lowest scores."""
        if len(count) > 1:
            raise RespError(SYNTAX)
        return self._zpop(key, count[0] if count else None, False)

    @redis_command(
        "ZPOPMAX", arity=-2, flags="write fast", keys=(1, 1, 1), key_flags="RW access delete", group="sorted-set"
    )
    def cmd_zpopmax(self, key: bytes, *count: bytes) -> bytes:
        """Remove and return the members with the highest scores."""
        if len(count) > 1:
            raise RespError(SYNTAX)
        return self._zpop(key, count[0] if count else None, True)

    def zmpop_args(self, args: tuple[bytes, ...]) -> tuple[list[bytes], bool, int]:
        """Parse ``numkeys key... MIN|MAX [COUNT count]`` (ZMPOP, BZMPOP): (keys, highest, count)."""
        keys, lowest, count = parse_mpop(args, b"MIN", b"MAX")
        return keys, not lowest, count

    def zmpop_reply(self, key: bytes, popped: list[tuple[bytes, float]]) -> bytes:
        """The reply of ZMPOP (and BZMPOP): [key, [[member, score], ...]]."""
        parts = [b"*2\r\n", bulk(key), b"*%d\r\n" % len(popped)]
        for member, score in popped:
            parts.append(b"*2\r\n" + bulk(member) + self.score_reply(score))
        return b"".join(parts)

    @redis_command(
        "ZMPOP",
        arity=-4,
        flags="write",
        keys=[KeySpec(("RW", "access", "delete"), 1, keynum=(0, 1, 1))],
        group="sorted-set",
    )
    def cmd_zmpop(self, numkeys: bytes, key: bytes, where: bytes, *args: bytes) -> bytes:
        """Pop from the first non-empty sorted set of several keys."""
        keys, highest, count = self.zmpop_args((numkeys, key, where, *args))
        for name in keys:
            popped = self.zset_pop(name, count, highest)
            if popped:
                return self.zmpop_reply(name, popped)
        return self.null_array

    @redis_command(
        "ZRANDMEMBER", arity=-2, flags="readonly", keys=(1, 1, 1), tips="nondeterministic_output", group="sorted-set"
    )
    def cmd_zrandmember(self, key: bytes, *args: bytes) -> bytes:
        """Random members: one, COUNT distinct (count > 0) or with repeats (count < 0), WITHSCORES."""
        if len(args) > 2:
            raise RespError(SYNTAX)
        count: int | None = None
        withscores = False
        if args:
            count = _int(args[0])
            if len(args) == 2:
                if args[1].upper() != b"WITHSCORES":
                    raise RespError(SYNTAX)
                withscores = True
            # Redis refuses what would overflow a reply's length; we also
            # refuse repeats past a bound, where Redis would stream gigabytes.
            if (withscores and not -(LONG_MAX // 2) <= count <= LONG_MAX // 2) or count < -MAX_RANDOM_REPEATS:
                raise RespError("ERR value is out of range")
        zset = self._zset(key)
        if count is None:
            if zset is None:
                return self.null
            return bulk(zset.order[RNG.randrange(len(zset))][1])
        if zset is None or count == 0:
            return EMPTY_ARRAY
        order = zset.order
        if count > 0:
            everything = count >= len(order)
            picked = list(order) if everything else [order[i] for i in RNG.sample(range(len(order)), count)]
        else:
            picked = [order[RNG.randrange(len(order))] for _ in range(-count)]
        return self.scored_reply(((m, s) for s, m in picked), withscores)

    # ---------------------------------------------------------------- union, intersection, difference

    def _sources(self, keys: list[bytes]) -> list[dict[bytes, float] | None]:
        """The members and scores of each key: sorted sets as they are, plain sets with score 1."""
        out: list[dict[bytes, float] | None] = []
        for k in keys:
            value = self.db.get(k)
            if value is None:
                out.append(None)
            elif type(value) is SortedSet:
                out.append(value.scores)
            elif type(value) is set:
                out.append(dict.fromkeys(value, 1.0))
            else:
                raise RespError(WRONGTYPE)
        return out

    def _setop(self, op: bytes, args: tuple[bytes, ...], store: bytes | None) -> bytes:
        """ZUNION/ZINTER/ZDIFF and their STORE forms: ``args`` is (numkeys, key..., options...)."""
        name = self.argv[0].lower().decode("latin-1")
        numkeys = _int(args[0])
        if numkeys < 1:
            raise RespError(f"ERR at least 1 input key is needed for '{name}' command")
        if numkeys > len(args) - 1:
            raise RespError(SYNTAX)
        keys = list(args[1 : 1 + numkeys])
        weights = [1.0] * numkeys
        aggregate: Callable[[float, float], float] = _sum
        withscores = False
        rest = args[1 + numkeys :]
        i = 0
        while i < len(rest):
            opt = rest[i].upper()
            left = len(rest) - i - 1
            if op != b"DIFF" and opt == b"WEIGHTS" and left >= numkeys:
                weights = [parse_score(w, "ERR weight value is not a float") for w in rest[i + 1 : i + 1 + numkeys]]
                i += numkeys
            elif op != b"DIFF" and opt == b"AGGREGATE" and left >= 1:
                chosen = _AGGREGATES.get(rest[i + 1].upper())
                if chosen is None:
                    raise RespError(SYNTAX)
                aggregate = chosen
                i += 1
            elif opt == b"WITHSCORES" and store is None:
                withscores = True
            else:
                raise RespError(SYNTAX)
            i += 1
        sources = self._sources(keys)
        result: dict[bytes, float] = {}
        if op == b"DIFF":
            first = sources[0]
            if first:
                others = [s for s in sources[1:] if s]
                result = {m: sc for m, sc in first.items() if not any(m in o for o in others)}
        else:
            # Smallest first, as Redis does: the same order of float additions.
            ranked = sorted(
                ((s or {}, w) for s, w in zip(sources, weights, strict=True)), key=lambda pair: len(pair[0])
            )
            if op == b"INTER":
                if ranked[0][0]:
                    smallest, weight = ranked[0]
                    for member, score in smallest.items():
                        value = _weighted(score, weight)
                        for other, other_weight in ranked[1:]:
                            found = other.get(member)
                            if found is None:
                                break
                            value = aggregate(value, _weighted(found, other_weight))
                        else:
                            result[member] = value
            else:
                for source, weight in ranked:
                    for member, score in source.items():
                        value = _weighted(score, weight)
                        old = result.get(member)
                        result[member] = value if old is None else aggregate(old, value)
        if store is not None:
            self._store(store, SortedSet((s, m) for m, s in result.items()))
            return integer(len(result))
        ordered = sorted((s, m) for m, s in result.items())
        return self.scored_reply(((m, s) for s, m in ordered), withscores)

    @redis_command(
        "ZSCAN", arity=-3, flags="readonly", keys=(1, 1, 1), group="sorted-set", tips="nondeterministic_output"
    )
    def cmd_zscan(self, key: bytes, cursor: bytes, *options: bytes) -> bytes:
        """Iterate over a sorted set's members and scores with a cursor (MATCH, COUNT)."""
        start = parse_cursor(cursor)
        zset = self._zset(key)
        if zset is None:
            return EMPTY_SCAN
        pattern, count, _ = parse_scan_options(options, False)
        scores = zset.scores
        if len(zset) <= SMALL["zset"]:
            nxt, names = 0, [member for _, member in zset.order]
        else:
            nxt, names = self.server.scan_cursors.page(start, scores.keys, count)
        out: list[bytes] = []
        for name in matching(names, pattern):
            score = scores.get(name)
            if score is not None:
                out += (name, format_score(score))
        return scan_reply(nxt, out)

    @redis_command(
        "ZUNION", arity=-3, flags="readonly", keys=[KeySpec(("RO", "access"), 1, keynum=(0, 1, 1))], group="sorted-set"
    )
    def cmd_zunion(self, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Union of sorted sets (WEIGHTS, AGGREGATE, WITHSCORES)."""
        return self._setop(b"UNION", (numkeys, key, *args), None)

    @redis_command(
        "ZINTER", arity=-3, flags="readonly", keys=[KeySpec(("RO", "access"), 1, keynum=(0, 1, 1))], group="sorted-set"
    )
    def cmd_zinter(self, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Intersection of sorted sets (WEIGHTS, AGGREGATE, WITHSCORES)."""
        return self._setop(b"INTER", (numkeys, key, *args), None)

    @redis_command(
        "ZDIFF", arity=-3, flags="readonly", keys=[KeySpec(("RO", "access"), 1, keynum=(0, 1, 1))], group="sorted-set"
    )
    def cmd_zdiff(self, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Members of the first sorted set in none of the others (WITHSCORES)."""
        return self._setop(b"DIFF", (numkeys, key, *args), None)

    @redis_command(
        "ZUNIONSTORE",
        arity=-4,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2, keynum=(0, 1, 1))],
        legacy_keys=(1, 1, 1),
        group="sorted-set",
    )
    def cmd_zunionstore(self, dest: bytes, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Store the union of sorted sets; return its size."""
        return self._setop(b"UNION", (numkeys, key, *args), dest)

    @redis_command(
        "ZINTERSTORE",
        arity=-4,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2, keynum=(0, 1, 1))],
        legacy_keys=(1, 1, 1),
        group="sorted-set",
    )
    def cmd_zinterstore(self, dest: bytes, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Store the intersection of sorted sets; return its size."""
        return self._setop(b"INTER", (numkeys, key, *args), dest)

    @redis_command(
        "ZDIFFSTORE",
        arity=-4,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2, keynum=(0, 1, 1))],
        legacy_keys=(1, 1, 1),
        group="sorted-set",
    )
    def cmd_zdiffstore(self, dest: bytes, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Store the difference of sorted sets; return its size."""
        return self._setop(b"DIFF", (numkeys, key, *args), dest)

    @redis_command(
        "ZINTERCARD",
        arity=-3,
        flags="readonly",
        keys=[KeySpec(("RO", "access"), 1, keynum=(0, 1, 1))],
        group="sorted-set",
    )
    def cmd_zintercard(self, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Size of the intersection of sorted sets, counting up to LIMIT (0: no limit)."""
        count = _int(numkeys)
        if count < 1:
            raise RespError("ERR at least 1 input key is needed for 'zintercard' command")
        rest = (key, *args)
        if count > len(rest):
            raise RespError(SYNTAX)
        keys = list(rest[:count])
        options = rest[count:]
        limit = 0
        i = 0
        while i < len(options):
            if options[i].upper() == b"LIMIT" and i + 1 < len(options):
                parsed = parse_int(options[i + 1])
                if parsed is None or parsed < 0:
                    raise RespError("ERR LIMIT can't be negative")
                limit = parsed
                i += 2
            else:
                raise RespError(SYNTAX)
        sources = self._sources(keys)
        if any(not s for s in sources):
            return ZERO
        ranked = sorted(sources, key=len)  # type: ignore[arg-type]
        found = 0
        for member in ranked[0]:  # type: ignore[union-attr]
            if all(member in other for other in ranked[1:]):  # type: ignore[operator]
                found += 1
                if found == limit:
                    break
        return integer(found)


def _weighted(score: float, weight: float) -> float:
    value = score * weight
    return 0.0 if math.isnan(value) else value
