"""Strings: GET, SET and the other commands on string values (Redis's t_string.c)."""

from __future__ import annotations

from fractions import Fraction

from linechat.services.redis.base import (
    LONG_DOUBLE_MAX,
    MAX_STRING,
    OVERFLOW,
    SYNTAX,
    WRONGTYPE,
    CommandContext,
    format_long_double,
    index_range,
    int_arg,
    parse_long_double,
    to_long_double,
)
from linechat.services.redis.resp import (
    INT64_MAX,
    INT64_MIN,
    OK,
    ONE,
    ZERO,
    RespError,
    array,
    bulk,
    integer,
)
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["StringCommands"]


class StringCommands(CommandContext):
    """The string commands."""

    @redis_command("GET", arity=2, flags="readonly fast", keys=(1, 1, 1), group="string")
    def cmd_get(self, key: bytes) -> bytes:
        """Value of a string key."""
        value = self.db.get(key)
        if value is None:
            return self.null
        if type(value) is not bytes and type(value) is not bytearray:
            raise RespError(WRONGTYPE)
        return b"$%d\r\n%s\r\n" % (len(value), value)

    @redis_command(
        "SET",
        arity=-3,
        flags="write denyoom",
        keys=[
            KeySpec(
                ("RW", "access", "update", "variable_flags"),
                1,
                notes="RW and ACCESS due to the optional `GET` argument",
            )
        ],
        group="string",
    )
    def cmd_set(self, key: bytes, value: bytes, *options: bytes) -> bytes:
        """Set a string, with EX/PX/EXAT/PXAT/KEEPTTL, NX/XX and GET."""
        db = self.db
        if not options:
            db.data[key] = value
            if db.expires:
                db.persist(key)
            if self.server.propagating:
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
            if int_arg(amount) <= 0:
                raise RespError("ERR invalid expire time in 'set' command")
            unit = 1000 if opt in (b"EX", b"EXAT") else 1
            deadline = self._deadline(amount, unit, opt.endswith(b"AT"), "set")
        old = db.get(key)
        if get and old is not None and type(old) is not bytes and type(old) is not bytearray:
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

    @redis_command("SETNX", arity=3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="OW insert", group="string")
    def cmd_setnx(self, key: bytes, value: bytes) -> bytes:
        """Set a string only if the key does not exist."""
        if self.db.get(key) is not None:
            return ZERO
        self.db.set(key, value)
        self._propagate([b"SET", key, value])
        return ONE

    def _setex(self, key: bytes, amount: bytes, value: bytes, unit: int, name: str) -> bytes:
        if int_arg(amount) <= 0:
            raise RespError(f"ERR invalid expire time in '{name}' command")
        deadline = self._deadline(amount, unit, False, name)
        self.db.set(key, value)
        self.db.set_deadline(key, deadline)
        self._propagate([b"SET", key, value, b"PXAT", b"%d" % deadline])
        return OK

    @redis_command("SETEX", arity=4, flags="write denyoom", keys=(1, 1, 1), key_flags="OW update", group="string")
    def cmd_setex(self, key: bytes, seconds: bytes, value: bytes) -> bytes:
        """Set a string that expires in some seconds."""
        return self._setex(key, seconds, value, 1000, "setex")

    @redis_command("PSETEX", arity=4, flags="write denyoom", keys=(1, 1, 1), key_flags="OW update", group="string")
    def cmd_psetex(self, key: bytes, milliseconds: bytes, value: bytes) -> bytes:
        """Set a string that expires in some milliseconds."""
        return self._setex(key, milliseconds, value, 1, "psetex")

    @redis_command("GETSET", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
    def cmd_getset(self, key: bytes, value: bytes) -> bytes:
        """Set a string and return the old value."""
        old = self._typed(key, bytes)
        self.db.set(key, value)
        self._propagate([b"SET", key, value])
        return bulk(old, self.null)

    @redis_command("GETDEL", arity=2, flags="write fast", keys=(1, 1, 1), key_flags="RW access delete", group="string")
    def cmd_getdel(self, key: bytes) -> bytes:
        """Return a string and delete its key."""
        old = self._typed(key, bytes)
        if old is not None:
            self.db.delete(key)
            self._propagate([b"DEL", key])
        return bulk(old, self.null)

    @redis_command(
        "MGET", arity=-2, flags="readonly fast", keys=(1, -1, 1), group="string", tips="request_policy:multi_shard"
    )
    def cmd_mget(self, key: bytes, *keys: bytes) -> bytes:
        """Values of several string keys (nil for missing or non-string)."""
        get = self.db.get
        values = []
        for k in (key, *keys):
            value = get(k)
            values.append(value if type(value) is bytes or type(value) is bytearray else None)
        return array(values, self.null)

    @redis_command(
        "MSET",
        arity=-3,
        flags="write denyoom",
        keys=(1, -1, 2),
        key_flags="OW update",
        group="string",
        tips="request_policy:multi_shard response_policy:all_succeeded",
    )
    def cmd_mset(self, key: bytes, value: bytes, *pairs: bytes) -> bytes:
        """Set several strings."""
        if len(pairs) % 2:
            raise RespError("ERR wrong number of arguments for 'mset' command")
        args = (key, value, *pairs)
        for i in range(0, len(args), 2):
            self.db.set(args[i], args[i + 1])
        self._propagate()
        return OK

    @redis_command(
        "MSETNX",
        arity=-3,
        flags="write denyoom",
        keys=(1, -1, 2),
        key_flags="OW insert",
        group="string",
        tips="request_policy:multi_shard response_policy:agg_min",
    )
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

    @redis_command("APPEND", arity=3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="string")
    def cmd_append(self, key: bytes, value: bytes) -> bytes:
        """Append to a string; return the new length."""
        old = self._typed(key, bytes)
        new = value if old is None else old + value
        if len(new) > MAX_STRING:
            raise RespError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        self.db.set(key, new, keep_ttl=True)
        self._propagate()
        return integer(len(new))

    @redis_command("STRLEN", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="string")
    def cmd_strlen(self, key: bytes) -> bytes:
        """Length of a string."""
        value = self._typed(key, bytes)
        return integer(0 if value is None else len(value))

    @redis_command("GETRANGE", arity=4, flags="readonly", keys=(1, 1, 1), group="string")
    @redis_command("SUBSTR", arity=4, flags="readonly", keys=(1, 1, 1), group="string")
    def cmd_getrange(self, key: bytes, start: bytes, end: bytes) -> bytes:
        """A substring, by inclusive indexes (negative from the end)."""
        first, last = int_arg(start), int_arg(end)
        value = self._typed(key, bytes)
        if value is None or (first < 0 and last < 0 and first > last):
            return b"$0\r\n\r\n"
        span = index_range(first, last, len(value))
        return b"$0\r\n\r\n" if span is None else bulk(value[span[0] : span[1] + 1])

    @redis_command("SETRANGE", arity=4, flags="write denyoom", keys=(1, 1, 1), key_flags="RW update", group="string")
    def cmd_setrange(self, key: bytes, offset: bytes, value: bytes) -> bytes:
        """Overwrite part of a string at an offset, padding with zero bytes."""
        where = int_arg(offset)
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
        current = 0 if old is None else int_arg(old)
        result = current + delta
        if result > INT64_MAX or result < INT64_MIN:
            raise RespError(OVERFLOW)
        self.db.set(key, b"%d" % result, keep_ttl=True)
        self._propagate()
        return integer(result)

    @redis_command("INCR", arity=2, flags="write denyoom fast", keys=(1, 1, 1), group="string")
    def cmd_incr(self, key: bytes) -> bytes:
        """Add one to an integer string."""
        return self._incr(key, 1)

    @redis_command("DECR", arity=2, flags="write denyoom fast", keys=(1, 1, 1), group="string")
    def cmd_decr(self, key: bytes) -> bytes:
        """Subtract one from an integer string."""
        return self._incr(key, -1)

    @redis_command("INCRBY", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
    def cmd_incrby(self, key: bytes, increment: bytes) -> bytes:
        """Add to an integer string."""
        return self._incr(key, int_arg(increment))

    @redis_command("DECRBY", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
    def cmd_decrby(self, key: bytes, decrement: bytes) -> bytes:
        """Subtract from an integer string."""
        amount = int_arg(decrement)
        if amount == INT64_MIN:
            raise RespError("ERR decrement would overflow")
        return self._incr(key, -amount)

    @redis_command("INCRBYFLOAT", arity=3, flags="write denyoom fast", keys=(1, 1, 1), group="string")
    def cmd_incrbyfloat(self, key: bytes, increment: bytes) -> bytes:
        """Add a decimal number to a numeric string."""
        old = self._typed(key, bytes)
        current = Fraction(0) if old is None else parse_long_double(old)
        result = to_long_double(current + parse_long_double(increment))
        if abs(result) > LONG_DOUBLE_MAX:
            raise RespError("ERR increment would produce NaN or Infinity")
        text = format_long_double(result)
        self.db.set(key, text, keep_ttl=True)
        # Replay must not depend on float arithmetic: record the result.
        self._propagate([b"SET", key, text, b"KEEPTTL"])
        return bulk(text)

    @redis_command(
        "GETEX",
        arity=-2,
        flags="write fast",
        keys=[KeySpec(("RW", "access", "update"), 1, notes="RW and UPDATE because it changes the TTL")],
        group="string",
    )
    def cmd_getex(self, key: bytes, *options: bytes) -> bytes:
        """Return a string and set (EX, PX, EXAT, PXAT) or remove (PERSIST) its time to live."""
        unit = b""
        amount = b""
        persist = False
        i = 0
        while i < len(options):
            opt = options[i].upper()
            more = i + 1 < len(options)
            if opt == b"PERSIST" and not unit:
                persist = True
            elif opt in (b"EX", b"PX", b"EXAT", b"PXAT") and not persist and unit in (b"", opt) and more:
                unit, amount = opt, options[i + 1]
                i += 1
            else:
                raise RespError(SYNTAX)
            i += 1
        db = self.db
        value = self._typed(key, bytes)
        if value is None:
            return self.null
        reply = bulk(value)
        if unit:
            number = int_arg(amount)
            invalid = "ERR invalid expire time in 'getex' command"
            seconds = unit in (b"EX", b"EXAT")
            if number <= 0 or (seconds and number > INT64_MAX // 1000):
                raise RespError(invalid)
            deadline = number * (1000 if seconds else 1)
            if not unit.endswith(b"AT"):
                deadline += self.server.now_ms()
                if deadline > INT64_MAX:
                    raise RespError(invalid)
            elif deadline <= self.server.now_ms():
                db.delete(key)  # an absolute time already past: the key goes (recorded as its deletion)
                self._propagate([b"DEL", key])
                return reply
            db.set_deadline(key, deadline)
            self._propagate([b"PEXPIREAT", key, b"%d" % deadline])
        elif persist and db.persist(key):
            self._propagate([b"PERSIST", key])
        return reply

    @redis_command("LCS", arity=-3, flags="readonly", keys=(1, 2, 1), group="string")
    def cmd_lcs(self, key1: bytes, key2: bytes, *options: bytes) -> bytes:
        """Longest common subsequence of two strings: the string, its LEN, or its matching IDX ranges."""
        texts = []
        for key in (key1, key2):
            value = self.db.get(key)
            if value is not None and type(value) is not bytes and type(value) is not bytearray:
                raise RespError("ERR The specified keys must contain string values")
            texts.append(bytes(value) if value else b"")
        getidx = getlen = withmatchlen = False
        minmatchlen = 0
        i = 0
        while i < len(options):
            opt = options[i].upper()
            if opt == b"IDX":
                getidx = True
            elif opt == b"LEN":
                getlen = True
            elif opt == b"WITHMATCHLEN":
                withmatchlen = True
            elif opt == b"MINMATCHLEN" and i + 1 < len(options):
                minmatchlen = max(0, int_arg(options[i + 1]))
                i += 1
            else:
                raise RespError(SYNTAX)
            i += 1
        if getidx and getlen:
            raise RespError("ERR If you want both the length and indexes, please just use IDX.")
        a, b = texts
        # Redis builds a table of (len(a)+1) * (len(b)+1) 32-bit counters and refuses past proto-max-bulk-len;
        # the same inputs are refused here (the bit-parallel rows below take a 32nd of that).
        if 4 * (len(a) + 1) * (len(b) + 1) > self.server.settings.max_bulk_len:
            raise RespError("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        table = LcsTable(a, b)
        if getlen:
            return integer(table.length)
        result, ranges = table.walk(minmatchlen)
        if not getidx:
            return bulk(result)
        out = [self.dialect.map_header(2), bulk(b"matches"), b"*%d\r\n" % len(ranges)]
        for (a_start, a_end), (b_start, b_end) in ranges:
            out.append(
                b"*%d\r\n*2\r\n:%d\r\n:%d\r\n*2\r\n:%d\r\n:%d\r\n" % (2 + withmatchlen, a_start, a_end, b_start, b_end)
            )
            if withmatchlen:
                out.append(integer(a_end - a_start + 1))
        out += [bulk(b"len"), integer(table.length)]
        return b"".join(out)


class LcsTable:
    """The LCS lengths of every pair of prefixes of two strings, one bit vector per prefix of the first.

    Row ``i`` is Hyyrö's bit-parallel vector for ``a[:i]`` against ``b``:
    bit ``j`` is clear when ``LCS(a[:i], b[:j+1])`` is one more than
    ``LCS(a[:i], b[:j])``, so ``LCS(i, j)`` is the number of clear bits among
    the low ``j``.  A row costs a few big-integer operations, and the table
    ``len(a) * len(b) / 8`` bytes.
    """

    def __init__(self, a: bytes, b: bytes) -> None:
        self.a, self.b = a, b
        width = len(b)
        self.mask = (1 << width) - 1
        positions: dict[int, int] = {}
        for j, byte in enumerate(b):
            positions[byte] = positions.get(byte, 0) | 1 << j
        row = self.mask
        self.rows = [row]
        for byte in a:
            matched = row & positions.get(byte, 0)
            row = ((row + matched) | (row - matched)) & self.mask
            self.rows.append(row)
        self.length = width - row.bit_count()

    def at(self, i: int, j: int) -> int:
        """LCS(a[:i], b[:j])."""
        return j - (self.rows[i] & ((1 << j) - 1)).bit_count()

    def walk(self, minmatchlen: int) -> tuple[bytes, list[tuple[tuple[int, int], tuple[int, int]]]]:
        """The subsequence and its matching ranges, walked back from the ends as redis-server does."""
        a, b = self.a, self.b
        i, j = len(a), len(b)
        result = bytearray()
        ranges: list[tuple[tuple[int, int], tuple[int, int]]] = []
        a_start = a_end = b_start = b_end = -1  # -1: no range open
        while i > 0 and j > 0:
            emit = False
            if a[i - 1] == b[j - 1]:
                result.append(a[i - 1])
                if a_start < 0:
                    a_start = a_end = i - 1
                    b_start = b_end = j - 1
                elif a_start == i and b_start == j:
                    a_start -= 1
                    b_start -= 1
                else:
                    emit = True
                if a_start == 0 or b_start == 0:
                    emit = True
                i -= 1
                j -= 1
            else:
                if self.at(i - 1, j) > self.at(i, j - 1):
                    i -= 1
                else:
                    j -= 1
                if a_start >= 0:
                    emit = True
            if emit:
                if a_end - a_start + 1 >= minmatchlen:
                    ranges.append(((a_start, a_end), (b_start, b_end)))
                a_start = -1
        result.reverse()
        return bytes(result), ranges
