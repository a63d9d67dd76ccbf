"""Counts what every service does, for the HTTP service's ``/metrics``: connections, commands, errors, bytes.

The plugin only counts (a dict increment per hook call); the Prometheus
exposition is built from these counters when ``/metrics`` is scraped
(:mod:`linechat.services.http.metrics`).

Bytes in and out are not counted per read or write (that would cost every
service on its hottest path): they are the kernel's own totals for each TCP
connection (``TCP_INFO``: bytes received, and bytes sent and acknowledged by
the peer), read from live connections when scraped and from each connection
just before it closes (the ``connection_closing`` hook).  Slow-consumer cuts
come from the ``slow_consumer`` hook.  Nothing is added to a connection.
"""

from __future__ import annotations

import socket
import struct
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from linechat.plugin import Plugin, PluginSettings
from pydantic import Field

if TYPE_CHECKING:
    from linechat import Protocol
    from linechat.app import App

__all__ = ["Metrics", "MetricsSettings", "tcp_bytes"]

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received, u64 each, since Linux 4.2.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_BYTES_OFFSET = 120
_INET = (socket.AF_INET, socket.AF_INET6)


def tcp_bytes(sock: Any) -> tuple[int, int] | None:
    """``(sent, received)`` bytes of a TCP socket according to the kernel, or None where it cannot say."""
    if _TCP_INFO is None or not isinstance(sock, socket.socket) or sock.family not in _INET:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _BYTES_OFFSET + 16:
        return None
    acked, received = struct.unpack_from("=QQ", info, _BYTES_OFFSET)
    return acked, received


class MetricsSettings(PluginSettings):
    """Settings of the metrics plugin."""

    max_commands: int = Field(
        200, ge=1, description="distinct command names kept per service; more are counted as OTHER"
    )


class Metrics(Plugin):
    """Per-service counters fed by the framework's hooks."""

    name = "metrics"
    Settings = MetricsSettings
    description = "counts connections, commands, errors and bytes per service for /metrics"

    settings: MetricsSettings

    def __init__(self, settings: PluginSettings, app: App) -> None:
        super().__init__(settings, app)
        self.connections_total: defaultdict[str, int] = defaultdict(int)
        #: (service, command, status) -> count
        self.commands: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        #: (service, command) -> seconds spent
        self.command_seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        #: service -> reply bytes counted by command (what the hook reports)
        self.reply_bytes: defaultdict[str, int] = defaultdict(int)
        #: service -> bytes of closed connections (live ones are read from their channels)
        self.bytes_received: defaultdict[str, int] = defaultdict(int)
        self.bytes_sent: defaultdict[str, int] = defaultdict(int)
        self.slow_consumers: defaultdict[str, int] = defaultdict(int)
        self._names: defaultdict[str, set[str]] = defaultdict(set)

    def connection_opened(self, protocol: Protocol) -> None:
        """Count a connection."""
        self.connections_total[protocol.service.name] += 1

    def connection_closing(self, protocol: Protocol) -> None:
        """Take the kernel's byte totals of a connection about to close."""
        counted = tcp_bytes(getattr(protocol.channel, "socket", None))
        if counted is not None:
            name = protocol.service.name
            self.bytes_sent[name] += counted[0]
            self.bytes_received[name] += counted[1]

    def slow_consumer(self, protocol: Protocol, queued: int) -> None:
        """Count a peer cut off for not reading."""
        self.slow_consumers[protocol.service.name] += 1

    def live_bytes(self, channels: Any) -> tuple[int, int]:
        """``(sent, received)`` summed over open connections."""
        sent = received = 0
        for channel in channels:
            counted = tcp_bytes(getattr(channel, "socket", None))
            if counted is not None:
                sent += counted[0]
                received += counted[1]
        return sent, received

    def command_handled(self, protocol: Protocol, name: str | None, status: str, size: int, duration: float) -> None:
        """Count a command by name and status."""
        service = protocol.service.name
        command = name or "UNKNOWN"
        names = self._names[service]
        if command not in names:
            # Command names can come from the peer (unknown verbs, HTTP methods): bound the label set.
            if len(names) >= self.settings.max_commands:
                command = "OTHER"
            else:
                names.add(command)
        self.commands[service, command, status] += 1
        self.command_seconds[service, command] += duration
        self.reply_bytes[service] += size
