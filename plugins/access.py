"""Access control: CIDR allow and deny lists and a per-IP connection limit, per service."""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from linechat.plugin import Plugin, PluginSettings
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork

if TYPE_CHECKING:
    from linechat import Protocol, Service
    from linechat.app import App

_log = structlog.get_logger("linechat.access")


class AccessRule(BaseModel):
    """Who may connect to a service."""

    model_config = ConfigDict(extra="forbid")

    allow: list[IPvAnyNetwork] = Field(default_factory=list, description="if not empty, only these networks")
    deny: list[IPvAnyNetwork] = Field(default_factory=list, description="these networks are refused")
    max_per_ip: int | None = Field(None, ge=1, description="connections one address may hold open")


class AccessSettings(PluginSettings):
    """Settings of the access-control plugin."""

    default: AccessRule = Field(default_factory=AccessRule, description="rule for services without their own")
    services: dict[str, AccessRule] = Field(default_factory=dict, description="rules by service name")


class AccessControl(Plugin):
    """Refuse connections by network and cap connections per address, per service."""

    name = "access"
    Settings: ClassVar[type[PluginSettings]] = AccessSettings
    description = "CIDR allow/deny lists and per-IP connection limits"

    def __init__(self, settings: PluginSettings, app: App) -> None:
        super().__init__(settings, app)
        assert isinstance(settings, AccessSettings)
        self.rules = settings
        self.open: Counter[tuple[str, str]] = Counter()

    def _rule(self, service: str) -> AccessRule:
        return self.rules.services.get(service, self.rules.default)

    def check(self, service: str, host: str) -> str | None:
        """Return why *host* may not connect to *service*, or None when it may."""
        rule = self._rule(service)
        try:
            address: Any = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return "unparsable peer address" if rule.allow or rule.deny else None
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 for the rules
        if any(address in net for net in rule.deny):
            return "denied network"
        if rule.allow and not any(address in net for net in rule.allow):
            return "not in an allowed network"
        if rule.max_per_ip is not None and self.open[(service, host)] >= rule.max_per_ip:
            return "too many connections from this address"
        return None

    def connection_accepted(self, service: Service, peer: tuple[str, int]) -> bool | None:
        """Refuse peers the rules exclude."""
        reason = self.check(service.name, peer[0])
        if reason is not None:
            _log.info("access_refused", service=service.name, peer=peer[0], reason=reason)
            return False
        return None

    def connection_opened(self, protocol: Protocol) -> None:
        """Count the connection against its address."""
        if protocol.peer is not None:
            self.open[(protocol.service.name, protocol.peer[0])] += 1

    def connection_closed(self, protocol: Protocol) -> None:
        """Release the connection's count."""
        if protocol.peer is not None:
            key = (protocol.service.name, protocol.peer[0])
            self.open[key] -= 1
            if self.open[key] <= 0:
                del self.open[key]
