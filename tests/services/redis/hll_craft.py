"""Elements that land on a chosen HyperLogLog register with a chosen value, by inverting MurmurHash64A.

For an 8-byte element every step of MurmurHash64A can be undone (odd
multipliers have inverses modulo 2**64, and a xor-shift by 47 is its own
inverse), so any hash, hence any (register, value), has an element: values
up to 51 that random elements would need billions of tries to reach.
"""

from __future__ import annotations

from linechat.services.redis.hyperloglog import murmurhash64a

_M = 0xC6A4A7935BD1E995
_M_INVERSE = pow(_M, -1, 1 << 64)
_MASK = (1 << 64) - 1
_SEED = 0xADC83B19


def _unshift(x: int) -> int:
    return x ^ (x >> 47)


def element_with_hash(target: int) -> bytes:
    """The 8-byte element whose MurmurHash64A (Redis's seed) is *target*."""
    h = _unshift((_unshift(target) * _M_INVERSE) & _MASK)  # before the final mix
    start = (_SEED ^ (8 * _M)) & _MASK
    k = ((h * _M_INVERSE) & _MASK) ^ start  # the mixed block
    k = _unshift((k * _M_INVERSE) & _MASK)
    element = ((k * _M_INVERSE) & _MASK).to_bytes(8, "little")
    assert murmurhash64a(element) == target
    return element


def element_for(index: int, value: int, salt: int = 0) -> bytes:
    """An element PFADD puts in register *index* (0..16383) with *value* (1..51); *salt* varies the bits above."""
    assert 0 <= index < 16384 and 1 <= value <= 51
    run = 1 << (value - 1)  # value - 1 zero bits after the register bits, then a one
    above = (salt << value) & ((1 << 50) - 1) if value < 50 else 0
    return element_with_hash(index | ((run | above) << 14) if value <= 50 else index)
