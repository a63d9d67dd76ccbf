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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from linechat.service import CommandError, Protocol, Reply, Rule, ServiceChannel, command, terminator
from linechat.services.redis.commands import WRITE_COMMANDS, KeyspaceCommands
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    OK,
    RESP2,
    RESP3,
    Dialect,
    RespError,
    array,
    bulk,
    error,
    glob_match,
    integer,
    parse_int,
    split_inline,
)

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["SERVER_VERSION", "RedisProtocol"]

#: The Redis version we answer like (HELLO, INFO).
SERVER_VERSION = b"7.0.0"

# Only these may run while a RESP2 connection is subscribed (RESP3 ones may run anything).
_PUBSUB_ALLOWED = frozenset({"SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT", "RESET"})
# Longest "$len" / "*N" line, as Redis (PROTO_INLINE_MAX_SIZE).
_MAX_COUNT_LINE = 64 * 1024
# Raw command name (as sent, any case) -> (handler, least argv length, most argv length).
_FAST: dict[bytes, tuple[Callable[..., Any], int, int]] = {}
_UNBOUNDED = 1 << 62
# "$0" ... "$1023": the bulk headers the multibulk parser checks by lookup.
_BULK_HEADERS = tuple(b"$%d" % size for size in range(1024))
# Commands that can close the connection or change its pub/sub state always
# take the full path, so the fast loop need not re-check either per command.
_NEVER_FAST = frozenset(
    {"QUIT", "RESET", "HELLO", "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "MULTI", "EXEC", "DISCARD"}
)
# Run at once inside MULTI; every other command is checked and queued until EXEC.
_TRANSACTION_CONTROL = frozenset({"MULTI", "EXEC", "DISCARD", "QUIT", "RESET"})


class RedisProtocol(KeyspaceCommands, Protocol):
    """A client connection speaking RESP2 or RESP3 (and inline commands) on one port."""

    encoding = None  # arguments stay bytes
    line_delimiter = b"\n"
    initial_rule = "stream"
    #: A cut command is framed by these rules: line_timeout covers the whole command.
    command_rules = frozenset({"command", "bulklen", "bulk"})
    #: Sent to a connection refused for lack of room, as Redis words it.
    refusal_line = b"-ERR max number of clients reached\r\n"

    def __init__(self, channel: ServiceChannel, service: Any) -> None:
        super().__init__(channel, service)
        self.server: RedisService = service
        self.dbindex = 0
        self.db = service.dbs[0]
        self.argv: list[bytes] = []
        self.client_name: bytes | None = None
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
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
        self._use(RESP2)

    def _use(self, dialect: Dialect) -> None:
        """Switch the connection's replies to a protocol version (HELLO, RESET)."""
        self.dialect = dialect
        self.null = dialect.null
        self.null_array = dialect.null_array

    # ------------------------------------------------------------------ connection hooks

    def on_connect(self) -> Reply:
        """Refuse the client, as Redis does, when maxclients are already connected."""
        if len(self.server.connections) > self.server.settings.maxclients:
            self.close()
            return b"-ERR max number of clients reached\r\n"
        return None

    def on_close(self) -> None:
        """Drop this connection's subscriptions."""
        if self.channels or self.patterns:
            self.server.unsubscribe_all(self)

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
        out: list[bytes] = []
        ran = 0
        fast = _FAST
        # Subscribed or inside MULTI: every command takes the full path.
        slow = self._subscribed or self._multi is not None
        for argv in commands:
            if not argv:
                continue
            ran += 1
            entry = fast.get(argv[0])
            if entry is not None and not slow and entry[1] <= len(argv) <= entry[2]:
                self.argv = argv  # the append-only file logs the command from here
                try:
                    reply = entry[0](self, *argv[1:]) if len(argv) > 1 else entry[0](self)
                except RespError as exc:
                    reply = error(str(exc))
                except Exception as exc:
                    reply = self._crashed(exc)
                if reply is not None:
                    out.append(reply)
                continue
            reply = self._execute(argv)
            if reply is not None:
                out.append(reply)
            if self.closing:
                break
            slow = self._subscribed or self._multi is not None
        if failure is not None and not self.closing:
            out.append(self._protocol_error(failure))
        self.server.commands_processed += ran
        if not out:
            return None
        return out[0] if len(out) == 1 else b"".join(out)

    def _parse_multibulks(self, data: bytes, quotes: bool) -> tuple[list[list[bytes]], str | None]:
        """Parse a chunk of multibulks by splitting it at every CRLF at once, checking each length.

        Values rarely hold a CRLF, so the split lines are usually the
        headers and values themselves: a command's words are then one slice
        of that list.  Each ``$len`` header must equal its value's length
        (from a table of the common ones); at the first thing that does not
        fit (a value with a CRLF, an inline command, a cut or odd command)
        the byte-by-byte parser takes over from there.
        """
        lines = data.split(b"\r\n")
        last = len(lines) - 1  # lines[last] has no CRLF after it
        headers = _BULK_HEADERS
        top = len(headers)
        max_count = self._max_multibulk
        commands: list[list[bytes]] = []
        i = 0
        while i < last:
            head = lines[i]
            if head[:1] != b"*":
                break
            try:
                count = int(head[1:])
            except ValueError:
                break
            following = i + 1 + 2 * count
            if count <= 0 or count > max_count or following > last:
                break
            argv = lines[i + 2 : following : 2]
            for value, header in zip(argv, lines[i + 1 : following : 2], strict=True):
                size = len(value)
                if size >= top or headers[size] != header:
                    break
            else:
                commands.append(argv)
                i = following
                continue
            break
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
            self.switch("bulklen")
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
            self.switch("bulklen")
            return None
        self.switch("stream")
        self.server.commands_processed += 1
        return self._inline(line)

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
            self.switch("bulklen")
            return None
        argv, self._partial = self._partial, []
        self.switch("stream")
        self.server.commands_processed += 1
        return self._execute(argv)

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
        return self._execute(argv)

    # ------------------------------------------------------------------ dispatch

    def _execute(self, argv: list[bytes]) -> bytes | None:
        """Run one command given as its words through the framework's dispatch; return its RESP reply.

        This full path runs the framework's checks and hooks (unknown command,
        arity, pub/sub context).  A name seen here with a plain handler is
        entered in the fast table, which on_stream uses for later commands.
        """
        raw = argv[0]
        name = raw.decode("latin-1").upper()
        spec = self._commands.get(name)
        if spec is not None and spec.plain and spec.states is None and name not in _NEVER_FAST and len(_FAST) < 4096:
            top = _UNBOUNDED if spec.max_args is None else spec.max_args + 1
            _FAST[raw] = (spec.func, spec.min_args + 1, top)
        self.argv = argv
        if self._subscribed and self.dialect is RESP2:
            blocked = self._pubsub_check(name, argv)
            if blocked is not None:
                return blocked
        if self._multi is not None and name not in _TRANSACTION_CONTROL:
            return self._queue(name, argv)
        return self.dispatch(name, argv[1:])  # type: ignore[return-value]

    def _queue(self, name: str, argv: list[bytes]) -> bytes:
        """Inside MULTI: check a command as Redis does before queueing it (name, arity)."""
        spec = self._commands.get(name)
        args: list[Any] = argv[1:]
        if spec is None:
            self._multi_failed = True
            return self.on_unknown_command(name, args)  # type: ignore[return-value]
        if not spec.accepts(len(args)):
            self._multi_failed = True
            return self.on_arity_error(name, args)  # type: ignore[return-value]
        self._multi.append(argv)  # type: ignore[union-attr]
        return b"+QUEUED\r\n"

    def _pubsub_check(self, name: str, argv: list[bytes]) -> bytes | None:
        if name in _PUBSUB_ALLOWED:
            return None
        spec = self._commands.get(name)
        if spec is None:
            return None  # unknown-command error comes first, as in Redis
        if not spec.accepts(len(argv) - 1):
            return None  # so does the arity error
        return error(
            f"ERR Can't execute '{name.lower()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
            "are allowed in this context"
        )

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
        return self._subscribed or self._pending is not None

    def _subcommand_arity(self, name: str, sub: bytes) -> RespError:
        return RespError(f"ERR wrong number of arguments for '{name}|{sub.lower().decode('latin-1')}' command")

    def _unknown_subcommand(self, name: str, sub: bytes) -> RespError:
        return RespError(f"ERR unknown subcommand '{sub[:128].decode('latin-1')}'. Try {name} HELP.")

    # ------------------------------------------------------------------ connection commands

    @command("PING")
    def cmd_ping(self, message: bytes | None = None) -> bytes:
        """PONG, or the message back."""
        if self._subscribed and self.dialect is RESP2:
            return b"*2\r\n$4\r\npong\r\n" + bulk(message or b"")
        return b"+PONG\r\n" if message is None else bulk(message)

    @command("ECHO")
    def cmd_echo(self, message: bytes) -> bytes:
        """The message back."""
        return bulk(message)

    @command("QUIT")
    def cmd_quit(self, *args: bytes) -> bytes:
        """Say OK and close."""
        self.close()
        return OK

    @command("RESET")
    def cmd_reset(self) -> bytes:
        """Back to a fresh connection state: RESP2, database 0, no subscriptions, no name."""
        self.server.unsubscribe_all(self)
        self._use(RESP2)
        self.dbindex = 0
        self.db = self.server.dbs[0]
        self.client_name = None
        self._multi = None
        self._multi_failed = False
        return b"+RESET\r\n"

    @command("MULTI")
    def cmd_multi(self) -> bytes:
        """Start a transaction: later commands are queued until EXEC or DISCARD."""
        if self._multi is not None:
            return error("ERR MULTI calls can not be nested")
        self._multi = []
        self._multi_failed = False
        return OK

    @command("EXEC")
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

    @command("DISCARD")
    def cmd_discard(self) -> bytes:
        """Drop the queued commands and leave the transaction."""
        if self._multi is None:
            return error("ERR DISCARD without MULTI")
        self._multi = None
        self._multi_failed = False
        return OK

    @command("HELLO")
    def cmd_hello(self, *args: bytes) -> bytes:
        """Handshake: choose RESP2 or RESP3 (AUTH, SETNAME on the way); reply with the server's details.

        Options take effect in order, as in Redis: a name set before a failing
        option stays set.  The protocol changes only when every option passed.
        """
        dialect = self.dialect
        if args:
            version = parse_int(args[0])
            if version is None:
                raise RespError("ERR Protocol version is not an integer or out of range")
            if version == 2:
                dialect = RESP2
            elif version == 3:
                dialect = RESP3
            else:
                raise RespError("NOPROTO unsupported protocol version")
            rest = args[1:]
            while rest:
                opt = rest[0].upper()
                if opt == b"SETNAME" and len(rest) >= 2:
                    self._set_name(rest[1])
                    rest = rest[2:]
                elif opt == b"AUTH" and len(rest) >= 3:
                    self._authenticate(rest[1])
                    rest = rest[3:]
                else:
                    raise RespError(f"ERR Syntax error in HELLO option '{rest[0].decode('latin-1')}'")
        self._use(dialect)
        return (
            dialect.map_header(7)
            + bulk(b"server")
            + bulk(b"redis")
            + bulk(b"version")
            + bulk(SERVER_VERSION)
            + bulk(b"proto")
            + integer(dialect.version)
            + bulk(b"id")
            + integer(self.id)
            + bulk(b"mode")
            + bulk(b"standalone")
            + bulk(b"role")
            + bulk(b"master")
            + bulk(b"modules")
            + EMPTY_ARRAY
        )

    def _authenticate(self, user: bytes) -> None:
        # No password is configured: like Redis then, the "default" user
        # logs in with any password and there is no other user.
        if user != b"default":
            raise RespError("WRONGPASS invalid username-password pair or user is disabled.")

    @command("AUTH")
    def cmd_auth(self, first: bytes, *rest: bytes) -> bytes:
        """AUTH [user] password: accepted for the default user, since no password is configured."""
        if len(rest) > 1:
            raise RespError("ERR syntax error")
        if not rest:
            raise RespError(
                "ERR AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        self._authenticate(first)
        return OK

    def _set_name(self, name: bytes) -> None:
        if any(c < 33 or c > 126 for c in name):
            raise RespError("ERR Client names cannot contain spaces, newlines or special characters.")
        self.client_name = name or None

    @command("CLIENT")
    def cmd_client(self, sub: bytes, *args: bytes) -> bytes:
        """CLIENT ID, SETNAME, GETNAME, SETINFO, INFO, LIST."""
        upper = sub.upper()
        arity = {b"ID": 0, b"GETNAME": 0, b"SETNAME": 1, b"SETINFO": 2, b"INFO": 0, b"LIST": None}
        if upper not in arity:
            raise self._unknown_subcommand("CLIENT", sub)
        wanted = arity[upper]
        if wanted is not None and len(args) != wanted:
            raise self._subcommand_arity("client", sub)
        if upper == b"ID":
            return integer(self.id)
        if upper == b"GETNAME":
            return bulk(self.client_name, self.null)
        if upper == b"SETNAME":
            self._set_name(args[0])
            return OK
        if upper == b"SETINFO":
            if args[0].upper() not in (b"LIB-NAME", b"LIB-VER"):
                raise RespError(f"ERR Unrecognized option '{args[0].decode('latin-1')}'")
            return OK
        if upper == b"INFO":
            return self.dialect.verbatim(self.client_info() + b"\n")
        return self.dialect.verbatim(b"".join(p.client_info() + b"\n" for p in self.server.clients()))

    def client_info(self) -> bytes:
        """One line describing this client, in the style of CLIENT LIST."""
        peer = f"{self.peer[0]}:{self.peer[1]}" if self.peer else "?"
        return (
            f"id={self.id} addr={peer} name={(self.client_name or b'').decode('latin-1')} "
            f"age={int(time.time() - self.created)} db={self.dbindex} sub={len(self.channels)} "
            f"psub={len(self.patterns)} cmd={(self.argv[0] if self.argv else b'NULL').lower().decode('latin-1')} "
            f"resp={self.dialect.version}"
        ).encode("latin-1")

    # ------------------------------------------------------------------ server commands

    @command("TIME")
    def cmd_time(self) -> bytes:
        """Server time: seconds and microseconds."""
        now_us = self.server.now_us()
        return array([b"%d" % (now_us // 1_000_000), b"%d" % (now_us % 1_000_000)])

    @command("INFO")
    def cmd_info(self, *sections: bytes) -> bytes:
        """Server information in Redis's INFO text format."""
        return self.dialect.verbatim(self.server.info([s.lower().decode("latin-1") for s in sections]))

    @command("CONFIG")
    def cmd_config(self, sub: bytes, *args: bytes) -> bytes:
        """CONFIG GET pattern...: our settings under Redis's parameter names."""
        if sub.upper() != b"GET":
            raise self._unknown_subcommand("CONFIG", sub)
        if not args:
            raise self._subcommand_arity("config", sub)
        found: dict[bytes, bytes] = {}
        for name, value in self.server.config_table().items():
            if any(glob_match(p.lower(), name) for p in args):
                found[name] = value
        return self.dialect.map_reply([item for pair in found.items() for item in pair])

    @command("COMMAND")
    def cmd_command(self, *args: bytes) -> bytes:
        """COMMAND, COMMAND COUNT, COMMAND INFO names, COMMAND DOCS [names], COMMAND LIST."""
        specs = self._commands
        if not args:
            return b"*%d\r\n" % len(specs) + b"".join(self._command_info(n) for n in sorted(specs))
        sub = args[0].upper()
        if sub == b"COUNT":
            return integer(len(specs))
        if sub == b"LIST":
            return array([n.lower().encode() for n in sorted(specs)])
        if sub == b"INFO":
            names = [a.decode("latin-1").upper() for a in args[1:]] or sorted(specs)
            return b"*%d\r\n" % len(names) + b"".join(
                self._command_info(n) if n in specs else self.null_array for n in names
            )
        if sub == b"DOCS":
            names = [a.decode("latin-1").upper() for a in args[1:]] or sorted(specs)
            names = [n for n in names if n in specs]
            out = [self.dialect.map_header(len(names))]
            for n in names:
                out.append(bulk(n.lower().encode()))
                out.append(
                    self.dialect.map_header(2)
                    + bulk(b"summary")
                    + bulk(specs[n].help.encode("utf-8"))
                    + bulk(b"group")
                    + bulk(b"generic")
                )
            return b"".join(out)
        raise self._unknown_subcommand("COMMAND", args[0])

    def _command_info(self, name: str) -> bytes:
        spec = self._commands[name]
        arity = -(spec.min_args + 1) if spec.max_args is None or spec.max_args != spec.min_args else spec.min_args + 1
        keyed = name not in NO_KEY_COMMANDS
        flags = [b"write" if name in WRITE_COMMANDS else b"readonly"] if keyed else [b"fast"]
        first = 1 if keyed else 0
        last = (-1 if spec.max_args is None else 1) if keyed else 0
        return (
            b"*10\r\n"
            + bulk(name.lower().encode())
            + integer(arity)
            + self.dialect.set_head % len(flags)
            + b"".join(b"+%s\r\n" % f for f in flags)
            + integer(first)
            + integer(last)
            + integer(1 if keyed else 0)
            + self.dialect.set_head % 0 * 4
        )

    # ------------------------------------------------------------------ pub/sub

    def _subscription_reply(self, kind: bytes, name: bytes | None) -> bytes:
        return (
            self.dialect.push_head % 3
            + bulk(kind)
            + bulk(name, self.null)
            + integer(len(self.channels) + len(self.patterns))
        )

    @command("SUBSCRIBE")
    def cmd_subscribe(self, channel: bytes, *more: bytes) -> bytes:
        """Receive the messages published to channels."""
        out = []
        for name in (channel, *more):
            self.server.subscribe(self, name, pattern=False)
            out.append(self._subscription_reply(b"subscribe", name))
        return b"".join(out)

    @command("PSUBSCRIBE")
    def cmd_psubscribe(self, pattern: bytes, *more: bytes) -> bytes:
        """Receive the messages published to channels matching glob patterns."""
        out = []
        for name in (pattern, *more):
            self.server.subscribe(self, name, pattern=True)
            out.append(self._subscription_reply(b"psubscribe", name))
        return b"".join(out)

    def _unsubscribe(self, names: tuple[bytes, ...], pattern: bool) -> bytes:
        current = self.patterns if pattern else self.channels
        kind = b"punsubscribe" if pattern else b"unsubscribe"
        targets = list(names) if names else sorted(current)
        if not targets:
            return self._subscription_reply(kind, None)
        out = []
        for name in targets:
            self.server.unsubscribe(self, name, pattern)
            out.append(self._subscription_reply(kind, name))
        return b"".join(out)

    @command("UNSUBSCRIBE")
    def cmd_unsubscribe(self, *channels: bytes) -> bytes:
        """Stop receiving messages of some (or all) channels."""
        return self._unsubscribe(channels, False)

    @command("PUNSUBSCRIBE")
    def cmd_punsubscribe(self, *patterns: bytes) -> bytes:
        """Stop receiving messages of some (or all) patterns."""
        return self._unsubscribe(patterns, True)

    @command("PUBLISH")
    def cmd_publish(self, channel: bytes, message: bytes) -> bytes:
        """Send a message to a channel; return how many subscribers got it."""
        return integer(self.server.publish(channel, message))


# Commands that take no key (COMMAND reports no key positions for them).
NO_KEY_COMMANDS = frozenset(
    [
        "PING",
        "ECHO",
        "QUIT",
        "RESET",
        "HELLO",
        "AUTH",
        "CLIENT",
        "TIME",
        "INFO",
        "CONFIG",
        "COMMAND",
        "SELECT",
        "DBSIZE",
        "FLUSHDB",
        "FLUSHALL",
        "KEYS",
        "SCAN",
        "RANDOMKEY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "PSUBSCRIBE",
        "PUNSUBSCRIBE",
        "PUBLISH",
    ]
)
