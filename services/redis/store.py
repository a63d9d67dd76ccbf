"""The keyspace: databases of typed values, deadlines, lazy and active expiry."""

from __future__ import annotations

import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "MAX_RANDOM_REPEATS",
    "RNG",
    "Database",
    "copy_value",
    "encoding_of",
    "is_int_text",
    "random_items",
    "register_type",
    "type_name",
]

_TYPE_NAMES: dict[type, bytes] = {
    bytes: b"string",
    # A string that a bit command (SETBIT, BITFIELD, PFADD...) changes in place.
    bytearray: b"string",
    deque: b"list",
    dict: b"hash",
    set: b"set",
}


#: The keyspace's own generator for every random pick (SRANDMEMBER, RANDOMKEY, the expiry cycle...): the
#: process-wide ``random`` state belongs to the application the service runs in (a test, say), which may seed
#: it or watch it; the service neither moves it nor is steered by it.
RNG = random.Random()
# As the random module does for its own: a forked child does not repeat its parent's picks.
os.register_at_fork(after_in_child=RNG.seed)

#: Most elements a random pick with repeats (negative count) returns; Redis would stream any number.
MAX_RANDOM_REPEATS = 1 << 24


def random_items(collection: Any, count: int, repeats: bool) -> list[Any]:
    """*count* random elements of a set or dict (keys): distinct unless *repeats*; all of them if too few."""
    if repeats:
        pool = list(collection)
        return [pool[RNG.randrange(len(pool))] for _ in range(count)]
    if count >= len(collection):
        return list(collection)
    return RNG.sample(list(collection), count)


def register_type(kind: type, name: bytes) -> None:
    """Give a value class the name TYPE reports (data type modules register their own classes)."""
    _TYPE_NAMES[kind] = name


def copy_value(value: Any) -> Any:
    """An independent copy of a stored value (COPY)."""
    if type(value) is bytes:
        return value
    if type(value) in (bytearray, deque, dict, set):
        return type(value)(value)
    return value.copy()


_INT_TEXT = re.compile(rb"-?[1-9][0-9]{0,18}|0")


def is_int_text(value: bytes) -> bool:
    """True if Redis would store this string as an integer (no sign but '-', no leading zero, 64 bits)."""
    return len(value) <= 20 and _INT_TEXT.fullmatch(value) is not None and -(1 << 63) <= int(value) < (1 << 63)


def encoding_of(value: Any) -> bytes:
    """The encoding Redis 7.0 reports for a value of this size and content (OBJECT ENCODING).

    Redis keeps a value in its compact encoding until it outgrows it and
    never converts back; this answer follows the current contents only.
    """
    kind = type(value)
    if kind is bytes:
        if is_int_text(value):
            return b"int"
        return b"embstr" if len(value) <= 44 else b"raw"
    if kind is bytearray:
        return b"raw"  # as Redis, whose bit commands unshare a string into its raw encoding
    if kind is deque:
        return b"quicklist"
    if kind is dict:
        small = len(value) <= 128 and all(len(k) <= 64 and len(v) <= 64 for k, v in value.items())
        return b"listpack" if small else b"hashtable"
    if kind is set:
        return b"intset" if len(value) <= 512 and all(is_int_text(m) for m in value) else b"hashtable"
    name = getattr(value, "encoding", None)
    return name() if callable(name) else b"raw"


def type_name(value: Any) -> bytes:
    """The name TYPE reports for a stored value."""
    return _TYPE_NAMES.get(type(value), b"none")


class Database:
    """One numbered database: values by key, plus deadlines (ms since the epoch) for some keys.

    Values are ``bytes`` (strings; ``bytearray`` once a bit command changed one in place),
    ``deque`` (lists), ``dict`` (hashes), ``set`` (sets) and ``SortedSet`` (sorted sets).
    Keys with a deadline are also kept in a list so the active expiry cycle
    can sample them at random in O(1).
    """

    __slots__ = (
        "_clock",
        "_on_expire",
        "_on_ready",
        "_sample_keys",
        "_sample_pos",
        "access",
        "blocked",
        "data",
        "expires",
        "index",
        "lru_clock",
    )

    def __init__(
        self,
        index: int,
        clock: Callable[[], int],
        on_expire: Callable[[Database, bytes], None],
        on_ready: Callable[[Database, bytes], None] | None = None,
    ) -> None:
        self.index = index
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        #: Clients blocked on each key (BLPOP, XREAD BLOCK...), first blocked first.
        self.blocked: dict[bytes, Any] = {}
        self._on_ready = on_ready
        self._sample_keys: list[bytes] = []
        self._sample_pos: dict[bytes, int] = {}
        self._clock = clock
        self._on_expire = on_expire
        #: Seconds (a coarse clock, moved by the expiry cycle) of each key's last read or write (OBJECT IDLETIME).
        self.access: dict[bytes, int] = {}
        self.lru_clock = 0  # set by the server once its clock runs, then at each expiry cycle

    # ------------------------------------------------------------------ access

    def get(self, key: bytes) -> Any:
        """Return the live value of *key* or None, expiring it first if its time has come."""
        if self.expires and key in self.expires and self.expires[key] <= self._clock():
            self._expire(key)
            return None
        value = self.data.get(key)
        if value is not None:
            self.access[key] = self.lru_clock
        return value

    def exists(self, key: bytes) -> bool:
        """True if *key* holds a live value."""
        return self.get(key) is not None

    def set(self, key: bytes, value: Any, keep_ttl: bool = False) -> None:
        """Store *value* under *key*; any deadline is dropped unless *keep_ttl*."""
        self.data[key] = value
        self.access[key] = self.lru_clock
        if self.blocked and key in self.blocked and self._on_ready is not None:
            self._on_ready(self, key)  # a client waits for this key: serve it after this command
        if not keep_ttl and self.expires and key in self.expires:
            self.persist(key)

    def delete(self, key: bytes) -> bool:
        """Remove *key*; True if it held a live value."""
        if self.get(key) is None:
            return False
        del self.data[key]
        self.access.pop(key, None)
        if key in self.expires:
            self.persist(key)
        return True

    def clear(self) -> None:
        """Remove every key."""
        self.data.clear()
        self.access.clear()
        self.expires.clear()
        self._sample_keys.clear()
        self._sample_pos.clear()

    def __len__(self) -> int:
        return len(self.data)

    def live_keys(self) -> Iterator[bytes]:
        """Iterate over the keys that have not expired (without deleting the others)."""
        now = self._clock()
        expires = self.expires
        for key in list(self.data):
            deadline = expires.get(key)
            if deadline is None or deadline > now:
                yield key

    # ------------------------------------------------------------------ deadlines

    def deadline(self, key: bytes) -> int | None:
        """The deadline of *key* in ms since the epoch, or None."""
        return self.expires.get(key)

    def set_deadline(self, key: bytes, when_ms: int) -> None:
        """Give an existing key a deadline."""
        if key not in self.expires:
            self._sample_pos[key] = len(self._sample_keys)
            self._sample_keys.append(key)
        self.expires[key] = when_ms

    def persist(self, key: bytes) -> bool:
        """Drop the deadline of *key*; True if it had one."""
        if self.expires.pop(key, None) is None:
            return False
        # Swap-remove from the sampling list.
        pos = self._sample_pos.pop(key)
        last = self._sample_keys.pop()
        if last != key:
            self._sample_keys[pos] = last
            self._sample_pos[last] = pos
        return True

    def _expire(self, key: bytes) -> None:
        self.data.pop(key, None)
        self.access.pop(key, None)
        self.persist(key)
        self._on_expire(self, key)

    def expire_cycle(self, samples: int = 20) -> tuple[int, int]:
        """Test up to *samples* random keys with a deadline; expire the dead. Return (tested, expired)."""
        keys = self._sample_keys
        if not keys:
            return 0, 0
        now = self._clock()
        tested = min(samples, len(keys))
        expired = 0
        for _ in range(tested):
            if not keys:
                break
            key = keys[RNG.randrange(len(keys))]
            if self.expires[key] <= now:
                self._expire(key)
                expired += 1
        return tested, expired
