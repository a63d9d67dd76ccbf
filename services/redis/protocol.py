"""One Redis connection: RESP2 multibulk and inline framing, dispatch, pub/sub, server commands.

Requests are RESP2 multibulks or inline lines whatever the protocol; replies
are RESP2 until ``HELLO 3`` switches the connection to RESP3 (nulls, maps,
sets, verbatim text and push messages then take their RESP3 forms).  The
handlers never test the version: they take those reply shapes from the
connection's dialect (``self.dialect``, ``self.null``, ``self.null_array``),
set once per switch.

Framing has a fast path and a frame-by-frame path.  In the ``stream`` rule
every chunk read from the socket comes here whole, and all the complete
commands in it are parsed in one loop (pipelines cost one call per read).
When a command is cut by the end of a chunk, the unparsed tail is put back
and the framework frames the rest: the ``command`` line rule for an inline
command or a ``*N`` header, ``bulklen`` for a ``$len`` line, and the
counting ``bulk`` rule for the ``len + 2`` bytes of a bulk; once the command
is complete the connection goes back to the ``stream`` rule.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from linechat import CommandError, Protocol, Reply, Rule, ServiceChannel, terminator
from linechat.crossprotocol import is_loopback_peer, report_cross_protocol
from linechat.services.redis.acl_commands import AclCommands
from linechat.services.redis.admin import AdminCommands
from linechat.services.redis.blocking import BlockingListCommands, BlockingSortedSetCommands, Waiter
from linechat.services.redis.commands import DataCommands
from linechat.services.redis.connection import SERVER_VERSION, ConnectionCommands
from linechat.services.redis.introspection import ServerCommands
from linechat.services.redis.monitoring import MonitoringCommands
from linechat.services.redis.multi import TransactionCommands
from linechat.services.redis.pubsub import PubSubCommands
from linechat.services.redis.resp import (
    RESP2,
    Dialect,
    RespError,
    error,
    split_inline,
)
from linechat.services.redis.scripting import BUSY, ScriptCommands
from linechat.services.redis.table import CommandDef, build_table

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["SERVER_VERSION", "TABLE", "RedisProtocol"]

# Longest "$len" / "*N" line, as Redis (PROTO_INLINE_MAX_SIZE).
_MAX_COUNT_LINE = 64 * 1024
# Raw command name (as sent, any case) -> (handler, least argv length, most argv length).
_FAST: dict[bytes, tuple[Callable[..., Any], int, int]] = {}
_UNBOUNDED = 1 << 62
# "$0" ... "$1023": the bulk headers the multibulk parser checks by lookup.
_BULK_HEADERS = tuple(b"$%d" % size for size in range(1024))
# "*1" ... "*1024": the multibulk counts the parser reads by lookup (other spellings take int()).
_MULTIBULK_COUNTS = {b"*%d" % count: count for count in range(1, 1025)}
# What _execute returns for a command held by CLIENT PAUSE (compared by identity).
_POSTPONED = b"-postponed\r\n"
_NOAUTH = b"-NOAUTH Authentication required.\r\n"
_LOADING = b"-LOADING Redis is loading the dataset in memory\r\n"
_EXECABORT = b"-EXECABORT Transaction discarded because of: "
# redis-server's words to a client refused by protected mode (src/networking.c).
_DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for "
    b"the default user. In this mode connections are only accepted from the loopback interface. If you want to "
    b"connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable "
    b"protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting "
    b"to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from "
    b"internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just "
    b"disable the protected mode by editing the Redis configuration file, and setting the protected mode option "
    b"to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart "
    b"it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. "
    b"NOTE: You only need to do one of the above things in order for the server to start accepting connections "
    b"from the outside.\r\n"
)
# ACL denials, as redis-server words them (the command one names the command).
_NOPERM = {
    "key": b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
    "channel": b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n",
}
_EXEC_NOPERM = (
    "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. "
    "This command is no longer allowed for the following reason: "
)
_EXEC_REASONS = {
    "command": "no permission to execute the command or subcommand",
    "key": "no permission to touch the specified keys",
    "channel": "no permission to access one of the channels used as arguments",
}
# Command names that are an HTTP request's first line or its Host header (redis-server's securityWarningCommand).
_HTTP_WORDS = frozenset(("POST", "HOST:"))
# Input held while a client is blocked, in bytes: past this the client is closed.
_DEFERRED_LIMIT = 256 * 1024 * 1024


# Shared by every client that never blocked (an idle connection holds no deque); nothing is added to it.
_NO_DEFERRED: deque[list[bytes] | str] = deque()

#: Replies of one read above this many bytes are queued one by one instead of joined.
_JOIN_LIMIT = 1 << 16


class RedisProtocol(
    BlockingListCommands,
    BlockingSortedSetCommands,
    DataCommands,
    ConnectionCommands,
    TransactionCommands,
    PubSubCommands,
    ScriptCommands,
    ServerCommands,
    AclCommands,
    MonitoringCommands,
    AdminCommands,
    Protocol,
):
    """A client connection speaking RESP2 or RESP3 (and inline commands) on one port."""

    encoding = None  # arguments stay bytes
    # Rarely changed per-connection state lives on the class until it changes,
    # so an idle connection costs no more for it.
    reply_mode = b""  # CLIENT REPLY: b"" (on), b"OFF" or b"SKIP"
    no_evict = False  # CLIENT NO-EVICT: recorded and reported (nothing is evicted here)
    monitoring = False  # MONITOR
    dirty_cas = False  # a watched key changed: EXEC fails
    # WATCH: (db, key) -> whether it had expired then; this shared empty one until the first WATCH.
    watching: dict[tuple[int, bytes], bool] = {}
    line_delimiter = b"\n"
    initial_rule = "stream"
    #: A cut command is framed by these rules: line_timeout covers the whole command.
    command_rules = frozenset({"command", "bulklen", "bulk", "bulks"})
    #: Sent to a connection refused for lack of room, as Redis words it.
    refusal_line = b"-ERR max number of clients reached\r\n"

    def __init__(self, channel: ServiceChannel, service: Any) -> None:
        super().__init__(channel, service)
        self.server: RedisService = service
        self.dbindex = 0
        self.db = service.dbs[0]
        self.argv: list[bytes] = []
        self.client_name: bytes | None = None
        self.user = service.acl.default  # the ACL user; AUTH and HELLO ... AUTH change it
        self.authenticated = not service.acl.default_requires_auth  # requirepass: AUTH first
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.shard_channels: set[bytes] = set()
        self._subscribed = False  # kept by the service as subscriptions come and go
        self._multi: list[list[bytes]] | None = None  # commands queued since MULTI
        self._multi_failed = False  # a command was refused while queueing: EXEC aborts
        self.created = time.time()
        settings = service.settings
        self._max_bulk = settings.max_bulk_len
        self._max_multibulk = settings.max_multibulk_len
        self._partial: list[bytes] = []  # bulks of a command being framed frame by frame
        self._remaining = 0
        self._header_pending = False  # the cut line is a "*N" header, not an inline command
        self._backlog: tuple[list[list[bytes]], str | None] | None = None  # commands put off to a later turn
        # A blocked client keeps reading (so a hang-up is seen at once) but
        # runs nothing: the commands that arrive wait here, in order, until
        # it is answered.  A str item is a protocol error found in that input.
        self._blocked: Waiter | None = None
        self._deferred: deque[list[bytes] | str] = _NO_DEFERRED  # made when a command blocks
        self._deferred_bytes = 0
        self._resume_due = False
        self._resuming = False  # running parked commands: a close waits for their reply
        self._use(RESP2)

    def _use(self, dialect: Dialect) -> None:
        """Switch the connection's replies to a protocol version (HELLO, RESET)."""
        self.dialect = dialect
        self.null = dialect.null
        self.null_array = dialect.null_array

    # ------------------------------------------------------------------ connection hooks

    def on_connect(self) -> Reply:
        """Refuse the client, as Redis does, when maxclients are already connected."""
        server = self.server
        server.connections_received += 1
        if len(server.connections) > server.settings.maxclients:
            server.rejected_connections += 1
            self.close()
            return b"-ERR max number of clients reached\r\n"
        if server.acl.default.nopass and server.settings.protected_mode and not is_loopback_peer(self.peer):
            server.rejected_connections += 1
            self.close()
            return _DENIED
        return None

    def on_close(self) -> None:
        """Drop this connection's subscriptions and watched keys; a blocked client leaves its queues, taking nothing."""
        if self._subscribed:
            self.server.unsubscribe_all(self)
        if self.monitoring:
            self.server.monitoring.stop(self)
        if self.watching:
            self.server.unwatch_all(self)
        if self._blocked is not None:
            self.server.blocking.forget(self._blocked)
            self._blocked = None
        self._deferred.clear()

    # ------------------------------------------------------------------ framing

    @terminator("stream", None, stream=True)
    def on_stream(self, data: bytes, end: bool) -> Reply:
        """Run every complete command in a chunk of input; hand a cut command to the frame rules."""
        # This is the hot path of the service.  Parsing comes first and
        # yields the commands' words; then one loop runs them, calling
        # handlers straight from a table (see _execute for the full path).
        quotes = 34 in data or 39 in data
        failure: str | None = None
        if data[0] == 42:  # '*': what clients send
            commands, failure = self._parse_multibulks(data, quotes)
        elif 42 in data or quotes:
            commands, failure = self._parse(data, quotes, 0)
        elif data.isspace():
            return None  # blank lines only (a flood of them, say): nothing to run, nothing to split
        else:
            # No "*" and no quotes anywhere: every line is an inline command
            # that splits on whitespace (which also drops its CR).  One split
            # of the chunk beats a find and a slice per command.
            lines = data.split(b"\n")
            tail = lines.pop()
            if tail:  # a command cut by the end of the read
                self._header_pending = False
                self.unread(tail)
                self.switch("command")
            commands = [line.split() for line in lines]
        if self._blocked is not None or self._deferred:
            self._defer(commands, failure, len(data))
            return None
        return self._run(commands, failure)

    def _run(self, commands: list[list[bytes]], failure: str | None) -> Reply:
        """Run parsed commands in order; past the turn's allowance the rest wait for a later turn."""
        out: list[bytes] = []
        ran = 0
        size = 0
        index = 0
        # The framework's limits: commands per turn and reply bytes before the
        # peer's backlog passes its high-water mark.
        budget, room = self.allowance()
        fast = _FAST
        server = self.server
        ready = server.blocking.ready  # keys a write made ready for blocked clients
        monitoring = server.monitoring
        # SLOWLOG/LATENCY: commands taking at least this long are reported (None: no threshold set).
        limit = monitoring.min_seconds
        # Subscribed, inside MULTI, a script is busy, the AOF cannot be written: every command takes the full path.
        slow = (
            self._subscribed
            or self._multi is not None
            or server.busy
            or server.loading
            or server.paused
            or self.reply_mode
            or not self.authenticated
            or not self.user.unrestricted
            or monitoring.monitors
            or (server.aof is not None and server.aof.write_error is not None)
        )
        for argv in commands:
            index += 1
            if not argv:
                continue
            ran += 1
            entry = fast.get(argv[0])
            if entry is not None and not slow and entry[1] <= len(argv) <= entry[2]:
                self.argv = argv  # the append-only file logs the command from here
                if limit is not None:
                    started = perf_counter()
                try:
                    reply = entry[0](self, *argv[1:]) if len(argv) > 1 else entry[0](self)
                except RespError as exc:
                    reply = error(str(exc))
                except Exception as exc:
                    reply = self._crashed(exc)
                if limit is not None and perf_counter() - started >= limit:
                    monitoring.after(
                        self, self.table[argv[0].upper().decode("latin-1")], argv, perf_counter() - started
                    )
                if reply is not None:
                    out.append(reply)
                    size += len(reply)
            else:
                reply = self._execute(argv)
                if reply is _POSTPONED:
                    # CLIENT PAUSE: this command and what follows wait for the pause to end.
                    ran -= 1
                    self._defer(commands[index - 1 :], failure, 0)
                    failure = None
                    break
                if self.reply_mode:
                    reply = self._filter_reply(argv, reply)
                if reply is not None:
                    out.append(reply)
                    size += len(reply)
                if self._blocked is not None:
                    # The rest waits until this client is answered.
                    self._defer(commands[index:], failure, 0)
                    failure = None
                    break
                if self.closing:
                    break
                slow = (
                    self._subscribed
                    or self._multi is not None
                    or server.busy
                    or server.loading
                    or server.paused
                    or self.reply_mode
                    or not self.authenticated
                    or not self.user.unrestricted
                    or monitoring.monitors
                    or (server.aof is not None and server.aof.write_error is not None)
                )
            if ready:
                server.blocking.serve_ready()
            if ran >= budget or size > room:
                if index < len(commands) or failure is not None:
                    self._backlog = (commands[index:], failure)
                    failure = None
                    self.defer(self._run_backlog)
                break
        if failure is not None and not self.closing:
            out.append(self._protocol_error(failure))
        server.commands_processed += ran
        if self.channel.closed:
            return None  # aborted (an HTTP request): nothing more is sent
        aof = server.aof
        if aof is not None and (aof._buf or aof._awaiting):
            # Write before acknowledging: this batch's records reach write(2)
            # before its replies are sent (the framework sends them after we
            # return); under always the replies wait for the turn's fsync.
            aof.before_reply(self.channel)
        if not out:
            return None
        if len(out) == 1:
            return out[0]
        # Large replies go out as they are (a list is queued item by item) rather than copied into one.
        return b"".join(out) if size < _JOIN_LIMIT else out

    def _run_backlog(self) -> Reply:
        """A later turn: run the commands a read left over (and report its protocol error, if any)."""
        backlog, self._backlog = self._backlog, None
        if backlog is None or self.closing:
            return None
        return self._run(*backlog)

    def _parse_multibulks(self, data: bytes, quotes: bool) -> tuple[list[list[bytes]], str | None]:
        """Parse a chunk of multibulks by splitting it at every CRLF at once, checking each length.

        Values rarely hold a CRLF, so the split lines are usually the
        headers and values themselves: a command's words are then one slice
        of that list.  Each ``$len`` header must equal its value's length:
        the lengths are mapped to their canonical headers and the two lists
        compared, all in C (a value of 1024 bytes or more, or any mismatch,
        stops the fast loop).  At the first thing that does not fit (a value
        with a CRLF, an inline command, a cut or odd command) the
        byte-by-byte parser takes over from there.
        """
        lines = data.split(b"\r\n")
        last = len(lines) - 1  # lines[last] has no CRLF after it
        header_of = _BULK_HEADERS.__getitem__
        counts = _MULTIBULK_COUNTS
        max_count = self._max_multibulk
        commands: list[list[bytes]] = []
        append = commands.append
        i = 0
        while i < last:
            head = lines[i]
            count = counts.get(head)
            if count is None:  # an uncommon spelling or a long command: read it as before
                if head[:1] != b"*":
                    break
                try:
                    count = int(head[1:])
                except ValueError:
                    break
                if count <= 0:
                    break
            following = i + 1 + 2 * count
            if count > max_count or following > last:
                break
            argv = lines[i + 2 : following : 2]
            try:
                if list(map(header_of, map(len, argv))) != lines[i + 1 : following : 2]:
                    break
            except IndexError:  # a value of 1024 bytes or more: no canonical header in the table
                break
            append(argv)
            i = following
        if i == last and not lines[last]:
            return commands, None  # every byte parsed
        # Where line i starts: the lengths before it plus their CRLFs.
        offset = sum(map(len, lines[:i])) + 2 * i
        rest, failure = self._parse(data, quotes, offset)
        commands += rest
        return commands, failure

    def _parse(self, data: bytes, quotes: bool, pos: int) -> tuple[list[list[bytes]], str | None]:
        """Split a chunk from *pos* into the words of its complete commands, and a protocol error that ends it.

        A command cut by the end of the chunk is put back and framed by the
        frame-by-frame rules.  Empty commands (a blank line, ``*0``) are
        returned as empty lists and skipped by the caller.
        """
        commands: list[list[bytes]] = []
        size = len(data)
        find = data.find
        while pos < size:
            if data[pos] != 42:  # not '*': an inline command
                nl = find(b"\n", pos)
                if nl < 0:
                    self._header_pending = False
                    self.unread(data[pos:])
                    self.switch("command")
                    break
                if quotes:
                    line = data[pos : nl - 1] if nl > pos and data[nl - 1] == 13 else data[pos:nl]
                    quoted = split_inline(line) if 34 in line or 39 in line else line.split()
                    if quoted is None:
                        return commands, "unbalanced quotes in request"
                    commands.append(quoted)
                else:
                    commands.append(data[pos:nl].split())
                pos = nl + 1
                continue
            nl = find(b"\n", pos)
            if nl < 0:
                self._header_pending = True
                self.unread(data[pos:])
                self.switch("command")
                break
            try:
                count = int(data[pos + 1 : nl])
            except ValueError:
                count = -2
            if count > self._max_multibulk or count == -2:
                return commands, "invalid multibulk length"
            pos = nl + 1
            if count <= 0:
                continue
            argv: list[bytes] = []
            while count:
                if pos >= size:
                    self._suspend(argv, count, b"")
                    return commands, None
                if data[pos] != 36:  # '$'
                    return commands, f"expected '$', got '{chr(data[pos])}'"
                nl = find(b"\n", pos)
                if nl < 0:
                    self._suspend(argv, count, data[pos:])
                    return commands, None
                try:
                    length = int(data[pos + 1 : nl])
                except ValueError:
                    length = -1
                if length < 0 or length > self._max_bulk:
                    return commands, "invalid bulk length"
                start = nl + 1
                stop = start + length
                if stop + 2 > size:
                    self._suspend(argv, count, data[start:], length + 2)
                    return commands, None
                argv.append(data[start:stop])
                pos = stop + 2
                count -= 1
            commands.append(argv)
        return commands, None

    def _crashed(self, exc: Exception) -> bytes:
        self.log.error("handler_error", command=self.argv[0][:64].decode("latin-1"), exc_info=exc)
        return error("ERR internal error")

    def _suspend(self, argv: list[bytes], remaining: int, tail: bytes, bulk_size: int | None = None) -> None:
        """A multibulk is cut: frame its remaining bulks one rule at a time."""
        self._partial = argv
        self._remaining = remaining
        if tail:
            self.unread(tail)
        if bulk_size is None:
            self.switch("bulks")
        else:
            self.switch("bulk", count=bulk_size)

    def handle_line(self, line: bytes) -> Reply:
        """A line framed by the ``command`` rule: a ``*N`` header or an inline command."""
        self._header_pending = False
        if line[:1] == b"*":
            try:
                count = int(line[1:])
            except ValueError:
                return self._protocol_error("invalid multibulk length")
            if count > self._max_multibulk:
                return self._protocol_error("invalid multibulk length")
            if count <= 0:
                self.switch("stream")
                return None
            self._partial = []
            self._remaining = count
            self.switch("bulks")
            return None
        self.switch("stream")
        return self._inline(line)

    @terminator("bulks", None, stream=True)
    def on_bulks(self, data: bytes, end: bool) -> Reply:
        """The rest of a cut multibulk, a read at a time: every whole ``$len`` + value in one loop.

        A command of a million small arguments would otherwise take two
        framing steps per argument.  Only a header or a value cut by the end
        of the read goes to the frame rules (``bulklen``, ``bulk``), which
        come back here for the arguments after it.
        """
        argv = self._partial
        remaining = self._remaining
        size = len(data)
        pos = 0
        find = data.find
        max_bulk = self._max_bulk
        while remaining:
            if pos >= size:
                self._remaining = remaining
                return None  # the next read goes on from here
            if data[pos] != 36:  # '$'
                return self._protocol_error(f"expected '$', got '{chr(data[pos])}'")
            nl = find(b"\n", pos)
            if nl < 0:
                self._remaining = remaining
                self.unread(data[pos:])
                self.switch("bulklen")
                return None
            try:
                length = int(data[pos + 1 : nl])
            except ValueError:
                length = -1
            if length < 0 or length > max_bulk:
                return self._protocol_error("invalid bulk length")
            start = nl + 1
            stop = start + length
            if stop + 2 > size:
                self._remaining = remaining
                if start < size:
                    self.unread(data[start:])
                self.switch("bulk", count=length + 2)
                return None
            argv.append(data[start:stop])
            pos = stop + 2
            remaining -= 1
        self._partial = []
        self._remaining = 0
        if pos < size:
            self.unread(data[pos:])
        self.switch("stream")
        return self._submit(argv)

    @terminator("bulklen", b"\n", max_size=_MAX_COUNT_LINE)
    def on_bulk_length(self, line: bytes) -> Reply:
        """A ``$len`` line of a cut multibulk."""
        if line[:1] != b"$":
            return self._protocol_error(f"expected '$', got '{chr(line[0]) if line else chr(10)}'")
        try:
            length = int(line[1:])
        except ValueError:
            length = -1
        if length < 0 or length > self._max_bulk:
            return self._protocol_error("invalid bulk length")
        self.switch("bulk", count=length + 2)
        return None

    @terminator("bulk", count=True)
    def on_bulk(self, frame: bytes) -> Reply:
        """The bytes of one bulk (and its CRLF) of a cut multibulk."""
        self._partial.append(frame[:-2])
        self._remaining -= 1
        if self._remaining:
            self.switch("bulks")
            return None
        argv, self._partial = self._partial, []
        self.switch("stream")
        return self._submit(argv)

    def on_frame_too_long(self, rule: Rule, size: int) -> bool:
        """An over-long inline command or count line: report it as Redis does, then close."""
        if rule.name == "bulklen":
            message = "too big bulk count string"
        elif self._header_pending:
            message = "too big mbulk count string"
        else:
            message = "too big inline request"
        # Send before returning False: the framework then closes after it.
        self.send(error(f"ERR Protocol error: {message}"))
        return False

    def _protocol_error(self, message: str) -> bytes:
        self.close()
        return error(f"ERR Protocol error: {message}")

    def _inline(self, line: bytes) -> bytes | None:
        if line[-1:] == b"\r":
            line = line[:-1]
        argv = split_inline(line)
        if argv is None:
            return self._protocol_error("unbalanced quotes in request")
        if not argv:
            return None
        return self._submit(argv)

    # ------------------------------------------------------------------ blocking

    def _submit(self, argv: list[bytes]) -> bytes | None:
        """Run one command framed frame by frame, or park it behind a blocked one."""
        if self._blocked is not None or self._deferred:
            self._defer([argv], None, sum(map(len, argv)))
            return None
        self.server.commands_processed += 1
        reply = self._execute(argv)
        if self.server.blocking.ready:
            self.server.blocking.serve_ready()
        aof = self.server.aof
        if aof is not None and (aof._buf or aof._awaiting):
            aof.before_reply(self.channel)  # before the reply goes out, as in _run
        return reply

    def _defer(self, commands: list[list[bytes]], failure: str | None, size: int) -> None:
        """Keep commands (and a protocol error after them) until the blocked command is answered."""
        deferred = self._deferred
        if deferred is _NO_DEFERRED:
            deferred = self._deferred = deque()
        deferred.extend(argv for argv in commands if argv)
        if failure is not None:
            deferred.append(failure)
        self._deferred_bytes += size
        if self._deferred_bytes > _DEFERRED_LIMIT:
            self.log.warning("blocked_input_overflow", size=self._deferred_bytes, limit=_DEFERRED_LIMIT)
            self.abort()

    def unblocked(self, reply: bytes) -> None:
        """The blocked command is answered (served, timed out, CLIENT UNBLOCK): send it, then run what waited."""
        self._blocked = None
        if self.channel.closed:
            return
        self.send(reply)
        if self._deferred and not self._resume_due:
            # As in Redis, the writer's own pipeline goes on first; this runs next.
            self._resume_due = True
            self.reactor.call_soon(self._resume)

    def _resume(self) -> None:
        """Run the commands that arrived while this client was blocked, until one blocks again."""
        self._resume_due = False
        deferred = self._deferred
        blocking = self.server.blocking
        while deferred and self._blocked is None and not self.closing and not self.channel.closed:
            item = deferred.popleft()
            if isinstance(item, str):
                self.send(error(f"ERR Protocol error: {item}"))
                self.close()
                break
            self.server.commands_processed += 1
            self._resuming = True
            try:
                reply = self._execute(item)
            except Exception as exc:
                reply = self._crashed(exc)
            finally:
                self._resuming = False
            if reply is _POSTPONED:
                self.server.commands_processed -= 1
                deferred.appendleft(item)
                break
            if self.reply_mode:
                reply = self._filter_reply(item, reply)
            if reply is not None:
                self.send(reply)
            if self.closing:
                super().close()  # QUIT: after its reply
                break
            if blocking.ready:
                blocking.serve_ready()
        if not deferred:
            self._deferred_bytes = 0

    def send(self, reply: Reply) -> None:
        """Send outside a batch (an unblocked pop, a resumed command): the AOF records it acknowledges first."""
        aof = self.server.aof
        if aof is not None and (aof._buf or aof._awaiting):
            aof.before_reply(self.channel)
        self.channel.send_reply(reply)

    def close(self) -> None:
        """Close after the current reply; while parked commands run, after the reply they send."""
        if self._resuming:
            self.closing = True
            return
        super().close()

    # ------------------------------------------------------------------ dispatch

    def _execute(self, argv: list[bytes]) -> bytes | None:
        """Run one command given as its words through the framework's dispatch; return its RESP reply.

        This full path runs the framework's checks and hooks (unknown command,
        arity, pub/sub context, MULTI queueing), all read from the command
        table.  A name seen here whose entry allows it is put in the fast
        table, which on_stream uses for later commands.
        """
        raw = argv[0]
        name = raw.decode("latin-1").upper()
        if name in _HTTP_WORDS:
            # An HTTP request (a browser made to post here): drop the connection
            # with no reply before anything in its body runs, as redis-server does.
            report_cross_protocol(self.log, self.service, name)
            self.abort()
            return None
        spec = self.table.get(name)
        self.argv = argv
        if spec is not None:
            if (
                not self.authenticated
                and "no_auth" not in spec.flags
                and spec.accepts(len(argv) - 1)
                and self.server.acl.default_requires_auth
            ):
                # After the unknown-command and arity checks, before anything else, as in Redis.
                return self._reject(name, _NOAUTH)
            if not self.user.unrestricted and spec.accepts(len(argv) - 1):
                in_multi = self._multi is not None or self.in_exec
                denial = self.acl_check(spec, argv, "multi" if in_multi else "toplevel")
                if denial is not None:
                    if self.in_exec:
                        return error(_EXEC_NOPERM + _EXEC_REASONS[denial.reason])
                    if denial.reason == "command":
                        text = f"-NOPERM this user has no permissions to run the '{denial.command}' command\r\n"
                        return self._reject(name, text.encode("latin-1"))
                    return self._reject(name, _NOPERM[denial.reason])
            server = self.server
            if server.aof is not None and server.aof.write_error is not None and not self.in_exec:
                refusal = self._write_refused(name, spec)
                if refusal is not None:
                    return refusal
            if server.paused and not self.in_script and server.pause_holds(spec, self):
                return _POSTPONED
            if server.loading and spec.accepts(len(argv) - 1) and not self._allowed_while(spec, argv, "loading"):
                if self._multi is not None:
                    self._multi_failed = True
                return _LOADING
            if server.busy and not self._allowed_while(spec, argv, "allow_busy"):
                if self._multi is not None:
                    self._multi_failed = True
                return error(BUSY)
            if spec.fastpath and raw not in _FAST and len(_FAST) < 4096:
                top = _UNBOUNDED if spec.handler_max is None else spec.handler_max + 1
                _FAST[raw] = (spec.func, spec.min_args + 1, top)  # type: ignore[assignment]
            if self._subscribed and not spec.subscribed and self.dialect is RESP2 and spec.accepts(len(argv) - 1):
                # Unknown-command and arity errors come first, as in Redis.
                shown = name.lower()
                if spec.subcommands and len(argv) > 1 and argv[1].upper().decode("latin-1") in spec.subcommands:
                    shown += "|" + argv[1].lower().decode("latin-1")
                return error(
                    f"ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
                    "RESET are allowed in this context"
                )
            if self._multi is not None and spec.in_multi == "queue":
                return self._queue(spec, argv)
        elif self._multi is not None:
            self._multi_failed = True
        monitoring = self.server.monitoring
        if spec is None or (monitoring.min_seconds is None and not monitoring.monitors):
            return self.dispatch(name, argv[1:])  # type: ignore[return-value]
        started = perf_counter()
        reply = self.dispatch(name, argv[1:])
        elapsed = perf_counter() - started
        # Only what ran is reported, not an arity error; a command that blocked is shown to monitors
        # (as redis-server does when it is called) but not timed for the slow log.
        if (
            (monitoring.monitors or elapsed >= (monitoring.min_seconds or 0.0))
            and spec.accepts(len(argv) - 1)
            and (spec.handler_max is None or len(argv) - 1 <= spec.handler_max)
        ):
            monitoring.after(self, spec, argv, elapsed, timed=self._blocked is None)
        return reply  # type: ignore[return-value]

    def _write_refused(self, name: str, spec: CommandDef) -> bytes | None:
        """The AOF cannot be written: refuse a write (and PING, as redis-server 7.0 does) with its MISCONF error.

        EXEC counts as a write when a write is queued: it is refused and the
        transaction discarded (``-EXECABORT ... because of: MISCONF ...``).
        """
        refusal = self.server.write_refusal()
        if refusal is None:
            return None
        if name == "EXEC" and self._multi is not None:
            table = self.table
            if not any(
                (queued := table.get(argv[0].upper().decode("latin-1"))) is not None and _writes(queued, argv)
                for argv in self._multi
            ):
                return None
            self._multi = None
            self._multi_failed = False
            self._unwatch()
            return _EXECABORT + refusal + b"\r\n"
        if not _writes(spec, self.argv) and name != "PING":
            return None
        return self._reject(name, b"-" + refusal + b"\r\n")

    def _reject(self, name: str, line: bytes) -> bytes:
        """Refuse a command before it runs (NOAUTH, NOPERM): a transaction being queued then fails, as in Redis."""
        if self._multi is not None:
            self._multi_failed = True
        if name == "EXEC":  # a refused EXEC reports as an abort, as Redis's rejectCommand does
            return b"-EXECABORT Transaction discarded because of: " + line[1:]
        return line

    def _filter_reply(self, argv: list[bytes], reply: bytes | None) -> bytes | None:
        """CLIENT REPLY OFF or SKIP: drop replies (the CLIENT REPLY command's own included, as in Redis)."""
        mode = self.reply_mode
        if mode == b"SKIP":
            if argv[0].upper() == b"CLIENT" and len(argv) > 1 and argv[1].upper() == b"REPLY":
                return None  # SKIP takes effect from the next command
            self.reply_mode = b""
            return None
        return None if mode == b"OFF" else reply

    @staticmethod
    def _allowed_while(spec: CommandDef, argv: list[bytes], flag: str) -> bool:
        """Whether the table flags a command (or its subcommand) *flag*: allow_busy, loading.

        An unknown subcommand passes, so that its error comes first, as in Redis.
        """
        if flag in spec.flags:
            return True
        if spec.subcommands and len(argv) > 1:
            sub = spec.subcommands.get(argv[1].upper().decode("latin-1"))
            return sub is None or flag in sub.flags
        return False

    def _queue(self, spec: CommandDef, argv: list[bytes]) -> bytes:
        """Inside MULTI: check a command as Redis does before queueing it (arity)."""
        if not spec.accepts(len(argv) - 1):
            self._multi_failed = True
            return self.on_arity_error(spec.name, argv[1:])  # type: ignore[return-value]
        self._multi.append(argv)  # type: ignore[union-attr]
        return b"+QUEUED\r\n"

    def error(self, message: str) -> Reply:
        """Errors raised by the framework (arity, unknown command) get Redis's ERR prefix."""
        return error(f"ERR {message}")

    def on_command_error(self, name: str, exc: CommandError) -> Reply:
        """Our handlers raise the whole error line, code included."""
        return error(str(exc))

    def on_unknown_command(self, name: str, args: list[Any]) -> Reply:
        """Word it like Redis 7: the name as sent and the start of the arguments."""
        shown = ""
        for arg in self.argv[1:]:
            if len(shown) >= 128:
                break
            shown += "'" + arg[: 128 - len(shown)].decode("latin-1") + "' "
        return error(f"ERR unknown command '{self.argv[0][:128].decode('latin-1')}', with args beginning with: {shown}")

    def on_handler_error(self, name: str | None, exc: BaseException) -> Reply:
        """A bug of ours: tell the client without details (the traceback is logged)."""
        return error("ERR internal error")

    def on_idle_timeout(self) -> Reply:
        """Redis closes idle clients without a word."""
        return None

    def idle_allowed(self) -> bool:
        """Subscribers and blocked clients are silent by design: Redis's timeout spares them too."""
        return self._subscribed or self._blocked is not None


def _writes(spec: CommandDef, argv: list[bytes]) -> bool:
    """Whether a command (or its subcommand, such as XGROUP CREATE) has the ``write`` flag."""
    if spec.subcommands and len(argv) > 1:
        sub = spec.subcommands.get(argv[1].upper().decode("latin-1"))
        return sub is not None and sub.write
    return spec.write


#: The command table of the service: every command the connection knows, declared beside its handler.
TABLE = RedisProtocol.table = build_table(RedisProtocol)
