"""Pub/sub commands: SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH (Redis's pubsub.c)."""

from __future__ import annotations

from linechat.services.redis.base import ClientContext
from linechat.services.redis.resp import bulk, integer
from linechat.services.redis.table import redis_command

__all__ = ["PubSubCommands"]


class PubSubCommands(ClientContext):
    """A connection's subscriptions and publishing."""

    def _subscription_reply(self, kind: bytes, name: bytes | None) -> bytes:
        return (
            self.dialect.push_head % 3
            + bulk(kind)
            + bulk(name, self.null)
            + integer(len(self.channels) + len(self.patterns))
        )

    @redis_command(
        "SUBSCRIBE", arity=-2, flags="pubsub noscript loading stale", group="pubsub", subscribed=True, fastpath=False
    )
    def cmd_subscribe(self, channel: bytes, *more: bytes) -> bytes:
        """Receive the messages published to channels."""
        out = []
        for name in (channel, *more):
            self.server.subscribe(self, name, pattern=False)
            out.append(self._subscription_reply(b"subscribe", name))
        return b"".join(out)

    @redis_command(
        "PSUBSCRIBE", arity=-2, flags="pubsub noscript loading stale", group="pubsub", subscribed=True, fastpath=False
    )
    def cmd_psubscribe(self, pattern: bytes, *more: bytes) -> bytes:
        """Receive the messages published to channels matching glob patterns."""
        out = []
        for name in (pattern, *more):
            self.server.subscribe(self, name, pattern=True)
            out.append(self._subscription_reply(b"psubscribe", name))
        return b"".join(out)

    def _unsubscribe(self, names: tuple[bytes, ...], pattern: bool) -> bytes:
        current = self.patterns if pattern else self.channels
        kind = b"punsubscribe" if pattern else b"unsubscribe"
        targets = list(names) if names else sorted(current)
        if not targets:
            return self._subscription_reply(kind, None)
        out = []
        for name in targets:
            self.server.unsubscribe(self, name, pattern)
            out.append(self._subscription_reply(kind, name))
        return b"".join(out)

    @redis_command(
        "UNSUBSCRIBE", arity=-1, flags="pubsub noscript loading stale", group="pubsub", subscribed=True, fastpath=False
    )
    def cmd_unsubscribe(self, *channels: bytes) -> bytes:
        """Stop receiving messages of some (or all) channels."""
        return self._unsubscribe(channels, False)

    @redis_command(
        "PUNSUBSCRIBE", arity=-1, flags="pubsub noscript loading stale", group="pubsub", subscribed=True, fastpath=False
    )
    def cmd_punsubscribe(self, *patterns: bytes) -> bytes:
        """Stop receiving messages of some (or all) patterns."""
        return self._unsubscribe(patterns, True)

    @redis_command("PUBLISH", arity=3, flags="pubsub loading stale fast", group="pubsub")
    def cmd_publish(self, channel: bytes, message: bytes) -> bytes:
        """Send a message to a channel; return how many subscribers got it."""
        return integer(self.server.publish(channel, message))
