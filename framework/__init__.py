"""linechat: a multi-service line-protocol framework on a trustworthy asynchat."""

from linechat.plugin import Plugin, PluginSettings
from linechat.service import (
    CommandError,
    ListenerSpec,
    Pending,
    Protocol,
    Reply,
    Rule,
    Service,
    ServiceChannel,
    ServiceSettings,
    command,
    terminator,
)

__version__ = "0.1.0"

__all__ = [
    "CommandError",
    "ListenerSpec",
    "Pending",
    "Plugin",
    "PluginSettings",
    "Protocol",
    "Reply",
    "Rule",
    "Service",
    "ServiceChannel",
    "ServiceSettings",
    "__version__",
    "command",
    "terminator",
]
