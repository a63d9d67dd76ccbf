"""A backplane shared through Redis: rooms, nicks, topics and history across processes and hosts.

Every node keeps a full mirror of the chat in a :class:`LocalBackplane` (its own
users and :class:`RemoteMember` stand-ins for everyone else's), so every read
the dialects make (``find``, ``members``, ``modes``, WHO, NAMES...) is answered
from memory on the reactor's thread.  Every change a node makes is applied to
its mirror at once and published to one Redis pub/sub channel; the other
nodes apply it to theirs and deliver room traffic to their own users.

The reactor never waits on Redis for long.  Two threads do the I/O: a
*publisher* drains a bounded queue of commands (pipelined, in order), keeps
the node's heartbeat and nick keys alive and reaps dead nodes; a *subscriber*
reads the channel and hands batches of messages to the reactor through
``call_soon_threadsafe``.  Only a nick claim asks Redis on the reactor's
thread (``SET NX``: the atomic answer a collision needs), with a tight
timeout and a breaker that falls back to a local claim, checked again when
the link returns.

Redis keys (under the ``prefix``): ``events`` (the channel), ``node:<id>``
(heartbeat, expires after ``node_timeout``), ``nodes`` (set of node ids),
``users:<id>`` (hash: each user's nicks, details and rooms), ``nick:<folded>``
(the owning user's token, expiring unless its node refreshes it),
``room:<folded>`` (topic, modes, creation time), ``rooms`` (set),
``hist:<folded>`` (the last messages), ``reap:<id>`` (the lock that makes one
survivor clean up after a dead node).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from linechat.services.chat.backplane import (
    HISTORY_KINDS,
    ChannelModes,
    Event,
    LocalBackplane,
    Member,
    RoomInfo,
)
from linechat.services.chat.names import fold
from linechat.settings import SettingsError

if TYPE_CHECKING:
    from linechat.reactor import Reactor

__all__ = ["RedisBackplane", "RemoteMember"]

# Compare-and-delete: a nick key is removed only by (or for) the user holding it.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# A reconnecting node's claim: take the key if free, keep it if already ours; return the holder.
_RECLAIM = (
    "local v = redis.call('GET', KEYS[1]) "
    "if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return ARGV[1] end "
    "return v"
)
_HELD_MAX = 100000  # messages held while a snapshot is read, at most
_BATCH = 512  # commands the publisher sends in one pipeline at most
_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0


def _event_wire(event: Event) -> list[Any]:
    return [event.kind, event.nick, event.user, event.host, event.target, event.text, event.at, event.arg, event.tags]


def _event_from(wire: list[Any]) -> Event:
    kind, nick, user, host, target, text, at, arg, tags = wire
    return Event(kind, nick, user, host, target, text, at=at, arg=arg, tags=tags)


def _modes_wire(modes: ChannelModes) -> dict[str, Any]:
    return {
        "flags": sorted(modes.flags),
        "key": modes.key,
        "limit": modes.limit,
        "bans": [list(ban) for ban in modes.bans],
        "invited": sorted(modes.invited),
    }


def _modes_apply(modes: ChannelModes, wire: dict[str, Any]) -> None:
    # In place: sessions may hold the object.
    modes.flags = set(wire.get("flags", ()))
    modes.key = wire.get("key", "")
    modes.limit = int(wire.get("limit", 0))
    modes.bans = [(str(mask), str(by), float(at)) for mask, by, at in wire.get("bans", ())]
    modes.invited = set(wire.get("invited", ()))


class RemoteMember:
    """A user connected to another node, as this node's mirror knows it."""

    registered = True

    def __init__(self, backplane: RedisBackplane, token: str) -> None:
        self.backplane = backplane
        self.token = token
        self.node = token.rsplit("/", 1)[0]
        self.nick = ""
        self.user = ""
        self.host = ""
        self.realname = ""
        self.away = ""
        self.dialect = "remote"
        self.oper = False
        self.invisible = False
        self.bot = False
        self.signon = time.time()
        self.last_spoke = self.signon
        self.rooms: dict[str, str] = {}  # folded name -> name, as the dialects keep it

    def update(self, info: list[Any]) -> None:
        """Take the details its node sent (see :meth:`RedisBackplane._info`)."""
        (self.nick, self.user, self.host, self.realname, self.away, dialect, oper, invisible, bot, signon, spoke) = info
        self.dialect = f"{dialect} on {self.node}"
        self.oper, self.invisible, self.bot = bool(oper), bool(invisible), bool(bot)
        # Idle times are relative to this host's clock (monotonic values do not travel).
        now = time.time()
        self.signon = now - float(signon)
        self.last_spoke = now - float(spoke)

    def deliver(self, event: Event) -> None:
        """Forward a private event to the node holding this user."""
        self.backplane.forward(self, event)

    def removed(self, room: str) -> None:
        """Its own node tells it (the part travels as a message)."""

    def kill(self, reason: str) -> None:
        """Ask its node to disconnect this user."""
        self.backplane.emit({"o": "kill", "t": self.token, "why": reason})

    def __repr__(self) -> str:
        return f"<RemoteMember {self.nick} {self.token}>"


class RedisBackplane(LocalBackplane):
    """Rooms shared by every node that points at the same Redis (``backplane = "redis"``)."""

    def __init__(
        self,
        reactor: Reactor,
        url: str,
        *,
        prefix: str = "linechat:chat:",
        node_timeout: float = 15.0,
        call_timeout: float = 0.5,
        queue_size: int = 10000,
        history: int = 0,
        default_modes: str = "nt",
        server_name: str = "linechat",
        log: Any = None,
    ) -> None:
        super().__init__(history=history, default_modes=default_modes)
        try:
            import redis
        except ImportError as exc:
            # A settings problem, reported in one line: the extra that brings redis-py is not installed.
            raise SettingsError("backplane = 'redis' needs redis-py: pip install 'linechat[chat-redis]'") from exc
        self._redis = redis
        self.reactor = reactor
        self.url = url
        self.prefix = prefix
        self.node_timeout = node_timeout
        self.call_timeout = call_timeout
        self.server_name = server_name
        self.log = log
        #: This node's id: unique per process, readable in logs and WHOIS.
        self.node = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}".replace("/", "_")
        self.channel = prefix + "events"
        self._counter = itertools.count(1)
        self._local: dict[str, Member] = {}  # token -> member of this node
        self._tokens: dict[int, str] = {}  # id(member) -> token
        self._sent: dict[str, list[Any]] = {}  # token -> details last published
        self._remote: dict[str, RemoteMember] = {}  # token -> member of another node
        self._out: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: True while the subscriber is subscribed and the node's state is announced.
        self.connected = False
        self._resync = False  # a full queue dropped changes: announce everything again
        self._told_down = False
        self._breaker_until = 0.0
        self._sync_client: Any = None
        self.dropped = 0  # commands dropped because the queue was full (Redis too slow or away)
        # Read by the publisher thread; replaced (never mutated) on the reactor's thread.
        self._own_nicks: tuple[str, ...] = ()
        self._known_nodes: tuple[str, ...] = ()
        self._connected_since = 0.0
        self._info_timer: Any = None
        self._pending_rooms: dict[str, dict[str, Any]] = {}
        self._local_cache: dict[str, tuple[tuple[Member, ...], tuple[Member, ...]]] = {}
        self._held: list[dict[str, Any]] | None = None  # messages that came while the snapshot was read
        self._log_window = 0.0
        self._log_count = 0

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the I/O threads (after the reactor exists, in the serving process)."""
        for target, name in ((self._subscriber, "subscriber"), (self._publisher, "publisher")):
            thread = threading.Thread(target=target, name=f"chat-backplane-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._info_timer = self.reactor.call_later(1.0, self._info_tick)

    def close(self) -> None:
        """Leave the network: the other nodes quit this node's users now, not after the timeout."""
        if self._info_timer is not None:
            self._info_timer.cancel()
        if self.connected:
            self._put(("goodbye", None))
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=max(2.0, self.call_timeout * 4))

    def _client(self, timeout: float | None, decode: bool = True) -> Any:
        return self._redis.Redis.from_url(
            self.url,
            decode_responses=decode,
            socket_timeout=timeout,
            socket_connect_timeout=max(self.call_timeout, 1.0),
            health_check_interval=0,
        )

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    # ------------------------------------------------------------------ what this node publishes

    def _put(self, item: Any) -> None:
        try:
            self._out.put_nowait(item)
        except queue.Full:
            # Redis is too slow or away: drop rather than grow without bound;
            # the state is announced again in full when the link comes back.
            self.dropped += 1
            self._resync = True
            if self.log is not None and self.dropped % 1000 == 1:
                self.log.warning("backplane_queue_full", dropped=self.dropped)

    def emit(self, message: dict[str, Any], *commands: tuple[Any, ...]) -> None:
        """Publish *message* to the other nodes (after *commands*), in order, without waiting."""
        if not self.connected:
            return  # announced in full on reconnect
        message["n"] = self.node
        self._put(("cmds", [*commands, ("PUBLISH", self.channel, json.dumps(message, separators=(",", ":")))]))

    def _token(self, member: Member) -> str:
        token = self._tokens.get(id(member))
        if token is None:
            token = self._tokens[id(member)] = f"{self.node}/{next(self._counter)}"
            self._local[token] = member
        return token

    def _info(self, member: Member) -> list[Any]:
        now = self.reactor.time()
        # Ages, not times: the reactor's clock is monotonic and means nothing on another host.
        signon = max(now - getattr(member, "signon", now), 0.0)
        spoke = max(now - getattr(member, "last_spoke", now), 0.0)
        return [
            member.nick,
            member.user,
            member.host,
            member.realname,
            member.away,
            member.dialect,
            bool(getattr(member, "oper", False)),
            bool(getattr(member, "invisible", False)),
            bool(getattr(member, "bot", False)),
            round(signon),
            round(spoke),
        ]

    def _state(self, token: str, member: Member) -> dict[str, Any]:
        """A local user as the ``users:<node>`` hash and a ``sync`` keep it."""
        nicks = [nick for nick, holder in self._nicks.items() if holder is member]
        rooms = {}
        for name in getattr(member, "rooms", {}).values():
            status = self.status(name, member)
            if status is not None:
                rooms[name] = status
        return {"t": token, "i": self._info(member), "k": nicks, "r": rooms}

    def _store(self, member: Member) -> tuple[Any, ...]:
        token = self._token(member)
        return ("HSET", self._key("users", self.node), token, json.dumps(self._state(token, member)))

    def _touch(self, member: Member | None) -> None:
        """Publish *member*'s details if they changed since last time (away, real name, modes...)."""
        if member is None or type(member) is RemoteMember:
            return
        token = self._tokens.get(id(member))
        if token is None:
            return
        info = self._info(member)
        old = self._sent.get(token)
        if old is not None and old[:9] == info[:9]:
            return
        self._sent[token] = info
        if old is not None:
            self.emit({"o": "info", "t": token, "i": info}, self._store(member))

    def _info_tick(self) -> None:
        # Details such as a real name or an away message change without a
        # room event; a slow sweep carries them to the other nodes.
        self._info_timer = self.reactor.call_later(1.0, self._info_tick)
        if self.connected and self._resync and self._out.qsize() < self._out.maxsize // 2:
            self._resync = False
            self._link_up()
        if self.connected:
            for member in list(self._local.values()):
                self._touch(member)

    def forward(self, member: RemoteMember, event: Event) -> None:
        """Send a private event to a user of another node (an invitation carries the room's modes)."""
        if event.kind == "invite":
            modes = self.modes(event.arg)
            if modes is not None:
                self.emit({"o": "modes", "r": event.arg, "m": _modes_wire(modes)})
        self.emit({"o": "send", "t": member.token, "e": _event_wire(event)})

    # ------------------------------------------------------------------ nicks

    def claim_nick(self, nick: str, member: Member) -> bool:
        """Reserve *nick* atomically across nodes (``SET NX``); locally if Redis does not answer."""
        key = fold(nick)
        holder = self._nicks.get(key)
        if holder is not None:
            return holder is member
        token = self._token(member)
        if self.connected and time.monotonic() >= self._breaker_until:
            try:
                if self._sync_client is None:
                    self._sync_client = self._client(self.call_timeout)
                taken = self._sync_client.set(self._key("nick", key), token, nx=True, ex=self._ttl())
            except self._redis.RedisError as exc:
                # Do not wait again for a while: claim locally, confirm on reconnect.
                self._breaker_until = time.monotonic() + 5.0
                self._sync_client = None
                if self.log is not None:
                    self.log.warning("backplane_claim_failed", nick=nick, error=str(exc))
            else:
                if not taken:
                    return False
        self._nicks[key] = member
        self._own_nicks = (*self._own_nicks, key)
        info = self._info(member)
        self._sent[token] = info
        self.emit({"o": "claim", "t": token, "k": nick, "i": info}, self._store(member))
        return True

    def _ttl(self) -> int:
        return max(int(self.node_timeout + 0.999), 1)

    def release_nick(self, nick: str, member: Member) -> None:
        """Give up *nick* if *member* holds it (compare-and-delete in Redis)."""
        key = fold(nick)
        if self._nicks.get(key) is not member:
            return
        del self._nicks[key]
        self._own_nicks = tuple(k for k in self._own_nicks if k != key)
        token = self._tokens.get(id(member))
        if token is None:
            return
        commands: list[tuple[Any, ...]] = [("EVAL", _RELEASE, 1, self._key("nick", key), token)]
        if any(holder is member for holder in self._nicks.values()) or getattr(member, "rooms", None):
            commands.append(self._store(member))
        else:
            # Holds nothing any more: forget it here and in Redis.
            del self._tokens[id(member)]
            self._local.pop(token, None)
            self._sent.pop(token, None)
            commands.append(("HDEL", self._key("users", self.node), token))
            if getattr(member, "left", False):
                why = getattr(member, "quit_reason", "") or "Connection closed"
                self.emit({"o": "quit", "t": token, "k": nick, "why": why}, *commands)
                return
        self.emit({"o": "release", "t": token, "k": nick}, *commands)

    # ------------------------------------------------------------------ rooms

    def join(self, room: str, member: Member) -> RoomInfo | None:
        """Join locally and tell the other nodes (with the room's state, for a room they do not know)."""
        info = super().join(room, member)
        if info is None or type(member) is RemoteMember:
            return info
        token = self._token(member)
        self._touch(member)
        key = fold(info.name)
        state = self._rooms[key]
        room_wire = {
            "name": info.name,
            "created": state.created,
            "topic": state.topic,
            "by": state.topic_by,
            "at": state.topic_at,
            "m": _modes_wire(state.modes),
        }
        commands: list[tuple[Any, ...]] = [("SADD", self.prefix + "rooms", key)]
        if len(state.members) == 1:
            commands.append(("SET", self._key("room", key), json.dumps(room_wire)))
        self.emit(
            {"o": "join", "t": token, "r": info.name, "s": self.status(info.name, member) or "", "room": room_wire},
            *commands,
        )
        # The users hash is written after the join reached the mirror (the member's own rooms follow it).
        self.reactor.call_soon(self._store_later, member)
        return info

    def _store_later(self, member: Member) -> None:
        if id(member) in self._tokens and self.connected:
            self._put(("cmds", [self._store(member)]))

    def part(self, room: str, member: Member) -> bool:
        """Leave locally and tell the other nodes (a kicked remote user is parted by its own node too)."""
        if not super().part(room, member):
            return False
        key = fold(room)
        if getattr(member, "left", False) and type(member) is not RemoteMember:
            # A closing connection: the other nodes hear one quit when it lets go of its nick.
            if key not in self._rooms and self.connected:
                self._put(("cmds", self._room_gone(key)))
            return True
        if type(member) is RemoteMember:
            member.rooms.pop(key, None)
            token = member.token
            commands: list[tuple[Any, ...]] = []
        else:
            token = self._token(member)
            self.reactor.call_soon(self._store_later, member)
            commands = []
        if key not in self._rooms:
            commands += self._room_gone(key)
        self.emit({"o": "part", "t": token, "r": room}, *commands)
        return True

    def _room_gone(self, key: str) -> list[tuple[Any, ...]]:
        return [("DEL", self._key("room", key), self._key("hist", key)), ("SREM", self.prefix + "rooms", key)]

    def _locals(self, key: str, state: Any) -> tuple[Member, ...]:
        """This node's own members of a room (cached until its membership changes)."""
        snapshot = state.snapshot
        cached = self._local_cache.get(key)
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        mine = tuple(member for member in snapshot if type(member) is not RemoteMember)
        if len(self._local_cache) > 4 * len(self._rooms) + 64:
            self._local_cache.clear()  # rooms that went away
        self._local_cache[key] = (snapshot, mine)
        return mine

    def _deliver_local(self, members: Iterable[Member], event: Event, exclude: Member | None) -> None:
        for member in members:
            if member is not exclude and type(member) is not RemoteMember:
                member.deliver(event)

    def publish(self, room: str, event: Event, exclude: Member | None = None) -> int:
        """Deliver to this node's members of *room* and publish to the others."""
        state = self._rooms.get(fold(room))
        if state is None:
            return 0
        self._touch(exclude)
        commands: list[tuple[Any, ...]] = []
        if self.history_size and event.kind in HISTORY_KINDS:
            state.history.append(event)
            hist = self._key("hist", fold(room))
            wire = json.dumps(_event_wire(event))
            commands = [("RPUSH", hist, wire), ("LTRIM", hist, -self.history_size, -1)]
        if event.kind == "mode":
            self.emit({"o": "modes", "r": room, "m": _modes_wire(state.modes)}, self._room_store(fold(room)))
        self._deliver_local(self._locals(fold(room), state), event, exclude)
        self.emit({"o": "pub", "r": room, "e": _event_wire(event), "x": self._exclude(exclude)}, *commands)
        return len(state.members) - (1 if exclude is not None and id(exclude) in state.members else 0)

    def _exclude(self, member: Member | None) -> str:
        if member is None:
            return ""
        if type(member) is RemoteMember:
            return member.token
        return self._tokens.get(id(member), "")

    def publish_rooms(self, rooms: Iterable[str], event: Event, exclude: Member | None = None) -> int:
        """Deliver once to this node's users sharing *rooms*, and publish to the others."""
        rooms = list(rooms)
        seen: dict[int, Member] = {}
        for room in rooms:
            state = self._rooms.get(fold(room))
            if state is not None:
                seen.update(state.members)
        if exclude is not None:
            seen.pop(id(exclude), None)
        self._touch(exclude)
        self._deliver_local(seen.values(), event, None)
        if event.kind == "quit":
            return len(seen)  # the other nodes had it as a "quit" message, with the rooms left
        self.emit({"o": "rooms", "rs": rooms, "e": _event_wire(event), "x": self._exclude(exclude)})
        return len(seen)

    def set_status(self, room: str, member: Member, letter: str, on: bool) -> bool:
        """Change a status letter here and on every node."""
        if not super().set_status(room, member, letter, on):
            return False
        token = member.token if type(member) is RemoteMember else self._token(member)
        self.emit({"o": "status", "r": room, "t": token, "s": self.status(room, member) or ""})
        if type(member) is not RemoteMember:
            self.reactor.call_soon(self._store_later, member)
        return True

    def set_topic(self, room: str, topic: str, by: str) -> bool:
        """Change the topic here and on every node."""
        if not super().set_topic(room, topic, by):
            return False
        state = self._rooms[fold(room)]
        self.emit(
            {"o": "topic", "r": room, "topic": topic, "by": by, "at": state.topic_at}, self._room_store(fold(room))
        )
        return True

    def _room_store(self, key: str) -> tuple[Any, ...]:
        state = self._rooms[key]
        wire = {
            "name": state.name,
            "created": state.created,
            "topic": state.topic,
            "by": state.topic_by,
            "at": state.topic_at,
            "m": _modes_wire(state.modes),
        }
        return ("SET", self._key("room", key), json.dumps(wire))

    # ------------------------------------------------------------------ what the other nodes say

    def _remote_member(self, token: str, info: list[Any] | None = None) -> RemoteMember:
        member = self._remote.get(token)
        if member is None:
            member = self._remote[token] = RemoteMember(self, token)
            if member.node not in self._known_nodes:
                # Judged by the reaper even if Redis lost its node set (a restart).
                self._known_nodes = (*self._known_nodes, member.node)
        if info is not None:
            member.update(info)
        return member

    def _apply_batch(self, batch: list[dict[str, Any]]) -> None:
        if self._held is not None:
            # Between subscribing and reading the snapshot: these may be newer
            # than the snapshot, so they are applied after it.
            if len(self._held) + len(batch) > _HELD_MAX:
                self._held = None
                self._resync = True  # too much at once: read the state again
                return
            self._held.extend(batch)
            return
        for message in batch:
            try:
                self._apply(message)
            except Exception:  # a malformed message must not stop the others
                if self.log is not None and self._log_budget():
                    self.log.exception("backplane_message_failed", op=str(message.get("o"))[:40])

    def _log_budget(self) -> bool:
        now = time.monotonic()
        if now - self._log_window >= 60.0:
            self._log_window, self._log_count = now, 0
        self._log_count += 1
        return self._log_count <= 20

    def _apply(self, msg: dict[str, Any]) -> None:
        op = msg.get("o")
        if op == "gone":
            node = msg["node"]
            if node == self.node:
                # Declared dead while alive (paused past the timeout): come back.
                if self.connected and not self._stop.is_set():
                    self._link_up()
                return
            self._replace_node(node, [], msg.get("why") or "Lost in the network")
            self._known_nodes = tuple(known for known in self._known_nodes if known != node)
            return
        if msg.get("n") == self.node:
            return
        handler = getattr(self, "_on_" + str(op), None)
        if handler is not None:
            handler(msg)

    def _on_claim(self, msg: dict[str, Any]) -> None:
        member = self._remote_member(msg["t"], msg["i"])
        key = fold(msg["k"])
        holder = self._nicks.get(key)
        if holder is None or type(holder) is RemoteMember:
            self._nicks[key] = member
        elif self.log is not None:
            # Claimed here while Redis was away; the reconnect settles it.
            self.log.warning("backplane_nick_conflict", nick=msg["k"])

    def _on_release(self, msg: dict[str, Any]) -> None:
        member = self._remote.get(msg["t"])
        if member is None:
            return
        key = fold(msg["k"])
        if self._nicks.get(key) is member:
            del self._nicks[key]
        if not member.rooms and not any(holder is member for holder in self._nicks.values()):
            del self._remote[member.token]

    def _on_quit(self, msg: dict[str, Any]) -> None:
        member = self._remote.get(msg["t"])
        if member is not None:
            self._drop_remote(member, str(msg.get("why", "")))

    def _on_info(self, msg: dict[str, Any]) -> None:
        self._remote_member(msg["t"], msg["i"])

    def _on_join(self, msg: dict[str, Any]) -> None:
        member = self._remote_member(msg["t"])
        name = msg["r"]
        key = fold(name)
        fresh = key not in self._rooms
        if LocalBackplane.join(self, name, member) is None:
            return
        state = self._rooms[key]
        if fresh:
            room = msg.get("room") or {}
            state.name = room.get("name", name)
            state.created = room.get("created", state.created)
            state.topic, state.topic_by, state.topic_at = room.get("topic", ""), room.get("by", ""), room.get("at", 0.0)
            if "m" in room:
                _modes_apply(state.modes, room["m"])
        self._put_status(state, member, msg.get("s", ""))
        member.rooms[key] = state.name

    @staticmethod
    def _put_status(state: Any, member: Member, status: str) -> None:
        if status:
            state.status[id(member)] = status
        else:
            state.status.pop(id(member), None)

    def _on_part(self, msg: dict[str, Any]) -> None:
        token = msg["t"]
        local = self._local.get(token)
        if local is not None:
            # One of ours was taken out of the room on another node (a kick).
            if LocalBackplane.part(self, msg["r"], local):
                local.removed(msg["r"])
                self.reactor.call_soon(self._store_later, local)
            return
        member = self._remote.get(token)
        if member is not None and LocalBackplane.part(self, msg["r"], member):
            member.rooms.pop(fold(msg["r"]), None)

    def _member(self, token: str) -> Member | None:
        return self._local.get(token) or self._remote.get(token)

    def _on_pub(self, msg: dict[str, Any]) -> None:
        key = fold(msg["r"])
        state = self._rooms.get(key)
        if state is None:
            return
        event = _event_from(msg["e"])
        if self.history_size and event.kind in HISTORY_KINDS:
            state.history.append(event)
        mine = self._locals(key, state)
        if mine:
            self._deliver_local(mine, event, self._local.get(msg.get("x", "")))

    def _on_rooms(self, msg: dict[str, Any]) -> None:
        seen: dict[int, Member] = {}
        for room in msg["rs"]:
            state = self._rooms.get(fold(room))
            if state is not None:
                seen.update(state.members)
        excluded = self._member(msg.get("x", ""))
        if excluded is not None:
            seen.pop(id(excluded), None)
        self._deliver_local(seen.values(), _event_from(msg["e"]), None)

    def _on_send(self, msg: dict[str, Any]) -> None:
        member = self._local.get(msg["t"])
        if member is not None:
            member.deliver(_event_from(msg["e"]))

    def _on_status(self, msg: dict[str, Any]) -> None:
        state = self._rooms.get(fold(msg["r"]))
        member = self._member(msg["t"])
        if state is not None and member is not None and id(member) in state.members:
            self._put_status(state, member, msg["s"])

    def _on_topic(self, msg: dict[str, Any]) -> None:
        state = self._rooms.get(fold(msg["r"]))
        if state is not None:
            state.topic, state.topic_by, state.topic_at = msg["topic"], msg["by"], msg["at"]

    def _on_modes(self, msg: dict[str, Any]) -> None:
        state = self._rooms.get(fold(msg["r"]))
        if state is not None:
            _modes_apply(state.modes, msg["m"])

    def _on_kill(self, msg: dict[str, Any]) -> None:
        member = self._local.get(msg["t"])
        if member is not None:
            member.kill(msg["why"])

    def _on_sync(self, msg: dict[str, Any]) -> None:
        self._replace_node(msg["n"], msg["users"], "Lost in the network")

    def _replace_node(self, node: str, users: list[dict[str, Any]], reason: str) -> None:
        """Make the mirror hold exactly *users* for *node*, telling local users what changed."""
        wanted = {user["t"]: user for user in users}
        for token, member in list(self._remote.items()):
            if member.node == node and token not in wanted:
                self._drop_remote(member, reason)
        for token, user in wanted.items():
            member = self._remote_member(token, user["i"])
            for key, holder in list(self._nicks.items()):
                if holder is member and key not in {fold(nick) for nick in user["k"]}:
                    del self._nicks[key]
            for nick in user["k"]:
                if self._nicks.get(fold(nick)) is None:
                    self._nicks[fold(nick)] = member
            rooms = {fold(name): (name, status) for name, status in user["r"].items()}
            for key, name in list(member.rooms.items()):
                if key not in rooms:
                    self._deliver_room(name, Event("part", member.nick, member.user, member.host, name, reason), member)
                    LocalBackplane.part(self, name, member)
                    del member.rooms[key]
            for key, (name, status) in rooms.items():
                if key not in member.rooms:
                    LocalBackplane.join(self, name, member)
                    state = self._rooms[key]
                    member.rooms[key] = state.name
                    self._deliver_room(name, Event("join", member.nick, member.user, member.host, state.name), member)
                state = self._rooms[key]
                self._put_status(state, member, status)

    def _deliver_room(self, room: str, event: Event, exclude: Member | None) -> None:
        state = self._rooms.get(fold(room))
        if state is not None:
            self._deliver_local(state.snapshot, event, exclude)

    def _drop_remote(self, member: RemoteMember, reason: str) -> None:
        """A user of another node is gone without a word (its node died or left): quit it here."""
        seen: dict[int, Member] = {}
        for name in list(member.rooms.values()):
            state = self._rooms.get(fold(name))
            if state is not None:
                seen.update(state.members)
            LocalBackplane.part(self, name, member)
        member.rooms.clear()
        for key, holder in list(self._nicks.items()):
            if holder is member:
                del self._nicks[key]
        self._remote.pop(member.token, None)
        seen.pop(id(member), None)
        if seen:
            self._deliver_local(seen.values(), Event("quit", member.nick, member.user, member.host, "", reason), None)

    # ------------------------------------------------------------------ the link: up, down, snapshot

    def _link_up(self) -> None:
        """Subscribed (again): announce this node's whole state, confirm its nicks, read everyone else's."""
        if self._stop.is_set():
            return
        self.connected = True
        self._breaker_until = 0.0
        self._connected_since = time.monotonic()
        users = [self._state(token, member) for token, member in self._local.items()]
        for user in users:
            self._sent[user["t"]] = user["i"]
        rooms = {}
        for key, state in self._rooms.items():
            if any(type(member) is not RemoteMember for member in state.snapshot):
                rooms[key] = self._room_store(key)
        self._held = []
        self._put(("sync", (users, list(rooms.values()))))
        if self._told_down:
            self._told_down = False
            self._tell_all("The chat backplane is back: rooms are shared with the other servers again.")
        if self.log is not None:
            self.log.info("backplane_connected", node=self.node, users=len(users))

    def _link_down(self, error: str) -> None:
        if self.connected or not self._told_down:
            if self.log is not None:
                self.log.warning("backplane_disconnected", node=self.node, error=error)
            if self._local and not self._told_down:
                self._tell_all(
                    "Lost the connection to the chat backplane: people on other servers do not see what is"
                    " said here until it is back (retrying)."
                )
            self._told_down = True
        self.connected = False
        self._sync_client = None
        self._held = None

    def _publish_failed(self, error: str) -> None:
        self._resync = True
        self._sync_client = None
        if self.log is not None and self._log_budget():
            self.log.warning("backplane_publish_failed", node=self.node, error=error)

    def _tell_all(self, text: str) -> None:
        for member in list(self._local.values()):
            member.deliver(Event("server", self.server_name, "", "", member.nick, text))

    def _snapshot(self, snapshot: dict[str, Any], conflicts: list[tuple[str, str]]) -> None:
        """Apply what Redis holds about the other nodes (after a (re)connect)."""
        for key, room in snapshot["rooms"].items():
            state = self._rooms.get(key)
            if state is not None and any(type(member) is not RemoteMember for member in state.snapshot):
                continue  # ours is as fresh as what Redis holds
            self._pending_rooms[key] = room
        for node, users in snapshot["nodes"].items():
            self._replace_node(node, users, "Lost in the network")
        for key, room in self._pending_rooms.items():
            state = self._rooms.get(key)
            if state is None:
                continue
            state.name = room.get("name", state.name)
            state.created = room.get("created", state.created)
            state.topic, state.topic_by, state.topic_at = room.get("topic", ""), room.get("by", ""), room.get("at", 0.0)
            if "m" in room:
                _modes_apply(state.modes, room["m"])
            if self.history_size and not state.history:
                for wire in snapshot["history"].get(key, ()):
                    state.history.append(_event_from(wire))
        self._pending_rooms.clear()
        held, self._held = self._held, None
        if held:
            self._apply_batch(held)
        if self.log is not None:
            self.log.info(
                "backplane_synced",
                node=self.node,
                nodes=len(snapshot["nodes"]),
                users=sum(len(users) for users in snapshot["nodes"].values()),
                rooms=len(snapshot["rooms"]),
            )
        self._known_nodes = tuple({member.node for member in self._remote.values()})
        for nick, token in conflicts:
            member = self._local.get(token)
            if member is not None:
                # Both sides took the nick while Redis was away; the one already in Redis keeps it.
                member.kill(f"Nick collision: {nick} was taken on another server while the backplane was away")

    # ------------------------------------------------------------------ the threads

    def _call(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if kwargs:
            callback = functools.partial(callback, **kwargs)
        self.reactor.call_soon_threadsafe(callback, *args)

    def _subscriber(self) -> None:
        backoff = _BACKOFF_MIN
        while not self._stop.is_set():
            client = None
            try:
                # Bytes: whatever someone publishes, decoding happens below, where it may fail.
                client = self._client(None, decode=False)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                pubsub.get_message(timeout=self.call_timeout * 4)  # the subscription's confirmation
                self._call(self._link_up)
                backoff = _BACKOFF_MIN
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        pubsub.ping()  # notice a dead server even when the channel is quiet
                        continue
                    batch = [message]
                    while len(batch) < 256:
                        more = pubsub.get_message(timeout=0)
                        if more is None:
                            break
                        batch.append(more)
                    decoded = []
                    for item in batch:
                        if item.get("type") == b"message" or item.get("type") == "message":
                            try:
                                message = json.loads(item["data"])
                            except (TypeError, ValueError, RecursionError):
                                continue  # not ours: someone else writes to the channel
                            if isinstance(message, dict):
                                decoded.append(message)
                    if decoded:
                        self._call(self._apply_batch, decoded)
            except Exception as exc:  # the link (RedisError, OSError) or anything else: never die, retry
                self._call(self._link_down, str(exc) or type(exc).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()

    def _publisher(self) -> None:
        client = self._client(max(self.call_timeout * 4, 2.0))
        interval = max(self.node_timeout / 3, 0.2)
        next_beat = 0.0
        backoff = _BACKOFF_MIN
        while True:
            stopping = self._stop.is_set()
            timeout = max(next_beat - time.monotonic(), 0.0)
            items: list[Any] = []
            try:
                items.append(self._out.get(timeout=0.05 if stopping else min(timeout, 1.0)))
                while len(items) < _BATCH:
                    items.append(self._out.get_nowait())
            except queue.Empty:
                pass
            if stopping and not items:
                return
            try:
                self._run(client, items)
                if not stopping and time.monotonic() >= next_beat and self.connected:
                    self._heartbeat(client)
                    next_beat = time.monotonic() + interval
                backoff = _BACKOFF_MIN
            except Exception as exc:  # the link (RedisError, OSError) or anything else: never die, retry
                # What was in flight is lost: announce the whole state again once
                # Redis answers.  The subscriber judges whether the link is down.
                self._call(self._publish_failed, str(exc) or type(exc).__name__)
                if stopping:
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _run(self, client: Any, items: list[Any]) -> None:
        pipe = client.pipeline(transaction=False)
        queued = 0
        for kind, payload in items:
            if kind == "cmds":
                for command in payload:
                    pipe.execute_command(*command)
                    queued += 1
            else:
                if queued:
                    pipe.execute()
                    pipe = client.pipeline(transaction=False)
                    queued = 0
                if kind == "sync":
                    self._sync(client, *payload)
                elif kind == "goodbye":
                    self._goodbye(client)
        if queued:
            pipe.execute()

    def _sync(self, client: Any, users: list[dict[str, Any]], rooms: list[tuple[Any, ...]]) -> None:
        """Announce this node (heartbeat, users, nicks, rooms), then read the others' state."""
        ttl = self._ttl()
        users_key = self._key("users", self.node)
        pipe = client.pipeline(transaction=False)
        pipe.set(self._key("node", self.node), str(time.time()), ex=ttl)
        pipe.sadd(self.prefix + "nodes", self.node)
        pipe.delete(users_key)
        for user in users:
            pipe.hset(users_key, user["t"], json.dumps(user))
            for nick in user["k"]:
                pipe.eval(_RECLAIM, 1, self._key("nick", fold(nick)), user["t"], ttl)
        for command in rooms:
            # A room another node wrote first keeps that node's version.
            pipe.set(command[1], command[2], nx=True)
            pipe.sadd(self.prefix + "rooms", command[1][len(self._key("room", "")) :])
        message = {"o": "sync", "n": self.node, "users": users}
        pipe.publish(self.channel, json.dumps(message, separators=(",", ":")))
        results = pipe.execute()
        conflicts = []
        index = 3
        for user in users:
            index += 1
            for nick in user["k"]:
                if results[index] != user["t"]:
                    conflicts.append((nick, user["t"]))
                index += 1
        snapshot = self._read_snapshot(client)
        self._call(self._snapshot, snapshot, conflicts)

    def _read_snapshot(self, client: Any) -> dict[str, Any]:
        nodes: dict[str, list[dict[str, Any]]] = {}
        for node in client.smembers(self.prefix + "nodes"):
            if node == self.node:
                continue
            if not client.exists(self._key("node", node)):
                continue  # dead or not yet back: the reaper decides
            users = []
            for raw in client.hgetall(self._key("users", node)).values():
                try:
                    users.append(json.loads(raw))
                except ValueError:
                    continue
            nodes[node] = users
        rooms: dict[str, dict[str, Any]] = {}
        history: dict[str, list[Any]] = {}
        for key in client.smembers(self.prefix + "rooms"):
            raw = client.get(self._key("room", key))
            if raw:
                try:
                    rooms[key] = json.loads(raw)
                except ValueError:
                    continue
            if self.history_size:
                history[key] = [
                    json.loads(item) for item in client.lrange(self._key("hist", key), -self.history_size, -1)
                ]
        return {"nodes": nodes, "rooms": rooms, "history": history}

    def _heartbeat(self, client: Any) -> None:
        """Say this node lives, keep its nicks, and clean up after nodes that stopped saying so."""
        ttl = self._ttl()
        pipe = client.pipeline(transaction=False)
        pipe.set(self._key("node", self.node), str(time.time()), ex=ttl)
        pipe.sadd(self.prefix + "nodes", self.node)
        for key in self._own_nicks:
            pipe.expire(self._key("nick", key), ttl)
        pipe.smembers(self.prefix + "nodes")
        results = pipe.execute()
        # A node is judged only after this one has been connected a whole
        # timeout: after Redis restarts, live nodes need that long to re-announce.
        if time.monotonic() - self._connected_since < self.node_timeout:
            return
        candidates = (set(results[-1]) | set(self._known_nodes)) - {self.node}
        for node in candidates:
            if client.exists(self._key("node", node)):
                continue
            if not client.set(self._key("reap", node), self.node, nx=True, ex=max(ttl * 4, 60)):
                continue  # another survivor cleans up
            self._reap(client, node)

    def _reap(self, client: Any, node: str, why: str = "Lost in the network") -> None:
        users_key = self._key("users", node)
        pipe = client.pipeline(transaction=False)
        for raw in client.hgetall(users_key).values():
            try:
                user = json.loads(raw)
            except ValueError:
                continue
            for nick in user.get("k", ()):
                pipe.eval(_RELEASE, 1, self._key("nick", fold(nick)), user["t"])
        pipe.delete(users_key)
        pipe.srem(self.prefix + "nodes", node)
        pipe.publish(self.channel, json.dumps({"o": "gone", "n": self.node, "node": node, "why": why}))
        pipe.execute()
        if self.log is not None:
            self._call(self.log.warning, "backplane_node_reaped", node=node, by=self.node)

    def _goodbye(self, client: Any) -> None:
        """A graceful stop: the others quit this node's users now."""
        self._reap(client, self.node, "Server shutting down")
        client.delete(self._key("node", self.node))
