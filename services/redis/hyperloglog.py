"""HyperLogLog: PFADD, PFCOUNT, PFMERGE (Redis's hyperloglog.c), counts identical to redis-server's.

The value is a string in Redis's own ``HYLL`` format, so GET, DUMP-style
copies and SET of a value taken from redis-server work both ways:

* a 16-byte header: ``HYLL``, the encoding (0 dense, 1 sparse), three zero
  bytes and the cached cardinality (8 bytes, little endian; the top bit of
  the last byte set means "not cached");
* then 16384 registers of 6 bits, packed little endian (register ``i`` at
  bit ``6 * i``) in the dense encoding, or run-length opcodes in the sparse one.

Both encodings are written as redis-server 7.0 writes them, byte for byte:
a new key starts sparse and is updated in place (``hll_sparse``), and turns
dense when a split would take it past ``hll-sparse-max-bytes`` or a
register passes 32; PFMERGE writes dense if an input is dense, else raises
the destination's registers one by one in the sparse encoding.  A
conversion keeps the header, cached count and its "stale" bit included.
Elements are hashed with MurmurHash64A (seed ``0xadc83b19``):
the low 14 bits pick the register, the run of zeros after them (plus one)
is the register's candidate value.  The count is Otmar Ertl's improved
estimator that Redis 7.0 uses, computed in the same double arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from linechat.services.redis import hll_sparse
from linechat.services.redis.base import WRONGTYPE, CommandContext
from linechat.services.redis.resp import ONE, ZERO, RespError, integer
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["HyperLogLogCommands", "hll_count", "murmurhash64a", "register_max"]

_P = 14
REGISTERS = 1 << _P
_Q = 64 - _P
_HEADER = 16
DENSE_SIZE = _HEADER + REGISTERS * 6 // 8
_SEED = 0xADC83B19
_M = 0xC6A4A7935BD1E995
_MASK64 = 0xFFFFFFFFFFFFFFFF
_ALPHA_INF = 0.721347520444481703680  # 1 / (2 ln 2)
_INVALID_CACHE = 0x80

NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."
CORRUPT = "INVALIDOBJ Corrupted HLL object detected"


def murmurhash64a(data: bytes, seed: int = _SEED) -> int:
    """Austin Appleby's 64-bit MurmurHash2 (MurmurHash64A), as Redis hashes HyperLogLog elements."""
    length = len(data)
    h = (seed ^ (length * _M)) & _MASK64
    whole = length - (length & 7)
    for i in range(0, whole, 8):
        k = int.from_bytes(data[i : i + 8], "little")
        k = (k * _M) & _MASK64
        k ^= k >> 47
        k = (k * _M) & _MASK64
        h ^= k
        h = (h * _M) & _MASK64
    if length & 7:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * _M) & _MASK64
    h ^= h >> 47
    h = (h * _M) & _MASK64
    h ^= h >> 47
    return h


def _position(element: bytes) -> tuple[int, int]:
    """(register index, value) of an element: the low bits pick the register, the zero run sets the value."""
    h = murmurhash64a(element)
    index = h & (REGISTERS - 1)
    rest = (h >> _P) | (1 << _Q)  # a set bit past the end bounds the run
    return index, (rest & -rest).bit_length()


def _dense_get(data: bytes | bytearray, index: int) -> int:
    pos = _HEADER * 8 + index * 6
    byte, shift = pos >> 3, pos & 7
    low = data[byte] >> shift
    high = data[byte + 1] << (8 - shift) if shift > 2 else 0
    return (low | high) & 63


def _dense_set(data: bytearray, index: int, value: int) -> None:
    pos = _HEADER * 8 + index * 6
    byte, shift = pos >> 3, pos & 7
    data[byte] = (data[byte] & ~(63 << shift) & 0xFF) | ((value << shift) & 0xFF)
    if shift > 2:
        data[byte + 1] = (data[byte + 1] & ~(63 >> (8 - shift)) & 0xFF) | (value >> (8 - shift))


def _table(f: Callable[[int], int]) -> bytes:
    return bytes(f(v) & 0xFF for v in range(256))


_LOW6, _HIGH2, _LOW4_UP2 = _table(lambda v: v & 63), _table(lambda v: v >> 6), _table(lambda v: (v & 15) << 2)
_HIGH4, _LOW2_UP4, _HIGH6 = _table(lambda v: v >> 4), _table(lambda v: (v & 3) << 4), _table(lambda v: v >> 2)
_R1_LOW, _R1_HIGH, _R2_LOW = _table(lambda v: (v & 3) << 6), _table(lambda v: v >> 2), _table(lambda v: (v & 15) << 4)
_R2_HIGH, _R3_UP = _table(lambda v: v >> 4), _table(lambda v: v << 2)


def _or(a: bytes, b: bytes) -> bytes:
    """Byte-wise OR of two strings of the same length (their bits never overlap here)."""
    return (int.from_bytes(a, "big") | int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _unpack_dense(data: bytes | bytearray) -> bytearray:
    """The 16384 registers of a dense value, one byte each."""
    # Three bytes hold four registers exactly; each register column is cut out with
    # byte translations of the strided byte columns (C speed, no loop per register).
    body = bytes(data[_HEADER:DENSE_SIZE])
    b0, b1, b2 = body[0::3], body[1::3], body[2::3]
    out = bytearray(REGISTERS)
    out[0::4] = b0.translate(_LOW6)
    out[1::4] = _or(b0.translate(_HIGH2), b1.translate(_LOW4_UP2))
    out[2::4] = _or(b1.translate(_HIGH4), b2.translate(_LOW2_UP4))
    out[3::4] = b2.translate(_HIGH6)
    return out


def _pack_dense(registers: bytes | bytearray) -> bytearray:
    """A dense HYLL value (cache marked invalid) holding *registers* (each below 64)."""
    r0, r1, r2, r3 = (bytes(registers[i::4]) for i in range(4))
    body = bytearray(REGISTERS * 6 // 8)
    body[0::3] = _or(r0, r1.translate(_R1_LOW))
    body[1::3] = _or(r1.translate(_R1_HIGH), r2.translate(_R2_LOW))
    body[2::3] = _or(r2.translate(_R2_HIGH), r3.translate(_R3_UP))
    return bytearray(b"HYLL\0\0\0\0\0\0\0\0\0\0\0" + bytes([_INVALID_CACHE])) + body


def _to_dense(value: bytes | bytearray, registers: bytes | bytearray) -> bytearray:
    """A dense value holding *registers*, with *value*'s header (cached count included), as a conversion keeps it."""
    data = _pack_dense(registers)
    data[5:_HEADER] = value[5:_HEADER]
    return data


_HIGH_BITS = int.from_bytes(b"\x80" * REGISTERS, "big")


def register_max(a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    """The register-wise maximum of two register sets (values below 64), with whole-number arithmetic.

    ``(a | 0x80) - b`` never borrows across bytes when both are below 64, and
    its high bit says where ``a >= b``; that bit spread over the byte picks
    ``a`` or ``b`` (a loop per register would take a millisecond per key).
    """
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    pick_a = (((x | _HIGH_BITS) - y) & _HIGH_BITS) >> 7
    mask = pick_a * 0xFF
    return bytearray(((x & mask) | (y & ~mask)).to_bytes(REGISTERS, "big"))


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if previous == z:
            return z / 3


def hll_count(registers: bytes | bytearray) -> int:
    """The cardinality estimate of 16384 registers (one byte each), as Redis 7.0 computes it."""
    histogram = [registers.count(v) for v in range(_Q + 2)]
    m = float(REGISTERS)
    z = m * _tau((m - histogram[_Q + 1]) / m)
    for j in range(_Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    estimate = _ALPHA_INF * m * m / z
    whole = math.floor(estimate)  # llroundl: halves away from zero
    return int(whole + 1 if estimate - whole >= 0.5 else whole)


class HyperLogLogCommands(CommandContext):
    """The HyperLogLog commands."""

    def _hll(self, key: bytes) -> bytes | bytearray | None:
        """The HYLL string at *key* (None if missing); WRONGTYPE for anything else."""
        value = self.db.get(key)
        if value is None:
            return None
        if type(value) is not bytes and type(value) is not bytearray:
            raise RespError(WRONGTYPE)
        if len(value) < _HEADER or value[:4] != b"HYLL" or value[4] > 1 or (value[4] == 0 and len(value) != DENSE_SIZE):
            raise RespError(NOT_HLL)
        return value

    @staticmethod
    def _registers(value: bytes | bytearray) -> bytearray:
        if value[4] == 0:
            return _unpack_dense(value)
        registers = hll_sparse.unpack(value)
        if registers is None:
            raise RespError(CORRUPT)
        return registers

    @redis_command(
        "PFADD", arity=-2, flags="write denyoom fast", keys=(1, 1, 1), key_flags="RW insert", group="hyperloglog"
    )
    def cmd_pfadd(self, key: bytes, *elements: bytes) -> bytes:
        """Add elements to a HyperLogLog; 1 if its estimate may have changed (or it was created)."""
        value = self._hll(key)
        changed = value is None
        if value is None:
            data = bytearray(hll_sparse.EMPTY)  # as redis-server: a new key starts sparse
            self.db.set(key, data)
        elif not elements:
            return ZERO  # nothing added, nothing read (a corrupt value goes unnoticed, as in redis-server)
        else:
            # Changed in place from now on: a bytearray, with the header's cached count kept.
            data = value if type(value) is bytearray else bytearray(value)
            if data is not value:
                self.db.set(key, data, keep_ttl=True)
        todo: tuple[bytes, ...] = elements
        if data[4] == 1:
            limit = self.server.settings.hll_sparse_max_bytes
            for i, element in enumerate(elements):
                index, count = _position(element)
                outcome = hll_sparse.set_register(data, index, count, limit)
                if outcome == hll_sparse.CORRUPT:
                    if changed:  # the registers set so far stay set, with the cached count stale
                        data[15] |= _INVALID_CACHE
                    raise RespError(CORRUPT)
                if outcome == hll_sparse.PROMOTE:  # too long, or a value past 32: dense from here on
                    registers = hll_sparse.unpack(data)
                    if registers is None:
                        raise RespError(CORRUPT)
                    data = _to_dense(data, registers)
                    _dense_set(data, index, count)
                    self.db.set(key, data, keep_ttl=True)
                    changed = True
                    todo = elements[i + 1 :]
                    break
                changed = changed or outcome == 1
            else:
                todo = ()
        for element in todo:
            index, count = _position(element)
            if _dense_get(data, index) < count:
                _dense_set(data, index, count)
                changed = True
        if changed:
            data[15] |= _INVALID_CACHE
            self._propagate()
        return ONE if changed else ZERO

    @redis_command(
        "PFCOUNT",
        arity=-2,
        flags="readonly",
        keys=[
            KeySpec(
                ("RW", "access"),
                1,
                lastkey=-1,
                notes="RW because it may change the internal representation of the key, and propagate to replicas",
            )
        ],
        group="hyperloglog",
    )
    def cmd_pfcount(self, key: bytes, *keys: bytes) -> bytes:
        """The estimated number of distinct elements added to one HyperLogLog, or to the union of several."""
        if keys:
            merged = bytearray(REGISTERS)
            for name in (key, *keys):
                value = self._hll(name)
                if value is not None:
                    merged = register_max(merged, self._registers(value))
            return integer(hll_count(merged))
        value = self._hll(key)
        if value is None:
            return ZERO
        if not value[15] & _INVALID_CACHE:
            return integer(int.from_bytes(value[8:16], "little"))
        count = hll_count(self._registers(value))
        # Cache the count in the header, as Redis does; recorded as the write of those 8 bytes
        # (the replay skips read-only commands such as PFCOUNT).
        data = value if type(value) is bytearray else bytearray(value)
        cached = count.to_bytes(8, "little")
        data[8:16] = cached
        if data is not value:
            self.db.set(key, data, keep_ttl=True)
        self._propagate([b"SETRANGE", key, b"8", cached])
        return integer(count)

    @redis_command(
        "PFMERGE",
        arity=-2,
        flags="write denyoom",
        keys=[KeySpec(("RW", "access", "insert"), 1), KeySpec(("RO", "access"), 2, lastkey=-1)],
        legacy_keys=(1, -1, 1),
        group="hyperloglog",
    )
    def cmd_pfmerge(self, dest: bytes, *sources: bytes) -> bytes:
        """Merge HyperLogLogs into the destination (itself included); sparse unless a source is dense or it outgrows."""
        merged = bytearray(REGISTERS)
        dense = False
        for name in (dest, *sources):
            value = self._hll(name)
            if value is not None:
                dense = dense or value[4] == 0
                merged = register_max(merged, self._registers(value))
        old = self.db.get(dest)
        # As redis-server: the destination's registers are raised in place, so its header (the
        # cached count, marked stale below) stays; a missing one starts as an empty sparse value.
        result = bytearray(hll_sparse.EMPTY if old is None else old)
        limit = self.server.settings.hll_sparse_max_bytes
        if dense or result[4] == 0 or not hll_sparse.merge_registers(result, merged, limit):
            result = _to_dense(result, merged)
        result[15] |= _INVALID_CACHE
        self.db.set(dest, result, keep_ttl=True)
        self._propagate()
        return b"+OK\r\n"
