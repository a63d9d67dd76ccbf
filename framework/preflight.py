"""Checks made before any listener opens, and errors that name their cause in one line."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linechat.service import ListenerSpec, Service

__all__ = ["ListenError", "data_dir_problem", "endpoint", "listen_conflicts"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})

# What the usual bind errors mean for someone starting a server.
_HINTS = {
    errno.EADDRINUSE: "another process is listening there",
    errno.EACCES: "ports below 1024 need privileges",
    errno.EADDRNOTAVAIL: "not an address of this machine",
}


def endpoint(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"


def _who(service: str, listener: str) -> str:
    return service if listener == "main" else f"{service} ({listener} listener)"


class ListenError(OSError):
    """A listener could not be opened: names the service, the listener, the host and the port."""

    def __init__(self, service: str, spec: ListenerSpec, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.service = service
        self.listener = spec.name
        self.host = spec.host
        self.port = spec.port
        self.cause = cause
        #: Set when a listener of this same process holds the port ("echo on 127.0.0.1:7007").
        self.holder: str | None = None

    def __str__(self) -> str:
        reason = self.strerror or str(self.cause)
        hint = f"{self.holder} has it" if self.holder else _HINTS.get(self.errno or 0)
        where = endpoint(self.host, self.port)
        text = f"{_who(self.service, self.listener)} cannot listen on {where}: {reason}"
        return f"{text} ({hint})" if hint else text


def _overlap(a: str, b: str) -> bool:
    """Whether two listening hosts would take the same port from each other."""
    if a == b:
        return True
    if "::" in (a, b):
        return True  # a dual-stack "::" takes the port for IPv4 too
    return (a in _WILDCARDS and ":" not in b) or (b in _WILDCARDS and ":" not in a)


def _port_settings(service: Service, port: int) -> list[str]:
    """The dotted settings of *service* that hold *port* (``services.chat.irc_port``)."""
    settings: Any = service.settings
    return [
        f"services.{service.name}.{name}"
        for name in type(settings).model_fields
        if (name == "port" or name.endswith("_port")) and getattr(settings, name, None) == port
    ]


def listen_conflicts(services: Iterable[Service]) -> list[str]:
    """One line for each pair of listeners of this process that want the same host and port."""
    taken: list[tuple[Service, ListenerSpec]] = []
    problems = []
    for service in services:
        for spec in service.listeners():
            if spec.port == 0:
                continue  # any free port: never a conflict
            for other, other_spec in taken:
                if other_spec.port == spec.port and _overlap(other_spec.host, spec.host):
                    if other is service:
                        who = f"{service.name}'s {other_spec.name} and {spec.name} listeners"
                    else:
                        who = f"{_who(other.name, other_spec.name)} and {_who(service.name, spec.name)}"
                    if other_spec.host == spec.host:
                        where = f"both want {endpoint(spec.host, spec.port)}"
                    else:
                        a, b = endpoint(other_spec.host, spec.port), endpoint(spec.host, spec.port)
                        where = f"want the same port ({a} and {b})"
                    keys = sorted(set(_port_settings(other, spec.port) + _port_settings(service, spec.port)))
                    fix = f": give them different ports ({', '.join(keys)})" if keys else ""
                    problems.append(f"{who} {where}{fix}")
                    break
            taken.append((service, spec))
    return problems


def data_dir_problem(path: Path) -> str | None:
    """Why *path* cannot hold the services' data (None if it can): a file, or a folder that cannot be written.

    Nothing is created: a missing folder is fine when its nearest existing
    parent is a folder that can be written (the services create it).
    """
    where = path
    while not where.exists():
        if where.is_symlink():
            return f"data dir {path}: {where} is a broken symbolic link"
        if where.parent == where:
            break
        where = where.parent
    if not where.is_dir():
        if where == path:
            return f"data dir {path} is a file, not a folder"
        return f"data dir {path} cannot be created: {where} is a file, not a folder"
    # A real write: os.access says yes to root even on a read-only file system.
    try:
        fd, probe = tempfile.mkstemp(prefix=".linechat-probe-", dir=where)
    except OSError as exc:
        what = f"data dir {path} is not writable" if where == path else f"data dir {path} cannot be created in {where}"
        return f"{what}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None
