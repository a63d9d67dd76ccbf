"""Values in Redis's RDB encoding, as DUMP and RESTORE carry them (redis-server 7.0's payload format).

A DUMP payload is one value in RDB form (a type byte, then the value), the
RDB version in two little-endian bytes, and a CRC-64 (Jones polynomial, the
"CRC-64/REDIS" of the CRC catalogue) of all that, little-endian.

Writing uses the simplest encodings redis-server 7.0 reads and converts to
its compact forms itself: plain strings (integers as RDB integers), lists as
quicklist nodes of listpacks, sets, hashes and sorted sets as plain
collections (binary-double scores), streams as listpack nodes with their
consumer groups.  Reading takes every encoding a 7.0 server (or an older
one) writes: integer and LZF-compressed strings, listpacks, ziplists,
intsets, quicklists of either, both stream versions.  Anything malformed
raises :class:`BadPayloadError` (never another error), so RESTORE can answer as
redis-server does.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from anycrc import Model
from linechat.services.redis.store import is_int_text
from linechat.services.redis.stream_type import Consumer, Group, Pending, Stream, StreamID
from linechat.services.redis.zset import SortedSet

__all__ = ["RDB_VERSION", "BadPayloadError", "Reader", "dump_payload", "load_payload", "load_value", "payload_ok"]

#: The RDB version of redis-server 7.0; payloads of later versions are refused, as 7.0 does.
RDB_VERSION = 10

# Value types (rdb.h).
T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2 = 0, 1, 2, 3, 4, 5
T_HASH_ZIPMAP, T_LIST_ZIPLIST, T_SET_INTSET, T_ZSET_ZIPLIST, T_HASH_ZIPLIST = 9, 10, 11, 12, 13
T_LIST_QUICKLIST, T_STREAM, T_HASH_LISTPACK, T_ZSET_LISTPACK, T_LIST_QUICKLIST_2, T_STREAM_2 = 14, 15, 16, 17, 18, 19

_CRC = Model("CRC64-REDIS")
_U64 = (1 << 64) - 1
# A quicklist node's listpack is closed at about this size (list-max-listpack-size -2: 8 KiB).
_NODE_BYTES = 8192
_NODE_ENTRIES = 100  # stream-node-max-entries


class BadPayloadError(Exception):
    """The payload's checksum matched but its contents are not a value ("Bad data format")."""


def crc64(data: bytes) -> int:
    """Redis's CRC-64 of *data*."""
    return int(_CRC.calc(data))


def payload_ok(payload: bytes) -> bool:
    """True if the footer's RDB version is one we read and its checksum matches (Redis's verifyDumpPayload)."""
    if len(payload) < 10:
        return False
    version = payload[-10] | payload[-9] << 8
    if version > RDB_VERSION:
        return False
    return crc64(payload[:-8]) == int.from_bytes(payload[-8:], "little")


# --------------------------------------------------------------------------- writing


def _len(n: int) -> bytes:
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((0x40 | n >> 8, n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def _str(value: bytes) -> bytes:
    if len(value) <= 11 and is_int_text(value):
        number = int(value)
        if -(1 << 7) <= number < 1 << 7:
            return b"\xc0" + number.to_bytes(1, "little", signed=True)
        if -(1 << 15) <= number < 1 << 15:
            return b"\xc1" + number.to_bytes(2, "little", signed=True)
        if -(1 << 31) <= number < 1 << 31:
            return b"\xc2" + number.to_bytes(4, "little", signed=True)
    return _len(len(value)) + value


def _backlen(size: int) -> bytes:
    """A listpack entry's back length: seven bits a byte, most significant first, every byte but the first flagged."""
    out = [size & 0x7F]
    size >>= 7
    while size:
        out[-1] |= 0x80
        out.append(size & 0x7F)
        size >>= 7
    return bytes(reversed(out))


def _lp_entry(value: bytes | int) -> bytes:
    if isinstance(value, bytes):
        if len(value) <= 20 and is_int_text(value):
            value = int(value)
        else:
            size = len(value)
            if size < 64:
                head = bytes((0x80 | size,))
            elif size < 4096:
                head = bytes((0xE0 | size >> 8, size & 0xFF))
            else:
                head = b"\xf0" + size.to_bytes(4, "little")
            entry = head + value
            return entry + _backlen(len(entry))
    if 0 <= value < 128:
        entry = bytes((value,))
    elif -4096 <= value < 4096:
        unsigned = value & 0x1FFF
        entry = bytes((0xC0 | unsigned >> 8, unsigned & 0xFF))
    elif -(1 << 15) <= value < 1 << 15:
        entry = b"\xf1" + value.to_bytes(2, "little", signed=True)
    elif -(1 << 23) <= value < 1 << 23:
        entry = b"\xf2" + value.to_bytes(3, "little", signed=True)
    elif -(1 << 31) <= value < 1 << 31:
        entry = b"\xf3" + value.to_bytes(4, "little", signed=True)
    else:
        entry = b"\xf4" + value.to_bytes(8, "little", signed=True)
    return entry + _backlen(len(entry))


def listpack(items: list[bytes | int]) -> bytes:
    """A listpack holding *items* (strings that are integers are stored as integers, as Redis does)."""
    body = b"".join(_lp_entry(i) for i in items)
    count = len(items) if len(items) < 0xFFFF else 0xFFFF
    return (len(body) + 7).to_bytes(4, "little") + count.to_bytes(2, "little") + body + b"\xff"


def _dump_list(value: deque[bytes]) -> bytes:
    nodes: list[bytes] = []
    chunk: list[bytes | int] = []
    size = 0
    for item in value:
        chunk.append(item)
        size += len(item) + 2
        if size >= _NODE_BYTES:
            nodes.append(listpack(chunk))
            chunk, size = [], 0
    if chunk:
        nodes.append(listpack(chunk))
    return bytes((T_LIST_QUICKLIST_2,)) + _len(len(nodes)) + b"".join(b"\x02" + _str(n) for n in nodes)


def _sid(sid: StreamID) -> bytes:
    return sid[0].to_bytes(8, "big") + sid[1].to_bytes(8, "big")


def _dump_stream(stream: Stream) -> bytes:
    out = [bytes((T_STREAM_2,))]
    ids = stream.ids
    # Nodes of up to 100 entries, the first entry's fields as the master fields (as XADD makes them).
    nodes: list[bytes] = []
    for start in range(0, len(ids), _NODE_ENTRIES):
        chunk = ids[start : start + _NODE_ENTRIES]
        master = chunk[0]
        master_fields = stream.entries[master][0::2]
        items: list[bytes | int] = [len(chunk), 0, len(master_fields), *master_fields, 0]
        for sid in chunk:
            flat = stream.entries[sid]
            fields = flat[0::2]
            ms, seq = sid[0] - master[0], sid[1] - master[1]
            if fields == master_fields:
                items += [2, ms, seq, *flat[1::2], len(fields) + 3]
            else:
                items += [0, ms, seq, len(fields), *flat, 2 * len(fields) + 4]
        nodes.append(_str(_sid(master)) + _str(listpack(items)))
    out.append(_len(len(nodes)) + b"".join(nodes))
    first = stream.first_id
    out.append(_len(len(stream)) + _len(stream.last_id[0]) + _len(stream.last_id[1]))
    out.append(_len(first[0]) + _len(first[1]) + _len(stream.max_deleted[0]) + _len(stream.max_deleted[1]))
    out.append(_len(stream.entries_added) + _len(len(stream.groups)))
    for name, group in stream.groups.items():
        out.append(_str(name) + _len(group.last_id[0]) + _len(group.last_id[1]) + _len(group.entries_read & _U64))
        pel = group.sorted_pel()
        out.append(_len(len(pel)))
        for sid in pel:
            pending = group.pel[sid]
            out.append(_sid(sid) + struct.pack("<q", pending.time) + _len(pending.count))
        out.append(_len(len(group.consumers)))
        for consumer in group.consumers.values():
            out.append(_str(consumer.name) + struct.pack("<q", consumer.seen) + _len(len(consumer.pending)))
            out += [_sid(sid) for sid in sorted(consumer.pending)]
    return b"".join(out)


def dump_value(value: Any) -> bytes:
    """A value in RDB form: its type byte and its encoding."""
    kind = type(value)
    if kind is bytes:
        return b"\x00" + _str(value)
    if kind is bytearray:  # a string a bit command changed in place
        return b"\x00" + _str(bytes(value))
    if kind is deque:
        return _dump_list(value)
    if kind is set:
        return bytes((T_SET,)) + _len(len(value)) + b"".join(_str(m) for m in value)
    if kind is dict:
        return bytes((T_HASH,)) + _len(len(value)) + b"".join(_str(f) + _str(v) for f, v in value.items())
    if kind is SortedSet:
        # Highest first, as redis-server writes it (its loader then appends at the head).
        pairs = list(value)[::-1]
        return bytes((T_ZSET_2,)) + _len(len(pairs)) + b"".join(_str(m) + struct.pack("<d", s) for s, m in pairs)
    if kind is Stream:
        return _dump_stream(value)
    raise TypeError(f"no RDB encoding for {kind.__name__}")


def dump_payload(value: Any) -> bytes:
    """The DUMP payload of a value: RDB form, version, checksum."""
    body = dump_value(value) + RDB_VERSION.to_bytes(2, "little")
    return body + crc64(body).to_bytes(8, "little")


# --------------------------------------------------------------------------- reading


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Expand LZF-compressed *data* to exactly *size* bytes (BadPayloadError if it does not)."""
    out = bytearray()
    i, end = 0, len(data)
    while i < end:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            run = ctrl + 1
            if i + run > end:
                raise BadPayloadError("literal run past the end")
            out += data[i : i + run]
            i += run
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= end:
                raise BadPayloadError("cut back reference")
            length += data[i]
            i += 1
        if i >= end:
            raise BadPayloadError("cut back reference")
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        length += 2
        if ref < 0:
            raise BadPayloadError("back reference before the start")
        if ref + length <= len(out):
            out += out[ref : ref + length]
        else:  # the copy overlaps what it writes: byte by byte
            for k in range(length):
                out.append(out[ref + k])
        if len(out) > size:
            break
    if len(out) != size:
        raise BadPayloadError("compressed string of the wrong length")
    return bytes(out)


class Reader:
    """A cursor over a payload (or a whole RDB file), with RDB's length and string encodings."""

    #: What the data is, for errors ("payload", "file").
    what = "payload"

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BadPayloadError(f"{n} bytes wanted past the end of the {self.what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def count(self) -> int:
        """A number of elements, each at least a byte: more than the bytes left is a lie, refused before any work."""
        n = self.length()[0]
        if n > len(self.data) - self.pos:
            raise BadPayloadError(
                f"{n} elements claimed with {len(self.data) - self.pos} bytes left in the {self.what}"
            )
        return n

    def byte(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise BadPayloadError(f"1 byte wanted past the end of the {self.what}")
        self.pos = pos + 1
        return self.data[pos]

    def length(self, special: bool = False) -> tuple[int, bool]:
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return (first & 0x3F) << 8 | self.byte(), False
        if kind == 3:
            if not special:
                raise BadPayloadError("an encoded string where a length was expected")
            return first & 0x3F, True
        if first == 0x80:
            return int.from_bytes(self.take(4), "big"), False
        if first == 0x81:
            return int.from_bytes(self.take(8), "big"), False
        raise BadPayloadError("unknown length encoding")

    def len(self) -> int:
        return self.length()[0]

    def string(self) -> bytes:
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x40:  # a short plain string, the most common by far: inline
            end = pos + 1 + data[pos]
            if end <= len(data):
                self.pos = end
                return data[pos + 1 : end]
        n, encoded = self.length(special=True)
        if not encoded:
            return self.take(n)
        if n == 0:
            return b"%d" % int.from_bytes(self.take(1), "little", signed=True)
        if n == 1:
            return b"%d" % int.from_bytes(self.take(2), "little", signed=True)
        if n == 2:
            return b"%d" % int.from_bytes(self.take(4), "little", signed=True)
        if n == 3:
            compressed, size = self.len(), self.len()
            # Each LZF token yields at most 88 bytes per byte it takes: a larger size is a lie, refused unread.
            if size > compressed * 88:
                raise BadPayloadError(f"compressed string of {compressed} bytes claims {size} bytes")
            return lzf_decompress(self.take(compressed), size)
        raise BadPayloadError("unknown string encoding")

    def millis(self) -> int:
        return int(struct.unpack("<q", self.take(8))[0])

    def sid(self) -> StreamID:
        raw = self.take(16)
        return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def _lp_items(blob: bytes) -> list[bytes]:
    """The elements of a listpack, integers as their decimal text."""
    if len(blob) < 7 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise BadPayloadError("listpack header")
    out: list[bytes] = []
    pos, end = 6, len(blob) - 1
    while pos < end:
        start = pos
        b = blob[pos]
        if b < 0x80:
            out.append(b"%d" % b)
            pos += 1
        elif b < 0xC0:
            size = b & 0x3F
            out.append(blob[pos + 1 : pos + 1 + size])
            pos += 1 + size
        elif b < 0xE0:
            value = (b & 0x1F) << 8 | blob[pos + 1]
            out.append(b"%d" % (value - 0x2000 if value >= 0x1000 else value))
            pos += 2
        elif b < 0xF0:
            size = (b & 0x0F) << 8 | blob[pos + 1]
            out.append(blob[pos + 2 : pos + 2 + size])
            pos += 2 + size
        elif b == 0xF0:
            size = int.from_bytes(blob[pos + 1 : pos + 5], "little")
            out.append(blob[pos + 5 : pos + 5 + size])
            pos += 5 + size
        elif 0xF1 <= b <= 0xF4:
            width = (2, 3, 4, 8)[b - 0xF1]
            out.append(b"%d" % int.from_bytes(blob[pos + 1 : pos + 1 + width], "little", signed=True))
            pos += 1 + width
        else:
            raise BadPayloadError("listpack entry encoding")
        if pos > end:
            raise BadPayloadError("listpack entry past the end")
        entry = pos - start
        pos += 1 if entry < 128 else 2 if entry < 16384 else 3 if entry < 1 << 21 else 4 if entry < 1 << 28 else 5
    if pos != end:
        raise BadPayloadError("listpack back length past the end")
    return out


def _zl_items(blob: bytes) -> list[bytes]:
    """The elements of a ziplist (what redis-server before 7.0 wrote), integers as their decimal text."""
    if len(blob) < 11 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise BadPayloadError("ziplist header")
    out: list[bytes] = []
    pos, end = 10, len(blob) - 1
    while pos < end:
        pos += 5 if blob[pos] == 0xFE else 1  # the previous entry's length
        b = blob[pos]
        kind = b >> 6
        if kind == 0:
            size, pos = b & 0x3F, pos + 1
        elif kind == 1:
            size, pos = (b & 0x3F) << 8 | blob[pos + 1], pos + 2
        elif kind == 2:
            size, pos = int.from_bytes(blob[pos + 1 : pos + 5], "big"), pos + 5
        else:
            width = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}.get(b)
            if width is not None:
                out.append(b"%d" % int.from_bytes(blob[pos + 1 : pos + 1 + width], "little", signed=True))
                pos += 1 + width
            elif 0xF1 <= b <= 0xFD:
                out.append(b"%d" % ((b & 0x0F) - 1))
                pos += 1
            else:
                raise BadPayloadError("ziplist entry encoding")
            continue
        out.append(blob[pos : pos + size])
        pos += size
    if pos != end:
        raise BadPayloadError("ziplist entry past the end")
    return out


def _intset(blob: bytes) -> set[bytes]:
    if len(blob) < 8:
        raise BadPayloadError("intset header")
    width = int.from_bytes(blob[:4], "little")
    count = int.from_bytes(blob[4:8], "little")
    if width not in (2, 4, 8) or len(blob) != 8 + width * count or count == 0:
        raise BadPayloadError("intset size")
    return {b"%d" % int.from_bytes(blob[i : i + width], "little", signed=True) for i in range(8, len(blob), width)}


def _pairs(items: list[bytes]) -> list[tuple[bytes, bytes]]:
    if len(items) % 2 or not items:
        raise BadPayloadError("odd or empty list of pairs")
    return list(zip(items[0::2], items[1::2], strict=True))


def _score(text: bytes) -> float:
    try:
        score = float(text)
    except ValueError:
        raise BadPayloadError("score is not a number") from None
    if score != score:
        raise BadPayloadError("score is NaN")
    return score


def _zset(pairs: list[tuple[bytes, float]]) -> SortedSet:
    zset = SortedSet()
    for member, score in pairs:
        if not zset.add(member, score):
            raise BadPayloadError("duplicate sorted set member")
    if not len(zset):
        raise BadPayloadError("empty sorted set")
    return zset


class _Items:
    """A cursor over the elements of a stream node's listpack."""

    def __init__(self, items: list[bytes]) -> None:
        self.items = items
        self.pos = 0

    def take(self) -> bytes:
        if self.pos >= len(self.items):
            raise BadPayloadError("stream node cut short")
        self.pos += 1
        return self.items[self.pos - 1]

    def number(self) -> int:
        try:
            return int(self.take())
        except ValueError:
            raise BadPayloadError("stream node number") from None


def _load_stream(r: Reader, version: int) -> Stream:
    stream = Stream()
    for _ in range(r.count()):
        key = r.string()
        if len(key) != 16:
            raise BadPayloadError("stream node key")
        master = int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big")
        node = _Items(_lp_items(r.string()))
        if not node.items:
            raise BadPayloadError("empty stream node")
        take, number = node.take, node.number
        live, deleted, nfields = number(), number(), number()
        master_fields = [take() for _ in range(nfields)]
        take()  # the master entry's terminator
        entries: list[tuple[StreamID, list[bytes]]] = []
        gone = 0
        while node.pos < len(node.items):
            flags, ms, seq = number(), number(), number()
            if flags & 2:
                flat = [x for f in master_fields for x in (f, take())]
            else:
                count = number()
                flat = [take() for _ in range(2 * count)]
            take()  # lp-count
            sid = master[0] + ms, master[1] + seq
            if not (0 <= sid[0] <= _U64 and 0 <= sid[1] <= _U64):
                raise BadPayloadError("stream id out of range")
            if flags & 1:
                gone += 1
            else:
                entries.append((sid, flat))
        if len(entries) != live or gone != deleted:
            raise BadPayloadError("stream node counts")
        if entries and stream.ids and entries[0][0] <= stream.ids[-1]:
            raise BadPayloadError("stream ids out of order")
        stream.restore_node(master, tuple(master_fields), entries, deleted)
    length = r.len()
    stream.last_id = (r.len(), r.len())
    if version >= 2:
        r.len(), r.len()  # the first id: the entries say it
        stream.max_deleted = (r.len(), r.len())
        stream.entries_added = r.len()
    else:
        stream.entries_added = length
    if length != len(stream) or (stream.ids and stream.ids[-1] > stream.last_id):
        raise BadPayloadError("stream length or last id")
    for _ in range(r.count()):
        name = r.string()
        last = (r.len(), r.len())
        read = r.len() if version >= 2 else _U64
        group = Group(last, -1 if read == _U64 else read)
        for _ in range(r.count()):
            sid = r.sid()
            when = r.millis()
            group.pel[sid] = Pending(None, when, r.len())
        for _ in range(r.count()):
            consumer = Consumer(r.string(), r.millis())
            for _ in range(r.count()):
                sid = r.sid()
                pending = group.pel.get(sid)
                if pending is None or pending.consumer is not None:
                    raise BadPayloadError("consumer's pending entry not in the group's")
                pending.consumer = consumer
                consumer.pending.add(sid)
            group.consumers[consumer.name] = consumer
        if any(p.consumer is None for p in group.pel.values()) or name in stream.groups:
            raise BadPayloadError("stream group")
        stream.groups[name] = group
    return stream


def load_value(r: Reader, kind: int) -> Any:
    """The value of RDB type *kind* at the reader's position (BadPayloadError if malformed or a type not read here)."""
    if kind == T_STRING:
        return r.string()
    if kind in (T_LIST, T_SET, T_HASH, T_ZSET, T_ZSET_2):
        count = r.count()
        if count == 0:
            raise BadPayloadError("empty collection")
        if kind == T_LIST:
            return deque(r.string() for _ in range(count))
        if kind == T_SET:
            members = {r.string() for _ in range(count)}
            if len(members) != count:
                raise BadPayloadError("duplicate set member")
            return members
        if kind == T_HASH:
            fields = {r.string(): r.string() for _ in range(count)}
            if len(fields) != count:
                raise BadPayloadError("duplicate hash field")
            return fields
        pairs = []
        for _ in range(count):
            member = r.string()
            if kind == T_ZSET_2:
                score = float(struct.unpack("<d", r.take(8))[0])
                if score != score:
                    raise BadPayloadError("score is NaN")
            else:
                size = r.byte()
                if size == 253:
                    raise BadPayloadError("score is NaN")
                score = {254: float("inf"), 255: float("-inf")}.get(size) or _score(r.take(size))
            pairs.append((member, score))
        return _zset(pairs)
    if kind in (T_LIST_QUICKLIST, T_LIST_QUICKLIST_2):
        items: deque[bytes] = deque()
        for _ in range(r.count()):
            container = r.len() if kind == T_LIST_QUICKLIST_2 else 2
            blob = r.string()
            if container == 1:
                items.append(blob)
            elif container == 2:
                items.extend(_lp_items(blob) if kind == T_LIST_QUICKLIST_2 else _zl_items(blob))
            else:
                raise BadPayloadError("quicklist container")
        if not items:
            raise BadPayloadError("empty list")
        return items
    if kind == T_LIST_ZIPLIST:
        items = deque(_zl_items(r.string()))
        if not items:
            raise BadPayloadError("empty list")
        return items
    if kind == T_SET_INTSET:
        return _intset(r.string())
    if kind in (T_HASH_ZIPLIST, T_HASH_LISTPACK):
        blob = r.string()
        return dict(_pairs(_zl_items(blob) if kind == T_HASH_ZIPLIST else _lp_items(blob)))
    if kind in (T_ZSET_ZIPLIST, T_ZSET_LISTPACK):
        blob = r.string()
        texts = _pairs(_zl_items(blob) if kind == T_ZSET_ZIPLIST else _lp_items(blob))
        return _zset([(m, _score(s)) for m, s in texts])
    if kind in (T_STREAM, T_STREAM_2):
        return _load_stream(r, 2 if kind == T_STREAM_2 else 1)
    raise BadPayloadError(f"value type {kind} is not read here")


def load_payload(payload: bytes) -> Any:
    """The value in a DUMP payload whose footer :func:`payload_ok` accepted (BadPayloadError if malformed)."""
    r = Reader(payload[:-10])
    try:
        value = load_value(r, r.byte())
    except (IndexError, ValueError, struct.error, OverflowError, RecursionError) as exc:
        raise BadPayloadError(str(exc)) from None
    # As redis-server, bytes after the value are not looked at; a stream may be empty, other values not.
    if isinstance(value, bytes | Stream) or len(value):
        return value
    raise BadPayloadError("empty value")
