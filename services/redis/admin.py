"""Server commands that tools and test suites probe: ROLE, LASTSAVE, LOLWUT, DEBUG (Redis's server.c, debug.c).

``DEBUG`` is refused unless the ``enable_debug_command`` setting allows it
(``yes``, or ``local`` for clients on loopback), as redis-server's
``enable-debug-command``; it offers ``ERROR`` (reply with the error given,
which client libraries' own tests use) and ``SLEEP`` (hold the whole server,
as redis-server does).
"""

from __future__ import annotations

import time

from linechat.crossprotocol import is_loopback_peer
from linechat.services.redis.base import ClientContext
from linechat.services.redis.connection import SERVER_VERSION
from linechat.services.redis.resp import OK, RespError, integer
from linechat.services.redis.table import redis_command

__all__ = ["AdminCommands"]

_DEBUG_REFUSED = (
    'ERR DEBUG command not allowed. If the enable-debug-command option is set to "local", you can run it from a '
    "local connection, otherwise you need to set this option in the configuration file, and then restart the server."
)
# DEBUG SLEEP holds the server (as redis-server does); past this many seconds a mistake is more likely than a test.
_MAX_SLEEP = 60.0


class AdminCommands(ClientContext):
    """ROLE, LASTSAVE, LOLWUT and DEBUG."""

    @redis_command("ROLE", arity=1, flags="noscript loading stale fast", group="server", acl="admin dangerous")
    def cmd_role(self) -> bytes:
        """This server's part in replication: always a master with no replicas."""
        return b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"

    @redis_command(
        "LASTSAVE",
        arity=1,
        flags="loading stale fast",
        group="server",
        acl="admin dangerous",
        tips="nondeterministic_output",
    )
    def cmd_lastsave(self) -> bytes:
        """Unix time of the last snapshot: none is written here, so the server's start (as a fresh redis-server)."""
        return integer(int(self.server.started))

    @redis_command("LOLWUT", arity=-1, flags="readonly fast", group="server")
    def cmd_lolwut(self, *args: bytes) -> bytes:
        """The version line (redis-server draws art for VERSION 5 and 6; this server does not)."""
        if len(args) >= 2 and args[0].upper() == b"VERSION":
            try:
                int(args[1])
            except ValueError:
                raise RespError("ERR value is not an integer or out of range") from None
        return self.dialect.verbatim(b"Redis ver. " + SERVER_VERSION + b"\n")

    @redis_command("DEBUG", arity=-2, flags="admin noscript loading stale", group="server")
    def cmd_debug(self, sub: bytes, *args: bytes) -> bytes:
        """ERROR text (an error reply of that text) and SLEEP seconds; refused unless enable_debug_command allows."""
        allowed = self.server.settings.enable_debug_command
        if allowed == "no" or (allowed == "local" and not is_loopback_peer(self.peer)):
            raise RespError(_DEBUG_REFUSED)
        word = sub.upper()
        if word == b"ERROR" and len(args) == 1:
            text = args[0].replace(b"\r", b" ").replace(b"\n", b" ")
            return b"-" + text + b"\r\n"
        if word == b"SLEEP" and len(args) == 1:
            try:
                seconds = float(args[0])
            except ValueError:
                seconds = 0.0  # strtod's answer for text that is no number
            if seconds > 0:
                time.sleep(min(seconds, _MAX_SLEEP))
            return OK
        raise RespError(
            f"ERR unknown subcommand or wrong number of arguments for '{sub.decode('latin-1')}'. Try DEBUG HELP."
        )
