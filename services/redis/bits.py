"""Bit operations on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD (Redis's bitops.c).

A string that a bit command changes is kept as a ``bytearray`` so SETBIT and
BITFIELD change it in place (O(1) amortised, growing by appending zero bytes);
every string reader accepts ``bytes`` and ``bytearray`` alike.  Bit 0 is the
most significant bit of the first byte, as in Redis.
"""

from __future__ import annotations

from linechat.services.redis.base import MAX_STRING, NOT_INTEGER, SYNTAX, WRONGTYPE, CommandContext, int_arg
from linechat.services.redis.resp import ONE, ZERO, RespError, integer, parse_int
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["BitCommands"]

BIT_OFFSET = "ERR bit offset is not an integer or out of range"
BIT_VALUE = "ERR bit is not an integer or out of range"
BITFIELD_TYPE = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
_INVERT = bytes(255 - i for i in range(256))


def _bit_offset(arg: bytes, width: int = 0, max_bytes: int = MAX_STRING) -> int:
    """A bit offset argument (``#N`` counts fields of *width* bits when *width* is given) below *max_bytes* * 8."""
    by_field = width > 0 and arg[:1] == b"#"
    number = parse_int(arg[1:] if by_field else arg)
    if number is None:
        raise RespError(BIT_OFFSET)
    if by_field:
        number *= width
    if number < 0 or (number >> 3) >= max_bytes:
        raise RespError(BIT_OFFSET)
    return number


def _field_type(arg: bytes) -> tuple[bool, int]:
    """(signed, width) of a BITFIELD type such as ``i16`` or ``u8``."""
    kind = arg[:1]  # lower case only, as Redis
    if kind not in (b"i", b"u"):
        raise RespError(BITFIELD_TYPE)
    signed = kind == b"i"
    width = parse_int(arg[1:])
    if width is None or width < 1 or width > (64 if signed else 63):
        raise RespError(BITFIELD_TYPE)
    return signed, width


def _read_field(data: bytes | bytearray, offset: int, width: int, signed: bool) -> int:
    """The field of *width* bits at bit *offset* (past the end reads as zeros)."""
    first = offset >> 3
    last = (offset + width - 1) >> 3
    chunk = bytes(data[first : last + 1])
    chunk += b"\0" * (last + 1 - first - len(chunk))
    span = (last + 1 - first) * 8
    value = (int.from_bytes(chunk, "big") >> (span - (offset & 7) - width)) & ((1 << width) - 1)
    if signed and value >> (width - 1):
        value -= 1 << width
    return value


def _write_field(data: bytearray, offset: int, width: int, value: int) -> None:
    """Store the low *width* bits of *value* at bit *offset* (the string is long enough)."""
    first = offset >> 3
    last = (offset + width - 1) >> 3
    span = (last + 1 - first) * 8
    shift = span - (offset & 7) - width
    mask = ((1 << width) - 1) << shift
    current = int.from_bytes(data[first : last + 1], "big")
    current = (current & ~mask) | ((value << shift) & mask)
    data[first : last + 1] = current.to_bytes(last + 1 - first, "big")


def _popcount(data: bytes | bytearray) -> int:
    return int.from_bytes(data, "big").bit_count()


class BitCommands(CommandContext):
    """The bitmap commands."""

    def string_for_update(self, key: bytes, size: int) -> bytearray:
        """The string at *key* as a bytearray of at least *size* bytes, created or grown with zero bytes."""
        db = self.db
        value = db.get(key)
        if value is None:
            value = bytearray(size)
            db.set(key, value)
            return value
        kind = type(value)
        if kind is not bytearray:
            if kind is not bytes:
                raise RespError(WRONGTYPE)
            value = bytearray(value)
            db.set(key, value, keep_ttl=True)
        if len(value) < size:
            value.extend(bytes(size - len(value)))
        return value

    def _offset(self, arg: bytes, width: int = 0) -> int:
        """A bit offset within proto-max-bulk-len (not checked while the AOF loads, as Redis)."""
        server = self.server
        limit = 1 << 62 if server.loading else server.settings.max_bulk_len
        return _bit_offset(arg, width, limit)

    def _string(self, key: bytes) -> bytes | bytearray | None:
        return self._typed(key, bytes)  # type: ignore[no-any-return]

    @redis_command(
        "SETBIT", arity=4, flags="write denyoom", keys=(1, 1, 1), key_flags="RW access update", group="bitmap"
    )
    def cmd_setbit(self, key: bytes, offset: bytes, value: bytes) -> bytes:
        """Set or clear one bit; return its old value."""
        where = self._offset(offset)
        bit = parse_int(value)
        if bit is None or bit & ~1:
            raise RespError(BIT_VALUE)
        data = self.string_for_update(key, (where >> 3) + 1)
        mask = 0x80 >> (where & 7)
        byte = data[where >> 3]
        old = 1 if byte & mask else 0
        data[where >> 3] = (byte | mask) if bit else (byte & ~mask)
        self._propagate()
        return ONE if old else ZERO

    @redis_command("GETBIT", arity=3, flags="readonly fast", keys=(1, 1, 1), group="bitmap")
    def cmd_getbit(self, key: bytes, offset: bytes) -> bytes:
        """The value of one bit (0 past the end)."""
        where = self._offset(offset)
        data = self._string(key)
        if data is None or (where >> 3) >= len(data):
            return ZERO
        return ONE if data[where >> 3] & (0x80 >> (where & 7)) else ZERO

    @staticmethod
    def _unit(arg: bytes) -> bool:
        """True for BIT, False for BYTE."""
        unit = arg.upper()
        if unit == b"BIT":
            return True
        if unit == b"BYTE":
            return False
        raise RespError(SYNTAX)

    @redis_command("BITCOUNT", arity=-2, flags="readonly", keys=(1, 1, 1), group="bitmap")
    def cmd_bitcount(self, key: bytes, *args: bytes) -> bytes:
        """Count the set bits, in the whole string or a BYTE (default) or BIT range."""
        data = self._string(key)
        if data is None:  # before the arguments are looked at, as Redis 7.0
            return ZERO
        if not args:
            return integer(_popcount(data))
        if len(args) not in (2, 3):
            raise RespError(SYNTAX)
        start, end = int_arg(args[0]), int_arg(args[1])
        bits = self._unit(args[2]) if len(args) == 3 else False
        if start < 0 and end < 0 and start > end:
            return ZERO
        total = len(data) * 8 if bits else len(data)
        if start < 0:
            start = max(total + start, 0)
        if end < 0:
            end = max(total + end, 0)
        end = min(end, total - 1)
        if start > end:
            return ZERO
        if not bits:
            return integer(_popcount(data[start : end + 1]))
        chunk = data[start >> 3 : (end >> 3) + 1]
        span = len(chunk) * 8
        number = int.from_bytes(chunk, "big") >> (span - 1 - (end - (start & ~7)))
        return integer((number & ((1 << (end - start + 1)) - 1)).bit_count())

    @redis_command("BITPOS", arity=-3, flags="readonly", keys=(1, 1, 1), group="bitmap")
    def cmd_bitpos(self, key: bytes, bit_arg: bytes, *args: bytes) -> bytes:
        """Position of the first bit set to 1 (or 0), optionally in a BYTE or BIT range."""
        bit = parse_int(bit_arg)
        if bit is None:
            raise RespError(NOT_INTEGER)
        if bit not in (0, 1):
            raise RespError("ERR The bit argument must be 1 or 0.")
        data = self.db.get(key)
        if data is None:
            return integer(-1 if bit else 0)
        if type(data) is not bytes and type(data) is not bytearray:
            raise RespError(WRONGTYPE)
        if len(args) > 3:
            raise RespError(SYNTAX)
        end_given = len(args) >= 2
        bits = False
        if args:
            start = int_arg(args[0])
            if len(args) == 3:
                bits = self._unit(args[2])
            total = len(data) * 8 if bits else len(data)
            end = int_arg(args[1]) if end_given else total - 1
            if start < 0:
                start = max(total + start, 0)
            if end < 0:
                end = max(total + end, 0)
            end = min(end, total - 1)
        else:
            start, end = 0, len(data) - 1
        if start > end:
            return integer(-1)
        first_bit, last_bit = (start, end) if bits else (start * 8, end * 8 + 7)
        # Whole bytes are skipped at C speed (lstrip), the bits of the first interesting byte looked at.
        chunk = bytes(data[first_bit >> 3 : (last_bit >> 3) + 1])
        skip = b"\0" if bit else b"\xff"
        head = first_bit & 7
        tail = 7 - (last_bit & 7)
        if head:  # the bits before the range count as not matching
            chunk = bytes([chunk[0] & (0xFF >> head) if bit else chunk[0] | (0xFF << (8 - head)) & 0xFF]) + chunk[1:]
        if tail:
            last = chunk[-1]
            last = last & (0xFF << tail) & 0xFF if bit else last | ((1 << tail) - 1)
            chunk = chunk[:-1] + bytes([last])
        rest = chunk.lstrip(skip)
        if not rest:
            if bit or end_given:
                return integer(-1)
            return integer(((last_bit >> 3) + 1) * 8)
        byte = rest[0] if bit else rest[0] ^ 0xFF
        index = len(chunk) - len(rest)
        return integer(((first_bit >> 3) + index) * 8 + 8 - byte.bit_length())

    @redis_command(
        "BITOP",
        arity=-4,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 2), KeySpec(("RO", "access"), 3, lastkey=-1)],
        legacy_keys=(2, -1, 1),
        group="bitmap",
    )
    def cmd_bitop(self, operation: bytes, dest: bytes, key: bytes, *keys: bytes) -> bytes:
        """AND, OR, XOR or NOT of strings into a destination key; return its length."""
        op = operation.upper()
        if op not in (b"AND", b"OR", b"XOR", b"NOT"):
            raise RespError(SYNTAX)
        if op == b"NOT" and keys:
            raise RespError("ERR BITOP NOT must be called with a single source key.")
        sources: list[bytes | bytearray] = []
        for name in (key, *keys):
            value = self._string(name)
            sources.append(b"" if value is None else value)
        size = max(len(s) for s in sources)
        if size:
            if op == b"NOT":
                result = bytes(sources[0]).translate(_INVERT)
            else:
                numbers = [int.from_bytes(bytes(s) + bytes(size - len(s)), "big") for s in sources]
                acc = numbers[0]
                for number in numbers[1:]:
                    if op == b"AND":
                        acc &= number
                    elif op == b"OR":
                        acc |= number
                    else:
                        acc ^= number
                result = acc.to_bytes(size, "big")
            self.db.set(dest, result)
            self._propagate([b"SET", dest, result])
        elif self.db.delete(dest):
            self._propagate([b"DEL", dest])
        return integer(size)

    def _bitfield(self, key: bytes, args: tuple[bytes, ...], readonly_command: bool) -> bytes:
        ops: list[tuple[bytes, bool, int, int, int, bytes]] = []
        overflow = b"WRAP"
        highest = -1
        i = 0
        while i < len(args):
            name = args[i].upper()
            left = len(args) - i - 1
            if name == b"OVERFLOW" and left >= 1:
                overflow = args[i + 1].upper()
                if overflow not in (b"WRAP", b"SAT", b"FAIL"):
                    raise RespError("ERR Invalid OVERFLOW type specified")
                i += 2
                continue
            if not ((name == b"GET" and left >= 2) or (name in (b"SET", b"INCRBY") and left >= 3)):
                raise RespError(SYNTAX)
            signed, width = _field_type(args[i + 1])
            offset = self._offset(args[i + 2], width)
            operand = 0
            if name != b"GET":
                highest = max(highest, offset + width - 1)
                operand = int_arg(args[i + 3])
            ops.append((name, signed, width, offset, operand, overflow))
            i += 3 if name == b"GET" else 4
        data: bytes | bytearray | None
        if highest < 0:
            data = self._string(key)
        else:
            if readonly_command:
                raise RespError("ERR BITFIELD_RO only supports the GET subcommand")
            data = self.string_for_update(key, (highest >> 3) + 1)
        replies = []
        changed = False
        for name, signed, width, offset, operand, mode in ops:
            if name == b"GET":
                replies.append(integer(0 if data is None else _read_field(data, offset, width, signed)))
                continue
            assert isinstance(data, bytearray)
            old = _read_field(data, offset, width, signed)
            if signed:
                low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
            else:
                low, high = 0, (1 << width) - 1
            # SET of an unsigned field takes the 64-bit pattern of the (signed) argument, as Redis.
            unsigned_arg = operand & 0xFFFFFFFFFFFFFFFF
            wanted = old + operand if name == b"INCRBY" else operand if signed else unsigned_arg
            new = wanted
            if not low <= wanted <= high:
                if mode == b"FAIL":
                    replies.append(self.null)
                    continue
                if mode == b"SAT":
                    new = high if wanted > high else low
                else:
                    new = wanted & ((1 << width) - 1)
                    if signed and new > high:
                        new -= 1 << width
            _write_field(data, offset, width, new)
            changed = True
            replies.append(integer(old if name == b"SET" else new))
        if changed:
            self._propagate()
        return b"*%d\r\n" % len(replies) + b"".join(replies)

    @redis_command(
        "BITFIELD",
        arity=-2,
        flags="write denyoom",
        keys=[
            KeySpec(
                ("RW", "access", "update", "variable_flags"),
                1,
                notes="This command allows both access and modification of the key",
            )
        ],
        group="bitmap",
    )
    def cmd_bitfield(self, key: bytes, *args: bytes) -> bytes:
        """GET, SET and INCRBY integer fields of any width at any bit offset, with OVERFLOW WRAP/SAT/FAIL."""
        return self._bitfield(key, args, False)

    @redis_command("BITFIELD_RO", arity=-2, flags="readonly fast", keys=(1, 1, 1), group="bitmap")
    def cmd_bitfield_ro(self, key: bytes, *args: bytes) -> bytes:
        """BITFIELD with GET operations only."""
        return self._bitfield(key, args, True)
