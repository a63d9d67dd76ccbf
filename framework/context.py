"""What a running process gives its services: the one object they get instead of the app.

A service (and through it each of its connections) needs a reactor, a place
for its files, and to know whether to report each command (the access log, the
plugins' ``command_handled`` hook).  The app builds one :class:`ServiceContext`
per service; a test harness or a benchmark builds its own.  Services never see
the app itself, so the layers below it never import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from linechat.plugin import Hooks
    from linechat.reactor import Reactor

__all__ = ["ServiceContext"]


@dataclass(frozen=True)
class ServiceContext:
    """The reactor, data directory, plugin hooks and access-log switch a service runs with."""

    reactor: Reactor
    #: This service's own directory (``<data_dir>/<service name>``); None: keep nothing on disk.
    data_dir: Path | None = None
    #: Log one ``command`` event per command line.
    access_log: bool = False
    #: The plugins' connection hooks; None: no plugins.
    hooks: Hooks | None = None
