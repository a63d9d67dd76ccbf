"""Server introspection: TIME, INFO, CONFIG, COMMAND (Redis's server.c and config.c), all read from the table."""

from __future__ import annotations

from linechat.services.redis.base import ClientContext
from linechat.services.redis.resp import Dialect, RespError, array, bulk, glob_match, integer
from linechat.services.redis.table import CommandDef, KeySpec, redis_command

__all__ = ["ServerCommands", "command_info"]


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
            if any(glob_match(p.lower(), name) for p in (pattern, *patterns)):
                found[name] = value
        return self.dialect.map_reply([item for pair in found.items() for item in pair])

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
                names = [n for n in names if glob_match(value.lower(), n.lower().encode())]
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
        spec = self._lookup(name)
        argv = [name, *args]
        if spec is not None and spec.subcommands and args:
            spec = spec.subcommands.get(args[0].upper().decode("latin-1"))
        if spec is None:
            raise RespError("ERR Invalid command specified")
        words = len(argv)
        if (spec.arity > 0 and words != spec.arity) or words < -spec.arity:
            raise RespError("ERR Invalid number of arguments specified for command")
        keys = spec.keys(argv)
        if not keys:
            raise RespError("ERR The command has no key arguments")
        return array(keys)
