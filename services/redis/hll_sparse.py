"""The sparse HyperLogLog encoding: reading it, and updating it in place as redis-server 7.0 does.

After the 16-byte header, a sparse value is a run-length list of opcodes
covering the 16384 registers in order:

* ``ZERO`` ``00xxxxxx``: ``xxxxxx + 1`` (1..64) registers at zero;
* ``XZERO`` ``01xxxxxx yyyyyyyy``: a 14-bit count plus one (1..16384) of zeros;
* ``VAL`` ``1vvvvvxx``: ``xx + 1`` (1..4) registers at ``vvvvv + 1`` (1..32).

An empty HyperLogLog is one ``XZERO`` of 16384.  Setting one register (the
documented algorithm of Redis's ``hyperloglog.c``) finds the opcode covering
it; a ``VAL`` already as high leaves everything alone, a ``VAL`` or ``ZERO``
of one register is overwritten, any other opcode is split into at most three
(zeros or the old value before, the new ``VAL``, zeros or the old value
after).  A split that would make the value longer than
``hll-sparse-max-bytes``, or a value above 32, means the caller turns the
value dense.  Then, from the opcode before the one changed, up to five
opcodes are scanned and adjacent ``VAL`` s of the same value merged while
their run fits in one opcode.  Following these steps exactly is what makes
the bytes the same as redis-server's, merge leftovers included.

Everything here works on the bytearray stored under the key, changed in
place (slice assignment moves the tail in C).  As in redis-server, setting
a register reads the opcodes only up to it (a corrupt value is noticed when
it is counted, merged or made dense); PFMERGE's walk trusts only values
:func:`covered` has checked.
"""

from __future__ import annotations

import re
from zlib import adler32

__all__ = ["CORRUPT", "EMPTY", "PROMOTE", "covered", "merge_registers", "set_register", "unpack"]

_HEADER = 16
REGISTERS = 16384
#: The longest valid sparse value: every register its own two-byte XZERO.
_LONGEST = _HEADER + 2 * REGISTERS
_ZERO_MAX = 64
_VAL_MAX_VALUE = 32
_VAL_MAX_RUN = 4
#: An empty HyperLogLog as redis-server creates it: header (cached count 0, valid) and one XZERO of 16384.
EMPTY = b"HYLL\x01" + bytes(11) + b"\x7f\xff"
#: set_register's answer when the value must become dense first.
PROMOTE = -1
#: set_register's answer when the opcodes do not reach the register.
CORRUPT = -2

# The first byte of an XZERO is the only opcode byte in 0x40-0x7f; between two of them every
# byte is a one-byte opcode, so runs of ZERO and VAL are measured with C-speed byte operations.
_XZERO = re.compile(rb"[\x40-\x7f]")
_SPAN = bytes((b & 3) + 1 if b & 0x80 else 0 if b & 0x40 else b + 1 for b in range(256))
# For _locate: the first byte of an XZERO is the only opcode byte in 0x40-0x7f (marked 1); a
# marked byte followed by any byte is an XZERO and its second byte, read left to right.
_MARK = bytes(1 if 0x40 <= b < 0x80 else 0 for b in range(256))
_XZERO_PAIR = re.compile(rb"\x01[\x00\x01]")
_IS_SECOND = bytes(0xFF if b == 2 else 0 for b in range(256))
# Each byte's share of registers: a one-byte opcode its run; an XZERO's first byte 256 * its six
# bits + 1 (low part 1, high part the six bits); its second byte that byte (taken from the value).
_SPAN_LOW = bytes(1 if 0x40 <= b < 0x80 else (b & 3) + 1 if b & 0x80 else b + 1 for b in range(256))
_SPAN_HIGH = bytes(b & 63 if 0x40 <= b < 0x80 else 0 for b in range(256))
# Adler-32 started at 0 keeps the plain byte sum modulo 65521 in its low half: exact for up to
# 256 bytes of at most 255, and computed in C far faster than sum() over the bytes.
_BLOCK = 256
# Up to this length a plain walk of the opcodes is quicker than the sums (measured: about even at 280).
_SHORT = 200
_EXPAND = [bytes([((b >> 2) & 31) + 1]) * ((b & 3) + 1) if b & 0x80 else bytes(b + 1) for b in range(256)]


def _val(value: int, run: int) -> int:
    return 0x80 | ((value - 1) << 2) | (run - 1)


def _zeros(run: int) -> bytes:
    """The opcode for *run* zero registers: ZERO up to 64, XZERO beyond."""
    if run > _ZERO_MAX:
        return bytes((0x40 | ((run - 1) >> 8), (run - 1) & 0xFF))
    return bytes((run - 1,))


def covered(data: bytes | bytearray) -> int:
    """How many registers the opcodes of a sparse value cover; -1 if cut short or past 16384 early.

    A valid value covers exactly 16384.  Bounded work for any input: the
    length is checked first, then each XZERO (the only Python step) adds at
    least one register, so a long hostile value stops as soon as it overflows.
    """
    end = len(data)
    if end > _LONGEST:
        return -1
    pos = _HEADER
    total = 0
    search = _XZERO.search
    while True:
        found = search(data, pos)
        stop = end if found is None else found.start()
        total += sum(data[pos:stop].translate(_SPAN))
        if found is None:
            return total
        if stop + 1 >= end or total > REGISTERS:
            return -1
        total += (((data[stop] & 63) << 8) | data[stop + 1]) + 1
        pos = stop + 2


def unpack(data: bytes | bytearray) -> bytearray | None:
    """The 16384 registers (one byte each) of a sparse value; None if it is not a valid one."""
    if covered(data) != REGISTERS:
        return None
    parts: list[bytes] = []
    pos = _HEADER
    end = len(data)
    search = _XZERO.search
    while True:
        found = search(data, pos)
        stop = end if found is None else found.start()
        parts.append(b"".join(map(_EXPAND.__getitem__, data[pos:stop])))
        if found is None:
            return bytearray(b"".join(parts))
        parts.append(bytes((((data[stop] & 63) << 8) | data[stop + 1]) + 1))
        pos = stop + 2


def _walk(data: bytearray, index: int) -> tuple[int, int, int] | None:
    """_locate for a short value: one opcode at a time, cheaper than setting up the C sums."""
    pos, first, prev = _HEADER, 0, -1
    end = len(data)
    while pos < end:
        op = data[pos]
        if op & 0x80:
            span, size = (op & 3) + 1, 1
        elif op & 0x40:
            if pos + 1 >= end:
                return None
            span, size = (((op & 63) << 8) | data[pos + 1]) + 1, 2
        else:
            span, size = op + 1, 1
        if first + span > index:
            return prev, pos, first
        first += span
        prev = pos
        pos += size
    return None


def _locate(data: bytearray, index: int) -> tuple[int, int, int] | None:
    """(previous opcode or -1, opcode, its first register) for the opcode covering register *index*.

    None if the opcodes end first or the XZERO there is cut short.  Like
    redis-server, only the opcodes up to *index* matter, so a corrupt tail
    goes unnoticed here.  No Python step per opcode: a regular expression
    pairs each XZERO with its second byte, byte translations give every
    byte its share of registers (low and high parts), and Adler-32 sums
    blocks of them; about twenty Python steps whatever the length.
    """
    if len(data) <= _SHORT:
        return _walk(data, index)
    body = bytes(data[_HEADER:])
    size = len(body)
    roles = _XZERO_PAIR.sub(b"\x01\x02", body.translate(_MARK))  # 0 one-byte opcode, 1 XZERO, 2 its second byte
    low: bytes | bytearray
    high: bytes | bytearray
    if roles.count(2) <= 4:  # few XZEROs (a long value): patch their second bytes one by one
        low, high = bytearray(body.translate(_SPAN_LOW)), bytearray(body.translate(_SPAN_HIGH))
        k = roles.find(2)
        while k >= 0:
            low[k], high[k] = body[k], 0
            k = roles.find(2, k + 1)
    else:  # many: pick the second bytes with whole-string integer masks
        second = int.from_bytes(roles.translate(_IS_SECOND), "little")
        spans = int.from_bytes(body.translate(_SPAN_LOW), "little") & ~second
        low = ((int.from_bytes(body, "little") & second) | spans).to_bytes(size, "little")
        high = (int.from_bytes(body.translate(_SPAN_HIGH), "little") & ~second).to_bytes(size, "little")
    low_view, high_view = memoryview(low), memoryview(high)
    want, lo = index, 0  # want: registers still to pass before reaching *index*
    while lo + _BLOCK < size:
        part = (adler32(low_view[lo : lo + _BLOCK], 0) & 0xFFFF) + (
            (adler32(high_view[lo : lo + _BLOCK], 0) & 0xFFFF) << 8
        )
        if part > want:
            break
        want -= part
        lo += _BLOCK
    hi = min(lo + _BLOCK, size)
    while hi - lo > 4:
        mid = (lo + hi) >> 1
        part = (adler32(low_view[lo:mid], 0) & 0xFFFF) + ((adler32(high_view[lo:mid], 0) & 0xFFFF) << 8)
        if part > want:
            hi = mid
        else:
            want -= part
            lo = mid
    for k in range(lo, hi):
        share = low[k] + (high[k] << 8)
        if share > want:
            if roles[k] == 2:  # inside an XZERO: it starts one byte back
                k -= 1
                want += low[k] + (high[k] << 8)
            elif roles[k] == 1 and k + 1 == size:
                return None
            prev = -1 if k == 0 else _HEADER + k - (2 if roles[k - 1] == 2 else 1)
            return prev, _HEADER + k, index - want
        want -= share
    return None


def _update(data: bytearray, prev: int, at: int, first: int, index: int, count: int, max_bytes: int) -> int:
    """Set register *index* (in the opcode at *at*, which starts at register *first*) to at least *count*.

    1 if the value changed, 0 if the register was already as high,
    PROMOTE (nothing changed) if the split would pass *max_bytes*.
    """
    op = data[at]
    if op & 0x80:
        old = ((op >> 2) & 31) + 1
        run = (op & 3) + 1
        if old >= count:
            return 0
        if run == 1:
            data[at] = _val(count, 1)
            _merge_from(data, prev)
            return 1
        size = 1
        before = bytes((_val(old, index - first),)) if index != first else b""
        last = first + run - 1
        after = bytes((_val(old, last - index),)) if index != last else b""
    else:
        if op & 0x40:
            run = (((op & 63) << 8) | data[at + 1]) + 1
            size = 2
        else:
            run = op + 1
            size = 1
            if run == 1:
                data[at] = _val(count, 1)
                _merge_from(data, prev)
                return 1
        before = _zeros(index - first) if index != first else b""
        last = first + run - 1
        after = _zeros(last - index) if index != last else b""
    replacement = before + bytes((_val(count, 1),)) + after
    grow = len(replacement) - size
    if grow > 0 and len(data) + grow > max_bytes:
        return PROMOTE
    data[at : at + size] = replacement
    _merge_from(data, prev)
    return 1


def _merge_from(data: bytearray, prev: int) -> None:
    """Scan up to five opcodes from *prev* (or the first) and join adjacent equal VALs that fit one opcode."""
    pos = prev if prev >= 0 else _HEADER
    end = len(data)
    budget = 5
    while pos < end and budget:
        budget -= 1
        op = data[pos]
        if not op & 0x80:
            pos += 2 if op & 0x40 else 1
            continue
        if pos + 1 < end:
            nxt = data[pos + 1]
            if nxt & 0x80 and (op ^ nxt) & 0x7C == 0:  # both VAL, same value
                run = (op & 3) + (nxt & 3) + 2
                if run <= _VAL_MAX_RUN:
                    data[pos : pos + 2] = bytes(((op & 0xFC) | (run - 1),))
                    end -= 1
                    continue  # the joined opcode may join the next one too
        pos += 1


def set_register(data: bytearray, index: int, count: int, max_bytes: int) -> int:
    """PFADD of one element to a sparse value: 1 changed, 0 not, PROMOTE to go dense first, CORRUPT."""
    if count > _VAL_MAX_VALUE:
        return PROMOTE
    if len(data) > _LONGEST:  # cannot be valid; refused before any walk over a huge string
        return CORRUPT
    found = _locate(data, index)
    if found is None:
        return CORRUPT
    prev, at, first = found
    return _update(data, prev, at, first, index, count, max_bytes)


def merge_registers(data: bytearray, registers: bytes | bytearray, max_bytes: int) -> bool:
    """PFMERGE into a checked sparse value: set each non-zero register, lowest first; False to go dense.

    The registers are set one by one in ascending order, as redis-server
    does (each split and merge shapes the next), so the opcode walk resumes
    from a remembered position instead of the start: opcode boundaries
    before the changed one's predecessor do not move.
    """
    starts = [_HEADER]  # opcode positions walked so far, each with its first register
    firsts = [0]
    for found in re.finditer(rb"[^\x00]", registers):
        index = found.start()
        count = registers[index]
        if count > _VAL_MAX_VALUE:
            return False
        pos, first = starts[-1], firsts[-1]
        while True:
            op = data[pos]
            if op & 0x80:
                span, size = (op & 3) + 1, 1
            elif op & 0x40:
                span, size = (((op & 63) << 8) | data[pos + 1]) + 1, 2
            else:
                span, size = op + 1, 1
            if index < first + span:
                break
            pos += size
            first += span
            starts.append(pos)
            firsts.append(first)
        prev = starts[-2] if len(starts) > 1 else -1
        if _update(data, prev, pos, first, index, count, max_bytes) == PROMOTE:
            return False
        if len(starts) > 1:  # the changed opcode's boundaries may have moved; its predecessor's did not
            del starts[-1], firsts[-1]
    return True
