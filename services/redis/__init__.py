"""A Redis-compatible service: RESP2, RESP3 and inline commands, pub/sub, expiry, an append-only file."""

from linechat.services.redis.protocol import RedisProtocol
from linechat.services.redis.service import RedisService, RedisSettings

__all__ = ["RedisProtocol", "RedisService", "RedisSettings"]
