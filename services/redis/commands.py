"""The data commands of every type, as one mixin: what connections, AOF replay and scripts run.

Each data type has its own module (strings.py, keys.py, lists.py,
hashes.py, sets.py, zset.py, streams.py, bits.py, hyperloglog.py, geo.py);
a new type adds its mixin here.
"""

from __future__ import annotations

from linechat.services.redis.bits import BitCommands
from linechat.services.redis.dump import DumpCommands
from linechat.services.redis.geo import GeoCommands
from linechat.services.redis.hashes import HashCommands
from linechat.services.redis.hyperloglog import HyperLogLogCommands
from linechat.services.redis.keys import KeyCommands
from linechat.services.redis.lists import ListCommands
from linechat.services.redis.sets import SetCommands
from linechat.services.redis.streams import StreamCommands
from linechat.services.redis.strings import StringCommands
from linechat.services.redis.zset import SortedSetCommands

__all__ = ["DataCommands"]


class DataCommands(
    StringCommands,
    BitCommands,
    HyperLogLogCommands,
    KeyCommands,
    ListCommands,
    HashCommands,
    SetCommands,
    SortedSetCommands,
    GeoCommands,
    StreamCommands,
    DumpCommands,
):
    """Every command on the keyspace, shared by connections, the AOF replayer and scripts."""
