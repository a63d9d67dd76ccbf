"""Lists: LPUSH, LRANGE and the other commands on list values (Redis's t_list.c)."""

from __future__ import annotations

from collections import deque

from linechat.services.redis.base import (
    CommandContext,
    index_range,
    int_arg,
)
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
from linechat.services.redis.table import redis_command

__all__ = ["ListCommands"]


class ListCommands(CommandContext):
    """The list commands."""

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

    @redis_command("LPUSH", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="list")
    def cmd_lpush(self, key: bytes, value: bytes, *values: bytes) -> bytes:
        """Prepend elements to a list."""
        return self._push(key, (value, *values), True)

    @redis_command("RPUSH", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="list")
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

    @redis_command("LPOP", arity=-2, flags="write fast", keys=(1, 1, 1), key_flags="RW access delete", group="list")
    def cmd_lpop(self, key: bytes, count: bytes | None = None) -> bytes:
        """Remove and return the first element(s) of a list."""
        return self._pop(key, count, True)

    @redis_command("RPOP", arity=-2, flags="write fast", keys=(1, 1, 1), key_flags="RW access delete", group="list")
    def cmd_rpop(self, key: bytes, count: bytes | None = None) -> bytes:
        """Remove and return the last element(s) of a list."""
        return self._pop(key, count, False)

    @redis_command("LLEN", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="list")
    def cmd_llen(self, key: bytes) -> bytes:
        """Length of a list."""
        items = self._typed(key, deque)
        return integer(0 if items is None else len(items))

    @redis_command("LRANGE", arity=4, flags="readonly", keys=(1, 1, 1), group="list")
    def cmd_lrange(self, key: bytes, start: bytes, stop: bytes) -> bytes:
        """Elements of a list between two inclusive indexes."""
        first, last = int_arg(start), int_arg(stop)
        items = self._typed(key, deque)
        if items is None:
            return EMPTY_ARRAY
        span = index_range(first, last, len(items))
        if span is None:
            return EMPTY_ARRAY
        if span[0] == 0 and span[1] == len(items) - 1:
            return array(items)
        return array([items[i] for i in range(span[0], span[1] + 1)])

    @redis_command("LINDEX", arity=3, flags="readonly", keys=(1, 1, 1), group="list")
    def cmd_lindex(self, key: bytes, index: bytes) -> bytes:
        """The element at an index of a list."""
        where = int_arg(index)
        items = self._typed(key, deque)
        if items is None:
            return self.null
        if where < 0:
            where += len(items)
        if not 0 <= where < len(items):
            return self.null
        return bulk(items[where])

    @redis_command("LSET", arity=4, flags="write denyoom", keys=(1, 1, 1), key_flags="RW update", group="list")
    def cmd_lset(self, key: bytes, index: bytes, value: bytes) -> bytes:
        """Replace the element at an index of a list."""
        where = int_arg(index)
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

    @redis_command("LREM", arity=4, flags="write", keys=(1, 1, 1), key_flags="RW delete", group="list")
    def cmd_lrem(self, key: bytes, count: bytes, value: bytes) -> bytes:
        """Remove occurrences of an element (count > 0 from the head, < 0 from the tail, 0 all)."""
        limit = int_arg(count)
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

    @redis_command("LTRIM", arity=4, flags="write", keys=(1, 1, 1), key_flags="RW delete", group="list")
    def cmd_ltrim(self, key: bytes, start: bytes, stop: bytes) -> bytes:
        """Keep only the elements between two inclusive indexes."""
        first, last = int_arg(start), int_arg(stop)
        items = self._typed(key, deque)
        if items is None:
            return OK
        span = index_range(first, last, len(items))
        if span is None:
            self.db.delete(key)
        else:
            kept = [items[i] for i in range(span[0], span[1] + 1)]
            items.clear()
            items.extend(kept)
        self._propagate()
        return OK
