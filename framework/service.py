"""Services: a name, settings, shared state, and the listeners whose connections speak its protocols.

A :class:`Service` is built once per process with its settings and a
:class:`~linechat.context.ServiceContext` (reactor, data directory, hooks);
it lists its listeners (:class:`ListenerSpec`: host, port, protocol class)
and keeps state shared by its connections.  The app binds the listeners and
builds a channel (``linechat.channel``) per accepted connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from linechat.context import ServiceContext
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from linechat.channel import ServiceChannel
    from linechat.protocol import Protocol
    from linechat.reactor import Reactor

__all__ = ["ListenerSpec", "Service", "ServiceSettings"]


class ServiceSettings(BaseModel):
    """Settings every service has; a service subclasses this to add its own."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="serve this service")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(0, ge=0, le=65535, description="TCP port (0: any free port)")
    tls_port: int = Field(0, ge=0, le=65535, description="TCP port speaking TLS from the first byte (0: off)")
    max_line: int = Field(4096, ge=16, description="longest command line in bytes")
    max_connections: int = Field(10000, ge=1, description="connections served at once")
    idle_timeout: float | None = Field(
        300.0, ge=0, description="seconds of silence before a peer is dropped (0 or null: never)"
    )
    line_timeout: float | None = Field(
        60.0, ge=0, description="seconds a peer may take to finish a command line it has begun (0 or null: no limit)"
    )
    bad_line_limit: int = Field(
        10, ge=0, description="over-long or undecodable lines, each within a minute of the last, before a disconnect"
    )
    tcp_keepalive: int = Field(
        300, ge=0, description="seconds of silence before TCP keepalive probes find a vanished peer (0: off)"
    )
    out_high_water: int = Field(1 << 20, ge=1024, description="queued output that pauses reading from a peer")
    out_low_water: int = Field(256 << 10, ge=0, description="queued output that resumes reading")
    out_hard_limit: int = Field(
        16 << 20, ge=1024, description="queued output that disconnects a peer when more is queued behind it"
    )
    out_soft_limit: int | None = Field(
        8 << 20, ge=1024, description="queued output a peer may stay above for out_soft_seconds (null: none)"
    )
    out_soft_seconds: float = Field(60.0, gt=0, description="grace time above out_soft_limit before a disconnect")
    backlog: int = Field(512, ge=1, description="listen() backlog")
    send_buffer: int | None = Field(
        None, ge=4096, description="SO_SNDBUF of each accepted socket (None: the system's, which may be megabytes)"
    )


@dataclass
class ListenerSpec:
    """One listening socket of a service and the protocol its connections speak."""

    protocol: type[Protocol]
    host: str
    port: int
    name: str = "main"
    options: dict[str, Any] = field(default_factory=dict)
    #: TLS from the first byte (implicit TLS) on this listener.
    tls: bool = False


class Service:
    """A named service: settings, shared state, and the protocol(s) its listeners speak."""

    #: The name used in settings (``[services.<name>]``), logs and ``--only``.
    name: ClassVar[str] = ""
    #: The pydantic model of this service's settings.
    Settings: ClassVar[type[ServiceSettings]] = ServiceSettings
    #: The protocol of the single listener (override :meth:`listeners` for more).
    protocol: ClassVar[type[Protocol] | None] = None
    #: Shown by ``linechat services``.
    description: ClassVar[str] = ""
    #: True when the protocol can switch to TLS mid-session (STARTTLS): the certificate is loaded at start.
    starttls: ClassVar[bool] = False
    #: True when several worker processes may each run this service (``serve --workers N``): nothing
    #: is kept in one process's memory that the others must see. Off unless a service says so.
    multiprocess: ClassVar[bool] = False

    def __init__(
        self, settings: ServiceSettings, context: ServiceContext | None = None, *, reactor: Reactor | None = None
    ) -> None:
        if context is None:
            if reactor is None:
                raise ValueError("a service needs a context (or at least a reactor)")
            context = ServiceContext(reactor)
        elif reactor is not None and reactor is not context.reactor:
            raise ValueError("pass the reactor in the context, not beside it")
        self.settings = settings
        #: What the running process provides (reactor, data directory, plugin hooks).
        self.context = context
        self.reactor: Reactor = context.reactor
        self.access_log = context.access_log
        self.log: Any = structlog.get_logger("linechat.service").bind(service=self.name)
        self.connections: set[ServiceChannel] = set()
        self._log_budgets: dict[str, list[float]] = {}
        #: This service's directory for files (None: keep nothing on disk).
        self.data_dir = context.data_dir

    def log_budget(self, event: str, per_minute: int = 60) -> bool:
        """True if a per-connection warning *event* may still be logged this minute (across all connections)."""
        now = self.reactor.time()
        budget = self._log_budgets.get(event)
        if budget is None or now - budget[0] >= 60.0:
            # [window start, logged, suppressed]
            if budget is not None and budget[2]:
                self.log.warning("log_suppressed", of=event, suppressed=int(budget[2]))
            budget = self._log_budgets[event] = [now, 0.0, 0.0]
        if budget[1] < per_minute:
            budget[1] += 1
            return True
        budget[2] += 1
        return False

    def can_share_processes(self) -> bool:
        """True when this service, as configured, may run in several worker processes (default: ``multiprocess``)."""
        return type(self).multiprocess

    def listeners(self) -> list[ListenerSpec]:
        """Return the listening sockets to open: ``host``/``port``, and ``tls_port`` when set."""
        if self.protocol is None:
            raise NotImplementedError(f"{type(self).__name__} sets no protocol and overrides no listeners()")
        specs = [ListenerSpec(self.protocol, self.settings.host, self.settings.port)]
        if self.settings.tls_port:
            specs.append(ListenerSpec(self.protocol, self.settings.host, self.settings.tls_port, name="tls", tls=True))
        return specs

    def start(self) -> None:
        """Called after the listeners are bound (open storage, start timers)."""

    def stop(self) -> None:
        """Called when the server stops, after connections were asked to close."""

    def connection_made(self, channel: ServiceChannel) -> None:
        """Track a new connection."""
        self.connections.add(channel)

    def _channel_closed(self, channel: ServiceChannel) -> None:
        self.connections.discard(channel)
