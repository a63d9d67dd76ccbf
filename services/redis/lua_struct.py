"""The ``struct`` library Redis gives scripts: binary packing of Lua values, written in Python.

As Redis's bundled library: ``struct.pack(fmt, ...)``, ``struct.unpack(fmt,
s[, pos])`` (the values, then the position after them) and
``struct.size(fmt)``.  Format: ``<`` ``>`` byte order (little-endian by
default, as on x86-64), ``![n]`` alignment, ``x`` a zero byte, ``b B h H l
L T`` signed/unsigned char, short, long, size_t, ``i[n] I[n]`` integers of
n bytes (4 by default, at most 32), ``f d`` float, double, ``c[n]`` n chars
(``c0``: the whole string when packing, the previous number's length when
unpacking), ``s`` a zero-terminated string; spaces are ignored.
"""

from __future__ import annotations

import struct
from typing import Any

from linechat.services.redis.lua_cmsgpack import MsgpackError as LuaLibraryError

__all__ = ["struct_library"]

_MAX_INT_SIZE = 32
_MAX_ALIGN = 8
_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "T": 8, "f": 4, "d": 8, "x": 1}
_U64 = (1 << 64) - 1


def _lua_type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, bytes):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "table"


class _Format:
    """A cursor over a format string, with the byte order and alignment it has set so far."""

    def __init__(self, fmt: Any, function: str) -> None:
        if isinstance(fmt, int | float):
            fmt = _number_text(fmt)
        if not isinstance(fmt, bytes):
            raise LuaLibraryError(f"bad argument #1 to '{function}' (string expected, got {_lua_type_name(fmt)})")
        self.fmt = fmt.decode("latin-1")
        self.pos = 0
        self.little = True
        self.align = 1
        self.function = function

    def number(self, default: int) -> int:
        start = self.pos
        while self.pos < len(self.fmt) and self.fmt[self.pos].isdigit():
            self.pos += 1
        if start == self.pos:
            return default
        value = int(self.fmt[start : self.pos])
        if value > 2**31 - 1:
            raise LuaLibraryError("integral size overflow")
        return value

    def size(self, opt: str) -> int:
        if opt in _SIZES:
            return _SIZES[opt]
        if opt == "c":
            return self.number(1)
        if opt in "iI":
            size = self.number(4)
            if size > _MAX_INT_SIZE:
                raise LuaLibraryError(f"integral size {size} is larger than limit of {_MAX_INT_SIZE}")
            return size
        return 0

    def padding(self, length: int, opt: str, size: int) -> int:
        if size == 0 or opt == "c":
            return 0
        size = min(size, self.align)
        return (size - (length & (size - 1))) & (size - 1)

    def control(self, opt: str) -> None:
        if opt == " ":
            return
        if opt == ">":
            self.little = False
        elif opt == "<":
            self.little = True
        elif opt == "!":
            align = self.number(_MAX_ALIGN)
            if align & (align - 1):
                raise LuaLibraryError(f"alignment {align} is not a power of 2")
            self.align = align
        else:
            raise LuaLibraryError(f"bad argument #1 to '{self.function}' (invalid format option '{opt}')")


def _number_text(value: float) -> bytes:
    return b"%d" % value if value == int(value) else b"%.14g" % value


def _check_number(args: tuple[Any, ...], index: int, function: str, first: int = 2, missing: str = "nil") -> float:
    """Argument *index* of *args* (the Lua argument number *first* + index) as luaL_checknumber reads it."""
    value = args[index] if index < len(args) else _MISSING
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, bytes):
        try:
            return float(value)
        except ValueError:
            pass
    # pack's missing arguments read as nil (the library pushes a nil mark after them).
    got = missing if value is _MISSING else _lua_type_name(value)
    raise LuaLibraryError(f"bad argument #{index + first} to '{function}' (number expected, got {got})")


_MISSING = object()


def _pack(fmt: Any, *args: Any) -> bytes:
    form = _Format(fmt, "pack")
    out = bytearray()
    arg = 0
    while form.pos < len(form.fmt):
        opt = form.fmt[form.pos]
        form.pos += 1
        size = form.size(opt)
        pad = form.padding(len(out), opt, size)
        out += b"\0" * pad
        if opt in "bBhHlLTiI":
            number = _check_number(args, arg, "pack")
            arg += 1
            value = (int(number) if number >= 0 else int(number) & _U64) & _U64
            raw = value.to_bytes(8, "little") + b"\0" * max(0, size - 8)
            raw = raw[:size]
            out += raw if form.little else raw[::-1]
        elif opt == "x":
            out += b"\0"
        elif opt in "fd":
            number = _check_number(args, arg, "pack")
            arg += 1
            try:
                raw = struct.pack("<f" if opt == "f" else "<d", number)
            except OverflowError:
                raw = struct.pack("<f", float("inf") if number > 0 else float("-inf"))
            out += raw if form.little else raw[::-1]
        elif opt in "cs":
            given: Any = args[arg] if arg < len(args) else _MISSING
            if isinstance(given, int | float) and not isinstance(given, bool):
                given = _number_text(given)
            if not isinstance(given, bytes):
                got = "nil" if given is _MISSING else _lua_type_name(given)
                raise LuaLibraryError(f"bad argument #{arg + 2} to 'pack' (string expected, got {got})")
            arg += 1
            if size == 0:
                size = len(given)
            if len(given) < size:
                # Redis's library names the argument after the string (its counter has moved on).
                raise LuaLibraryError(f"bad argument #{arg + 2} to 'pack' (string too short)")
            out += given[:size]
            if opt == "s":
                out += b"\0"
        else:
            form.control(opt)
    return bytes(out)


def _unpack(fmt: Any, data: Any = _MISSING, init: Any = 1) -> tuple[Any, ...]:
    form = _Format(fmt, "unpack")
    if isinstance(data, int | float) and not isinstance(data, bool):
        data = _number_text(data)
    if not isinstance(data, bytes):
        got = "no value" if data is _MISSING else _lua_type_name(data)
        raise LuaLibraryError(f"bad argument #2 to 'unpack' (string expected, got {got})")
    start = 1 if init is None else int(_check_number((init,), 0, "unpack", first=3))
    if start <= 0:
        raise LuaLibraryError("bad argument #3 to 'unpack' (offset must be 1 or greater)")
    pos = start - 1
    results: list[Any] = []
    while form.pos < len(form.fmt):
        opt = form.fmt[form.pos]
        form.pos += 1
        size = form.size(opt)
        pos += form.padding(pos, opt, size)
        if size > len(data) or pos > len(data) - size:
            raise LuaLibraryError("bad argument #2 to 'unpack' (data string too short)")
        if opt in "bBhHlLTiI":
            raw = data[pos : pos + size]
            value = int.from_bytes(raw, "little" if form.little else "big") & _U64
            if opt.islower() and value >> (min(size, 8) * 8 - 1) & 1:
                value -= 1 << (min(size, 8) * 8) if size <= 8 else 1 << 64
            results.append(value)
        elif opt in "fd":
            raw = data[pos : pos + size]
            results.append(struct.unpack(("<" if form.little else ">") + opt, raw)[0])
        elif opt == "c":
            if size == 0:
                if not results or not isinstance(results[-1], int | float):
                    raise LuaLibraryError("format 'c0' needs a previous size")
                size = int(results.pop())
                if size > len(data) or pos > len(data) - size:
                    raise LuaLibraryError("bad argument #2 to 'unpack' (data string too short)")
            results.append(data[pos : pos + size])
        elif opt == "s":
            end = data.find(b"\0", pos)
            if end < 0:
                raise LuaLibraryError("unfinished string in data")
            size = end - pos + 1
            results.append(data[pos:end])
        elif opt != "x":
            form.control(opt)
        pos += size
    return (*results, pos + 1)


def _size(fmt: Any) -> int:
    form = _Format(fmt, "size")
    pos = 0
    while form.pos < len(form.fmt):
        opt = form.fmt[form.pos]
        form.pos += 1
        size = form.size(opt)
        pos += form.padding(pos, opt, size)
        if opt == "s":
            raise LuaLibraryError("bad argument #1 to 'size' (option 's' has no fixed size)")
        if opt == "c" and size == 0:
            raise LuaLibraryError("bad argument #1 to 'size' (option 'c0' has no fixed size)")
        if not opt.isalnum():
            form.control(opt)
        pos += size
    return pos


def struct_library() -> dict[bytes, Any]:
    """The functions of the ``struct`` table."""
    return {b"pack": _pack, b"unpack": _unpack, b"size": _size}
