"""Per-command accounting (access log and the command_handled hook) names the right command."""

from __future__ import annotations

from linechat.services.echo import EchoService
from linechat.testing import ServiceHarness
from structlog.testing import capture_logs


def test_unknown_and_empty_lines_are_not_accounted_as_the_previous_command() -> None:
    with ServiceHarness(EchoService) as harness:
        harness.service.access_log = True
        client = harness.connect()
        with capture_logs() as logs:
            client.send(b"ECHO hi\r\nNOPE\r\n\r\nADD 1 2\r\n")
        commands = [entry["command"] for entry in logs if entry["event"] == "command"]
        assert commands == ["ECHO", None, None, "ADD"]
        assert client.read_lines()[1:] == ["+ hi", "- unknown command 'NOPE'", "+ 3"]
