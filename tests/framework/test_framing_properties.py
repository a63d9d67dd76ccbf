"""Property tests: however a stream is cut into reads, the frames come out the same.

Channels here have no socket; input goes in through ``feed()``.  Each check
runs against three variants of the channel, so the fast framing path, the
path that accounts for ``max_frame_size`` and the path for an overridden
``get_terminator`` are all held to the same answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linechat.asynchat import async_chat

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Recorder(async_chat):
    """Collects frames; in RESP mode a header line announces the byte count of the next frame."""

    def __init__(self, terminator: bytes | int | None, resp: bool = False) -> None:
        super().__init__()
        self.start_terminator = terminator
        self.set_terminator(terminator)
        self.resp = resp
        self.parts: list[bytes] = []
        self.frames: list[bytes] = []

    def collect_incoming_data(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def found_terminator(self) -> None:
        frame = b"".join(self.parts)
        self.parts.clear()
        self.frames.append(frame)
        if self.resp:
            if self.get_terminator() == b"\r\n":
                # "$<n>": the next frame is n payload bytes plus their CRLF.
                self.set_terminator(int(frame[1:]) + 2)
            else:
                self.set_terminator(b"\r\n")
        elif isinstance(self.start_terminator, int):
            self.set_terminator(self.start_terminator)

    def pending(self) -> bytes:
        """Bytes received but not yet part of a finished frame."""
        return b"".join(self.parts) + self.ac_in_buffer


class LimitedRecorder(Recorder):
    """Same, with a frame limit too large to trigger: exercises the accounting path."""

    max_frame_size = 1 << 30


class DynamicRecorder(Recorder):
    """Same, with get_terminator overridden: the terminator is asked for after every frame."""

    def get_terminator(self) -> bytes | int | None:
        return self.terminator


VARIANTS = [Recorder, LimitedRecorder, DynamicRecorder]


def chunks_at(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """Cut *data* at the given offsets."""
    start = 0
    for cut in sorted(set(cuts)):
        if 0 < cut < len(data):
            yield data[start:cut]
            start = cut
    yield data[start:]


def feed_all(chan: Recorder, pieces: Iterator[bytes] | list[bytes]) -> Recorder:
    for piece in pieces:
        chan.feed(piece)
    return chan


def delimited_reference(stream: bytes, term: bytes) -> tuple[list[bytes], bytes]:
    """What one pass over the whole stream yields: finished frames and the unfinished tail."""
    parts = stream.split(term)
    return parts[:-1], parts[-1]


terminators = st.sampled_from([b"\n", b"\r\n", b"END", b"aab", b"abab", b"\x00\x00\x00"]) | st.binary(
    min_size=1, max_size=4
)
alphabet_bytes = st.binary(max_size=40) | st.lists(st.sampled_from([b"a", b"b", b"\r", b"\n", b"x"]), max_size=30).map(
    b"".join
)


@pytest.mark.parametrize("variant", VARIANTS)
@PROPERTY_SETTINGS
@given(
    term=terminators,
    frames=st.lists(alphabet_bytes, max_size=12),
    tail=alphabet_bytes,
    cuts=st.lists(st.integers(0, 600), max_size=20),
)
def test_bytes_terminator_any_split(
    variant: type[Recorder], term: bytes, frames: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(frame + term for frame in frames) + tail
    expected_frames, expected_tail = delimited_reference(stream, term)
    for pieces in (list(chunks_at(stream, cuts)), [stream], [stream[i : i + 1] for i in range(len(stream))]):
        chan = feed_all(variant(term), pieces)
        assert chan.frames == expected_frames
        assert chan.pending() == expected_tail


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("term", [b"\r\n", b"aab", b"END"])
def test_bytes_terminator_cut_at_every_offset(variant: type[Recorder], term: bytes) -> None:
    stream = b"".join([b"a" + term, b"aa" + term, term, b"abab" + b"a" + term, b"\raa", term, b"tail-aa"])
    expected_frames, expected_tail = delimited_reference(stream, term)
    for cut in range(len(stream) + 1):
        chan = feed_all(variant(term), [stream[:cut], stream[cut:]])
        assert chan.frames == expected_frames, cut
        assert chan.pending() == expected_tail, cut
        for second in range(cut, len(stream) + 1, 3):
            chan = feed_all(variant(term), [stream[:cut], stream[cut:second], stream[second:]])
            assert chan.frames == expected_frames, (cut, second)


@pytest.mark.parametrize("variant", VARIANTS)
@PROPERTY_SETTINGS
@given(
    size=st.integers(1, 17),
    stream=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=20),
)
def test_integer_terminator_any_split(variant: type[Recorder], size: int, stream: bytes, cuts: list[int]) -> None:
    whole = len(stream) // size * size
    expected = [stream[i : i + size] for i in range(0, whole, size)]
    for pieces in (list(chunks_at(stream, cuts)), [stream], [stream[i : i + 1] for i in range(len(stream))]):
        chan = feed_all(variant(size), pieces)
        assert chan.frames == expected
        assert chan.pending() == stream[whole:]


@pytest.mark.parametrize("variant", VARIANTS)
@PROPERTY_SETTINGS
@given(stream=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=20))
def test_none_terminator_collects_everything_in_order(variant: type[Recorder], stream: bytes, cuts: list[int]) -> None:
    for pieces in (list(chunks_at(stream, cuts)), [stream], [stream[i : i + 1] for i in range(len(stream))]):
        chan = feed_all(variant(None), pieces)
        assert chan.frames == []
        assert b"".join(chan.parts) == stream
        assert chan.ac_in_buffer == b""


def resp_stream(payloads: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Bulk strings as RESP writes them, and the frames a RESP reader should see."""
    stream = b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in payloads)
    frames: list[bytes] = []
    for payload in payloads:
        frames += [b"$%d" % len(payload), payload + b"\r\n"]
    return stream, frames


@pytest.mark.parametrize("variant", VARIANTS)
@PROPERTY_SETTINGS
@given(
    payloads=st.lists(st.binary(max_size=40) | st.sampled_from([b"\r\n", b"$3\r\n", b"\r"]), max_size=10),
    cuts=st.lists(st.integers(0, 500), max_size=25),
)
def test_terminator_changed_mid_stream_any_split(
    variant: type[Recorder], payloads: list[bytes], cuts: list[int]
) -> None:
    stream, expected = resp_stream(payloads)
    for pieces in (list(chunks_at(stream, cuts)), [stream], [stream[i : i + 1] for i in range(len(stream))]):
        chan = feed_all(variant(b"\r\n", resp=True), pieces)
        assert chan.frames == expected
        assert chan.pending() == b""
        assert chan.get_terminator() == b"\r\n"


@pytest.mark.parametrize("variant", VARIANTS)
def test_terminator_change_cut_at_every_offset(variant: type[Recorder]) -> None:
    stream, expected = resp_stream([b"hello", b"", b"a\r\nb", b"$2\r\n", b"x" * 30])
    for cut in range(len(stream) + 1):
        chan = feed_all(variant(b"\r\n", resp=True), [stream[:cut], stream[cut:]])
        assert chan.frames == expected, cut
