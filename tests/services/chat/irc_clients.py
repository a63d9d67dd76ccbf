"""Shared clients for the chat service's loopback tests (imported by the test modules)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import irc.client
from linechat.testing import LineClient

DEADLINE = 30.0  # seconds any one wait may take before a test fails (never a performance bound)


class IrcBot:
    """A client built on the ``irc`` package's reactor, driven from the test thread.

    *welcome* waits for registration to finish; *password*, *sasl* and
    *connect_factory* go to the package's own ``connect`` (a server password,
    SASL PLAIN with the nick as login, a TLS-wrapping socket factory).
    """

    def __init__(
        self,
        address: tuple[str, int],
        nick: str,
        *,
        welcome: bool = False,
        password: str | None = None,
        sasl: bool = False,
        connect_factory: Any = None,
    ) -> None:
        self.reactor = irc.client.Reactor()
        self.events: list[irc.client.Event] = []
        # Ahead of the package's own SASL handlers, so every event is recorded.
        self.reactor.add_global_handler("all_events", self._record, -50)
        extra: dict[str, Any] = {"password": password, "sasl_login": nick if sasl else None}
        if connect_factory is not None:
            extra["connect_factory"] = connect_factory
        self.conn = self.reactor.server().connect(
            address[0], address[1], nick, username=nick, ircname=f"{nick} bot", **extra
        )
        if welcome:
            self.wait_for(lambda e: e.type == "welcome")

    def _record(self, connection: Any, event: irc.client.Event) -> None:
        self.events.append(event)

    def wait_for(self, match: Callable[[irc.client.Event], bool]) -> irc.client.Event:
        """Process input until an event matches; fail after DEADLINE."""
        deadline = time.monotonic() + DEADLINE
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = len(self.events)
            self.reactor.process_once(0.05)
        raise AssertionError(f"no matching event; got {[(e.type, e.arguments) for e in self.events][-20:]}")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def read_until(client: LineClient, needle: bytes) -> list[bytes]:
    """Read lines until one contains *needle*; return them all."""
    lines: list[bytes] = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        line = client.read_line()
        if not line and client.eof:
            raise AssertionError(f"connection closed before {needle!r}; got {lines[-5:]}")
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} did not come")
