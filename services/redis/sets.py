"""Sets: SADD, SMEMBERS and the other commands on set values (Redis's t_set.c)."""

from __future__ import annotations

from linechat.services.redis.base import (
    CommandContext,
)
from linechat.services.redis.resp import (
    ONE,
    ZERO,
    integer,
)
from linechat.services.redis.table import redis_command

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
