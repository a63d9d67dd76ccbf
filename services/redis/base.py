"""What every command handler sees (the server, the selected database, the command line) and shared helpers.

Handlers are methods of mixin classes, one per data type (``strings.py``,
``lists.py``...), declared with :func:`~linechat.services.redis.table.redis_command`.
They only need ``server``, ``db``, ``dbindex`` and ``argv`` (the whole
command being run), so the same code serves a network connection, the
replay of the append-only file and scripts.

Every change to the data goes through :meth:`CommandContext._propagate`:
it is what the append-only file records, what invalidates ``WATCH``-ed keys
and what a script's effects are made of, so a handler calls it exactly when
it changed something (with the command rewritten to a deterministic form if
needed).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from linechat.services.redis.resp import (
    INT64_MAX,
    INT64_MIN,
    NIL,
    NIL_ARRAY,
    RESP2,
    Dialect,
    RespError,
    parse_int,
)
from linechat.services.redis.store import Database
from linechat.services.redis.table import CommandDef

if TYPE_CHECKING:
    from linechat.services.redis.acl import Denial, User
    from linechat.services.redis.service import RedisService

__all__ = [
    "LONG_DOUBLE_MAX",
    "MAX_STRING",
    "NOT_FLOAT",
    "NOT_INTEGER",
    "OVERFLOW",
    "SYNTAX",
    "WRONGTYPE",
    "ClientContext",
    "CommandContext",
    "format_long_double",
    "index_range",
    "int_arg",
    "parse_long_double",
    "to_long_double",
]

NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
OVERFLOW = "ERR increment or decrement would overflow"
MAX_STRING = 512 * 1024 * 1024

_FLOAT_TEXT = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Redis does INCRBYFLOAT in x87 long double (64-bit mantissa) and prints it
# with "%.17Lf", trailing zeros cut.  Exact fractions rounded to 64 bits give
# the very same digits, artefacts included (10.6 - 5 + 5000 -> 5005.60000000000000009).
_MANTISSA_BITS = 64


def to_long_double(value: Fraction) -> Fraction:
    """Round *value* to the nearest number with a 64-bit binary mantissa (ties to even)."""
    if value == 0:
        return value
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length() - _MANTISSA_BITS
    while True:
        scaled = magnitude / Fraction(2) ** exponent
        if scaled >= 2**_MANTISSA_BITS:
            exponent += 1
        elif scaled < 2 ** (_MANTISSA_BITS - 1):
            exponent -= 1
        else:
            break
    mantissa = round(scaled)  # round() on a Fraction rounds half to even
    return sign * mantissa * Fraction(2) ** exponent


def parse_long_double(value: bytes) -> Fraction:
    """Parse a number argument as Redis's strtold does, rounded to a long double."""
    if _FLOAT_TEXT.fullmatch(value) is None:
        if value.lower().lstrip(b"+-") in (b"inf", b"infinity"):
            # strtold takes it; any sum with it is infinite or NaN.
            raise RespError("ERR increment would produce NaN or Infinity")
        raise RespError(NOT_FLOAT)
    number = Fraction(value.decode("ascii"))
    if abs(number) > LONG_DOUBLE_MAX:
        raise RespError(NOT_FLOAT)
    return to_long_double(number)


def format_long_double(value: Fraction) -> bytes:
    """Print a long double as Redis's "%.17Lf" with trailing zeros cut."""
    digits = str(round(abs(value) * 10**17)).rjust(18, "0")
    text = (digits[:-17] + "." + digits[-17:]).rstrip("0").rstrip(".")
    return (("-" if value < 0 else "") + text).encode("ascii")


LONG_DOUBLE_MAX = Fraction(2) ** 16384


def int_arg(value: bytes, message: str = NOT_INTEGER) -> int:
    """A 64-bit integer argument, or the RespError *message*."""
    number = parse_int(value)
    if number is None:
        raise RespError(message)
    return number


def index_range(start: int, end: int, length: int) -> tuple[int, int] | None:
    """Normalise a Redis inclusive index range against *length*; None when it is empty."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    if start < 0:
        start = 0
    if start > end or start >= length:
        return None
    if end >= length:
        end = length - 1
    return start, end


class CommandContext:
    """The state a handler runs against; mixed into the connection, the AOF replayer and the script caller."""

    #: The command table (set on the composed classes; see table.py).
    table: ClassVar[dict[str, CommandDef]] = {}
    server: RedisService
    db: Database
    dbindex: int
    argv: list[bytes]
    # Reply shapes of the connection's protocol (RESP2 unless HELLO 3 changed
    # them); the null replies are copied out of the dialect for the hot paths.
    dialect: Dialect = RESP2
    null: bytes = NIL
    null_array: bytes = NIL_ARRAY
    #: True while a script runs the command (redis.call): blocking commands must not block then.
    in_script: bool = False

    # ------------------------------------------------------------------ helpers

    def _propagate(self, argv: list[bytes] | None = None) -> None:
        """Report that the current command changed data: as run, or rewritten as *argv* (deterministic)."""
        # The file is opened after the replay, so no record is made while loading.
        server = self.server
        if server.propagating:
            server.propagate(self.dbindex, self.argv if argv is None else argv)

    def _typed(self, key: bytes, kind: type) -> Any:
        value = self.db.get(key)
        if value is not None and type(value) is not kind:
            # A string changed in place by a bit command is a bytearray: still a string.
            if kind is bytes and type(value) is bytearray:
                return value
            raise RespError(WRONGTYPE)
        return value

    def _deadline(self, amount: bytes, unit_ms: int, absolute: bool, name: str) -> int:
        """Turn an EX/PX/EXAT/PXAT style argument into an absolute deadline in ms."""
        number = int_arg(amount)
        invalid = f"ERR invalid expire time in '{name}' command"
        if unit_ms == 1000 and (number > INT64_MAX // 1000 or number < INT64_MIN // 1000):
            raise RespError(invalid)
        number *= unit_ms
        if not absolute:
            number += self.server.now_ms()
            if number > INT64_MAX:
                raise RespError(invalid)
        return number

    def run_subcommand(self, container: str, sub: bytes, args: tuple[bytes, ...]) -> Any:
        """Run a subcommand of a container command (CLIENT LIST...) from the table, checking its arity."""
        spec = self.table[container].subcommands.get(sub.upper().decode("latin-1"))
        if spec is None or spec.func is None:
            raise RespError(f"ERR unknown subcommand '{sub[:128].decode('latin-1')}'. Try {container} HELP.")
        if not spec.accepts(len(args)) or (spec.handler_max is not None and len(args) > spec.handler_max):
            raise RespError(
                f"ERR wrong number of arguments for '{container.lower()}|{sub.lower().decode('latin-1')}' command"
            )
        return spec.func(self, *args)


class ClientContext(CommandContext):
    """What the commands about a connection (CLIENT, MULTI, SUBSCRIBE...) see besides the data."""

    id: int
    client_name: bytes | None
    channels: set[bytes]
    patterns: set[bytes]
    shard_channels: set[bytes]
    #: MONITOR: every command the server runs is copied to this client.
    monitoring: bool
    _subscribed: bool
    _multi: list[list[bytes]] | None
    _multi_failed: bool
    #: WATCH: (database, key) -> whether the key had already expired when watched.
    watching: dict[tuple[int, bytes], bool]
    #: A watched key changed: the next EXEC fails.
    dirty_cas: bool
    closing: bool
    peer: tuple[str, int] | None
    created: float
    reply_mode: bytes
    no_evict: bool
    channel: Any
    #: The ACL user this connection runs as, and whether it has logged in.
    user: User
    authenticated: bool
    #: True while EXEC runs the queued commands (an ACL denial then says the rules changed).
    in_exec: bool = False

    if TYPE_CHECKING:  # provided by the connection (RedisProtocol and the framework's Protocol)

        def close(self) -> None: ...
        def abort(self) -> None: ...
        def addr(self) -> str: ...
        def local_address(self) -> str: ...
        def client_type(self) -> str: ...
        def pause(self, reason: str = "user") -> None: ...
        def resume(self, reason: str = "user") -> None: ...
        def send(self, reply: Any) -> None: ...
        def client_info(self) -> bytes: ...
        def _use(self, dialect: Dialect) -> None: ...
        def _execute(self, argv: list[bytes]) -> bytes | None: ...
        def acl_check(self, spec: CommandDef, argv: list[bytes], context: str) -> Denial | None: ...
        def acl_log(self, reason: str, context: str, obj: bytes, username: bytes) -> None: ...
