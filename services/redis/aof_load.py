"""Loading the data set at start, in slices so the reactor (and every other service) carries on.

What is loaded is a list of files, each taken whole in turn: our own
``appendonly.aof``; or redis-server's files, imported once: the base and
incremental files of Redis 7.0's ``appendonlydir`` (named by its manifest),
or a ``dump.rdb`` snapshot.  A file that starts with ``REDIS`` begins with
an RDB snapshot (a ``dump.rdb``, an RDB base, or the RDB preamble of an
append-only file) and any commands follow its checksum.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linechat.services.redis.aof import TruncatedAOFError, read_commands
from linechat.services.redis.aof_manifest import ManifestError, read_manifest
from linechat.services.redis.aof_rewrite import write_snapshot
from linechat.services.redis.commands import DataCommands
from linechat.services.redis.protocol import TABLE
from linechat.services.redis.rdb_file import RDB_MAGIC, RdbFileError, RdbReader
from linechat.services.redis.resp import RespError

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["AofCorruptError", "AofLoader", "LoadPart"]


class AofCorruptError(RuntimeError):
    """A file to load is corrupt or cannot be used: the server refuses to start (the text names file and offset)."""


class _Replayer(DataCommands):
    """Runs the commands of the append-only file against the keyspace, without a connection."""

    table = TABLE

    def __init__(self, server: RedisService) -> None:
        self.server = server
        self.dbindex = 0
        self.db = server.dbs[0]
        self.argv: list[bytes] = []

    def reset(self) -> None:
        """A new file starts in database 0, as redis-server replays each file with a client of its own."""
        self.dbindex = 0
        self.db = self.server.dbs[0]

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


@dataclass
class LoadPart:
    """One file to load and how to treat it."""

    path: Path
    size: int
    #: A snapshot (dump.rdb): RDB only, and keys already past their deadline are dropped.
    rdb: bool = False
    #: The last file of the set: a cut tail is loaded up to its last whole command (else refused).
    last: bool = True
    #: Our own file: a cut tail is also cut off the file, so new records follow a whole one.
    ours: bool = True


class AofLoader:
    """Loads a list of files a slice at a time; :meth:`step` says when it is done.

    Commands between ``MULTI`` and ``EXEC`` (a transaction or a script's
    effects) are applied together at ``EXEC``: a file that ends inside one is
    cut back to before its ``MULTI``, as Redis does; a file cut inside a
    record is cut back to the end of the last whole one (both logged as
    ``aof_truncated``), if it is the last file.  Anything else that is not
    well formed raises :class:`AofCorruptError` naming the file and the byte
    offset.  :attr:`path` is the append-only file to write to afterwards (None:
    none); when the files loaded were imported (:attr:`imported`) it is first
    written afresh from the data set.
    """

    def __init__(
        self,
        server: RedisService,
        path: Path | None,
        parts: list[LoadPart] | None = None,
        *,
        source: str = "aof",
    ) -> None:
        self.server = server
        self.path = path
        if parts is None:
            parts = [LoadPart(path, path.stat().st_size)] if path is not None and path.exists() else []
        self.parts = parts
        #: "aof" (our file), "aof-multipart" (redis-server's appendonlydir) or "rdb" (a dump.rdb).
        self.source = source
        self.imported = source != "aof"
        self.total = sum(part.size for part in parts)
        self.loaded = 0  # bytes loaded so far (loading_loaded_bytes)
        self.commands = 0
        self.keys = 0  # keys read from RDB data (rdb_last_load_keys_loaded)
        self.expired = 0  # keys of a snapshot dropped as already expired (rdb_last_load_keys_expired)
        self.started = time.time()
        self._replayer = _Replayer(server)
        self._pause = server.settings.key_load_delay / 1_000_000  # key-load-delay: per command or key
        self._work = self._load_all()

    @classmethod
    def from_manifest(cls, server: RedisService, manifest_path: Path, target: Path | None) -> AofLoader:
        """Import redis-server 7.0's multi-part AOF: base, then incremental files (AofCorruptError if unusable)."""
        try:
            files = read_manifest(manifest_path).files
        except (ManifestError, OSError) as exc:
            raise AofCorruptError(f"cannot import the multi-part AOF: {exc}") from None
        parts = [
            LoadPart(file, file.stat().st_size, last=i == len(files) - 1, ours=False) for i, file in enumerate(files)
        ]
        return cls(server, target, parts, source="aof-multipart")

    @classmethod
    def from_rdb(cls, server: RedisService, rdb_path: Path, target: Path | None) -> AofLoader:
        """Import a redis-server snapshot (dump.rdb)."""
        return cls(server, target, [LoadPart(rdb_path, rdb_path.stat().st_size, rdb=True, ours=False)], source="rdb")

    # ------------------------------------------------------------------ the work, one unit at a time

    def _load_all(self) -> Iterator[None]:
        done = 0
        for part in self.parts:
            try:
                data = part.path.read_bytes()
            except OSError as exc:
                raise AofCorruptError(f"cannot read {part.path}: {exc}") from None
            self._replayer.reset()
            pos = 0
            if data.startswith(RDB_MAGIC):
                pos = yield from self._load_rdb(part, data, done)
                if part.rdb and pos < len(data):
                    self.server.log.warning("rdb_trailing_bytes", path=str(part.path), ignored_bytes=len(data) - pos)
            elif part.rdb:
                raise AofCorruptError(
                    f"the RDB file {part.path} cannot be loaded: bad RDB file: no REDIS magic at offset 0"
                )
            if not part.rdb and pos < len(data):
                yield from self._replay(part, data, pos, done)
            done += part.size
            self.loaded = done

    def _load_rdb(self, part: LoadPart, data: bytes, done: int) -> Generator[None, None, int]:
        """The RDB at the start of *data*; returns the offset past its checksum (yield after each key)."""
        server = self.server
        dbs = server.dbs
        reader = RdbReader(data, 0, len(dbs))
        # A snapshot drops what has expired; a preamble keeps it, as redis-server does: the commands after
        # it may still touch such a key (nothing expires while loading).
        drop_expired = part.rdb
        now = server.now_ms()
        pause = self._pause
        try:
            for item in reader.records():
                db = dbs[item.db]
                if item.key in db.data:
                    raise RdbFileError(
                        f"bad RDB file: key {item.key!r} twice in database {item.db} at offset {reader.pos}"
                    )
                if drop_expired and item.expire_ms is not None and item.expire_ms <= now:
                    self.expired += 1
                else:
                    db.set(item.key, item.value)
                    if item.expire_ms is not None:
                        db.set_deadline(item.key, item.expire_ms)
                    if item.idle is not None:
                        db.access[item.key] = db.lru_clock - item.idle
                    self.keys += 1
                self.loaded = done + reader.pos
                if pause:
                    time.sleep(pause)
                yield
        except RdbFileError as exc:
            what = "RDB file" if part.rdb else "RDB part of the append-only file"
            raise AofCorruptError(
                f"the {what} {part.path} cannot be loaded: {exc} (make a backup of it, then see redis-check-rdb)"
            ) from None
        if reader.aux.get(b"redis-ver"):
            server.log.info(
                "rdb_loaded",
                path=str(part.path),
                rdb_version=reader.version,
                redis_ver=reader.aux[b"redis-ver"].decode("latin-1"),
            )
        return reader.end

    def _replay(self, part: LoadPart, data: bytes, start: int, done: int) -> Iterator[None]:
        """The commands of *data* from *start* (yield after each)."""
        replayer = self._replayer
        pending: list[list[bytes]] | None = None
        valid = start  # end of the last record outside a transaction
        pause = self._pause
        count = 0
        try:
            for argv, end in read_commands(data, start):
                name = argv[0].upper()
                if name == b"MULTI" and len(argv) == 1:
                    pending = []
                elif name == b"EXEC" and len(argv) == 1 and pending is not None:
                    for queued in pending:
                        replayer.run(queued)
                    self.commands += len(pending)
                    pending = None
                    valid = end
                elif pending is not None:
                    pending.append(argv)
                else:
                    replayer.run(argv)
                    self.commands += 1
                    valid = end
                count += 1
                if pause:
                    time.sleep(pause)
                    self.loaded = done + end
                    yield
                elif not count & 63:  # a pause every command would cost the replay a few percent
                    self.loaded = done + end
                    yield
            if pending is not None:
                raise TruncatedAOFError(valid)
        except TruncatedAOFError as cut:
            cut_at = valid if pending is not None else cut.valid
            if not part.last:
                raise AofCorruptError(
                    f"the append-only file {part.path} is cut short at offset {cut_at}, "
                    "and only the last file of a multi-part AOF may be"
                ) from None
            self.server.log.warning(
                "aof_truncated", path=str(part.path), valid_bytes=cut_at, dropped_bytes=len(data) - cut_at
            )
            if part.ours:
                # New records must follow a complete one, or the file stays unreadable.
                os.truncate(part.path, cut_at)
        except ValueError as exc:
            raise AofCorruptError(
                f"the append-only file {part.path} is corrupt: {exc} "
                "(make a backup of it, then see redis-check-aof --fix)"
            ) from None

    # ------------------------------------------------------------------ driving

    def step(self, budget: float | None) -> bool:
        """Load for about *budget* seconds (None: to the end); True when everything is loaded."""
        deadline = time.perf_counter() + budget if budget is not None else None
        # The work yields after each key of RDB data, and after every 64 commands (each one with a pause).
        for _ in self._work:
            if deadline is not None and time.perf_counter() > deadline:
                return False
        self.loaded = self.total
        return True

    def eta_seconds(self) -> int:
        """Seconds left at the speed so far (loading_eta_seconds), 1 until something was loaded."""
        elapsed = time.time() - self.started
        if not self.loaded or elapsed <= 0:
            return 1
        return int((self.total - self.loaded) / (self.loaded / elapsed))


def write_imported(server: RedisService, target: Path) -> int:
    """Write the data set as our append-only file at *target* (a temporary file renamed in); the bytes written.

    Once it is there it is the file loaded at the next start, so it must be
    whole: written, fsynced, renamed, the directory fsynced.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f"temp-import-{os.getpid()}.aof")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        size = write_snapshot(fd, server.dbs, server.now_ms())
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(temp, target)
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return size
