"""DUMP and RESTORE: a key's value as a redis-server 7.0 payload, and back (Redis's cluster.c).

The payload format is in :mod:`linechat.services.redis.rdb`.  A payload
whose version or checksum is wrong gets redis-server's error; one whose
checksum is right but whose contents are not a value gets ``Bad data
format``; neither ever reaches the keyspace.
"""

from __future__ import annotations

from linechat.services.redis.base import SYNTAX, CommandContext, int_arg
from linechat.services.redis.rdb import BadPayloadError, dump_payload, load_payload, payload_ok
from linechat.services.redis.resp import OK, RespError, bulk
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["DumpCommands"]


class DumpCommands(CommandContext):
    """DUMP and RESTORE."""

    @redis_command("DUMP", arity=2, flags="readonly", keys=(1, 1, 1), group="generic", tips="nondeterministic_output")
    def cmd_dump(self, key: bytes) -> bytes:
        """The key's value serialized as redis-server 7.0 does (RDB encoding, version, CRC-64)."""
        value = self.db.get(key)
        return self.null if value is None else bulk(dump_payload(value))

    @redis_command(
        "RESTORE",
        arity=-4,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1)],
        group="generic",
        acl="dangerous",
    )
    def cmd_restore(self, key: bytes, ttl: bytes, payload: bytes, *options: bytes) -> bytes:
        """Create a key from a DUMP payload: REPLACE, ABSTTL, IDLETIME seconds or FREQ (0-255)."""
        replace = absttl = False
        idle: int | None = None
        freq: int | None = None
        i = 0
        while i < len(options):
            word = options[i].upper()
            more = len(options) - i - 1
            if word == b"REPLACE":
                replace = True
            elif word == b"ABSTTL":
                absttl = True
            elif word == b"IDLETIME" and more and freq is None:
                idle = int_arg(options[i + 1])
                if idle < 0:
                    raise RespError("ERR Invalid IDLETIME value, must be >= 0")
                i += 1
            elif word == b"FREQ" and more and idle is None:
                freq = int_arg(options[i + 1])
                if not 0 <= freq <= 255:
                    raise RespError("ERR Invalid FREQ value, must be >= 0 and <= 255")
                i += 1
            else:
                raise RespError(SYNTAX)
            i += 1
        db = self.db
        if not replace and db.get(key) is not None:
            raise RespError("BUSYKEY Target key name already exists.")
        when = int_arg(ttl)
        if when < 0:
            raise RespError("ERR Invalid TTL value, must be >= 0")
        if not payload_ok(payload):
            raise RespError("ERR DUMP payload version or checksum are wrong")
        try:
            value = load_payload(payload)
        except BadPayloadError:
            raise RespError("ERR Bad data format") from None
        existed = db.delete(key) if replace else False
        if when and not absttl:
            when += self.server.now_ms()
        if when and when <= self.server.now_ms():
            # Already expired: nothing is stored (a replaced key is just deleted), as redis-server does.
            if existed:
                self._propagate([b"DEL", key])
            return OK
        db.set(key, value)
        if when:
            db.set_deadline(key, when)
        if idle is not None:
            db.access[key] = db.lru_clock - idle
        # Recorded with an absolute deadline, so replaying the file later restores the same expiry.
        argv = [b"RESTORE", key, b"%d" % when, payload, b"REPLACE"]
        self._propagate([*argv, b"ABSTTL"] if when else argv)
        return OK
