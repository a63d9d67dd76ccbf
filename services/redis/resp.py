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
    "GlobPattern",
    "RespError",
    "array",
    "bulk",
    "compile_glob",
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


def array(items: Iterable[bytes | bytearray | None], null: bytes = NIL, head: bytes = b"*%d\r\n") -> bytes:
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
#
# Redis globs are matched without backtracking: a pattern is cut at its stars
# into segments, each a fixed-width run of one-byte tokens (a literal, ``?``, a
# class).  The first segment must match at the start, the last at the end, and
# each middle one is placed at its leftmost occurrence after the previous one:
# if any placement matches, the leftmost one does, so nothing is ever retried.
# Each segment is a regular expression with no quantifier or alternation (only
# byte classes), so one search costs at most len(value) x width steps and a
# whole match at most len(value) x len(pattern): a pattern such as
# ``*a*a*a*a*b`` cannot be driven exponential.

_ALL_BYTES = frozenset(range(256))


def _lower(c: int) -> int:
    """ASCII tolower, as redis-server's C locale has it."""
    return c + 32 if 65 <= c <= 90 else c


def _literal_set(c: int, nocase: bool) -> frozenset[int]:
    if not nocase:
        return frozenset((c,))
    low = _lower(c)
    return frozenset(x for x in (low, low - 32) if 0 <= x < 256 and _lower(x) == low)


def _class_bytes(members: frozenset[int]) -> bytes:
    """A regular-expression byte class for a set of bytes (never empty: that is handled apart)."""
    if members == _ALL_BYTES:
        return b"[\\x00-\\xff]"
    if len(members) == 1:
        return re.escape(bytes(members))
    return b"[" + b"".join(b"\\x%02x" % c for c in sorted(members)) + b"]"


def _glob_tokens(pattern: bytes, nocase: bool) -> list[frozenset[int] | None]:
    """The pattern as one-byte tokens (the bytes each accepts) and stars (``None``), Redis's parse."""
    tokens: list[frozenset[int] | None] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*': runs of stars are one star
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
        elif c == 0x3F:  # '?'
            tokens.append(_ALL_BYTES)
        elif c == 0x5B:  # '['
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            members: set[int] = set()
            # An unclosed class runs to the end of the pattern, as in Redis.
            while i < n and pattern[i] != 0x5D:
                if pattern[i] == 0x5C and i + 1 < n:
                    # An escaped member is compared exactly, even under nocase (as Redis does).
                    i += 1
                    members.add(pattern[i])
                elif i + 2 < n and pattern[i + 1] == 0x2D:
                    lo, hi = pattern[i], pattern[i + 2]
                    if lo > hi:
                        lo, hi = hi, lo
                    if nocase:
                        lo, hi = _lower(lo), _lower(hi)
                        members.update(x for x in range(256) if lo <= _lower(x) <= hi)
                    else:
                        members.update(range(lo, hi + 1))
                    i += 2
                else:
                    members |= _literal_set(pattern[i], nocase)
                i += 1
            tokens.append(_ALL_BYTES - members if negate else frozenset(members))
        else:
            if c == 0x5C and i + 1 < n:  # '\\x' is x; a trailing backslash is itself
                i += 1
                c = pattern[i]
            tokens.append(_literal_set(c, nocase))
        i += 1
    return tokens


class GlobPattern:
    """A compiled Redis glob: anchored head, leftmost-placed middles, anchored tail."""

    __slots__ = ("any", "head", "middles", "pattern", "starred", "tail", "width_head", "width_tail")

    def __init__(self, pattern: bytes, nocase: bool = False) -> None:
        self.pattern = pattern
        segments: list[list[frozenset[int]]] = [[]]
        for token in _glob_tokens(pattern, nocase):
            if token is None:
                segments.append([])
            else:
                segments[-1].append(token)
        compiled = [self._compile(seg) for seg in segments]
        self.starred = len(segments) > 1
        #: ``*`` (or ``**``...): everything but the empty string matches (Redis's own quirk).
        self.any = self.starred and len(segments) == 2 and not segments[0] and not segments[1]
        self.head, self.width_head = compiled[0], len(segments[0])
        self.tail, self.width_tail = compiled[-1], len(segments[-1])
        self.middles = compiled[1:-1]

    @staticmethod
    def _compile(segment: list[frozenset[int]]) -> re.Pattern[bytes] | None:
        """A fixed-width expression for a star-free segment (``None`` if some token accepts nothing)."""
        if any(not token for token in segment):
            return None
        return re.compile(b"".join(_class_bytes(token) for token in segment))

    def match(self, value: bytes, steps: list[int] | None = None) -> bool:
        """True if *value* matches; *steps*, if given, counts the segment searches made."""
        if not value:
            # redis-server's matcher never enters its loop for an empty string: only "" matches it.
            return not self.pattern
        if self.any:
            return True
        if not self.starred:
            if steps is not None:
                steps[0] += 1
            return self.head is not None and self.head.fullmatch(value) is not None
        n = len(value)
        if self.head is None or self.tail is None or self.width_head + self.width_tail > n:
            return False
        if steps is not None:
            steps[0] += 1
        if self.head.match(value) is None:
            return False
        pos = self.width_head
        end = n - self.width_tail  # where the tail must start
        for segment in self.middles:
            if steps is not None:
                steps[0] += 1
            found = None if segment is None else segment.search(value, pos, n - self.width_tail)
            if found is None:
                return False
            pos = found.end()
        if steps is not None:
            steps[0] += 1
        return self.tail.fullmatch(value, end) is not None


@lru_cache(maxsize=1024)
def _cached_glob(pattern: bytes, nocase: bool) -> GlobPattern:
    return GlobPattern(pattern, nocase)


def compile_glob(pattern: bytes, nocase: bool = False) -> GlobPattern:
    """A compiled glob (small patterns are cached; a huge one is not kept)."""
    if len(pattern) <= 1024:
        return _cached_glob(pattern, nocase)
    return GlobPattern(pattern, nocase)


def glob_match(pattern: bytes, value: bytes, nocase: bool = False) -> bool:
    """True if *value* matches the Redis glob *pattern* (``nocase`` as CONFIG GET has it)."""
    return compile_glob(pattern, nocase).match(value)
