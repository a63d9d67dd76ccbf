"""The ACL command: SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, GENPASS, DRYRUN, LOG, SAVE, LOAD.

The users themselves, their rules and the checks are in ``acl.py``; this
module is the commands a client sends about them, and what a change does to
the clients already logged in (a deleted user's connections are closed, a
subscriber that lost a channel is dropped).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from linechat.services.redis.acl import CATEGORIES, AclError, Selector, User
from linechat.services.redis.base import ClientContext
from linechat.services.redis.resp import OK, RESP3, RespError, array, bulk, integer, parse_int
from linechat.services.redis.table import redis_command

if TYPE_CHECKING:
    from linechat.services.redis.acl import Denial, Users
    from linechat.services.redis.table import CommandDef

__all__ = ["AclCommands"]

_HELP = [
    b"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CAT [<category>]",
    b"    List the ACL categories, or the commands in one category.",
    b"DELUSER <username> [<username> ...]",
    b"    Delete users; their connections are closed.",
    b"DRYRUN <username> <command> [<arg> ...]",
    b"    Tell whether the user may run the command, without running it.",
    b"GETUSER <username>",
    b"    The rules of a user.",
    b"GENPASS [<bits>]",
    b"    A random password of <bits> bits (256 by default), in hex.",
    b"LIST",
    b"    Every user and its rules, in the form ACL SETUSER takes.",
    b"LOAD",
    b"    Replace the users with those of the ACL file.",
    b"LOG [<count> | RESET]",
    b"    The latest denied commands and failed logins, or clear them.",
    b"SAVE",
    b"    Write the users to the ACL file.",
    b"SETUSER <username> <rule> [<rule> ...]",
    b"    Create a user or change its rules.",
    b"USERS",
    b"    The names of the users.",
    b"WHOAMI",
    b"    The user of this connection.",
    b"HELP",
    b"    Print this help.",
]

_NO_FILE = (
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the "
    "ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) "
    "in order to store users in the Redis configuration."
)


class AclCommands(ClientContext):
    """ACL and its subcommands."""

    user: User

    @property
    def _users(self) -> Users:
        return self.server.acl

    @redis_command("ACL", arity=-2, group="server", fastpath=False)
    def cmd_acl(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the ACL subcommands."""
        return self.run_subcommand("ACL", sub, args)  # type: ignore[no-any-return]

    @redis_command("ACL|SETUSER", arity=-3, flags="admin noscript loading stale", group="server")
    def cmd_acl_setuser(self, name: bytes, *rules: bytes) -> bytes:
        """Create a user or apply rules to it: all of them or, on the first error, none."""
        if any(c in b" \0" for c in name):
            raise RespError("ERR Usernames can't contain spaces or null characters")
        try:
            staged, existing = self._users.set_user(name, list(rules))
        except AclError as exc:
            raise RespError(f"ERR {exc}") from None
        if existing is not None:
            self._drop_lost_subscribers(existing, staged)
        self._users.commit(staged, existing)
        return OK

    def _drop_lost_subscribers(self, user: User, staged: User) -> None:
        """Close the user's subscribers whose channels or patterns the new rules no longer allow."""
        if any(s.all_channels for s in staged.selectors):
            return
        allowed = [c for s in staged.selectors for c in s.channels]
        probe = Selector(channels=allowed)
        for client in self.server.clients():
            if client.user is not user or not (client.channels or client.patterns):
                continue
            if any(not probe.channel_allowed(p, True) for p in client.patterns) or any(
                not probe.channel_allowed(c, False) for c in client.channels
            ):
                self._disconnect(client)

    def _disconnect(self, client: ClientContext) -> None:
        if client is self:
            self.close()  # after this reply
        else:
            client.abort()

    @redis_command("ACL|GETUSER", arity=3, flags="admin noscript loading stale", group="server")
    def cmd_acl_getuser(self, name: bytes) -> bytes:
        """A user's flags, password hashes, commands, keys, channels and selectors."""
        user = self._users.get(name)
        if user is None:
            return self.null
        commands = self._users.commands
        d = self.dialect
        root = user.root
        flags = user.flags()
        out = [
            d.map_header(6),
            bulk(b"flags"),
            d.set_head % len(flags) + b"".join(bulk(f) for f in flags),
            bulk(b"passwords"),
            array(user.passwords),
            bulk(b"commands"),
            bulk(root.describe_commands(commands)),
            bulk(b"keys"),
            bulk(root.describe_keys()),
            bulk(b"channels"),
            bulk(root.describe_channels()),
            bulk(b"selectors"),
            b"*%d\r\n" % (len(user.selectors) - 1),
        ]
        for selector in user.selectors[1:]:
            out += [
                d.map_header(3),
                bulk(b"commands"),
                bulk(selector.describe_commands(commands)),
                bulk(b"keys"),
                bulk(selector.describe_keys()),
                bulk(b"channels"),
                bulk(selector.describe_channels()),
            ]
        return b"".join(out)

    @redis_command("ACL|DELUSER", arity=-3, flags="admin noscript loading stale", group="server")
    def cmd_acl_deluser(self, name: bytes, *names: bytes) -> bytes:
        """Delete users (not default); their connections are closed, as Redis does."""
        users = self._users
        deleted = 0
        for each in (name, *names):
            if each == b"default":
                raise RespError("ERR The 'default' user cannot be removed")
        for each in (name, *names):
            user = users.users.pop(each, None)
            if user is None:
                continue
            deleted += 1
            self._log_out_everywhere(user)
        return integer(deleted)

    def _log_out_everywhere(self, user: User) -> None:
        """The user is gone: its clients become the default user's, unauthenticated, and are closed."""
        default = self._users.default
        for client in self.server.clients():
            if client.user is user:
                client.user = default
                client.authenticated = False
                self._disconnect(client)

    @redis_command("ACL|LIST", arity=2, flags="admin noscript loading stale", group="server")
    def cmd_acl_list(self) -> bytes:
        """Every user as the rules that would make it."""
        users = self._users
        return array([users.users[n].describe(users.commands) for n in users.names()])

    @redis_command("ACL|USERS", arity=2, flags="admin noscript loading stale", group="server")
    def cmd_acl_users(self) -> bytes:
        """The user names."""
        return array(self._users.names())

    @redis_command("ACL|WHOAMI", arity=2, flags="noscript loading stale", group="server")
    def cmd_acl_whoami(self) -> bytes:
        """The name of this connection's user."""
        return bulk(self.user.name)

    @redis_command("ACL|CAT", arity=-2, flags="noscript loading stale", group="server")
    def cmd_acl_cat(self, *category: bytes) -> bytes:
        """The categories, or the commands (and subcommands) in one."""
        if len(category) > 1:
            raise RespError("ERR unknown subcommand or wrong number of arguments for 'CAT'. Try ACL HELP.")
        if not category:
            return array([c.encode() for c in CATEGORIES])
        name = category[0].lower().decode("latin-1")
        members = self._users.commands.in_category.get(name)
        if members is None:
            raise RespError(f"ERR Unknown category '{category[0].decode('latin-1')}'")
        return array([m.encode() for m in members])

    @redis_command("ACL|GENPASS", arity=-2, flags="noscript loading stale", group="server")
    def cmd_acl_genpass(self, *bits: bytes) -> bytes:
        """A random password: hex digits carrying the bits asked for (256 by default)."""
        if len(bits) > 1:
            raise RespError("ERR unknown subcommand or wrong number of arguments for 'GENPASS'. Try ACL HELP.")
        count = 256
        if bits:
            number = parse_int(bits[0])
            if number is None:
                raise RespError("ERR value is not an integer or out of range")
            count = number
        if count <= 0 or count > 4096:
            raise RespError(
                "ERR ACL GENPASS argument must be the number of bits for the output password, "
                "a positive number up to 4096"
            )
        chars = (count + 3) // 4
        return bulk(os.urandom((chars + 1) // 2).hex()[:chars].encode())

    @redis_command("ACL|DRYRUN", arity=-4, flags="admin noscript loading stale", group="server")
    def cmd_acl_dryrun(self, name: bytes, command: bytes, *args: bytes) -> bytes:
        """Whether the user may run the command line (OK, or why not), without running it."""
        user = self._users.get(name)
        if user is None:
            raise RespError(f"ERR User '{name.decode('latin-1')}' not found")
        argv = [command, *args]
        spec = self.table.get(command.upper().decode("latin-1"))
        if spec is not None and spec.subcommands:
            if not args:
                raise RespError(f"ERR wrong number of arguments for '{spec.name.lower()}' command")
            spec = spec.subcommands.get(args[0].upper().decode("latin-1"))
        if spec is None:
            raise RespError(f"ERR Command '{command.decode('latin-1')}' not found")
        if not spec.accepts(len(argv) - (2 if "|" in spec.name else 1)):
            raise RespError(f"ERR wrong number of arguments for '{spec.name.lower()}' command")
        denial = user.check(self._users.commands, spec, argv)
        if denial is None:
            return OK
        if denial.reason == "command":
            text = f"This user has no permissions to run the '{denial.command}' command"
        else:
            what = argv[denial.index].decode("latin-1")
            text = f"This user has no permissions to access the '{what}' {denial.reason}"
        return bulk(text.encode("latin-1"))

    @redis_command("ACL|LOG", arity=-2, flags="admin noscript loading stale", group="server")
    def cmd_acl_log(self, *args: bytes) -> bytes:
        """The latest denials and failed logins (newest first), at most count; or RESET."""
        log = self._users.log
        count = 10
        if len(args) > 1:
            raise RespError("ERR unknown subcommand or wrong number of arguments for 'LOG'. Try ACL HELP.")
        if args:
            if args[0].upper() == b"RESET":
                log.reset()
                return OK
            number = parse_int(args[0])
            if number is None:
                raise RespError("ERR value is not an integer or out of range")
            count = number
        entries = log.entries[: max(count, 0)]
        now = self.server.now_ms()
        d = self.dialect
        out = [b"*%d\r\n" % len(entries)]
        for entry in entries:
            age = b"%.17g" % ((now - entry.created_ms) / 1000.0)
            out += [
                d.map_header(7),
                bulk(b"count"),
                integer(entry.count),
                bulk(b"reason"),
                bulk(entry.reason.encode()),
                bulk(b"context"),
                bulk(entry.context.encode()),
                bulk(b"object"),
                bulk(entry.object),
                bulk(b"username"),
                bulk(entry.username),
                bulk(b"age-seconds"),
                b",%s\r\n" % age if d is RESP3 else bulk(age),
                bulk(b"client-info"),
                bulk(entry.client_info),
            ]
        return b"".join(out)

    @redis_command("ACL|SAVE", arity=2, flags="admin noscript loading stale", group="server")
    def cmd_acl_save(self) -> bytes:
        """Write every user to the ACL file (aclfile), one ACL LIST line each."""
        path = self.server.settings.aclfile
        if path is None:
            raise RespError(_NO_FILE)
        users = self._users
        text = b"".join(users.users[n].describe(users.commands) + b"\n" for n in users.names())
        temp = path.with_name(path.name + ".tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except OSError as exc:
            raise RespError(f"ERR There was an error trying to save the ACLs. Please check the server logs "
                            f"for more information ({exc.strerror})") from None  # fmt: skip
        return OK

    @redis_command("ACL|LOAD", arity=2, flags="admin noscript loading stale", group="server")
    def cmd_acl_load(self) -> bytes:
        """Replace the users with those of the ACL file; on any error nothing changes."""
        path = self.server.settings.aclfile
        if path is None:
            raise RespError(_NO_FILE)
        try:
            self.server.load_acl_file(path)
        except (AclError, OSError) as exc:
            raise RespError(f"ERR {exc}") from None
        return OK

    @redis_command("ACL|HELP", arity=2, flags="loading stale", group="server")
    def cmd_acl_help(self) -> bytes:
        """What the subcommands do."""
        return b"*%d\r\n" % len(_HELP) + b"".join(b"+%s\r\n" % line for line in _HELP)

    # ------------------------------------------------------------------ used by the dispatch

    def acl_check(self, spec: CommandDef, argv: list[bytes], context: str) -> Denial | None:
        """Check this connection's user against a command line; a denial is logged (ACL LOG) and returned.

        A subcommand is checked as itself; an unknown subcommand or a wrong
        number of arguments is left to the handler, whose error comes first in Redis.
        """
        target = spec
        if spec.subcommands:
            sub = spec.subcommands.get(argv[1].upper().decode("latin-1")) if len(argv) > 1 else None
            if sub is None or not sub.accepts(len(argv) - 2):
                return None
            target = sub
        denial = self.user.check(self.server.acl.commands, target, argv)
        if denial is not None:
            self.acl_log(denial.reason, context, denial.object(argv), self.user.name)
        return denial

    def acl_log(self, reason: str, context: str, obj: bytes, username: bytes) -> None:
        """Record a denial or a failed login in the ACL log."""
        self.server.acl.log.add(reason, context, obj, username, self.server.now_ms(), self.client_info())
