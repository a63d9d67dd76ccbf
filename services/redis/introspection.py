"""Server introspection: TIME, INFO, CONFIG, COMMAND (Redis's server.c and config.c), all read from the table."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from linechat.services.redis.base import ClientContext
from linechat.services.redis.connection import SERVER_VERSION
from linechat.services.redis.resp import OK, Dialect, RespError, array, bulk, glob_match, integer, parse_int
from linechat.services.redis.table import CommandDef, KeySpec, redis_command

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["ServerCommands", "command_info", "render_info"]

# INFO's sections: those sent for no argument (or "default"), and the ones only "all"/"everything" add.
_DEFAULT_SECTIONS = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _human(size: int) -> str:
    """Redis's bytesToHuman: 1023B, 1.00K, 2.50M, ..."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.2f}{unit}"
    return f"{size}B"


def _rss() -> int:
    """Resident memory of this process in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


# CONFIG SET: what may change and how each value is read.  Others are refused:
# "protected" ones (where files go) always, "immutable" ones as in Redis.
_CONFIG_ALIASES = {"lua-time-limit": "busy-reply-threshold"}
_PROTECTED = frozenset({"dir", "dbfilename"})
_IMMUTABLE = frozenset({"databases", "port", "bind", "daemonize", "io-threads", "appendfilename", "pidfile", "logfile"})
_ENUMS = {
    "maxmemory-policy": (
        "volatile-lru, volatile-lfu, volatile-random, volatile-ttl, "
        "allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
    ),
    "loglevel": "debug, verbose, notice, warning",
    "appendfsync": "always, everysec, no",
    "protected-mode": "yes, no",
}
_INTEGERS = {
    "timeout": (0, 2**31),
    "maxclients": (1, 2**31),
    "hz": (0, 2**31),
    "busy-reply-threshold": (0, 2**62),
    "slowlog-log-slower-than": (-1, 2**62),
    "slowlog-max-len": (0, 2**62),
    "auto-aof-rewrite-percentage": (0, 2**31 - 1),
    "latency-monitor-threshold": (0, 2**63 - 1),
}
_MEMORY = frozenset({"maxmemory", "proto-max-bulk-len", "auto-aof-rewrite-min-size", "hll-sparse-max-bytes"})
_MEMORY_LIMITS = {"hll-sparse-max-bytes": 2**63 - 1}
_FREE_TEXT = frozenset({"notify-keyspace-events", "save", "requirepass"})
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def _config_value(key: str, raw: bytes) -> Any:
    """Parse a CONFIG SET value as Redis does, with its error texts."""
    fail = f"ERR CONFIG SET failed (possibly related to argument '{key}') - "
    text = raw.decode("latin-1")
    if key in _PROTECTED:
        raise RespError(fail + "can't set protected config")
    if key in _IMMUTABLE:
        raise RespError(fail + "can't set immutable config")
    if key in _ENUMS:
        allowed = _ENUMS[key]
        if text.lower() not in allowed.split(", "):
            raise RespError(fail + f"argument(s) must be one of the following: {allowed}")
        return text.lower()
    if key in _INTEGERS:
        number = parse_int(raw)
        if number is None:
            raise RespError(fail + "argument couldn't be parsed into an integer")
        low, high = _INTEGERS[key]
        if not low <= number <= high:
            raise RespError(fail + f"argument must be between {low} and {high} inclusive")
        return number
    if key in _MEMORY:
        lowered = text.lower()
        digits = lowered.rstrip("bkmg")
        unit = lowered[len(digits) :]
        if not digits.isdigit() or unit not in _UNITS:
            raise RespError(fail + "argument must be a memory value")
        amount = int(digits) * _UNITS[unit]
        most = _MEMORY_LIMITS.get(key)
        if most is not None and amount > most:
            raise RespError(fail + f"argument must be between 0 and {most} inclusive")
        return amount
    if key in _FREE_TEXT:
        return text
    raise RespError(f"ERR Unknown option or number of arguments for CONFIG SET - '{key}'")


def _persistence(server: RedisService) -> dict[str, Any]:
    """INFO persistence under redis-server 7.0's names: the load in progress, the AOF and its rewrites."""
    aof = server.aof
    rewriter = server.rewriter
    loader = server.loader
    fields: dict[str, Any] = {
        "loading": int(server.loading),
        "async_loading": 0,
    }
    if loader is not None:
        fields.update(
            {
                "loading_start_time": int(loader.started),
                "loading_total_bytes": loader.total,
                "loading_rdb_used_mem": 0,
                "loading_loaded_bytes": loader.loaded,
                "loading_loaded_perc": "%.2f" % (loader.loaded * 100 / loader.total if loader.total else 0.0),
                "loading_eta_seconds": loader.eta_seconds(),
            }
        )
    fields.update(
        {
            "rdb_changes_since_last_save": 0,
            "rdb_bgsave_in_progress": 0,
            "rdb_last_save_time": int(server.started),
            "rdb_last_bgsave_status": "ok",
            "rdb_last_bgsave_time_sec": -1,
            "rdb_current_bgsave_time_sec": -1,
            "rdb_saves": 0,
            "rdb_last_load_keys_expired": server.last_load[1],
            "rdb_last_load_keys_loaded": server.last_load[0],
            "aof_enabled": int(server.aof_enabled),
            "aof_rewrite_in_progress": int(rewriter.in_progress),
            "aof_rewrite_scheduled": int(rewriter.scheduled),
            "aof_last_rewrite_time_sec": rewriter.last_time_sec,
            "aof_current_rewrite_time_sec": rewriter.current_time_sec(),
            "aof_last_bgrewrite_status": rewriter.last_status,
            "aof_rewrites": rewriter.rewrites,
            "aof_rewrites_consecutive_failures": rewriter.consecutive_failures,
            "aof_last_write_status": "err" if aof is not None and aof.write_error is not None else "ok",
            "aof_fsync": server.settings.appendfsync,
        }
    )
    if aof is not None:
        fields.update(
            {
                "aof_current_size": aof.size,
                "aof_base_size": aof.base_size,
                "aof_pending_rewrite": int(rewriter.scheduled),
                "aof_buffer_length": len(aof._buf),
                # Redis 6's field: the rewrite-time records held in memory (the rest is in the spill file).
                "aof_rewrite_buffer_length": len(aof.rewrite_buf) if aof.rewrite_buf is not None else 0,
                "aof_pending_bio_fsync": 0,
                "aof_delayed_fsync": 0,
            }
        )
    return fields


def render_info(server: RedisService, sections: list[str]) -> bytes:
    """The text of INFO: Redis 7.0's sections, with the fields that mean something here."""
    wanted = set(sections) or {"default"}
    if wanted & {"all", "everything"}:
        chosen = set(_DEFAULT_SECTIONS) | {"commandstats"}
    else:
        chosen = (set(_DEFAULT_SECTIONS) if "default" in wanted else set()) | wanted
    settings = server.settings
    now = time.time()
    uptime = int(now - server.started)
    rss = _rss()
    server.peak_memory = max(server.peak_memory, rss)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    engine = server._scripting
    lua_memory = engine.lua.gccount() * 1024 if engine is not None and hasattr(engine.lua, "gccount") else 0
    total_memory = os.sysconf("SC_PHYS_PAGES") * _PAGE if hasattr(os, "sysconf") else 0
    clients = server.clients()
    pubsub_clients = sum(1 for c in clients if c.channels or c.patterns or c.shard_channels)
    parts: list[str] = []

    def section(name: str, fields: dict[str, Any]) -> None:
        if name.lower() in chosen:
            parts.append(f"# {name}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields.items()))

    uname = platform.uname()
    section(
        "Server",
        {
            "redis_version": SERVER_VERSION.decode(),
            "redis_git_sha1": "00000000",
            "redis_git_dirty": 0,
            "redis_build_id": "0",
            "redis_mode": "standalone",
            "os": f"{uname.system} {uname.release} {uname.machine}",
            "arch_bits": 64 if sys.maxsize > 2**32 else 32,
            "monotonic_clock": "POSIX clock_gettime",
            "multiplexing_api": "epoll" if hasattr(__import__("select"), "epoll") else "poll",
            "gcc_version": "0.0.0",
            "process_id": os.getpid(),
            "process_supervised": "no",
            "run_id": server.run_id,
            "tcp_port": settings.port,
            "server_time_usec": server.now_us(),
            "uptime_in_seconds": uptime,
            "uptime_in_days": uptime // 86400,
            "hz": settings.hz,
            "configured_hz": settings.hz,
            "lru_clock": int(now) & ((1 << 24) - 1),
            "executable": sys.executable,
            "config_file": "",
            "io_threads_active": 0,
            "server_name": "linechat",
        },
    )
    section(
        "Clients",
        {
            "connected_clients": len(clients),
            "cluster_connections": 0,
            "maxclients": settings.maxclients,
            "client_recent_max_input_buffer": 0,
            "client_recent_max_output_buffer": 0,
            "blocked_clients": server.blocking.blocked_clients,
            "tracking_clients": 0,
            "clients_in_timeout_table": server.blocking.blocked_clients,
            "pubsub_clients": pubsub_clients,
            "watching_clients": sum(1 for c in clients if c.watching),
            "total_watched_keys": len(server.watchers),
        },
    )
    section(
        "Memory",
        {
            "used_memory": rss,
            "used_memory_human": _human(rss),
            "used_memory_rss": rss,
            "used_memory_rss_human": _human(rss),
            "used_memory_peak": server.peak_memory,
            "used_memory_peak_human": _human(server.peak_memory),
            "used_memory_lua": int(lua_memory),
            "used_memory_lua_human": _human(int(lua_memory)),
            "used_memory_scripts": 0,
            "number_of_cached_scripts": 0 if engine is None else len(engine.scripts),
            "number_of_functions": 0,
            "number_of_libraries": 0,
            "total_system_memory": total_memory,
            "total_system_memory_human": _human(total_memory),
            "maxmemory": 0,
            "maxmemory_human": "0B",
            "maxmemory_policy": "noeviction",
            "mem_fragmentation_ratio": "1.00",
            "mem_allocator": "libc",
            "lazyfree_pending_objects": 0,
        },
    )
    section("Persistence", _persistence(server))
    section(
        "Stats",
        {
            "total_connections_received": server.connections_received,
            "total_commands_processed": server.commands_processed,
            "rejected_connections": server.rejected_connections,
            "expired_keys": server.expired_keys,
            "evicted_keys": 0,
            "evicted_clients": 0,
            "pubsub_channels": len(server.subscribers),
            "pubsub_patterns": len(server.pattern_subscribers),
            "pubsubshard_channels": len(server.shard_subscribers),
            "total_forks": 0,
            "unexpected_error_replies": 0,
            "dump_payload_sanitizations": 0,
        },
    )
    section(
        "Replication",
        {
            "role": "master",
            "connected_slaves": 0,
            "master_failover_state": "no-failover",
            "master_replid": server.run_id,
            "master_replid2": "0" * 40,
            "master_repl_offset": 0,
            "second_repl_offset": -1,
            "repl_backlog_active": 0,
            "repl_backlog_size": 1048576,
            "repl_backlog_first_byte_offset": 0,
            "repl_backlog_histlen": 0,
        },
    )
    section(
        "CPU",
        {
            "used_cpu_sys": f"{usage.ru_stime:.6f}",
            "used_cpu_user": f"{usage.ru_utime:.6f}",
            "used_cpu_sys_children": f"{children.ru_stime:.6f}",
            "used_cpu_user_children": f"{children.ru_utime:.6f}",
        },
    )
    section("Modules", {})
    section("Errorstats", {})
    section("Cluster", {"cluster_enabled": 0})
    section(
        "Keyspace",
        {f"db{db.index}": f"keys={len(db)},expires={len(db.expires)},avg_ttl=0" for db in server.dbs if len(db)},
    )
    return "\r\n".join(parts).encode()


def _sort_keys(argv: list[bytes], spec: CommandDef) -> list[tuple[bytes, tuple[str, ...]]]:
    """SORT's keys: the sorted key and the last STORE destination (BY and GET patterns are not keys), as Redis."""
    keys = [(argv[1], spec.key_specs[0].flags)]
    store = None
    skip = {b"LIMIT": 2, b"GET": 1, b"BY": 1}
    i = 2
    while i < len(argv):
        word = argv[i].upper()
        if word in skip:
            i += skip[word]
        elif word == b"STORE" and i + 1 < len(argv):
            store = argv[i + 1]
        i += 1
    return keys if store is None else [*keys, (store, spec.key_specs[-1].flags)]


def _set(dialect: Dialect, words: tuple[str, ...], status: bool = True) -> bytes:
    head = dialect.set_head % len(words)
    if status:
        return head + b"".join(b"+%s\r\n" % w.encode() for w in words)
    return head + b"".join(bulk(w.encode()) for w in words)


def _key_spec(dialect: Dialect, spec: KeySpec) -> bytes:
    """One key specification as COMMAND INFO shows it (a map; a flat array under RESP2)."""
    out = [dialect.map_header(4 if spec.notes else 3)]
    if spec.notes:
        out += [bulk(b"notes"), bulk(spec.notes.encode())]
    out += [bulk(b"flags"), _set(dialect, spec.flags), bulk(b"begin_search"), dialect.map_header(2), bulk(b"type")]
    if spec.begin is None:
        out += [bulk(b"unknown"), bulk(b"spec"), dialect.map_header(0)]
        out += [bulk(b"find_keys"), dialect.map_header(2), bulk(b"type"), bulk(b"unknown"), bulk(b"spec")]
        return b"".join([*out, dialect.map_header(0)])
    if isinstance(spec.begin, int):
        out += [bulk(b"index"), bulk(b"spec"), dialect.map_header(1), bulk(b"index"), integer(spec.begin)]
    else:
        word, start = spec.begin
        out += [bulk(b"keyword"), bulk(b"spec"), dialect.map_header(2)]
        out += [bulk(b"keyword"), bulk(word.encode()), bulk(b"startfrom"), integer(start)]
    out += [bulk(b"find_keys"), dialect.map_header(2), bulk(b"type")]
    if spec.keynum is None:
        out += [bulk(b"range"), bulk(b"spec"), dialect.map_header(3)]
        out += [bulk(b"lastkey"), integer(spec.lastkey), bulk(b"keystep"), integer(spec.keystep)]
        out += [bulk(b"limit"), integer(spec.limit)]
    else:
        keynumidx, firstkey, keystep = spec.keynum
        out += [bulk(b"keynum"), bulk(b"spec"), dialect.map_header(3)]
        out += [bulk(b"keynumidx"), integer(keynumidx), bulk(b"firstkey"), integer(firstkey)]
        out += [bulk(b"keystep"), integer(keystep)]
    return b"".join(out)


def command_info(dialect: Dialect, spec: CommandDef) -> bytes:
    """The COMMAND INFO entry of a command, as Redis 7.0 sends it."""
    return (
        b"*10\r\n"
        + bulk(spec.name.lower().encode())
        + integer(spec.arity)
        + _set(dialect, spec.flags)
        + integer(spec.first_key)
        + integer(spec.last_key)
        + integer(spec.key_step)
        + _set(dialect, tuple("@" + c for c in spec.acl))
        + _set(dialect, spec.tips, status=False)
        + dialect.set_head % len(spec.key_specs)
        + b"".join(_key_spec(dialect, k) for k in spec.key_specs)
        # No subcommands: an empty set; some: an array of their entries (as Redis 7.0 sends it).
        + (b"*%d\r\n" % len(spec.subcommands) if spec.subcommands else dialect.set_head % 0)
        + b"".join(command_info(dialect, s) for s in spec.subcommands.values())
    )


class ServerCommands(ClientContext):
    """Introspection and server commands."""

    @redis_command("TIME", arity=1, flags="loading stale fast", group="server", tips="nondeterministic_output")
    def cmd_time(self) -> bytes:
        """Server time: seconds and microseconds."""
        now_us = self.server.now_us()
        return array([b"%d" % (now_us // 1_000_000), b"%d" % (now_us % 1_000_000)])

    @redis_command(
        "INFO",
        arity=-1,
        flags="loading stale",
        group="server",
        acl="dangerous",
        tips="nondeterministic_output request_policy:all_shards response_policy:special",
    )
    def cmd_info(self, *sections: bytes) -> bytes:
        """Server information in Redis's INFO text format."""
        return self.dialect.verbatim(self.server.info([s.lower().decode("latin-1") for s in sections]))

    # ------------------------------------------------------------------ BGREWRITEAOF

    @redis_command("BGREWRITEAOF", arity=1, flags="admin noscript no_async_loading", group="server")
    def cmd_bgrewriteaof(self) -> bytes:
        """Rewrite the append-only file in the background (a forked child writes the data set)."""
        server = self.server
        rewriter = server.rewriter
        aof = server.aof
        if rewriter.in_progress:
            raise RespError("ERR Background append only file rewriting already in progress")
        if aof is not None and aof._tx_depth:
            # Inside EXEC the data set is half changed: fork once the transaction is over, as redis-server does.
            rewriter.scheduled = True
            return b"+Background append only file rewriting scheduled\r\n"
        if not rewriter.start():
            raise RespError(
                "ERR Can't execute an AOF background rewriting. Please check the server logs for more information."
            )
        return b"+Background append only file rewriting started\r\n"

    # ------------------------------------------------------------------ CONFIG

    @redis_command("CONFIG", arity=-2, group="server")
    def cmd_config(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the CONFIG subcommands."""
        return self.run_subcommand("CONFIG", sub, args)  # type: ignore[no-any-return]

    @redis_command("CONFIG|GET", arity=-3, flags="admin noscript loading stale", group="server")
    def cmd_config_get(self, pattern: bytes, *patterns: bytes) -> bytes:
        """Our settings under Redis's parameter names, for the glob patterns given."""
        found: dict[bytes, bytes] = {}
        for name, value in self.server.config_table().items():
            if any(glob_match(p, name, nocase=True) for p in (pattern, *patterns)):
                found[name] = value
        return self.dialect.map_reply([item for pair in found.items() for item in pair])

    @redis_command(
        "CONFIG|SET",
        arity=-4,
        flags="admin noscript loading stale",
        group="server",
        tips="request_policy:all_nodes response_policy:all_succeeded",
    )
    def cmd_config_set(self, name: bytes, value: bytes, *pairs: bytes) -> bytes:
        """Change parameters that are safe to change at run time (never dir or dbfilename); all or none."""
        args = (name, value, *pairs)
        if len(args) % 2:
            raise RespError("ERR wrong number of arguments for 'config|set' command")
        changes: dict[str, Any] = {}
        for i in range(0, len(args), 2):
            key = args[i].lower().decode("latin-1")
            key = _CONFIG_ALIASES.get(key, key)
            if key in changes:
                raise RespError(f"ERR CONFIG SET failed (possibly related to argument '{key}') - duplicate parameter")
            changes[key] = _config_value(key, args[i + 1])
        self.server.apply_config(changes)
        return OK

    @redis_command("CONFIG|RESETSTAT", arity=2, flags="admin noscript loading stale", group="server")
    def cmd_config_resetstat(self) -> bytes:
        """Reset the counters INFO reports."""
        self.server.reset_stats()
        return OK

    # ------------------------------------------------------------------ COMMAND

    @redis_command(
        "COMMAND",
        arity=-1,
        flags="loading stale",
        group="server",
        acl="connection",
        tips="nondeterministic_output_order",
    )
    def cmd_command(self, *args: bytes) -> bytes:
        """Every command's details; with a subcommand, COUNT, LIST, INFO, DOCS, GETKEYS."""
        if args:
            return self.run_subcommand("COMMAND", args[0], args[1:])  # type: ignore[no-any-return]
        table = self.table
        return b"*%d\r\n" % len(table) + b"".join(command_info(self.dialect, s) for s in table.values())

    @redis_command("COMMAND|COUNT", arity=2, flags="loading stale", group="server", acl="connection")
    def cmd_command_count(self) -> bytes:
        """How many commands there are."""
        return integer(len(self.table))

    @redis_command(
        "COMMAND|LIST",
        arity=-2,
        flags="loading stale",
        group="server",
        acl="connection",
        tips="nondeterministic_output_order",
    )
    def cmd_command_list(self, *args: bytes) -> bytes:
        """The command names (FILTERBY MODULE, ACLCAT or PATTERN)."""
        names: list[str] = []
        for spec in self.table.values():
            names.append(spec.name)
            names += [s.name for s in spec.subcommands.values()]
        if args:
            if len(args) != 3 or args[0].upper() != b"FILTERBY":
                raise RespError("ERR syntax error")
            kind, value = args[1].upper(), args[2]
            if kind == b"MODULE":
                names = []
            elif kind == b"ACLCAT":
                category = value.lower().decode("latin-1")
                names = [n for n in names if category in self._spec(n).acl]
            elif kind == b"PATTERN":
                names = [n for n in names if glob_match(value, n.lower().encode(), nocase=True)]
            else:
                raise RespError("ERR syntax error")
        return array([n.lower().encode() for n in names])

    def _spec(self, name: str) -> CommandDef:
        parent, _, sub = name.partition("|")
        spec = self.table[parent]
        return spec.subcommands[sub] if sub else spec

    def _lookup(self, name: bytes) -> CommandDef | None:
        """A command or ``container|sub`` by name, as COMMAND INFO and DOCS accept them."""
        parent, _, sub = name.upper().decode("latin-1").partition("|")
        spec = self.table.get(parent)
        if spec is None or not sub:
            return spec
        return spec.subcommands.get(sub)

    @redis_command(
        "COMMAND|INFO",
        arity=-2,
        flags="loading stale",
        group="server",
        acl="connection",
        tips="nondeterministic_output_order",
    )
    def cmd_command_info(self, *names: bytes) -> bytes:
        """Details of the named commands (every command when none is named)."""
        if not names:
            return self.cmd_command()
        out = [b"*%d\r\n" % len(names)]
        for name in names:
            spec = self._lookup(name)
            out.append(self.null_array if spec is None else command_info(self.dialect, spec))
        return b"".join(out)

    @redis_command(
        "COMMAND|DOCS",
        arity=-2,
        flags="loading stale",
        group="server",
        acl="connection",
        tips="nondeterministic_output_order",
    )
    def cmd_command_docs(self, *names: bytes) -> bytes:
        """Summary and group of the named commands (every command when none is named)."""
        found = (self._lookup(n) for n in names) if names else iter(self.table.values())
        specs = [s for s in found if s is not None]
        dialect = self.dialect
        out = [dialect.map_header(len(specs))]
        for spec in specs:
            out.append(bulk(spec.name.lower().encode()))
            fields = [bulk(b"summary"), bulk(spec.summary.encode()), bulk(b"group"), bulk(spec.group.encode())]
            if spec.subcommands:
                subs = spec.subcommands.values()
                fields += [bulk(b"subcommands"), dialect.map_header(len(spec.subcommands))]
                for sub in subs:
                    fields += [bulk(sub.name.lower().encode()), dialect.map_header(2)]
                    fields += [bulk(b"summary"), bulk(sub.summary.encode()), bulk(b"group"), bulk(sub.group.encode())]
            out.append(dialect.map_header(3 if spec.subcommands else 2) + b"".join(fields))
        return b"".join(out)

    @redis_command("COMMAND|GETKEYS", arity=-4, flags="loading stale", group="server", acl="connection")
    def cmd_command_getkeys(self, name: bytes, *args: bytes) -> bytes:
        """The keys a command line would touch, found from its key specifications."""
        return array([key for key, _ in self._keys_and_flags(name, args)])

    @redis_command("COMMAND|GETKEYSANDFLAGS", arity=-4, flags="loading stale", group="server", acl="connection")
    def cmd_command_getkeysandflags(self, name: bytes, *args: bytes) -> bytes:
        """The keys a command line would touch, each with its key-spec flags (RW, access, insert...)."""
        found = self._keys_and_flags(name, args)
        out = [b"*%d\r\n" % len(found)]
        for key, flags in found:
            out.append(b"*2\r\n" + bulk(key) + _set(self.dialect, flags))
        return b"".join(out)

    def _keys_and_flags(self, name: bytes, args: tuple[bytes, ...]) -> list[tuple[bytes, tuple[str, ...]]]:
        """COMMAND GETKEYS[ANDFLAGS]: each key of a command line with its spec's flags, or Redis's error."""
        spec = self._lookup(name)
        argv = [name, *args]
        if spec is not None and spec.subcommands and args:
            spec = spec.subcommands.get(args[0].upper().decode("latin-1"))
        if spec is None:
            raise RespError("ERR Invalid command specified")
        words = len(argv)
        if (spec.arity > 0 and words != spec.arity) or words < -spec.arity:
            raise RespError("ERR Invalid number of arguments specified for command")
        if not spec.key_specs:
            raise RespError("ERR The command has no key arguments")
        if spec.name == "SORT":
            keys = _sort_keys(argv, spec)
        else:
            keys = [(argv[i], k.flags) for k in spec.key_specs for i in k.positions(argv)]
        if not keys and "no_mandatory_keys" not in spec.flags:
            # EVAL with no keys is fine (no_mandatory_keys); any other command named none by mistake.
            raise RespError("ERR Invalid arguments specified for command")
        return keys
