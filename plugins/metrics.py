"""Counts what every service does, for the HTTP service's ``/metrics``: connections, commands, errors, bytes.

The plugin only counts (a dict increment per hook call); the Prometheus
exposition is built from these counters when ``/metrics`` is scraped
(:mod:`linechat.services.http.metrics`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from linechat.plugin import Plugin, PluginSettings
from pydantic import Field

if TYPE_CHECKING:
    from linechat import Protocol
    from linechat.app import App

__all__ = ["Metrics", "MetricsSettings"]


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

    def connection_closed(self, protocol: Protocol) -> None:
        """Keep the byte counts of a connection that ends (when the channel keeps them)."""
        name = protocol.service.name
        channel: Any = protocol.channel
        self.bytes_received[name] += getattr(channel, "bytes_received", 0)
        self.bytes_sent[name] += getattr(channel, "bytes_sent", 0)
        if getattr(channel, "close_reason", None) == "slow_consumer":
            self.slow_consumers[name] += 1

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
