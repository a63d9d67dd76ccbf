"""Blocking commands: clients waiting on keys, the keys writes make ready, and the wake-ups.

A client whose blocking command (``BLPOP``, ``BLMOVE``, ``XREAD BLOCK``...)
finds nothing to take is parked here as a :class:`Waiter`, queued on each of
its keys in the order clients blocked.  Creating a key that has waiters
(``Database.set``) or adding to a stream marks the key *ready*; at the end of
each atomic unit (a command, a whole ``EXEC``, a script) the connection loop
calls :meth:`Blocking.serve_ready`, which offers each ready key to its waiters
first come, first served, until the key runs dry.  A served client's reply is
sent at once; the commands it pipelined after the blocking one stay parked on
the connection (see ``RedisProtocol``) and run on the next reactor turn, as
Redis runs an unblocked client's input after the current command.

Inside ``EXEC`` or a script (``with server.blocking.atomic():``) blocking
commands do not block: they answer as on a timeout.  Timeouts are reactor
timers; a client that disconnects while blocked is dropped from every queue
and takes nothing with it.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

from linechat.services.redis.base import SYNTAX, WRONGTYPE, CommandContext, to_long_double
from linechat.services.redis.resp import RespError, array, bulk, error, parse_int
from linechat.services.redis.table import KeySpec, redis_command

if TYPE_CHECKING:
    from linechat.reactor import Timer
    from linechat.services.redis.protocol import RedisProtocol
    from linechat.services.redis.store import Database

__all__ = [
    "UNBLOCKED_ERROR",
    "Blocking",
    "BlockingListCommands",
    "BlockingSortedSetCommands",
    "Waiter",
    "parse_timeout",
]

#: What CLIENT UNBLOCK ... ERROR sends to the blocked client.
UNBLOCKED_ERROR = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"

_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_INFINITE = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_LLONG_MAX = 2**63 - 1


def parse_timeout(raw: bytes) -> int:
    """A blocking command's timeout in seconds (fractions allowed) as whole milliseconds; 0 means forever.

    Redis reads it with ``strtold``, multiplies by 1000 and rounds up, so
    ``0.0001`` waits 1 ms and ``-0.0001`` (which rounds to 0) waits forever;
    a value beyond the range of a 64-bit count of milliseconds (``inf``
    included) comes out of the conversion negative.
    """
    whole_seconds = parse_int(raw)
    if whole_seconds is not None:
        # What clients send ("0", "5"): exact in a long double, no rounding to emulate.
        if whole_seconds < 0 or whole_seconds * 1000 > _LLONG_MAX:
            raise RespError("ERR timeout is negative")
        return whole_seconds * 1000
    bad = RespError("ERR timeout is not a float or out of range")
    if _DECIMAL.fullmatch(raw):
        seconds = Fraction(raw.decode("ascii"))
        if abs(seconds) > Fraction(2) ** 16384:
            raise bad  # strtold overflows: ERANGE
        exact = seconds * 1000
        nearest = round(exact)
        if abs(exact - nearest) > Fraction(1, 10**9) and abs(exact) < 2**53:
            # Far from a whole millisecond, long double rounding cannot change the ceiling.
            whole = math.ceil(exact)
            if whole < 0:
                raise RespError("ERR timeout is negative")
            return whole
    elif _HEX.fullmatch(raw):
        text = raw.decode("ascii")
        negative = text.startswith("-")
        seconds = Fraction(float.fromhex(text.lstrip("+-")))
        seconds = -seconds if negative else seconds
    elif _INFINITE.fullmatch(raw):
        raise RespError("ERR timeout is negative")
    else:
        raise bad
    millis = to_long_double(to_long_double(seconds) * 1000)
    whole = math.ceil(millis)
    if whole > _LLONG_MAX or whole < -_LLONG_MAX - 1:
        raise RespError("ERR timeout is negative")
    if whole < 0:
        raise RespError("ERR timeout is negative")
    return whole


class Waiter:
    """One blocked client: its keys, how to serve it from a key, its timer."""

    __slots__ = ("client", "db", "done", "keys", "serve", "timeout_reply", "timer")

    def __init__(
        self,
        client: RedisProtocol,
        db: Database,
        keys: list[bytes],
        serve: Callable[[bytes], bytes | None],
        timeout_reply: bytes,
    ) -> None:
        self.client = client
        self.db = db
        self.keys = keys
        #: Try to serve the client from a key: its reply, or None to keep waiting.
        self.serve = serve
        self.timeout_reply = timeout_reply
        self.timer: Timer | None = None
        self.done = False


class Blocking:
    """The blocked clients of one server and the keys that writes made ready for them."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        #: Keys created or added to while someone waits on them, in signal order.
        self.ready: dict[tuple[int, bytes], Database] = {}
        #: Above zero inside EXEC or a script: blocking commands answer at once.
        self.depth = 0
        #: The waiter of each blocked client, by client id (CLIENT UNBLOCK).
        self.waiters: dict[int, Waiter] = {}

    @property
    def blocked_clients(self) -> int:
        """How many clients are blocked (INFO's blocked_clients)."""
        return len(self.waiters)

    # ------------------------------------------------------------------ atomic units

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Run a transaction or script: nothing blocks inside, and waiters are served after it."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @property
    def may_block(self) -> bool:
        """False inside EXEC or a script, where a blocking command answers as on a timeout."""
        return self.depth == 0

    # ------------------------------------------------------------------ blocking

    def block(
        self,
        client: RedisProtocol,
        db: Database,
        keys: list[bytes],
        serve: Callable[[bytes], bytes | None],
        timeout_ms: int,
        timeout_reply: bytes,
    ) -> Waiter:
        """Park *client* on *keys* until a key can serve it or *timeout_ms* passes (0: forever)."""
        waiter = Waiter(client, db, list(dict.fromkeys(keys)), serve, timeout_reply)
        for key in waiter.keys:
            db.blocked.setdefault(key, deque()).append(waiter)
        if timeout_ms:
            waiter.timer = self.reactor.call_later(timeout_ms / 1000, lambda: self.wake(waiter, waiter.timeout_reply))
        self.waiters[client.id] = waiter
        return waiter

    def signal(self, db: Database, key: bytes) -> None:
        """Mark *key* ready: someone waits on it and a write may have given it something."""
        self.ready[(db.index, key)] = db

    def forget(self, waiter: Waiter) -> None:
        """Take a waiter out of every queue (served, timed out, unblocked or disconnected)."""
        if waiter.done:
            return
        waiter.done = True
        self.waiters.pop(waiter.client.id, None)
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        blocked = waiter.db.blocked
        for key in waiter.keys:
            queue = blocked.get(key)
            if queue is None:
                continue
            with suppress(ValueError):
                queue.remove(waiter)
            if not queue:
                del blocked[key]

    def wake(self, waiter: Waiter, reply: bytes) -> None:
        """Answer a blocked client and let it run what it pipelined after the blocking command."""
        if waiter.done:
            return
        self.forget(waiter)
        waiter.client.unblocked(reply)

    def unblock(self, client_id: int, as_error: bool) -> bool:
        """CLIENT UNBLOCK: answer a blocked client as on a timeout, or with an error; False if it is not blocked."""
        waiter = self.waiters.get(client_id)
        if waiter is None:
            return False
        self.wake(waiter, UNBLOCKED_ERROR if as_error else waiter.timeout_reply)
        return True

    # ------------------------------------------------------------------ serving

    def serve_ready(self) -> None:
        """Offer every ready key to its waiters, first blocked first served (the end of an atomic unit)."""
        ready = self.ready
        if self.depth:
            return
        while ready:
            batch = list(ready.items())
            ready.clear()
            for (_index, key), db in batch:
                queue = db.blocked.get(key)
                if not queue:
                    continue
                for waiter in list(queue):
                    if waiter.done:
                        continue
                    if db.get(key) is None:
                        break  # emptied by an earlier waiter
                    reply = waiter.serve(key)
                    if reply is not None:
                        self.wake(waiter, reply)


# --------------------------------------------------------------------------- list commands


_SYNTAX = SYNTAX
_WRONGTYPE = WRONGTYPE
# BLMPOP, BZMPOP: numkeys at 2, then the keys.
_NUMKEYS_AT_2 = [KeySpec(("RW", "access", "delete"), 2, keynum=(0, 1, 1))]


def _side(raw: bytes) -> bool:
    """LEFT (True) or RIGHT (False), as LMOVE/BLMOVE/BLMPOP spell them."""
    upper = raw.upper()
    if upper == b"LEFT":
        return True
    if upper == b"RIGHT":
        return False
    raise RespError(_SYNTAX)


def _positive(raw: bytes, message: str) -> int:
    number = parse_int(raw)
    if number is None or number < 1:
        raise RespError(f"ERR {message}")
    return number


class BlockingListCommands(CommandContext):
    """BLPOP, BRPOP, BLMOVE, BRPOPLPUSH and BLMPOP, mixed into the connection protocol."""

    _blocked: Waiter | None

    def _wait(self, keys: list[bytes], serve: Callable[[bytes], bytes | None], timeout_ms: int, reply: bytes) -> None:
        """Block this client on *keys*; *serve* is tried on each key that becomes ready."""
        # This mixin only ever runs as part of RedisProtocol.
        client = cast("RedisProtocol", self)
        self._blocked = self.server.blocking.block(client, self.db, keys, serve, timeout_ms, reply)

    def _list_at(self, key: bytes) -> deque[bytes] | None:
        """The non-empty list at *key*, None when there is none; WRONGTYPE for another type."""
        value = self.db.get(key)
        if value is None:
            return None
        if type(value) is not deque:
            raise RespError(_WRONGTYPE)
        return value  # lists are never stored empty

    def _take(self, key: bytes, items: deque[bytes], left: bool, count: int) -> list[bytes]:
        """Pop up to *count* elements from one end of a list and record it as LPOP/RPOP."""
        pop = items.popleft if left else items.pop
        taken = [pop() for _ in range(min(count, len(items)))]
        if not items:
            self.db.delete(key)
        record = [b"LPOP" if left else b"RPOP", key]
        self._propagate(record if count == 1 else [*record, b"%d" % count])
        return taken

    # ------------------------------------------------------------------ BLPOP, BRPOP

    def _blocking_pop(self, args: tuple[bytes, ...], left: bool) -> bytes | None:
        keys = list(args[:-1])
        timeout = parse_timeout(args[-1])
        for key in keys:
            items = self._list_at(key)
            if items:
                return array([key, self._take(key, items, left, 1)[0]])
        if not self.server.blocking.may_block:
            return self.null_array

        def serve(key: bytes) -> bytes | None:
            value = self.db.get(key)
            if type(value) is not deque or not value:
                return None
            return array([key, self._take(key, value, left, 1)[0]])

        self._wait(keys, serve, timeout, self.null_array)
        return None

    @redis_command(
        "BLPOP", arity=-3, flags="write noscript blocking", keys=(1, -2, 1), key_flags="RW access delete", group="list"
    )
    def cmd_blpop(self, *args: bytes) -> bytes | None:
        """Pop the first element of the first non-empty list, waiting up to a timeout for one."""
        return self._blocking_pop(args, True)

    @redis_command(
        "BRPOP", arity=-3, flags="write noscript blocking", keys=(1, -2, 1), key_flags="RW access delete", group="list"
    )
    def cmd_brpop(self, *args: bytes) -> bytes | None:
        """Pop the last element of the first non-empty list, waiting up to a timeout for one."""
        return self._blocking_pop(args, False)

    # ------------------------------------------------------------------ BLMOVE, BRPOPLPUSH

    def _move(self, source: bytes, items: deque[bytes], target: bytes, left: bool, to_left: bool) -> bytes:
        """Move one element between lists; the caller checked both types."""
        pop = items.popleft if left else items.pop
        value = pop()
        if not items:
            self.db.delete(source)
        self._propagate([b"LPOP" if left else b"RPOP", source])
        destination = self.db.get(target)
        if destination is None:
            destination = deque()
            self.db.set(target, destination)
        if to_left:
            destination.appendleft(value)
        else:
            destination.append(value)
        self._propagate([b"LPUSH" if to_left else b"RPUSH", target, value])
        return bulk(value)

    def _blocking_move(
        self, source: bytes, target: bytes, left: bool, to_left: bool, raw_timeout: bytes
    ) -> bytes | None:
        timeout = parse_timeout(raw_timeout)
        items = self._list_at(source)
        if items is not None:
            if self.db.get(target) is not None:
                self._list_at(target)  # WRONGTYPE before anything moves
            return self._move(source, items, target, left, to_left)
        if not self.server.blocking.may_block:
            return self.null

        def serve(key: bytes) -> bytes | None:
            value = self.db.get(key)
            if type(value) is not deque or not value:
                return None
            destination = self.db.get(target)
            if destination is not None and type(destination) is not deque:
                return error(_WRONGTYPE)  # the waiter is answered and nothing moves
            return self._move(source, value, target, left, to_left)

        # Redis answers a timed-out BLMOVE with a null array (a null bulk in MULTI).
        self._wait([source], serve, timeout, self.null_array)
        return None

    @redis_command(
        "BLMOVE",
        arity=6,
        flags="write denyoom noscript blocking",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("RW", "insert"), 2)],
        group="list",
    )
    def cmd_blmove(
        self, source: bytes, target: bytes, wherefrom: bytes, whereto: bytes, timeout: bytes
    ) -> bytes | None:
        """Move an element from one list to another, waiting up to a timeout for one."""
        left, to_left = _side(wherefrom), _side(whereto)
        return self._blocking_move(source, target, left, to_left, timeout)

    @redis_command(
        "BRPOPLPUSH",
        arity=4,
        flags="write denyoom noscript blocking",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("RW", "insert"), 2)],
        group="list",
    )
    def cmd_brpoplpush(self, source: bytes, target: bytes, timeout: bytes) -> bytes | None:
        """BLMOVE source target RIGHT LEFT (the older name)."""
        return self._blocking_move(source, target, False, True, timeout)

    # ------------------------------------------------------------------ BLMPOP

    @redis_command("BLMPOP", arity=-5, flags="write blocking", keys=_NUMKEYS_AT_2, group="list")
    def cmd_blmpop(self, timeout: bytes, numkeys: bytes, *args: bytes) -> bytes | None:
        """Pop elements from the first non-empty of several lists, waiting up to a timeout for one."""
        count_keys = _positive(numkeys, "numkeys should be greater than 0")
        if count_keys >= len(args):
            raise RespError(_SYNTAX)
        keys = list(args[:count_keys])
        left = _side(args[count_keys])
        count = -1
        rest = args[count_keys + 1 :]
        i = 0
        while i < len(rest):
            if count == -1 and rest[i].upper() == b"COUNT" and i + 1 < len(rest):
                count = _positive(rest[i + 1], "count should be greater than 0")
                i += 2
            else:
                raise RespError(_SYNTAX)
        count = max(count, 1)
        wait = parse_timeout(timeout)
        for key in keys:
            items = self._list_at(key)
            if items:
                return b"*2\r\n" + bulk(key) + array(self._take(key, items, left, count))
        if not self.server.blocking.may_block:
            return self.null_array

        def serve(key: bytes) -> bytes | None:
            value = self.db.get(key)
            if type(value) is not deque or not value:
                return None
            return b"*2\r\n" + bulk(key) + array(self._take(key, value, left, count))

        self._wait(keys, serve, wait, self.null_array)
        return None


# --------------------------------------------------------------------------- sorted set commands


class BlockingSortedSetCommands(CommandContext):
    """BZPOPMIN, BZPOPMAX and BZMPOP, on top of the sorted sets' own pop (``zset_pop``)."""

    _blocked: Waiter | None

    if TYPE_CHECKING:

        def _wait(
            self, keys: list[bytes], serve: Callable[[bytes], bytes | None], timeout_ms: int, reply: bytes
        ) -> None: ...
        def zset_pop(self, key: bytes, count: int, highest: bool) -> list[tuple[bytes, float]]: ...
        def zmpop_args(self, args: tuple[bytes, ...]) -> tuple[list[bytes], bool, int]: ...
        def zmpop_reply(self, key: bytes, popped: list[tuple[bytes, float]]) -> bytes: ...
        def score_reply(self, score: float) -> bytes: ...

    def _zset_ready(self, key: bytes) -> bool:
        """True when *key* holds a sorted set now (a waiter leaves other types alone)."""
        from linechat.services.redis.zset import SortedSet

        value = self.db.get(key)
        return type(value) is SortedSet and bool(value)

    def _blocking_zpop(self, args: tuple[bytes, ...], highest: bool) -> bytes | None:
        keys = list(args[:-1])
        timeout = parse_timeout(args[-1])

        def pop(key: bytes) -> bytes | None:
            popped = self.zset_pop(key, 1, highest)
            if not popped:
                return None
            member, score = popped[0]
            return b"*3\r\n" + bulk(key) + bulk(member) + self.score_reply(score)

        for key in keys:
            reply = pop(key)  # WRONGTYPE for a key of another type, as Redis checks in order
            if reply is not None:
                return reply
        if not self.server.blocking.may_block:
            return self.null_array
        self._wait(keys, lambda key: pop(key) if self._zset_ready(key) else None, timeout, self.null_array)
        return None

    @redis_command(
        "BZPOPMIN",
        arity=-3,
        flags="write noscript blocking fast",
        keys=(1, -2, 1),
        key_flags="RW access delete",
        group="sorted-set",
    )
    def cmd_bzpopmin(self, *args: bytes) -> bytes | None:
        """Pop the lowest-scored member of the first non-empty sorted set, waiting up to a timeout."""
        return self._blocking_zpop(args, False)

    @redis_command(
        "BZPOPMAX",
        arity=-3,
        flags="write noscript blocking fast",
        keys=(1, -2, 1),
        key_flags="RW access delete",
        group="sorted-set",
    )
    def cmd_bzpopmax(self, *args: bytes) -> bytes | None:
        """Pop the highest-scored member of the first non-empty sorted set, waiting up to a timeout."""
        return self._blocking_zpop(args, True)

    @redis_command("BZMPOP", arity=-5, flags="write blocking", keys=_NUMKEYS_AT_2, group="sorted-set")
    def cmd_bzmpop(self, timeout: bytes, *args: bytes) -> bytes | None:
        """Pop members from the first non-empty of several sorted sets, waiting up to a timeout."""
        keys, highest, count = self.zmpop_args(args)
        wait = parse_timeout(timeout)

        def pop(key: bytes) -> bytes | None:
            popped = self.zset_pop(key, count, highest)
            return self.zmpop_reply(key, popped) if popped else None

        for key in keys:
            reply = pop(key)
            if reply is not None:
                return reply
        if not self.server.blocking.may_block:
            return self.null_array
        self._wait(keys, lambda key: pop(key) if self._zset_ready(key) else None, wait, self.null_array)
        return None
