"""Property tests of the Redis request parsers: however the bytes arrive, the replies are the same.

The service parses a read in one of three ways (inline lines split at once,
multibulks split at every CRLF, and byte by byte, which the other two hand
over to at anything unusual) and frames a command cut by the end of a read
rule by rule.  Whatever mix of commands is sent and however it is cut into
reads, the replies must equal those of sending each command on its own.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness
from redis_wire import cmd, split_replies

# Values chosen to trip the fast parsers: CRLFs, bare LF/CR, the RESP type
# bytes, quotes, spaces, and lengths around the header table's end.
_TRICKY = st.sampled_from([b"", b"\r\n", b"a\r\nb", b"\n", b"\r", b"*2", b"$3", b"'", b'"', b" ", b"x" * 1023])
_VALUE = st.one_of(st.binary(max_size=40), _TRICKY, st.integers(1020, 1030).map(lambda n: b"v" * n))
_KEY = st.sampled_from([b"k", b"key:1", b"*", b"$", b"sp ace"])
_WORD = st.text(alphabet="abcXYZ019*$:-", min_size=1, max_size=8).map(str.encode)

_MULTIBULK = st.one_of(
    st.tuples(st.just(b"SET"), _KEY, _VALUE),
    st.tuples(st.just(b"GET"), _KEY),
    st.tuples(st.just(b"APPEND"), _KEY, _VALUE),
    st.tuples(st.just(b"ECHO"), _VALUE),
    st.tuples(st.just(b"ping")),
    st.tuples(st.just(b"RPUSH"), _KEY, _VALUE, _VALUE),
    st.tuples(st.just(b"STRLEN"), _KEY),
).map(lambda words: cmd(*words))
_INLINE = st.one_of(
    st.builds(
        lambda name, words, end: b" ".join([name, *words]) + end,
        st.sampled_from([b"PING", b"ECHO", b"GET", b"STRLEN", b"EXISTS"]),
        st.lists(_WORD, max_size=2),
        st.sampled_from([b"\r\n", b"\n"]),  # both line ends are accepted
    ),
    st.just(b"\r\n"),  # a blank line: ignored
    st.just(b"*0\r\n"),  # an empty multibulk: ignored
    st.just(b"ECHO \"quoted words\" 'and more'\r\n"),
)


_COMMANDS = st.lists(st.one_of(_MULTIBULK, _INLINE), min_size=1, max_size=12)


def _replies(reads: list[bytes]) -> list[bytes]:
    with ServiceHarness(RedisService, appendonly=False) as harness:
        client = harness.connect()
        for data in reads:
            client.send(data)
        return split_replies(client.read())


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points) if b > a]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=_COMMANDS, cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_any_cut_of_any_pipeline_gets_the_replies_of_one_command_per_read(
    commands: list[bytes], cuts: list[int]
) -> None:
    one_each = _replies(commands)
    whole = b"".join(commands)
    assert _replies([whole]) == one_each
    assert _replies(_cut(whole, cuts)) == one_each
