"""Lists: LPUSH, LRANGE and the other commands on list values (Redis's t_list.c)."""

from __future__ import annotations

from collections import deque
from typing import Any

from linechat.services.redis.base import (
    SYNTAX,
    CommandContext,
    index_range,
    int_arg,
)
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    INT64_MIN,
    OK,
    ZERO,
    RespError,
    array,
    bulk,
    integer,
    parse_int,
)
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["ListCommands", "parse_mpop"]


class ListCommands(CommandContext):
    """The list commands."""

    def list_push(
        self, key: bytes, values: tuple[bytes, ...] | list[bytes], left: bool, items: deque[bytes] | None = None
    ) -> int:
        """Push onto the list at *key*, creating it if needed; return the new length.

        Every command that adds to a list (LPUSH, RPUSH, the X forms, LMOVE,
        RPOPLPUSH, LINSERT does not create) pushes here, so this is the one
        place where a list gains elements (a wake-up for blocked clients hooks
        in here).  *items* is the list when the caller already looked it up.
        """
        if items is None:
            items = self._typed(key, deque)
            if items is None:
                items = deque()
                self.db.set(key, items)
        if left:
            items.extendleft(values)
        else:
            items.extend(values)
        return len(items)

    def _push(self, key: bytes, values: tuple[bytes, ...], left: bool) -> bytes:
        length = self.list_push(key, values, left)
        self._propagate()
        return integer(length)

    def _push_existing(self, key: bytes, values: tuple[bytes, ...], left: bool) -> bytes:
        items = self._typed(key, deque)
        if items is None:
            return ZERO
        length = self.list_push(key, values, left, items)
        self._propagate()
        return integer(length)

    @redis_command("LPUSHX", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="list")
    def cmd_lpushx(self, key: bytes, value: bytes, *values: bytes) -> bytes:
        """Prepend elements to a list only if it exists."""
        return self._push_existing(key, (value, *values), True)

    @redis_command("RPUSHX", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="list")
    def cmd_rpushx(self, key: bytes, value: bytes, *values: bytes) -> bytes:
        """Append elements to a list only if it exists."""
        return self._push_existing(key, (value, *values), False)

    def list_move(self, source: bytes, destination: bytes, from_left: bool, to_left: bool) -> bytes | None:
        """Move one element between lists (LMOVE, RPOPLPUSH and their blocking forms); None if *source* is empty.

        Both keys are type-checked before anything moves; the move is
        recorded in the append-only file as LMOVE.
        """
        items = self._typed(source, deque)
        if not items:
            return None
        if source != destination:
            self._typed(destination, deque)
        value = items.popleft() if from_left else items.pop()
        if not items:
            self.db.delete(source)
        self.list_push(destination, (value,), to_left)
        self._propagate(
            [b"LMOVE", source, destination, b"LEFT" if from_left else b"RIGHT", b"LEFT" if to_left else b"RIGHT"]
        )
        return value

    @redis_command(
        "LMOVE",
        arity=5,
        flags="write denyoom",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("RW", "insert"), 2)],
        group="list",
    )
    def cmd_lmove(self, source: bytes, destination: bytes, wherefrom: bytes, whereto: bytes) -> bytes:
        """Pop from one end of a list and push onto an end of another (or the same) list."""
        from_left, to_left = _side(wherefrom), _side(whereto)
        return bulk(self.list_move(source, destination, from_left, to_left), self.null)

    @redis_command(
        "RPOPLPUSH",
        arity=3,
        flags="write denyoom",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("RW", "insert"), 2)],
        group="list",
    )
    def cmd_rpoplpush(self, source: bytes, destination: bytes) -> bytes:
        """Pop the last element of a list and push it at the head of another."""
        return bulk(self.list_move(source, destination, False, True), self.null)

    @redis_command("LINSERT", arity=5, flags="write denyoom", keys=(1, 1, 1), key_flags="RW insert", group="list")
    def cmd_linsert(self, key: bytes, where: bytes, pivot: bytes, value: bytes) -> bytes:
        """Insert an element before or after the first occurrence of a pivot; -1 if there is none."""
        side = where.upper()
        if side not in (b"BEFORE", b"AFTER"):
            raise RespError(SYNTAX)
        items = self._typed(key, deque)
        if items is None:
            return ZERO
        try:
            at = items.index(pivot)
        except ValueError:
            return integer(-1)
        items.insert(at if side == b"BEFORE" else at + 1, value)
        self._propagate()
        return integer(len(items))

    @redis_command("LPOS", arity=-3, flags="readonly", keys=(1, 1, 1), group="list")
    def cmd_lpos(self, key: bytes, element: bytes, *options: bytes) -> bytes:
        """Indexes of matching elements (RANK to skip or search from the tail, COUNT, MAXLEN)."""
        rank, count, maxlen = 1, -1, 0
        i = 0
        while i < len(options):
            opt = options[i].upper()
            more = i + 1 < len(options)
            if opt == b"RANK" and more:
                rank = int_arg(options[i + 1])
                if rank == INT64_MIN:  # Redis cannot negate it and takes the first match from the tail
                    rank = -1
                if rank == 0:
                    raise RespError(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
                        "or use negative to start from the end of the list"
                    )
            elif opt == b"COUNT" and more:
                count = _positive(options[i + 1], "ERR COUNT can't be negative")
            elif opt == b"MAXLEN" and more:
                maxlen = _positive(options[i + 1], "ERR MAXLEN can't be negative")
            else:
                raise RespError(SYNTAX)
            i += 2
        items = self._typed(key, deque)
        if items is None:
            return EMPTY_ARRAY if count != -1 else self.null
        length = len(items)
        if rank > 0:
            positions: Any = range(length)
        else:
            positions = range(length - 1, -1, -1)
        skip = abs(rank) - 1
        found: list[int] = []
        for compared, index in enumerate(positions):
            if maxlen and compared >= maxlen:
                break
            if items[index] == element:
                if skip:
                    skip -= 1
                    continue
                found.append(index)
                if count != -1 and len(found) == count and count != 0:
                    break
                if count == -1:
                    break
        if count == -1:
            return integer(found[0]) if found else self.null
        return b"*%d\r\n" % len(found) + b"".join(integer(n) for n in found)

    @redis_command(
        "LMPOP",
        arity=-4,
        flags="write",
        keys=[KeySpec(("RW", "access", "delete"), 1, keynum=(0, 1, 1))],
        group="list",
    )
    def cmd_lmpop(self, numkeys: bytes, key: bytes, where: bytes, *args: bytes) -> bytes:
        """Pop elements from the first non-empty list of several keys."""
        keys, left, count = parse_mpop((numkeys, key, where, *args), b"LEFT", b"RIGHT")
        for name in keys:
            popped = self.list_pop_many(name, count, left)
            if popped:
                return b"*2\r\n" + bulk(name) + array(popped)
        return self.null_array

    def list_pop_many(self, key: bytes, count: int, left: bool) -> list[bytes]:
        """Pop up to *count* elements from one end of the list at *key* (LMPOP, BLMPOP); [] if there is none."""
        items = self._typed(key, deque)
        if not items:
            return []
        pop = items.popleft if left else items.pop
        popped = [pop() for _ in range(min(count, len(items)))]
        if not items:
            self.db.delete(key)
        self._propagate([b"LPOP" if left else b"RPOP", key, b"%d" % len(popped)])
        return popped

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


def _side(word: bytes) -> bool:
    """LEFT (True) or RIGHT (False); anything else is a syntax error."""
    upper = word.upper()
    if upper == b"LEFT":
        return True
    if upper == b"RIGHT":
        return False
    raise RespError(SYNTAX)


def _positive(value: bytes, message: str) -> int:
    number = parse_int(value)
    if number is None or number < 0:
        raise RespError(message)
    return number


def parse_mpop(args: tuple[bytes, ...], first: bytes, second: bytes) -> tuple[list[bytes], bool, int]:
    """Parse ``numkeys key... <first>|<second> [COUNT count]`` (LMPOP, ZMPOP and their blocking forms).

    Returns the keys, True for *first* (LEFT, MIN), and the count (1 by default).
    """
    numkeys = parse_int(args[0])
    if numkeys is None or numkeys <= 0:
        raise RespError("ERR numkeys should be greater than 0")
    if numkeys > len(args) - 2:
        raise RespError(SYNTAX)
    keys = list(args[1 : 1 + numkeys])
    where = args[1 + numkeys].upper()
    if where not in (first, second):
        raise RespError(SYNTAX)
    rest = args[2 + numkeys :]
    count = 1
    if rest:
        if len(rest) != 2 or rest[0].upper() != b"COUNT":
            raise RespError(SYNTAX)
        parsed = parse_int(rest[1])
        if parsed is None or parsed <= 0:
            raise RespError("ERR count should be greater than 0")
        count = parsed
    return keys, where == first, count
