"""linechat: a multi-service line-protocol framework on a trustworthy asynchat.

The public names below are imported on first use (PEP 562), so that
``import linechat.asynchat`` (the drop-in for the standard library's
``asynchat``) does not pay for pydantic and structlog, which only the service
framework needs.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing (see above; type checkers
# treat any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from linechat.channel import ServiceChannel
    from linechat.commands import CommandSpec, command
    from linechat.context import ServiceContext
    from linechat.plugin import Plugin, PluginSettings
    from linechat.protocol import CommandError, Pending, Protocol, Reply
    from linechat.rules import Rule, terminator
    from linechat.service import ListenerSpec, Service, ServiceSettings

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "CommandError": "linechat.protocol",
    "CommandSpec": "linechat.commands",
    "ListenerSpec": "linechat.service",
    "Pending": "linechat.protocol",
    "Plugin": "linechat.plugin",
    "PluginSettings": "linechat.plugin",
    "Protocol": "linechat.protocol",
    "Reply": "linechat.protocol",
    "Rule": "linechat.rules",
    "Service": "linechat.service",
    "ServiceChannel": "linechat.channel",
    "ServiceContext": "linechat.context",
    "ServiceSettings": "linechat.service",
    "command": "linechat.commands",
    "terminator": "linechat.rules",
}

__all__ = [
    "CommandError",
    "CommandSpec",
    "ListenerSpec",
    "Pending",
    "Plugin",
    "PluginSettings",
    "Protocol",
    "Reply",
    "Rule",
    "Service",
    "ServiceChannel",
    "ServiceContext",
    "ServiceSettings",
    "__version__",
    "command",
    "terminator",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'linechat' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The module's names, the lazy ones included."""
    return sorted(set(globals()) | set(__all__))
