"""ACL users, as Redis 7.0 has them: passwords, command, key and channel permissions, selectors, the ACL log.

A :class:`User` has flags (``on``/``off``, ``nopass``), SHA-256 password
hashes and one or more :class:`Selector` s: the first (the root selector)
is the user's own rules, the others come from ``(...)`` in ``ACL SETUSER``.
A command is allowed when any selector allows it: its command bit (or a
first argument allowed for it), every key it names (with the access its key
specs ask for: read for ``access``, write for ``insert``/``delete``/``update``)
and every channel it publishes or subscribes to.

Commands and categories come from the command table (``table.py``): the
categories there are the ones ``COMMAND INFO`` shows.  Rules may also name
the commands of redis-server 7.0 that this server does not offer
(``acl_names.py``), as they would there.

Passwords are kept only as their SHA-256 hashes and never logged: the
ACL log records the user name and what was denied, not the arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from linechat.services.redis.acl_names import REDIS_70_COMMANDS
from linechat.services.redis.resp import glob_match
from linechat.services.redis.table import ACL_CATEGORIES, CommandDef

__all__ = [
    "CATEGORIES",
    "READ",
    "WRITE",
    "AclError",
    "AclLog",
    "Denial",
    "Selector",
    "User",
    "Users",
]

#: Redis's ACL categories, in the order ACL CAT lists them.
CATEGORIES = ACL_CATEGORIES

READ = 1
WRITE = 2
_ALL = READ | WRITE

_HASH = re.compile(rb"[0-9a-f]{64}")

# Error texts of ACL SETUSER (after "Error in ACL SETUSER modifier '...': ").
SYNTAX = "Syntax error"
UNKNOWN = "Unknown command or category name in ACL"
KEYS_AFTER_ALL = (
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. "
    "Try 'resetkeys' to start with an empty list of patterns"
)
CHANNELS_AFTER_ALL = (
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. "
    "Try 'resetchannels' to start with an empty list of channels"
)
NO_SUCH_PASSWORD = "The password you are trying to remove from the user does not exist"
BAD_HASH = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
FIRSTARG_OF_SUB = "Allowing first-arg of a subcommand is not supported"

# Commands that name channels: (first channel, last (negative from the end), is a pattern, publishes or subscribes).
_CHANNELS = {
    "publish": (1, 1, False),
    "spublish": (1, 1, False),
    "subscribe": (1, -1, False),
    "ssubscribe": (1, -1, False),
    "psubscribe": (1, -1, True),
}


class AclError(Exception):
    """A rule of ACL SETUSER that cannot be applied (the message is Redis's)."""


def password_hash(password: bytes) -> bytes:
    """The hex SHA-256 of a password, as Redis stores it."""
    return hashlib.sha256(password).hexdigest().encode()


def _key_access(spec_flags: tuple[str, ...]) -> int:
    """The permissions a key spec asks for: read for access, write for insert, delete, update."""
    need = 0
    if "access" in spec_flags:
        need |= READ
    if "insert" in spec_flags or "delete" in spec_flags or "update" in spec_flags:
        need |= WRITE
    return need


@dataclass
class Denial:
    """Why a command was refused: reason (command, key, channel), the object named, the argument index."""

    reason: str
    command: str  # the full name (config|get)
    index: int = 0  # the position of the key or channel in the command line

    def object(self, argv: list[bytes]) -> bytes:
        """What the ACL log records: the command's name, or the key or channel refused."""
        if self.reason == "command":
            return self.command.encode()
        return argv[self.index]


class Commands:
    """The command universe the rules speak of: our table's commands and subcommands, and redis-server 7.0's.

    Names are lower case, subcommands ``container|sub``.  Commands of
    redis-server we do not offer may be named in rules and count in the
    categories, as they would on redis-server (see ``acl_names.py``).
    """

    def __init__(self, table: dict[str, CommandDef]) -> None:
        categories: dict[str, tuple[str, ...]] = dict(REDIS_70_COMMANDS)
        for name, spec in table.items():
            low = name.lower()
            categories[low] = spec.acl
            for sub_name, sub in spec.subcommands.items():
                categories[f"{low}|{sub_name.lower()}"] = sub.acl
        #: Full name -> its ACL categories.
        self.categories = categories
        self.subs: dict[str, list[str]] = {}  # container -> its subcommands' full names
        for full in sorted(categories):
            parent, bar, _ = full.partition("|")
            if bar:
                self.subs.setdefault(parent, []).append(full)
            else:
                self.subs.setdefault(full, [])
        self.order = sorted(self.subs)  # top-level names
        self.in_category: dict[str, list[str]] = {cat: [] for cat in CATEGORIES}
        for full in self._walk():
            for cat in categories[full]:
                if cat in self.in_category:
                    self.in_category[cat].append(full)

    def _walk(self) -> Iterator[str]:
        for low in self.order:
            yield low
            yield from self.subs[low]

    def lookup(self, name: str) -> str | None:
        """The full name of a command or ``container|sub`` (any case), or None."""
        low = name.lower()
        return low if low in self.categories else None


@dataclass
class Selector:
    """One set of command, key and channel permissions (the user's root rules, or a ``(...)`` selector)."""

    root: bool = False
    allowed: set[str] = field(default_factory=set)  # full names of the commands allowed
    future: bool = False  # +@all: commands added later are allowed too (Redis's reserved bit)
    all_commands: bool = False  # +@all and nothing removed since (a fast path only)
    firstargs: dict[str, list[bytes]] = field(default_factory=dict)  # command -> first arguments allowed
    all_keys: bool = False
    patterns: list[list[Any]] = field(default_factory=list)  # [pattern, READ|WRITE]
    all_channels: bool = False
    channels: list[bytes] = field(default_factory=list)

    def copy(self) -> Selector:
        """An independent copy (ACL SETUSER applies its rules to a copy first)."""
        return Selector(
            self.root,
            set(self.allowed),
            self.future,
            self.all_commands,
            {k: list(v) for k, v in self.firstargs.items()},
            self.all_keys,
            [list(p) for p in self.patterns],
            self.all_channels,
            list(self.channels),
        )

    # ------------------------------------------------------------------ rules

    def _set_command(self, commands: Commands, full: str, allow: bool) -> None:
        """Allow or deny one command; a container takes its subcommands with it (Redis's ACLChangeSelectorPerm)."""
        self._set_bit(full, allow)
        self.firstargs.pop(full, None)
        for sub in commands.subs.get(full, ()):
            self._set_bit(sub, allow)

    def _set_bit(self, full: str, allow: bool) -> None:
        if allow:
            self.allowed.add(full)
        else:
            self.allowed.discard(full)
            self.all_commands = False

    def _set_category(self, commands: Commands, category: str, allow: bool) -> None:
        for full in commands.in_category[category]:
            if "|" in full:
                self._set_bit(full, allow)
            else:
                self._set_command(commands, full, allow)

    def apply(self, commands: Commands, op: bytes) -> None:
        """Apply one selector rule (keys, channels, commands); raise AclError with Redis's message."""
        low = op.lower()
        if low == b"allkeys" or op == b"~*":
            self.all_keys = True
            self.patterns = []
        elif low == b"resetkeys":
            self.all_keys = False
            self.patterns = []
        elif op[:1] in (b"~", b"%"):
            self._add_key_pattern(op)
        elif low == b"allchannels" or op == b"&*":
            self.all_channels = True
            self.channels = []
        elif low == b"resetchannels":
            self.all_channels = False
            self.channels = []
        elif op[:1] == b"&":
            if self.all_channels:
                raise AclError(CHANNELS_AFTER_ALL)
            if op[1:] not in self.channels:
                self.channels.append(op[1:])
        elif low in (b"allcommands", b"+@all"):
            self.allowed = set(commands.categories)
            self.future = self.all_commands = True
            self.firstargs = {}
        elif low in (b"nocommands", b"-@all"):
            self.allowed = set()
            self.future = self.all_commands = False
            self.firstargs = {}
        elif op[:2] in (b"+@", b"-@"):
            category = low[2:].decode("latin-1")
            if category not in commands.in_category:
                raise AclError(UNKNOWN)
            self._set_category(commands, category, op[:1] == b"+")
        elif op[:1] == b"+":
            self._allow(commands, op[1:].decode("latin-1"))
        elif op[:1] == b"-":
            full = commands.lookup(op[1:].decode("latin-1"))
            if full is None:
                raise AclError(UNKNOWN)
            self._set_command(commands, full, False)
        else:
            raise AclError(SYNTAX)

    def _allow(self, commands: Commands, name: str) -> None:
        if "|" not in name:
            full = commands.lookup(name)
            if full is None:
                raise AclError(UNKNOWN)
            self._set_command(commands, full, True)
            return
        parent, _, first = name.rpartition("|")
        full = commands.lookup(parent)
        if full is None:
            raise AclError(UNKNOWN)
        if "|" in full:
            raise AclError(FIRSTARG_OF_SUB)
        if not first:
            raise AclError(SYNTAX)
        if commands.subs.get(full):
            sub = commands.lookup(name)
            if sub is None:
                raise AclError(UNKNOWN)
            self._set_command(commands, sub, True)
            return
        # A first argument of a plain command (SELECT|0): allowed on its own when the command is not.
        allowed = self.firstargs.setdefault(full, [])
        arg = first.encode("latin-1")
        if all(a.lower() != arg.lower() for a in allowed):
            allowed.append(arg)

    def _add_key_pattern(self, op: bytes) -> None:
        if self.all_keys:
            raise AclError(KEYS_AFTER_ALL)
        flags = 0
        offset = 1
        if op[:1] == b"%":
            flags = 0
            while offset < len(op):
                char = op[offset : offset + 1].upper()
                if char == b"R" and not flags & READ:
                    flags |= READ
                elif char == b"W" and not flags & WRITE:
                    flags |= WRITE
                elif char == b"~":
                    offset += 1
                    break
                else:
                    raise AclError(SYNTAX)
                offset += 1
            if not flags:
                raise AclError(SYNTAX)
        else:
            flags = _ALL
        pattern = op[offset:]
        if pattern == b"*" and flags == _ALL:
            self.all_keys = True
            self.patterns = []
            return
        for existing in self.patterns:
            if existing[0] == pattern:
                existing[1] |= flags
                return
        self.patterns.append([pattern, flags])

    # ------------------------------------------------------------------ checks

    def check(self, commands: Commands, full: str, spec: CommandDef, argv: list[bytes], sub: bool) -> Denial | None:
        """None if this selector allows the command line, else why not."""
        if not self.all_commands and "no_auth" not in spec.flags and full not in self.allowed:
            first = self.firstargs.get(full)
            index = 2 if sub else 1
            if not first or len(argv) <= index or all(a.lower() != argv[index].lower() for a in first):
                return Denial("command", full)
        if not self.all_keys and spec.key_specs:
            for key_spec in spec.key_specs:
                need = _key_access(key_spec.flags)
                for index in key_spec.positions(argv):
                    if not self.key_allowed(argv[index], need):
                        return Denial("key", full, index)
        channels = _CHANNELS.get(full)
        if channels is not None and not self.all_channels:
            first_index, last, pattern = channels
            stop = len(argv) if last < 0 else last + 1
            for index in range(first_index, stop):
                if not self.channel_allowed(argv[index], pattern):
                    return Denial("channel", full, index)
        return None

    def key_allowed(self, key: bytes, need: int) -> bool:
        """Whether a pattern with the access asked for matches the key."""
        if self.all_keys:
            return True
        return any(flags & need == need and glob_match(pattern, key) for pattern, flags in self.patterns)

    def channel_allowed(self, channel: bytes, pattern: bool) -> bool:
        """A channel must match a channel pattern; a subscription pattern must be one of them, literally."""
        if self.all_channels:
            return True
        if pattern:
            return channel in self.channels
        return any(glob_match(allowed, channel) for allowed in self.channels)

    # ------------------------------------------------------------------ description

    def describe_keys(self) -> bytes:
        """The key patterns as ACL GETUSER shows them."""
        if self.all_keys:
            return b"~*"
        return b" ".join(_pattern_text(p, f) for p, f in self.patterns)

    def describe_channels(self) -> bytes:
        """The channel patterns as ACL GETUSER shows them."""
        if self.all_channels:
            return b"&*"
        return b" ".join(b"&" + c for c in self.channels)

    def describe(self, commands: Commands) -> bytes:
        """The selector as ACL LIST writes it: keys, channels, then the command rules."""
        parts = []
        if self.all_keys:
            parts.append(b"~*")
        else:
            parts += [_pattern_text(p, f) for p, f in self.patterns]
        if self.all_channels:
            parts.append(b"&*")
        else:
            parts.append(b"resetchannels")
            parts += [b"&" + c for c in self.channels]
        parts.append(self.describe_commands(commands))
        return b" ".join(parts)

    def describe_commands(self, commands: Commands) -> bytes:
        """Rules that rebuild this selector's commands: +@all or -@all, best-fitting categories, single commands.

        The categories are picked as Redis does: the one that brings the most
        commands in line for the fewest wrongly changed, again and again while
        one brings more right than wrong; single commands fix the rest.
        """
        rules: list[str] = []
        fake = Selector()
        additive = not self.future
        if additive:
            rules.append("-@all")
        else:
            rules.append("+@all")
            fake.apply(commands, b"+@all")
        # What is still to be explained: start from the user's commands, undo each category applied.
        left = set(self.allowed)
        applied: set[str] = set()
        while True:
            best = None
            min_diff = 1 << 30
            max_same = 0
            for cat in CATEGORIES:
                if cat in applied:
                    continue
                members = commands.in_category[cat]
                on = sum(1 for m in members if m in left)
                off = len(members) - on
                diff, same = (off, on) if additive else (on, off)
                if same > diff and (diff < min_diff or (diff == min_diff and same > max_same)):
                    best, min_diff, max_same = cat, diff, same
            if best is None:
                break
            sign = "+" if additive else "-"
            fake._set_category(commands, best, additive)
            temp = Selector(allowed=left)
            temp._set_category(commands, best, not additive)
            left = temp.allowed
            rules.append(f"{sign}@{best}")
            applied.add(best)
        for low in commands.order:
            self._single_rules(commands, fake, low, rules)
            for sub in commands.subs[low]:
                self._single_rules(commands, fake, sub, rules)
            if low not in self.allowed:
                for arg in self.firstargs.get(low, ()):
                    rules.append(f"+{low}|{arg.decode('latin-1')}")
        return " ".join(rules).encode("latin-1")

    def _single_rules(self, commands: Commands, fake: Selector, full: str, rules: list[str]) -> None:
        mine = full in self.allowed
        if mine != (full in fake.allowed):
            rules.append(("+" if mine else "-") + full)
            if "|" in full:
                fake._set_bit(full, mine)
            else:
                fake._set_command(commands, full, mine)


def _pattern_text(pattern: bytes, flags: int) -> bytes:
    if flags == _ALL:
        return b"~" + pattern
    return (b"%R~" if flags == READ else b"%W~") + pattern


@dataclass
class User:
    """An ACL user: flags, password hashes and selectors (the first is its root rules)."""

    name: bytes
    enabled: bool = False
    nopass: bool = False
    sanitize: str = ""  # "", "sanitize-payload" or "skip-sanitize-payload" (shown, nothing else)
    passwords: list[bytes] = field(default_factory=list)  # hex SHA-256 hashes
    selectors: list[Selector] = field(default_factory=lambda: [Selector(root=True)])
    #: Allowed everything through its root selector: the connection's fast path skips the checks.
    unrestricted: bool = False
    #: Its ACL LIST line, kept until its rules change (describing the commands is the costly part).
    line: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def root(self) -> Selector:
        """The user's own rules (the first selector)."""
        return self.selectors[0]

    def copy(self) -> User:
        """An independent copy of the user's rules."""
        return User(
            self.name,
            self.enabled,
            self.nopass,
            self.sanitize,
            list(self.passwords),
            [s.copy() for s in self.selectors],
            self.unrestricted,
        )

    def take(self, other: User) -> None:
        """Become *other* (keeping this object, which connections refer to)."""
        self.enabled, self.nopass, self.sanitize = other.enabled, other.nopass, other.sanitize
        self.passwords, self.selectors = other.passwords, other.selectors
        self.line = None
        root = self.root
        self.unrestricted = root.all_commands and root.all_keys and root.all_channels

    def flags(self) -> list[bytes]:
        """The flags ACL GETUSER and ACL LIST show, in Redis's order."""
        out = [b"on" if self.enabled else b"off"]
        if self.nopass:
            out.append(b"nopass")
        if self.sanitize:
            out.append(self.sanitize.encode())
        return out

    def apply(self, commands: Commands, op: bytes) -> None:
        """Apply one ACL SETUSER rule; raise AclError with Redis's message."""
        low = op.lower()
        if low == b"on":
            self.enabled = True
        elif low == b"off":
            self.enabled = False
        elif low in (b"skip-sanitize-payload", b"sanitize-payload"):
            self.sanitize = low.decode()
        elif low == b"nopass":
            self.nopass = True
            self.passwords = []
        elif low == b"resetpass":
            self.nopass = False
            self.passwords = []
        elif op[:1] in (b">", b"#"):
            digest = password_hash(op[1:]) if op[:1] == b">" else op[1:]
            if op[:1] == b"#" and not _HASH.fullmatch(digest):
                raise AclError(BAD_HASH)
            if digest not in self.passwords:
                self.passwords.append(digest)
            self.nopass = False
        elif op[:1] in (b"<", b"!"):
            digest = password_hash(op[1:]) if op[:1] == b"<" else op[1:]
            if op[:1] == b"!" and not _HASH.fullmatch(digest):
                raise AclError(BAD_HASH)
            if digest not in self.passwords:
                raise AclError(NO_SUCH_PASSWORD)
            self.passwords.remove(digest)
            self.nopass = False
        elif op[:1] == b"(" and op[-1:] == b")":
            selector = Selector()
            for part in op[1:-1].split():
                selector.apply(commands, part)
            self.selectors.append(selector)
        elif low == b"clearselectors":
            del self.selectors[1:]
        elif low == b"reset":
            self.passwords, self.nopass, self.enabled = [], False, False
            self.sanitize = "sanitize-payload"
            self.selectors = [Selector(root=True)]
        else:
            self.root.apply(commands, op)

    def check_password(self, password: bytes) -> bool:
        """Whether the password logs this user in (in constant time against each hash)."""
        if not self.enabled:
            return False
        if self.nopass:
            return True
        digest = password_hash(password)
        found = False
        for known in self.passwords:
            found |= hmac.compare_digest(known, digest)
        return found

    def describe(self, commands: Commands) -> bytes:
        """The user as one line of ACL LIST."""
        if self.line is not None:
            return self.line
        parts = [b"user", self.name, *self.flags(), *(b"#" + p for p in self.passwords), self.root.describe(commands)]
        line = b" ".join(parts)
        for selector in self.selectors[1:]:
            line += b" (" + selector.describe(commands) + b")"
        self.line = line
        return line

    def check(self, commands: Commands, spec: CommandDef, argv: list[bytes]) -> Denial | None:
        """None if some selector allows the command line; else the denial Redis would report."""
        full = spec.name.lower()
        sub = "|" in full
        worst: Denial | None = None
        rank = {"command": 1, "key": 2, "channel": 4}
        for selector in self.selectors:
            denial = selector.check(commands, full, spec, argv, sub)
            if denial is None:
                return None
            if (
                worst is None
                or rank[denial.reason] > rank[worst.reason]
                or (denial.reason == worst.reason and denial.index > worst.index)
            ):
                worst = denial
        return worst


def merge_selector_args(args: Iterable[bytes]) -> tuple[list[bytes], bytes | None]:
    """Join ``(`` ... ``)`` spread over several arguments into one; (rules, the opening word left unclosed)."""
    out: list[bytes] = []
    pending: list[bytes] | None = None
    for arg in args:
        if pending is None:
            if arg[:1] == b"(" and arg[-1:] != b")":
                pending = [arg]
            else:
                out.append(arg)
        else:
            pending.append(arg)
            if arg[-1:] == b")":
                out.append(b" ".join(pending))
                pending = None
    return out, (pending[0] if pending else None)


@dataclass
class LogEntry:
    """One line of the ACL log (similar denials within a minute are counted on one entry)."""

    reason: str
    context: str
    object: bytes
    username: bytes
    created_ms: int
    client_info: bytes
    count: int = 1


class AclLog:
    """The newest denials and failed logins first, at most *limit* (acllog-max-len)."""

    def __init__(self, limit: int = 128) -> None:
        self.limit = limit
        self.entries: list[LogEntry] = []

    def add(self, reason: str, context: str, obj: bytes, username: bytes, now_ms: int, client_info: bytes) -> None:
        """Record a denial, folding it into a like entry of the last minute."""
        for i, entry in enumerate(self.entries):
            if (
                entry.reason == reason
                and entry.context == context
                and entry.object == obj
                and entry.username == username
                and now_ms - entry.created_ms < 60_000
            ):
                entry.count += 1
                entry.created_ms = now_ms
                entry.client_info = client_info
                del self.entries[i]
                self.entries.insert(0, entry)
                return
        self.entries.insert(0, LogEntry(reason, context, obj, username, now_ms, client_info))
        del self.entries[self.limit :]

    def reset(self) -> None:
        """ACL LOG RESET."""
        self.entries.clear()


class Users:
    """Every user of the server, the ``default`` user first made as Redis makes it (on, nopass, everything)."""

    def __init__(self, table: dict[str, CommandDef], password: bytes | None = None) -> None:
        self.commands = Commands(table)
        self.users: dict[bytes, User] = {}
        self.log = AclLog()
        self.default = self.create(b"default")
        for rule in (b"+@all", b"~*", b"&*", b"on", b"nopass"):
            self.default.apply(self.commands, rule)
        self.default.take(self.default)
        self.set_default_password(password)

    def create(self, name: bytes) -> User:
        """A new user, off and allowed nothing (Redis's ACLCreateUser)."""
        user = User(name)
        self.users[name] = user
        return user

    def get(self, name: bytes) -> User | None:
        """The user of that name, or None."""
        return self.users.get(name)

    def set_default_password(self, password: bytes | None) -> None:
        """requirepass: the default user's only password, or nopass when empty."""
        user = self.default
        user.apply(self.commands, b"resetpass")
        user.apply(self.commands, b">" + password if password else b"nopass")
        user.line = None

    @property
    def default_requires_auth(self) -> bool:
        """True when new connections must AUTH (the default user has a password or is off)."""
        user = self.default
        return not user.nopass or not user.enabled

    def names(self) -> list[bytes]:
        """Every user's name, sorted as Redis lists them."""
        return sorted(self.users)

    def set_user(self, name: bytes, rules: list[bytes]) -> tuple[User, User | None]:
        """Apply ACL SETUSER rules to a copy of the user, all or nothing; return (the staged user, the existing one).

        Raises AclError with the whole message on the first rule that fails.
        """
        merged, unclosed = merge_selector_args(rules)
        if unclosed is not None:
            raise AclError(f"Unmatched parenthesis in acl selector starting at '{unclosed.decode('latin-1')}'.")
        existing = self.users.get(name)
        staged = existing.copy() if existing is not None else User(name)
        for rule in merged:
            try:
                staged.apply(self.commands, rule)
            except AclError as exc:
                raise AclError(f"Error in ACL SETUSER modifier '{rule.decode('latin-1')}': {exc}") from None
        return staged, existing

    def commit(self, staged: User, existing: User | None) -> User:
        """Make the staged rules the user's (the same object if it existed)."""
        user = existing if existing is not None else self.create(staged.name)
        user.take(staged)
        return user
