"""The Redis service: settings, the shared keyspace, pub/sub, expiry and the append-only file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from linechat import Service, ServiceContext, ServiceSettings
from linechat.reactor import Timer
from linechat.services.redis.acl import AclError, User, Users, merge_selector_args
from linechat.services.redis.aof import REWRITE_LIMIT, AppendOnlyFile
from linechat.services.redis.aof_load import AofCorruptError, AofLoader, write_imported
from linechat.services.redis.aof_rewrite import Rewriter, remove_leftovers
from linechat.services.redis.base import ClientContext
from linechat.services.redis.blocking import Blocking
from linechat.services.redis.monitoring import Monitoring
from linechat.services.redis.protocol import TABLE, RedisProtocol
from linechat.services.redis.resp import RESP3, array, glob_match
from linechat.services.redis.scan import ScanCursors
from linechat.services.redis.scripting import ScriptEngine
from linechat.services.redis.store import Database
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from linechat.reactor import Reactor

__all__ = ["RedisService", "RedisSettings"]

#: A file up to this size is replayed inside start(), before any client is served; a larger one in slices.
SYNC_LOAD_BYTES = 1 << 20
#: Seconds of replay per reactor turn while loading in slices.
LOAD_SLICE = 0.02


class RedisSettings(ServiceSettings):
    """Settings of the Redis service (Redis's own names in comments)."""

    port: int = Field(6380, ge=0, le=65535, description="TCP port (6380 so a real Redis can keep 6379)")
    # Redis's own default is 0 (never); an hour reaps abandoned clients that
    # TCP keepalive cannot see (alive but gone quiet).  Subscribers are spared.
    idle_timeout: float | None = Field(
        3600.0, ge=0, description="seconds before an idle client is closed (timeout; 0 or null: never)"
    )
    max_line: int = Field(64 * 1024, ge=16, description="longest inline command in bytes")
    databases: int = Field(16, ge=1, le=1024, description="number of databases (databases)")
    maxclients: int = Field(10000, ge=1, description="clients served before new ones are refused (maxclients)")
    max_bulk_len: int = Field(512 * 1024 * 1024, ge=1, description="largest bulk string (proto-max-bulk-len)")
    max_multibulk_len: int = Field(1024 * 1024, ge=1, description="most arguments in one command")
    appendonly: bool = Field(True, description="log writes to the append-only file (appendonly)")
    appendfsync: Literal["always", "everysec", "no"] = Field("everysec", description="fsync policy (appendfsync)")
    aof_path: Path | None = Field(None, description="append-only file; default <data_dir>/redis/appendonly.aof")
    dbfilename: str = Field(
        "dump.rdb",
        pattern=r"^[^/\x00]+$",
        description="redis-server snapshot imported at start when there is no append-only file (dbfilename)",
    )
    appenddirname: str = Field(
        "appendonlydir",
        pattern=r"^[^/\x00]+$",
        description="redis-server 7.0 multi-part AOF directory imported at start when there is no AOF (appenddirname)",
    )
    auto_aof_rewrite_percentage: int = Field(
        100, ge=0, description="rewrite when the file grew this % past its size after the last rewrite; 0: never"
    )
    auto_aof_rewrite_min_size: int = Field(
        64 * 1024 * 1024, ge=0, description="no automatic rewrite below this many bytes (auto-aof-rewrite-min-size)"
    )
    aof_rewrite_buffer_limit: int = Field(
        REWRITE_LIMIT,
        ge=0,
        description="bytes of writes made during an AOF rewrite kept in memory; beyond, a temporary file beside it",
    )
    rdb_key_save_delay: int = Field(
        0, ge=0, description="microseconds of pause per key in a rewrite's child, to watch rewrites (tests)"
    )
    key_load_delay: int = Field(
        0, ge=0, description="microseconds of pause per replayed command, to watch loading (key-load-delay; tests)"
    )
    hz: int = Field(10, ge=1, le=500, description="active expiry cycles per second (hz)")
    busy_reply_threshold: int = Field(
        5000, ge=0, description="ms a script runs before other clients are answered BUSY (busy-reply-threshold)"
    )
    requirepass: SecretStr | None = Field(
        None, description="password of the default user (requirepass): clients AUTH before anything else"
    )
    enable_debug_command: Literal["no", "yes", "local"] = Field(
        "no", description="who may run DEBUG: nobody, anyone, or clients on loopback (enable-debug-command)"
    )
    protected_mode: bool = Field(
        True, description="with no requirepass, clients not on loopback are refused (protected-mode)"
    )
    aclfile: Path | None = Field(
        None, description="file of ACL users, one ACL LIST line each: loaded at start, ACL SAVE/LOAD (aclfile)"
    )
    hll_sparse_max_bytes: int = Field(
        3000, ge=0, lt=2**63, description="longest sparse HyperLogLog before it turns dense (hll-sparse-max-bytes)"
    )


class RedisService(Service):
    """An in-memory data store speaking the Redis protocol (RESP2, RESP3 and inline)."""

    name = "redis"
    Settings = RedisSettings
    protocol = RedisProtocol
    description = "a Redis-compatible key-value store (RESP2/RESP3, pub/sub, expiry, append-only file)"
    multiprocess = False  # one data set in memory and one append-only file writer

    settings: RedisSettings

    def __init__(
        self, settings: ServiceSettings, context: ServiceContext | None = None, *, reactor: Reactor | None = None
    ) -> None:
        super().__init__(settings, context, reactor=reactor)
        self.loading = False
        #: Keys loaded from RDB data and keys skipped as expired, at the last load (rdb_last_load_keys_*).
        self.last_load = (0, 0)
        #: Clients blocked on keys (BLPOP, XREAD BLOCK...) and the keys writes made ready.
        self.blocking = Blocking(self.reactor)
        self.dbs = [
            Database(i, self._db_clock, self._key_expired, self.blocking.signal) for i in range(self.settings.databases)
        ]
        self.aof: AppendOnlyFile | None = None
        #: The replay in progress (loading in slices), and the background rewrites.
        self.loader: AofLoader | None = None
        self.rewriter = Rewriter(self)
        #: Snapshots of the SCAN/HSCAN/SSCAN/ZSCAN iterations in progress.
        self.scan_cursors = ScanCursors()
        self.subscribers: dict[bytes, set[ClientContext]] = {}
        self.pattern_subscribers: dict[bytes, set[ClientContext]] = {}
        self.shard_subscribers: dict[bytes, set[ClientContext]] = {}  # SSUBSCRIBE
        #: SLOWLOG, LATENCY and MONITOR.
        self.monitoring = Monitoring(self)
        self.commands_processed = 0
        self.expired_keys = 0
        self.connections_received = 0
        self.rejected_connections = 0
        self.auth_failures = 0  # AUTH/HELLO with a wrong password (the password itself is never kept)
        self.peak_memory = 0
        self.run_id = os.urandom(20).hex()
        required = self.settings.requirepass
        secret = required.get_secret_value() if required is not None else ""
        #: requirepass: the default user's password (None: none, every client is authenticated from the start).
        self.password: bytes | None = secret.encode() if secret else None
        #: The ACL users (the default user's password follows requirepass).
        self.acl = Users(TABLE, self.password)
        if self.settings.aclfile is not None and self.settings.aclfile.exists():
            self.load_acl_file(self.settings.aclfile)
        self.config_overrides: dict[bytes, bytes] = {}  # CONFIG SET values kept for CONFIG GET only
        # CLIENT PAUSE: until when, and whether every command (else writes) waits.
        self.paused = False
        self.pause_all = False
        self.pause_until = 0.0
        self._pause_timer: Timer | None = None
        self.started = time.time()
        # Deadlines are Unix times (they go to the AOF); the reactor clock is
        # monotonic (and fake in tests), so keep the offset between the two.
        self._epoch_offset = time.time() - self.reactor.time()
        for db in self.dbs:
            db.lru_clock = self.now_ms() // 1000
        self._expiry_timer: Timer | None = None
        self.script: ScriptEngine | None = None  # the engine while a script runs
        self.busy = False  # a script ran past busy_reply_threshold: others are answered BUSY
        self.busy_threshold = self.settings.busy_reply_threshold / 1000
        self._scripting: ScriptEngine | None = None
        # WATCH: (database, key) -> the clients watching it.
        self.watchers: dict[tuple[int, bytes], set[ClientContext]] = {}
        # True when a change must be reported (an AOF is open or a key is
        # watched), so the handlers' _propagate costs one test otherwise.
        self.propagating = False

    # ------------------------------------------------------------------ time

    def now_ms(self) -> int:
        """The current Unix time in milliseconds, following the reactor's clock."""
        return int((self.reactor.time() + self._epoch_offset) * 1000)

    def now_us(self) -> int:
        """The current Unix time in microseconds, following the reactor's clock."""
        return int((self.reactor.time() + self._epoch_offset) * 1_000_000)

    def _db_clock(self) -> int:
        # While the AOF is replayed nothing expires: later records may still
        # touch a key whose deadline has passed since (Redis does the same).
        if self.loading:
            return 0
        # A script sees the keyspace as of its start: keys do not expire under it.
        script = self.script
        return self.now_ms() if script is None else script.started_ms

    def scripting(self) -> ScriptEngine:
        """The Lua interpreter and script cache (made at first use)."""
        if self._scripting is None:
            self._scripting = ScriptEngine(self)
        return self._scripting

    def _key_expired(self, db: Database, key: bytes) -> None:
        self.expired_keys += 1
        if self.watchers:
            self.touch(db.index, [key])
        if self.aof is not None and not self.loading:
            self.aof.append(db.index, [b"DEL", key])

    # ------------------------------------------------------------------ CLIENT PAUSE

    def pause_clients(self, seconds: float, everything: bool) -> None:
        """Hold clients' commands (all, or those that write) for *seconds*; a longer or stricter pause wins."""
        until = self.reactor.time() + seconds
        if self.paused:
            until = max(until, self.pause_until)
            everything = everything or self.pause_all
        self.paused, self.pause_all, self.pause_until = True, everything, until
        if self._pause_timer is not None:
            self._pause_timer.cancel()
        self._pause_timer = self.reactor.call_at(until, self.unpause_clients)

    def unpause_clients(self) -> None:
        """End CLIENT PAUSE: held commands run, in order, client by client."""
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        self.paused = self.pause_all = False
        for client in self.clients():
            if client._deferred and client._blocked is None:
                self.reactor.call_soon(client._resume)

    def pause_holds(self, spec: Any, client: Any) -> bool:
        """Whether CLIENT PAUSE holds this command now (every command, or those that may write)."""
        if not self.paused:
            return False
        if self.reactor.time() >= self.pause_until:
            self.unpause_clients()
            return False
        if self.pause_all:
            return True
        return bool(spec.write or "may_replicate" in spec.flags)

    def write_refusal(self) -> bytes | None:
        """redis-server's MISCONF line (no ``-``, no CRLF) while the append-only file cannot be written, else None."""
        aof = self.aof
        if aof is None or aof.write_error is None:
            return None
        return b"MISCONF Errors writing to the AOF file: " + aof.write_error.encode("utf-8", "replace")

    # ------------------------------------------------------------------ changes, WATCH

    def _update_propagating(self) -> None:
        self.propagating = self.aof is not None or bool(self.watchers)

    def propagate(self, dbindex: int, argv: list[bytes]) -> None:
        """A command changed data: touch the keys it names (WATCH) and record it in the append-only file."""
        if self.watchers:
            spec = TABLE.get(argv[0].upper().decode("latin-1"))
            if spec is not None:
                self.touch(dbindex, spec.keys(argv))
        if self.aof is not None:
            self.aof.append(dbindex, argv)

    def watch(self, client: ClientContext, dbindex: int, key: bytes) -> None:
        """Let *client*'s next EXEC fail if *key* of database *dbindex* changes or expires."""
        slot = (dbindex, key)
        if slot in client.watching:
            return
        if not client.watching:
            client.watching = {}  # its own, not the shared empty default
        db = self.dbs[dbindex]
        deadline = db.expires.get(key)
        # A key already past its deadline (not yet deleted) is remembered as
        # such: its deletion is then no change (Redis 7.0's watchedKey.expired).
        client.watching[slot] = key in db.data and deadline is not None and deadline <= self.now_ms()
        self.watchers.setdefault(slot, set()).add(client)
        self.propagating = True

    def unwatch_all(self, client: ClientContext) -> None:
        """Forget every key *client* watches."""
        for slot in client.watching:
            clients = self.watchers.get(slot)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self.watchers[slot]
        client.watching.clear()
        self._update_propagating()

    def _dirty(self, client: ClientContext) -> None:
        client.dirty_cas = True
        self.unwatch_all(client)  # dirty already: nothing more to watch until EXEC

    def touch(self, dbindex: int, keys: list[bytes]) -> None:
        """Keys were changed (or deleted, or expired): make the EXEC of their watchers fail."""
        db = self.dbs[dbindex]
        for key in keys:
            clients = self.watchers.get((dbindex, key))
            if not clients:
                continue
            for client in list(clients):
                if client.watching.get((dbindex, key)) and key not in db.data:
                    # Watched after it expired, now deleted: logically no change.
                    client.watching[(dbindex, key)] = False
                    continue
                self._dirty(client)

    def touch_flush(self, dbindex: int | None) -> None:
        """A database (None: every one) is being emptied: touch the watched keys it holds."""
        for (index, key), clients in list(self.watchers.items()):
            if (dbindex is not None and index != dbindex) or key not in self.dbs[index].data:
                continue
            for client in list(clients):
                if client.watching.get((index, key)):
                    client.watching[(index, key)] = False
                    continue
                self._dirty(client)

    def watched_key_expired(self, client: ClientContext) -> bool:
        """True if a key *client* watched while alive has passed its deadline (EXEC then fails)."""
        now = self.now_ms()
        for (index, key), expired_before in client.watching.items():
            if expired_before:
                continue
            deadline = self.dbs[index].expires.get(key)
            if deadline is not None and deadline <= now and key in self.dbs[index].data:
                return True
        return False

    def _active_expire(self) -> None:
        """Sample keys with deadlines, as Redis does: 20 at a time, again while over 25% were dead."""
        if self.script is not None:
            return  # the reactor turns inside a long script: its keys must not change under it
        self.rewriter.cron()
        budget = time.perf_counter() + 0.25 / self.settings.hz  # at most a quarter of each period
        seconds = self.now_ms() // 1000
        for db in self.dbs:
            db.lru_clock = seconds  # the coarse clock of access times (OBJECT IDLETIME)
            if not db.expires:
                continue
            while True:
                tested, expired = db.expire_cycle(20)
                if tested == 0 or expired * 4 <= tested or time.perf_counter() > budget:
                    break

    # ------------------------------------------------------------------ lifecycle

    def aof_path(self) -> Path | None:
        """Where the append-only file lives, or None when there is none."""
        if not self.settings.appendonly:
            return None
        if self.settings.aof_path is not None:
            return self.settings.aof_path
        if self.data_dir is None:
            return None
        return Path(self.data_dir) / "appendonly.aof"

    @property
    def aof_enabled(self) -> bool:
        """True when writes go (or will go, once loaded) to the append-only file."""
        return self.aof is not None or (self.loader is not None and self.loader.path is not None)

    def rdb_path(self) -> Path | None:
        """Where a redis-server snapshot to import would be: ``dbfilename`` beside the append-only file."""
        if self.settings.aof_path is not None:
            folder = self.settings.aof_path.parent
        elif self.data_dir is not None:
            folder = Path(self.data_dir)
        else:
            return None
        return folder / self.settings.dbfilename

    def manifest_path(self, aof: Path) -> Path:
        """Where redis-server 7.0 keeps the manifest of its multi-part AOF, for an append-only file at *aof*."""
        return aof.parent / self.settings.appenddirname / f"{aof.name}.manifest"

    def _make_loader(self) -> AofLoader | None:
        """What to load at start: our file; else redis-server's multi-part AOF; else its dump.rdb (imported once)."""
        path = self.aof_path()
        rdb = self.rdb_path()
        manifest = self.manifest_path(path) if path is not None else None
        if path is not None and path.exists():
            for other in (manifest, rdb):
                if other is not None and other.exists():
                    self.log.info("import_skipped", path=str(other), reason=f"{path.name} exists and is loaded")
            return AofLoader(self, path)
        if manifest is not None and manifest.exists():
            return AofLoader.from_manifest(self, manifest, path)
        if rdb is not None and rdb.exists():
            return AofLoader.from_rdb(self, rdb, path)
        return AofLoader(self, path) if path is not None else None

    def start(self) -> None:
        """Load the data set (a large one in slices, on the reactor), start the expiry timer.

        Our append-only file if there is one; else redis-server's files are
        imported (its multi-part AOF with appendonly on, else its
        ``dump.rdb``) and, with appendonly on, written out as our file.  The
        listeners are already open: while a large file is loaded every
        command without Redis's ``loading`` flag is answered ``-LOADING``.
        The file is opened for appending once the load is done.
        """
        path = self.aof_path()
        if path is not None:
            remove_leftovers(path, self.log)  # of a rewrite a killed process left unfinished
        loader = self._make_loader()
        if loader is not None:
            if loader.total <= SYNC_LOAD_BYTES and not self.settings.key_load_delay:
                self.loading = True
                try:
                    loader.step(None)
                finally:
                    self.loading = False
                self._loaded(loader)
            else:
                self.loading = True
                self.loader = loader
                self.log.info(
                    "aof_loading", source=loader.source, files=[str(p.path) for p in loader.parts], bytes=loader.total
                )
                self.reactor.call_soon(self._load_slice)
        if path is None and self.settings.appendonly:
            self.log.warning("aof_disabled", reason="no data directory and no aof_path")
        self._expiry_timer = self.reactor.call_every(1.0 / self.settings.hz, self._active_expire)

    def _load_slice(self) -> None:
        """One slice of the replay; the next is queued behind whatever else the reactor has to do."""
        loader = self.loader
        if loader is None:
            return  # stopped meanwhile
        try:
            if not loader.step(LOAD_SLICE):
                self.reactor.call_soon(self._load_slice)
                return
            self._loaded(loader)
        except AofCorruptError as exc:
            self.loader = None
            self.log.error("aof_corrupt", error=str(exc))
            # As redis-server: a corrupt file stops the server rather than serve a partial data set.
            raise SystemExit(str(exc)) from None
        self.loader = None
        self.loading = False

    def _loaded(self, loader: AofLoader) -> None:
        self.log.info(
            "aof_loaded",
            source=loader.source,
            files=[str(part.path) for part in loader.parts],
            commands=loader.commands,
            keys=loader.keys,
            expired_keys_skipped=loader.expired,
            bytes=loader.total,
            seconds=round(time.time() - loader.started, 3),
        )
        self.last_load = (loader.keys, loader.expired)
        if loader.path is None:
            return
        if loader.imported:
            # Written before anything else can change: from now on our file is what the next start loads.
            try:
                size = write_imported(self, loader.path)
            except OSError as exc:
                raise AofCorruptError(f"cannot write the imported data set to {loader.path}: {exc}") from None
            self.log.info("import_written", path=str(loader.path), bytes=size)
        self.aof = AppendOnlyFile(
            loader.path, self.settings.appendfsync, self.reactor, self.log, self.settings.aof_rewrite_buffer_limit
        )
        self._update_propagating()

    def stop(self) -> None:
        """End a running rewrite, flush and close the append-only file; stop the timer."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        self.loader = None
        self.loading = False
        self.rewriter.stop()
        if self.aof is not None:
            self.aof.close()
            self.aof = None
            self._update_propagating()

    # ------------------------------------------------------------------ pub/sub

    def subscribe(self, client: ClientContext, name: bytes, pattern: bool) -> None:
        """Add a channel (or pattern) subscription of *client*."""
        table = self.pattern_subscribers if pattern else self.subscribers
        table.setdefault(name, set()).add(client)
        (client.patterns if pattern else client.channels).add(name)
        client._subscribed = True

    def unsubscribe(self, client: ClientContext, name: bytes, pattern: bool) -> None:
        """Remove one subscription of *client* (if it has it)."""
        table = self.pattern_subscribers if pattern else self.subscribers
        members = table.get(name)
        if members is not None:
            members.discard(client)
            if not members:
                del table[name]
        (client.patterns if pattern else client.channels).discard(name)
        client._subscribed = bool(client.channels or client.patterns or client.shard_channels)

    def subscribe_shard(self, client: ClientContext, name: bytes) -> None:
        """Add a shard channel subscription of *client* (SSUBSCRIBE)."""
        self.shard_subscribers.setdefault(name, set()).add(client)
        client.shard_channels.add(name)
        client._subscribed = True

    def unsubscribe_shard(self, client: ClientContext, name: bytes) -> None:
        """Remove one shard channel subscription of *client* (if it has it)."""
        members = self.shard_subscribers.get(name)
        if members is not None:
            members.discard(client)
            if not members:
                del self.shard_subscribers[name]
        client.shard_channels.discard(name)
        client._subscribed = bool(client.channels or client.patterns or client.shard_channels)

    def spublish(self, channel: bytes, message: bytes) -> int:
        """Push *message* to the subscribers of the shard channel *channel*; return how many."""
        members = self.shard_subscribers.get(channel)
        return self._push(members, array([b"smessage", channel, message])) if members else 0

    def unsubscribe_all(self, client: ClientContext) -> None:
        """Remove every subscription of *client*."""
        for name in list(client.channels):
            self.unsubscribe(client, name, False)
        for name in list(client.patterns):
            self.unsubscribe(client, name, True)
        for name in list(client.shard_channels):
            self.unsubscribe_shard(client, name)

    def publish(self, channel: bytes, message: bytes) -> int:
        """Push *message* to the subscribers of *channel* and of matching patterns; return how many."""
        receivers = 0
        members = self.subscribers.get(channel)
        if members:
            receivers += self._push(members, array([b"message", channel, message]))
        for pattern, clients in list(self.pattern_subscribers.items()):
            if glob_match(pattern, channel):
                receivers += self._push(clients, array([b"pmessage", pattern, channel, message]))
        return receivers

    @staticmethod
    def _push(clients: set[ClientContext], payload: bytes) -> int:
        """Send a message built as a RESP2 array; RESP3 clients get it as a push (same bytes but the first)."""
        pushed = b">" + payload[1:]
        targets = list(clients)  # a send may close a client, which leaves the set
        for client in targets:
            client.send(pushed if client.dialect is RESP3 else payload)
        return len(targets)

    # ------------------------------------------------------------------ introspection

    def clients(self) -> list[RedisProtocol]:
        """The connected clients."""
        return [channel.protocol for channel in self.connections]  # type: ignore[misc]

    @property
    def requires_authentication(self) -> bool:
        """True when clients must authenticate (the app warns about a wide bind otherwise)."""
        return self.acl.default_requires_auth

    def load_acl_file(self, path: Path) -> None:
        """Replace the users with those of an ACL file (ACL LIST lines); on an error nothing changes.

        Each line starts from a new user (off, allowed nothing), as in Redis;
        a file without ``default`` gets a fresh one (requirepass applies).
        The default user keeps its object, so its connections stay; the
        clients of every other user are closed, as Redis does on ACL LOAD.
        """
        fresh = Users(TABLE, self.password)
        loaded: dict[bytes, User] = {}
        for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
            words = raw.split()
            if not words:
                continue
            where = f"{path}:{number}"
            if words[0] != b"user" or len(words) < 2:
                raise AclError(f"{where}: line should start with user keyword")
            name = words[1]
            if name in loaded:
                raise AclError(f"{where}: Duplicate user '{name.decode('latin-1')}' found")
            rules, unclosed = merge_selector_args(words[2:])
            if unclosed is not None:
                raise AclError(f"{where}: Unmatched parenthesis in acl selector")
            user = User(name)
            for rule in rules:
                try:
                    user.apply(fresh.commands, rule)
                except AclError as exc:
                    raise AclError(f"{where}: Error in applying operation '{rule.decode('latin-1')}': {exc}") from None
            user.take(user)
            loaded[name] = user
        fresh.users.update(loaded)
        if b"default" in loaded:
            fresh.default = loaded[b"default"]
        old = getattr(self, "acl", None)
        if old is None:
            self.acl = fresh
            return
        old.default.take(fresh.default)
        fresh.default = fresh.users[b"default"] = old.default
        fresh.log = old.log
        self.acl = fresh
        for client in self.clients():
            if client.user is not old.default:
                client.user = old.default
                client.authenticated = False
                client.close()  # after the reply it is sending

    def config_table(self) -> dict[bytes, bytes]:
        """Our settings under the names of Redis's configuration parameters (for CONFIG GET)."""
        s = self.settings
        path = self.aof_path()
        table = {
            b"save": b"",
            b"appendonly": b"yes" if self.aof_enabled else b"no",
            b"appendfsync": s.appendfsync.encode(),
            b"appendfilename": (path.name if path else "appendonly.aof").encode(),
            b"auto-aof-rewrite-percentage": b"%d" % s.auto_aof_rewrite_percentage,
            b"auto-aof-rewrite-min-size": b"%d" % s.auto_aof_rewrite_min_size,
            b"dir": str(path.parent if path else Path.cwd()).encode(),
            b"dbfilename": s.dbfilename.encode(),
            b"appenddirname": s.appenddirname.encode(),
            b"databases": b"%d" % s.databases,
            b"maxclients": b"%d" % s.maxclients,
            b"timeout": b"%d" % int(s.idle_timeout or 0),
            b"port": b"%d" % s.port,
            b"bind": s.host.encode(),
            b"proto-max-bulk-len": b"%d" % s.max_bulk_len,
            b"hz": b"%d" % s.hz,
            b"busy-reply-threshold": b"%d" % int(self.busy_threshold * 1000),
            b"lua-time-limit": b"%d" % int(self.busy_threshold * 1000),
            b"maxmemory": b"0",
            b"maxmemory-policy": b"noeviction",
            b"loglevel": b"notice",
            b"notify-keyspace-events": b"",
            b"slowlog-log-slower-than": b"%d" % self.monitoring.slower_than_us,
            b"slowlog-max-len": b"%d" % (self.monitoring.slowlog.maxlen or 0),
            b"latency-monitor-threshold": b"%d" % self.monitoring.latency_threshold_ms,
            b"cluster-enabled": b"no",
            b"replica-read-only": b"yes",
            b"io-threads": b"1",
            # Redis's compact-encoding thresholds (OBJECT ENCODING reports by the same numbers).
            b"hash-max-listpack-entries": b"128",
            b"hash-max-ziplist-entries": b"128",
            b"hash-max-listpack-value": b"64",
            b"hash-max-ziplist-value": b"64",
            b"set-max-intset-entries": b"512",
            b"zset-max-listpack-entries": b"128",
            b"zset-max-ziplist-entries": b"128",
            b"zset-max-listpack-value": b"64",
            b"zset-max-ziplist-value": b"64",
            b"list-max-listpack-size": b"-2",
            b"list-max-ziplist-size": b"-2",
            b"stream-node-max-entries": b"100",
            b"stream-node-max-bytes": b"4096",
            b"hll-sparse-max-bytes": b"%d" % s.hll_sparse_max_bytes,
            b"protected-mode": b"yes" if s.protected_mode else b"no",
            b"enable-debug-command": s.enable_debug_command.encode(),
            # As redis-server: an authenticated client may read it back (it is never logged).
            b"requirepass": self.password or b"",
        }
        table.update(self.config_overrides)
        return table

    def apply_config(self, changes: dict[str, Any]) -> None:
        """CONFIG SET, already parsed: the values that drive this server take effect, the others are kept."""
        s = self.settings
        for key, value in changes.items():
            if key == "timeout":
                s.idle_timeout = float(value) or None
            elif key == "maxclients":
                s.maxclients = value
            elif key == "busy-reply-threshold":
                self.busy_threshold = value / 1000
            elif key == "proto-max-bulk-len":
                s.max_bulk_len = value
            elif key == "hz":
                s.hz = min(max(value, 1), 500)
                if self._expiry_timer is not None:
                    self._expiry_timer.cancel()
                    self._expiry_timer = self.reactor.call_every(1.0 / s.hz, self._active_expire)
            elif key == "requirepass":
                self.password = value.encode() or None
                self.acl.set_default_password(self.password)
            elif key == "protected-mode":
                s.protected_mode = value == "yes"
            elif key == "auto-aof-rewrite-percentage":
                s.auto_aof_rewrite_percentage = value
            elif key == "auto-aof-rewrite-min-size":
                s.auto_aof_rewrite_min_size = value
            elif key == "hll-sparse-max-bytes":
                s.hll_sparse_max_bytes = value
            elif key == "slowlog-log-slower-than":
                self.monitoring.configure(slower_than=value)
            elif key == "slowlog-max-len":
                self.monitoring.configure(max_len=value)
            elif key == "latency-monitor-threshold":
                self.monitoring.configure(latency=value)
            elif key == "appendfsync":
                s.appendfsync = value
                if self.aof is not None:
                    self.aof.policy = value
            else:
                self.config_overrides[key.encode()] = str(value).encode()

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: the counters INFO shows start again from zero."""
        self.commands_processed = 0
        self.expired_keys = 0
        self.connections_received = 0
        self.rejected_connections = 0

    def info(self, sections: list[str]) -> bytes:
        """The text of INFO for the given sections (see introspection.render_info)."""
        from linechat.services.redis.introspection import render_info

        return render_info(self, sections)
