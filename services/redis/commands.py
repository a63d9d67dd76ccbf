"""Data commands (strings, keys, lists, hashes, sets, databases) shared by connections and AOF replay.

The handlers only need ``server``, ``db``, ``dbindex`` and ``argv`` (the
whole command being run), so the same code serves a network connection and
the replay of the append-only file at start.
"""

from __future__ import annotations

import heapq
import random
import re
from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from linechat.service import command
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    INT64_MAX,
    INT64_MIN,
    NIL,
    NIL_ARRAY,
    OK,
    ONE,
    RESP2,
    ZERO,
    Dialect,
    RespError,
    array,
    bulk,
    glob_match,
    integer,
    parse_int,
)
from linechat.services.redis.store import Database, type_name

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["WRITE_COMMANDS", "KeyspaceCommands"]

NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
OVERFLOW = "ERR increment or decrement would overflow"
MAX_STRING = 512 * 1024 * 1024

#: Commands that change data (COMMAND reports them as "write").
WRITE_COMMANDS = frozenset(
    [
        "SET",
        "SETNX",
        "SETEX",
        "PSETEX",
        "GETSET",
        "GETDEL",
        "MSET",
        "MSETNX",
        "APPEND",
        "SETRANGE",
        "INCR",
        "DECR",
        "INCRBY",
        "DECRBY",
        "INCRBYFLOAT",
        "DEL",
        "UNLINK",
        "RENAME",
        "RENAMENX",
        "EXPIRE",
        "PEXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "PERSIST",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "LREM",
        "LTRIM",
        "LSET",
        "HSET",
        "HMSET",
        "HSETNX",
        "HDEL",
        "HINCRBY",
        "SADD",
        "SREM",
        "FLUSHDB",
        "FLUSHALL",
    ]
)

_FLOAT_TEXT = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Redis does INCRBYFLOAT in x87 long double (64-bit mantissa) and prints it
# with "%.17Lf", trailing zeros cut.  Exact fractions rounded to 64 bits give
# the very same digits, artefacts included (10.6 - 5 + 5000 -> 5005.60000000000000009).
_MANTISSA_BITS = 64


def _to_long_double(value: Fraction) -> Fraction:
    """Round *value* to the nearest number with a 64-bit binary mantissa (ties to even)."""
    if value == 0:
        return value
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length() - _MANTISSA_BITS
    while True:
        scaled = magnitude / Fraction(2) ** exponent
        if scaled >= 2**_MANTISSA_BITS:
            exponent += 1
        elif scaled < 2 ** (_MANTISSA_BITS - 1):
            exponent -= 1
        else:
            break
    mantissa = round(scaled)  # round() on a Fraction rounds half to even
    return sign * mantissa * Fraction(2) ** exponent


def _parse_float(value: bytes) -> Fraction:
    if _FLOAT_TEXT.fullmatch(value) is None:
        if value.lower().lstrip(b"+-") in (b"inf", b"infinity"):
            # strtold takes it; any sum with it is infinite or NaN.
            raise RespError("ERR increment would produce NaN or Infinity")
        raise RespError(NOT_FLOAT)
    number = Fraction(value.decode("ascii"))
    if abs(number) > _LONG_DOUBLE_MAX:
        raise RespError(NOT_FLOAT)
    return _to_long_double(number)


def _format_float(value: Fraction) -> bytes:
    digits = str(round(abs(value) * 10**17)).rjust(18, "0")
    text = (digits[:-17] + "." + digits[-17:]).rstrip("0").rstrip(".")
    return (("-" if value < 0 else "") + text).encode("ascii")


_LONG_DOUBLE_MAX = Fraction(2) ** 16384


def _int(value: bytes, message: str = NOT_INTEGER) -> int:
    number = parse_int(value)
    if number is None:
        raise RespError(message)
    return number


def _range(start: int, end: int, length: int) -> tuple[int, int] | None:
    """Normalise a Redis inclusive index range against *length*; None when it is empty."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    if start < 0:
        start = 0
    if start > end or start >= length:
        return None
    if end >= length:
        end = length - 1
    return start, end


class KeyspaceCommands:
    """The data commands; mixed into the connection protocol and the AOF replayer."""

    server: RedisService
    db: Database
    dbindex: int
    argv: list[bytes]
    # Reply shapes of the connection's protocol (RESP2 unless HELLO 3 changed
    # them); the null replies are copied out of the dialect for the hot paths.
    dialect: Dialect = RESP2
    null: bytes = NIL
    null_array: bytes = NIL_ARRAY

    # ------------------------------------------------------------------ helpers

    def _propagate(self, argv: list[bytes] | None = None) -> None:
        """Record the current write (or a rewritten form of it) in the append-only file."""
        # The file is opened after the replay, so no record is made while loading.
        aof = self.server.aof
        if aof is not None:
            aof.append(self.dbindex, self.argv if argv is None else argv)

    def _typed(self, key: bytes, kind: type) -> Any:
        value = self.db.get(key)
        if value is not None and type(value) is not kind:
            raise RespError(WRONGTYPE)
        return value

    def _deadline(self, amount: bytes, unit_ms: int, absolute: bool, name: str) -> int:
        """Turn an EX/PX/EXAT/PXAT style argument into an absolute deadline in ms."""
        number = _int(amount)
        invalid = f"ERR invalid expire time in '{name}' command"
        if unit_ms == 1000 and (number > INT64_MAX // 1000 or number < INT64_MIN // 1000):
            raise RespError(invalid)
        number *= unit_ms
        if not absolute:
            number += self.server.now_ms()
            if number > INT64_MAX:
                raise RespError(invalid)
        return number

    # ------------------------------------------------------------------ databases

    @command("SELECT")
    def cmd_select(self, index: bytes) -> bytes:
        """Change the selected database."""
        number = _int(index)
        if not 0 <= number < len(self.server.dbs):
            raise RespError("ERR DB index is out of range")
        self.dbindex = number
        self.db = self.server.dbs[number]
        return OK

    @command("DBSIZE")
    def cmd_dbsize(self) -> bytes:
        """Number of keys in the selected database."""
        return integer(len(self.db))

    def _flush_mode(self, args: tuple[bytes, ...]) -> None:
        if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
            raise RespError(SYNTAX)

    @command("FLUSHDB")
    def cmd_flushdb(self, *args: bytes) -> bytes:
        """Remove every key of the selected database."""
        self._flush_mode(args)
        self.db.clear()
        self._propagate([b"FLUSHDB"])
        return OK

    @command("FLUSHALL")
    def cmd_flushall(self, *args: bytes) -> bytes:
        """Remove every key of every database."""
        self._flush_mode(args)
        for db in self.server.dbs:
            db.clear()
        self._propagate([b"FLUSHALL"])
        return OK

    # ------------------------------------------------------------------ strings

    @command("GET")
    def cmd_get(self, key: bytes) -> bytes:
        """Value of a string key."""
        value = self.db.get(key)
        if value is None:
            return self.null
        if type(value) is not bytes:
            raise RespError(WRONGTYPE)
        return b"$%d\r\n%s\r\n" % (len(value), value)

    @command("SET")
    def cmd_set(self, key: bytes, value: bytes, *options: bytes) -> bytes:
        """Set a string, with EX/PX/EXAT/PXAT/KEEPTTL, NX/XX and GET."""
        db = self.db
        if not options:
            db.data[key] = value
            if db.expires:
                db.persist(key)
            if self.server.aof is not None:
                self._propagate()
            return OK
        condition = b""
        get = keep_ttl = False
        expiry: tuple[bytes, bytes] | None = None
        i = 0
        while i < len(options):
            opt = options[i].upper()
            if opt in (b"NX", b"XX"):
                if condition and condition != opt:
                    raise RespError(SYNTAX)
                condition = opt
            elif opt == b"GET":
                get = True
            elif opt == b"KEEPTTL":
                if expiry is not None:
                    raise RespError(SYNTAX)
                keep_ttl = True
            elif opt in (b"EX", b"PX", b"EXAT", b"PXAT"):
                if keep_ttl or (expiry is not None and expiry[0] != opt) or i + 1 >= len(options):
                    raise RespError(SYNTAX)
                i += 1
                expiry = (opt, options[i])
            else:
                raise RespError(SYNTAX)
            i += 1
        deadline: int | None = None
        if expiry is not None:
            # Like Redis: the options are checked first, the expire value after.
            opt, amount = expiry
            if _int(amount) <= 0:
                raise RespError("ERR invalid expire time in 'set' command")
            unit = 1000 if opt in (b"EX", b"EXAT") else 1
            deadline = self._deadline(amount, unit, opt.endswith(b"AT"), "set")
        old = db.get(key)
        if get and old is not None and type(old) is not bytes:
            raise RespError(WRONGTYPE)
        if (condition == b"NX" and old is not None) or (condition == b"XX" and old is None):
            return bulk(old, self.null) if get else self.null
        db.set(key, value, keep_ttl=keep_ttl)
        record = [b"SET", key, value]
        if deadline is not None:
            db.set_deadline(key, deadline)
            record += [b"PXAT", b"%d" % deadline]
        elif keep_ttl:
            record.append(b"KEEPTTL")
        self._propagate(record)
        return bulk(old, self.null) if get else OK

    @command("SETNX")
    def cmd_setnx(self, key: bytes, value: bytes) -> bytes:
        """Set a string only if the key does not exist."""
        if self.db.get(key) is not None:
            return ZERO
        self.db.set(key, value)
        self._propagate([b"SET", key, value])
        return ONE

    def _setex(self, key: bytes, amount: bytes, value: bytes, unit: int, name: str) -> bytes:
        if _int(amount) <= 0:
            raise RespError(f"ERR invalid expire time in '{name}' command")
        deadline = self._deadline(amount, unit, False, name)
        self.db.set(key, value)
        self.db.set_deadline(key, deadline)
        self._propagate([b"SET", key, value, b"PXAT", b"%d" % deadline])
        return OK

    @command("SETEX")
    def cmd_setex(self, key: bytes, seconds: bytes, value: bytes) -> bytes:
        """Set a string that expires in some seconds."""
        return self._setex(key, seconds, value, 1000, "setex")

    @command("PSETEX")
    def cmd_psetex(self, key: bytes, milliseconds: bytes, value: bytes) -> bytes:
        """Set a string that expires in some milliseconds."""
        return self._setex(key, milliseconds, value, 1, "psetex")

    @command("GETSET")
    def cmd_getset(self, key: bytes, value: bytes) -> bytes:
        """Set a string and return the old value."""
        old = self._typed(key, bytes)
        self.db.set(key, value)
        self._propagate([b"SET", key, value])
        return bulk(old, self.null)

    @command("GETDEL")
    def cmd_getdel(self, key: bytes) -> bytes:
        """Return a string and delete its key."""
        old = self._typed(key, bytes)
        if old is not None:
            self.db.delete(key)
            self._propagate([b"DEL", key])
        return bulk(old, self.null)

    @command("MGET")
    def cmd_mget(self, key: bytes, *keys: bytes) -> bytes:
        """Values of several string keys (nil for missing or non-string)."""
        get = self.db.get
        values = []
        for k in (key, *keys):
            value = get(k)
            values.append(value if type(value) is bytes else None)
        return array(values, self.null)

    @command("MSET")
    def cmd_mset(self, key: bytes, value: bytes, *pairs: bytes) -> bytes:
        """Set several strings."""
        if len(pairs) % 2:
            raise RespError("ERR wrong number of arguments for 'mset' command")
        args = (key, value, *pairs)
        for i in range(0, len(args), 2):
            self.db.set(args[i], args[i + 1])
        self._propagate()
        return OK

    @command("MSETNX")
    def cmd_msetnx(self, key: bytes, value: bytes, *pairs: bytes) -> bytes:
        """Set several strings only if none of the keys exists."""
        if len(pairs) % 2:
            raise RespError("ERR wrong number of arguments for 'msetnx' command")
        args = (key, value, *pairs)
        if any(self.db.get(args[i]) is not None for i in range(0, len(args), 2)):
            return ZERO
        for i in range(0, len(args), 2):
            self.db.set(args[i], args[i + 1])
        self._propagate()
        return ONE

    @command("APPEND")
    def cmd_append(self, key: bytes, value: bytes) -> bytes:
        """Append to a string; return the new length."""
        old = self._typed(key, bytes)
        new = value if old is None else old + value
        if len(new) > MAX_STRING:
            raise RespError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        self.db.set(key, new, keep_ttl=True)
        self._propagate()
        return integer(len(new))

    @command("STRLEN")
    def cmd_strlen(self, key: bytes) -> bytes:
        """Length of a string."""
        value = self._typed(key, bytes)
        return integer(0 if value is None else len(value))

    @command("GETRANGE", "SUBSTR")
    def cmd_getrange(self, key: bytes, start: bytes, end: bytes) -> bytes:
        """A substring, by inclusive indexes (negative from the end)."""
        first, last = _int(start), _int(end)
        value = self._typed(key, bytes)
        if value is None or (first < 0 and last < 0 and first > last):
            return b"$0\r\n\r\n"
        span = _range(first, last, len(value))
        return b"$0\r\n\r\n" if span is None else bulk(value[span[0] : span[1] + 1])

    @command("SETRANGE")
    def cmd_setrange(self, key: bytes, offset: bytes, value: bytes) -> bytes:
        """Overwrite part of a string at an offset, padding with zero bytes."""
        where = _int(offset)
        if where < 0:
            raise RespError("ERR offset is out of range")
        old = self._typed(key, bytes)
        if not value:
            return integer(0 if old is None else len(old))
        if where + len(value) > MAX_STRING:
            raise RespError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        base = old or b""
        if len(base) < where:
            base += b"\0" * (where - len(base))
        new = base[:where] + value + base[where + len(value) :]
        self.db.set(key, new, keep_ttl=True)
        self._propagate()
        return integer(len(new))

    def _incr(self, key: bytes, delta: int) -> bytes:
        old = self._typed(key, bytes)
        current = 0 if old is None else _int(old)
        result = current + delta
        if result > INT64_MAX or result < INT64_MIN:
            raise RespError(OVERFLOW)
        self.db.set(key, b"%d" % result, keep_ttl=True)
        self._propagate()
        return integer(result)

    @command("INCR")
    def cmd_incr(self, key: bytes) -> bytes:
        """Add one to an integer string."""
        return self._incr(key, 1)

    @command("DECR")
    def cmd_decr(self, key: bytes) -> bytes:
        """Subtract one from an integer string."""
        return self._incr(key, -1)

    @command("INCRBY")
    def cmd_incrby(self, key: bytes, increment: bytes) -> bytes:
        """Add to an integer string."""
        return self._incr(key, _int(increment))

    @command("DECRBY")
    def cmd_decrby(self, key: bytes, decrement: bytes) -> bytes:
        """Subtract from an integer string."""
        amount = _int(decrement)
        if amount == INT64_MIN:
            raise RespError("ERR decrement would overflow")
        return self._incr(key, -amount)

    @command("INCRBYFLOAT")
    def cmd_incrbyfloat(self, key: bytes, increment: bytes) -> bytes:
        """Add a decimal number to a numeric string."""
        old = self._typed(key, bytes)
        current = Fraction(0) if old is None else _parse_float(old)
        result = _to_long_double(current + _parse_float(increment))
        if abs(result) > _LONG_DOUBLE_MAX:
            raise RespError("ERR increment would produce NaN or Infinity")
        text = _format_float(result)
        self.db.set(key, text, keep_ttl=True)
        # Replay must not depend on float arithmetic: record the result.
        self._propagate([b"SET", key, text, b"KEEPTTL"])
        return bulk(text)

    # ------------------------------------------------------------------ keys

    @command("DEL", "UNLINK")
    def cmd_del(self, key: bytes, *keys: bytes) -> bytes:
        """Delete keys; return how many existed."""
        delete = self.db.delete
        removed = [k for k in (key, *keys) if delete(k)]
        if removed:
            self._propagate([b"DEL", *removed])
        return integer(len(removed))

    @command("EXISTS")
    def cmd_exists(self, key: bytes, *keys: bytes) -> bytes:
        """Count the given keys that exist (repeats count again)."""
        get = self.db.get
        return integer(sum(1 for k in (key, *keys) if get(k) is not None))

    @command("TYPE")
    def cmd_type(self, key: bytes) -> bytes:
        """Type of the value at a key."""
        return b"+%s\r\n" % type_name(self.db.get(key))

    @command("KEYS")
    def cmd_keys(self, pattern: bytes) -> bytes:
        """Keys matching a glob pattern."""
        return array([k for k in self.db.live_keys() if glob_match(pattern, k)])

    @command("SCAN")
    def cmd_scan(self, cursor: bytes, *options: bytes) -> bytes:
        """Iterate over keys with a cursor (MATCH, COUNT, TYPE)."""
        if not cursor.isdigit():
            raise RespError("ERR invalid cursor")
        start = int(cursor)
        pattern: bytes | None = None
        kind: bytes | None = None
        count = 10
        if len(options) % 2:
            raise RespError(SYNTAX)
        for i in range(0, len(options), 2):
            opt, arg = options[i].upper(), options[i + 1]
            if opt == b"MATCH":
                pattern = arg
            elif opt == b"COUNT":
                count = _int(arg)
                if count < 1:
                    raise RespError(SYNTAX)
            elif opt == b"TYPE":
                kind = arg.lower()
            else:
                raise RespError(SYNTAX)
        # The cursor is a position in an order fixed by each key's hash, so a
        # key present for the whole iteration is returned exactly once
        # whatever is added or removed meanwhile.
        ranked = [(hash(k) & 0xFFFFFFFF, k) for k in self.db.data]
        batch = heapq.nsmallest(count, ((h, k) for h, k in ranked if h >= start))
        if not batch:
            return b"*2\r\n$1\r\n0\r\n*0\r\n"
        last = batch[-1][0]
        batch += [(h, k) for h, k in ranked if h == last and (h, k) not in batch]
        more = any(h > last for h, _ in ranked)
        keys = []
        for _, k in batch:
            value = self.db.get(k)
            if value is None:
                continue
            if pattern is not None and not glob_match(pattern, k):
                continue
            if kind is not None and type_name(value) != kind:
                continue
            keys.append(k)
        return b"*2\r\n" + bulk(b"%d" % (last + 1) if more else b"0") + array(keys)

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

    @command("RENAME")
    def cmd_rename(self, source: bytes, target: bytes) -> bytes:
        """Rename a key (its deadline moves with it)."""
        return self._rename(source, target, False)

    @command("RENAMENX")
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

    @command("EXPIRE")
    def cmd_expire(self, key: bytes, seconds: bytes, *flags: bytes) -> bytes:
        """Set a key's time to live in seconds."""
        return self._expire(key, seconds, 1000, False, "expire", flags)

    @command("PEXPIRE")
    def cmd_pexpire(self, key: bytes, milliseconds: bytes, *flags: bytes) -> bytes:
        """Set a key's time to live in milliseconds."""
        return self._expire(key, milliseconds, 1, False, "pexpire", flags)

    @command("EXPIREAT")
    def cmd_expireat(self, key: bytes, timestamp: bytes, *flags: bytes) -> bytes:
        """Set a key's deadline as a Unix time in seconds."""
        return self._expire(key, timestamp, 1000, True, "expireat", flags)

    @command("PEXPIREAT")
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

    @command("TTL")
    def cmd_ttl(self, key: bytes) -> bytes:
        """Seconds a key has left to live (-1: no deadline, -2: no key)."""
        ms = self._ttl(key)
        return integer(ms if ms < 0 else (ms + 500) // 1000)

    @command("PTTL")
    def cmd_pttl(self, key: bytes) -> bytes:
        """Milliseconds a key has left to live (-1: no deadline, -2: no key)."""
        return integer(self._ttl(key))

    @command("PERSIST")
    def cmd_persist(self, key: bytes) -> bytes:
        """Remove a key's deadline."""
        if self.db.get(key) is None or not self.db.persist(key):
            return ZERO
        self._propagate()
        return ONE

    @command("RANDOMKEY")
    def cmd_randomkey(self) -> bytes:
        """A random existing key."""
        db = self.db
        for _ in range(100):
            if not db.data:
                return self.null
            key = random.choice(list(db.data))
            if db.get(key) is not None:
                return bulk(key)
        return self.null

    # ------------------------------------------------------------------ lists

    def _push(self, key: bytes, values: tuple[bytes, ...], left: bool) -> bytes:
        items = self._typed(key, deque)
        if items is None:
            items = deque()
            self.db.set(key, items)
        if left:
            items.extendleft(values)
        else:
            items.extend(values)
        self._propagate()
        return integer(len(items))

    @command("LPUSH")
    def cmd_lpush(self, key: bytes, value: bytes, *values: bytes) -> bytes:
        """Prepend elements to a list."""
        return self._push(key, (value, *values), True)

    @command("RPUSH")
    def cmd_rpush(self, key: bytes, value: bytes, *values: bytes) -> bytes:
        """Append elements to a list."""
        return self._push(key, (value, *values), False)

    def _pop(self, key: bytes, count: bytes | None, left: bool) -> bytes:
        wanted = None
        if count is not None:
            wanted = parse_int(count)
            if wanted is None or wanted < 0:
                raise RespError("ERR value is out of range, must be positive")
        items = self._typed(key, deque)
        if items is None:
            return self.null if wanted is None else self.null_array
        pop = items.popleft if left else items.pop
        if wanted is None:
            value = pop()
            popped = [value]
        else:
            popped = [pop() for _ in range(min(wanted, len(items)))]
        if not items:
            self.db.delete(key)
        if popped:
            self._propagate()
        return bulk(popped[0]) if wanted is None else array(popped)

    @command("LPOP")
    def cmd_lpop(self, key: bytes, count: bytes | None = None) -> bytes:
        """Remove and return the first element(s) of a list."""
        return self._pop(key, count, True)

    @command("RPOP")
    def cmd_rpop(self, key: bytes, count: bytes | None = None) -> bytes:
        """Remove and return the last element(s) of a list."""
        return self._pop(key, count, False)

    @command("LLEN")
    def cmd_llen(self, key: bytes) -> bytes:
        """Length of a list."""
        items = self._typed(key, deque)
        return integer(0 if items is None else len(items))

    @command("LRANGE")
    def cmd_lrange(self, key: bytes, start: bytes, stop: bytes) -> bytes:
        """Elements of a list between two inclusive indexes."""
        first, last = _int(start), _int(stop)
        items = self._typed(key, deque)
        if items is None:
            return EMPTY_ARRAY
        span = _range(first, last, len(items))
        if span is None:
            return EMPTY_ARRAY
        if span[0] == 0 and span[1] == len(items) - 1:
            return array(items)
        return array([items[i] for i in range(span[0], span[1] + 1)])

    @command("LINDEX")
    def cmd_lindex(self, key: bytes, index: bytes) -> bytes:
        """The element at an index of a list."""
        where = _int(index)
        items = self._typed(key, deque)
        if items is None:
            return self.null
        if where < 0:
            where += len(items)
        if not 0 <= where < len(items):
            return self.null
        return bulk(items[where])

    @command("LSET")
    def cmd_lset(self, key: bytes, index: bytes, value: bytes) -> bytes:
        """Replace the element at an index of a list."""
        where = _int(index)
        items = self._typed(key, deque)
        if items is None:
            raise RespError("ERR no such key")
        if where < 0:
            where += len(items)
        if not 0 <= where < len(items):
            raise RespError("ERR index out of range")
        items[where] = value
        self._propagate()
        return OK

    @command("LREM")
    def cmd_lrem(self, key: bytes, count: bytes, value: bytes) -> bytes:
        """Remove occurrences of an element (count > 0 from the head, < 0 from the tail, 0 all)."""
        limit = _int(count)
        items = self._typed(key, deque)
        if items is None:
            return ZERO
        ordered = list(items) if limit >= 0 else list(reversed(items))
        kept: list[bytes] = []
        removed = 0
        for item in ordered:
            if item == value and (limit == 0 or removed < abs(limit)):
                removed += 1
            else:
                kept.append(item)
        if removed:
            if limit < 0:
                kept.reverse()
            items.clear()
            items.extend(kept)
            if not items:
                self.db.delete(key)
            self._propagate()
        return integer(removed)

    @command("LTRIM")
    def cmd_ltrim(self, key: bytes, start: bytes, stop: bytes) -> bytes:
        """Keep only the elements between two inclusive indexes."""
        first, last = _int(start), _int(stop)
        items = self._typed(key, deque)
        if items is None:
            return OK
        span = _range(first, last, len(items))
        if span is None:
            self.db.delete(key)
        else:
            kept = [items[i] for i in range(span[0], span[1] + 1)]
            items.clear()
            items.extend(kept)
        self._propagate()
        return OK

    # ------------------------------------------------------------------ hashes

    @command("HSET", "HMSET")
    def cmd_hset(self, key: bytes, field: bytes, value: bytes, *pairs: bytes) -> bytes:
        """Set hash fields; HSET returns how many were new, HMSET says OK."""
        name = self.argv[0].lower().decode("latin-1")
        if len(pairs) % 2:
            raise RespError(f"ERR wrong number of arguments for '{name}' command")
        fields = self._typed(key, dict)
        if fields is None:
            fields = {}
            self.db.set(key, fields)
        args = (field, value, *pairs)
        added = 0
        for i in range(0, len(args), 2):
            if args[i] not in fields:
                added += 1
            fields[args[i]] = args[i + 1]
        self._propagate()
        return OK if name == "hmset" else integer(added)

    @command("HSETNX")
    def cmd_hsetnx(self, key: bytes, field: bytes, value: bytes) -> bytes:
        """Set a hash field only if it does not exist."""
        fields = self._typed(key, dict)
        if fields is not None and field in fields:
            return ZERO
        if fields is None:
            fields = {}
            self.db.set(key, fields)
        fields[field] = value
        self._propagate()
        return ONE

    @command("HGET")
    def cmd_hget(self, key: bytes, field: bytes) -> bytes:
        """Value of a hash field."""
        fields = self._typed(key, dict)
        return self.null if fields is None else bulk(fields.get(field), self.null)

    @command("HMGET")
    def cmd_hmget(self, key: bytes, field: bytes, *more: bytes) -> bytes:
        """Values of several hash fields."""
        fields = self._typed(key, dict) or {}
        return array([fields.get(f) for f in (field, *more)], self.null)

    @command("HDEL")
    def cmd_hdel(self, key: bytes, field: bytes, *more: bytes) -> bytes:
        """Delete hash fields; return how many existed."""
        fields = self._typed(key, dict)
        if fields is None:
            return ZERO
        removed = 0
        for f in (field, *more):
            if fields.pop(f, None) is not None:
                removed += 1
        if not fields:
            self.db.delete(key)
        if removed:
            self._propagate()
        return integer(removed)

    @command("HGETALL")
    def cmd_hgetall(self, key: bytes) -> bytes:
        """Every field and value of a hash."""
        fields = self._typed(key, dict) or {}
        return self.dialect.map_reply([item for pair in fields.items() for item in pair])

    @command("HLEN")
    def cmd_hlen(self, key: bytes) -> bytes:
        """Number of fields in a hash."""
        return integer(len(self._typed(key, dict) or ()))

    @command("HEXISTS")
    def cmd_hexists(self, key: bytes, field: bytes) -> bytes:
        """Whether a hash field exists."""
        fields = self._typed(key, dict)
        return ONE if fields is not None and field in fields else ZERO

    @command("HINCRBY")
    def cmd_hincrby(self, key: bytes, field: bytes, increment: bytes) -> bytes:
        """Add to an integer hash field."""
        delta = _int(increment)
        fields = self._typed(key, dict)
        old = None if fields is None else fields.get(field)
        current = 0 if old is None else _int(old, "ERR hash value is not an integer")
        result = current + delta
        if result > INT64_MAX or result < INT64_MIN:
            raise RespError(OVERFLOW)
        if fields is None:
            fields = {}
            self.db.set(key, fields)
        fields[field] = b"%d" % result
        self._propagate()
        return integer(result)

    @command("HKEYS")
    def cmd_hkeys(self, key: bytes) -> bytes:
        """Field names of a hash."""
        return array(list(self._typed(key, dict) or ()))

    @command("HVALS")
    def cmd_hvals(self, key: bytes) -> bytes:
        """Values of a hash."""
        return array(list((self._typed(key, dict) or {}).values()))

    # ------------------------------------------------------------------ sets

    @command("SADD")
    def cmd_sadd(self, key: bytes, member: bytes, *more: bytes) -> bytes:
        """Add members to a set; return how many were new."""
        members = self._typed(key, set)
        if members is None:
            members = set()
            self.db.set(key, members)
        before = len(members)
        members.update((member, *more))
        added = len(members) - before
        if added:
            self._propagate()
        return integer(added)

    @command("SREM")
    def cmd_srem(self, key: bytes, member: bytes, *more: bytes) -> bytes:
        """Remove members from a set; return how many were there."""
        members = self._typed(key, set)
        if members is None:
            return ZERO
        before = len(members)
        members.difference_update((member, *more))
        removed = before - len(members)
        if not members:
            self.db.delete(key)
        if removed:
            self._propagate()
        return integer(removed)

    @command("SMEMBERS")
    def cmd_smembers(self, key: bytes) -> bytes:
        """Every member of a set."""
        return self.dialect.set_reply(self._typed(key, set) or ())

    @command("SISMEMBER")
    def cmd_sismember(self, key: bytes, member: bytes) -> bytes:
        """Whether a value is a member of a set."""
        members = self._typed(key, set)
        return ONE if members is not None and member in members else ZERO

    @command("SCARD")
    def cmd_scard(self, key: bytes) -> bytes:
        """Number of members in a set."""
        return integer(len(self._typed(key, set) or ()))
