"""What a running process gives its services: the one object they get instead of the app.

A service (and through it each of its connections) needs a reactor, a place
for its files, to know whether to report each command (the access log, the
plugins' ``command_handled`` hook), and sometimes its sibling services and the
plugins (an HTTP front end serving another service's data, a metrics page).  The app builds one :class:`ServiceContext`
per service; a test harness or a benchmark builds its own.  Services never see
the app itself, so the layers below it never import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linechat.plugin import Hooks, Plugin
    from linechat.reactor import Reactor
    from linechat.service import Service
    from linechat.tls import TlsContextProvider

__all__ = ["ServiceContext"]


@dataclass(frozen=True)
class ServiceContext:
    """The reactor, data directory, plugin hooks, access-log switch and sibling services a service runs with."""

    reactor: Reactor
    #: This service's own directory (``<data_dir>/<service name>``); None: keep nothing on disk.
    data_dir: Path | None = None
    #: Log one ``command`` event per command line.
    access_log: bool = False
    #: The plugins' connection hooks; None: no plugins.
    hooks: Hooks | None = None
    #: Every service of the process by name, this one included (complete once all are built);
    #: empty when the service runs alone (a harness, a script).
    services: Mapping[str, Service] = field(default_factory=dict)
    #: The plugins running in the process.
    plugins: Sequence[Plugin] = ()
    #: The server TLS context (certificates made or loaded on first use); None: no TLS.
    tls: TlsContextProvider | None = None

    def plugin(self, name: str) -> Any:
        """The running plugin called *name*, or None."""
        return next((plugin for plugin in self.plugins if plugin.name == name), None)
