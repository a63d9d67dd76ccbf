"""The whole path over loopback sockets: listener, reactor, channel, protocol, plugins."""

from __future__ import annotations

import select
import socket
import time
from typing import Any, ClassVar

from linechat import Plugin, PluginSettings, Protocol, Service, command
from linechat.app import App
from linechat.plugins.access import AccessControl
from linechat.services.echo import EchoService
from linechat.settings import build_settings_model, load_settings
from linechat.testing import LineClient, serve
from structlog.testing import capture_logs


def test_echo_end_to_end_pipelined() -> None:
    with serve(EchoService) as server, LineClient(server.address()) as client:
        assert client.read_line() == b"+ linechat echo ready"
        client.send(b"ECHO one\r\nADD 40 2\r\necho  two   words\r\nNOPE\r\nQUIT\r\n")
        lines = [client.read_line() for _ in range(5)]
        assert lines == [b"+ one", b"+ 42", b"+ two words", b"- unknown command 'NOPE'", b"+ bye"]
        assert client.read_line() == b""  # closed after the goodbye


def test_many_clients_and_a_vanishing_one() -> None:
    with serve(EchoService) as server:
        clients = [LineClient(server.address()) for _ in range(50)]
        rude = socket.create_connection(server.address())
        rude.sendall(b"ECHO half a li")
        rude.close()  # gone mid-line: the server must not care
        for index, client in enumerate(clients):
            client.send(f"ECHO n{index}\r\n")
        for index, client in enumerate(clients):
            assert client.read_line() == b"+ linechat echo ready"
            assert client.read_line() == f"+ n{index}".encode()
            client.close()
        with LineClient(server.address()) as late:
            assert late.read_line() == b"+ linechat echo ready"


class CrashProtocol(Protocol):
    def on_connect(self) -> str:
        return "ready"

    @command("CRASH")
    def crash(self) -> str:
        raise ZeroDivisionError("deliberate")

    @command("PING")
    def ping(self) -> str:
        return "PONG"


class CrashService(Service):
    name = "crash"
    protocol = CrashProtocol


def test_handler_exception_is_logged_and_connection_survives() -> None:
    with capture_logs() as logs, serve(CrashService) as server, LineClient(server.address()) as client:
        client.read_line()
        client.send(b"CRASH\r\nPING\r\n")
        assert client.read_line() == b"ERR internal error"
        assert client.read_line() == b"PONG"
    errors = [entry for entry in logs if entry["event"] == "handler_error"]
    assert errors and errors[0]["command"] == "CRASH" and errors[0].get("exc_info")


class RecorderSettings(PluginSettings):
    seen: list[str] = []


class Recorder(Plugin):
    name = "recorder"
    Settings: ClassVar[type[PluginSettings]] = RecorderSettings
    events: ClassVar[list[tuple[Any, ...]]] = []

    def server_started(self, app: Any) -> None:
        self.events.append(("started",))

    def server_stopping(self, app: Any) -> None:
        self.events.append(("stopping",))

    def connection_opened(self, protocol: Protocol) -> None:
        self.events.append(("opened", protocol.service.name))

    def connection_closed(self, protocol: Protocol) -> None:
        self.events.append(("closed", protocol.service.name))

    def command_handled(self, protocol: Protocol, name: str | None, status: str, size: int, duration: float) -> None:
        self.events.append(("command", name, size))


def test_plugin_hooks_fire() -> None:
    Recorder.events.clear()
    with serve(EchoService, plugins=[Recorder]) as server, LineClient(server.address()) as client:
        client.read_line()
        client.send(b"ECHO x\r\nQUIT\r\n")
        assert client.read_line() == b"+ x"
        assert client.read_line() == b"+ bye"
        assert client.read_line() == b""
    kinds = [event[0] for event in Recorder.events]
    assert kinds[0] == "started" and "stopping" in kinds
    assert ("opened", "echo") in Recorder.events and ("closed", "echo") in Recorder.events
    assert ("command", "ECHO", len(b"+ x\r\n")) in Recorder.events


def test_access_log_event() -> None:
    access = {"log": {"access": True}}
    with capture_logs() as logs, serve(EchoService, settings=access) as server, LineClient(server.address()) as client:
        client.read_line()
        client.send(b"ECHO y\r\nADD 1 x\r\n")
        assert client.read_line() == b"+ y"
        assert client.read_line() == b"- invalid value for 'b' of 'add'"
    commands = [entry for entry in logs if entry["event"] == "command"]
    assert [entry["status"] for entry in commands] == ["ok", "error"]
    assert commands[0]["command"] == "ECHO" and commands[0]["bytes"] == 5
    assert commands[0]["service"] == "echo" and "conn" in commands[0] and "duration_ms" in commands[0]


def test_access_plugin_denies_and_limits() -> None:
    deny_loopback = {"plugins": {"access": {"services": {"echo": {"deny": ["127.0.0.0/8"]}}}}}
    with serve(EchoService, plugins=[AccessControl], settings=deny_loopback) as server:
        sock = socket.create_connection(server.address(), timeout=10)
        assert sock.recv(100) == b""  # refused: closed without a greeting
        sock.close()
    limit_two = {"plugins": {"access": {"default": {"max_per_ip": 2}}}}
    with serve(EchoService, plugins=[AccessControl], settings=limit_two) as server:
        first, second = LineClient(server.address()), LineClient(server.address())
        assert first.read_line() and second.read_line()
        third = socket.create_connection(server.address(), timeout=10)
        assert third.recv(100) == b""
        third.close()
        first.close()
        # A slot freed: once the server has seen the close, a new client gets in.
        # Bounded by attempts, each a little apart: on a busy machine the
        # server may take a while to see the close.
        for _ in range(500):
            with LineClient(server.address()) as again:
                if again.read_line() == b"+ linechat echo ready":
                    break
            time.sleep(0.02)
        else:
            raise AssertionError("the freed slot was never given back")
        second.close()


def test_graceful_stop_flushes_queued_output() -> None:
    big = "z" * 8_000_000
    roomy = {"services": {"echo": {"max_line": 9_000_000, "out_hard_limit": 64_000_000}}}
    # A grace far longer than the flush needs: the test is about order, not speed.
    with serve(EchoService, settings=roomy, grace=60) as server:
        client = LineClient(server.address(), timeout=30)
        client.read_line()
        client.send(f"ECHO {big}\r\n".encode())
        service = server.app.services["echo"]
        # Wait (bounded) until the reply is queued because we are not reading.
        for _ in range(3000):
            if any(channel.out_buffered for channel in list(service.connections)):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the reply was never queued")
        server.call(server.app.stop)
        assert client.read_line() == b"+ " + big.encode()
        assert client.read_line() == b""
        client.close()


def test_graceful_stop_closes_with_a_fin_when_a_command_is_unread() -> None:
    """A command that arrived as the server stopped is dropped, but the close is a FIN, not a reset."""
    model = build_settings_model({"echo": EchoService}, {})
    flags: list[tuple[list[str], Any]] = [
        (["services", "echo", "port"], 0),
        (["services", "echo", "host"], "127.0.0.1"),
    ]
    settings = load_settings(model, None, flags)
    app = App(settings, {"echo": EchoService}, {})
    app.start()
    try:
        client = socket.create_connection(app.address("echo"), timeout=30)
        reader = client.makefile("rb")
        service = app.services["echo"]
        # The reactor is driven by hand, so the command below stays unread until the stop.
        deadline = time.monotonic() + 30
        while not service.connections and time.monotonic() < deadline:
            app.reactor.run_once(0.05)
        while not select.select([client], [], [], 0)[0] and time.monotonic() < deadline:
            app.reactor.run_once(0.05)
        assert reader.readline() == b"+ linechat echo ready\r\n"
        client.sendall(b"ECHO too late\r\n")
        (channel,) = service.connections
        readable, _, _ = select.select([channel.socket], [], [], 30)
        assert readable, "the command never reached the server's socket"
        app.reactor.stop(30)
        while app.reactor.map and time.monotonic() < deadline:
            app.reactor.run_once(0.05)
        assert not app.reactor.map
        assert reader.readline() == b""  # an orderly end of stream: a reset would raise here
        client.close()
    finally:
        app.shutdown()
