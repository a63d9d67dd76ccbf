"""``/metrics``: the Prometheus text exposition of every service on the server, built by prometheus_client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from linechat import Service

__all__ = ["CONTENT_TYPE", "LinechatCollector", "exposition", "make_registry"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _metrics_plugin(plugins: Sequence[Any]) -> Any:
    for plugin in plugins:
        if getattr(plugin, "name", "") == "metrics":
            return plugin
    return None


class LinechatCollector(Collector):
    """Reads the services and the metrics plugin at scrape time (nothing is counted here)."""

    def __init__(self, services: Mapping[str, Service], plugins: Sequence[Any]) -> None:
        self.services = services
        self.plugins = plugins
        self.started = time.time()

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family."""
        services = self.services
        plugin = _metrics_plugin(self.plugins)
        open_ = GaugeMetricFamily("linechat_connections_open", "Connections open now", labels=["service"])
        queued = GaugeMetricFamily(
            "linechat_output_queued_bytes", "Reply bytes waiting for slow peers now", labels=["service"]
        )
        for name, service in services.items():
            open_.add_metric([name], len(service.connections))
            queued.add_metric([name], sum(getattr(ch, "out_buffered", 0) for ch in list(service.connections)))
        yield open_
        yield queued
        up = GaugeMetricFamily("linechat_start_time_seconds", "When the server started (Unix time)")
        up.add_metric([], self.started)
        yield up
        if plugin is not None:
            yield from self._from_plugin(plugin)
        yield from self._smtp(services)
        yield from self._redis(services)

    def _from_plugin(self, plugin: Any) -> Iterator[Metric]:
        services = self.services
        total = CounterMetricFamily("linechat_connections", "Connections accepted", labels=["service"])
        for name in services:
            total.add_metric([name], plugin.connections_total.get(name, 0))
        yield total
        commands = CounterMetricFamily(
            "linechat_commands", "Commands (HTTP: requests by method) answered", labels=["service", "command", "status"]
        )
        errors: dict[str, int] = dict.fromkeys(services, 0)
        for (service, command, status), count in sorted(plugin.commands.items()):
            commands.add_metric([service, command, status], count)
            if status == "error":
                errors[service] = errors.get(service, 0) + count
        yield commands
        seconds = CounterMetricFamily(
            "linechat_command_seconds", "Time spent handling commands", labels=["service", "command"]
        )
        for (service, command), value in sorted(plugin.command_seconds.items()):
            seconds.add_metric([service, command], value)
        yield seconds
        errors_family = CounterMetricFamily(
            "linechat_errors", "Commands answered with an error (protocol errors, HTTP 4xx/5xx)", labels=["service"]
        )
        for service, count in sorted(errors.items()):
            errors_family.add_metric([service], count)
        yield errors_family
        received = CounterMetricFamily(
            "linechat_received_bytes", "Bytes received from peers (TCP, the kernel's count)", labels=["service"]
        )
        sent = CounterMetricFamily(
            "linechat_sent_bytes", "Bytes sent to peers and acknowledged (TCP, the kernel's count)", labels=["service"]
        )
        replies = CounterMetricFamily("linechat_reply_bytes", "Bytes of command replies", labels=["service"])
        slow = CounterMetricFamily(
            "linechat_slow_consumer_disconnects", "Peers cut off for not reading their replies", labels=["service"]
        )
        for name, service in services.items():
            live_out, live_in = plugin.live_bytes(list(service.connections))
            received.add_metric([name], plugin.bytes_received.get(name, 0) + live_in)
            sent.add_metric([name], plugin.bytes_sent.get(name, 0) + live_out)
            replies.add_metric([name], plugin.reply_bytes.get(name, 0))
            slow.add_metric([name], plugin.slow_consumers.get(name, 0))
        yield received
        yield sent
        yield replies
        yield slow

    def _smtp(self, services: Mapping[str, Any]) -> Iterator[Metric]:
        stored = GaugeMetricFamily("linechat_smtp_messages_stored", "Messages in the store", labels=["service"])
        received = CounterMetricFamily(
            "linechat_smtp_messages_received", "Messages stored since start", labels=["service"]
        )
        pending = GaugeMetricFamily(
            "linechat_smtp_deliveries_pending",
            "Messages waiting for or being stored by a delivery thread",
            labels=["service"],
        )
        seen = False
        for name, service in services.items():
            inbox = getattr(service, "inbox", None)
            if inbox is None or not hasattr(inbox, "added_total"):
                continue
            seen = True
            stored.add_metric([name], len(inbox))
            received.add_metric([name], inbox.added_total)
            pending.add_metric([name], getattr(service, "deliveries_pending", 0))
        if seen:
            yield stored
            yield received
            yield pending

    def _redis(self, services: Mapping[str, Any]) -> Iterator[Metric]:
        keys = GaugeMetricFamily("linechat_redis_keys", "Keys per database", labels=["service", "db"])
        processed = CounterMetricFamily("linechat_redis_commands_processed", "Commands run", labels=["service"])
        expired = CounterMetricFamily("linechat_redis_expired_keys", "Keys expired", labels=["service"])
        aof = GaugeMetricFamily("linechat_redis_aof_size_bytes", "Size of the append-only file", labels=["service"])
        seen = False
        for name, service in services.items():
            dbs = getattr(service, "dbs", None)
            if dbs is None or not hasattr(service, "commands_processed"):
                continue
            seen = True
            for db in dbs:
                try:
                    count = len(db)
                except TypeError:
                    count = len(getattr(db, "data", ()))
                keys.add_metric([name, str(getattr(db, "index", 0))], count)
            processed.add_metric([name], service.commands_processed)
            expired.add_metric([name], getattr(service, "expired_keys", 0))
            path = service.aof_path() if callable(getattr(service, "aof_path", None)) else None
            if getattr(service, "aof", None) is not None and path is not None:
                with contextlib.suppress(OSError):
                    aof.add_metric([name], Path(path).stat().st_size)
        if seen:
            yield keys
            yield processed
            yield expired
            yield aof


def make_registry(services: Mapping[str, Service], plugins: Sequence[Any]) -> CollectorRegistry:
    """A registry of this server's own (not prometheus_client's global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LinechatCollector(services, plugins))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format, version 0.0.4."""
    return generate_latest(registry)
