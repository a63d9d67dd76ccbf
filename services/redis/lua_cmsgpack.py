"""The ``cmsgpack`` library Redis gives scripts: MessagePack in and out of Lua values, written in Python.

As Redis's bundled library: ``cmsgpack.pack(v1, v2, ...)`` encodes each
value and concatenates them (a table whose keys are exactly 1..n is an
array, any other a map; a number with an integer value is an integer, other
numbers are 32-bit floats when that loses nothing, else 64-bit; nesting
past 16 levels packs nil), ``cmsgpack.unpack(s)`` returns every value in
*s*, ``unpack_one(s[, offset])`` and ``unpack_limit(s, limit[, offset])``
return the offset to resume from (-1 at the end) before the values.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = ["msgpack_library"]

_MAX_NESTING = 16


class MsgpackError(Exception):
    """Input that is not MessagePack (raised into Lua as the script's error, at the script's line)."""

    def __str__(self) -> str:
        # The marker tells the script's error handler to add "user_script:<line>: " (see scripting.py).
        return "LUA_LIB " + super().__str__()


def _pack(value: Any, lua_type: Callable[[Any], str | None], depth: int, out: bytearray) -> None:
    if value is None:
        out += b"\xc0"
    elif value is False:
        out += b"\xc2"
    elif value is True:
        out += b"\xc3"
    elif type(value) is bytes:
        n = len(value)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += b"\xd9" + bytes((n,))
        elif n <= 0xFFFF:
            out += b"\xda" + n.to_bytes(2, "big")
        else:
            out += b"\xdb" + n.to_bytes(4, "big")
        out += value
    elif type(value) in (int, float):
        _pack_number(value, out)
    elif lua_type(value) == "table" and depth < _MAX_NESTING:
        keys = list(value.keys())
        if all(type(k) is int and k > 0 for k in keys) and (not keys or max(keys) == len(keys)):
            n = len(keys)
            if n <= 15:
                out.append(0x90 | n)
            elif n <= 0xFFFF:
                out += b"\xdc" + n.to_bytes(2, "big")
            else:
                out += b"\xdd" + n.to_bytes(4, "big")
            for i in range(1, n + 1):
                _pack(value[i], lua_type, depth + 1, out)
        else:
            n = len(keys)
            if n <= 15:
                out.append(0x80 | n)
            elif n <= 0xFFFF:
                out += b"\xde" + n.to_bytes(2, "big")
            else:
                out += b"\xdf" + n.to_bytes(4, "big")
            for k in keys:
                _pack(k, lua_type, depth + 1, out)
                _pack(value[k], lua_type, depth + 1, out)
    else:  # functions, userdata, tables nested too deep
        out += b"\xc0"


def _pack_number(value: float, out: bytearray) -> None:
    if value == value and abs(value) < 2**63 and value == int(value):
        n = int(value)
        if n >= 0:
            if n <= 127:
                out.append(n)
            elif n <= 0xFF:
                out += b"\xcc" + bytes((n,))
            elif n <= 0xFFFF:
                out += b"\xcd" + n.to_bytes(2, "big")
            elif n <= 0xFFFFFFFF:
                out += b"\xce" + n.to_bytes(4, "big")
            else:
                out += b"\xcf" + n.to_bytes(8, "big")
        elif n >= -32:
            out.append(n & 0xFF)
        elif n >= -128:
            out += b"\xd0" + n.to_bytes(1, "big", signed=True)
        elif n >= -32768:
            out += b"\xd1" + n.to_bytes(2, "big", signed=True)
        elif n >= -(2**31):
            out += b"\xd2" + n.to_bytes(4, "big", signed=True)
        else:
            out += b"\xd3" + n.to_bytes(8, "big", signed=True)
        return
    try:
        single = struct.unpack(">f", struct.pack(">f", value))[0]
    except OverflowError:
        single = None
    if single == value:  # never for NaN, as in C
        out += b"\xca" + struct.pack(">f", value)
    else:
        out += b"\xcb" + struct.pack(">d", value)


class _Unpacker:
    def __init__(self, data: bytes, pos: int, make_table: Callable[[Any], Any]) -> None:
        self.data = data
        self.pos = pos
        self.table = make_table

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MsgpackError("Missing bytes in input.")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def value(self) -> Any:
        """One whole value; containers are filled with an explicit stack, so any nesting depth works."""
        # Each open container: [is_map, items left (keys and values for a map), items, next index, pending key].
        stack: list[list[Any]] = []
        while True:
            item, container = self._scalar_or_header()
            if container is not None:
                is_map, count = container
                if count:
                    stack.append([is_map, count * 2 if is_map else count, {}, 1, None])
                    continue
                item = self.table({})
            while True:  # place the finished value in its container, closing those it completes
                if not stack:
                    return item
                top = stack[-1]
                if top[0]:  # a map: a key, then its value (nil keys or values leave the pair out)
                    if top[1] % 2 == 0:
                        top[4] = item
                    elif top[4] is not None and item is not None:
                        top[2][top[4]] = item
                elif item is not None:
                    top[2][top[3]] = item
                top[3] += 1
                top[1] -= 1
                if top[1]:
                    break
                stack.pop()
                item = self.table(top[2])

    def _scalar_or_header(self) -> tuple[Any, tuple[bool, int] | None]:
        """A scalar value, or (None, (is a map, element count)) for a container's header."""
        b = self.take(1)[0]
        if b <= 0x7F:
            return b, None
        if b >= 0xE0:
            return b - 0x100, None
        if 0xA0 <= b <= 0xBF:
            return self.take(b & 0x1F), None
        if 0x90 <= b <= 0x9F:
            return None, (False, b & 0x0F)
        if 0x80 <= b <= 0x8F:
            return None, (True, b & 0x0F)
        fixed: dict[int, Any] = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in fixed:
            return fixed[b], None
        if b in (0xC4, 0xD9):
            return self.take(self.uint(1)), None
        if b in (0xC5, 0xDA):
            return self.take(self.uint(2)), None
        if b in (0xC6, 0xDB):
            return self.take(self.uint(4)), None
        if b == 0xCA:
            return struct.unpack(">f", self.take(4))[0], None
        if b == 0xCB:
            return struct.unpack(">d", self.take(8))[0], None
        if 0xCC <= b <= 0xCF:
            return self.uint(1 << (b - 0xCC)), None
        if 0xD0 <= b <= 0xD3:
            return int.from_bytes(self.take(1 << (b - 0xD0)), "big", signed=True), None
        if b in (0xDC, 0xDD):
            return None, (False, self.uint(2 if b == 0xDC else 4))
        if b in (0xDE, 0xDF):
            return None, (True, self.uint(2 if b == 0xDE else 4))
        raise MsgpackError("Bad data format in input.")


def msgpack_library(table_from: Callable[[Any], Any], lua_type: Callable[[Any], str | None]) -> dict[bytes, Any]:
    """The functions of the ``cmsgpack`` table, for a Lua runtime's table maker and type function."""

    def pack(*values: Any) -> bytes:
        if not values:
            raise MsgpackError("bad argument #0 to 'pack' (MessagePack pack needs input.)")
        out = bytearray()
        for value in values:
            _pack(value, lua_type, 0, out)
        return bytes(out)

    def unpack_limit(data: Any, limit: Any = 0, offset: Any = 0) -> tuple[Any, ...]:
        if type(data) is not bytes:
            raise MsgpackError("Bad data format in input.")
        limit, pos = int(limit), int(offset)
        if pos < 0 or pos > len(data):
            raise MsgpackError("Start offset is greater than input length.")
        reader = _Unpacker(data, pos, table_from)
        values: list[Any] = []
        while reader.pos < len(data) and (limit <= 0 or len(values) < limit):
            values.append(reader.value())
        return (-1 if reader.pos >= len(data) else reader.pos, *values)

    def unpack(data: Any) -> tuple[Any, ...]:
        return unpack_limit(data)[1:]

    def unpack_one(data: Any, offset: Any = 0) -> tuple[Any, ...]:
        return unpack_limit(data, 1, offset)

    return {b"pack": pack, b"unpack": unpack, b"unpack_one": unpack_one, b"unpack_limit": unpack_limit}
