"""Logs cannot be flooded: bad lines are logged a few times then counted, and their sender is cut off."""

from __future__ import annotations

import socket
from pathlib import Path

from linechat.services.chat import ChatService
from linechat.services.echo import EchoService
from linechat.services.smtp import SmtpService
from linechat.testing import LineClient, ServiceHarness, serve
from structlog.testing import capture_logs


def test_over_long_lines_are_answered_logged_sparingly_and_then_cut_off() -> None:
    with capture_logs() as logs, ServiceHarness(EchoService, max_line=64) as h:
        client, canary = h.connect(), h.connect()
        client.read()
        canary.read()
        for _ in range(10):
            client.send(b"ECHO " + b"x" * 200 + b"\r\n")
            assert client.read_lines() == ["- line too long"]
            canary.send(b"ECHO ok\r\n")
            assert canary.read_lines() == ["+ ok"]
        client.send(b"ECHO " + b"x" * 200 + b"\r\n")
        assert client.read_lines() == ["- too many over-long lines"]
        assert client.closed and not canary.closed
    events = [entry["event"] for entry in logs]
    assert events.count("frame_too_long") == 3  # then a count at most every 10 s
    assert events.count("bad_input_disconnect") == 1


def test_bad_lines_far_apart_do_not_add_up_and_the_log_gets_counts() -> None:
    with capture_logs() as logs, ServiceHarness(EchoService, max_line=64) as h:
        client = h.connect()
        client.read()
        for _ in range(30):
            client.send(b"x" * 100 + b"\n")
            h.advance(61)
            # A good line keeps the idle timer away.
            client.send(b"ECHO hi\r\n")
        assert not client.closed
    summaries = [entry for entry in logs if entry["event"] == "frame_too_long" and "repeated" in entry]
    assert summaries and summaries[-1]["total"] == 30


def test_undecodable_lines_count_too() -> None:
    with ServiceHarness(EchoService) as h:
        client = h.connect()
        client.read()
        client.send(b"ECHO \xff\xfe\r\n" * 12)
        lines = client.read_lines(encoding="latin-1")
        assert lines[:10] == ["- invalid utf-8 in command line"] * 10
        assert lines[10:] == ["- too many invalid lines"]
        assert client.closed


def test_smtp_says_421_to_a_bad_line_flood(tmp_path: Path) -> None:
    with ServiceHarness(SmtpService, data_dir=tmp_path) as h:
        client = h.connect()
        client.read()
        client.send((b"X" * 600 + b"\r\n") * 11)
        lines = client.read_lines()
        assert lines[:10] == ["500 5.5.2 Error: line too long"] * 10
        assert lines[10].startswith("421 4.7.0 ")
        assert client.closed


def test_open_and_close_are_not_info_unless_the_access_log_is_on() -> None:
    with capture_logs() as logs, ServiceHarness(EchoService) as h:
        h.connect().close()
    assert not [entry for entry in logs if entry["event"].startswith("connection_")]


def test_chat_over_long_line_flood_is_disconnected_over_loopback() -> None:
    with serve(ChatService, settings={"services": {"chat": {"irc_port": 0}}}) as server:
        plain, irc = server.address("chat"), server.address("chat", "irc")
        canary = LineClient(irc)
        canary.send(b"NICK canary\r\nUSER c 0 * :c\r\n")
        while b" 422 " not in canary.read_line():  # the end of the welcome
            pass
        flooder = socket.create_connection(plain, timeout=30)
        line = b"y" * 600 + b"\r\n"
        received = b""
        try:
            for _ in range(2000):
                flooder.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := flooder.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        flooder.close()
        assert b"line too long" in received
        assert b"*** Goodbye" in received
        canary.send(b"PING :still\r\n")
        assert canary.read_line().endswith(b":still")
        canary.close()


def test_a_peer_that_reconnects_again_and_again_cannot_flood_the_log_either() -> None:
    with capture_logs() as logs, ServiceHarness(EchoService, max_line=64) as h:
        for _ in range(200):
            client = h.connect()
            client.send((b"x" * 100 + b"\n") * 11)
            assert client.closed
        h.advance(61)
        client = h.connect()
        client.send(b"x" * 100 + b"\n")
    events = [entry["event"] for entry in logs]
    # 200 peers x (3 warnings + 1 disconnect) would be 800 lines: a minute's budget is 60 of each.
    assert events.count("frame_too_long") == 61
    assert events.count("bad_input_disconnect") == 60
    suppressed = [entry for entry in logs if entry["event"] == "log_suppressed"]
    assert suppressed and suppressed[0]["suppressed"] == 200 * 3 - 60
