"""Cross-cutting plugins: named hooks called by the server, found by entry point."""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from linechat.app import App
    from linechat.protocol import Protocol
    from linechat.service import Service

__all__ = ["PLUGIN_GROUP", "SERVICE_GROUP", "Discovered", "Hooks", "Plugin", "PluginSettings", "discover"]

_log = structlog.get_logger("linechat.plugins")

SERVICE_GROUP = "linechat.services"
PLUGIN_GROUP = "linechat.plugins"

HOOK_NAMES = (
    "server_started",
    "server_stopping",
    "connection_accepted",
    "connection_opened",
    "connection_closing",
    "connection_closed",
    "slow_consumer",
    "command_handled",
)


class PluginSettings(BaseModel):
    """Settings every plugin has; a plugin subclasses this to add its own."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run this plugin")


class Plugin:
    """Base class of plugins: override the hooks you need; the others cost nothing."""

    name: ClassVar[str] = ""
    Settings: ClassVar[type[PluginSettings]] = PluginSettings
    description: ClassVar[str] = ""

    def __init__(self, settings: PluginSettings, app: App) -> None:
        self.settings = settings
        self.app = app

    def server_started(self, app: App) -> None:
        """Called once every listener is bound."""

    def server_stopping(self, app: App) -> None:
        """Called when a graceful stop begins."""

    def connection_accepted(self, service: Service, peer: tuple[str, int]) -> bool | None:
        """Called before a connection is served; return False to refuse it."""
        return None

    def connection_opened(self, protocol: Protocol) -> None:
        """Called when a connection's protocol exists, before its greeting."""

    def connection_closing(self, protocol: Protocol) -> None:
        """Called when a connection is about to close, its socket still open (read its last figures here)."""

    def connection_closed(self, protocol: Protocol) -> None:
        """Called after a connection closed."""

    def slow_consumer(self, protocol: Protocol, queued: int) -> None:
        """Called when a peer is cut off for not reading its replies (*queued* bytes were waiting)."""

    def command_handled(self, protocol: Protocol, name: str | None, status: str, size: int, duration: float) -> None:
        """Called after each command line was answered."""


class Hooks:
    """Calls each hook on the plugins that implement it; no plugin, no cost."""

    def __init__(self, plugins: list[Plugin]) -> None:
        self.plugins = plugins
        self._impls: dict[str, list[Callable[..., Any]]] = {}
        for hook in HOOK_NAMES:
            base = getattr(Plugin, hook)
            self._impls[hook] = [
                getattr(plugin, hook) for plugin in plugins if getattr(type(plugin), hook, base) is not base
            ]
        self.wants_commands = bool(self._impls["command_handled"])

    def _run(self, hook: str, *args: Any) -> list[Any]:
        """Call *hook* on every implementing plugin; a plugin that raises is logged, not fatal."""
        results: list[Any] = []
        for impl in self._impls[hook]:
            try:
                results.append(impl(*args))
            except Exception:
                _log.exception(
                    "plugin_hook_failed", hook=hook, plugin=getattr(getattr(impl, "__self__", None), "name", "?")
                )
                results.append(_FAILED)
        return results

    def server_started(self, app: App) -> None:
        """Run ``server_started`` on every plugin."""
        self._run("server_started", app)

    def server_stopping(self, app: App) -> None:
        """Run ``server_stopping`` on every plugin."""
        self._run("server_stopping", app)

    def connection_accepted(self, service: Service, peer: tuple[str, int]) -> bool:
        """True unless some plugin refuses the connection (or fails while deciding: fail closed)."""
        if not self._impls["connection_accepted"]:
            return True
        return all(
            result is not False and result is not _FAILED for result in self._run("connection_accepted", service, peer)
        )

    def connection_opened(self, protocol: Protocol) -> None:
        """Run ``connection_opened`` on every plugin."""
        if self._impls["connection_opened"]:
            self._run("connection_opened", protocol)

    def connection_closing(self, protocol: Protocol) -> None:
        """Run ``connection_closing`` on every plugin."""
        if self._impls["connection_closing"]:
            self._run("connection_closing", protocol)

    def connection_closed(self, protocol: Protocol) -> None:
        """Run ``connection_closed`` on every plugin."""
        if self._impls["connection_closed"]:
            self._run("connection_closed", protocol)

    def slow_consumer(self, protocol: Protocol, queued: int) -> None:
        """Run ``slow_consumer`` on every plugin."""
        if self._impls["slow_consumer"]:
            self._run("slow_consumer", protocol, queued)

    def command_handled(self, protocol: Protocol, name: str | None, status: str, size: int, duration: float) -> None:
        """Run ``command_handled`` on every plugin."""
        self._run("command_handled", protocol, name, status, size, duration)


_FAILED = object()


@dataclass
class Discovered:
    """One entry point of a linechat group, loaded or not."""

    name: str
    group: str
    value: str
    origin: str  # the distribution that declares it
    version: str
    obj: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the entry point loaded."""
        return self.error is None


def discover(group: str) -> list[Discovered]:
    """Load every entry point of *group*; failures are recorded, never raised."""
    found: list[Discovered] = []
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        origin = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        item = Discovered(ep.name, group, ep.value, origin, version)
        try:
            item.obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the server down
            item.error = f"{type(exc).__name__}: {exc}"
        else:
            if not isinstance(item.obj, type):
                item.error = f"entry point {ep.value} is not a class"
            elif not getattr(item.obj, "name", ""):
                item.obj.name = ep.name  # type: ignore[attr-defined]
        found.append(item)
    return found
