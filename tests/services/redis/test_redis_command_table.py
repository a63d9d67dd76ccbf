"""The command table: its declarations against a real redis-server's COMMAND INFO and GETKEYS, and its own rules."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.services.redis import RedisService
from linechat.services.redis.protocol import TABLE
from linechat.services.redis.table import CommandDef
from linechat.testing import serve
from redis_wire import RawClient, real_redis, split_replies

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

# Redis 7.0's command flags; a declaration using another word is a typo.
KNOWN_FLAGS = set(
    [
        "write",
        "readonly",
        "denyoom",
        "module",
        "admin",
        "pubsub",
        "noscript",
        "blocking",
        "loading",
        "stale",
        "skip_monitor",
        "skip_slowlog",
        "asking",
        "fast",
        "no_auth",
        "may_replicate",
        "sentinel",
        "only_sentinel",
        "no_mandatory_keys",
        "protected",
        "touches_arbitrary_keys",
        "no_async_loading",
        "no_multi",
        "movablekeys",
        "allow_busy",
    ]
)


# Later than Redis 7.0, offered because clients send them (redis-py 5+ sends CLIENT SETINFO).
NEWER_THAN_70 = {"client|setinfo"}


def _entries() -> list[CommandDef]:
    out = []
    for spec in TABLE.values():
        out.append(spec)
        out += spec.subcommands.values()
    return out


def test_every_declaration_is_well_formed() -> None:
    for spec in _entries():
        assert spec.arity != 0, spec.name
        assert set(spec.flags) <= KNOWN_FLAGS, spec.name
        assert not ("write" in spec.flags and "readonly" in spec.flags), spec.name
        assert spec.group, spec.name
        if spec.write and not spec.subcommands and spec.name not in ("FLUSHDB", "FLUSHALL"):
            assert spec.key_specs, f"{spec.name} writes but declares no keys"
        if spec.subcommands:
            assert spec.func is not None, spec.name
        if "|" not in spec.name:
            assert spec.func is not None, spec.name


def test_key_positions_from_the_table() -> None:
    assert TABLE["MSET"].keys([b"MSET", b"a", b"1", b"b", b"2"]) == [b"a", b"b"]
    assert TABLE["RENAME"].keys([b"RENAME", b"x", b"y"]) == [b"x", b"y"]
    assert TABLE["DEL"].keys([b"DEL", b"a", b"b", b"c"]) == [b"a", b"b", b"c"]
    assert TABLE["PING"].keys([b"PING"]) == []


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """A real redis-server and ours, side by side."""
    tmp: Path = tmp_path_factory.mktemp("table")
    with (
        real_redis(tmp) as real,
        serve(RedisService, data_dir=tmp / "ours", settings={"services": {"redis": {"appendonly": False}}}) as srv,
    ):
        yield real, srv.address()


def _info_parts(reply: bytes) -> tuple[list[bytes], dict[bytes, bytes]]:
    """One COMMAND INFO entry: its first nine fields, and its subcommands' entries by name."""
    head = reply.index(b"\r\n") + 2
    fields = split_replies(reply[head:])
    assert len(fields) == 10, reply
    subs_head = fields[9].index(b"\r\n") + 2
    subs = {}
    for entry in split_replies(fields[9][subs_head:]):
        name = split_replies(entry[entry.index(b"\r\n") + 2 :])[0]
        subs[name] = entry
    return fields[:9], subs


@needs_redis
@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_command_info_matches_real_redis(both: tuple[tuple[str, int], tuple[str, int]], hello: int | None) -> None:
    """Every command we declare has Redis's arity, flags, key positions, categories, tips and key specs."""
    real, ours = RawClient(both[0]), RawClient(both[1])
    try:
        if hello is not None:
            real.call("HELLO", hello)
            ours.call("HELLO", hello)
        mismatches = []
        for name, spec in TABLE.items():
            theirs = real.call("COMMAND", "INFO", name)
            mine = ours.call("COMMAND", "INFO", name)
            their_fields, their_subs = _info_parts(theirs[theirs.index(b"\r\n") + 2 :])
            my_fields, my_subs = _info_parts(mine[mine.index(b"\r\n") + 2 :])
            if their_fields != my_fields:
                mismatches.append((name, their_fields, my_fields))
            # Redis has subcommands we do not offer; each one we offer must match.
            assert len(my_subs) == len(spec.subcommands)
            for sub, entry in my_subs.items():
                if sub.split(b"\r\n")[1].decode() in NEWER_THAN_70:
                    continue
                if their_subs.get(sub) != entry:
                    mismatches.append((sub, their_subs.get(sub), entry))
        assert not mismatches, "\n".join(f"{n!r}:\n redis {t!r}\n ours  {m!r}" for n, t, m in mismatches[:10])
    finally:
        real.close()
        ours.close()


GETKEYS: list[tuple[str, ...]] = [
    ("GET", "a"),
    ("SET", "a", "b", "EX", "10"),
    ("MSET", "a", "1", "b", "2"),
    ("MGET", "a", "b", "c"),
    ("RENAME", "a", "b"),
    ("DEL", "a", "b"),
    ("HSET", "h", "f", "v"),
    ("LPUSH", "l", "x", "y"),
    ("PING",),
    ("NOSUCH", "a"),
    ("GET",),
    ("GET", "a", "b"),
    ("CLIENT", "LIST"),
    ("CONFIG", "GET", "x"),
    ("COMMAND", "INFO"),
    ("EVAL", "return 1", "0"),
    ("EVAL", "return 1", "2", "a", "b", "c"),
    ("EVALSHA", "abc", "1", "k"),
    ("EVAL", "return 1", "x"),
    ("ZUNIONSTORE", "d", "2", "a", "b"),
    ("SET", "a"),
    ("MSET", "a"),
    ("PING", "x"),
]


@needs_redis
def test_command_getkeys_matches_real_redis(both: tuple[tuple[str, int], tuple[str, int]]) -> None:
    """COMMAND GETKEYS finds the same keys (and refuses the same lines) from the table's key specs."""
    real, ours = RawClient(both[0]), RawClient(both[1])
    try:
        lines = [c for c in GETKEYS if c[0] in TABLE or c[0] == "NOSUCH"]
        expected = [real.call("COMMAND", "GETKEYS", *c) for c in lines]
        got = [ours.call("COMMAND", "GETKEYS", *c) for c in lines]
        assert got == expected
    finally:
        real.close()
        ours.close()
