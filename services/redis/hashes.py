"""Hashes: HSET, HGET and the other commands on hash values (Redis's t_hash.c)."""

from __future__ import annotations

from linechat.services.redis.base import (
    OVERFLOW,
    CommandContext,
    int_arg,
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
