"""linechat: a multi-service line-protocol framework on a trustworthy asynchat."""

from linechat.channel import ServiceChannel
from linechat.commands import CommandSpec, command
from linechat.context import ServiceContext
from linechat.plugin import Plugin, PluginSettings
from linechat.protocol import CommandError, Pending, Protocol, Reply
from linechat.rules import Rule, terminator
from linechat.service import ListenerSpec, Service, ServiceSettings

__version__ = "0.1.0"

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
