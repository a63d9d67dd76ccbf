"""Sets: SADD, SMEMBERS and the other commands on set values (Redis's t_set.c)."""

from __future__ import annotations

from linechat.services.redis.base import (
    SYNTAX,
    CommandContext,
    int_arg,
)
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    INT64_MIN,
    ONE,
    ZERO,
    RespError,
    array,
    bulk,
    integer,
    parse_int,
)
from linechat.services.redis.scan import EMPTY_SCAN, SMALL, matching, parse_cursor, parse_scan_options, scan_reply
from linechat.services.redis.store import MAX_RANDOM_REPEATS, random_items
from linechat.services.redis.store import is_int_text as encoding_of_member_is_int
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["SetCommands"]


class SetCommands(CommandContext):
    """The set commands."""

    @redis_command("SADD", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="set")
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

    @redis_command("SREM", arity=-3, flags="write fast", keys=(1, 1, 1), key_flags="RW delete", group="set")
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

    @redis_command(
        "SMEMBERS", arity=2, flags="readonly", keys=(1, 1, 1), group="set", tips="nondeterministic_output_order"
    )
    def cmd_smembers(self, key: bytes) -> bytes:
        """Every member of a set."""
        return self.dialect.set_reply(self._typed(key, set) or ())

    @redis_command("SISMEMBER", arity=3, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="set")
    def cmd_sismember(self, key: bytes, member: bytes) -> bytes:
        """Whether a value is a member of a set."""
        members = self._typed(key, set)
        return ONE if members is not None and member in members else ZERO

    @redis_command("SCARD", arity=2, flags="readonly fast", keys=(1, 1, 1), key_flags="RO", group="set")
    def cmd_scard(self, key: bytes) -> bytes:
        """Number of members in a set."""
        return integer(len(self._typed(key, set) or ()))

    @redis_command("SMISMEMBER", arity=-3, flags="readonly fast", keys=(1, 1, 1), group="set")
    def cmd_smismember(self, key: bytes, member: bytes, *more: bytes) -> bytes:
        """Whether each of several values is a member of a set."""
        members = self._typed(key, set) or ()
        names = (member, *more)
        return b"*%d\r\n" % len(names) + b"".join(ONE if m in members else ZERO for m in names)

    @redis_command(
        "SMOVE",
        arity=4,
        flags="write fast",
        keys=[KeySpec(("RW", "access", "delete"), 1), KeySpec(("RW", "insert"), 2)],
        group="set",
    )
    def cmd_smove(self, source: bytes, destination: bytes, member: bytes) -> bytes:
        """Move a member from one set to another."""
        src = self._typed(source, set)
        dst = self._typed(destination, set)
        if src is None:
            return ZERO
        if src is dst:
            return ONE if member in src else ZERO
        if member not in src:
            return ZERO
        src.discard(member)
        if not src:
            self.db.delete(source)
        if dst is None:
            dst = set()
            self.db.set(destination, dst)
        dst.add(member)
        self._propagate()
        return ONE

    @redis_command(
        "SPOP",
        arity=-2,
        flags="write fast",
        keys=(1, 1, 1),
        key_flags="RW access delete",
        group="set",
        tips="nondeterministic_output",
    )
    def cmd_spop(self, key: bytes, *count: bytes) -> bytes:
        """Remove and return random members."""
        if len(count) > 1:
            raise RespError(SYNTAX)
        wanted = None
        if count:
            wanted = parse_int(count[0])
            if wanted is None or wanted < 0:
                raise RespError("ERR value is out of range, must be positive")
        members = self._typed(key, set)
        if members is None:
            return self.null if wanted is None else self.dialect.set_reply(())
        if wanted == 0:
            return self.dialect.set_reply(())
        chosen = random_items(members, 1 if wanted is None else wanted, False)
        members.difference_update(chosen)
        if not members:
            self.db.delete(key)
        # Replay removes the very members popped here.
        self._propagate([b"SREM", key, *chosen])
        return bulk(chosen[0]) if wanted is None else self.dialect.set_reply(chosen)

    @redis_command(
        "SRANDMEMBER", arity=-2, flags="readonly", keys=(1, 1, 1), group="set", tips="nondeterministic_output"
    )
    def cmd_srandmember(self, key: bytes, *count: bytes) -> bytes:
        """Random members: one, COUNT distinct (count > 0) or with repeats (count < 0)."""
        if len(count) > 1:
            raise RespError(SYNTAX)
        wanted = None
        if count:
            wanted = int_arg(count[0])
            if wanted == INT64_MIN:
                raise RespError(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
                )
            if wanted < -MAX_RANDOM_REPEATS:
                raise RespError("ERR value is out of range")
        members = self._typed(key, set)
        if wanted is None:
            return self.null if members is None else bulk(random_items(members, 1, False)[0])
        if members is None or wanted == 0:
            return EMPTY_ARRAY
        return array(random_items(members, abs(wanted), wanted < 0))

    def _sets(self, keys: tuple[bytes, ...]) -> list[set[bytes] | None]:
        return [self._typed(k, set) for k in keys]

    def _combine(self, op: str, keys: tuple[bytes, ...]) -> set[bytes]:
        sets = self._sets(keys)
        if op == "inter":
            if any(s is None for s in sets):
                return set()
            ordered = sorted(sets, key=len)  # type: ignore[arg-type]
            return set(ordered[0]).intersection(*ordered[1:])  # type: ignore[arg-type]
        if op == "union":
            return set().union(*(s for s in sets if s))
        first = sets[0]
        if not first:
            return set()
        return set(first).difference(*(s for s in sets[1:] if s))

    def _store_set(self, destination: bytes, result: set[bytes]) -> bytes:
        self.db.delete(destination)
        if result:
            self.db.set(destination, result)
            self._propagate([b"DEL", destination])
            self._propagate([b"SADD", destination, *result])
        else:
            self._propagate([b"DEL", destination])
        return integer(len(result))

    @redis_command(
        "SINTER", arity=-2, flags="readonly", keys=(1, -1, 1), group="set", tips="nondeterministic_output_order"
    )
    def cmd_sinter(self, key: bytes, *keys: bytes) -> bytes:
        """Members in every one of the sets."""
        return self.dialect.set_reply(self._combine("inter", (key, *keys)))

    @redis_command(
        "SUNION", arity=-2, flags="readonly", keys=(1, -1, 1), group="set", tips="nondeterministic_output_order"
    )
    def cmd_sunion(self, key: bytes, *keys: bytes) -> bytes:
        """Members in any of the sets."""
        return self.dialect.set_reply(self._combine("union", (key, *keys)))

    @redis_command(
        "SDIFF", arity=-2, flags="readonly", keys=(1, -1, 1), group="set", tips="nondeterministic_output_order"
    )
    def cmd_sdiff(self, key: bytes, *keys: bytes) -> bytes:
        """Members of the first set in none of the others."""
        return self.dialect.set_reply(self._combine("diff", (key, *keys)))

    @redis_command(
        "SINTERSTORE",
        arity=-3,
        flags="write denyoom",
        keys=[KeySpec(("RW", "update"), 1), KeySpec(("RO", "access"), 2, -1)],
        legacy_keys=(1, -1, 1),
        group="set",
    )
    def cmd_sinterstore(self, destination: bytes, key: bytes, *keys: bytes) -> bytes:
        """Store the intersection of sets; return its size."""
        return self._store_set(destination, self._combine("inter", (key, *keys)))

    @redis_command(
        "SUNIONSTORE",
        arity=-3,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2, -1)],
        legacy_keys=(1, -1, 1),
        group="set",
    )
    def cmd_sunionstore(self, destination: bytes, key: bytes, *keys: bytes) -> bytes:
        """Store the union of sets; return its size."""
        return self._store_set(destination, self._combine("union", (key, *keys)))

    @redis_command(
        "SDIFFSTORE",
        arity=-3,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2, -1)],
        legacy_keys=(1, -1, 1),
        group="set",
    )
    def cmd_sdiffstore(self, destination: bytes, key: bytes, *keys: bytes) -> bytes:
        """Store the difference of sets; return its size."""
        return self._store_set(destination, self._combine("diff", (key, *keys)))

    @redis_command(
        "SINTERCARD",
        arity=-3,
        flags="readonly",
        keys=[KeySpec(("RO", "access"), 1, keynum=(0, 1, 1))],
        group="set",
    )
    def cmd_sintercard(self, numkeys: bytes, key: bytes, *args: bytes) -> bytes:
        """Size of the intersection of sets, counting up to LIMIT (0: no limit)."""
        count = parse_int(numkeys)
        if count is None or count <= 0:
            raise RespError("ERR numkeys should be greater than 0")
        rest = (key, *args)
        if count > len(rest):
            raise RespError("ERR Number of keys can't be greater than number of args")
        keys = rest[:count]
        options = rest[count:]
        limit = 0
        i = 0
        while i < len(options):
            if options[i].upper() == b"LIMIT" and i + 1 < len(options):
                parsed = parse_int(options[i + 1])
                if parsed is None or parsed < 0:
                    raise RespError("ERR LIMIT can't be negative")
                limit = parsed
                i += 2
            else:
                raise RespError(SYNTAX)
        sets = self._sets(keys)
        if any(not s for s in sets):
            return ZERO
        ordered = sorted(sets, key=len)  # type: ignore[arg-type]
        found = 0
        for member in ordered[0]:  # type: ignore[union-attr]
            if all(member in other for other in ordered[1:]):  # type: ignore[operator]
                found += 1
                if found == limit:
                    break
        return integer(found)

    @redis_command("SSCAN", arity=-3, flags="readonly", keys=(1, 1, 1), group="set", tips="nondeterministic_output")
    def cmd_sscan(self, key: bytes, cursor: bytes, *options: bytes) -> bytes:
        """Iterate over a set's members with a cursor (MATCH, COUNT)."""
        start = parse_cursor(cursor)
        members = self._typed(key, set)
        if members is None:
            return EMPTY_SCAN
        pattern, count, _ = parse_scan_options(options, False)
        if len(members) <= SMALL["set"]:
            nxt = 0
            names = list(members)
            if all(encoding_of_member_is_int(m) for m in names):
                names.sort(key=int)  # Redis's intset keeps them in numeric order
        else:
            nxt, names = self.server.scan_cursors.page(start, lambda: members, count)
            names = [m for m in names if m in members]
        return scan_reply(nxt, matching(names, pattern))
