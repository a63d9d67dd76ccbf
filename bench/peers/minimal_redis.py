"""The command table both minimal Redis peers share: PING, SET, GET (and what redis-benchmark asks first)."""

from __future__ import annotations

STORE: dict[bytes, bytes] = {}


def execute(args: list[bytes]) -> bytes:
    """Run one command; return its RESP reply."""
    name = args[0].upper()
    if name == b"PING":
        return b"+PONG\r\n" if len(args) == 1 else b"$%d\r\n%s\r\n" % (len(args[1]), args[1])
    if name == b"SET" and len(args) == 3:
        STORE[args[1]] = args[2]
        return b"+OK\r\n"
    if name == b"GET" and len(args) == 2:
        value = STORE.get(args[1])
        return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
    if name in (b"CONFIG", b"COMMAND"):
        return b"*0\r\n"
    return b"-ERR unknown command\r\n"
