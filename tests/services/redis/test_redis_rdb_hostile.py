"""RDB files and multi-part AOF directories, made by hand: encodings, choices at start, and hostile files.

Hostile files (cut anywhere, bytes flipped, a wrong checksum, unknown types,
lying lengths, manifests naming other paths) must be refused with a message
naming the file and the offset, before anything is served, and without a
crash or an allocation the file's size does not pay for.
"""

from __future__ import annotations

import random
import struct
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from linechat.services.redis import RedisService
from linechat.services.redis import service as service_module
from linechat.services.redis.aof_load import AofCorruptError
from linechat.services.redis.rdb import _len, _str, crc64, dump_value
from linechat.services.redis.rdb_file import RdbFileError, RdbReader
from linechat.services.redis.service import SYNC_LOAD_BYTES
from linechat.services.redis.stream_type import Stream
from linechat.testing import MemoryClient, ServiceHarness
from redis_wire import cmd, split_replies
from structlog.testing import capture_logs

LOADING = b"-LOADING Redis is loading the dataset in memory\r\n"
FUTURE = 4_000_000_000_000  # ms: year 2096


def talk(client: MemoryClient, *commands: tuple[str | bytes, ...]) -> list[bytes]:
    client.send(b"".join(cmd(*c) for c in commands))
    return split_replies(client.read())


def record(key: bytes, value: Any) -> bytes:
    """One key: its type byte, the key, the value (as DUMP writes them)."""
    encoded = dump_value(value)
    return encoded[:1] + _str(key) + encoded[1:]


def rdb_file(body: bytes, version: int = 10, checksum: bool = True) -> bytes:
    """A whole RDB file around *body*: magic, version, an AUX field, the end byte and the CRC-64 (or 0)."""
    data = b"REDIS%04d" % version + b"\xfa" + _str(b"redis-ver") + _str(b"7.0.15") + body + b"\xff"
    return data + (crc64(data) if checksum else 0).to_bytes(8, "little")


def sample_body() -> bytes:
    stream = Stream()
    stream.restore_node((1, 0), (b"f",), [((1, 0), [b"f", b"v"]), ((2, 5), [b"f", b"w"])], 0)
    stream.last_id = (2, 5)
    stream.entries_added = 2
    return b"".join(
        (
            b"\xfe\x00\xfb\x02\x01",
            b"\xfc" + struct.pack("<q", FUTURE) + record(b"str", b"hello"),
            record(b"int", b"-42"),
            record(b"list", deque([b"a", b"b", b"123"])),
            b"\xfd" + struct.pack("<i", 2_000_000_000) + record(b"set", {b"x", b"y"}),
            b"\xf8\x05" + record(b"hash", {b"f": b"v"}),
            b"\xf9\x07" + record(b"stream", stream),
            b"\xfe\x02" + record(b"in2", b"two"),
        )
    )


def keys_of(data: bytes, databases: int = 16) -> list[tuple[int, bytes, Any, int | None]]:
    reader = RdbReader(data, 0, databases)
    out = [(k.db, k.key, k.value, k.expire_ms) for k in reader.records()]
    assert reader.end == len(data)
    return out


# --------------------------------------------------------------------------- the format


def test_every_record_kind_is_read() -> None:
    keys = keys_of(rdb_file(sample_body()))
    assert [(db, key) for db, key, _, _ in keys] == [
        (0, b"str"),
        (0, b"int"),
        (0, b"list"),
        (0, b"set"),
        (0, b"hash"),
        (0, b"stream"),
        (2, b"in2"),
    ]
    assert keys[0][3] == FUTURE and keys[3][3] == 2_000_000_000_000 and keys[1][3] is None
    assert keys[2][2] == deque([b"a", b"b", b"123"]) and keys[3][2] == {b"x", b"y"}
    assert keys[5][2].ids == [(1, 0), (2, 5)]


def _ziplist(items: list[bytes | int]) -> bytes:
    """A ziplist (what redis-server 6 writes) of short strings and integers 0-12."""
    body = b""
    previous = 0
    for item in items:
        entry = bytes((0xF1 + item,)) if isinstance(item, int) else bytes((len(item),)) + item
        entry = bytes((previous,)) + entry
        previous = len(entry)
        body += entry
    total = 10 + len(body) + 1
    return total.to_bytes(4, "little") + (0).to_bytes(4, "little") + len(items).to_bytes(2, "little") + body + b"\xff"


def test_a_version_9_file_with_redis_6_encodings_loads() -> None:
    intset = (
        (2).to_bytes(4, "little")
        + (3).to_bytes(4, "little")
        + b"".join(n.to_bytes(2, "little", signed=True) for n in (-5, 7, 300))
    )
    body = (
        b"\xfe\x00"
        + b"\x0d" + _str(b"h") + _str(_ziplist([b"field", b"value", b"n", 3]))  # hash as a ziplist
        + b"\x0c" + _str(b"z") + _str(_ziplist([b"a", b"1.5", b"b", 2]))  # sorted set as a ziplist
        + b"\x0e" + _str(b"l") + _len(2) + _str(_ziplist([b"x", 1])) + _str(_ziplist([b"y"]))  # quicklist
        + b"\x0b" + _str(b"s") + _str(intset)
    )  # fmt: skip
    # A stream of the first layout (type 15): no first id, deleted id or entries added after the length.
    stream = Stream()
    stream.restore_node((1, 0), (b"f",), [((1, 0), [b"f", b"v"]), ((2, 5), [b"f", b"w"])], 0)
    stream.last_id = (2, 5)
    stream.entries_added = 2
    v2 = dump_value(stream)
    assert v2[-9:] == bytes((2, 2, 5, 1, 0, 0, 0, 2, 0))  # length, last id, first id, deleted id, added, groups
    body += b"\x0f" + _str(b"st") + v2[1:-9] + bytes((2, 2, 5, 0))
    keys = {key: value for _, key, value, _ in keys_of(rdb_file(body, version=9))}
    assert keys[b"st"].ids == [(1, 0), (2, 5)] and keys[b"st"].entries[(2, 5)] == [b"f", b"w"]
    assert keys[b"st"].last_id == (2, 5) and keys[b"st"].entries_added == 2
    assert keys[b"h"] == {b"field": b"value", b"n": b"3"}
    assert list(keys[b"z"]) == [(1.5, b"a"), (2.0, b"b")]
    assert keys[b"l"] == deque([b"x", b"1", b"y"]) and keys[b"s"] == {b"-5", b"7", b"300"}


def test_a_checksum_of_zero_is_not_checked_and_old_versions_have_none() -> None:
    assert len(keys_of(rdb_file(sample_body(), checksum=False))) == 7
    old = b"REDIS0004\xfe\x00" + record(b"k", b"v") + b"\xff"
    assert keys_of(old) == [(0, b"k", b"v", None)]


# --------------------------------------------------------------------------- hostile files


def refused(data: bytes, databases: int = 16) -> str:
    with pytest.raises(RdbFileError) as info:
        keys_of(data, databases)
    text = str(info.value)
    assert "at offset" in text
    return text


def test_a_file_cut_anywhere_is_refused_naming_an_offset() -> None:
    whole = rdb_file(sample_body())
    for cut in range(len(whole)):
        refused(whole[:cut])


def test_any_flipped_byte_is_refused() -> None:
    whole = rdb_file(sample_body())
    for at in range(len(whole)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(whole)
            bad[at] ^= mask
            refused(bytes(bad))


def test_random_damage_without_a_checksum_loads_or_is_refused_never_crashes() -> None:
    rng = random.Random(1234)
    whole = bytearray(rdb_file(sample_body(), checksum=False))
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(3000):
        bad = bytearray(whole)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(9, len(bad) - 9)] = rng.randrange(256)
        try:
            keys_of(bytes(bad))
            outcomes["loaded"] += 1
        except RdbFileError as exc:
            assert "at offset" in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000  # both outcomes happen: the mutations reach the structure
    assert outcomes["loaded"] > 10


def test_a_wrong_checksum_names_its_offset() -> None:
    whole = rdb_file(sample_body())
    bad = whole[:-1] + bytes((whole[-1] ^ 1,))
    assert "wrong checksum" in refused(bad) and f"offset {len(whole) - 8}" in refused(bad)


def test_lying_lengths_are_refused_before_any_allocation() -> None:
    head = b"\xfe\x00"
    # A list of 2^63 elements, a string of 4 GiB, a set of 2^32: more than the bytes left.
    for body, reason in (
        (head + b"\x01" + _str(b"k") + b"\x81" + (1 << 63).to_bytes(8, "big") + _str(b"a"), "elements claimed"),
        (head + b"\x00" + _str(b"k") + b"\x80\xff\xff\xff\xff" + b"x" * 10, "past the end of the file"),
        (head + b"\x02" + _str(b"k") + b"\x80\xff\xff\xff\xff", "elements claimed"),
        # An LZF string claiming 1 TiB from 3 bytes.
        (
            head + b"\x00" + _str(b"k") + b"\xc3" + _len(3) + b"\x81" + (1 << 40).to_bytes(8, "big") + b"\x00ab",
            "claims",
        ),
        # A stream claiming 2^32 nodes, and a group with 2^32 pending entries.
        (head + b"\x13" + _str(b"k") + b"\x80\xff\xff\xff\xff", "elements claimed"),
    ):
        text = refused(rdb_file(body))
        assert reason in text, text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x20" + _str(b"k") + _str(b"v"), "unknown record or value type 32"),
        (b"\xf0", "unknown record or value type 240"),
        (b"\x07" + _str(b"k") + b"\x00" * 16, "module"),
        (b"\xf7" + b"\x00" * 10, "modules are not supported"),
        (b"\xf5" + _str(b"#!lua name=lib\nreturn 1"), "function libraries"),
        (b"\x09" + _str(b"k") + _str(b"\x00\xff"), "a zipmap hash (type 9"),
        (b"\xfe\x10" + record(b"k", b"v"), "database 16 selected, but this server has 16"),
        (b"\x04" + _str(b"k") + b"\x00", "empty collection"),
    ],
)
def test_what_cannot_be_loaded_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    text = refused(rdb_file(b"\xfe\x00" + body))
    assert reason in text, text
    record_at = len(rdb_file(b"")) - 9 + 2  # after the header, the AUX field and the SELECTDB
    assert f"offset {record_at}" in text, text


def test_versions_and_magic() -> None:
    assert "version 11" in refused(rdb_file(record(b"k", b"v"), version=11))
    assert "no REDIS magic at offset 0" in refused(b"RADIS0010" + b"\xff" + b"\x00" * 8)
    assert "four-digit version" in refused(b"REDIS00x0\xff")
    assert "version 0" in refused(b"REDIS0000\xff")


# --------------------------------------------------------------------------- at start


def test_a_dump_rdb_is_imported_at_start_then_our_file_is_used(tmp_path: Path) -> None:
    data = rdb_file(
        sample_body()
        + b"\xfe\x00\xfc" + struct.pack("<q", 1000) + record(b"long-gone", b"x")
    )  # fmt: skip
    (tmp_path / "dump.rdb").write_bytes(data)
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        assert talk(c, ("GET", "str"), ("EXISTS", "long-gone"), ("PEXPIRETIME", "str"), ("TYPE", "stream")) == [
            b"$5\r\nhello\r\n",
            b":0\r\n",
            b":%d\r\n" % FUTURE,
            b"+stream\r\n",
        ]
        assert talk(c, ("OBJECT", "IDLETIME", "hash"))[0] in (b":5\r\n", b":6\r\n")  # the file's LRU hint
        assert talk(c, ("SELECT", "2"), ("GET", "in2")) == [b"+OK\r\n", b"$3\r\ntwo\r\n"]
        talk(c, ("SELECT", "0"), ("SET", "new", "1"))
    aof = (tmp_path / "appendonly.aof").read_bytes()
    assert aof.startswith(b"*2\r\n$6\r\nSELECT") and aof.endswith(cmd("SET", "new", "1"))
    # Our file exists now: the snapshot is not loaded again (its keys come from our file).
    (tmp_path / "dump.rdb").write_bytes(rdb_file(b"\xfe\x00" + record(b"other", b"x")))
    with capture_logs() as logs, ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert talk(h.connect(), ("EXISTS", "other"), ("GET", "new"), ("DBSIZE",)) == [
            b":0\r\n",
            b"$1\r\n1\r\n",
            b":7\r\n",
        ]
    assert [e["path"] for e in logs if e["event"] == "import_skipped"] == [str(tmp_path / "dump.rdb")]


def test_a_corrupt_dump_rdb_refuses_to_start_and_writes_nothing(tmp_path: Path) -> None:
    whole = rdb_file(sample_body())
    (tmp_path / "dump.rdb").write_bytes(whole[:-20])
    with pytest.raises(AofCorruptError, match=r"dump\.rdb cannot be loaded: bad RDB file: .* at offset \d+"):
        ServiceHarness(RedisService, data_dir=tmp_path)
    (tmp_path / "dump.rdb").write_bytes(whole[:-1] + b"\x00")
    with pytest.raises(AofCorruptError, match=f"wrong checksum .* at offset {len(whole) - 8}"):
        ServiceHarness(RedisService, data_dir=tmp_path)
    (tmp_path / "dump.rdb").write_bytes(b"")
    with pytest.raises(AofCorruptError, match="no REDIS magic at offset 0"):
        ServiceHarness(RedisService, data_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.rdb"]


def test_a_key_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dump.rdb").write_bytes(rdb_file(b"\xfe\x03" + record(b"k", b"v") + record(b"k", b"w")))
    with pytest.raises(AofCorruptError, match="key b'k' twice in database 3 at offset"):
        ServiceHarness(RedisService, data_dir=tmp_path)


def test_a_large_dump_rdb_loads_in_slices_with_loading_replies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "LOAD_SLICE", 0.0)
    body = b"\xfe\x00" + b"".join(record(b"key:%d" % i, b"v" * 40) for i in range(30_000))
    data = rdb_file(body)
    assert len(data) > SYNC_LOAD_BYTES
    (tmp_path / "dump.rdb").write_bytes(data)
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        assert h.service.loading and h.service.aof is None
        c = h.connect()
        assert talk(c, ("GET", "key:1"), ("PING",)) == [LOADING, LOADING]
        info = talk(c, ("INFO", "persistence"))[0]
        assert b"loading:1" in info and b"loading_total_bytes:%d" % len(data) in info
        turns = 0
        while h.service.loading:
            h.reactor._run_ready()
            turns += 1
            assert turns < 100_000
        assert turns > 10
        assert talk(c, ("DBSIZE",), ("GET", "key:29999")) == [b":30000\r\n", b"$40\r\n" + b"v" * 40 + b"\r\n"]
        assert h.service.aof is not None
    assert (tmp_path / "appendonly.aof").stat().st_size > len(data)


def test_an_aof_with_an_rdb_preamble_keeps_expired_keys_for_its_commands(tmp_path: Path) -> None:
    preamble = rdb_file(b"\xfe\x00\xfc" + struct.pack("<q", 1000) + record(b"old", b"x") + record(b"k", b"v"))
    commands = cmd("SELECT", "0") + cmd("PERSIST", "old") + cmd("APPEND", "k", "w")
    path = tmp_path / "appendonly.aof"
    path.write_bytes(preamble + commands + cmd("SET", "cut", "x")[:-4])
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        # As redis-server: a preamble's expired key is loaded, so the PERSIST after it finds it.
        assert talk(h.connect(), ("GET", "old"), ("GET", "k"), ("EXISTS", "cut")) == [
            b"$1\r\nx\r\n",
            b"$2\r\nvw\r\n",
            b":0\r\n",
        ]
    assert path.read_bytes() == preamble + commands  # our own file: the cut tail is cut off
    path.write_bytes(preamble[:-30] + commands)
    with pytest.raises(AofCorruptError, match=r"RDB part of the append-only file .* at offset \d+"):
        ServiceHarness(RedisService, data_dir=tmp_path)


# --------------------------------------------------------------------------- multi-part directories


def aofdir(tmp_path: Path, manifest: str, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "appendonlydir"
    folder.mkdir(exist_ok=True)
    (folder / "appendonly.aof.manifest").write_text(manifest)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_a_multi_part_directory_loads_base_then_incremental_files(tmp_path: Path) -> None:
    base = rdb_file(b"\xfe\x00" + record(b"a", b"1") + record(b"l", deque([b"x"])))
    folder = aofdir(
        tmp_path,
        "file appendonly.aof.3.base.rdb seq 3 type b\n"
        "file appendonly.aof.1.incr.aof seq 1 type h\n"
        "file appendonly.aof.3.incr.aof seq 3 type i\n"
        'file "appendonly.aof.4 incr.aof" seq 4 type i\n',
        {
            "appendonly.aof.3.base.rdb": base,
            "appendonly.aof.1.incr.aof": cmd("SET", "history", "not loaded"),
            "appendonly.aof.3.incr.aof": cmd("SELECT", "1") + cmd("SET", "b", "2"),
            # Each file starts in database 0; the last may be cut short.
            "appendonly.aof.4 incr.aof": cmd("RPUSH", "l", "y") + cmd("SET", "cut", "x")[:-3],
        },
    )
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with capture_logs() as logs, ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        assert talk(c, ("MGET", "a", "history", "cut"), ("LRANGE", "l", "0", "-1"), ("SELECT", "1"), ("GET", "b")) == [
            b"*3\r\n$1\r\n1\r\n$-1\r\n$-1\r\n",
            b"*2\r\n$1\r\nx\r\n$1\r\ny\r\n",
            b"+OK\r\n",
            b"$1\r\n2\r\n",
        ]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["aof_truncated"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # redis-server's files untouched
    assert (tmp_path / "appendonly.aof").exists()


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("file ../../etc/passwd seq 1 type b\n", "is not a file name in the AOF directory"),
        ("file /etc/passwd seq 1 type b\n", "is not a file name in the AOF directory"),
        ("file b.rdb seq 1 type b\nfile b.rdb seq 2 type b\n", "a second base file"),
        ("file i.aof seq 2 type i\nfile i.aof seq 2 type i\n", "sequence number 2 after 2"),
        ("file b.rdb seq 1 type x\n", "unknown file type"),
        ("file b.rdb seq one type b\n", "is not a number"),
        ("file b.rdb type b\n", "not 'file <name> seq <n> type <b|i|h>'"),
        ('file "b.rdb seq 1 type b\n', "not 'file <name> seq <n> type <b|i|h>'"),
        ("file b.rdb seq 1 type b", "does not end with a newline"),
        ("file missing.aof seq 1 type i\n", "lists missing.aof, which does not exist"),
        ("# nothing\n", "lists no file to load"),
        ("file " + "x" * 2000 + " seq 1 type b\n", "longer than 1024 bytes"),
    ],
)
def test_a_bad_manifest_refuses_to_start(tmp_path: Path, manifest: str, reason: str) -> None:
    aofdir(tmp_path, manifest, {"b.rdb": rdb_file(b""), "i.aof": cmd("SET", "a", "1")})
    with pytest.raises(AofCorruptError, match="cannot import the multi-part AOF") as info:
        ServiceHarness(RedisService, data_dir=tmp_path)
    assert reason in str(info.value)
    assert not (tmp_path / "appendonly.aof").exists()


def test_only_the_last_file_may_be_cut_short(tmp_path: Path) -> None:
    cut = cmd("SET", "a", "1") + cmd("SET", "b", "2")[:-2]
    aofdir(
        tmp_path,
        "file one.aof seq 1 type i\nfile two.aof seq 2 type i\n",
        {"one.aof": cut, "two.aof": cmd("SET", "c", "3")},
    )
    with pytest.raises(AofCorruptError, match=rf"one\.aof is cut short at offset {len(cmd('SET', 'a', '1'))}"):
        ServiceHarness(RedisService, data_dir=tmp_path)
    # A transaction left open at the end of a file that is not the last: the same.
    (tmp_path / "appendonlydir" / "one.aof").write_bytes(cmd("MULTI") + cmd("SET", "a", "1"))
    with pytest.raises(AofCorruptError, match=r"one\.aof is cut short at offset 0"):
        ServiceHarness(RedisService, data_dir=tmp_path)
    # A corrupt middle in an incremental file names that file and the offset.
    (tmp_path / "appendonlydir" / "one.aof").write_bytes(cmd("SET", "a", "1") + b"junk\r\n")
    with pytest.raises(
        AofCorruptError, match=rf"one\.aof is corrupt: bad AOF format at offset {len(cmd('SET', 'a', '1'))}"
    ):
        ServiceHarness(RedisService, data_dir=tmp_path)
