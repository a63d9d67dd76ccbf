"""Watching the server: SLOWLOG, LATENCY, MEMORY and MONITOR (Redis's slowlog.c, latency.c, object.c, replication.c).

:class:`Monitoring` is the server's state for them.  The connection calls
:meth:`Monitoring.after` for each command it ran when a monitor client is
connected or the command took at least the smallest threshold set
(``slowlog-log-slower-than`` in microseconds, ``latency-monitor-threshold``
in milliseconds); with the default thresholds and no monitor that is one
clock reading per command.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from linechat.services.redis.base import SYNTAX, ClientContext, int_arg
from linechat.services.redis.introspection import _rss
from linechat.services.redis.resp import OK, RESP3, Dialect, RespError, bulk, integer
from linechat.services.redis.table import CommandDef, KeySpec, redis_command

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["Monitoring", "MonitoringCommands", "estimate_size"]

# Redis keeps this much of a logged command (SLOWLOG_ENTRY_MAX_ARGC, SLOWLOG_ENTRY_MAX_STRING).
_SLOWLOG_ARGS = 32
_SLOWLOG_STRING = 128
_LATENCY_SAMPLES = 160  # LATENCY_TS_LEN: one sample a second, the last 160 kept
_REDACTED = b"(redacted)"


def _repr(arg: bytes) -> bytes:
    """An argument as MONITOR quotes it (Redis's sdscatrepr)."""
    out = bytearray(b'"')
    for c in arg:
        if c in (34, 92):  # " and \
            out += b"\\" + bytes((c,))
        elif c == 10:
            out += b"\\n"
        elif c == 13:
            out += b"\\r"
        elif c == 9:
            out += b"\\t"
        elif c == 7:
            out += b"\\a"
        elif c == 8:
            out += b"\\b"
        elif 32 <= c < 127:
            out.append(c)
        else:
            out += b"\\x%02x" % c
    out += b'"'
    return bytes(out)


def redacted(argv: list[bytes]) -> list[bytes]:
    """The command as MONITOR and SLOWLOG show it: passwords of AUTH and HELLO ... AUTH replaced."""
    name = argv[0].upper()
    if name == b"AUTH":
        return [argv[0]] + [_REDACTED] * (len(argv) - 1)
    if name == b"HELLO":
        out = list(argv)
        for i in range(2, len(out) - 2):
            if out[i].upper() == b"AUTH":
                out[i + 1] = out[i + 2] = _REDACTED
                break
        return out
    return argv


class _Latency:
    """One latency event: its samples (second, worst ms) and the worst ever."""

    __slots__ = ("max", "samples")

    def __init__(self) -> None:
        self.samples: deque[list[int]] = deque(maxlen=_LATENCY_SAMPLES)
        self.max = 0

    def add(self, now: int, ms: int) -> None:
        self.max = max(self.max, ms)
        if self.samples and self.samples[-1][0] == now:
            self.samples[-1][1] = max(self.samples[-1][1], ms)
        else:
            self.samples.append([now, ms])


class Monitoring:
    """The slow log, the latency events and the monitor clients of a server."""

    def __init__(self, server: RedisService) -> None:
        self.server = server
        self.slowlog: deque[tuple[int, int, int, list[bytes], bytes, bytes]] = deque(maxlen=128)
        self.slowlog_next_id = 0
        self.slower_than_us = 10000  # slowlog-log-slower-than (negative: off)
        self.latency_threshold_ms = 0  # latency-monitor-threshold (0: off)
        self.latency: dict[bytes, _Latency] = {}
        self.monitors: list[ClientContext] = []
        self.min_seconds: float | None = 0.01  # the smallest threshold set, in seconds (None: no timing)

    def configure(self, slower_than: int | None = None, max_len: int | None = None, latency: int | None = None) -> None:
        """CONFIG SET of slowlog-log-slower-than, slowlog-max-len, latency-monitor-threshold."""
        if slower_than is not None:
            self.slower_than_us = slower_than
        if max_len is not None:
            self.slowlog = deque(list(self.slowlog)[:max_len], maxlen=max_len)
        if latency is not None:
            self.latency_threshold_ms = latency
        limits = []
        if self.slower_than_us >= 0:
            limits.append(self.slower_than_us / 1e6)
        if self.latency_threshold_ms > 0:
            limits.append(self.latency_threshold_ms / 1e3)
        self.min_seconds = min(limits) if limits else None

    def after(
        self, client: ClientContext, spec: CommandDef, argv: list[bytes], seconds: float, timed: bool = True
    ) -> None:
        """A command ran (taking *seconds*): feed the monitors, and unless not *timed*, the slow log and latency."""
        if spec.subcommands:
            sub = spec.subcommands.get(argv[1].upper().decode("latin-1")) if len(argv) > 1 else None
            if sub is None or not sub.accepts(len(argv) - 2):
                return  # refused before it ran (unknown subcommand, wrong arity): not reported, as in Redis
            spec = sub
        flags = spec.flags
        if self.monitors and "skip_monitor" not in flags and "admin" not in flags:
            self.feed(client.dbindex, client.addr().encode(), argv, client)
        if not timed:
            return
        micros = int(seconds * 1e6)
        if 0 <= self.slower_than_us <= micros and "skip_slowlog" not in flags:
            shown = redacted(argv)
            if len(shown) > _SLOWLOG_ARGS:
                shown = [*shown[: _SLOWLOG_ARGS - 1], b"... (%d more arguments)" % (len(argv) - _SLOWLOG_ARGS + 1)]
            shown = [
                a if len(a) <= _SLOWLOG_STRING else a[:_SLOWLOG_STRING] + b"... (%d more bytes)" % (len(a) - 128)
                for a in shown
            ]
            entry = (self.slowlog_next_id, int(time.time()), micros, shown, client.addr().encode(), client.client_name)
            self.slowlog.appendleft(entry)  # type: ignore[arg-type]
            self.slowlog_next_id += 1
        if self.latency_threshold_ms and micros >= self.latency_threshold_ms * 1000:
            event = b"fast-command" if "fast" in flags else b"command"
            self.latency.setdefault(event, _Latency()).add(int(time.time()), micros // 1000)

    def feed(self, dbindex: int, source: bytes, argv: list[bytes], origin: ClientContext | None = None) -> None:
        """Copy a command to every monitor client, in redis-server's line format."""
        now = self.server.now_us()
        line = b"+%d.%06d [%d %s] %s\r\n" % (
            now // 1_000_000,
            now % 1_000_000,
            dbindex,
            source,
            b" ".join(_repr(a) for a in redacted(argv)),
        )
        # A monitor that does not read is cut by the connection's output limits (out_hard_limit).
        for monitor in list(self.monitors):
            if monitor is origin:
                # A monitor's own command: its line follows its reply, as redis-server queues them.
                self.server.reactor.call_soon(monitor.send, line)
            else:
                monitor.send(line)

    def stop(self, client: ClientContext) -> None:
        """The client leaves monitor mode (RESET, disconnect)."""
        if client in self.monitors:
            self.monitors.remove(client)


def estimate_size(value: Any, samples: int) -> int:
    """Bytes this process holds for a value: the containers and, sampled as MEMORY USAGE does, their elements.

    The size is what CPython reports (``sys.getsizeof``) for the value's
    objects; a collection's elements are sampled (*samples* of them, all
    for 0) and their average counted for every element.
    """
    size = sys.getsizeof(value)
    if type(value) is bytes or type(value) is bytearray:
        return size
    items: Iterable[Any]
    if isinstance(value, dict):
        items = value.items()
    elif hasattr(value, "scores"):  # a sorted set: its dict and its ordered list of pairs
        size += sys.getsizeof(value.scores) + 56 * len(value.scores)
        items = value.scores.items()
    elif hasattr(value, "entries"):  # a stream
        size += sys.getsizeof(value.entries) + sys.getsizeof(value.ids)
        items = value.entries.items()
    else:
        items = value
    count = 0
    total = 0
    sampled = 0
    for item in items:
        count += 1
        if samples and sampled >= samples:
            continue
        sampled += 1
        if isinstance(item, tuple):
            total += sys.getsizeof(item) + sum(_flat_size(x) for x in item)
        else:
            total += sys.getsizeof(item)
    if hasattr(value, "__len__"):
        count = len(value)
    return size + (total * count // sampled if sampled else 0)


def _flat_size(item: Any) -> int:
    if isinstance(item, list):
        return sys.getsizeof(item) + sum(sys.getsizeof(x) for x in item)
    return sys.getsizeof(item)


_SLOWLOG_HELP = (
    b"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"GET [<count>]",
    b"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    b"    Entries are made of:",
    b"    id, timestamp, time in microseconds, arguments array, client IP and port,",
    b"    client name",
    b"LEN",
    b"    Return the length of the slowlog.",
    b"RESET",
    b"    Reset the slowlog.",
    b"HELP",
    b"    Prints this help.",
)
_LATENCY_HELP = (
    b"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DOCTOR",
    b"    Return a human readable latency analysis report.",
    b"GRAPH <event>",
    b"    Return an ASCII latency graph for the <event> class.",
    b"HISTORY <event>",
    b"    Return time-latency samples for the <event> class.",
    b"LATEST",
    b"    Return the latest latency samples for all events.",
    b"RESET [<event> ...]",
    b"    Reset latency data of one or more <event> classes.",
    b"    (default: reset all data for all event classes)",
    b"HISTOGRAM [COMMAND ...]",
    b"    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    b"    If no commands are specified then all histograms are replied.",
    b"HELP",
    b"    Prints this help.",
)
_MEMORY_HELP = (
    b"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DOCTOR",
    b"    Return memory problems reports.",
    b"MALLOC-STATS",
    b"    Return internal statistics report from the memory allocator.",
    b"PURGE",
    b"    Attempt to purge dirty pages for reclamation by the allocator.",
    b"STATS",
    b"    Return information about the memory usage of the server.",
    b"USAGE <key> [SAMPLES <count>]",
    b"    Return memory in bytes used by <key> and its value. Nested values are",
    b"    sampled up to <count> times (default: 5, 0 means sample all).",
    b"HELP",
    b"    Prints this help.",
)
_LATENCY_OFF = (
    b"I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use "
    b'"CONFIG SET latency-monitor-threshold <milliseconds>." in order to enable it. If we weren\'t in a deep space '
    b"mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
)
_LATENCY_NONE = (
    b"Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. "
    b"I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n"
)
_MEMORY_EMPTY = (
    b"Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these "
    b"conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be "
    b"back to our programming as soon as I finished rebooting."
)
_MEMORY_FINE = (
    b"Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base."
)


def _double(dialect: Dialect, value: float) -> bytes:
    text = b"%.17g" % value
    return b",%s\r\n" % text if dialect is RESP3 else bulk(text)


def _help(lines: tuple[bytes, ...]) -> bytes:
    return b"*%d\r\n" % len(lines) + b"".join(b"+%s\r\n" % line for line in lines)


class MonitoringCommands(ClientContext):
    """SLOWLOG, LATENCY, MEMORY and MONITOR."""

    monitoring: bool

    # ------------------------------------------------------------------ MONITOR

    @redis_command("MONITOR", arity=1, flags="admin noscript loading stale", group="server", fastpath=False)
    def cmd_monitor(self) -> bytes | None:
        """Receive every command the server runs, as a line each."""
        if self._multi is not None or not self.server.blocking.may_block:
            raise RespError("ERR MONITOR isn't allowed for DENY BLOCKING client")
        if self.monitoring:
            return None  # already monitoring: redis-server says nothing
        self.monitoring = True
        self.server.monitoring.monitors.append(self)
        return OK

    # ------------------------------------------------------------------ SLOWLOG

    @redis_command("SLOWLOG", arity=-2, group="server")
    def cmd_slowlog(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the SLOWLOG subcommands."""
        return self.run_subcommand("SLOWLOG", sub, args)  # type: ignore[no-any-return]

    @redis_command(
        "SLOWLOG|GET",
        arity=-2,
        flags="admin loading stale",
        group="server",
        tips="request_policy:all_nodes nondeterministic_output",
    )
    def cmd_slowlog_get(self, *args: bytes) -> bytes:
        """The newest entries (10, a count, or -1 for all): id, time, microseconds, arguments, address, name."""
        if len(args) > 1:
            sub = self.argv[1].decode("latin-1")
            raise RespError(f"ERR unknown subcommand or wrong number of arguments for '{sub}'. Try SLOWLOG HELP.")
        log = self.server.monitoring.slowlog
        count = 10
        if args:
            count = int_arg(args[0], "ERR count should be greater than or equal to -1")
            if count < -1:
                raise RespError("ERR count should be greater than or equal to -1")
            if count == -1:
                count = len(log)
        entries = list(log)[:count]
        out = [b"*%d\r\n" % len(entries)]
        for ident, when, micros, argv, addr, name in entries:
            out.append(b"*6\r\n:%d\r\n:%d\r\n:%d\r\n*%d\r\n" % (ident, when, micros, len(argv)))
            out += [bulk(a) for a in argv]
            out += [bulk(addr), bulk(name or b"")]
        return b"".join(out)

    @redis_command(
        "SLOWLOG|LEN",
        arity=2,
        flags="admin loading stale",
        group="server",
        tips="request_policy:all_nodes response_policy:agg_sum nondeterministic_output",
    )
    def cmd_slowlog_len(self) -> bytes:
        """How many entries the slow log holds."""
        return integer(len(self.server.monitoring.slowlog))

    @redis_command(
        "SLOWLOG|RESET",
        arity=2,
        flags="admin loading stale",
        group="server",
        tips="request_policy:all_nodes response_policy:all_succeeded",
    )
    def cmd_slowlog_reset(self) -> bytes:
        """Empty the slow log."""
        self.server.monitoring.slowlog.clear()
        return OK

    @redis_command("SLOWLOG|HELP", arity=2, flags="loading stale", group="server")
    def cmd_slowlog_help(self) -> bytes:
        """The SLOWLOG subcommands."""
        return _help(_SLOWLOG_HELP)

    # ------------------------------------------------------------------ LATENCY

    @redis_command("LATENCY", arity=-2, group="server")
    def cmd_latency(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the LATENCY subcommands."""
        return self.run_subcommand("LATENCY", sub, args)  # type: ignore[no-any-return]

    @redis_command(
        "LATENCY|LATEST",
        arity=2,
        flags="admin noscript loading stale",
        group="server",
        tips="nondeterministic_output request_policy:all_nodes response_policy:special",
    )
    def cmd_latency_latest(self) -> bytes:
        """Each event: its name, the time and latency of its last sample, its worst latency."""
        events = self.server.monitoring.latency
        out = [b"*%d\r\n" % len(events)]
        for name, event in events.items():
            when, ms = event.samples[-1]
            out.append(b"*4\r\n" + bulk(name) + b":%d\r\n:%d\r\n:%d\r\n" % (when, ms, event.max))
        return b"".join(out)

    @redis_command(
        "LATENCY|HISTORY",
        arity=3,
        flags="admin noscript loading stale",
        group="server",
        tips="nondeterministic_output request_policy:all_nodes response_policy:special",
    )
    def cmd_latency_history(self, event: bytes) -> bytes:
        """The samples of one event: time and latency, oldest first."""
        found = self.server.monitoring.latency.get(event)
        samples = list(found.samples) if found is not None else []
        return b"*%d\r\n" % len(samples) + b"".join(b"*2\r\n:%d\r\n:%d\r\n" % (t, ms) for t, ms in samples)

    @redis_command(
        "LATENCY|RESET",
        arity=-2,
        flags="admin noscript loading stale",
        group="server",
        tips="request_policy:all_nodes response_policy:all_succeeded",
    )
    def cmd_latency_reset(self, *events: bytes) -> bytes:
        """Forget the samples of some events (all without names); how many were forgotten."""
        table = self.server.monitoring.latency
        if not events:
            count = len(table)
            table.clear()
            return integer(count)
        return integer(sum(1 for e in set(events) if table.pop(e, None) is not None))

    @redis_command(
        "LATENCY|DOCTOR",
        arity=2,
        flags="admin noscript loading stale",
        group="server",
        tips="nondeterministic_output request_policy:all_nodes response_policy:special",
    )
    def cmd_latency_doctor(self) -> bytes:
        """A report of the latency events seen, in words."""
        monitoring = self.server.monitoring
        if not monitoring.latency:
            text = _LATENCY_NONE if monitoring.latency_threshold_ms else _LATENCY_OFF  # redis-server's words
        else:
            lines = [
                b"Dave, I have observed latency spikes in this Redis instance. "
                b"You don't mind talking about it, do you Dave?\n"
            ]
            for n, (name, event) in enumerate(monitoring.latency.items(), 1):
                spikes = len(event.samples)
                mean = sum(ms for _, ms in event.samples) // spikes
                lines.append(
                    b"%d. %s: %d latency spikes (average %dms, mean deviation 0ms, period 0 sec). Worst all time "
                    b"event %dms.\n" % (n, name, spikes, mean, event.max)
                )
            lines.append(
                b"\nI have a few advices for you:\n\n- Check your slow log (SLOWLOG GET) for the commands that took "
                b"longest: the time is spent running them.\n"
            )
            text = b"".join(lines)
        return self.dialect.verbatim(text)

    @redis_command("LATENCY|HELP", arity=2, flags="loading stale", group="server")
    def cmd_latency_help(self) -> bytes:
        """The LATENCY subcommands."""
        return _help(_LATENCY_HELP)

    # ------------------------------------------------------------------ MEMORY

    @redis_command("MEMORY", arity=-2, group="server")
    def cmd_memory(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the MEMORY subcommands."""
        return self.run_subcommand("MEMORY", sub, args)  # type: ignore[no-any-return]

    @redis_command("MEMORY|USAGE", arity=-3, flags="readonly", keys=[KeySpec(("RO",), 2)], group="server")
    def cmd_memory_usage(self, key: bytes, *options: bytes) -> bytes:
        """Bytes this process holds for a key and its value (elements sampled: SAMPLES count, 0 for all)."""
        samples = 5
        i = 0
        while i < len(options):
            if options[i].upper() == b"SAMPLES" and i + 1 < len(options):
                samples = int_arg(options[i + 1])
                if samples < 0:
                    raise RespError(SYNTAX)
                i += 2
            else:
                raise RespError(SYNTAX)
        value = self.db.get(key)
        if value is None:
            return self.null
        # The key, its entry in the keyspace's dict (about three pointers' worth) and the value.
        return integer(sys.getsizeof(key) + 24 + estimate_size(value, samples))

    @redis_command(
        "MEMORY|STATS",
        arity=2,
        group="server",
        tips="nondeterministic_output request_policy:all_shards response_policy:special",
    )
    def cmd_memory_stats(self) -> bytes:
        """Memory figures of the server, under redis-server's names (a map)."""
        server = self.server
        rss = _rss()
        keys = sum(len(db) for db in server.dbs)
        dataset = sum(sys.getsizeof(k) + 24 + estimate_size(v, 5) for db in server.dbs for k, v in db.data.items())
        peak = max(server.peak_memory, rss)
        d = self.dialect
        fields: list[bytes] = [
            bulk(b"peak.allocated") + integer(peak),
            bulk(b"total.allocated") + integer(rss),
            bulk(b"startup.allocated") + integer(max(0, rss - dataset)),
            bulk(b"replication.backlog") + integer(0),
            bulk(b"clients.slaves") + integer(0),
            bulk(b"clients.normal") + integer(sum(c.out_buffered for c in server.clients())),
            bulk(b"cluster.links") + integer(0),
            bulk(b"aof.buffer") + integer(len(server.aof._buf) if server.aof is not None else 0),
            bulk(b"lua.caches") + integer(0),
            bulk(b"functions.caches") + integer(0),
        ]
        for db in server.dbs:
            if len(db):
                fields.append(
                    bulk(b"db.%d" % db.index)
                    + d.map_header(2)
                    + bulk(b"overhead.hashtable.main")
                    + integer(sys.getsizeof(db.data))
                    + bulk(b"overhead.hashtable.expires")
                    + integer(sys.getsizeof(db.expires))
                )
        overhead = max(0, rss - dataset)
        fields += [
            bulk(b"overhead.total") + integer(overhead),
            bulk(b"keys.count") + integer(keys),
            bulk(b"keys.bytes-per-key") + integer(dataset // keys if keys else 0),
            bulk(b"dataset.bytes") + integer(dataset),
            bulk(b"dataset.percentage") + _double(d, 100.0 * dataset / rss if rss else 0.0),
            bulk(b"peak.percentage") + _double(d, 100.0 * rss / peak if peak else 0.0),
            bulk(b"fragmentation") + _double(d, 1.0),
            bulk(b"fragmentation.bytes") + integer(0),
        ]
        return d.map_header(len(fields)) + b"".join(fields)

    @redis_command(
        "MEMORY|DOCTOR",
        arity=2,
        group="server",
        tips="nondeterministic_output request_policy:all_shards response_policy:special",
    )
    def cmd_memory_doctor(self) -> bytes:
        """A report of memory problems, in words."""
        dataset = sum(sys.getsizeof(v) for db in self.server.dbs for v in db.data.values())
        return self.dialect.verbatim(_MEMORY_EMPTY if dataset < 5 << 20 else _MEMORY_FINE)

    @redis_command(
        "MEMORY|MALLOC-STATS",
        arity=2,
        group="server",
        tips="nondeterministic_output request_policy:all_shards response_policy:special",
    )
    def cmd_memory_malloc_stats(self) -> bytes:
        """The allocator's statistics: CPython's allocator keeps none to show."""
        return self.dialect.verbatim(b"Stats not supported for the current allocator")

    @redis_command(
        "MEMORY|PURGE", arity=2, group="server", tips="request_policy:all_shards response_policy:all_succeeded"
    )
    def cmd_memory_purge(self) -> bytes:
        """Return free memory to the system where the allocator can (a garbage collection here)."""
        import gc

        gc.collect()
        return OK

    @redis_command("MEMORY|HELP", arity=2, flags="loading stale", group="server")
    def cmd_memory_help(self) -> bytes:
        """The MEMORY subcommands."""
        return _help(_MEMORY_HELP)
