"""The server process: one reactor, the enabled services, their listeners, the plugins."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import structlog
from linechat._compat import asyncore
from linechat.plugin import Hooks, Plugin
from linechat.reactor import READ, Reactor
from linechat.service import ListenerSpec, Service, ServiceChannel

__all__ = ["App", "Listener"]

_log = structlog.get_logger("linechat.app")

# Errors from accept() that concern one would-be connection, not the listener.
_ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.ENOBUFS, errno.ENOMEM, errno.EPERM})


class Listener(asyncore.dispatcher):
    """A listening socket that hands accepted connections to its service."""

    def __init__(self, app: App, service: Service, spec: ListenerSpec) -> None:
        self._reactor: Reactor | None = None
        self.app = app
        self.service = service
        self.spec = spec
        super().__init__(map=app.reactor.map)
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        self.create_socket(family, socket.SOCK_STREAM)
        self.set_reuse_addr()
        try:
            self.bind((spec.host, spec.port))
        except OSError:
            self.close()
            raise
        self.listen(service.settings.backlog)
        assert self.socket is not None
        self.address: tuple[str, int] = self.socket.getsockname()[:2]

    def _reactor_attach(self, reactor: Reactor) -> None:
        self._reactor = reactor

    def _reactor_detach(self) -> None:
        self._reactor = None

    def add_channel(self, map: dict[int, Any] | None = None) -> None:  # noqa: A002
        """Enter the map and watch for incoming connections."""
        super().add_channel(map)
        if self._reactor is not None:
            self._reactor.set_interest(self, READ)

    def readable(self) -> bool:
        """Always ready to accept."""
        return True

    def writable(self) -> bool:
        """A listener never writes."""
        return False

    def handle_accept(self) -> None:
        """Accept every waiting connection (bounded per turn)."""
        listening = self.socket
        if listening is None:
            return
        for _ in range(128):
            try:
                sock, addr = listening.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    _log.error("accept_failed", service=self.service.name, error=str(exc))
                    return
                raise
            self.app.accept(self.service, self.spec, sock, addr)

    def handle_error(self) -> None:
        """Log and keep listening: one bad accept must not stop the service."""
        _log.exception("listener_error", service=self.service.name)

    def handle_close(self) -> None:
        """Close the listening socket."""
        self.close()


class App:
    """Runs the enabled services of a settings object on one reactor."""

    def __init__(
        self,
        settings: Any,
        services: dict[str, type[Service]],
        plugins: dict[str, type[Plugin]] | None = None,
        only: list[str] | None = None,
        reactor: Reactor | None = None,
    ) -> None:
        self.settings = settings
        self.reactor = reactor or Reactor()
        self.data_dir = Path(settings.data_dir)
        self.log = _log
        self.failed: dict[str, str] = {}  # "kind:name" -> why it was skipped
        plugin_objs: list[Plugin] = []
        for name, plugin_cls in sorted((plugins or {}).items()):
            plugin_settings = getattr(settings.plugins, name)
            if plugin_settings.enabled:
                plugin = self._construct("plugin", name, plugin_cls, plugin_settings)
                if plugin is not None:
                    plugin_objs.append(plugin)
        self.plugins = plugin_objs
        self.hooks = Hooks(plugin_objs)
        self.reactor.stop_callbacks.append(lambda: self.hooks.server_stopping(self))
        self.services: dict[str, Service] = {}
        for name, service_cls in sorted(services.items()):
            service_settings = getattr(settings.services, name)
            if only is not None:
                if name not in only:
                    continue
            elif not service_settings.enabled:
                continue
            service = self._construct("service", name, service_cls, service_settings)
            if service is not None:
                self.services[name] = service
        self.listeners: list[Listener] = []

    def _construct(self, kind: str, name: str, cls: type, settings: Any) -> Any:
        """Build a service or plugin; a failure is logged and skipped, or raised when strict."""
        try:
            if kind == "service":
                return cls(settings, app=self)
            return cls(settings, self)
        except Exception as exc:
            if getattr(self.settings, "strict", False):
                raise
            self.log.exception(f"{kind}_failed", name=name)
            self.failed[f"{kind}:{name}"] = f"{type(exc).__name__}: {exc}"
            return None

    def start(self) -> None:
        """Bind every listener and start the services; raise OSError if a port is taken."""
        try:
            for service in self.services.values():
                for spec in service.listeners():
                    listener = Listener(self, service, spec)
                    self.listeners.append(listener)
                    host, port = listener.address
                    self.log.info("listening", service=service.name, listener=spec.name, host=host, port=port)
            for service in self.services.values():
                service.start()
        except BaseException:
            for listener in self.listeners:
                listener.close()
            raise
        self.hooks.server_started(self)

    def address(self, service: str, listener: str = "main") -> tuple[str, int]:
        """Return the bound address of a service's listener."""
        for item in self.listeners:
            if item.service.name == service and item.spec.name == listener:
                return item.address
        raise KeyError(f"{service}/{listener}")

    def accept(self, service: Service, spec: ListenerSpec, sock: socket.socket, addr: Any) -> None:
        """Serve a freshly accepted socket, unless a limit or a plugin refuses it."""
        peer = (str(addr[0]), int(addr[1])) if isinstance(addr, tuple) and len(addr) >= 2 else ("?", 0)
        if len(service.connections) >= service.settings.max_connections:
            self.log.warning("connection_refused", service=service.name, peer=f"{peer[0]}:{peer[1]}", reason="max")
            sock.close()
            return
        if not self.hooks.connection_accepted(service, peer):
            self.log.info("connection_refused", service=service.name, peer=f"{peer[0]}:{peer[1]}", reason="plugin")
            sock.close()
            return
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Request/response protocols: never hold a reply back for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if service.settings.send_buffer is not None:
            # A small kernel buffer makes out_hard_limit bite sooner on a stalled peer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, service.settings.send_buffer)
        try:
            ServiceChannel(sock, service, spec.protocol, map=self.reactor.map, peer=peer, listener=spec)
        except Exception:
            self.log.exception("connection_setup_failed", service=service.name)
            sock.close()

    def run(self) -> None:
        """Start, serve until stopped (SIGINT/SIGTERM), then stop the services."""
        self.start()
        try:
            self.reactor.run(grace=self.settings.shutdown_grace)
        finally:
            self.shutdown()

    def stop(self) -> None:
        """Begin a graceful stop (from the reactor's thread)."""
        self.reactor.stop(self.settings.shutdown_grace)

    def shutdown(self) -> None:
        """Stop the services and release the reactor (after the loop has ended)."""
        for service in self.services.values():
            try:
                service.stop()
            except Exception:
                self.log.exception("service_stop_failed", service=service.name)
        self.reactor.close()
        self.log.info("stopped")
