"""Fair, bounded work per turn: one pipeline neither holds the loop nor builds unbounded output."""

from __future__ import annotations

from pathlib import Path

from linechat.services.echo import EchoService
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness


def test_a_pipeline_of_empty_lines_yields_to_the_others_and_is_all_handled() -> None:
    with ServiceHarness(EchoService) as h:
        hog, canary = h.connect(), h.connect()
        hog.read()
        canary.read()
        hog.channel.feed(b"\n" * 60000 + b"ECHO done\r\n")
        # One pass handled one budget of frames, then the channel gave the loop back.
        assert hog.channel.reading_paused
        assert len(hog.channel.ac_in_buffer) > 50000
        canary.send(b"ECHO first\r\n")  # the harness runs the turns that are due
        assert canary.read_lines() == ["+ first"]
        for _ in range(100):
            if not hog.channel.ac_in_buffer:
                break
            h.run_ready()
        assert hog.read_lines() == ["+ done"]
        assert not hog.channel.reading_paused


def test_get_flood_from_a_peer_that_never_reads_stays_within_the_output_limits(tmp_path: Path) -> None:
    value = b"v" * 8192
    high = 64 << 10
    count = 2000
    with ServiceHarness(RedisService, data_dir=tmp_path, appendonly=False, out_high_water=high) as h:
        setter, hog = h.connect(), h.connect()
        setter.send(b"SET v " + value + b"\r\n")
        assert setter.read() == b"+OK\r\n"
        hog.stall()
        hog.send(b"GET v\r\n" * count)
        for _ in range(50):
            h.run_ready()
        # Output stops being built once the backlog passes the high-water mark:
        # the rest of the pipeline waits, parsed but not run.
        assert hog.channel.out_buffered <= high + len(value) + 16
        assert not hog.closed
        setter.send(b"PING\r\n")
        assert setter.read() == b"+PONG\r\n"
        # The peer reads at last: every reply comes, in order, none lost.
        hog.unstall()
        received = bytearray()
        expected = count * (len(value) + len(b"$8192\r\n\r\n"))
        for _ in range(count):
            received += hog.read()
            if len(received) >= expected:
                break
        assert bytes(received) == b"$8192\r\n" + value + b"\r\n" * 1 + (b"$8192\r\n" + value + b"\r\n") * (count - 1)
        hog.send(b"PING\r\n")
        assert hog.read() == b"+PONG\r\n"


def test_a_long_pipeline_is_run_in_turns_in_order(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendonly=False) as h:
        client = h.connect()
        client.send(b"".join(b"INCR n\r\n" for _ in range(5000)) + b"GET n\r\n")
        replies = client.read()
        assert replies == b"".join(b":%d\r\n" % n for n in range(1, 5001)) + b"$4\r\n5000\r\n"


def test_a_deferred_pipeline_still_reports_its_protocol_error(tmp_path: Path) -> None:
    with ServiceHarness(RedisService, data_dir=tmp_path, appendonly=False) as h:
        client = h.connect()
        client.send(b"*1\r\n$4\r\nPING\r\n" * 2500 + b"*1\r\n$x\r\n")
        replies = client.read()
        assert replies == b"+PONG\r\n" * 2500 + b"-ERR Protocol error: invalid bulk length\r\n"
        assert client.closed
