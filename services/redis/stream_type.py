"""The stream type behind the stream commands: ids, entries, listpack nodes, consumer groups.

A stream keeps its live entries in id order (a list of ids for bisection
and a dict of their field/value lists).  Redis stores entries in listpack
nodes of at most ``stream-node-max-entries`` (100) entries or
``stream-node-max-bytes`` (4096) bytes, and ``MAXLEN ~``/``MINID ~`` only
ever drop whole nodes: so the stream also keeps a ledger of those nodes
(first id, live and deleted counts, an estimate of the listpack's size) to
trim exactly where Redis would.  The commands are in
:mod:`linechat.services.redis.streams`.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from linechat.services.redis.resp import (
    RespError,
    parse_int,
)
from linechat.services.redis.store import register_type

if TYPE_CHECKING:
    pass

__all__ = ["Consumer", "Group", "Pending", "Stream", "StreamID", "id_bytes", "parse_id"]

StreamID = tuple[int, int]

_U64 = (1 << 64) - 1
_MAX_ID: StreamID = (_U64, _U64)
_ZERO_ID: StreamID = (0, 0)
_INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
_NODE_MAX_ENTRIES = 100  # stream-node-max-entries
_NODE_MAX_BYTES = 4096  # stream-node-max-bytes
_INVALID_READ = -1  # a group's entries-read counter that is not known
_SPACE = b" \t\n\v\f\r"


# --------------------------------------------------------------------------- ids


def _ull(text: bytes) -> int | None:
    """Redis's string2ull: a strict int64 that is not negative, else what strtoull takes whole."""
    value = parse_int(text)
    if value is not None:
        return value if value >= 0 else None
    body = text.lstrip(_SPACE)
    negative = body[:1] == b"-"
    if body[:1] in (b"+", b"-"):
        body = body[1:]
    if not body or not body.isdigit():
        return None
    number = int(body)
    if number > _U64:
        return None
    return (-number) & _U64 if negative else number


def parse_id(text: bytes, missing_seq: int = 0, strict: bool = False) -> StreamID:
    """A stream id as ``ms-seq`` or ``ms`` (or ``-``/``+`` unless *strict*), as Redis parses it."""
    if len(text) > 127:
        raise RespError(_INVALID_ID)
    if text == b"-":
        if strict:
            raise RespError(_INVALID_ID)
        return _ZERO_ID
    if text == b"+":
        if strict:
            raise RespError(_INVALID_ID)
        return _MAX_ID
    ms_text, dash, seq_text = text.partition(b"-")
    ms = _ull(ms_text)
    seq = _ull(seq_text) if dash else missing_seq
    if ms is None or seq is None:
        raise RespError(_INVALID_ID)
    return ms, seq


def _parse_add_id(text: bytes) -> tuple[StreamID, bool]:
    """XADD's explicit id: ``ms-seq``, ``ms`` (seq 0) or ``ms-*`` (seq chosen); the bool says if seq was given."""
    if text.endswith(b"-*") and b"-" not in text[:-2]:
        ms = _ull(text[:-2])
        if ms is None or len(text) > 127:
            raise RespError(_INVALID_ID)
        return (ms, 0), False
    return parse_id(text, 0, strict=True), True


def _interval(text: bytes, missing_seq: int, exclusive_ok: bool = True) -> tuple[StreamID, bool]:
    """A range bound: an id, ``-``/``+``, or ``(id`` for an exclusive one."""
    if exclusive_ok and len(text) > 1 and text[:1] == b"(":
        return parse_id(text[1:], missing_seq, strict=True), True
    return parse_id(text, missing_seq), False


def _incr(sid: StreamID) -> StreamID | None:
    ms, seq = sid
    if seq == _U64:
        return None if ms == _U64 else (ms + 1, 0)
    return ms, seq + 1


def _decr(sid: StreamID) -> StreamID | None:
    ms, seq = sid
    if seq == 0:
        return None if ms == 0 else (ms - 1, _U64)
    return ms, seq - 1


def id_bytes(sid: StreamID) -> bytes:
    """The id as Redis prints it."""
    return b"%d-%d" % sid


# --------------------------------------------------------------------------- listpack sizes


def _backlen(size: int) -> int:
    if size <= 127:
        return 1
    if size < 16383:
        return 2
    if size < 2097151:
        return 3
    return 4 if size < 268435455 else 5


def _int_size(value: int) -> int:
    if 0 <= value <= 127:
        enc = 1
    elif -4096 <= value <= 4095:
        enc = 2
    elif -32768 <= value <= 32767:
        enc = 3
    elif -8388608 <= value <= 8388607:
        enc = 4
    elif -(2**31) <= value < 2**31:
        enc = 5
    else:
        enc = 9
    return enc + _backlen(enc)


def _str_size(value: bytes) -> int:
    """Bytes a string takes in a listpack (integers in range are stored as integers)."""
    if len(value) <= 20:
        number = parse_int(value)
        if number is not None:
            return _int_size(number)
    size = len(value)
    enc = 1 + size if size < 64 else 2 + size if size < 4096 else 5 + size
    return enc + _backlen(enc)


class _Node:
    """One listpack node of Redis's stream: where it starts, its live and deleted entries, its size."""

    __slots__ = ("deleted", "entry_bytes", "fields", "last", "live", "master")

    def __init__(self, master: StreamID, fields: tuple[bytes, ...]) -> None:
        self.master = master
        self.fields = fields
        self.live = 0
        self.deleted = 0
        self.last = master
        self.entry_bytes = 0

    def size(self) -> int:
        """The listpack's size: header, master entry (counts, fields, terminator), entries, end byte."""
        master = _int_size(self.live) + _int_size(self.deleted) + _int_size(len(self.fields))
        master += sum(_str_size(f) for f in self.fields) + _int_size(0)
        return 6 + master + self.entry_bytes + 1

    def add(self, sid: StreamID, flat: list[bytes]) -> None:
        fields = tuple(flat[0::2])
        same = fields == self.fields
        size = _int_size(2 if same else 0) + _int_size(sid[0] - self.master[0]) + _int_size(sid[1] - self.master[1])
        if same:
            size += sum(_str_size(v) for v in flat[1::2])
            count = len(fields) + 3
        else:
            size += _int_size(len(fields)) + sum(_str_size(v) for v in flat)
            count = 2 * len(fields) + 4
        self.entry_bytes += size + _int_size(count)
        self.live += 1
        self.last = sid


def _rax_nodes(keys: list[bytes]) -> int:
    """Nodes of a radix tree (Redis's rax) holding these sorted, equally long, distinct keys."""
    if not keys:
        return 1

    def count(group: list[bytes], depth: int) -> int:
        if len(group) == 1:
            return 2 if depth < len(group[0]) else 1
        first, last = group[0], group[-1]
        common = depth
        while first[common] == last[common]:
            common += 1
        nodes = 1 if common > depth else 0  # a compressed node for the shared part
        nodes += 1  # the node that branches
        start = 0
        while start < len(group):
            byte = group[start][common]
            end = start
            while end < len(group) and group[end][common] == byte:
                end += 1
            sub = group[start:end]
            nodes += 1 if common + 1 == len(sub[0]) else count(sub, common + 1)
            start = end
        return nodes

    return count(keys, 0)


# --------------------------------------------------------------------------- the value


class Consumer:
    """A consumer of a group: its pending ids and when it was last seen."""

    __slots__ = ("name", "pending", "seen")

    def __init__(self, name: bytes, seen: int) -> None:
        self.name = name
        self.seen = seen
        self.pending: set[StreamID] = set()


class Pending:
    """A delivered, unacknowledged entry: its consumer, last delivery time and delivery count."""

    __slots__ = ("consumer", "count", "time")

    def __init__(self, consumer: Consumer | None, time: int, count: int) -> None:
        self.consumer = consumer
        self.time = time
        self.count = count


class Group:
    """A consumer group: last delivered id, entries read, pending entries, consumers."""

    __slots__ = ("consumers", "entries_read", "last_id", "pel")

    def __init__(self, last_id: StreamID, entries_read: int) -> None:
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel: dict[StreamID, Pending] = {}
        self.consumers: dict[bytes, Consumer] = {}

    def consumer(self, name: bytes, now: int) -> tuple[Consumer, bool]:
        """The named consumer, created if missing (True when it was)."""
        found = self.consumers.get(name)
        if found is not None:
            return found, False
        created = self.consumers[name] = Consumer(name, now)
        return created, True

    def sorted_pel(self) -> list[StreamID]:
        """Pending ids in order."""
        return sorted(self.pel)


class Stream:
    """A stream value: entries in id order, the last id, counters and consumer groups."""

    __slots__ = ("entries", "entries_added", "groups", "ids", "last_id", "max_deleted", "nodes")

    def __init__(self) -> None:
        self.ids: list[StreamID] = []
        self.entries: dict[StreamID, list[bytes]] = {}
        self.last_id: StreamID = _ZERO_ID
        self.max_deleted: StreamID = _ZERO_ID
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}
        self.nodes: list[_Node] = []

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def first_id(self) -> StreamID:
        """The first live id (0-0 when empty)."""
        return self.ids[0] if self.ids else _ZERO_ID

    # ------------------------------------------------------------------ changes

    def append(self, sid: StreamID, flat: list[bytes]) -> None:
        """Add an entry whose id is above the last one, in a new node when the tail node is full."""
        node = self.nodes[-1] if self.nodes else None
        if node is not None and (
            node.size() + sum(map(len, flat)) >= _NODE_MAX_BYTES or node.live + node.deleted >= _NODE_MAX_ENTRIES
        ):
            node = None
        if node is None:
            node = _Node(sid, tuple(flat[0::2]))
            self.nodes.append(node)
        node.add(sid, flat)
        self.ids.append(sid)
        self.entries[sid] = flat
        self.last_id = sid
        self.entries_added += 1

    def encoding(self) -> bytes:
        """OBJECT ENCODING's answer."""
        return b"stream"

    def restore_node(
        self, master: StreamID, fields: tuple[bytes, ...], entries: list[tuple[StreamID, list[bytes]]], deleted: int
    ) -> None:
        """Add a whole node as RESTORE reads it: its master id and fields, live entries, count of deleted ones."""
        node = _Node(master, fields)
        for sid, flat in entries:
            node.add(sid, flat)
            self.ids.append(sid)
            self.entries[sid] = flat
        node.deleted = deleted
        if entries:
            self.nodes.append(node)

    def _node_of(self, sid: StreamID) -> int:
        return bisect.bisect_right([n.master for n in self.nodes], sid) - 1

    def delete(self, sid: StreamID) -> bool:
        """XDEL one id: mark it deleted in its node (dropping a node left empty)."""
        if sid not in self.entries:
            return False
        del self.entries[sid]
        del self.ids[bisect.bisect_left(self.ids, sid)]
        at = self._node_of(sid)
        node = self.nodes[at]
        node.live -= 1
        node.deleted += 1
        if node.live == 0:
            del self.nodes[at]
        return True

    def trim(self, strategy: bytes, threshold: int | StreamID, approx: bool, limit: int) -> int:
        """MAXLEN/MINID trimming as Redis does it: whole nodes first, inside a node only when exact."""
        deleted = 0
        while self.nodes:
            node = self.nodes[0]
            if strategy == b"MAXLEN" and len(self.ids) <= threshold:  # type: ignore[operator]
                break
            if limit and deleted + node.live > limit:
                break
            # A whole node goes when what stays is still long enough (MAXLEN) or all of it is older (MINID).
            whole = (
                len(self.ids) - node.live >= threshold  # type: ignore[operator]
                if strategy == b"MAXLEN"
                else node.last < threshold  # type: ignore[operator]
            )
            if whole:
                end = bisect.bisect_right(self.ids, node.last)
                for sid in self.ids[:end]:
                    del self.entries[sid]
                del self.ids[:end]
                del self.nodes[0]
                deleted += node.live
                continue
            if approx:
                break
            end = bisect.bisect_right(self.ids, node.last)
            removed = 0
            for sid in self.ids[:end]:
                if strategy == b"MAXLEN":
                    if len(self.ids) - removed <= threshold:  # type: ignore[operator]
                        break
                elif sid >= threshold:  # type: ignore[operator]
                    break
                del self.entries[sid]
                removed += 1
            del self.ids[:removed]
            node.live -= removed
            node.deleted += removed
            deleted += removed
            break
        return deleted

    def range(self, start: StreamID, end: StreamID, count: int = 0, rev: bool = False) -> list[StreamID]:
        """Ids between two inclusive bounds, at most *count* (0: all), oldest first unless *rev*."""
        lo = bisect.bisect_left(self.ids, start)
        hi = bisect.bisect_right(self.ids, end)
        if lo >= hi:
            return []
        if not rev:
            return self.ids[lo : lo + count if count else hi][: hi - lo]
        chosen = self.ids[lo:hi]
        chosen.reverse()
        return chosen[:count] if count else chosen

    # ------------------------------------------------------------------ counters (Redis 7.0's lag logic)

    def has_tombstones(self, start: StreamID = _ZERO_ID, end: StreamID = _MAX_ID) -> bool:
        """True if a deleted entry may lie between *start* and *end*."""
        if not self.ids or self.max_deleted == _ZERO_ID:
            return False
        if self.first_id > self.max_deleted:
            return False
        return start <= self.max_deleted <= end

    def estimate_read(self, sid: StreamID) -> int:
        """How many entries were ever added up to *sid*, if that can be known (else -1)."""
        if not self.entries_added:
            return 0
        if not self.ids and sid <= self.last_id:
            return self.entries_added
        if sid == self.last_id:
            return self.entries_added
        if sid > self.last_id:
            return _INVALID_READ
        if self.max_deleted == _ZERO_ID or self.max_deleted < self.first_id:
            if sid < self.first_id:
                return self.entries_added - len(self.ids)
            if sid == self.first_id:
                return self.entries_added - len(self.ids) + 1
        return _INVALID_READ

    def lag(self, group: Group) -> int | None:
        """Entries not yet delivered to a group, or None when it cannot be known."""
        if not self.entries_added:
            return 0
        if group.entries_read != _INVALID_READ and not self.has_tombstones(group.last_id):
            return self.entries_added - group.entries_read
        read = self.estimate_read(group.last_id)
        return None if read == _INVALID_READ else self.entries_added - read

    def radix_tree_nodes(self) -> int:
        """Nodes of the radix tree keyed by each listpack node's first id (big-endian, 16 bytes)."""
        return _rax_nodes([n.master[0].to_bytes(8, "big") + n.master[1].to_bytes(8, "big") for n in self.nodes])


register_type(Stream, b"stream")
