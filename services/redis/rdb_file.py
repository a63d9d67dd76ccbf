"""Reading redis-server's RDB files: a ``dump.rdb`` snapshot, or the RDB preamble of an append-only file.

A file is the magic ``REDIS`` and four digits of version, then records
until an end byte: auxiliary fields (``AUX`` name/value pairs such as
``redis-ver``), ``SELECTDB`` and ``RESIZEDB`` (a hint, not needed here), a
deadline (seconds or milliseconds) or an LRU/LFU hint before a key, and the
keys themselves (a type byte, the key as an RDB string, the value in the
encoding :mod:`linechat.services.redis.rdb` reads for ``RESTORE``).  After
the end byte, from version 5 on, a CRC-64 of everything before it (zero when
the writer had ``rdbchecksum no``).

The data is read whole into memory; every read is checked against its end,
and every count of elements against the bytes left, so a lying length fails
at once instead of allocating.  Anything that is not a well-formed file
raises :class:`RdbFileError` naming the byte offset where reading stopped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from anycrc import Model
from linechat.services.redis.rdb import RDB_VERSION, T_HASH_ZIPMAP, BadPayloadError, Reader, load_value

__all__ = ["RDB_MAGIC", "RdbFileError", "RdbKey", "RdbReader"]

RDB_MAGIC = b"REDIS"

# Record opcodes (rdb.h).
OP_FUNCTION2, OP_FUNCTION, OP_MODULE_AUX, OP_IDLE, OP_FREQ = 0xF5, 0xF6, 0xF7, 0xF8, 0xF9
OP_AUX, OP_RESIZEDB, OP_EXPIRETIME_MS, OP_EXPIRETIME, OP_SELECTDB, OP_EOF = 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF
#: Value types :func:`load_value` reads (0-5 and 9-19 but zipmap, 9, which no version >= 4 writes).
VALUE_TYPES = frozenset((0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19))
_MODULE_TYPES = frozenset((6, 7))
#: The first version with a checksum after the end byte.
_CHECKSUM_VERSION = 5

_CRC = Model("CRC64-REDIS")
#: The checksum is brought up to date in steps of at least this many bytes (one C call each).
_CRC_CHUNK = 1 << 16


class RdbFileError(ValueError):
    """The bytes are not a loadable RDB file; the text says why and names the offset."""


@dataclass(slots=True)
class RdbKey:
    """One key of the file, with its database, deadline and idle time (None when the file has none)."""

    db: int
    key: bytes
    value: Any
    expire_ms: int | None
    idle: int | None


class _FileReader(Reader):
    what = "file"


class RdbReader:
    """Reads the records of an RDB file from *start* in *data*: :meth:`records` yields the keys one at a time.

    *databases* is the number of databases the server has: a file that selects
    one beyond them is refused, as redis-server refuses it.  When :meth:`records`
    is exhausted, :attr:`end` is the offset just past the checksum (where the
    commands of an append-only file with an RDB preamble begin).
    """

    def __init__(self, data: bytes, start: int = 0, databases: int = 16) -> None:
        self.data = data
        self.start = start
        self.databases = databases
        self.version = 0
        self.aux: dict[bytes, bytes] = {}
        self.end = -1
        self._r = _FileReader(data, start)
        self._crc = 0
        self._crc_pos = start

    @property
    def pos(self) -> int:
        """The offset reached so far."""
        return self._r.pos

    def _fail(self, reason: str, at: int | None = None) -> RdbFileError:
        return RdbFileError(f"bad RDB file: {reason} at offset {self._r.pos if at is None else at}")

    def _header(self) -> None:
        start = self.start
        if self.data[start : start + 5] != RDB_MAGIC:
            raise self._fail("no REDIS magic", start)
        digits = self.data[start + 5 : start + 9]
        if len(digits) != 4 or not digits.isdigit():
            raise self._fail("no four-digit version after the magic", start + 5)
        self.version = int(digits)
        if not 1 <= self.version <= RDB_VERSION:
            raise self._fail(
                f"RDB format version {self.version} is not one this server reads (1 to {RDB_VERSION})", start + 5
            )
        self._r.pos = start + 9

    def _checksum(self) -> None:
        """After the end byte: the CRC-64 of everything from the magic up to it (0: not computed by the writer)."""
        r = self._r
        if self.version < _CHECKSUM_VERSION:
            self.end = r.pos
            return
        self._update_crc()
        stored_at = r.pos
        stored = int.from_bytes(r.take(8), "little")
        if stored and stored != self._crc:
            raise self._fail(f"wrong checksum (stored {stored:016x}, computed {self._crc:016x})", stored_at)
        self.end = r.pos

    def _update_crc(self) -> None:
        pos = self._r.pos
        if pos > self._crc_pos:
            self._crc = int(_CRC.calc(memoryview(self.data)[self._crc_pos : pos], init=self._crc))
            self._crc_pos = pos

    def records(self) -> Iterator[RdbKey]:
        """Yield every key of the file in order; RdbFileError (naming the offset) on anything malformed."""
        r = self._r
        record = self.start
        try:
            self._header()
            db = 0
            expire_ms: int | None = None
            idle: int | None = None
            while True:
                record = r.pos
                op = r.byte()
                if op in VALUE_TYPES:
                    key = r.string()
                    value = load_value(r, op)
                    if r.pos - self._crc_pos >= _CRC_CHUNK:
                        self._update_crc()
                    yield RdbKey(db, key, value, expire_ms, idle)
                    expire_ms = idle = None
                elif op == OP_EOF:
                    self._checksum()
                    return
                elif op == OP_SELECTDB:
                    db = r.len()
                    if db >= self.databases:
                        raise self._fail(f"database {db} selected, but this server has {self.databases}", record)
                elif op == OP_EXPIRETIME_MS:
                    expire_ms = int(struct.unpack("<q", r.take(8))[0])
                elif op == OP_EXPIRETIME:
                    expire_ms = int(struct.unpack("<i", r.take(4))[0]) * 1000
                elif op == OP_RESIZEDB:
                    r.len(), r.len()  # sizes of the next database's tables: a hint
                elif op == OP_AUX:
                    name = r.string()
                    self.aux[name] = r.string()
                elif op == OP_IDLE:
                    idle = r.len()
                elif op == OP_FREQ:
                    r.byte()  # an LFU counter: this server keeps no LFU
                elif op == OP_MODULE_AUX:
                    raise self._fail("module data (a module's auxiliary record): modules are not supported", record)
                elif op in (OP_FUNCTION, OP_FUNCTION2):
                    raise self._fail("function libraries (FUNCTION LOAD): functions are not supported", record)
                elif op == T_HASH_ZIPMAP:
                    raise self._fail("a zipmap hash (type 9, from redis-server 2.4 and older) is not read", record)
                elif op in _MODULE_TYPES:
                    raise self._fail(f"a value of a module's type (type {op}): modules are not supported", record)
                else:
                    raise self._fail(f"unknown record or value type {op} (0x{op:02x})", record)
        except BadPayloadError as exc:
            raise self._in_record(str(exc), record) from None
        except (IndexError, ValueError, struct.error, OverflowError, RecursionError) as exc:
            if isinstance(exc, RdbFileError):
                raise
            raise self._in_record(f"malformed value: {exc}", record) from None

    def _in_record(self, reason: str, record: int) -> RdbFileError:
        return RdbFileError(f"bad RDB file: {reason} at offset {self._r.pos} (in the record at offset {record})")
