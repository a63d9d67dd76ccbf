"""Hashes: HSET, HGET and the other commands on hash values (Redis's t_hash.c)."""

from __future__ import annotations

from fractions import Fraction

from linechat.services.redis.base import (
    LONG_DOUBLE_MAX,
    OVERFLOW,
    SYNTAX,
    CommandContext,
    format_long_double,
    int_arg,
    parse_long_double,
    to_long_double,
)
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
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
from linechat.services.redis.scan import EMPTY_SCAN, SMALL, matching, parse_cursor, parse_scan_options, scan_reply
from linechat.services.redis.store import MAX_RANDOM_REPEATS, random_items
from linechat.services.redis.table import redis_command

__all__ = ["HashCommands"]


class HashCommands(CommandContext):
    """The hash commands."""

    @redis_command("HSET", arity=-4, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW update", group="hash")
    @redis_command("HMSET", arity=-4, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW update", group="hash")
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

    @redis_command("HSETNX", arity=4, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="hash")
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

    @redis_command("HGET", arity=3, flags="readonly fast", keys=(1, 1, 1), group="hash")
    def cmd_hget(self, key: bytes, field: bytes) -> bytes:
        """Value of a hash field."""
        fields = self._typed(key, dict)
        return self.null if fields is None else bulk(fields.get(field), self.null)

    @redis_command("HMGET", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="hash")
    def cmd_hmget(self, key: bytes, field: bytes, *more: bytes) -> bytes:
        """Values of several hash fields."""
        fields = self._typed(key, dict) or {}
        return array([fields.get(f) for f in (field, *more)], self.null)

    @redis_command("HDEL", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW delete", group="hash")
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

    @redis_command(
        "HGETALL", arity=2, flags="readonly", keys=(1, 1, 1), group="hash", tips="nondeterministic_output_order"
    )
    def cmd_hgetall(self, key: bytes) -> bytes:
        """Every field and value of a hash."""
        fields = self._typed(key, dict) or {}
        return self.dialect.map_reply([item for pair in fields.items() for item in pair])

    @redis_command("HLEN", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="hash")
    def cmd_hlen(self, key: bytes) -> bytes:
        """Number of fields in a hash."""
        return integer(len(self._typed(key, dict) or ()))

    @redis_command("HEXISTS", arity=3, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="hash")
    def cmd_hexists(self, key: bytes, field: bytes) -> bytes:
        """Whether a hash field exists."""
        fields = self._typed(key, dict)
        return ONE if fields is not None and field in fields else ZERO

    @redis_command("HINCRBY", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="hash")
    def cmd_hincrby(self, key: bytes, field: bytes, increment: bytes) -> bytes:
        """Add to an integer hash field."""
        delta = int_arg(increment)
        fields = self._typed(key, dict)
        old = None if fields is None else fields.get(field)
        current = 0 if old is None else int_arg(old, "ERR hash value is not an integer")
        result = current + delta
        if result > INT64_MAX or result < INT64_MIN:
            raise RespError(OVERFLOW)
        if fields is None:
            fields = {}
            self.db.set(key, fields)
        fields[field] = b"%d" % result
        self._propagate()
        return integer(result)

    @redis_command(
        "HKEYS", arity=2, flags="readonly", keys=(1, 1, 1), group="hash", tips="nondeterministic_output_order"
    )
    def cmd_hkeys(self, key: bytes) -> bytes:
        """Field names of a hash."""
        return array(list(self._typed(key, dict) or ()))

    @redis_command(
        "HVALS", arity=2, flags="readonly", keys=(1, 1, 1), group="hash", tips="nondeterministic_output_order"
    )
    def cmd_hvals(self, key: bytes) -> bytes:
        """Values of a hash."""
        return array(list((self._typed(key, dict) or {}).values()))

    @redis_command("HINCRBYFLOAT", arity=4, flags="write denyoom fast", keys=(1, 1, 1), group="hash")
    def cmd_hincrbyfloat(self, key: bytes, field: bytes, increment: bytes) -> bytes:
        """Add a decimal number to a hash field (long double arithmetic, as Redis)."""
        if increment.lower().lstrip(b"+-") in (b"inf", b"infinity"):
            raise RespError("ERR value is NaN or Infinity")
        delta = parse_long_double(increment)
        fields = self._typed(key, dict)
        old = None if fields is None else fields.get(field)
        if old is None:
            current = Fraction(0)
        else:
            try:
                current = parse_long_double(old)
            except RespError:
                raise RespError("ERR hash value is not a float") from None
        result = to_long_double(current + delta)
        if abs(result) > LONG_DOUBLE_MAX:
            raise RespError("ERR increment would produce NaN or Infinity")
        text = format_long_double(result)
        if fields is None:
            fields = {}
            self.db.set(key, fields)
        fields[field] = text
        # Replay must not depend on float arithmetic: record the result.
        self._propagate([b"HSET", key, field, text])
        return bulk(text)

    @redis_command("HSTRLEN", arity=3, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="hash")
    def cmd_hstrlen(self, key: bytes, field: bytes) -> bytes:
        """Length of a hash field's value (0 if there is none)."""
        fields = self._typed(key, dict)
        value = None if fields is None else fields.get(field)
        return integer(0 if value is None else len(value))

    @redis_command(
        "HRANDFIELD", arity=-2, flags="readonly", keys=(1, 1, 1), group="hash", tips="nondeterministic_output"
    )
    def cmd_hrandfield(self, key: bytes, *args: bytes) -> bytes:
        """Random fields: one, COUNT distinct (count > 0) or with repeats (count < 0), WITHVALUES."""
        if len(args) > 2:
            raise RespError(SYNTAX)
        count: int | None = None
        withvalues = False
        if args:
            count = int_arg(args[0])
            if len(args) == 2:
                if args[1].upper() != b"WITHVALUES":
                    raise RespError(SYNTAX)
                withvalues = True
            # Redis refuses what would overflow a reply's length; we also
            # refuse repeats past a bound, where Redis would stream gigabytes.
            if (withvalues and not -(INT64_MAX // 2) <= count <= INT64_MAX // 2) or count < -MAX_RANDOM_REPEATS:
                raise RespError("ERR value is out of range")
        fields = self._typed(key, dict)
        if count is None:
            if fields is None:
                return self.null
            return bulk(random_items(fields, 1, False)[0])
        if fields is None or count == 0:
            return EMPTY_ARRAY
        chosen = random_items(fields, abs(count), count < 0)
        if not withvalues:
            return array(chosen)
        pair = b"*2\r\n" if self.dialect.version == 3 else b""
        parts = [b"*%d\r\n" % (len(chosen) if pair else 2 * len(chosen))]
        for name in chosen:
            value = fields[name]
            parts.append(pair + b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(name), name, len(value), value))
        return b"".join(parts)

    @redis_command("HSCAN", arity=-3, flags="readonly", keys=(1, 1, 1), group="hash", tips="nondeterministic_output")
    def cmd_hscan(self, key: bytes, cursor: bytes, *options: bytes) -> bytes:
        """Iterate over a hash's fields and values with a cursor (MATCH, COUNT)."""
        start = parse_cursor(cursor)
        fields = self._typed(key, dict)
        if fields is None:
            return EMPTY_SCAN
        pattern, count, _ = parse_scan_options(options, False)
        if len(fields) <= SMALL["hash"]:
            nxt, names = 0, list(fields)
        else:
            nxt, names = self.server.scan_cursors.page(start, fields.keys, count)
        out: list[bytes] = []
        for name in matching(names, pattern):
            value = fields.get(name)
            if value is not None:
                out += (name, value)
        return scan_reply(nxt, out)
