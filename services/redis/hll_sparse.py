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


def _locate(data: bytearray, index: int) -> tuple[int, int, int] | None:
    """(previous opcode or -1, opcode, its first register) for the opcode covering register *index*.

    None if the opcodes end first or an XZERO is cut short.  Like
    redis-server, only the opcodes up to *index* are read, so a corrupt tail
    goes unnoticed here.  Runs of one-byte opcodes are summed in C and
    halved down to a few bytes: a few dozen Python steps per lookup.
    """
    pos, first, prev = _HEADER, 0, -1
    end = len(data)
    search = _XZERO.search
    while True:
        found = search(data, pos, end)
        stop = end if found is None else found.start()
        if stop > pos:
            # Halve the run, summing only the half on the left: about its length in bytes
            # summed in all, whether the register is in this run or past it.
            spans = data[pos:stop].translate(_SPAN)
            want = index - first
            lo, hi = 0, len(spans)
            while hi - lo > 16:
                mid = (lo + hi) >> 1
                part = sum(spans[lo:mid])
                if part > want:
                    hi = mid
                else:
                    want -= part
                    lo = mid
            while lo < hi:
                if spans[lo] > want:
                    at = pos + lo
                    return (at - 1 if at > pos else prev), at, index - want
                want -= spans[lo]
                lo += 1
            first = index - want
            prev = stop - 1
        if found is None or stop + 1 >= end:
            return None
        span = (((data[stop] & 63) << 8) | data[stop + 1]) + 1
        if first + span > index:
            return prev, stop, first
        first += span
        prev = stop
        pos = stop + 2


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
