"""Pub/sub: SUBSCRIBE, PSUBSCRIBE, sharded SSUBSCRIBE, their UNSUBSCRIBEs, (S)PUBLISH, PUBSUB (Redis's pubsub.c)."""

from __future__ import annotations

from linechat.services.redis.base import ClientContext
from linechat.services.redis.resp import RespError, array, bulk, glob_match, integer
from linechat.services.redis.table import KeySpec, redis_command

__all__ = ["PubSubCommands"]

# A shard channel is named where a key would be (cluster slots follow it), but it is no key.
_SHARD_CHANNEL = KeySpec(("not_key",), 1)
_SHARD_CHANNELS = KeySpec(("not_key",), 1, -1)

_PUBSUB_HELP = (
    b"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CHANNELS [<pattern>]",
    b"    Return the currently active channels matching a <pattern> (default: '*').",
    b"NUMPAT",
    b"    Return number of subscriptions to patterns.",
    b"NUMSUB [<channel> ...]",
    b"    Return the number of subscribers for the specified channels, excluding",
    b"    pattern subscriptions(default: no channels).",
    b"SHARDCHANNELS [<pattern>]",
    b"    Return the currently active shard level channels matching a <pattern> (default: '*').",
    b"SHARDNUMSUB [<shardchannel> ...]",
    b"    Return the number of subscribers for the specified shard level channel(s)",
    b"HELP",
    b"    Prints this help.",
)


class PubSubCommands(ClientContext):
    """A connection's subscriptions and publishing."""

    def _subscription_reply(self, kind: bytes, name: bytes | None) -> bytes:
        # Channel and pattern replies count both; shard replies count shard channels only (Redis 7.0).
        shard = kind in (b"ssubscribe", b"sunsubscribe")
        count = len(self.shard_channels) if shard else len(self.channels) + len(self.patterns)
        return self.dialect.push_head % 3 + bulk(kind) + bulk(name, self.null) + integer(count)

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

    @redis_command(
        "SSUBSCRIBE",
        arity=-2,
        flags="pubsub noscript loading stale",
        keys=[_SHARD_CHANNELS],
        group="pubsub",
        subscribed=True,
        fastpath=False,
    )
    def cmd_ssubscribe(self, channel: bytes, *more: bytes) -> bytes:
        """Receive the messages published to shard channels (SPUBLISH)."""
        if not self.server.blocking.may_block:
            # Inside EXEC (or a script) a reply per command is expected, as Redis's DENY BLOCKING clients.
            raise RespError("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client")
        out = []
        for name in (channel, *more):
            self.server.subscribe_shard(self, name)
            out.append(self._subscription_reply(b"ssubscribe", name))
        return b"".join(out)

    def _unsubscribe(self, names: tuple[bytes, ...], kind: bytes) -> bytes:
        server = self.server
        if kind == b"sunsubscribe":
            current = self.shard_channels
        else:
            current = self.patterns if kind == b"punsubscribe" else self.channels
        targets = list(names) if names else sorted(current)
        if not targets:
            return self._subscription_reply(kind, None)
        out = []
        for name in targets:
            if kind == b"sunsubscribe":
                server.unsubscribe_shard(self, name)
            else:
                server.unsubscribe(self, name, kind == b"punsubscribe")
            out.append(self._subscription_reply(kind, name))
        return b"".join(out)

    @redis_command(
        "UNSUBSCRIBE", arity=-1, flags="pubsub noscript loading stale", group="pubsub", subscribed=True, fastpath=False
    )
    def cmd_unsubscribe(self, *channels: bytes) -> bytes:
        """Stop receiving messages of some (or all) channels."""
        return self._unsubscribe(channels, b"unsubscribe")

    @redis_command(
        "PUNSUBSCRIBE", arity=-1, flags="pubsub noscript loading stale", group="pubsub", subscribed=True, fastpath=False
    )
    def cmd_punsubscribe(self, *patterns: bytes) -> bytes:
        """Stop receiving messages of some (or all) patterns."""
        return self._unsubscribe(patterns, b"punsubscribe")

    @redis_command(
        "SUNSUBSCRIBE",
        arity=-1,
        flags="pubsub noscript loading stale",
        keys=[_SHARD_CHANNELS],
        group="pubsub",
        subscribed=True,
        fastpath=False,
    )
    def cmd_sunsubscribe(self, *channels: bytes) -> bytes:
        """Stop receiving messages of some (or all) shard channels."""
        return self._unsubscribe(channels, b"sunsubscribe")

    @redis_command("PUBLISH", arity=3, flags="pubsub loading stale fast", group="pubsub")
    def cmd_publish(self, channel: bytes, message: bytes) -> bytes:
        """Send a message to a channel; return how many subscribers got it."""
        return integer(self.server.publish(channel, message))

    @redis_command("SPUBLISH", arity=3, flags="pubsub loading stale fast", keys=[_SHARD_CHANNEL], group="pubsub")
    def cmd_spublish(self, channel: bytes, message: bytes) -> bytes:
        """Send a message to a shard channel; return how many subscribers got it."""
        return integer(self.server.spublish(channel, message))

    # ------------------------------------------------------------------ PUBSUB

    @redis_command("PUBSUB", arity=-2, group="pubsub")
    def cmd_pubsub(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the PUBSUB subcommands."""
        return self.run_subcommand("PUBSUB", sub, args)  # type: ignore[no-any-return]

    def _pattern_arg(self, args: tuple[bytes, ...]) -> bytes | None:
        if len(args) > 1:
            sub = self.argv[1].decode("latin-1")
            raise RespError(f"ERR unknown subcommand or wrong number of arguments for '{sub}'. Try PUBSUB HELP.")
        return args[0] if args else None

    @redis_command("PUBSUB|CHANNELS", arity=-2, flags="pubsub loading stale", group="pubsub")
    def cmd_pubsub_channels(self, *args: bytes) -> bytes:
        """The channels with subscribers (matching a glob pattern)."""
        pattern = self._pattern_arg(args)
        names = [n for n in self.server.subscribers if pattern is None or glob_match(pattern, n)]
        return array(names)

    @redis_command("PUBSUB|SHARDCHANNELS", arity=-2, flags="pubsub loading stale", group="pubsub")
    def cmd_pubsub_shardchannels(self, *args: bytes) -> bytes:
        """The shard channels with subscribers (matching a glob pattern)."""
        pattern = self._pattern_arg(args)
        names = [n for n in self.server.shard_subscribers if pattern is None or glob_match(pattern, n)]
        return array(names)

    @redis_command("PUBSUB|NUMSUB", arity=-2, flags="pubsub loading stale", group="pubsub")
    def cmd_pubsub_numsub(self, *channels: bytes) -> bytes:
        """Each channel named and its number of subscribers (patterns not counted)."""
        table = self.server.subscribers
        return b"*%d\r\n" % (2 * len(channels)) + b"".join(bulk(c) + integer(len(table.get(c, ()))) for c in channels)

    @redis_command("PUBSUB|SHARDNUMSUB", arity=-2, flags="pubsub loading stale", group="pubsub")
    def cmd_pubsub_shardnumsub(self, *channels: bytes) -> bytes:
        """Each shard channel named and its number of subscribers."""
        table = self.server.shard_subscribers
        return b"*%d\r\n" % (2 * len(channels)) + b"".join(bulk(c) + integer(len(table.get(c, ()))) for c in channels)

    @redis_command("PUBSUB|NUMPAT", arity=2, flags="pubsub loading stale", group="pubsub")
    def cmd_pubsub_numpat(self) -> bytes:
        """How many patterns have subscribers."""
        return integer(len(self.server.pattern_subscribers))

    @redis_command("PUBSUB|HELP", arity=2, flags="loading stale", group="pubsub", acl="-pubsub")
    def cmd_pubsub_help(self) -> bytes:
        """The PUBSUB subcommands."""
        return b"*%d\r\n" % len(_PUBSUB_HELP) + b"".join(b"+%s\r\n" % line for line in _PUBSUB_HELP)
