"""The sparse HyperLogLog encoding in memory: the same registers as the dense one; hostile values stay safe."""

from __future__ import annotations

import re

from hll_craft import element_for
from hypothesis import given, settings
from hypothesis import strategies as st
from linechat.services.redis import RedisService, hll_sparse
from linechat.services.redis.hyperloglog import _unpack_dense, hll_count
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies

REGISTERS = 16384


def talk(client: MemoryClient, data: bytes) -> list[bytes]:
    client.send(data)
    return split_replies(client.read())


SETS = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 50), st.integers(0, REGISTERS - 1)),
        st.one_of(st.integers(1, 5), st.integers(1, 32)),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(sets=SETS, limit=st.sampled_from([0, 30, 300, 3000, 40000]))
def test_sparse_holds_the_same_registers_as_dense(sets: list[tuple[int, int]], limit: int) -> None:
    """Registers set one by one into a sparse value read back as the register-wise maximum, until it must go dense."""
    data = bytearray(hll_sparse.EMPTY)
    expected = bytearray(REGISTERS)
    for index, count in sets:
        before = bytes(data)
        outcome = hll_sparse.set_register(data, index, count, limit)
        if outcome == hll_sparse.PROMOTE:
            assert bytes(data) == before  # nothing half-done: the caller converts this value
            assert len(data) + 3 > limit  # a split adds one to three bytes
            break
        assert outcome == (1 if count > expected[index] else 0)
        expected[index] = max(expected[index], count)
        assert hll_sparse.covered(data) == REGISTERS
        assert len(data) <= max(limit, len(hll_sparse.EMPTY))
        assert hll_sparse.unpack(data) == expected
    # No two neighbouring VALs of one value that would fit one opcode survive next to a change...
    # but a leftover elsewhere is allowed (redis-server only looks near the change), so only count.
    registers = hll_sparse.unpack(data)
    assert registers is not None and hll_count(registers) == hll_count(expected)


def naive_merge(data: bytearray, registers: bytes, limit: int) -> bool:
    """PFMERGE's definition: set_register for every non-zero register, lowest first."""
    for index, count in enumerate(registers):
        if count and hll_sparse.set_register(data, index, count, limit) == hll_sparse.PROMOTE:
            return False
    return True


@settings(max_examples=100, deadline=None)
@given(start=SETS, merged=SETS, limit=st.sampled_from([40, 300, 3000, 40000]))
def test_merge_walk_is_the_naive_one(start: list[tuple[int, int]], merged: list[tuple[int, int]], limit: int) -> None:
    """merge_registers resumes its walk between registers; the bytes equal setting each register from scratch."""
    dest = bytearray(hll_sparse.EMPTY)
    for index, count in start:
        hll_sparse.set_register(dest, index, count, 1 << 20)
    registers = bytearray(hll_sparse.unpack(dest) or b"")
    for index, count in merged:
        registers[index] = max(registers[index], count)
    fast, slow = bytearray(dest), bytearray(dest)
    stayed_sparse = hll_sparse.merge_registers(fast, registers, limit)
    assert stayed_sparse == naive_merge(slow, bytes(registers), limit)
    if stayed_sparse:
        assert fast == slow
        assert hll_sparse.unpack(fast) == registers


def test_commands_keep_small_values_sparse_and_change_them_in_place() -> None:
    """PFADD creates an 18-byte value and grows that same bytearray; past 32 it is dense, counts unchanged."""
    with ServiceHarness(RedisService) as h:
        client = h.connect()
        assert talk(client, cmd("PFADD", "h")) == [b":1\r\n"]
        stored = h.service.dbs[0].data[b"h"]
        assert stored == bytearray(b"HYLL\x01" + bytes(10) + b"\x80\x7f\xff")
        talk(client, cmd("PFADD", "h", *(element_for(i * 97, 1 + i % 32) for i in range(100))))
        assert h.service.dbs[0].data[b"h"] is stored and stored[4] == 1
        sparse_count = talk(client, cmd("PFCOUNT", "h"))
        registers = hll_sparse.unpack(stored)
        assert registers is not None and sum(1 for r in registers if r) == 100
        talk(client, cmd("PFADD", "h", element_for(5, 45)))
        dense = h.service.dbs[0].data[b"h"]
        assert dense[4] == 0 and len(dense) == 12304
        assert dense[8:15] == stored[8:15]  # the cached count carried over, marked stale
        assert dense[15] & 0x80
        registers[5] = 45
        assert _unpack_dense(dense) == registers
        assert int(sparse_count[0][1:]) <= int(talk(client, cmd("PFCOUNT", "h"))[0][1:])


def test_sparse_limit_setting_and_config() -> None:
    """hll_sparse_max_bytes in the settings is CONFIG GET's hll-sparse-max-bytes, and CONFIG SET changes it."""
    with ServiceHarness(RedisService, hll_sparse_max_bytes=0) as h:
        client = h.connect()
        assert talk(client, cmd("CONFIG", "GET", "hll-sparse-max-bytes")) == [
            b"*2\r\n$20\r\nhll-sparse-max-bytes\r\n$1\r\n0\r\n"
        ]
        talk(client, cmd("PFADD", "a", "x"))
        assert len(h.service.dbs[0].data[b"a"]) == 12304  # the first split passes 0 bytes
        assert talk(client, cmd("CONFIG", "SET", "hll-sparse-max-bytes", "2kb")) == [b"+OK\r\n"]
        assert h.service.settings.hll_sparse_max_bytes == 2048
        talk(client, cmd("PFADD", "b", "x"))
        assert len(h.service.dbs[0].data[b"b"]) == 20


HEAD = b"HYLL\x01" + bytes(10) + b"\x80"  # cached count not valid: PFCOUNT reads the registers


def test_hostile_sparse_values() -> None:
    """Huge, cut or overflowing sparse values: INVALIDOBJ where they are read, no blow-up, the server carries on."""
    huge = HEAD + bytes(8 * 1024 * 1024)  # eight million ZERO opcodes: 512 million registers
    xzeros = HEAD + b"\x7f\xff" * 100_000
    cut = HEAD + b"\x7f"
    past = HEAD + b"\xff" * 5000  # VALs of four at 32: 20000 registers
    with ServiceHarness(RedisService) as h:
        client = h.connect()
        for name, value in [(b"huge", huge), (b"xz", xzeros), (b"cut", cut), (b"past", past)]:
            assert talk(client, cmd("SET", name, value)) == [b"+OK\r\n"]
            for command in (
                cmd("PFCOUNT", name),
                cmd("PFCOUNT", name, "other"),
                cmd("PFMERGE", "dest", name),
                cmd("PFADD", name, element_for(3, 40)),  # goes dense: every register read
            ):
                reply = talk(client, command)
                assert reply == [b"-INVALIDOBJ Corrupted HLL object detected\r\n"], (name, command, reply)
            # Setting one register reads the opcodes up to it only, as redis-server does: the
            # overflowing value already holds 32 there; the others never reach it.
            expected = b":0\r\n" if name == b"past" else b"-INVALIDOBJ Corrupted HLL object detected\r\n"
            assert talk(client, cmd("PFADD", name, element_for(16383, 1))) == [expected]
            assert h.service.dbs[0].data[name] == value  # refused untouched
        # A value whose tail is corrupt is still changed before the tail, as in redis-server;
        # counting it then fails.
        talk(client, cmd("SET", "tail", HEAD + b"\x7f\xff\x00"))
        assert talk(client, cmd("PFADD", "tail", element_for(10, 3))) == [b":1\r\n"]
        assert talk(client, cmd("PFCOUNT", "tail"))[0].startswith(b"-INVALIDOBJ")
        assert talk(client, cmd("PING")) == [b"+PONG\r\n"]


def test_covered_is_bounded() -> None:
    """The check of a sparse value refuses anything longer than the longest valid one before reading it."""
    assert hll_sparse.covered(HEAD + b"\x40\x00" * REGISTERS) == REGISTERS  # longest valid: 32768 bytes
    assert hll_sparse.covered(HEAD + b"\x40\x00" * REGISTERS + b"\x00") == -1
    assert hll_sparse.covered(HEAD + b"\x7f\xff" * 3 + b"\x00" * 30000) == -1
    assert hll_sparse.covered(HEAD) == 0
    assert re.fullmatch(rb"HYLL\x01\x00+\x7f\xff", hll_sparse.EMPTY)


def plain_walk(data: bytearray, index: int) -> tuple[int, int, int] | None:
    """The opcode covering *index* found one opcode at a time: (previous, position, first register)."""
    pos, first, prev = 16, 0, -1
    while pos < len(data):
        op = data[pos]
        if 0x40 <= op < 0x80:
            if pos + 1 >= len(data):
                return None
            span, size = (((op & 63) << 8) | data[pos + 1]) + 1, 2
        else:
            span, size = ((op & 3) + 1 if op & 0x80 else op + 1), 1
        if first + span > index:
            return prev, pos, first
        first, prev, pos = first + span, pos, pos + size
    return None


OPCODE_BYTES = st.sampled_from([0x00, 0x01, 0x3F, 0x40, 0x41, 0x5A, 0x7F, 0x80, 0x83, 0xBE, 0xFF])


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=700), st.lists(OPCODE_BYTES, max_size=700).map(bytes)),
    indexes=st.lists(st.integers(0, 40000), min_size=1, max_size=8),
)
def test_locate_matches_a_plain_walk(body: bytes, indexes: list[int]) -> None:
    """The C-summed lookup finds the same opcode as walking them one by one, on any bytes, valid or not."""
    data = bytearray(HEAD + body)
    for index in indexes:
        assert hll_sparse._locate(data, index) == plain_walk(data, index)
