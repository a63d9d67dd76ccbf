"""The command table: every Redis command declared once, beside its handler, with Redis's metadata.

To add a command, decorate its handler with :func:`redis_command` in the
module of its data type (``strings.py``, ``lists.py``, ...)::

    @redis_command("LPUSH", arity=-3, flags="write denyoom fast", keys=(1, 1, 1), group="list")
    def cmd_lpush(self, key: bytes, value: bytes, *values: bytes) -> bytes:
        ...

That one line is all the server needs; everything below reads it:

* ``arity`` is Redis's: it counts the command name, ``N`` means exactly N
  words and ``-N`` at least N.  Dispatch, ``MULTI`` queueing, the pub/sub
  gate, AOF replay and ``redis.call`` all check it.  The handler's signature
  must accept that many arguments (checked when the class is built).
* ``flags`` are Redis's command flags, space separated: ``write``,
  ``readonly``, ``denyoom``, ``admin``, ``pubsub``, ``noscript``,
  ``blocking``, ``loading``, ``stale``, ``fast``, ``allow_busy``,
  ``no_auth``, ``no_multi``, ``may_replicate``, ``no_mandatory_keys``,
  ``skip_monitor``, ``skip_slowlog``...  ``COMMAND`` reports them;
  ``movablekeys`` is added when the keys are not at fixed positions.
  ``write`` marks what the AOF replays and read-only scripts refuse;
  ``noscript`` is refused by ``redis.call``; ``allow_busy`` may run while a
  script is busy; ``blocking`` keeps a command off the pipelined fast path
  (and a handler must not block when ``self.in_script`` is true).
* ``keys`` says where the keys are: ``(first, last, step)`` as in Redis's
  legacy triple (``last`` negative counts from the end), or a list of
  :class:`KeySpec` for the odd ones (a keyword such as ``STREAMS``, a count
  such as ``EVAL``'s numkeys).  ``WATCH`` bookkeeping, ``COMMAND GETKEYS``,
  ``COMMAND INFO`` and the AOF's touched-key tracking use it.
* ``group`` is the documentation group (``string``, ``list``, ``hash``,
  ``set``, ``sorted-set``, ``stream``, ``generic``, ``connection``,
  ``server``, ``pubsub``, ``transactions``, ``scripting``); with the flags it
  gives the ACL categories that ``COMMAND INFO`` shows (``acl`` adds more,
  e.g. ``"dangerous"``).
* ``key_flags`` are the key-spec flags (``RW access update`` and so on);
  the default follows ``write``/``readonly``.  ``tips`` are Redis's command
  tips (``nondeterministic_output``...).

Three settings describe how this server runs the command, not Redis's
metadata (they are not reported):

* ``in_multi="run"`` runs the command at once inside ``MULTI`` instead of
  queueing it (``MULTI``, ``EXEC``, ``DISCARD``, ``WATCH``, ``QUIT``, ``RESET``).
* ``subscribed=True`` lets a subscribed RESP2 connection run it.
* ``fastpath=False`` keeps it off the pipelined fast loop: commands that
  change how the connection reads what follows (pub/sub mode, ``MULTI``,
  the protocol version, closing, blocking).

A container command (``CLIENT``, ``CONFIG``, ``SCRIPT``...) is declared with
its own arity and group; each subcommand is declared with
``redis_command("CLIENT|LIST", ...)`` on a method taking the arguments after
the subcommand name, and the container's handler calls
``self.run_subcommand(...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from linechat import command

__all__ = [
    "CommandDef",
    "KeySpec",
    "build_table",
    "redis_command",
]

F = TypeVar("F", bound=Callable[..., Any])

# The ACL category of each documentation group.
_GROUP_CATEGORY = {
    "string": "string",
    "list": "list",
    "hash": "hash",
    "set": "set",
    "sorted-set": "sortedset",
    "stream": "stream",
    "generic": "keyspace",
    "connection": "connection",
    "pubsub": "pubsub",
    "transactions": "transaction",
    "scripting": "scripting",
    "bitmap": "bitmap",
    "hyperloglog": "hyperloglog",
    "geo": "geo",
    "server": "",
}


@dataclass(frozen=True)
class KeySpec:
    """One Redis 7 key specification: where the search for keys begins and how keys are found from there.

    ``begin`` is an index (``int``) or a keyword with where to start looking
    for it (``("STREAMS", 1)``; a negative start searches backwards from the
    end).  Then either a range (``lastkey`` relative to the first key, or
    negative from the end; ``keystep``; ``limit`` divides the rest of the
    arguments) or, when ``keynum`` is set, a count of keys:
    ``(keynumidx, firstkey, keystep)`` relative to the begin index.
    """

    flags: tuple[str, ...]
    begin: int | tuple[str, int] | None  # None: "unknown" (keys that only the command itself can find)
    lastkey: int = 0
    keystep: int = 1
    limit: int = 0
    keynum: tuple[int, int, int] | None = None
    notes: str = ""

    @property
    def simple(self) -> bool:
        """True for an index and a range (the kind Redis's legacy first/last/step can describe)."""
        return isinstance(self.begin, int) and self.keynum is None

    def positions(self, argv: list[bytes]) -> list[int]:
        """Positions of the keys in *argv* (the command name at 0), as Redis's getKeysUsingKeySpecs."""
        if self.begin is None:
            return []
        argc = len(argv)
        if isinstance(self.begin, int):
            first = self.begin
        else:
            word, start = self.begin
            first = 0
            start_index = start if start > 0 else argc + start
            end_index = argc - 1 if start > 0 else 1
            i = start_index
            while 1 <= i < argc:
                if argv[i].upper() == word.encode():
                    first = i + 1
                    break
                if i == end_index:
                    break
                i = i + 1 if start_index <= end_index else i - 1
            if not first:
                return []
        if self.keynum is None:
            step = self.keystep
            if self.lastkey >= 0:
                last = first + self.lastkey
            elif not self.limit:
                last = argc + self.lastkey
            else:
                last = first + ((argc - first) // self.limit + self.lastkey)
        else:
            keynumidx, firstkey, step = self.keynum
            if first + keynumidx >= argc:
                return []
            try:
                count = int(argv[first + keynumidx])
            except ValueError:
                return []
            if count < 0:
                return []
            first += firstkey
            last = first + count - 1
        return [i for i in range(first, last + 1, step) if i < argc]


@dataclass
class CommandDef:
    """One command (or subcommand, named ``parent|sub``) with all Redis knows about it."""

    name: str  # upper case; "CLIENT|LIST" for a subcommand
    arity: int
    flags: tuple[str, ...]
    key_specs: tuple[KeySpec, ...]
    first_key: int
    last_key: int
    key_step: int
    group: str
    acl: tuple[str, ...]
    acl_declared: tuple[str, ...]
    tips: tuple[str, ...]
    summary: str
    in_multi: str  # "queue" or "run"
    subscribed: bool
    fastpath: bool
    func: Callable[..., Any] | None = None
    #: Most arguments the handler takes (None: any); a negative arity may be
    #: bounded by the handler, whose extra arguments get the arity error.
    handler_max: int | None = None
    subcommands: dict[str, CommandDef] = field(default_factory=dict)

    @property
    def write(self) -> bool:
        """The command may change data."""
        return "write" in self.flags

    @property
    def min_args(self) -> int:
        """Least number of arguments after the name (after the subcommand for subcommands)."""
        return abs(self.arity) - (2 if "|" in self.name else 1)

    @property
    def max_args(self) -> int | None:
        """Most arguments after the name (None: any number)."""
        return None if self.arity < 0 else self.min_args

    def accepts(self, nargs: int) -> bool:
        """True if the command takes *nargs* arguments (words after its name, or after the subcommand)."""
        low = self.min_args
        return nargs >= low if self.arity < 0 else nargs == low

    def key_positions(self, argv: list[bytes]) -> list[int]:
        """Positions of the keys in a whole command line (name at 0), in key-spec order."""
        specs = self.key_specs
        if len(specs) == 1:
            return specs[0].positions(argv)
        out: list[int] = []
        for spec in specs:
            out += spec.positions(argv)
        return out

    def keys(self, argv: list[bytes]) -> list[bytes]:
        """The keys a command line names."""
        return [argv[i] for i in self.key_positions(argv)]


def _key_specs(keys: tuple[int, int, int] | Iterable[KeySpec] | None, flags: tuple[str, ...]) -> tuple[KeySpec, ...]:
    if keys is None:
        return ()
    if isinstance(keys, tuple) and len(keys) == 3 and all(isinstance(k, int) for k in keys):
        first, last, step = (int(k) for k in keys)  # type: ignore[arg-type]
        key_flags = ("RW", "access", "update") if "write" in flags else ("RO", "access")
        return (KeySpec(key_flags, first, last - first if last >= 0 else last, step),)
    return tuple(k for k in keys if isinstance(k, KeySpec))


def _legacy_range(specs: tuple[KeySpec, ...], given: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """Redis's first/last/step triple, from the key specs that are index + range."""
    if given is not None:
        return given
    simple = [s for s in specs if s.simple]
    if not simple:
        return 0, 0, 0
    if len(simple) == 1:
        s = simple[0]
        first = s.begin
        assert isinstance(first, int)
        last = first + s.lastkey if s.lastkey >= 0 else s.lastkey
        return first, last, s.keystep
    # Several adjacent single-key specs (RENAME, LMOVE, ...) join into one range.
    first = min(s.begin for s in simple)  # type: ignore[type-var]
    last = max(s.begin + s.lastkey for s in simple)  # type: ignore[operator]
    return first, last, 1  # type: ignore[return-value]


# Redis's ACL categories in its own order: a command's list and ACL CAT follow it.
ACL_CATEGORIES = (
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
)


def _acl_categories(group: str, flags: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """The ACL categories Redis shows: the group's own, the declared ones, and those the flags imply."""
    cats = {_GROUP_CATEGORY.get(group, ""), *(c for c in extra if not c.startswith("-"))}
    # "-keyspace" drops a category the group would give (SORT is generic but not @keyspace).
    cats -= {c[1:] for c in extra if c.startswith("-")}
    if "write" in flags:
        cats.add("write")
    if "readonly" in flags and group != "scripting":
        cats.add("read")
    if "admin" in flags:
        cats |= {"admin", "dangerous"}
    if "pubsub" in flags:
        cats.add("pubsub")
    if "blocking" in flags:
        cats.add("blocking")
    cats.add("fast" if "fast" in flags else "slow")
    return tuple(c for c in ACL_CATEGORIES if c in cats)


def redis_command(
    name: str,
    *,
    arity: int,
    flags: str = "",
    keys: tuple[int, int, int] | Iterable[KeySpec] | None = None,
    legacy_keys: tuple[int, int, int] | None = None,
    group: str = "generic",
    acl: str = "",
    key_flags: str = "",
    tips: str = "",
    summary: str | None = None,
    aliases: tuple[str, ...] = (),
    in_multi: str = "queue",
    subscribed: bool = False,
    fastpath: bool = True,
) -> Callable[[F], F]:
    """Declare the decorated method as the handler of a Redis command, with its table entry (see module doc)."""
    if in_multi not in ("queue", "run"):
        raise ValueError(f"in_multi must be 'queue' or 'run', not {in_multi!r}")
    flag_list = tuple(flags.split())
    specs = _key_specs(keys, flag_list)
    if key_flags and specs:
        specs = tuple(
            KeySpec(tuple(key_flags.split()), s.begin, s.lastkey, s.keystep, s.limit, s.keynum, s.notes) for s in specs
        )
    if specs and any(not s.simple for s in specs) and "movablekeys" not in flag_list:
        flag_list += ("movablekeys",)
    first, last, step = _legacy_range(specs, legacy_keys)
    if "movablekeys" in flag_list and legacy_keys is None:
        first = last = step = 0

    def decorate(func: F) -> F:
        doc = summary if summary is not None else (inspect.getdoc(func) or "").split("\n")[0]
        defs = []
        for each in (name, *aliases):
            defs.append(
                CommandDef(
                    name=each.upper(),
                    arity=arity,
                    flags=flag_list,
                    key_specs=specs,
                    first_key=first,
                    last_key=last,
                    key_step=step,
                    group=group,
                    acl=_acl_categories(group, flag_list, tuple(acl.split())),
                    acl_declared=tuple(acl.split()),
                    tips=tuple(tips.split()),
                    summary=doc,
                    in_multi=in_multi,
                    subscribed=subscribed,
                    fastpath=fastpath and "blocking" not in flag_list,
                    func=func,
                )
            )
        handler_max = _check_signature(func, defs[0])
        for d in defs:
            d.handler_max = handler_max
        # Decorators stack for aliases whose metadata differ (DEL and UNLINK).
        every = [*getattr(func, "__redis_commands__", []), *defs]
        func.__redis_commands__ = every  # type: ignore[attr-defined]
        top = [d for d in every if "|" not in d.name]
        if top:
            if len({d.arity for d in top}) > 1:
                raise TypeError(f"{func.__qualname__}: one handler, several arities")
            command(*(d.name for d in top), min_args=top[0].min_args, max_args=handler_max, help=doc)(func)
        return func

    return decorate


def _check_signature(func: Callable[..., Any], spec: CommandDef) -> int | None:
    """Refuse a handler that cannot take the arguments its arity allows; return the most it takes."""
    params = list(inspect.signature(func).parameters.values())[1:]
    positional = [
        p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = sum(1 for p in positional if p.default is inspect.Parameter.empty)
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    most = None if variadic else len(positional)
    low, high = spec.min_args, spec.max_args
    if required > low or (most is not None and most < (low if high is None else high)):
        raise TypeError(f"{func.__qualname__} cannot take the arguments of {spec.name} (arity {spec.arity})")
    return most if high is None else high


def build_table(cls: type) -> dict[str, CommandDef]:
    """Collect the declarations of a class and its bases into the command table (subcommands under their parent)."""
    table: dict[str, CommandDef] = {}
    subs: list[CommandDef] = []
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            for spec in getattr(value, "__redis_commands__", ()):
                if "|" in spec.name:
                    subs.append(spec)
                else:
                    table[spec.name] = spec
    for spec in subs:
        parent_name, sub = spec.name.split("|", 1)
        parent = table.get(parent_name)
        if parent is None:
            raise TypeError(f"subcommand {spec.name} declared without its command {parent_name}")
        if not parent.subcommands:
            # A container has only the categories its flags imply (and any declared), not its group's.
            parent.acl = _acl_categories("", parent.flags, parent.acl_declared)
        parent.subcommands[sub] = spec
    return table
