"""The server process: one reactor, the enabled services, their listeners, the plugins."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from pathlib import Path
from typing import Any

import structlog
from linechat._compat import asyncore
from linechat.channel import ServiceChannel
from linechat.context import ServiceContext
from linechat.crossprotocol import is_loopback_host
from linechat.limits import RESERVED_FDS, FdReserve, LogThrottle, raise_fd_limit, tune_malloc
from linechat.plugin import Hooks, Plugin
from linechat.preflight import ListenError
from linechat.reactor import READ, Reactor, Timer
from linechat.service import ListenerSpec, Service
from linechat.settings import SettingsError
from linechat.tls import TlsContextProvider

__all__ = ["App", "Listener"]

_log = structlog.get_logger("linechat.app")

# Errors from accept() that concern one would-be connection, not the listener.
_ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
# Errors that mean the process (or the system) has no room for another socket
# now: retrying at once would spin, so the listener backs off.
_ACCEPT_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

#: Connections accepted per readiness event of a listener.
ACCEPT_BUDGET = 128
#: First and longest pause of a listener after descriptors ran out (seconds).
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0


def refusal_bytes(protocol: type[Any], service: Service) -> bytes | None:
    """The line sent to a connection refused for lack of room (the protocol's, else the service's)."""
    line = getattr(protocol, "refusal_line", None)
    if line is None:
        line = getattr(service, "refusal_line", None)
    if line is None:
        return None
    if isinstance(line, str):
        return line.encode("utf-8") + getattr(protocol, "line_ending", b"\r\n")
    return bytes(line)


def set_keepalive(sock: socket.socket, idle: int) -> None:
    """Probe a silent peer after *idle* seconds, then every idle/3 s; three misses drop it (as Redis)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Not every platform has the fine-grained options; SO_KEEPALIVE alone still helps.
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    if hasattr(socket, "TCP_KEEPINTVL"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(idle // 3, 1))
    if hasattr(socket, "TCP_KEEPCNT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


def refuse(sock: socket.socket, line: bytes | None) -> None:
    """Send *line* (best effort, never blocking) and close *sock*."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        if line:
            sock.send(line)
        sock.shutdown(socket.SHUT_WR)
        # Unread input would turn the close into a reset that can overtake
        # the line on its way; take what has arrived.
        sock.recv(65536)
    sock.close()


class Listener(asyncore.dispatcher):
    """A listening socket that hands accepted connections to its service."""

    def __init__(self, app: App, service: Service, spec: ListenerSpec) -> None:
        self._reactor: Reactor | None = None
        self.paused = False  # backing off after descriptors ran out
        self._backoff = 0.0
        self._resume_timer: Timer | None = None
        self.app = app
        self.service = service
        self.spec = spec
        super().__init__(map=app.reactor.map)
        inherited = app.sockets.get((service.name, spec.name))
        if inherited is not None:
            # Bound and listening in the supervisor; this worker shares its accept queue.
            inherited.setblocking(False)
            self.set_socket(inherited)
            self.accepting = True
        else:
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
        self.refusal = refusal_bytes(spec.protocol, service)

    def _reactor_attach(self, reactor: Reactor) -> None:
        self._reactor = reactor

    def _reactor_detach(self) -> None:
        self._reactor = None

    def add_channel(self, map: dict[int, Any] | None = None) -> None:  # noqa: A002
        """Enter the map and watch for incoming connections."""
        super().add_channel(map)
        if self._reactor is not None and not self.paused:
            self._reactor.set_interest(self, READ)

    def readable(self) -> bool:
        """Always ready to accept."""
        return True

    def writable(self) -> bool:
        """A listener never writes."""
        return False

    def handle_accept(self) -> None:
        """Accept waiting connections (bounded per turn); refuse politely past the limits."""
        listening = self.socket
        if listening is None:
            return
        app = self.app
        exhausted = False
        for _ in range(ACCEPT_BUDGET):
            try:
                sock, addr = listening.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                if exc.errno not in _ACCEPT_EXHAUSTED:
                    raise
                exhausted = True
                # No descriptor for the socket: use the spare one to take the
                # connection off the backlog and tell the peer why.
                if not app.fd_reserve.release():
                    break
                spare: socket.socket | None
                try:
                    spare, _ = listening.accept()
                except OSError:
                    spare = None
                if spare is not None:
                    refuse(spare, self.refusal)
                    app.refused(self.service, "no_descriptors", exc.strerror or str(exc))
                if not app.fd_reserve.acquire() or spare is None:
                    break
                continue
            app.accept(self.service, self.spec, sock, addr, listener=self)
        if exhausted:
            self.back_off()
        else:
            self._backoff = 0.0

    def back_off(self) -> None:
        """Stop watching the listener for a while (doubling while it keeps failing), then resume by itself."""
        reactor = self._reactor
        if reactor is None or self.paused:
            return
        self._backoff = min(max(self._backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
        self.paused = True
        reactor.set_interest(self, 0)
        self._resume_timer = reactor.call_later(self._backoff, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        self.paused = False
        if self._reactor is not None and self.socket is not None:
            self._reactor.set_interest(self, READ)
            _log.debug("accept_resumed", service=self.service.name, listener=self.spec.name)

    def handle_error(self) -> None:
        """Log and keep listening: one bad accept must not stop the service."""
        _log.exception("listener_error", service=self.service.name)

    def handle_close(self) -> None:
        """Close the listening socket."""
        self.close()

    def close(self) -> None:
        """Stop listening (and any pending resume)."""
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        super().close()


class App:
    """Runs the enabled services of a settings object on one reactor."""

    def __init__(
        self,
        settings: Any,
        services: dict[str, type[Service]],
        plugins: dict[str, type[Plugin]] | None = None,
        only: list[str] | None = None,
        reactor: Reactor | None = None,
        sockets: dict[tuple[str, str], socket.socket] | None = None,
    ) -> None:
        self.settings = settings
        #: Listening sockets opened before this process began, by (service, listener name): a worker's.
        self.sockets = sockets or {}
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
        tls_settings = getattr(settings, "tls", None)
        #: The server certificate every TLS listener and STARTTLS uses (loaded or made on first use).
        self.tls = TlsContextProvider(tls_settings, self.data_dir) if tls_settings is not None else None
        if self.tls is not None:
            self.reactor.signal_callbacks[signal.SIGHUP] = self.tls.reload
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
        #: Each service's connection cap after the descriptor limit is taken into account.
        self.connection_limits: dict[str, int] = {
            name: svc.settings.max_connections for name, svc in self.services.items()
        }
        self.fd_reserve = FdReserve(hold=False)  # taken at start
        self._refusals: dict[tuple[str, str], LogThrottle] = {}

    def _construct(self, kind: str, name: str, cls: type, settings: Any) -> Any:
        """Build a service or plugin; a failure is logged and skipped, or raised when strict."""
        try:
            if kind == "service":
                return cls(settings, self.context_for(name))
            return cls(settings, self)
        except Exception as exc:
            if getattr(self.settings, "strict", False):
                raise
            if isinstance(exc, SettingsError):
                # The user's to fix, and the message says how: no traceback.
                self.log.error(f"{kind}_failed", name=name, error=str(exc))
            else:
                self.log.exception(f"{kind}_failed", name=name)
            self.failed[f"{kind}:{name}"] = (
                str(exc) if isinstance(exc, SettingsError) else f"{type(exc).__name__}: {exc}"
            )
            return None

    def context_for(self, name: str) -> ServiceContext:
        """What the service *name* runs with: this app's reactor and plugin hooks, its own data directory."""
        return ServiceContext(
            reactor=self.reactor,
            data_dir=self.data_dir / name,
            access_log=bool(self.settings.log.access),
            hooks=self.hooks,
            services=self.services,
            plugins=self.plugins,
            tls=self.tls,
        )

    def start(self) -> None:
        """Bind every listener and start the services; raise ListenError (an OSError) if one cannot listen."""
        self.check_tls()
        try:
            for service in self.services.values():
                for spec in service.listeners():
                    try:
                        listener = Listener(self, service, spec)
                    except OSError as exc:
                        raise ListenError(service.name, spec, exc) from exc
                    self.listeners.append(listener)
                    host, port = listener.address
                    self.log.info("listening", service=service.name, listener=spec.name, host=host, port=port)
                    if not is_loopback_host(host) and not getattr(service, "requires_authentication", False):
                        # Reachable from other machines and nobody has to log in: say so at start.
                        self.log.warning(
                            "listening_beyond_loopback_without_authentication",
                            service=service.name,
                            listener=spec.name,
                            host=host,
                            port=port,
                        )
            for service in self.services.values():
                service.start()
        except BaseException:
            for listener in self.listeners:
                listener.close()
            raise
        self.fd_reserve.acquire()
        self._fit_descriptors()
        # Measured (docs/performance.md): large values then peak lower.
        tune_malloc()
        self.hooks.server_started(self)

    def check_tls(self) -> None:
        """Load (or make, in development) the certificate if a service needs it: a bad one stops the start."""
        if self.tls is not None and any(
            service.starttls or any(spec.tls for spec in service.listeners()) for service in self.services.values()
        ):
            self.tls.check()

    def _fit_descriptors(self) -> None:
        """Raise the soft descriptor limit as far as needed and allowed; cap connections to what is left."""
        if not self.services:
            return
        wanted = sum(s.settings.max_connections for s in self.services.values()) + RESERVED_FDS
        soft, hard = raise_fd_limit(wanted)
        room = max(soft - RESERVED_FDS, 1)
        capped: dict[str, str] = {}
        for name, service in self.services.items():
            configured = service.settings.max_connections
            self.connection_limits[name] = min(configured, room)
            if configured > room:
                capped[name] = f"{configured}->{room}"
        if capped:
            # One line, as redis-server logs when it lowers maxclients.
            self.log.warning(
                "max_connections_capped",
                soft_limit=soft,
                hard_limit="unlimited" if hard < 0 else hard,
                wanted=wanted,
                reserved=RESERVED_FDS,
                services=capped,
                hint="raise `ulimit -n` (the hard limit) to serve more connections",
            )

    def address(self, service: str, listener: str = "main") -> tuple[str, int]:
        """Return the bound address of a service's listener."""
        for item in self.listeners:
            if item.service.name == service and item.spec.name == listener:
                return item.address
        raise KeyError(f"{service}/{listener}")

    def accept(
        self, service: Service, spec: ListenerSpec, sock: socket.socket, addr: Any, listener: Listener | None = None
    ) -> None:
        """Serve a freshly accepted socket, unless a limit or a plugin refuses it."""
        if addr.__class__ is tuple and len(addr) == 2:
            peer = addr  # already (host, port): no copy per connection
        else:
            peer = (str(addr[0]), int(addr[1])) if isinstance(addr, tuple) and len(addr) >= 2 else ("?", 0)
        limit = self.connection_limits.get(service.name, service.settings.max_connections)
        if len(service.connections) >= limit:
            line = listener.refusal if listener is not None else refusal_bytes(spec.protocol, service)
            refuse(sock, line)
            self.refused(service, "max_connections", f"{limit} connections already")
            return
        if not self.hooks.connection_accepted(service, peer):
            self.log.info("connection_refused", service=service.name, peer=f"{peer[0]}:{peer[1]}", reason="plugin")
            sock.close()
            return
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Request/response protocols: never hold a reply back for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if service.settings.tcp_keepalive:
                set_keepalive(sock, service.settings.tcp_keepalive)
        if service.settings.send_buffer is not None:
            # A small kernel buffer makes out_hard_limit bite sooner on a stalled peer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, service.settings.send_buffer)
        try:
            ServiceChannel(sock, service, spec.protocol, map=self.reactor.map, peer=peer, listener=spec)
        except Exception:
            self.log.exception("connection_setup_failed", service=service.name)
            sock.close()

    def refused(self, service: Service, reason: str, detail: str) -> None:
        """Count a refused connection; the log gets the first and then a periodic summary."""
        throttle = self._refusals.get((service.name, reason))
        if throttle is None:
            throttle = self._refusals[(service.name, reason)] = LogThrottle(
                burst=1, interval=10.0, clock=self.reactor.time
            )
        throttle.hit(self.log.warning, "connections_refused", service=service.name, reason=reason, detail=detail)

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
        self.fd_reserve.close()
        self.reactor.close()
        self.log.info("stopped")
