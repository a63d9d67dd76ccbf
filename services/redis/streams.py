"""Streams: XADD, XRANGE, XREAD and consumer groups (Redis's t_stream.c).

A stream keeps its live entries in id order (a list of ids for bisection
and a dict of their field/value lists).  Redis stores entries in listpack
nodes of at most ``stream-node-max-entries`` (100) entries or
``stream-node-max-bytes`` (4096) bytes, and ``MAXLEN ~``/``MINID ~`` only
ever drop whole nodes: so the stream also keeps a ledger of those nodes
(first id, live and deleted counts, an estimate of the listpack's size) to
trim exactly where Redis would.  ``XINFO STREAM`` reports the node count as
``radix-tree-keys`` and the size of the radix tree holding them as
``radix-tree-nodes``.

Everything a write does reaches the append-only file in a form that
replays to the same state: auto ids as the ids they got, approximate trims
as exact ones (``MAXLEN = <length after>``), and what ``XREADGROUP``,
``XCLAIM`` and ``XAUTOCLAIM`` do to a group as ``XCLAIM ... FORCE JUSTID``
and ``XGROUP SETID ... ENTRIESREAD``, as Redis propagates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from linechat.services.redis.base import SYNTAX, WRONGTYPE, CommandContext
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    OK,
    ZERO,
    RespError,
    array,
    bulk,
    integer,
    parse_int,
)
from linechat.services.redis.stream_type import (
    _INVALID_READ,
    _MAX_ID,
    _NODE_MAX_ENTRIES,
    _U64,
    _ZERO_ID,
    Consumer,
    Group,
    Pending,
    Stream,
    StreamID,
    _decr,
    _incr,
    _interval,
    _parse_add_id,
    id_bytes,
    parse_id,
)
from linechat.services.redis.table import KeySpec, redis_command

if TYPE_CHECKING:
    from linechat.services.redis.blocking import Waiter

__all__ = ["Stream", "StreamCommands"]


# --------------------------------------------------------------------------- commands


def _entry(sid: StreamID, flat: list[bytes] | None) -> bytes:
    if flat is None:
        return b"*2\r\n" + bulk(id_bytes(sid)) + b"*-1\r\n"
    return b"*2\r\n" + bulk(id_bytes(sid)) + array(flat)


def _trim_args(
    args: tuple[bytes, ...], xadd: bool, loading: bool
) -> tuple[int, bytes | None, int | StreamID | None, bool, int, bool, tuple[StreamID, bool] | None]:
    """Parse XADD/XTRIM options: (position after them, strategy, threshold, approx, limit, nomkstream, id)."""
    strategy: bytes | None = None
    threshold: int | StreamID | None = None
    approx = False
    limit = -1
    nomkstream = False
    given: tuple[StreamID, bool] | None = None
    i = 0
    n = len(args)
    while i < n:
        more = n - 1 - i
        opt = args[i]
        upper = opt.upper()
        if xadd and opt == b"*":
            break
        if upper in (b"MAXLEN", b"MINID") and more:
            if strategy is not None:
                raise RespError("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
            approx = False
            following = args[i + 1]
            if more >= 2 and following == b"~":
                approx = True
                i += 1
            elif more >= 2 and following == b"=":
                i += 1
            if upper == b"MAXLEN":
                value = parse_int(args[i + 1])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                if value < 0:
                    raise RespError("ERR The MAXLEN argument must be >= 0.")
                threshold = value
            else:
                threshold = parse_id(args[i + 1], 0, strict=True)
            i += 1
            strategy = upper
        elif upper == b"LIMIT" and more:
            value = parse_int(args[i + 1])
            if value is None:
                raise RespError("ERR value is not an integer or out of range")
            if value < 0:
                raise RespError("ERR The LIMIT argument must be >= 0.")
            limit = value
            i += 1
        elif xadd and upper == b"NOMKSTREAM":
            nomkstream = True
        elif xadd:
            given = _parse_add_id(opt)
            break
        else:
            raise RespError(SYNTAX)
        i += 1
    if limit > 0 and strategy is None:
        raise RespError("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    if not xadd and strategy is None:
        raise RespError("ERR syntax error, XTRIM must be called with a trimming strategy")
    if loading:
        limit = 0
    elif limit >= 0:
        if not approx:
            raise RespError("ERR syntax error, LIMIT cannot be used without the special ~ option")
    else:
        limit = min(100 * _NODE_MAX_ENTRIES, 10000) if approx else 0
    return i, strategy, threshold, approx, limit, nomkstream, given


class StreamCommands(CommandContext):
    """The stream commands."""

    # ------------------------------------------------------------------ helpers

    def _stream(self, key: bytes) -> Stream | None:
        value = self.db.get(key)
        if value is not None and type(value) is not Stream:
            raise RespError(WRONGTYPE)
        return value

    def _signal_stream(self, key: bytes) -> None:
        """Entries were added (or a group went away): wake the clients blocked on *key*."""
        db = self.db
        if db.blocked and key in db.blocked:
            self.server.blocking.signal(db, key)

    def _trim_record(self, stream: Stream, strategy: bytes) -> list[bytes]:
        if strategy == b"MAXLEN":
            return [b"MAXLEN", b"=", b"%d" % len(stream)]
        return [b"MINID", b"=", id_bytes(stream.first_id)]

    # ------------------------------------------------------------------ XADD, XTRIM, XDEL, XLEN

    @redis_command(
        "XADD",
        arity=-5,
        flags="write denyoom fast",
        keys=[KeySpec(("RW", "update"), 1, notes="UPDATE instead of INSERT because of the optional trimming feature")],
        group="stream",
        tips="nondeterministic_output",
    )
    def cmd_xadd(self, key: bytes, *args: bytes) -> bytes:
        """Append an entry (auto or explicit id), optionally trimming by MAXLEN or MINID."""
        pos, strategy, threshold, approx, limit, nomkstream, given = _trim_args(args, True, self.server.loading)
        fields = list(args[pos + 1 :])
        if len(fields) < 2 or len(fields) % 2:
            raise RespError("ERR wrong number of arguments for 'xadd' command")
        if given is not None and given[1] and given[0] == _ZERO_ID:
            raise RespError("ERR The ID specified in XADD must be greater than 0-0")
        stream = self._stream(key)
        if stream is None:
            if nomkstream:
                return self.null
            stream = Stream()
            created = True
        else:
            created = False
        last = stream.last_id
        if last == _MAX_ID:
            raise RespError("ERR The stream has exhausted the last possible ID, unable to add more items")
        if given is None:
            now = self.server.now_ms()
            sid = (now, 0) if now > last[0] else _incr(last)
        elif not given[1]:
            ms = given[0][0]
            if ms > last[0]:
                sid = (ms, 0)
            elif ms == last[0] and last[1] != _U64:
                sid = (ms, last[1] + 1)
            else:
                sid = None
        else:
            sid = given[0] if given[0] > last else None
        if sid is None:
            raise RespError("ERR The ID specified in XADD is equal or smaller than the target stream top item")
        stream.append(sid, fields)
        if created:
            self.db.set(key, stream)
        record: list[bytes] = [b"XADD", key]
        if nomkstream:
            record.append(b"NOMKSTREAM")
        if strategy is not None:
            stream.trim(strategy, threshold, approx, limit)  # type: ignore[arg-type]
            record += self._trim_record(stream, strategy)
        record.append(id_bytes(sid))
        self._propagate(record + fields)
        if not created:
            self._signal_stream(key)
        return bulk(id_bytes(sid))

    @redis_command(
        "XTRIM",
        arity=-4,
        flags="write",
        keys=(1, 1, 1),
        key_flags="RW delete",
        group="stream",
        tips="nondeterministic_output",
    )
    def cmd_xtrim(self, key: bytes, *args: bytes) -> bytes:
        """Trim a stream by MAXLEN or MINID; return how many entries went."""
        stream = self._stream(key)
        if stream is None:
            return ZERO
        pos, strategy, threshold, approx, limit, _, _ = _trim_args(args, False, self.server.loading)
        if pos < len(args):
            raise RespError(SYNTAX)
        deleted = stream.trim(strategy, threshold, approx, limit)  # type: ignore[arg-type]
        if deleted:
            self._propagate([b"XTRIM", key, *self._trim_record(stream, strategy)])  # type: ignore[arg-type]
        return integer(deleted)

    @redis_command("XDEL", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW delete", group="stream")
    def cmd_xdel(self, key: bytes, sid: bytes, *more: bytes) -> bytes:
        """Delete entries by id; return how many existed."""
        stream = self._stream(key)
        if stream is None:
            return ZERO
        ids = [parse_id(raw, 0, strict=True) for raw in (sid, *more)]
        deleted = 0
        for each in ids:
            if stream.delete(each):
                if each > stream.max_deleted:
                    stream.max_deleted = each
                deleted += 1
        if deleted:
            self._propagate()
        return integer(deleted)

    @redis_command("XLEN", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="stream")
    def cmd_xlen(self, key: bytes) -> bytes:
        """Number of entries."""
        stream = self._stream(key)
        return integer(0 if stream is None else len(stream))

    @redis_command(
        "XSETID", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW update", group="stream"
    )
    def cmd_xsetid(self, key: bytes, last: bytes, *options: bytes) -> bytes:
        """Set a stream's last id, and its entries-added count and max deleted id (what an AOF rewrite records)."""
        sid = parse_id(last, 0, strict=True)
        entries_added = -1
        max_deleted = _ZERO_ID
        i = 0
        while i < len(options):
            opt = options[i].upper()
            if opt == b"ENTRIESADDED" and i + 1 < len(options):
                value = parse_int(options[i + 1])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                if value < 0:
                    raise RespError("ERR entries_added must be positive")
                entries_added = value
            elif opt == b"MAXDELETEDID" and i + 1 < len(options):
                max_deleted = parse_id(options[i + 1], 0, strict=True)
                if sid < max_deleted:
                    raise RespError("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
            else:
                raise RespError(SYNTAX)
            i += 2
        stream = self._stream(key)
        if stream is None:
            raise RespError("ERR no such key")
        if stream.ids:
            if sid < stream.ids[-1]:
                raise RespError("ERR The ID specified in XSETID is smaller than the target stream top item")
            if entries_added != -1 and len(stream) > entries_added:
                raise RespError("ERR The entries_added specified in XSETID is smaller than the target stream length")
        stream.last_id = sid
        if entries_added != -1:
            stream.entries_added = entries_added
        if max_deleted != _ZERO_ID:
            stream.max_deleted = max_deleted
        self._propagate()
        return OK

    # ------------------------------------------------------------------ XRANGE, XREVRANGE

    def _xrange(self, key: bytes, first: bytes, last: bytes, options: tuple[bytes, ...], rev: bool) -> bytes:
        start, start_ex = _interval(first, 0)
        if start_ex:
            bumped = _incr(start)
            if bumped is None:
                raise RespError("ERR invalid start ID for the interval")
            start = bumped
        end, end_ex = _interval(last, _U64)
        if end_ex:
            lowered = _decr(end)
            if lowered is None:
                raise RespError("ERR invalid end ID for the interval")
            end = lowered
        count = -1
        i = 0
        while i < len(options):
            if options[i].upper() == b"COUNT" and i + 1 < len(options):
                value = parse_int(options[i + 1])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                count = max(value, 0)
                i += 2
            else:
                raise RespError(SYNTAX)
        stream = self._stream(key)
        if stream is None:
            return EMPTY_ARRAY
        if count == 0:
            return self.null_array
        ids = stream.range(start, end, max(count, 0), rev)
        return b"*%d\r\n" % len(ids) + b"".join(_entry(s, stream.entries[s]) for s in ids)

    @redis_command("XRANGE", arity=-4, flags="readonly", keys=(1, 1, 1), key_flags="RO access", group="stream")
    def cmd_xrange(self, key: bytes, start: bytes, end: bytes, *options: bytes) -> bytes:
        """Entries between two ids (inclusive, or exclusive with '('), oldest first."""
        return self._xrange(key, start, end, options, False)

    @redis_command("XREVRANGE", arity=-4, flags="readonly", keys=(1, 1, 1), key_flags="RO access", group="stream")
    def cmd_xrevrange(self, key: bytes, end: bytes, start: bytes, *options: bytes) -> bytes:
        """Entries between two ids, newest first."""
        return self._xrange(key, start, end, options, True)

    # ------------------------------------------------------------------ XREAD, XREADGROUP

    def _read_args(
        self, args: tuple[bytes, ...], group_read: bool
    ) -> tuple[int, int, bytes | None, bytes | None, bool, list[bytes], list[bytes]]:
        """Parse XREAD/XREADGROUP: (count, block ms or -1, group, consumer, noack, keys, raw ids)."""
        count = 0
        block = -1
        group = consumer = None
        noack = False
        streams_at = -1
        i = 0
        n = len(args)
        while i < n:
            more = n - 1 - i
            opt = args[i].upper()
            if opt == b"BLOCK" and more:
                i += 1
                value = parse_int(args[i])
                if value is None:
                    raise RespError("ERR timeout is not an integer or out of range")
                if value < 0:
                    raise RespError("ERR timeout is negative")
                block = value
            elif opt == b"COUNT" and more:
                i += 1
                value = parse_int(args[i])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                count = max(value, 0)
            elif opt == b"STREAMS" and more:
                streams_at = i + 1
                if (n - streams_at) % 2:
                    # Redis 7.0 words it so for XREADGROUP too.
                    raise RespError(
                        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
                    )
                break
            elif opt == b"GROUP" and more >= 2:
                if not group_read:
                    raise RespError("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.")
                group, consumer = args[i + 1], args[i + 2]
                i += 2
            elif opt == b"NOACK":
                if not group_read:
                    raise RespError("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")
                noack = True
            else:
                raise RespError(SYNTAX)
            i += 1
        if streams_at < 0:
            raise RespError(SYNTAX)
        if group_read and group is None:
            raise RespError("ERR Missing GROUP option for XREADGROUP")
        half = (n - streams_at) // 2
        return (
            count,
            block,
            group,
            consumer,
            noack,
            list(args[streams_at : streams_at + half]),
            list(args[streams_at + half :]),
        )

    def _read_reply(self, parts: list[bytes]) -> bytes:
        """XREAD's reply: [key, entries] pairs, as an array (RESP2) or a map (RESP3)."""
        if self.dialect.version == 2:
            return b"*%d\r\n" % len(parts) + b"".join(b"*2\r\n" + p for p in parts)
        return self.dialect.map_header(len(parts)) + b"".join(parts)

    @redis_command(
        "XREAD",
        arity=-4,
        flags="readonly blocking",
        keys=[KeySpec(("RO", "access"), ("STREAMS", 1), lastkey=-1, keystep=1, limit=2)],
        group="stream",
    )
    def cmd_xread(self, *args: bytes) -> bytes | None:
        """Entries after given ids from one or more streams, waiting up to BLOCK ms for some."""
        count, block, _, _, _, keys, raw_ids = self._read_args(args, False)
        after: list[StreamID] = []
        for key, raw in zip(keys, raw_ids, strict=True):
            stream = self._stream(key)
            if raw == b"$":
                after.append(stream.last_id if stream is not None else _ZERO_ID)
            elif raw == b">":
                raise RespError(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
                    "<consumer> option."
                )
            else:
                after.append(parse_id(raw, 0, strict=True))
        parts = []
        for key, gt in zip(keys, after, strict=True):
            part = self._read_after(key, gt, count)
            if part is not None:
                parts.append(part)
        if parts:
            return self._read_reply(parts)
        if block < 0 or not self.server.blocking.may_block:
            return self.null_array
        wanted = dict(zip(keys, after, strict=False))

        def serve(key: bytes) -> bytes | None:
            value = self.db.get(key)
            if type(value) is not Stream:
                return None
            part = self._read_after(key, wanted[key], count)
            return None if part is None else self._read_reply([part])

        self._wait(keys, serve, block, self.null_array)
        return None

    def _read_after(self, key: bytes, gt: StreamID, count: int) -> bytes | None:
        stream = self.db.get(key)
        if type(stream) is not Stream or not stream.ids or stream.ids[-1] <= gt:
            return None
        start = _incr(gt)
        if start is None:
            return None
        ids = stream.range(start, _MAX_ID, count)
        return bulk(key) + b"*%d\r\n" % len(ids) + b"".join(_entry(s, stream.entries[s]) for s in ids)

    @redis_command(
        "XREADGROUP",
        arity=-7,
        flags="write blocking",
        keys=[KeySpec(("RO", "access"), ("STREAMS", 4), lastkey=-1, keystep=1, limit=2)],
        group="stream",
    )
    def cmd_xreadgroup(self, *args: bytes) -> bytes | None:
        """Read as a consumer of a group: new entries ('>') or the consumer's own pending ones."""
        count, block, group_name, consumer_name, noack, keys, raw_ids = self._read_args(args, True)
        assert group_name is not None and consumer_name is not None
        wanted: list[tuple[bytes, Stream, Group, StreamID | None]] = []
        for key, raw in zip(keys, raw_ids, strict=True):
            stream = self._stream(key)
            group = stream.groups.get(group_name) if stream is not None else None
            if stream is None or group is None:
                raise RespError(
                    f"NOGROUP No such key '{key.decode('latin-1')}' or consumer group "
                    f"'{group_name.decode('latin-1')}' in XREADGROUP with GROUP option"
                )
            if raw == b"$":
                raise RespError(
                    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of "
                    "this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would "
                    "just return an empty result set."
                )
            wanted.append((key, stream, group, None if raw == b">" else parse_id(raw, 0, strict=True)))
        parts = []
        for key, stream, group, history in wanted:
            if history is None and not (stream.ids and stream.ids[-1] > group.last_id):
                continue
            parts.append(self._group_read(key, stream, group_name, group, consumer_name, history, count, noack))
        if parts:
            return self._read_reply(parts)
        if block < 0 or not self.server.blocking.may_block:
            return self.null_array

        def serve(key: bytes) -> bytes | None:
            stream = self.db.get(key)
            if type(stream) is not Stream:
                return None
            group = stream.groups.get(group_name)  # type: ignore[arg-type]
            if group is None:
                return b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
            if not (stream.ids and stream.ids[-1] > group.last_id):
                return None
            part = self._group_read(key, stream, group_name, group, consumer_name, None, count, noack)  # type: ignore[arg-type]
            return self._read_reply([part])

        self._wait(keys, serve, block, self.null_array)
        return None

    def _group_read(
        self,
        key: bytes,
        stream: Stream,
        group_name: bytes,
        group: Group,
        consumer_name: bytes,
        history: StreamID | None,
        count: int,
        noack: bool,
    ) -> bytes:
        """Deliver to a consumer: new entries after the group's last id, or its pending ones after *history*."""
        now = self.server.now_ms()
        consumer, created = group.consumer(consumer_name, now)
        consumer.seen = now
        if created:
            self._propagate([b"XGROUP", b"CREATECONSUMER", key, group_name, consumer_name])
        out: list[bytes] = []
        if history is not None:
            start = _incr(history) if history != _ZERO_ID else _ZERO_ID
            chosen = [s for s in sorted(consumer.pending) if start is not None and s >= start]
            if count:
                chosen = chosen[:count]
            for sid in chosen:
                pending = group.pel[sid]
                pending.time = now
                pending.count += 1
                out.append(_entry(sid, stream.entries.get(sid)))
                self._propagate_claim(key, group_name, group, sid, pending)
            return bulk(key) + b"*%d\r\n" % len(out) + b"".join(out)
        start = _incr(group.last_id)
        ids = stream.range(start, _MAX_ID, count) if start is not None else []
        for sid in ids:
            if group.entries_read != _INVALID_READ and not stream.has_tombstones(sid):
                group.entries_read += 1
            elif stream.entries_added:
                group.entries_read = stream.estimate_read(sid)
            group.last_id = sid
            out.append(_entry(sid, stream.entries[sid]))
            if not noack:
                held = group.pel.get(sid)
                if held is None:
                    held = group.pel[sid] = Pending(consumer, now, 1)
                else:
                    if held.consumer is not None:
                        held.consumer.pending.discard(sid)
                    held.consumer = consumer
                    held.time = now
                    held.count = 1
                consumer.pending.add(sid)
                self._propagate_claim(key, group_name, group, sid, held)
        if ids:
            self._propagate_group_id(key, group_name, group)
        return bulk(key) + b"*%d\r\n" % len(out) + b"".join(out)

    def _propagate_claim(self, key: bytes, group_name: bytes, group: Group, sid: StreamID, pending: Pending) -> None:
        consumer = pending.consumer.name if pending.consumer is not None else b""
        self._propagate(
            [
                b"XCLAIM",
                key,
                group_name,
                consumer,
                b"0",
                id_bytes(sid),
                b"TIME",
                b"%d" % pending.time,
                b"RETRYCOUNT",
                b"%d" % pending.count,
                b"FORCE",
                b"JUSTID",
                b"LASTID",
                id_bytes(group.last_id),
            ]
        )

    def _propagate_group_id(self, key: bytes, group_name: bytes, group: Group) -> None:
        self._propagate(
            [b"XGROUP", b"SETID", key, group_name, id_bytes(group.last_id), b"ENTRIESREAD", b"%d" % group.entries_read]
        )

    # ------------------------------------------------------------------ XGROUP

    @redis_command("XGROUP", arity=-2, group="stream")
    def cmd_xgroup(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the XGROUP subcommands."""
        return self.run_subcommand("XGROUP", sub, args)  # type: ignore[no-any-return]

    def _group_target(self, key: bytes, group_name: bytes, mkstream: bool, need_group: bool) -> Stream | None:
        stream = self._stream(key)
        if not mkstream:
            if stream is None:
                raise RespError(
                    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use "
                    "the MKSTREAM option to create an empty stream automatically."
                )
            if need_group and group_name not in stream.groups:
                raise RespError(
                    f"NOGROUP No such consumer group '{group_name.decode('latin-1')}' for key name "
                    f"'{key.decode('latin-1')}'"
                )
        return stream

    @staticmethod
    def _entries_read_option(options: tuple[bytes, ...], allow_mkstream: bool) -> tuple[bool, int]:
        mkstream = False
        entries_read = _INVALID_READ
        i = 0
        while i < len(options):
            opt = options[i].upper()
            if allow_mkstream and opt == b"MKSTREAM":
                mkstream = True
                i += 1
            elif opt == b"ENTRIESREAD" and i + 1 < len(options):
                value = parse_int(options[i + 1])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                if value < 0 and value != _INVALID_READ:
                    raise RespError("ERR value for ENTRIESREAD must be positive or -1")
                entries_read = value
                i += 2
            else:
                raise RespError(
                    "ERR unknown subcommand or wrong number of arguments for "
                    f"'{('CREATE' if allow_mkstream else 'SETID')}'. Try XGROUP HELP."
                )
        return mkstream, entries_read

    @redis_command(
        "XGROUP|CREATE", arity=-5, flags="write denyoom", keys=(2, 2, 1), key_flags="RW insert", group="stream"
    )
    def cmd_xgroup_create(self, key: bytes, group_name: bytes, raw_id: bytes, *options: bytes) -> bytes:
        """Create a consumer group starting after an id ('$': the last one)."""
        mkstream, entries_read = self._entries_read_option(options, True)
        stream = self._group_target(key, group_name, mkstream, False)
        if raw_id == b"$":
            sid = stream.last_id if stream is not None else _ZERO_ID
        else:
            sid = parse_id(raw_id, 0, strict=True)
        if stream is None:
            stream = Stream()
            self.db.set(key, stream)
        if group_name in stream.groups:
            raise RespError("BUSYGROUP Consumer Group name already exists")
        stream.groups[group_name] = Group(sid, entries_read)
        self._propagate()
        return OK

    @redis_command("XGROUP|SETID", arity=-5, flags="write", keys=(2, 2, 1), key_flags="RW update", group="stream")
    def cmd_xgroup_setid(self, key: bytes, group_name: bytes, raw_id: bytes, *options: bytes) -> bytes:
        """Move a group's last delivered id."""
        _, entries_read = self._entries_read_option(options, False)
        stream = self._group_target(key, group_name, False, True)
        assert stream is not None
        sid = stream.last_id if raw_id == b"$" else parse_id(raw_id, 0)
        group = stream.groups[group_name]
        group.last_id = sid
        group.entries_read = entries_read
        self._propagate()
        return OK

    @redis_command("XGROUP|DESTROY", arity=4, flags="write", keys=(2, 2, 1), key_flags="RW delete", group="stream")
    def cmd_xgroup_destroy(self, key: bytes, group_name: bytes) -> bytes:
        """Remove a consumer group; 1 if it existed."""
        stream = self._group_target(key, group_name, False, False)
        assert stream is not None
        if stream.groups.pop(group_name, None) is None:
            return ZERO
        self._propagate()
        self._signal_stream(key)  # its blocked readers get NOGROUP
        return integer(1)

    @redis_command(
        "XGROUP|CREATECONSUMER", arity=5, flags="write denyoom", keys=(2, 2, 1), key_flags="RW insert", group="stream"
    )
    def cmd_xgroup_createconsumer(self, key: bytes, group_name: bytes, consumer: bytes) -> bytes:
        """Create a consumer in a group; 1 if it is new."""
        stream = self._group_target(key, group_name, False, True)
        assert stream is not None
        _, created = stream.groups[group_name].consumer(consumer, self.server.now_ms())
        if created:
            self._propagate()
        return integer(1 if created else 0)

    @redis_command("XGROUP|DELCONSUMER", arity=5, flags="write", keys=(2, 2, 1), key_flags="RW delete", group="stream")
    def cmd_xgroup_delconsumer(self, key: bytes, group_name: bytes, consumer: bytes) -> bytes:
        """Remove a consumer and its pending entries; return how many it had."""
        stream = self._group_target(key, group_name, False, True)
        assert stream is not None
        group = stream.groups[group_name]
        found = group.consumers.pop(consumer, None)
        if found is None:
            return ZERO
        for sid in found.pending:
            group.pel.pop(sid, None)
        self._propagate()
        return integer(len(found.pending))

    @redis_command("XGROUP|HELP", arity=2, flags="loading stale", group="stream")
    def cmd_xgroup_help(self) -> bytes:
        """What XGROUP does."""
        lines = [
            b"XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"CREATE <key> <groupname> <id|$> [option]",
            b"    Create a new consumer group. Options are:",
            b"    * MKSTREAM",
            b"      Create the empty stream if it does not exist.",
            b"    * ENTRIESREAD entries_read",
            b"      Set the group's entries_read counter (internal use).",
            b"CREATECONSUMER <key> <groupname> <consumer>",
            b"    Create a new consumer in the specified group.",
            b"DELCONSUMER <key> <groupname> <consumer>",
            b"    Remove the specified consumer.",
            b"DESTROY <key> <groupname>",
            b"    Remove the specified group.",
            b"SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            b"    Set the current group ID and entries_read counter.",
            b"HELP",
            b"    Prints this help.",
        ]
        return b"*%d\r\n" % len(lines) + b"".join(b"+%s\r\n" % line for line in lines)

    # ------------------------------------------------------------------ XACK, XPENDING, XCLAIM, XAUTOCLAIM

    def _group_or_nogroup(self, key: bytes, group_name: bytes) -> tuple[Stream, Group]:
        stream = self._stream(key)
        group = stream.groups.get(group_name) if stream is not None else None
        if stream is None or group is None:
            raise RespError(
                f"NOGROUP No such key '{key.decode('latin-1')}' or consumer group '{group_name.decode('latin-1')}'"
            )
        return stream, group

    @redis_command("XACK", arity=-4, flags="write fast", keys=(1, 1, 1), key_flags="RW update", group="stream")
    def cmd_xack(self, key: bytes, group_name: bytes, sid: bytes, *more: bytes) -> bytes:
        """Acknowledge pending entries; return how many were pending."""
        stream = self._stream(key)
        group = stream.groups.get(group_name) if stream is not None else None
        ids = [parse_id(raw, 0, strict=True) for raw in (sid, *more)]
        if group is None:
            return ZERO
        acked = 0
        for each in ids:
            pending = group.pel.pop(each, None)
            if pending is not None:
                if pending.consumer is not None:
                    pending.consumer.pending.discard(each)
                acked += 1
        if acked:
            self._propagate()
        return integer(acked)

    @redis_command(
        "XPENDING",
        arity=-3,
        flags="readonly",
        keys=(1, 1, 1),
        key_flags="RO access",
        group="stream",
        tips="nondeterministic_output",
    )
    def cmd_xpending(self, key: bytes, group_name: bytes, *args: bytes) -> bytes:
        """Pending entries of a group: a summary, or a range with idle times and delivery counts."""
        n = len(args) + 3
        if n != 3 and (n < 6 or n > 9):
            raise RespError(SYNTAX)
        min_idle = 0
        consumer_name = None
        if args:
            at = 0
            if args[0].upper() == b"IDLE":
                value = parse_int(args[1])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                min_idle = value
                if n < 8:
                    raise RespError(SYNTAX)
                at = 2
            count = parse_int(args[at + 2])
            if count is None:
                raise RespError("ERR value is not an integer or out of range")
            count = max(count, 0)
            start, start_ex = _interval(args[at], 0)
            if start_ex:
                bumped = _incr(start)
                if bumped is None:
                    raise RespError("ERR invalid start ID for the interval")
                start = bumped
            end, end_ex = _interval(args[at + 1], _U64)
            if end_ex:
                lowered = _decr(end)
                if lowered is None:
                    raise RespError("ERR invalid end ID for the interval")
                end = lowered
            if at + 3 < len(args):
                consumer_name = args[at + 3]
        _, group = self._group_or_nogroup(key, group_name)
        if not args:
            if not group.pel:
                return b"*4\r\n:0\r\n" + self.null + self.null + self.null_array
            ordered = group.sorted_pel()
            owners = [(name, len(c.pending)) for name, c in sorted(group.consumers.items()) if c.pending]
            return (
                b"*4\r\n"
                + integer(len(ordered))
                + bulk(id_bytes(ordered[0]))
                + bulk(id_bytes(ordered[-1]))
                + b"*%d\r\n" % len(owners)
                + b"".join(b"*2\r\n" + bulk(name) + bulk(b"%d" % size) for name, size in owners)
            )
        if consumer_name is not None:
            consumer = group.consumers.get(consumer_name)
            if consumer is None:
                return EMPTY_ARRAY
            source: Iterable[StreamID] = sorted(consumer.pending)
        else:
            source = group.sorted_pel()
        now = self.server.now_ms()
        out = []
        for sid in source:
            if not count or sid > end:
                break
            if sid < start:
                continue
            pending = group.pel[sid]
            if min_idle and now - pending.time < min_idle:
                continue
            count -= 1
            owner = pending.consumer.name if pending.consumer is not None else b""
            out.append(
                b"*4\r\n"
                + bulk(id_bytes(sid))
                + bulk(owner)
                + integer(max(now - pending.time, 0))
                + integer(pending.count)
            )
        return b"*%d\r\n" % len(out) + b"".join(out)

    def _drop_pending(self, group: Group, sid: StreamID) -> None:
        pending = group.pel.pop(sid)
        if pending.consumer is not None:
            pending.consumer.pending.discard(sid)

    @redis_command(
        "XCLAIM",
        arity=-6,
        flags="write fast",
        keys=(1, 1, 1),
        key_flags="RW update",
        group="stream",
        tips="nondeterministic_output",
    )
    def cmd_xclaim(self, key: bytes, group_name: bytes, consumer_name: bytes, idle: bytes, *args: bytes) -> bytes:
        """Take pending entries idle for at least min-idle-time over to another consumer."""
        stream, group = self._group_or_nogroup(key, group_name)
        min_idle = parse_int(idle)
        if min_idle is None:
            raise RespError("ERR Invalid min-idle-time argument for XCLAIM")
        min_idle = max(min_idle, 0)
        ids: list[StreamID] = []
        j = 0
        while j < len(args):
            try:
                ids.append(parse_id(args[j], 0, strict=True))
            except RespError:
                break
            j += 1
        now = self.server.now_ms()
        delivery = -1
        retry = -1
        force = justid = False
        last_id = _ZERO_ID
        while j < len(args):
            more = len(args) - 1 - j
            opt = args[j].upper()
            if opt == b"FORCE":
                force = True
            elif opt == b"JUSTID":
                justid = True
            elif opt in (b"IDLE", b"TIME", b"RETRYCOUNT") and more:
                j += 1
                value = parse_int(args[j])
                if value is None:
                    raise RespError(f"ERR Invalid {opt.decode()} option argument for XCLAIM")
                if opt == b"IDLE":
                    delivery = now - value
                elif opt == b"TIME":
                    delivery = value
                else:
                    retry = value
            elif opt == b"LASTID" and more:
                j += 1
                last_id = parse_id(args[j], 0, strict=True)
            else:
                raise RespError(f"ERR Unrecognized XCLAIM option '{args[j].decode('latin-1')}'")
            j += 1
        propagate_last = False
        if last_id > group.last_id:
            group.last_id = last_id
            propagate_last = True
        if delivery == -1 or delivery < 0 or delivery > now:
            delivery = now
        consumer: Consumer | None = None
        out = []
        for sid in ids:
            pending = group.pel.get(sid)
            if sid not in stream.entries:
                if pending is not None:
                    self._propagate_claim(key, group_name, group, sid, pending)
                    propagate_last = False
                    self._drop_pending(group, sid)
                continue
            if force and pending is None:
                pending = group.pel[sid] = Pending(None, now, 0)
            if pending is None:
                continue
            if pending.consumer is not None and min_idle and now - pending.time < min_idle:
                continue
            if consumer is None:
                consumer, created = group.consumer(consumer_name, now)
                if created:
                    self._propagate([b"XGROUP", b"CREATECONSUMER", key, group_name, consumer_name])
            if pending.consumer is not consumer and pending.consumer is not None:
                pending.consumer.pending.discard(sid)
            pending.time = delivery
            if retry >= 0:
                pending.count = retry
            elif not justid:
                pending.count += 1
            pending.consumer = consumer
            consumer.pending.add(sid)
            consumer.seen = now
            out.append(bulk(id_bytes(sid)) if justid else _entry(sid, stream.entries[sid]))
            self._propagate_claim(key, group_name, group, sid, pending)
            propagate_last = False
        if propagate_last:
            self._propagate_group_id(key, group_name, group)
        return b"*%d\r\n" % len(out) + b"".join(out)

    @redis_command(
        "XAUTOCLAIM",
        arity=-6,
        flags="write fast",
        keys=(1, 1, 1),
        key_flags="RW delete",
        group="stream",
        tips="nondeterministic_output",
    )
    def cmd_xautoclaim(
        self, key: bytes, group_name: bytes, consumer_name: bytes, idle: bytes, raw_start: bytes, *args: bytes
    ) -> bytes:
        """Claim pending entries idle long enough, scanning the group's pending list from a cursor."""
        stream = self._stream(key)
        group = stream.groups.get(group_name) if stream is not None else None
        min_idle = parse_int(idle)
        if min_idle is None:
            raise RespError("ERR Invalid min-idle-time argument for XAUTOCLAIM")
        min_idle = max(min_idle, 0)
        start, exclusive = _interval(raw_start, 0)
        if exclusive:
            bumped = _incr(start)
            if bumped is None:
                raise RespError("ERR invalid start ID for the interval")
            start = bumped
        count = 100
        justid = False
        j = 0
        while j < len(args):
            opt = args[j].upper()
            if opt == b"COUNT" and j + 1 < len(args):
                value = parse_int(args[j + 1])
                if value is None or value < 1 or value > (1 << 63) // 16:
                    raise RespError("ERR COUNT must be > 0")
                count = value
                j += 2
            elif opt == b"JUSTID":
                justid = True
                j += 1
            else:
                raise RespError(SYNTAX)
        if stream is None or group is None:
            raise RespError(
                f"NOGROUP No such key '{key.decode('latin-1')}' or consumer group '{group_name.decode('latin-1')}'"
            )
        attempts = count * 10
        now = self.server.now_ms()
        ordered = [s for s in group.sorted_pel() if s >= start]
        consumer: Consumer | None = None
        claimed: list[bytes] = []
        deleted: list[StreamID] = []
        at = 0
        while attempts and count and at < len(ordered):
            attempts -= 1
            sid = ordered[at]
            at += 1
            pending = group.pel[sid]
            if sid not in stream.entries:
                self._propagate_claim(key, group_name, group, sid, pending)
                self._drop_pending(group, sid)
                deleted.append(sid)
                count -= 1
                continue
            if min_idle and now - pending.time < min_idle:
                continue
            if consumer is None:
                consumer, created = group.consumer(consumer_name, now)
                if created:
                    self._propagate([b"XGROUP", b"CREATECONSUMER", key, group_name, consumer_name])
            if pending.consumer is not consumer and pending.consumer is not None:
                pending.consumer.pending.discard(sid)
            pending.time = now
            if not justid:
                pending.count += 1
            pending.consumer = consumer
            consumer.pending.add(sid)
            claimed.append(bulk(id_bytes(sid)) if justid else _entry(sid, stream.entries[sid]))
            count -= 1
            self._propagate_claim(key, group_name, group, sid, pending)
        cursor = ordered[at] if at < len(ordered) else _ZERO_ID
        return (
            b"*3\r\n"
            + bulk(id_bytes(cursor))
            + b"*%d\r\n" % len(claimed)
            + b"".join(claimed)
            + array([id_bytes(s) for s in deleted])
        )

    # ------------------------------------------------------------------ XINFO

    @redis_command("XINFO", arity=-2, group="stream")
    def cmd_xinfo(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the XINFO subcommands."""
        return self.run_subcommand("XINFO", sub, args)  # type: ignore[no-any-return]

    def _info_stream(self, key: bytes) -> Stream:
        stream = self._stream(key)
        if stream is None:
            raise RespError("ERR no such key")
        return stream

    def _fields(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        return self.dialect.map_header(len(pairs)) + b"".join(bulk(k) + v for k, v in pairs)

    @redis_command(
        "XINFO|STREAM",
        arity=-3,
        flags="readonly",
        keys=(2, 2, 1),
        key_flags="RO access",
        group="stream",
    )
    def cmd_xinfo_stream(self, key: bytes, *options: bytes) -> bytes:
        """About a stream: length, ids, counters, first and last entries (FULL: entries and groups too)."""
        full = False
        count = 10
        if options:
            bad = RespError(
                "ERR unknown subcommand or wrong number of arguments for "
                f"'{self.argv[1][:128].decode('latin-1')}'. Try XINFO HELP."
            )
            if options[0].upper() != b"FULL":
                raise bad
            full = True
            if len(options) == 3 and options[1].upper() == b"COUNT":
                value = parse_int(options[2])
                if value is None:
                    raise RespError("ERR value is not an integer or out of range")
                count = max(value, 0)
            elif len(options) != 1:
                raise bad
        stream = self._info_stream(key)
        head: list[tuple[bytes, bytes]] = [
            (b"length", integer(len(stream))),
            (b"radix-tree-keys", integer(len(stream.nodes))),
            (b"radix-tree-nodes", integer(stream.radix_tree_nodes())),
            (b"last-generated-id", bulk(id_bytes(stream.last_id))),
            (b"max-deleted-entry-id", bulk(id_bytes(stream.max_deleted))),
            (b"entries-added", integer(stream.entries_added)),
            (b"recorded-first-entry-id", bulk(id_bytes(stream.first_id))),
        ]
        if not full:
            first = _entry(stream.ids[0], stream.entries[stream.ids[0]]) if stream.ids else self.null
            last = _entry(stream.ids[-1], stream.entries[stream.ids[-1]]) if stream.ids else self.null
            return self._fields(
                [*head, (b"groups", integer(len(stream.groups))), (b"first-entry", first), (b"last-entry", last)]
            )
        ids = stream.range(_ZERO_ID, _MAX_ID, count)
        entries = b"*%d\r\n" % len(ids) + b"".join(_entry(s, stream.entries[s]) for s in ids)
        groups = []
        for name, group in sorted(stream.groups.items()):
            pel = group.sorted_pel()
            shown = pel[:count] if count else pel
            pending = b"*%d\r\n" % len(shown) + b"".join(
                b"*4\r\n"
                + bulk(id_bytes(s))
                + bulk(group.pel[s].consumer.name if group.pel[s].consumer is not None else b"")  # type: ignore[union-attr]
                + integer(group.pel[s].time)
                + integer(group.pel[s].count)
                for s in shown
            )
            consumers = []
            for cname, consumer in sorted(group.consumers.items()):
                mine = sorted(consumer.pending)
                mine = mine[:count] if count else mine
                consumers.append(
                    self._fields(
                        [
                            (b"name", bulk(cname)),
                            (b"seen-time", integer(consumer.seen)),
                            (b"pel-count", integer(len(consumer.pending))),
                            (
                                b"pending",
                                b"*%d\r\n" % len(mine)
                                + b"".join(
                                    b"*3\r\n"
                                    + bulk(id_bytes(s))
                                    + integer(group.pel[s].time)
                                    + integer(group.pel[s].count)
                                    for s in mine
                                ),
                            ),
                        ]
                    )
                )
            lag = stream.lag(group)
            groups.append(
                self._fields(
                    [
                        (b"name", bulk(name)),
                        (b"last-delivered-id", bulk(id_bytes(group.last_id))),
                        (
                            b"entries-read",
                            self.null if group.entries_read == _INVALID_READ else integer(group.entries_read),
                        ),
                        (b"lag", self.null if lag is None else integer(lag)),
                        (b"pel-count", integer(len(group.pel))),
                        (b"pending", pending),
                        (b"consumers", b"*%d\r\n" % len(consumers) + b"".join(consumers)),
                    ]
                )
            )
        return self._fields([*head, (b"entries", entries), (b"groups", b"*%d\r\n" % len(groups) + b"".join(groups))])

    @redis_command("XINFO|GROUPS", arity=3, flags="readonly", keys=(2, 2, 1), key_flags="RO access", group="stream")
    def cmd_xinfo_groups(self, key: bytes) -> bytes:
        """The consumer groups of a stream."""
        stream = self._info_stream(key)
        out = []
        for name, group in sorted(stream.groups.items()):
            lag = stream.lag(group)
            out.append(
                self._fields(
                    [
                        (b"name", bulk(name)),
                        (b"consumers", integer(len(group.consumers))),
                        (b"pending", integer(len(group.pel))),
                        (b"last-delivered-id", bulk(id_bytes(group.last_id))),
                        (
                            b"entries-read",
                            self.null if group.entries_read == _INVALID_READ else integer(group.entries_read),
                        ),
                        (b"lag", self.null if lag is None else integer(lag)),
                    ]
                )
            )
        return b"*%d\r\n" % len(out) + b"".join(out)

    @redis_command(
        "XINFO|CONSUMERS",
        arity=4,
        flags="readonly",
        keys=(2, 2, 1),
        key_flags="RO access",
        group="stream",
        tips="nondeterministic_output",
    )
    def cmd_xinfo_consumers(self, key: bytes, group_name: bytes) -> bytes:
        """The consumers of a group: pending entries and idle time."""
        stream = self._info_stream(key)
        group = stream.groups.get(group_name)
        if group is None:
            raise RespError(
                f"NOGROUP No such consumer group '{group_name.decode('latin-1')}' "
                f"for key name '{key.decode('latin-1')}'"
            )
        now = self.server.now_ms()
        out = [
            self._fields(
                [(b"name", bulk(name)), (b"pending", integer(len(c.pending))), (b"idle", integer(max(now - c.seen, 0)))]
            )
            for name, c in sorted(group.consumers.items())
        ]
        return b"*%d\r\n" % len(out) + b"".join(out)

    @redis_command("XINFO|HELP", arity=2, flags="loading stale", group="stream")
    def cmd_xinfo_help(self) -> bytes:
        """What XINFO does."""
        lines = [
            b"XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"CONSUMERS <key> <groupname>",
            b"    Show consumers of <groupname>.",
            b"GROUPS <key>",
            b"    Show the stream consumer groups.",
            b"STREAM <key> [FULL [COUNT <count>]",
            b"    Show information about the stream.",
            b"HELP",
            b"    Prints this help.",
        ]
        return b"*%d\r\n" % len(lines) + b"".join(b"+%s\r\n" % line for line in lines)

    if TYPE_CHECKING:

        def _wait(
            self, keys: list[bytes], serve: Callable[[bytes], bytes | None], timeout_ms: int, reply: bytes
        ) -> None: ...

        _blocked: Waiter | None
