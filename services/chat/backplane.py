"""The room model: events, members, and the backplane that holds rooms and nicks.

Both dialects (plain text and IRC) talk to rooms only through :class:`Backplane`,
so a later backplane can spread rooms over processes or hosts without touching
the protocols.  :class:`LocalBackplane` keeps everything in this process.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from linechat.services.chat.names import fold

__all__ = ["HISTORY_KINDS", "Backplane", "ChannelModes", "Event", "LocalBackplane", "Member", "RoomInfo"]

#: Event kinds kept in a room's history and replayed on join.
HISTORY_KINDS = frozenset({"message", "action", "notice"})


class Event:
    """Something said or done, addressed to a room (``#name``) or to a nick.

    An event is rendered at most once per dialect: every member of that
    dialect gets the same bytes, so a broadcast costs one encode per dialect,
    not one per member.
    """

    __slots__ = ("_wire", "arg", "at", "host", "kind", "nick", "tags", "target", "text", "user")

    def __init__(
        self,
        kind: str,
        nick: str,
        user: str,
        host: str,
        target: str,
        text: str = "",
        at: float | None = None,
        arg: str = "",
        tags: str = "",
    ) -> None:
        # message, notice, action, tagmsg, join, part, quit, nick, topic, kick, mode, invite, away
        self.kind = kind
        self.nick = nick
        self.user = user
        self.host = host
        self.target = target  # a room name, a nick, or "" (quit, nick, away)
        self.text = text
        self.at = time.time() if at is None else at
        # A parameter some kinds carry: the kicked nick, the mode changes, the room invited to.
        self.arg = arg
        # Client-only IRCv3 tags (``+name=value;...``), relayed to clients that asked for message-tags.
        self.tags = tags
        self._wire: dict[Callable[[Event], bytes | None], bytes | None] = {}

    def encoded(self, render: Callable[[Event], bytes | None]) -> bytes | None:
        """Return this event as *render* formats it (cached: each renderer runs once)."""
        wire = self._wire
        try:
            return wire[render]
        except KeyError:
            data = wire[render] = render(self)
            return data

    @property
    def private(self) -> bool:
        """True when addressed to a nick rather than a room."""
        return not self.target.startswith("#")

    def __repr__(self) -> str:
        return f"<Event {self.kind} {self.nick}->{self.target} {self.text!r}>"


class Member(Protocol):
    """What the backplane needs of a connected user (both dialects implement it)."""

    nick: str
    user: str
    host: str
    realname: str
    away: str  # the away message, "" when here

    @property
    def dialect(self) -> str:
        """The dialect this member speaks ("plain", "irc")."""

    def deliver(self, event: Event) -> None:
        """Queue *event* for this user; must not block and must not raise."""

    def removed(self, room: str) -> None:
        """This user was taken out of *room* by someone else (a kick): forget it."""

    def kill(self, reason: str) -> None:
        """Disconnect this user with *reason* (an operator's KILL)."""


@dataclass
class ChannelModes:
    """A room's modes: flags (i, m, n, s, t), key, limit, bans and pending invitations."""

    flags: set[str] = field(default_factory=lambda: {"n", "t"})
    key: str = ""
    limit: int = 0
    bans: list[tuple[str, str, float]] = field(default_factory=list)  # mask, set by, when
    invited: set[str] = field(default_factory=set)  # folded nicks invited past +i

    def describe(self, show_key: bool = True) -> tuple[str, list[str]]:
        """The mode string and its parameters, as RPL_CHANNELMODEIS shows them."""
        modes = "+" + "".join(sorted(self.flags))
        params: list[str] = []
        if self.key:
            modes += "k"
            params.append(self.key if show_key else "*")
        if self.limit:
            modes += "l"
            params.append(str(self.limit))
        return modes, params


@dataclass
class RoomInfo:
    """A room as seen from outside: its name, size and topic."""

    name: str
    members: int
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    created: float = 0.0


class Backplane(ABC):
    """Rooms and the one nick namespace shared by every dialect."""

    # ------------------------------------------------------------------ nicks

    @abstractmethod
    def claim_nick(self, nick: str, member: Member) -> bool:
        """Reserve *nick* for *member*; False if someone else holds it."""

    @abstractmethod
    def release_nick(self, nick: str, member: Member) -> None:
        """Give up *nick* if *member* holds it."""

    @abstractmethod
    def find(self, nick: str) -> Member | None:
        """Return the member holding *nick*, if any."""

    @abstractmethod
    def users(self) -> list[Member]:
        """Every member holding a nick."""

    # ------------------------------------------------------------------ rooms

    @abstractmethod
    def join(self, room: str, member: Member) -> RoomInfo | None:
        """Add *member* to *room* (created on first join); None if already in it."""

    @abstractmethod
    def part(self, room: str, member: Member) -> bool:
        """Remove *member* from *room* (emptied rooms go away); False if not in it."""

    @abstractmethod
    def publish(self, room: str, event: Event, exclude: Member | None = None) -> int:
        """Deliver *event* to every member of *room* but *exclude*; return how many got it."""

    @abstractmethod
    def publish_rooms(self, rooms: Iterable[str], event: Event, exclude: Member | None = None) -> int:
        """Deliver *event* once to everyone sharing any of *rooms* (nick changes, quits)."""

    @abstractmethod
    def send(self, nick: str, event: Event) -> bool:
        """Deliver a private *event* to *nick*; False if no one holds it."""

    @abstractmethod
    def members(self, room: str) -> list[Member]:
        """The members of *room* (empty if it does not exist)."""

    @abstractmethod
    def member_status(self, room: str) -> list[tuple[Member, str]]:
        """The members of *room* with their status letters ("o", "v", "ov" or "")."""

    @abstractmethod
    def status(self, room: str, member: Member) -> str | None:
        """*member*'s status letters in *room* ("o", "v", "ov", ""); None if not a member."""

    @abstractmethod
    def set_status(self, room: str, member: Member, letter: str, on: bool) -> bool:
        """Give or take status *letter* ("o" or "v"); True if that changed anything."""

    @abstractmethod
    def modes(self, room: str) -> ChannelModes | None:
        """The room's modes (the live state: change it in place), or None if there is no such room."""

    @abstractmethod
    def room(self, room: str) -> RoomInfo | None:
        """Describe *room*, or None if it does not exist."""

    @abstractmethod
    def rooms(self) -> list[RoomInfo]:
        """Describe every room, by name."""

    @abstractmethod
    def set_topic(self, room: str, topic: str, by: str) -> bool:
        """Change a room's topic; False if the room does not exist."""

    @abstractmethod
    def history(self, room: str) -> list[Event]:
        """The last messages said in *room*, oldest first (empty when history is off)."""


@dataclass
class _Room:
    name: str
    created: float
    history: deque[Event]
    members: dict[int, Member] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)  # member id -> "o", "v", "ov"
    modes: ChannelModes = field(default_factory=ChannelModes)
    # A tuple rebuilt on membership change: broadcasting iterates it, so a
    # member leaving (or being cut off) mid-broadcast is harmless.
    snapshot: tuple[Member, ...] = ()
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0

    def info(self) -> RoomInfo:
        return RoomInfo(self.name, len(self.members), self.topic, self.topic_by, self.topic_at, self.created)


class LocalBackplane(Backplane):
    """Rooms and nicks in this process: dictionaries keyed by case-folded names."""

    def __init__(self, history: int = 0, default_modes: str = "nt") -> None:
        self.history_size = history
        self.default_modes = default_modes
        self._nicks: dict[str, Member] = {}
        self._rooms: dict[str, _Room] = {}

    def claim_nick(self, nick: str, member: Member) -> bool:
        """Reserve *nick* for *member*; False if someone else holds it."""
        holder = self._nicks.setdefault(fold(nick), member)
        return holder is member

    def release_nick(self, nick: str, member: Member) -> None:
        """Give up *nick* if *member* holds it."""
        key = fold(nick)
        if self._nicks.get(key) is member:
            del self._nicks[key]

    def find(self, nick: str) -> Member | None:
        """Return the member holding *nick*, if any."""
        return self._nicks.get(fold(nick))

    def users(self) -> list[Member]:
        """Every member holding a nick."""
        return list(self._nicks.values())

    def join(self, room: str, member: Member) -> RoomInfo | None:
        """Add *member* to *room* (created on first join); None if already in it."""
        key = fold(room)
        state = self._rooms.get(key)
        if state is None:
            state = self._rooms[key] = _Room(room, time.time(), deque(maxlen=self.history_size or None))
            state.modes.flags = set(self.default_modes)
            state.status[id(member)] = "o"  # whoever creates a room operates it
        elif id(member) in state.members:
            return None
        state.members[id(member)] = member
        state.snapshot = tuple(state.members.values())
        return state.info()

    def part(self, room: str, member: Member) -> bool:
        """Remove *member* from *room* (emptied rooms go away); False if not in it."""
        key = fold(room)
        state = self._rooms.get(key)
        if state is None or state.members.pop(id(member), None) is None:
            return False
        state.status.pop(id(member), None)
        if state.members:
            state.snapshot = tuple(state.members.values())
        else:
            del self._rooms[key]
        return True

    def publish(self, room: str, event: Event, exclude: Member | None = None) -> int:
        """Deliver *event* to every member of *room* but *exclude*; return how many got it."""
        state = self._rooms.get(fold(room))
        if state is None:
            return 0
        if self.history_size and event.kind in HISTORY_KINDS:
            state.history.append(event)
        count = 0
        for member in state.snapshot:
            if member is not exclude:
                member.deliver(event)
                count += 1
        return count

    def publish_rooms(self, rooms: Iterable[str], event: Event, exclude: Member | None = None) -> int:
        """Deliver *event* once to everyone sharing any of *rooms* (nick changes, quits)."""
        seen: dict[int, Member] = {}
        for room in rooms:
            state = self._rooms.get(fold(room))
            if state is not None:
                seen.update(state.members)
        if exclude is not None:
            seen.pop(id(exclude), None)
        for member in seen.values():
            member.deliver(event)
        return len(seen)

    def send(self, nick: str, event: Event) -> bool:
        """Deliver a private *event* to *nick*; False if no one holds it."""
        member = self._nicks.get(fold(nick))
        if member is None:
            return False
        member.deliver(event)
        return True

    def members(self, room: str) -> list[Member]:
        """The members of *room* (empty if it does not exist)."""
        state = self._rooms.get(fold(room))
        return list(state.snapshot) if state is not None else []

    def member_status(self, room: str) -> list[tuple[Member, str]]:
        """The members of *room* with their status letters ("o", "v", "ov" or "")."""
        state = self._rooms.get(fold(room))
        if state is None:
            return []
        status = state.status
        return [(member, status.get(id(member), "")) for member in state.snapshot]

    def status(self, room: str, member: Member) -> str | None:
        """*member*'s status letters in *room* ("o", "v", "ov", ""); None if not a member."""
        state = self._rooms.get(fold(room))
        if state is None or id(member) not in state.members:
            return None
        return state.status.get(id(member), "")

    def set_status(self, room: str, member: Member, letter: str, on: bool) -> bool:
        """Give or take status *letter* ("o" or "v"); True if that changed anything."""
        state = self._rooms.get(fold(room))
        if state is None or id(member) not in state.members:
            return False
        old = state.status.get(id(member), "")
        new = "".join(sorted(set(old) | {letter})) if on else old.replace(letter, "")
        if new == old:
            return False
        if new:
            state.status[id(member)] = new
        else:
            state.status.pop(id(member), None)
        return True

    def modes(self, room: str) -> ChannelModes | None:
        """The room's modes (the live state: change it in place), or None if there is no such room."""
        state = self._rooms.get(fold(room))
        return state.modes if state is not None else None

    def room(self, room: str) -> RoomInfo | None:
        """Describe *room*, or None if it does not exist."""
        state = self._rooms.get(fold(room))
        return state.info() if state is not None else None

    def rooms(self) -> list[RoomInfo]:
        """Describe every room, by name."""
        return sorted((state.info() for state in self._rooms.values()), key=lambda info: fold(info.name))

    def set_topic(self, room: str, topic: str, by: str) -> bool:
        """Change a room's topic; False if the room does not exist."""
        state = self._rooms.get(fold(room))
        if state is None:
            return False
        state.topic, state.topic_by, state.topic_at = topic, by, time.time()
        return True

    def history(self, room: str) -> list[Event]:
        """The last messages said in *room*, oldest first (empty when history is off)."""
        state = self._rooms.get(fold(room))
        return list(state.history) if state is not None else []
