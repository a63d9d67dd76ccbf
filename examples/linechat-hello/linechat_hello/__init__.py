"""A third-party service and plugin for linechat, found by entry point."""

from __future__ import annotations

from typing import ClassVar

from linechat import Plugin, PluginSettings, Protocol, Service, ServiceSettings, command
from pydantic import Field


class HelloSettings(ServiceSettings):
    """Settings of the hello service."""

    port: int = Field(7117, ge=0, le=65535)
    name: str = "world"


class HelloProtocol(Protocol):
    """Greets whoever asks."""

    def on_connect(self) -> str:
        return "hello service ready"

    @command("HELLO")
    def hello(self, who: str = "") -> str:
        """Say hello."""
        return f"hello, {who or self.settings.name}"

    @command("QUIT")
    def quit(self) -> str:
        """Leave."""
        self.close()
        return "bye"


class HelloService(Service):
    """A service that lives in its own distribution."""

    name = "hello"
    Settings = HelloSettings
    protocol = HelloProtocol
    description = "says hello (third-party example)"


class BannerSettings(PluginSettings):
    """Settings of the banner plugin."""

    enabled: bool = False
    text: str = "welcome"


class BannerPlugin(Plugin):
    """Sends a banner line to every new connection before its greeting."""

    name = "banner"
    Settings: ClassVar[type[PluginSettings]] = BannerSettings
    description = "sends a banner to new connections (third-party example)"

    def connection_opened(self, protocol: Protocol) -> None:
        assert isinstance(self.settings, BannerSettings)
        protocol.send(f"# {self.settings.text}")
