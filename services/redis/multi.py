"""Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis's multi.c)."""

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
        """Run the queued commands one after another; reply with all their replies as one array.

        The reply is a null array instead when a watched key changed (or
        expired) since WATCH, as in Redis 7.0.
        """
        if self._multi is None:
            return error("ERR EXEC without MULTI")
        queued, failed = self._multi, self._multi_failed
        self._multi = None
        self._multi_failed = False
        server = self.server
        if self.watching and server.watched_key_expired(self):
            self.dirty_cas = True
        dirty = self.dirty_cas
        self._unwatch()
        if failed:
            return error("EXECABORT Transaction discarded because of previous errors.")
        if dirty:
            return self.null_array
        # One reactor turn runs them all, so no other client's command comes
        # between; the append-only file wraps their changes in MULTI/EXEC.
        # Blocking commands do not block, and the clients the writes wake
        # are served once the whole transaction has run.
        aof = server.aof
        if aof is not None:
            aof.begin()
        self.in_exec = True  # the ACL rules are checked again: they may have changed since queueing
        try:
            with server.blocking.atomic():
                replies = [self._execute(argv) or self.null for argv in queued]
        finally:
            self.in_exec = False
            if aof is not None:
                aof.end()
        return b"*%d\r\n%s" % (len(replies), b"".join(replies))

    def _unwatch(self) -> None:
        if self.watching:
            self.server.unwatch_all(self)
        self.dirty_cas = False

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
        self._unwatch()
        return OK

    @redis_command(
        "WATCH",
        arity=-2,
        flags="noscript loading stale fast allow_busy",
        keys=(1, -1, 1),
        key_flags="RO",
        group="transactions",
        in_multi="run",
        fastpath=False,
    )
    def cmd_watch(self, key: bytes, *keys: bytes) -> bytes:
        """Make the next EXEC fail if any of these keys changes, is deleted, expires or is flushed first."""
        if self._multi is not None:
            return error("ERR WATCH inside MULTI is not allowed")
        if not self.dirty_cas:  # already doomed: no point watching more
            for k in (key, *keys):
                self.server.watch(self, self.dbindex, k)
        return OK

    @redis_command(
        "UNWATCH", arity=1, flags="noscript loading stale fast allow_busy", group="transactions", fastpath=False
    )
    def cmd_unwatch(self) -> bytes:
        """Forget the watched keys."""
        self._unwatch()
        return OK
