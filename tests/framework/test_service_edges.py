"""Edges of the service API: counted frames, bad declarations, failing plugins, settings corners."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest
from linechat import Plugin, PluginSettings, Protocol, Service, ServiceSettings, command, terminator
from linechat.services.echo import EchoService
from linechat.settings import build_settings_model, load_settings, parse_assignment
from linechat.testing import LineClient, ServiceHarness, serve
from structlog.testing import capture_logs


class BlobProtocol(Protocol):
    @command("PUT")
    def put(self, size: int) -> str:
        self.switch("blob", count=size)
        return "SEND"

    @command("WHERE")
    def where(self) -> str:
        return self.listener.name if self.listener else "?"

    @terminator("blob", count=True, max_size=8)
    def blob(self, data: bytes) -> str:
        # No switch: the framework goes back to command lines by itself.
        return f"GOT {data.decode()}"

    def on_frame_too_long(self, rule: Any, size: int) -> bool:
        self.send(f"TOO BIG {size}")
        return rule.name == "blob" and size < 1000


class BlobService(Service):
    name = "blob"
    protocol = BlobProtocol


def test_counted_frame_falls_back_to_commands() -> None:
    client = ServiceHarness(BlobService).connect()
    client.send(b"PUT 3\nabcWHERE\n")
    assert client.read_lines() == ["SEND", "GOT abc", "main"]


def test_counted_frame_over_max_size_is_skipped_or_closes() -> None:
    harness = ServiceHarness(BlobService)
    client = harness.connect()
    client.send(b"PUT 20\n" + b"x" * 20 + b"WHERE\n")
    # The refusal is sent when the handler switches, before its own reply.
    assert client.read_lines() == ["TOO BIG 20", "SEND", "main"]
    assert not client.closed
    client.send(b"PUT 5000\n")
    assert client.read_lines() == ["TOO BIG 5000", "SEND"]
    assert client.closed


def test_zero_count_is_refused() -> None:
    client = ServiceHarness(BlobService).connect()
    client.send(b"PUT 0\nWHERE\n")
    assert client.read_lines() == ["ERR internal error", "main"]


def test_rules_that_never_end_are_refused_at_declaration() -> None:
    with pytest.raises(TypeError, match="never end"):
        terminator("raw", None)
    with pytest.raises(TypeError, match="empty"):
        terminator("empty", b"")


class Faulty(Plugin):
    name = "faulty"
    Settings: ClassVar[type[PluginSettings]] = PluginSettings
    refuse = False

    def connection_accepted(self, service: Service, peer: tuple[str, int]) -> bool | None:
        if Faulty.refuse:
            raise RuntimeError("cannot decide")
        return None

    def connection_opened(self, protocol: Protocol) -> None:
        raise RuntimeError("opened hook bug")

    def connection_closed(self, protocol: Protocol) -> None:
        raise RuntimeError("closed hook bug")

    def command_handled(self, protocol: Protocol, name: str | None, status: str, size: int, duration: float) -> None:
        raise RuntimeError("command hook bug")


def test_failing_plugin_hooks_are_isolated() -> None:
    Faulty.refuse = False
    with capture_logs() as logs, serve(EchoService, plugins=[Faulty]) as server:
        for _ in range(3):
            with LineClient(server.address()) as client:
                assert client.read_line() == b"+ linechat echo ready"
                client.send(b"ECHO still here\r\nQUIT\r\n")
                assert client.read_line() == b"+ still here"
                assert client.read_line() == b"+ bye"
                assert client.read_line() == b""
        service = server.app.services["echo"]
        deadline = time.monotonic() + 30  # the last close may still be in flight (a safety net, not a wait)
        while service.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not service.connections  # closed channels were released despite the hook
        Faulty.refuse = True  # failing while deciding refuses: fail closed
        with LineClient(server.address()) as refused:
            assert refused.read_line() == b""
    hooks = {entry["hook"] for entry in logs if entry["event"] == "plugin_hook_failed"}
    assert hooks == {"connection_opened", "connection_closed", "command_handled", "connection_accepted"}


def test_idle_timeout_zero_means_never() -> None:
    harness = ServiceHarness(EchoService, idle_timeout=0)
    client = harness.connect()
    harness.advance(10_000)
    assert not client.closed


def test_null_from_environment_and_loose_tables_for_unloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_settings_model({"echo": EchoService}, {}, ["services.gone", "plugins.lost"])
    monkeypatch.setenv("LINECHAT_SERVICES__ECHO__IDLE_TIMEOUT", "null")
    settings = load_settings(
        model, None, [parse_assignment("services.gone.port=1"), parse_assignment("plugins.lost.x=2")]
    )
    assert settings.services.echo.idle_timeout is None  # type: ignore[attr-defined]
    assert settings.services.gone == {"port": 1}  # type: ignore[attr-defined]


class TwoPortProtocol(Protocol):
    @command("WHERE")
    def where(self) -> str:
        assert self.listener is not None
        return self.listener.name


class TwoPortSettings(ServiceSettings):
    other_port: int = 0


class TwoPortService(Service):
    name = "twoport"
    Settings = TwoPortSettings

    def listeners(self) -> list[Any]:
        from linechat import ListenerSpec

        assert isinstance(self.settings, TwoPortSettings)
        return [
            ListenerSpec(TwoPortProtocol, self.settings.host, self.settings.port, "main"),
            ListenerSpec(TwoPortProtocol, self.settings.host, self.settings.other_port, "other"),
        ]


def test_protocol_knows_its_listener() -> None:
    with serve(TwoPortService) as server:
        for name in ("main", "other"):
            with LineClient(server.address("twoport", name)) as client:
                client.send(b"WHERE\r\n")
                assert client.read_line() == name.encode()
