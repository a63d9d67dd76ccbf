"""Keys and databases: DEL, EXISTS, EXPIRE, RENAME, SCAN, SELECT, FLUSHDB... (Redis's db.c and expire.c)."""

from __future__ import annotations

import math
import re
from collections import deque

from linechat.services.redis.base import (
    SYNTAX,
    WRONGTYPE,
    CommandContext,
    int_arg,
)
from linechat.services.redis.resp import (
    OK,
    ONE,
    ZERO,
    RespError,
    array,
    bulk,
    compile_glob,
    integer,
)
from linechat.services.redis.scan import matching, parse_cursor, parse_scan_options, scan_reply
from linechat.services.redis.store import RNG, copy_value, encoding_of, type_name
from linechat.services.redis.table import KeySpec, redis_command
from linechat.services.redis.zset import SortedSet

__all__ = ["KeyCommands"]

_SORT_BY_NOTE = (
    "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content "
    "of the key we sort"
)
_SORT_STORE_NOTE = (
    "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the "
    "argument array"
)
_SORT_NUMBER = re.compile(rb"[ \t\n\v\f\r]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[ \t\n\v\f\r]*")


class KeyCommands(CommandContext):
    """The commands on keys of any type and on whole databases."""

    @redis_command("SELECT", arity=2, flags="loading stale fast", group="connection")
    def cmd_select(self, index: bytes) -> bytes:
        """Change the selected database."""
        number = int_arg(index)
        if not 0 <= number < len(self.server.dbs):
            raise RespError("ERR DB index is out of range")
        self.dbindex = number
        self.db = self.server.dbs[number]
        return OK

    @redis_command(
        "DBSIZE",
        arity=1,
        flags="readonly fast",
        group="server",
        acl="keyspace",
        tips="request_policy:all_shards response_policy:agg_sum",
    )
    def cmd_dbsize(self) -> bytes:
        """Number of keys in the selected database."""
        return integer(len(self.db))

    def _flush_mode(self, args: tuple[bytes, ...]) -> None:
        if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
            raise RespError(SYNTAX)

    @redis_command(
        "FLUSHDB",
        arity=-1,
        flags="write",
        group="server",
        acl="keyspace dangerous",
        tips="request_policy:all_shards response_policy:all_succeeded",
    )
    def cmd_flushdb(self, *args: bytes) -> bytes:
        """Remove every key of the selected database."""
        self._flush_mode(args)
        if self.server.watchers:
            self.server.touch_flush(self.dbindex)
        self.db.clear()
        self._propagate([b"FLUSHDB"])
        return OK

    @redis_command(
        "FLUSHALL",
        arity=-1,
        flags="write",
        group="server",
        acl="keyspace dangerous",
        tips="request_policy:all_shards response_policy:all_succeeded",
    )
    def cmd_flushall(self, *args: bytes) -> bytes:
        """Remove every key of every database."""
        self._flush_mode(args)
        if self.server.watchers:
            self.server.touch_flush(None)
        for db in self.server.dbs:
            db.clear()
        self._propagate([b"FLUSHALL"])
        return OK

    # ------------------------------------------------------------------ keys

    @redis_command(
        "DEL",
        arity=-2,
        flags="write",
        keys=(1, -1, 1),
        key_flags="RM delete",
        group="generic",
        tips="request_policy:multi_shard response_policy:agg_sum",
    )
    @redis_command(
        "UNLINK",
        arity=-2,
        flags="write fast",
        keys=(1, -1, 1),
        key_flags="RM delete",
        group="generic",
        tips="request_policy:multi_shard response_policy:agg_sum",
    )
    def cmd_del(self, key: bytes, *keys: bytes) -> bytes:
        """Delete keys; return how many existed."""
        delete = self.db.delete
        removed = [k for k in (key, *keys) if delete(k)]
        if removed:
            self._propagate([b"DEL", *removed])
        return integer(len(removed))

    @redis_command(
        "EXISTS",
        arity=-2,
        flags="readonly fast",
        keys=(1, -1, 1),
        key_flags="RO",
        group="generic",
        tips="request_policy:multi_shard response_policy:agg_sum",
    )
    def cmd_exists(self, key: bytes, *keys: bytes) -> bytes:
        """Count the given keys that exist (repeats count again)."""
        get = self.db.get
        return integer(sum(1 for k in (key, *keys) if get(k) is not None))

    @redis_command("TYPE", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="generic")
    def cmd_type(self, key: bytes) -> bytes:
        """Type of the value at a key."""
        return b"+%s\r\n" % type_name(self.db.get(key))

    @redis_command(
        "KEYS",
        arity=2,
        flags="readonly",
        group="generic",
        acl="dangerous",
        tips="request_policy:all_shards nondeterministic_output_order",
    )
    def cmd_keys(self, pattern: bytes) -> bytes:
        """Keys matching a glob pattern."""
        if pattern == b"*":  # as redis-server: every key, the empty one too, with no matching
            return array(list(self.db.live_keys()))
        glob = compile_glob(pattern)
        return array([k for k in self.db.live_keys() if glob.match(k)])

    @redis_command(
        "SCAN", arity=-2, flags="readonly", group="generic", tips="nondeterministic_output request_policy:special"
    )
    def cmd_scan(self, cursor: bytes, *options: bytes) -> bytes:
        """Iterate over keys with a cursor (MATCH, COUNT, TYPE); see scan.py for the guarantee."""
        start = parse_cursor(cursor)
        pattern, count, kind = parse_scan_options(options, True)
        db = self.db
        nxt, names = self.server.scan_cursors.page(start, db.data.keys, count)
        keys = []
        for name in matching(names, pattern):
            value = db.get(name)
            if value is None or (kind is not None and type_name(value) != kind):
                continue
            keys.append(name)
        return scan_reply(nxt, keys)

    def _rename(self, source: bytes, target: bytes, only_new: bool) -> bytes:
        db = self.db
        value = db.get(source)
        if value is None:
            raise RespError("ERR no such key")
        if source == target:
            return ZERO if only_new else OK
        if only_new and db.get(target) is not None:
            return ZERO
        deadline = db.deadline(source)
        db.delete(source)
        db.delete(target)
        db.set(target, value)
        if deadline is not None:
            db.set_deadline(target, deadline)
        self._propagate([b"RENAME", source, target])
        return ONE if only_new else OK

    @redis_command(
        "RENAME",
        arity=3,
        flags="write",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("OW", "update"), 2)],
        group="generic",
    )
    def cmd_rename(self, source: bytes, target: bytes) -> bytes:
        """Rename a key (its deadline moves with it)."""
        return self._rename(source, target, False)

    @redis_command(
        "RENAMENX",
        arity=3,
        flags="write fast",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("OW", "insert"), 2)],
        group="generic",
    )
    def cmd_renamenx(self, source: bytes, target: bytes) -> bytes:
        """Rename a key only if the new name is free."""
        return self._rename(source, target, True)

    def _expire(
        self, key: bytes, amount: bytes, unit: int, absolute: bool, name: str, flags: tuple[bytes, ...]
    ) -> bytes:
        deadline = self._deadline(amount, unit, absolute, name)
        nx = xx = gt = lt = False
        for flag in flags:
            upper = flag.upper()
            if upper == b"NX":
                nx = True
            elif upper == b"XX":
                xx = True
            elif upper == b"GT":
                gt = True
            elif upper == b"LT":
                lt = True
            else:
                raise RespError(f"ERR Unsupported option {flag.decode('latin-1')}")
        if nx and (xx or gt or lt):
            raise RespError("ERR NX and XX, GT or LT options at the same time are not compatible")
        if gt and lt:
            raise RespError("ERR GT and LT options at the same time are not compatible")
        db = self.db
        if db.get(key) is None:
            return ZERO
        current = db.deadline(key)
        if nx and current is not None:
            return ZERO
        if xx and current is None:
            return ZERO
        if gt and (current is None or deadline <= current):
            return ZERO
        if lt and current is not None and deadline >= current:
            return ZERO
        if deadline <= self.server.now_ms() and not self.server.loading:
            db.delete(key)
            self._propagate([b"DEL", key])
            return ONE
        db.set_deadline(key, deadline)
        self._propagate([b"PEXPIREAT", key, b"%d" % deadline])
        return ONE

    @redis_command("EXPIRE", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW update", group="generic")
    def cmd_expire(self, key: bytes, seconds: bytes, *flags: bytes) -> bytes:
        """Set a key's time to live in seconds."""
        return self._expire(key, seconds, 1000, False, "expire", flags)

    @redis_command("PEXPIRE", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW update", group="generic")
    def cmd_pexpire(self, key: bytes, milliseconds: bytes, *flags: bytes) -> bytes:
        """Set a key's time to live in milliseconds."""
        return self._expire(key, milliseconds, 1, False, "pexpire", flags)

    @redis_command("EXPIREAT", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW update", group="generic")
    def cmd_expireat(self, key: bytes, timestamp: bytes, *flags: bytes) -> bytes:
        """Set a key's deadline as a Unix time in seconds."""
        return self._expire(key, timestamp, 1000, True, "expireat", flags)

    @redis_command("PEXPIREAT", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW update", group="generic")
    def cmd_pexpireat(self, key: bytes, timestamp: bytes, *flags: bytes) -> bytes:
        """Set a key's deadline as a Unix time in milliseconds."""
        return self._expire(key, timestamp, 1, True, "pexpireat", flags)

    def _ttl(self, key: bytes) -> int:
        db = self.db
        if db.get(key) is None:
            return -2
        deadline = db.deadline(key)
        if deadline is None:
            return -1
        return max(deadline - self.server.now_ms(), 0)

    @redis_command(
        "TTL", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic", tips="nondeterministic_output"
    )
    def cmd_ttl(self, key: bytes) -> bytes:
        """Seconds a key has left to live (-1: no deadline, -2: no key)."""
        ms = self._ttl(key)
        return integer(ms if ms < 0 else (ms + 500) // 1000)

    @redis_command(
        "PTTL", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic", tips="nondeterministic_output"
    )
    def cmd_pttl(self, key: bytes) -> bytes:
        """Milliseconds a key has left to live (-1: no deadline, -2: no key)."""
        return integer(self._ttl(key))

    @redis_command("PERSIST", arity=2, flags="write fast", keys=(1, 1, 1), key_flags="RW update", group="generic")
    def cmd_persist(self, key: bytes) -> bytes:
        """Remove a key's deadline."""
        if self.db.get(key) is None or not self.db.persist(key):
            return ZERO
        self._propagate()
        return ONE

    @redis_command(
        "RANDOMKEY",
        arity=1,
        flags="readonly",
        group="generic",
        tips="request_policy:all_shards nondeterministic_output",
    )
    def cmd_randomkey(self) -> bytes:
        """A random existing key."""
        db = self.db
        for _ in range(100):
            if not db.data:
                return self.null
            key = RNG.choice(list(db.data))
            if db.get(key) is not None:
                return bulk(key)
        return self.null

    # ------------------------------------------------------------------ COPY, TOUCH, EXPIRETIME, OBJECT

    @redis_command(
        "COPY",
        arity=-3,
        flags="write denyoom",
        keys=[KeySpec(("RO", "access"), 1), KeySpec(("OW", "update"), 2)],
        group="generic",
    )
    def cmd_copy(self, source: bytes, destination: bytes, *options: bytes) -> bytes:
        """Copy a key's value (and deadline) to another key, maybe in another database (DB, REPLACE)."""
        replace = False
        target = self.db
        i = 0
        while i < len(options):
            opt = options[i].upper()
            if opt == b"REPLACE":
                replace = True
            elif opt == b"DB" and i + 1 < len(options):
                index = int_arg(options[i + 1])
                if not 0 <= index < len(self.server.dbs):
                    raise RespError("ERR DB index is out of range")
                target = self.server.dbs[index]
                i += 1
            else:
                raise RespError(SYNTAX)
            i += 1
        if target is self.db and source == destination:
            raise RespError("ERR source and destination objects are the same")
        value = self.db.get(source)
        if value is None:
            return ZERO
        if target.get(destination) is not None:
            if not replace:
                return ZERO
            target.delete(destination)
        deadline = self.db.deadline(source)
        target.set(destination, copy_value(value))
        if deadline is not None:
            target.set_deadline(destination, deadline)
        self._propagate()
        return ONE

    @redis_command(
        "TOUCH",
        arity=-2,
        flags="readonly fast",
        keys=(1, -1, 1),
        key_flags="RO",
        group="generic",
        tips="request_policy:multi_shard response_policy:agg_sum",
    )
    def cmd_touch(self, key: bytes, *keys: bytes) -> bytes:
        """Count the given keys that exist (Redis also refreshes their access time)."""
        get = self.db.get
        return integer(sum(1 for k in (key, *keys) if get(k) is not None))

    def _expiretime(self, key: bytes) -> int:
        if self.db.get(key) is None:
            return -2
        deadline = self.db.deadline(key)
        return -1 if deadline is None else deadline

    @redis_command("EXPIRETIME", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic")
    def cmd_expiretime(self, key: bytes) -> bytes:
        """A key's deadline as a Unix time in seconds (-1: none, -2: no key)."""
        when = self._expiretime(key)
        return integer(when if when < 0 else when // 1000)

    @redis_command("PEXPIRETIME", arity=2, flags="readonly fast", keys=(1, 1, 1), group="generic")
    def cmd_pexpiretime(self, key: bytes) -> bytes:
        """A key's deadline as a Unix time in milliseconds (-1: none, -2: no key)."""
        return integer(self._expiretime(key))

    @redis_command("OBJECT", arity=-2, group="generic")
    def cmd_object(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the OBJECT subcommands."""
        return self.run_subcommand("OBJECT", sub, args)  # type: ignore[no-any-return]

    @redis_command(
        "OBJECT|ENCODING",
        arity=3,
        flags="readonly",
        keys=[KeySpec(("RO",), 2)],
        group="generic",
        tips="nondeterministic_output",
    )
    def cmd_object_encoding(self, key: bytes) -> bytes:
        """The encoding Redis 7.0 would use for the value (computed from its size and contents)."""
        value = self.db.get(key)
        return self.null if value is None else bulk(encoding_of(value))

    @redis_command(
        "OBJECT|IDLETIME",
        arity=3,
        flags="readonly",
        keys=[KeySpec(("RO",), 2)],
        group="generic",
        tips="nondeterministic_output",
    )
    def cmd_object_idletime(self, key: bytes) -> bytes:
        """Seconds since the key was last read or written (a clock moved about ten times a second)."""
        db = self.db
        last = db.access.get(key)
        if db.get(key) is None:
            return self.null
        if last is None:  # written by a path that keeps no access time
            last = db.lru_clock
        db.access[key] = last  # looking does not count as an access, as in Redis
        return integer(max(0, db.lru_clock - last))

    @redis_command(
        "OBJECT|REFCOUNT",
        arity=3,
        flags="readonly",
        keys=[KeySpec(("RO",), 2)],
        group="generic",
        tips="nondeterministic_output",
    )
    def cmd_object_refcount(self, key: bytes) -> bytes:
        """References to the value: Redis shares the integers 0 to 9999 (a huge count), others have 1."""
        value = self.db.get(key)
        if value is None:
            return self.null
        if type(value) is bytes and encoding_of(value) == b"int" and 0 <= int(value) < 10000:
            return integer(2147483647)
        return ONE

    @redis_command(
        "OBJECT|FREQ",
        arity=3,
        flags="readonly",
        keys=[KeySpec(("RO",), 2)],
        group="generic",
        tips="nondeterministic_output",
    )
    def cmd_object_freq(self, key: bytes) -> bytes:
        """Access frequency: only tracked under an LFU eviction policy, which this server does not have."""
        if self.db.get(key) is None:
            return self.null
        raise RespError(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when "
            "switching between policies at runtime LRU and LFU data will take some time to adjust."
        )

    @redis_command("OBJECT|HELP", arity=2, flags="loading stale", group="generic")
    def cmd_object_help(self) -> bytes:
        """The OBJECT subcommands."""
        lines = [
            b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"ENCODING <key>",
            b"    Return the kind of internal representation used in order to store the value",
            b"    associated with a <key>.",
            b"FREQ <key>",
            b"    Return the access frequency index of the <key>. The returned integer is",
            b"    proportional to the logarithm of the recent access frequency of the key.",
            b"IDLETIME <key>",
            b"    Return the idle time of the <key>, that is the approximated number of",
            b"    seconds elapsed since the last access to the key.",
            b"REFCOUNT <key>",
            b"    Return the number of references of the value associated with the specified",
            b"    <key>.",
            b"HELP",
            b"    Prints this help.",
        ]
        return b"*%d\r\n" % len(lines) + b"".join(b"+%s\r\n" % line for line in lines)

    # ------------------------------------------------------------------ SORT

    def _sort(self, key: bytes, options: tuple[bytes, ...], read_only: bool) -> bytes:
        desc = alpha = False
        start, count = 0, -1
        store: bytes | None = None
        by: bytes | None = None
        gets: list[bytes] = []
        i = 0
        while i < len(options):
            opt = options[i].upper()
            left = len(options) - i - 1
            if opt == b"ASC":
                desc = False
            elif opt == b"DESC":
                desc = True
            elif opt == b"ALPHA":
                alpha = True
            elif opt == b"LIMIT" and left >= 2:
                start, count = int_arg(options[i + 1]), int_arg(options[i + 2])
                i += 2
            elif opt == b"STORE" and left >= 1 and not read_only:
                store = options[i + 1]
                i += 1
            elif opt == b"BY" and left >= 1:
                by = options[i + 1]
                i += 1
            elif opt == b"GET" and left >= 1:
                gets.append(options[i + 1])
                i += 1
            else:
                raise RespError(SYNTAX)
            i += 1
        value = self.db.get(key)
        if value is not None and type(value) not in (deque, set, SortedSet):
            raise RespError(WRONGTYPE)
        dontsort = by is not None and b"*" not in by
        if value is None:
            elements: list[bytes] = []
        elif type(value) is SortedSet:
            elements = [member for _, member in value.order]
            if dontsort and desc:
                elements.reverse()
        else:
            elements = list(value)
        if dontsort and type(value) is set and store is not None:
            # As Redis: a set's order is arbitrary, so a stored result is sorted to be deterministic.
            dontsort, alpha, by = False, True, None
        if not dontsort:
            elements = self._sort_elements(elements, by, alpha, desc, store is not None)
        length = len(elements)
        first = max(start, 0)
        last = length - 1 if count < 0 else first + count - 1
        if first >= length:
            first, last = length - 1, length - 2
        last = min(last, length - 1)
        chosen = elements[first : last + 1] if last >= first else []
        results: list[bytes | None] = []
        if gets:
            for element in chosen:
                results += [self._sort_lookup(pattern, element) for pattern in gets]
        else:
            results = list(chosen)
        if store is not None:
            self.db.delete(store)
            stored = [b"" if r is None else r for r in results]
            self._propagate([b"DEL", store])
            if stored:
                self.list_push(store, stored, False)  # type: ignore[attr-defined]
                self._propagate([b"RPUSH", store, *stored])
            return integer(len(stored))
        return array(results, self.null)

    def _sort_elements(
        self, elements: list[bytes], by: bytes | None, alpha: bool, desc: bool, storing: bool
    ) -> list[bytes]:
        if alpha:
            if by is None:
                return sorted(elements, reverse=desc)
            weights = {e: self._sort_lookup(by, e) for e in elements}
            # A missing weight sorts first; Redis compares the rest byte for byte.
            return sorted(elements, key=lambda e: (weights[e] is not None, weights[e] or b""), reverse=desc)
        scored: list[tuple[float, bytes]] = []
        for element in elements:
            text = element if by is None else self._sort_lookup(by, element)
            weight = 0.0 if text is None else _sort_score(text)
            scored.append((weight, element))
        # Equal scores fall back to the elements' bytes, as Redis does, so the order is defined.
        scored.sort(reverse=desc)
        return [element for _, element in scored]

    def _sort_lookup(self, pattern: bytes, element: bytes) -> bytes | None:
        """BY/GET: the value a pattern names for an element (``#`` is the element, ``->f`` a hash field)."""
        if pattern == b"#":
            return element
        star = pattern.find(b"*")
        if star < 0:
            return None
        field: bytes | None = None
        arrow = pattern.find(b"->", star + 1)
        if arrow >= 0 and arrow + 2 < len(pattern):
            field = pattern[arrow + 2 :]
            pattern = pattern[:arrow]
        name = pattern[:star] + element + pattern[star + 1 :]
        value = self.db.get(name)
        if value is None:
            return None
        if field is not None:
            return value.get(field) if type(value) is dict else None
        return bytes(value) if type(value) is bytes or type(value) is bytearray else None

    @redis_command(
        "SORT",
        arity=-2,
        flags="write denyoom movablekeys",
        keys=[
            KeySpec(("RO", "access"), 1),
            KeySpec(("RO", "access"), None, notes=_SORT_BY_NOTE),
            KeySpec(("OW", "update"), None, notes=_SORT_STORE_NOTE),
        ],
        legacy_keys=(1, 1, 1),
        group="generic",
        acl="-keyspace set sortedset list dangerous",
    )
    def cmd_sort(self, key: bytes, *options: bytes) -> bytes:
        """Sort a list, set or sorted set (BY, LIMIT, GET, ASC/DESC, ALPHA, STORE)."""
        return self._sort(key, options, False)

    @redis_command(
        "SORT_RO",
        arity=-2,
        flags="readonly movablekeys",
        keys=[KeySpec(("RO", "access"), 1), KeySpec(("RO", "access"), None, notes=_SORT_BY_NOTE)],
        legacy_keys=(1, 1, 1),
        group="generic",
        acl="-keyspace set sortedset list dangerous",
    )
    def cmd_sort_ro(self, key: bytes, *options: bytes) -> bytes:
        """SORT without STORE."""
        return self._sort(key, options, True)


def _sort_score(text: bytes) -> float:
    """A SORT weight as strtod reads it whole (blank is 0); otherwise Redis's conversion error."""
    if _SORT_NUMBER.fullmatch(text) is not None:
        value = float(text) if text.strip() else 0.0
        if not math.isinf(value) or text.strip().lstrip(b"+-").lower().startswith(b"inf"):
            return value
    else:
        lowered = text.strip().lstrip(b"+-").lower()
        if lowered in (b"inf", b"infinity"):
            return -math.inf if text.strip().startswith(b"-") else math.inf
    raise RespError("ERR One or more scores can't be converted into double")
