"""Replaying the append-only file at start, in slices so the reactor (and every other service) carries on."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from linechat.services.redis.aof import TruncatedAOFError, read_commands
from linechat.services.redis.commands import DataCommands
from linechat.services.redis.protocol import TABLE
from linechat.services.redis.resp import RespError

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["AofCorruptError", "AofLoader"]


class AofCorruptError(RuntimeError):
    """The file is not RESP somewhere before its end: the server refuses to start (the offset is in the text)."""


class _Replayer(DataCommands):
    """Runs the commands of the append-only file against the keyspace, without a connection."""

    table = TABLE

    def __init__(self, server: RedisService) -> None:
        self.server = server
        self.dbindex = 0
        self.db = server.dbs[0]
        self.argv: list[bytes] = []

    def run(self, argv: list[bytes]) -> None:
        """Apply one recorded command; commands that fail are logged and skipped."""
        name = argv[0].decode("latin-1").upper()
        spec = self.table.get(name)
        args = argv[1:]
        if spec is None or spec.func is None or not spec.accepts(len(args)):
            self.server.log.warning("aof_command_skipped", command=name, reason="unknown or bad arity")
            return
        # A container (XGROUP, ...) is as writing as the subcommand it runs.
        sub = spec.subcommands.get(args[0].upper().decode("latin-1")) if spec.subcommands and args else None
        if not (sub if sub is not None else spec).write and name != "SELECT":
            self.server.log.warning("aof_command_skipped", command=name, reason="not a write command")
            return
        self.argv = argv
        try:
            spec.func(self, *args)
        except RespError as exc:
            self.server.log.warning("aof_command_failed", command=name, error=str(exc))


class AofLoader:
    """Replays one file a slice at a time; :meth:`step` says when it is done.

    Commands between ``MULTI`` and ``EXEC`` (a transaction or a script's
    effects) are applied together at ``EXEC``: a file that ends inside one is
    cut back to before its ``MULTI``, as Redis does; a file cut inside a
    record is cut back to the end of the last whole one (both logged as
    ``aof_truncated``).  Anything else that is not RESP raises
    :class:`AofCorruptError` naming the byte offset.
    """

    def __init__(self, server: RedisService, path: Path) -> None:
        self.server = server
        self.path = path
        self.data = path.read_bytes() if path.exists() else b""
        self.total = len(self.data)
        self.loaded = 0  # bytes replayed so far (loading_loaded_bytes)
        self.commands = 0
        self.started = time.time()
        self._replayer = _Replayer(server)
        self._records = read_commands(self.data)
        self._pending: list[list[bytes]] | None = None
        self._valid = 0  # end of the last record outside a transaction

    def step(self, budget: float | None) -> bool:
        """Replay for about *budget* seconds (None: to the end); True when the whole file is loaded."""
        deadline = time.perf_counter() + budget if budget is not None else None
        replayer = self._replayer
        done = 0
        pause = self.server.settings.key_load_delay / 1_000_000
        try:
            for argv, end in self._records:
                name = argv[0].upper()
                if name == b"MULTI" and len(argv) == 1:
                    self._pending = []
                elif name == b"EXEC" and len(argv) == 1 and self._pending is not None:
                    for queued in self._pending:
                        replayer.run(queued)
                    self.commands += len(self._pending)
                    self._pending = None
                    self._valid = end
                elif self._pending is not None:
                    self._pending.append(argv)
                else:
                    replayer.run(argv)
                    self.commands += 1
                    self._valid = end
                self.loaded = end
                done += 1
                if pause:
                    time.sleep(pause)
                if deadline is not None and (pause or not done & 63) and time.perf_counter() > deadline:
                    return False
            if self._pending is not None:
                raise TruncatedAOFError(self._valid)
        except TruncatedAOFError as cut:
            cut_at = self._valid if self._pending is not None else cut.valid
            self.server.log.warning(
                "aof_truncated", path=str(self.path), valid_bytes=cut_at, dropped_bytes=self.total - cut_at
            )
            # New records must follow a complete one, or the file stays unreadable.
            os.truncate(self.path, cut_at)
        except ValueError as exc:
            raise AofCorruptError(
                f"the append-only file {self.path} is corrupt: {exc} "
                "(make a backup of it, then see redis-check-aof --fix)"
            ) from None
        self.loaded = self.total
        self.data = b""
        return True

    def eta_seconds(self) -> int:
        """Seconds left at the speed so far (loading_eta_seconds), 1 until something was loaded."""
        elapsed = time.time() - self.started
        if not self.loaded or elapsed <= 0:
            return 1
        return int((self.total - self.loaded) / (self.loaded / elapsed))
