"""Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, CLIENT (Redis's networking.c and server.c)."""

from __future__ import annotations

import time
from typing import Any

from linechat.services.redis.base import ClientContext
from linechat.services.redis.resp import (
    EMPTY_ARRAY,
    OK,
    RESP2,
    RESP3,
    RespError,
    bulk,
    integer,
    parse_int,
)
from linechat.services.redis.table import redis_command

__all__ = ["SERVER_VERSION", "ConnectionCommands"]

#: The Redis version we answer like (HELLO, INFO).
SERVER_VERSION = b"7.0.0"


class ConnectionCommands(ClientContext):
    """The commands about the connection itself."""

    client_name: bytes | None
    authenticated: bool

    @redis_command(
        "PING",
        arity=-1,
        flags="fast",
        group="connection",
        tips="request_policy:all_shards response_policy:all_succeeded",
        subscribed=True,
    )
    def cmd_ping(self, message: bytes | None = None) -> bytes:
        """PONG, or the message back."""
        if self._subscribed and self.dialect is RESP2:
            return b"*2\r\n$4\r\npong\r\n" + bulk(message or b"")
        return b"+PONG\r\n" if message is None else bulk(message)

    @redis_command("ECHO", arity=2, flags="loading stale fast", group="connection")
    def cmd_echo(self, message: bytes) -> bytes:
        """The message back."""
        return bulk(message)

    @redis_command(
        "QUIT",
        arity=-1,
        flags="noscript loading stale fast no_auth allow_busy",
        group="connection",
        in_multi="run",
        subscribed=True,
        fastpath=False,
    )
    def cmd_quit(self, *args: bytes) -> bytes:
        """Say OK and close."""
        self.close()
        return OK

    @redis_command(
        "RESET",
        arity=1,
        flags="noscript loading stale fast no_auth allow_busy",
        group="connection",
        in_multi="run",
        subscribed=True,
        fastpath=False,
    )
    def cmd_reset(self) -> bytes:
        """Back to a fresh connection state: RESP2, database 0, no subscriptions, no name."""
        self.server.unsubscribe_all(self)
        if self.monitoring:
            self.monitoring = False
            self.server.monitoring.stop(self)
        self._use(RESP2)
        self.dbindex = 0
        self.db = self.server.dbs[0]
        self.client_name = None
        # As Redis: back to the default user, who must authenticate again if it has a password.
        self.user = self.server.acl.default
        self.authenticated = not self.server.acl.default_requires_auth
        self._multi = None
        self._multi_failed = False
        if self.watching:
            self.server.unwatch_all(self)
        self.dirty_cas = False
        return b"+RESET\r\n"

    @redis_command(
        "HELLO", arity=-1, flags="noscript loading stale fast no_auth allow_busy", group="connection", fastpath=False
    )
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
                    self._authenticate(rest[1], rest[2])
                    rest = rest[3:]
                else:
                    raise RespError(f"ERR Syntax error in HELLO option '{rest[0].decode('latin-1')}'")
        if not self.authenticated and self.server.acl.default_requires_auth:
            raise RespError(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
                "AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
                "version at the same time"
            )
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

    def _authenticate(self, user: bytes, password: bytes) -> None:
        """Log in as an ACL user; the password is hashed and compared in constant time, never logged or kept."""
        found = self.server.acl.get(user)
        # A user with nopass logs in with any password (the default user without requirepass).
        if found is None or not found.check_password(password):
            self.server.auth_failures += 1
            context = "multi" if self._multi is not None or self.in_exec else "toplevel"
            self.acl_log("auth", context, self.argv[0] if self.argv else b"AUTH", user)
            raise RespError("WRONGPASS invalid username-password pair or user is disabled.")
        self.user = found
        self.authenticated = True

    # Off the fast path: a login changes which checks the commands after it in the same read need.
    @redis_command(
        "AUTH", arity=-2, flags="noscript loading stale fast no_auth allow_busy", group="connection", fastpath=False
    )
    def cmd_auth(self, first: bytes, *rest: bytes) -> bytes:
        """AUTH [user] password: log in as an ACL user (the default user with one argument)."""
        if len(rest) > 1:
            raise RespError("ERR syntax error")
        if not rest:
            if self.server.acl.default.nopass:
                raise RespError(
                    "ERR AUTH <password> called without any password configured for the default user. "
                    "Are you sure your configuration is correct?"
                )
            self._authenticate(b"default", first)
        else:
            self._authenticate(first, rest[0])
        return OK

    def _set_name(self, name: bytes) -> None:
        if any(c < 33 or c > 126 for c in name):
            raise RespError("ERR Client names cannot contain spaces, newlines or special characters.")
        self.client_name = name or None

    # Off the fast path: CLIENT REPLY and CLIENT PAUSE change how the next commands are run.
    @redis_command("CLIENT", arity=-2, group="connection", fastpath=False)
    def cmd_client(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the CLIENT subcommands."""
        return self.run_subcommand("CLIENT", sub, args)  # type: ignore[no-any-return]

    @redis_command("CLIENT|ID", arity=2, flags="noscript loading stale", group="connection")
    def cmd_client_id(self) -> bytes:
        """This connection's id."""
        return integer(self.id)

    @redis_command("CLIENT|GETREDIR", arity=2, flags="noscript loading stale", group="connection")
    def cmd_client_getredir(self) -> bytes:
        """Where tracking notifications go: -1, as client-side caching is not offered."""
        return b":-1\r\n"

    @redis_command("CLIENT|GETNAME", arity=2, flags="noscript loading stale", group="connection")
    def cmd_client_getname(self) -> bytes:
        """This connection's name."""
        return bulk(self.client_name, self.null)

    @redis_command("CLIENT|SETNAME", arity=3, flags="noscript loading stale", group="connection")
    def cmd_client_setname(self, name: bytes) -> bytes:
        """Name this connection (CLIENT LIST shows it)."""
        self._set_name(name)
        return OK

    @redis_command("CLIENT|SETINFO", arity=4, flags="noscript loading stale", group="connection")
    def cmd_client_setinfo(self, attr: bytes, value: bytes) -> bytes:
        """Record the client library's name or version (sent by redis-py)."""
        if attr.upper() not in (b"LIB-NAME", b"LIB-VER"):
            raise RespError(f"ERR Unrecognized option '{attr.decode('latin-1')}'")
        return OK

    @redis_command(
        "CLIENT|INFO", arity=2, flags="noscript loading stale", group="connection", tips="nondeterministic_output"
    )
    def cmd_client_info(self) -> bytes:
        """This connection, described as a line of CLIENT LIST."""
        return self.dialect.verbatim(self.client_info() + b"\n")

    @redis_command(
        "CLIENT|LIST",
        arity=-2,
        flags="admin noscript loading stale",
        group="connection",
        tips="nondeterministic_output",
    )
    def cmd_client_list(self, *args: bytes) -> bytes:
        """Every connection, one line each (TYPE normal|pubsub|master|replica, or ID id...)."""
        clients = self.server.clients()
        if args:
            option = args[0].upper()
            if option == b"TYPE" and len(args) == 2:
                kind = self._client_type(args[1])
                clients = [c for c in clients if c.client_type() == kind]
            elif option == b"ID" and len(args) >= 2:
                ids = set()
                for raw in args[1:]:
                    number = parse_int(raw)
                    if number is None:
                        raise RespError("ERR Invalid client ID")
                    ids.add(number)
                clients = [c for c in clients if c.id in ids]
            else:
                raise RespError("ERR syntax error")
        return self.dialect.verbatim(b"".join(c.client_info() + b"\n" for c in clients))

    @staticmethod
    def _client_type(raw: bytes) -> str:
        kind = raw.lower().decode("latin-1")
        if kind == "slave":
            kind = "replica"
        if kind not in ("normal", "pubsub", "master", "replica"):
            raise RespError(f"ERR Unknown client type '{raw.decode('latin-1')}'")
        return kind

    def client_type(self) -> str:
        """Redis's client type: pubsub while subscribed, else normal (no replicas here)."""
        return "pubsub" if self.channels or self.patterns or self.shard_channels else "normal"

    @redis_command("CLIENT|KILL", arity=-3, flags="admin noscript loading stale", group="connection")
    def cmd_client_kill(self, first: bytes, *rest: bytes) -> bytes:
        """Close connections: CLIENT KILL addr, or filters ID, TYPE, USER, ADDR, LADDR, SKIPME (a count)."""
        clients = self.server.clients()
        if not rest:  # the old form: one address, OK or an error
            for client in clients:
                if client.addr() == first.decode("latin-1"):
                    self._kill(client)
                    return OK
            raise RespError("ERR No such client")
        args = (first, *rest)
        if len(args) % 2:
            raise RespError("ERR syntax error")
        skipme = True
        want: dict[str, Any] = {}  # id, type, addr, laddr: what a client must match
        for i in range(0, len(args), 2):
            option, value = args[i].upper(), args[i + 1]
            text = value.decode("latin-1")
            if option == b"ID":
                number = parse_int(value)
                if number is None or number <= 0:
                    raise RespError("ERR client-id should be greater than 0")
                want["id"] = number
            elif option == b"TYPE":
                kind = self._client_type(value)
                want["type"] = kind
            elif option == b"USER":
                if self.server.acl.get(value) is None:
                    raise RespError(f"ERR No such user '{text}'")
                want["user"] = value
            elif option == b"ADDR":
                want["addr"] = text
            elif option == b"LADDR":
                want["laddr"] = text
            elif option == b"SKIPME":
                if value.lower() not in (b"yes", b"no"):
                    raise RespError("ERR syntax error")
                skipme = value.lower() == b"yes"
            else:
                raise RespError("ERR syntax error")
        killed = 0
        for client in clients:
            if skipme and client is self:
                continue
            if (
                want.get("id", client.id) == client.id
                and want.get("type", client.client_type()) == client.client_type()
                and want.get("addr", client.addr()) == client.addr()
                and want.get("laddr", client.local_address()) == client.local_address()
                and want.get("user", client.user.name) == client.user.name
            ):
                self._kill(client)
                killed += 1
        return integer(killed)

    def _kill(self, client: ClientContext) -> None:
        # Our own connection closes after this reply; another one at once.
        if client is self:
            self.close()
        else:
            client.abort()

    @redis_command("CLIENT|PAUSE", arity=-3, flags="admin noscript loading stale", group="connection")
    def cmd_client_pause(self, timeout: bytes, *mode: bytes) -> bytes:
        """Hold every client's commands (ALL, the default) or only those that may write (WRITE) for some ms."""
        ms = parse_int(timeout)
        if ms is None:
            raise RespError("ERR timeout is not an integer or out of range")
        if ms < 0:
            raise RespError("ERR timeout is negative")
        if len(mode) > 1:
            raise RespError("ERR syntax error")
        if mode and mode[0].upper() not in (b"ALL", b"WRITE"):
            raise RespError("ERR CLIENT PAUSE mode must be WRITE or ALL")
        self.server.pause_clients(ms / 1000, not mode or mode[0].upper() == b"ALL")
        return OK

    @redis_command("CLIENT|UNPAUSE", arity=2, flags="admin noscript loading stale", group="connection")
    def cmd_client_unpause(self) -> bytes:
        """End CLIENT PAUSE now."""
        self.server.unpause_clients()
        return OK

    @redis_command("CLIENT|NO-EVICT", arity=3, flags="admin noscript loading stale", group="connection")
    def cmd_client_no_evict(self, flag: bytes) -> bytes:
        """Exempt this client from eviction (recorded and shown; nothing is evicted here)."""
        value = flag.upper()
        if value not in (b"ON", b"OFF"):
            raise RespError("ERR syntax error")
        self.no_evict = value == b"ON"
        return OK

    @redis_command("CLIENT|REPLY", arity=3, flags="noscript loading stale", group="connection")
    def cmd_client_reply(self, mode: bytes) -> bytes:
        """ON, OFF (no replies from now on) or SKIP (none for the next command)."""
        value = mode.upper()
        if value not in (b"ON", b"OFF", b"SKIP"):
            raise RespError("ERR syntax error")
        self.reply_mode = b"" if value == b"ON" else value
        return OK

    @redis_command("CLIENT|UNBLOCK", arity=-3, flags="admin noscript loading stale", group="connection")
    def cmd_client_unblock(self, client_id: bytes, *reason: bytes) -> bytes:
        """Answer a client blocked in BLPOP, XREAD... as on a timeout (TIMEOUT, the default) or with an error."""
        if len(reason) > 1:
            sub = self.argv[1].decode("latin-1")
            raise RespError(f"ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP.")
        as_error = False
        if reason:
            word = reason[0].upper()
            if word not in (b"TIMEOUT", b"ERROR"):
                raise RespError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
            as_error = word == b"ERROR"
        target = parse_int(client_id)
        if target is None:
            raise RespError("ERR value is not an integer or out of range")
        return integer(1 if self.server.blocking.unblock(target, as_error) else 0)

    def addr(self) -> str:
        """The peer's address as CLIENT LIST shows it."""
        return f"{self.peer[0]}:{self.peer[1]}" if self.peer else ""

    def local_address(self) -> str:
        """Our end of the connection (CLIENT LIST's laddr), asked of the socket when needed."""
        try:
            name = self.channel.socket.getsockname()
            return f"{name[0]}:{name[1]}"
        except (AttributeError, OSError, IndexError, TypeError):
            return ""

    def client_info(self) -> bytes:
        """One line describing this client, with every field of Redis 7.0's CLIENT LIST."""
        flags = "O" if self.monitoring else ""
        if self.channels or self.patterns or self.shard_channels:
            flags += "P"
        if self._multi is not None:
            flags += "x"
        if getattr(self, "_blocked", None) is not None:
            flags += "b"
        if self.dirty_cas:
            flags += "d"
        if self.closing:
            flags += "c"
        if self.no_evict:
            flags += "e"
        argv = self.argv
        if argv:
            name = argv[0].lower().decode("latin-1")
            spec = self.table.get(name.upper())
            if spec is not None and spec.subcommands and len(argv) > 1:
                name += "|" + argv[1].lower().decode("latin-1")
        else:
            name = "NULL"
        channel = self.channel
        queued = int(getattr(self, "out_buffered", 0) or 0)
        now = self.server.reactor.time()
        idle = max(0, int(now - (getattr(channel, "_last_input", 0.0) or now)))
        fd = getattr(channel, "_fileno", None)
        return (
            f"id={self.id} addr={self.addr()} laddr={self.local_address()} fd={-1 if fd is None else fd} "
            f"name={(self.client_name or b'').decode('latin-1')} age={int(time.time() - self.created)} "
            f"idle={idle} flags={flags or 'N'} db={self.dbindex} sub={len(self.channels)} "
            f"psub={len(self.patterns)} ssub={len(self.shard_channels)} "
            f"multi={-1 if self._multi is None else len(self._multi)} "
            f"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={queued} "
            f"tot-mem={queued} events={'rw' if queued else 'r'} cmd={name} "
            f"user={self.user.name.decode('latin-1')} redir=-1 "
            f"resp={self.dialect.version}"
        ).encode("latin-1")
