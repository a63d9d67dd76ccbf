"""Test harnesses for services: in memory (no sockets) and on a loopback port.

In memory, a connection runs the real framing, dispatch and output queue;
only the socket is replaced, and time is a fake clock you advance::

    harness = ServiceHarness(EchoService)
    client = harness.connect()
    client.send(b"ECHO hi\\r\\n")
    assert client.read_lines() == ["+ linechat echo ready", "+ hi"]
"""

from __future__ import annotations

import dataclasses
import itertools
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from linechat.app import App
from linechat.channel import ServiceChannel
from linechat.context import ServiceContext
from linechat.plugin import Plugin
from linechat.reactor import Reactor
from linechat.service import ListenerSpec, Service, ServiceSettings
from linechat.settings import build_settings_model, load_settings
from linechat.testing.process import ServeProcess
from linechat.tls import TlsContextProvider, TlsSettings
from linechat.transport import TlsTransport, Transport

__all__ = [
    "FakeClock",
    "LineClient",
    "MemoryClient",
    "RunningServer",
    "ServeProcess",
    "ServiceHarness",
    "connect_when_listening",
    "free_port",
    "serve",
]

_fake_fds = itertools.count(1_000_000)


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class _MemorySocket:
    """Just enough of a socket for a channel: sends land in a buffer."""

    family = socket.AF_UNIX

    def __init__(self, peer: tuple[str, int]) -> None:
        self.outbox = bytearray()
        self.peer = peer
        self._fd = next(_fake_fds)
        self.closed = False
        self.window: int | None = None  # bytes the peer accepts before the socket is "full"
        self.inbox: deque[bytes] = deque()  # bytes "on the wire" towards the service (TLS clients)

    def fileno(self) -> int:
        return -1 if self.closed else self._fd

    def setblocking(self, flag: bool) -> None:
        pass

    def getpeername(self) -> tuple[str, int]:
        return self.peer

    def _take(self, data: bytes) -> int:
        if self.closed:
            raise BrokenPipeError(32, "closed")
        if self.window is not None:
            if self.window <= 0:
                raise BlockingIOError(11, "full")
            data = data[: self.window]
            self.window -= len(data)
        self.outbox += data
        return len(data)

    def send(self, data: Any) -> int:
        return self._take(bytes(data))

    def sendmsg(self, buffers: list[Any]) -> int:
        return self._take(b"".join(bytes(b) for b in buffers))

    def recv(self, size: int) -> bytes:
        if not self.inbox:
            raise BlockingIOError(11, "no data in memory")
        data = self.inbox.popleft()
        if len(data) > size:
            self.inbox.appendleft(data[size:])
            data = data[:size]
        return data

    def close(self) -> None:
        self.closed = True

    def shutdown(self, how: int) -> None:
        pass


class _MemoryChannel(ServiceChannel):
    """A service channel whose socket is a buffer; the reactor drives only its timers."""

    def _update_interest(self) -> None:
        pass


class _Wire(Transport):
    """The client's end of a memory connection: what it sends lands in the service's inbox."""

    def __init__(self, sock: _MemorySocket) -> None:
        self.sock = sock

    def send(self, data: Any) -> int:
        self.sock.inbox.append(bytes(data))
        return len(data)

    def recv(self, size: int) -> bytes:
        if not self.sock.outbox:
            raise BlockingIOError(11, "nothing sent yet")
        data = bytes(self.sock.outbox[:size])
        del self.sock.outbox[:size]
        return data


class MemoryClient:
    """One in-memory connection: feed it bytes, read what the service sent (in the clear or through TLS)."""

    def __init__(self, harness: ServiceHarness, spec: ListenerSpec, peer: tuple[str, int]) -> None:
        self.harness = harness
        self._sock = _MemorySocket(peer)
        self._map: dict[int, Any] = {}
        self._tls: TlsTransport | None = None  # the client's TLS layer, once it speaks TLS
        self._plain_in = bytearray()  # what the client's TLS layer decrypted, not yet read
        self.channel = _MemoryChannel(
            self._sock, harness.service, spec.protocol, map=self._map, peer=peer, listener=spec
        )
        self.channel._reactor_attach(harness.reactor)
        self.protocol = self.channel.protocol
        if spec.tls:
            self.start_tls()

    @property
    def secure(self) -> bool:
        """True once this client speaks TLS with the service."""
        return self._tls is not None

    def start_tls(self) -> None:
        """Speak TLS from now on (after the service said go ahead to STARTTLS, or on a TLS listener)."""
        self._tls = TlsTransport(
            _Wire(self._sock), self.harness.tls_client_context(), server_side=False, server_hostname="localhost"
        )
        self._pump()

    def _pump(self) -> None:
        """Move bytes both ways through the TLS layers until nothing moves any more."""
        tls = self._tls
        assert tls is not None
        for _ in range(1000):
            moved = False
            if not tls.handshake_done:
                tls.send(b"")  # a client speaks first: this starts (or advances) the handshake
            tls.flush()
            while self._sock.inbox and not self.channel.closed:
                moved = True
                self.channel._last_input = self.harness.clock.now
                self.channel.handle_read()
            self.harness.run_ready()
            if not self.channel.closed:
                self.channel.initiate_send()
            if self._sock.outbox:
                try:
                    got = tls.recv(1 << 16)
                except BlockingIOError:
                    got = b""
                    moved = True
                else:
                    self._plain_in += got
                    moved = True
                    if not got:
                        break
            if not moved and not tls.wants_write:
                break
        tls.flush()

    def send(self, data: bytes | str) -> None:
        """Deliver *data* to the service as if the peer had sent it."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.channel.closed:
            raise ConnectionError("the service closed this connection")
        if self._tls is not None:
            view = memoryview(data)
            for _ in range(10000):
                if not view:
                    break
                sent = self._tls.send(view)
                view = view[sent:]
                self._pump()
            return
        self.channel._last_input = self.harness.clock.now
        self.channel.feed(data)
        self.harness.run_ready()

    def read(self) -> bytes:
        """Return (and forget) everything the service sent so far."""
        if self._tls is not None:
            self._pump()
            data = bytes(self._plain_in)
            self._plain_in.clear()
            return data
        self.harness.run_ready()
        self.channel.initiate_send()
        data = bytes(self._sock.outbox)
        self._sock.outbox.clear()
        return data

    def read_lines(self, encoding: str = "utf-8") -> list[str]:
        """Return what the service sent, split into lines without their endings."""
        return self.read().decode(encoding).splitlines()

    def stall(self, window: int = 0) -> None:
        """Make the peer stop reading: the socket takes only *window* more bytes."""
        self._sock.window = window

    def unstall(self) -> None:
        """Let the peer read again, flushing what was queued."""
        self._sock.window = None
        self.channel.initiate_send()

    @property
    def closed(self) -> bool:
        """True once the service closed the connection."""
        return self.channel.closed

    def close(self) -> None:
        """Close from the peer's side."""
        self.channel.handle_close()


class ServiceHarness:
    """Drives a service in memory: connections without sockets, time you advance."""

    def __init__(
        self,
        service_cls: type[Service],
        settings: ServiceSettings | None = None,
        data_dir: str | Path | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = service_cls.Settings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        self.clock = FakeClock()
        self.reactor = Reactor(clock=self.clock)
        context = ServiceContext(self.reactor, data_dir=Path(data_dir) if data_dir is not None else None)
        self.service = service_cls(settings, context)
        self.service.start()
        self._ports = itertools.count(40000)

    def _tls_provider(self) -> TlsContextProvider:
        """The service's certificate: a development CA made once, in the data directory or a temporary one."""
        provider = self.service.context.tls
        if provider is None:
            folder = self.service.context.data_dir
            if folder is None:
                self._tmp = tempfile.TemporaryDirectory()
                folder = Path(self._tmp.name)
            provider = TlsContextProvider(TlsSettings(), folder)
            # The context is frozen: the harness gives the service its certificate before any TLS connection.
            object.__setattr__(self.service.context, "tls", provider)
        return provider

    def tls_client_context(self) -> ssl.SSLContext:
        """A client context trusting the service's development certificate."""
        provider = self._tls_provider()
        provider.check()
        return ssl.create_default_context(cafile=str(provider.ca_file))

    def connect(
        self, listener: str = "main", peer: tuple[str, int] | None = None, *, tls: bool = False
    ) -> MemoryClient:
        """Open an in-memory connection to one of the service's listeners (through TLS when *tls*)."""
        spec = self._spec(listener)
        if tls or spec.tls:
            self._tls_provider()
            spec = dataclasses.replace(spec, tls=True)
        return MemoryClient(self, spec, peer or ("127.0.0.1", next(self._ports)))

    def _spec(self, name: str) -> ListenerSpec:
        for spec in self.service.listeners():
            if spec.name == name:
                return spec
        raise KeyError(name)

    def advance(self, seconds: float) -> None:
        """Move the clock forward and run the timers that came due."""
        self.clock.now += seconds
        self.reactor._run_timers()
        self.run_ready()

    def run_ready(self) -> None:
        """Run callbacks queued with call_soon (resumed input, deferred replies)."""
        for _ in range(100):
            if not (self.reactor._ready or self.reactor._threadsafe):
                break
            self.reactor._run_ready()

    def close(self) -> None:
        """Close every connection and stop the service."""
        for channel in list(self.service.connections):
            channel.close()
        self.service.stop()
        self.reactor.close()

    def __enter__(self) -> ServiceHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunningServer:
    """A server running in a background thread on loopback ports."""

    def __init__(self, app: App, thread: threading.Thread) -> None:
        self.app = app
        self.thread = thread

    def address(self, service: str | None = None, listener: str = "main") -> tuple[str, int]:
        """The (host, port) a service listens on (the only service when not named)."""
        if service is None:
            service = next(iter(self.app.services))
        return self.app.address(service, listener)

    def call(self, func: Any, *args: Any) -> None:
        """Run *func* on the server's thread."""
        self.app.reactor.call_soon_threadsafe(func, *args)

    def tls_client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (the development CA, or tls.ca_file)."""
        tls = self.app.tls
        if tls is None:
            raise RuntimeError("this server has no TLS settings")
        tls.check()
        cafile = tls.ca_file or tls.settings.ca_file
        return ssl.create_default_context(cafile=str(cafile) if cafile else None)


@contextmanager
def serve(
    services: type[Service] | list[type[Service]],
    data_dir: str | Path | None = None,
    plugins: list[type[Plugin]] | None = None,
    settings: dict[str, Any] | None = None,
    grace: float = 2.0,
) -> Iterator[RunningServer]:
    """Run services on ephemeral loopback ports in a thread; stop them on exit.

    *settings* is a nested dict like the TOML file, e.g.
    ``{"services": {"echo": {"greeting": "hi"}}}``; ports default to 0.
    """
    service_list = services if isinstance(services, list) else [services]
    service_map = {cls.name: cls for cls in service_list}
    plugin_map = {cls.name: cls for cls in plugins or []}
    flags: list[tuple[list[str], Any]] = []
    for name in service_map:
        flags.append((["services", name, "port"], 0))
        flags.append((["services", name, "host"], "127.0.0.1"))
    for path, value in _flatten(settings or {}):
        flags.append((path, value))
    if data_dir is not None:
        flags.append((["data_dir"], str(data_dir)))
    flags.append((["shutdown_grace"], grace))
    model = build_settings_model(service_map, plugin_map)
    loaded = load_settings(model, None, flags)
    app = App(loaded, service_map, plugin_map)
    app.start()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            app.reactor.run(handle_signals=False, grace=grace)
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name="linechat-test-server", daemon=True)
    thread.start()
    try:
        yield RunningServer(app, thread)
    finally:
        app.reactor.call_soon_threadsafe(app.stop)
        thread.join(grace + 10)
        app.shutdown()
        if failure:
            raise failure[0]


def _flatten(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[list[str], Any]]:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, (*prefix, key))
        else:
            yield [*prefix, key], value


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on *host* right now (for a server started in a subprocess)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def connect_when_listening(port: int, host: str = "127.0.0.1", within: float = 60.0) -> socket.socket:
    """Connect once a server (say ``linechat serve`` in a subprocess) listens; fail after *within* seconds."""
    # *within* is a safety net, never a wait: a busy machine can take seconds just to start the interpreter
    # and import the server (1.8-3.6 s measured at load 5 on two cores), so it is far above that.
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection((host, port), timeout=within)
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise AssertionError(f"nothing listened on {host}:{port} within {within} s") from None
            time.sleep(0.02)


class LineClient:
    """A tiny blocking line client for loopback tests (timeouts keep tests bounded)."""

    def __init__(self, address: tuple[str, int] | None, timeout: float = 10.0) -> None:
        if address is not None:
            self.sock = socket.create_connection(address, timeout=timeout)
        self._buf = bytearray()
        #: True once the server closed the connection.
        self.eof = False

    @classmethod
    def from_socket(cls, sock: socket.socket) -> LineClient:
        """Wrap a socket the test connected itself (to set options before connect, say)."""
        client = cls(None)
        client.sock = sock
        return client

    def send(self, data: bytes | str) -> None:
        """Send bytes (a str is encoded as UTF-8)."""
        self.sock.sendall(data.encode("utf-8") if isinstance(data, str) else data)

    def read_line(self) -> bytes:
        """Read one line, without its CRLF or LF; b"" at end of stream."""
        scanned = 0
        while (end := self._buf.find(b"\n", scanned)) < 0:
            scanned = len(self._buf)
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                line = bytes(self._buf)
                self._buf.clear()
                return line
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line.rstrip(b"\r")

    def read_exactly(self, size: int) -> bytes:
        """Read exactly *size* bytes."""
        while len(self._buf) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed early")
            self._buf += chunk
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
