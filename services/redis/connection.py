"""Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, CLIENT (Redis's networking.c and server.c)."""

from __future__ import annotations

import time

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
        self._use(RESP2)
        self.dbindex = 0
        self.db = self.server.dbs[0]
        self.client_name = None
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

    @redis_command("AUTH", arity=-2, flags="noscript loading stale fast no_auth allow_busy", group="connection")
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

    @redis_command("CLIENT", arity=-2, group="connection")
    def cmd_client(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the CLIENT subcommands."""
        return self.run_subcommand("CLIENT", sub, args)  # type: ignore[no-any-return]

    @redis_command("CLIENT|ID", arity=2, flags="noscript loading stale", group="connection")
    def cmd_client_id(self) -> bytes:
        """This connection's id."""
        return integer(self.id)

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
        """Every connection, one line each."""
        return self.dialect.verbatim(b"".join(p.client_info() + b"\n" for p in self.server.clients()))

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

    def client_info(self) -> bytes:
        """One line describing this client, in the style of CLIENT LIST."""
        peer = f"{self.peer[0]}:{self.peer[1]}" if self.peer else "?"
        return (
            f"id={self.id} addr={peer} name={(self.client_name or b'').decode('latin-1')} "
            f"age={int(time.time() - self.created)} db={self.dbindex} sub={len(self.channels)} "
            f"psub={len(self.patterns)} cmd={(self.argv[0] if self.argv else b'NULL').lower().decode('latin-1')} "
            f"resp={self.dialect.version}"
        ).encode("latin-1")
