"""Bitmaps, HyperLogLogs and geo sets in memory: AOF replay, strings changed in place, hostile sizes."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.services.redis.geo import geo_decode, geo_distance, geo_encode
from linechat.services.redis.hyperloglog import hll_count, register_max
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies


def talk(client: MemoryClient, data: bytes) -> list[bytes]:
    client.send(data)
    return split_replies(client.read())


WRITES = (
    cmd("SETBIT", "b", "100", "1")
    + cmd("BITFIELD", "b", "SET", "u8", "#3", "200", "INCRBY", "i5", "40", "7")
    + cmd("SET", "s1", "foo")
    + cmd("BITOP", "XOR", "x", "s1", "b")
    + cmd("PFADD", "h", *(f"e{i}" for i in range(500)))
    + cmd("PFMERGE", "hm", "h")
    + cmd("PFCOUNT", "hm")
    + cmd("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
    + cmd("GEORADIUS", "g", "15", "37", "200", "km", "STOREDIST", "near")
    + cmd("GEOSEARCHSTORE", "box", "g", "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km")
)
CHECKS = (
    cmd("GET", "b")
    + cmd("GET", "x")
    + cmd("PFCOUNT", "h")
    + cmd("GET", "hm")
    + cmd("ZRANGE", "g", "0", "-1", "WITHSCORES")
    + cmd("ZRANGE", "near", "0", "-1", "WITHSCORES")
    + cmd("ZRANGE", "box", "0", "-1", "WITHSCORES")
)


def test_aof_replays_bits_hll_and_geo(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        client = h.connect()
        client.send(WRITES)
        client.read()
        before = talk(client, CHECKS)
    assert 490 <= int(before[2][1:]) <= 510
    assert before[3].split(b"\r\n")[1].startswith(b"HYLL\x01") and len(before[3]) < 3000  # 500 elements: sparse
    assert before[5].startswith(b"*4\r\n$7\r\nCatania\r\n$18\r\n56.4412") and b"Palermo\r\n$18\r\n190.4424" in before[5]
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert talk(h.connect(), CHECKS) == before


def test_setbit_grows_the_string_in_place() -> None:
    """After the first bit command the stored value is one bytearray that later SETBITs extend, not copy."""
    with ServiceHarness(RedisService) as h:
        client = h.connect()
        talk(client, cmd("SET", "k", "abc") + cmd("SETBIT", "k", "0", "1"))
        first = h.service.dbs[0].data[b"k"]
        assert isinstance(first, bytearray)
        talk(client, cmd("SETBIT", "k", "80000", "1") + cmd("SETBIT", "k", "5", "1"))
        assert h.service.dbs[0].data[b"k"] is first
        assert len(first) == 10001
        replies = talk(client, cmd("GETRANGE", "k", "0", "2") + cmd("TYPE", "k") + cmd("OBJECT", "ENCODING", "k"))
        assert replies == [b"$3\r\n\xe5bc\r\n", b"+string\r\n", b"$3\r\nraw\r\n"]
        usage = talk(client, cmd("MEMORY", "USAGE", "k"))[0]
        assert usage.startswith(b":") and int(usage[1:]) > 10000


def test_copy_of_a_bitmap_is_independent() -> None:
    with ServiceHarness(RedisService) as h:
        client = h.connect()
        talk(client, cmd("SETBIT", "a", "7", "1") + cmd("COPY", "a", "b") + cmd("SETBIT", "a", "6", "1"))
        assert talk(client, cmd("GET", "a") + cmd("GET", "b")) == [b"$1\r\n\x03\r\n", b"$1\r\n\x01\r\n"]


def test_hostile_offsets_are_refused_without_allocating() -> None:
    """Offsets past 512 MB are refused; the largest one accepted by the parser is not tried on a shared host."""
    with ServiceHarness(RedisService) as h:
        client = h.connect()
        replies = talk(
            client,
            cmd("SETBIT", "k", str(1 << 32), "1")
            + cmd("BITFIELD", "k", "SET", "u8", f"#{1 << 29}", "1")
            + cmd("BITFIELD", "k", "SET", "i64", "-1", "1")
            + cmd("EXISTS", "k")
            + cmd("PING"),
        )
        assert replies == [
            b"-ERR bit offset is not an integer or out of range\r\n",
            b"-ERR bit offset is not an integer or out of range\r\n",
            b"-ERR bit offset is not an integer or out of range\r\n",
            b":0\r\n",
            b"+PONG\r\n",
        ]


def test_geohash_round_trip_stays_in_its_cell() -> None:
    """Decoding a score gives the centre of the cell, which encodes back to the same score."""
    for lon, lat in [(13.361389, 38.115556), (-122.27652, 37.805186), (179.999, -85.05), (0.0, 0.0)]:
        score = geo_encode(lon, lat)
        assert score < 1 << 52
        centre = geo_decode(score)
        assert geo_encode(*centre) == score
        assert geo_distance(lon, lat, *centre) < 1.0  # cells are well under a meter across at 26 bits


def test_hll_estimate_of_an_empty_and_a_full_register_set() -> None:
    assert hll_count(bytes(16384)) == 0
    assert hll_count(bytes([1]) * 16384) > 10000


def _registers(seed: int, top: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(top + 1) for _ in range(16384))


# Whole register sets (too long for a list strategy): drawn from a seed, values up to 0, 1, 32 or 63.
REGISTER_SETS = st.builds(_registers, st.integers(0, 2**32), st.sampled_from([0, 1, 32, 63]))


@given(a=REGISTER_SETS, b=REGISTER_SETS)
def test_register_max_is_the_elementwise_maximum(a: bytes, b: bytes) -> None:
    assert register_max(a, b) == bytes(map(max, a, b))
