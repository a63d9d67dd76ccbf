"""Cursor iteration: SCAN over keys, HSCAN, SSCAN and ZSCAN over one value's elements.

Redis's guarantee is that an element present for the whole iteration is
returned (perhaps more than once), whatever is added or removed between
calls, and that each call costs about COUNT.  Redis gets this from a
reverse-binary cursor over its hash table's buckets.  A Python dict or set
exposes no buckets, so this server keeps the iteration's order itself:

* A small collection (what Redis keeps in a compact encoding: up to 128
  hash fields or sorted set members, 512 set members) is answered whole in
  one call with cursor 0, as Redis does for those encodings.
* Otherwise the first call (cursor 0) takes a snapshot of the collection's
  keys, a C-speed list copy, and later calls walk it: each call looks at
  COUNT positions and returns those still present (their current values).
  An element present for the whole iteration was in the snapshot, so it is
  returned; one added meanwhile may not be.  The cursor names the snapshot
  and the position in it.  Snapshots live in a table bounded by the total
  number of elements held (oldest dropped first); a cursor whose snapshot
  was dropped starts a new one, so the iteration returns elements again
  rather than lose any.

So a call is O(COUNT), except the one that starts an iteration, which is one
list copy of the collection (no sorting, no per-element Python work).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from linechat.services.redis.resp import RespError, compile_glob, parse_int

__all__ = ["SMALL", "ScanCursors", "matching", "parse_cursor", "parse_scan_options", "scan_reply"]

#: Largest collection answered in one call (Redis's compact encodings' limits).
SMALL = {"hash": 128, "zset": 128, "set": 512}
_POSITION_BITS = 32
_U64 = (1 << 64) - 1


def parse_cursor(text: bytes) -> int:
    """A cursor as Redis reads it (strtoul: a sign allowed, "-1" wraps around), or ``ERR invalid cursor``."""
    digits = text[1:] if text[:1] in (b"+", b"-") else text
    if not digits.isdigit() or int(digits) > _U64:
        raise RespError("ERR invalid cursor")
    return (-int(digits) if text[:1] == b"-" else int(digits)) & _U64


def parse_scan_options(options: tuple[bytes, ...], allow_type: bool) -> tuple[bytes | None, int, bytes | None]:
    """MATCH, COUNT (and TYPE for SCAN): (pattern, count, type name)."""
    pattern: bytes | None = None
    kind: bytes | None = None
    count = 10
    i = 0
    while i < len(options):
        opt = options[i].upper()
        if i + 1 >= len(options):
            raise RespError("ERR syntax error")
        arg = options[i + 1]
        if opt == b"COUNT":
            parsed = parse_int(arg)
            if parsed is None:
                raise RespError("ERR value is not an integer or out of range")
            if parsed < 1:
                raise RespError("ERR syntax error")
            count = parsed
        elif opt == b"MATCH":
            pattern = arg
        elif opt == b"TYPE" and allow_type:
            kind = arg.lower()
        else:
            raise RespError("ERR syntax error")
        i += 2
    return pattern, count, kind


class ScanCursors:
    """The snapshots of iterations in progress, bounded by the elements they hold."""

    def __init__(self, max_elements: int = 8_000_000) -> None:
        self.max_elements = max_elements
        self._snapshots: OrderedDict[int, list[Any]] = OrderedDict()
        self._held = 0
        self._next_id = 1

    def page(self, cursor: int, source: Callable[[], Iterable[Any]], count: int) -> tuple[int, list[Any]]:
        """The next positions of an iteration: (next cursor, candidates); the caller drops the absent."""
        ident, position = cursor >> _POSITION_BITS, cursor & ((1 << _POSITION_BITS) - 1)
        snapshot = self._snapshots.get(ident) if cursor else None
        if snapshot is None:
            # A new iteration, or one whose snapshot was dropped: start again.
            snapshot = list(source())
            ident = self._store(snapshot)
            position = 0
        else:
            self._snapshots.move_to_end(ident)
        end = min(position + count, len(snapshot))
        batch = snapshot[position:end]
        if end >= len(snapshot):
            self._drop(ident)
            return 0, batch
        return (ident << _POSITION_BITS) | end, batch

    def _store(self, snapshot: list[Any]) -> int:
        ident = self._next_id
        self._next_id = self._next_id + 1 if self._next_id < (1 << 31) else 1
        self._snapshots[ident] = snapshot
        self._held += len(snapshot)
        while self._held > self.max_elements and len(self._snapshots) > 1:
            _, oldest = self._snapshots.popitem(last=False)
            self._held -= len(oldest)
        return ident

    def _drop(self, ident: int) -> None:
        snapshot = self._snapshots.pop(ident, None)
        if snapshot is not None:
            self._held -= len(snapshot)


def matching(items: Iterable[bytes], pattern: bytes | None) -> list[bytes]:
    """The items that match a glob (all of them without one)."""
    if pattern is None:
        return list(items)
    if pattern == b"*":  # as redis-server: no matching at all (so an empty member is kept too)
        return list(items)
    glob = compile_glob(pattern)
    return [item for item in items if glob.match(item)]


def scan_reply(cursor: int, items: list[bytes]) -> bytes:
    """The two-element reply of every SCAN form: the next cursor and the items."""
    text = b"%d" % cursor
    parts = [b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(text), text, len(items))]
    parts += [b"$%d\r\n%s\r\n" % (len(item), item) for item in items]
    return b"".join(parts)


EMPTY_SCAN = b"*2\r\n$1\r\n0\r\n*0\r\n"
