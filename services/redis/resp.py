"""RESP2/RESP3 encoding helpers, the inline-command splitter and Redis-style glob patterns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from linechat.protocol import CommandError

__all__ = [
    "EMPTY_ARRAY",
    "NIL",
    "NIL_ARRAY",
    "NULL",
    "OK",
    "ONE",
    "RESP2",
    "RESP3",
    "WRONGTYPE",
    "ZERO",
    "Dialect",
    "RespError",
    "array",
    "bulk",
    "encode_command",
    "error",
    "glob_match",
    "integer",
    "parse_int",
    "simple",
    "split_inline",
]

OK = b"+OK\r\n"
NIL = b"$-1\r\n"
NIL_ARRAY = b"*-1\r\n"
EMPTY_ARRAY = b"*0\r\n"
NULL = b"_\r\n"  # RESP3's one null, for both the null bulk and the null array
ZERO = b":0\r\n"
ONE = b":1\r\n"
WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class RespError(CommandError):
    """A command failed; the message is the whole error line, code included (``ERR ...``)."""


def bulk(value: bytes | None, null: bytes = NIL) -> bytes:
    """Encode a bulk string (None: *null*, the null bulk of the connection's protocol)."""
    if value is None:
        return null
    return b"$%d\r\n%s\r\n" % (len(value), value)


def integer(value: int) -> bytes:
    """Encode an integer reply."""
    return b":%d\r\n" % value


def simple(text: str) -> bytes:
    """Encode a status reply."""
    return b"+" + text.encode() + b"\r\n"


def error(message: str) -> bytes:
    """Encode an error reply; CR and LF become spaces so the reply stays one line.

    Messages built from client bytes decode them as latin-1, so encoding
    back as latin-1 reproduces those bytes exactly.
    """
    return b"-" + message.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace") + b"\r\n"


def array(items: Iterable[bytes | None], null: bytes = NIL, head: bytes = b"*%d\r\n") -> bytes:
    """Encode an aggregate of bulk strings (None items become *null*); *head* formats its count."""
    parts = [b""]
    for item in items:
        parts.append(null if item is None else b"$%d\r\n%s\r\n" % (len(item), item))
    parts[0] = head % (len(parts) - 1)
    return b"".join(parts)


class Dialect:
    """The reply shapes that depend on a connection's protocol version (RESP2 here, RESP3 below).

    A connection holds one of the two instances and switches on ``HELLO``, so
    no reply checks the version: it asks its dialect for the bytes.
    """

    version = 2
    null = NIL  # null bulk string
    null_array = NIL_ARRAY
    set_head = b"*%d\r\n"  # a set's header, by member count
    push_head = b"*%d\r\n"  # an out-of-band (pub/sub) message's header, by element count

    def map_header(self, pairs: int) -> bytes:
        """Header of a map of *pairs* key/value pairs."""
        return b"*%d\r\n" % (2 * pairs)

    def verbatim(self, text: bytes) -> bytes:
        """A text blob meant for humans (INFO, CLIENT LIST)."""
        return b"$%d\r\n%s\r\n" % (len(text), text)

    def map_reply(self, flat: list[bytes]) -> bytes:
        """A map of bulk strings given as ``[key, value, key, value, ...]``."""
        return array(flat)

    def set_reply(self, members: Iterable[bytes]) -> bytes:
        """A set of bulk strings."""
        return array(members, head=self.set_head)


class _Resp3(Dialect):
    version = 3
    null = NULL
    null_array = NULL
    set_head = b"~%d\r\n"
    push_head = b">%d\r\n"

    def map_header(self, pairs: int) -> bytes:
        return b"%%%d\r\n" % pairs

    def verbatim(self, text: bytes) -> bytes:
        return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)

    def map_reply(self, flat: list[bytes]) -> bytes:
        return b"%%%d\r\n" % (len(flat) // 2) + b"".join(b"$%d\r\n%s\r\n" % (len(item), item) for item in flat)


RESP2 = Dialect()
RESP3 = _Resp3()


def encode_command(argv: Iterable[bytes]) -> bytes:
    """Encode a command as a RESP multibulk (as clients send it; used by the AOF)."""
    return array(argv)


_DIGITS = re.compile(rb"-?[1-9][0-9]{0,19}|0")


def parse_int(value: bytes) -> int | None:
    """Parse a signed 64-bit decimal integer as strictly as Redis does; None if it is not one."""
    # No sign other than '-', no leading zeros, no spaces, no underscores.
    if _DIGITS.fullmatch(value) is None:
        return None
    number = int(value)
    if number < INT64_MIN or number > INT64_MAX:
        return None
    return number


# --------------------------------------------------------------------------- inline commands

_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_SPACE = frozenset(b" \t\n\r\v\f")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline command into words, honouring quotes like redis-cli; None if quotes are unbalanced."""
    if b'"' not in line and b"'" not in line:
        return line.split()
    words: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        word = bytearray()
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    return None  # closing quote missing
                c = line[i]
                if c == 0x5C and i + 3 < n and line[i + 1] == ord("x") and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    word.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    word += _ESCAPES.get(line[i], line[i : i + 1])
                elif c == 0x22:
                    # A closing quote must be followed by a space or the end.
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    word.append(c)
            elif in_single:
                if i >= n:
                    return None
                c = line[i]
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    word.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    word.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _SPACE:
                    break
                if c == 0x22:
                    in_double = True
                elif c == 0x27:
                    in_single = True
                else:
                    word.append(c)
            i += 1
        words.append(bytes(word))


# --------------------------------------------------------------------------- glob patterns


@lru_cache(maxsize=1024)
def _compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    """Translate a Redis glob (``* ? [abc] [^a-z] \\x``) into an anchored regular expression."""
    out: list[bytes] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        elif c == b"[":
            i += 1
            negate = i < n and pattern[i : i + 1] == b"^"
            if negate:
                i += 1
            members: list[bytes] = []
            # An unclosed class runs to the end of the pattern, as in Redis.
            while i < n and pattern[i : i + 1] != b"]":
                if pattern[i : i + 1] == b"\\" and i + 1 < n:
                    i += 1
                    members.append(re.escape(pattern[i : i + 1]))
                elif i + 2 < n and pattern[i + 1 : i + 2] == b"-":
                    lo, hi = pattern[i], pattern[i + 2]
                    if lo > hi:
                        lo, hi = hi, lo
                    members.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
                    i += 2
                else:
                    members.append(re.escape(pattern[i : i + 1]))
                i += 1
            if members:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]")
            else:
                out.append(b"." if negate else b"(?!)")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


def glob_match(pattern: bytes, value: bytes) -> bool:
    """True if *value* matches the Redis glob *pattern*."""
    if pattern == b"*":
        return True
    return _compile_glob(pattern).fullmatch(value) is not None
