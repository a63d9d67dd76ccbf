"""The echo service: the tutorial's example, and a proof of the whole path."""

from __future__ import annotations

from linechat import Protocol, Service, ServiceSettings, command
from pydantic import Field


class EchoSettings(ServiceSettings):
    """Settings of the echo service."""

    port: int = Field(7007, ge=0, le=65535)
    greeting: str = "linechat echo ready"


class EchoProtocol(Protocol):
    """One connection: every command is a line of words."""

    settings: EchoSettings
    #: Sent to a connection refused for lack of room (too many connections or descriptors).
    refusal_line = "- server busy: too many connections, try again later"

    def on_connect(self) -> str:
        return f"+ {self.settings.greeting}"

    @command("ECHO")
    def echo(self, *words: str) -> str:
        """Send the words back."""
        return "+ " + " ".join(words)

    @command("ADD")
    def add(self, a: int, b: int) -> str:
        """Add two integers."""
        return f"+ {a + b}"

    @command("QUIT")
    def quit(self) -> str:
        """Say goodbye and close."""
        self.close()
        return "+ bye"

    def error(self, message: str) -> str:
        return f"- {message}"


class EchoService(Service):
    """Echoes lines back: a 30-line service."""

    name = "echo"
    Settings = EchoSettings
    protocol = EchoProtocol
    description = "echoes words back (the tutorial's example)"
    multiprocess = True  # no state beyond the connection
