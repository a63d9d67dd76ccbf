"""The DATA reader alone: un-stuffing and size counting for any way the stream is cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from linechat.services.smtp.data import INJECTED, DataReader

LINES = st.lists(st.sampled_from([b"", b".", b"..", b".x", b"x.", b"a\rb", b"\n", b"text", b". ."]), max_size=12)


def stuff(lines: list[bytes]) -> bytes:
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


def run(wire: bytes, cuts: list[int], limit: int = 1 << 20) -> DataReader:
    """Feed INJECTED + wire (without the final CRLF, which belongs to the terminator), cut at *cuts*."""
    stream = INJECTED + wire[:-2] if wire else b""
    reader = DataReader(limit, spool_threshold=16)
    start = 0
    for cut in sorted({min(c, len(stream)) for c in cuts}):
        reader.feed(stream[start:cut])
        start = cut
    reader.feed(stream[start:])
    reader.finish()
    return reader


@settings(max_examples=300, deadline=None)
@given(lines=LINES, cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=6))
def test_unstuffing_is_independent_of_chunking(lines: list[bytes], cuts: list[int]) -> None:
    message = b"".join(line + b"\r\n" for line in lines)
    if b"\r\n.\r\n" in b"\r\n" + stuff(lines):
        return  # cannot happen on the wire: stuffing prevents it
    reader = run(stuff(lines), cuts)
    assert reader.size == len(message)
    assert reader.file.read() == message
    reader.close()


def test_over_limit_keeps_counting_but_holds_nothing() -> None:
    reader = run(b"x" * 50 + b"\r\n", [10, 20, 30], limit=20)
    assert reader.too_big
    assert reader.size == 52
    reader.close()
