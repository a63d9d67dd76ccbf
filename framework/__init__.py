"""linechat: a multi-service line-protocol framework on a trustworthy asynchat."""

from framework.service import (
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
from framework.plugins import Plugin, PluginSettings

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
    "command",
    "terminator",
    "__version__",
]
