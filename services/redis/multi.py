"""Transactions: MULTI, EXEC, DISCARD (Redis's multi.c)."""

from __future__ import annotations

from linechat.services.redis.base import ClientContext
from linechat.services.redis.resp import OK, error
from linechat.services.redis.table import redis_command

__all__ = ["TransactionCommands"]


class TransactionCommands(ClientContext):
    """MULTI/EXEC transactions of one connection."""

    _multi: list[list[bytes]] | None
    _multi_failed: bool

    @redis_command(
        "MULTI",
        arity=1,
        flags="noscript loading stale fast allow_busy",
        group="transactions",
        in_multi="run",
        fastpath=False,
    )
    def cmd_multi(self) -> bytes:
        """Start a transaction: later commands are queued until EXEC or DISCARD."""
        if self._multi is not None:
            return error("ERR MULTI calls can not be nested")
        self._multi = []
        self._multi_failed = False
        return OK

    @redis_command(
        "EXEC",
        arity=1,
        flags="noscript loading stale skip_slowlog",
        group="transactions",
        in_multi="run",
        fastpath=False,
    )
    def cmd_exec(self) -> bytes:
        """Run the queued commands one after another; reply with all their replies as one array."""
        if self._multi is None:
            return error("ERR EXEC without MULTI")
        queued, failed = self._multi, self._multi_failed
        self._multi = None
        self._multi_failed = False
        if failed:
            return error("EXECABORT Transaction discarded because of previous errors.")
        # One reactor turn runs them all, so no other client's command comes between.
        replies = [self._execute(argv) or self.null for argv in queued]
        return b"*%d\r\n%s" % (len(replies), b"".join(replies))

    @redis_command(
        "DISCARD",
        arity=1,
        flags="noscript loading stale fast allow_busy",
        group="transactions",
        in_multi="run",
        fastpath=False,
    )
    def cmd_discard(self) -> bytes:
        """Drop the queued commands and leave the transaction."""
        if self._multi is None:
            return error("ERR DISCARD without MULTI")
        self._multi = None
        self._multi_failed = False
        return OK
