"""What both dialects share: a chat user on a connection, its rooms, its flood gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from linechat import Protocol, Reply
from linechat.reactor import Timer
from linechat.services.chat.backplane import Backplane, Event, RoomInfo
from linechat.services.chat.names import fold, valid_nick, valid_room

if TYPE_CHECKING:
    from linechat.services.chat import ChatService, ChatSettings

__all__ = ["ChatSession", "FloodGate"]


class FloodGate:
    """A token bucket per connection: *burst* lines at once, then *rate* lines a second.

    Past the bucket, lines are delayed (the caller pauses input for the
    returned number of seconds).  A client that keeps the bucket drained for
    more than *kick* delayed lines, never letting it refill to half, is
    flooding on purpose: :meth:`admit` then returns None.
    """

    __slots__ = ("burst", "delayed", "kick", "last", "rate", "throttled", "tokens")

    def __init__(self, rate: float, burst: int, kick: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.kick = kick
        self.tokens = float(burst)
        self.last = now
        self.delayed = 0
        self.throttled = False

    def admit(self, now: float) -> float | None:
        """Account for one line at *now*; return seconds to hold further input (0: none), None: kick."""
        tokens = self.tokens + (now - self.last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.last = now
        if self.throttled:
            if tokens * 2 >= self.burst:
                self.throttled = False
                self.delayed = 0
            else:
                self.delayed += 1
                if self.delayed > self.kick:
                    return None
        tokens -= 1.0
        self.tokens = tokens
        if tokens >= 1.0:
            return 0.0
        self.throttled = True
        return (1.0 - tokens) / self.rate


class ChatSession(Protocol):
    """One chat user on one connection; the dialects subclass it."""

    #: Name of the dialect, for logs and for :class:`~services.chat.backplane.Member`.
    dialect: ClassVar[str] = ""

    @staticmethod
    def render(event: Event) -> bytes | None:
        """Format an event for this dialect (one function per dialect: its bytes are cached on the event)."""
        return None

    service: ChatService
    settings: ChatSettings

    def __init__(self, channel: Any, service: Any) -> None:
        super().__init__(channel, service)
        self.nick = ""
        self.user = ""
        self.realname = ""
        self.host = self.peer[0] if self.peer else "unknown"
        self.rooms: dict[str, str] = {}  # folded name -> name as created
        self.quit_reason = ""
        self.left = False
        self.last_seen = self.reactor.time()
        settings = self.settings
        self.flood: FloodGate | None = None
        if settings.flood_rate > 0:
            self.flood = FloodGate(settings.flood_rate, settings.flood_burst, settings.flood_kick, self.last_seen)
        self._flood_timer: Timer | None = None
        self._hard_limit = self.channel.out_hard_limit
        self._outq: list[bytes] = []

    @property
    def backplane(self) -> Backplane:
        """The service's room registry."""
        return self.service.backplane

    # ------------------------------------------------------------------ the member side

    def deliver(self, event: Event) -> None:
        """Queue *event* for this user, rendered once per dialect; it goes out at the end of the turn."""
        data = event.encoded(self.render)
        if data is None or self.left:
            return
        # Fan-out is deferred: everything a turn says to this user leaves in
        # one push (one send), however many messages the turn carried.
        outq = self._outq
        if not outq:
            self.service.flush_soon(self)
        outq.append(data)

    def flush(self) -> None:
        """Push what :meth:`deliver` queued (the service calls this once per turn)."""
        outq = self._outq
        if not outq:
            return
        self._outq = []
        if self.left:
            return
        data = outq[0] if len(outq) == 1 else b"".join(outq)
        channel = self.channel
        if self._hard_limit is not None and channel.out_buffered > self._hard_limit:
            # The push below passes the output cap and the framework cuts the
            # peer off; say why to the rooms it leaves.
            self.quit_reason = "Slow reader: output limit reached"
        channel.push(data)

    def send(self, reply: Reply) -> None:
        """Send a reply after whatever room traffic is already queued for this user."""
        if self._outq:
            self.flush()
        super().send(reply)

    def event(self, kind: str, target: str, text: str = "") -> Event:
        """An event from this user."""
        return Event(kind, self.nick, self.user, self.host, target, text)

    # ------------------------------------------------------------------ input

    def admit_line(self) -> bool:
        """Count one line (good, over-long or undecodable) against the flood gate; False if it kicked the client."""
        now = self.reactor.time()
        self.last_seen = now
        gate = self.flood
        if gate is not None:
            hold = gate.admit(now)
            if hold is None:
                self.log.warning("flood_disconnect", nick=self.nick)
                self.disconnect("Excess flood")
                return False
            if hold and self._flood_timer is None:
                # Delay what follows: input stays in the socket until the bucket refills.
                self.pause("flood")
                self._flood_timer = self.reactor.call_later(hold, self._flood_over)
        return True

    def handle_line(self, line: bytes) -> Reply:
        """Count the line against the flood gate, then dispatch it."""
        if not self.admit_line():
            return None
        reply = super().handle_line(line)
        if self._outq:
            self.flush()  # what the handler caused reaches us before its reply
        return reply

    def _flood_over(self) -> None:
        self._flood_timer = None
        self.resume("flood")

    def on_abuse(self, reason: str) -> Reply:
        """Too many bad lines: the dialect's goodbye, and the rooms hear it as a quit."""
        self.quit_reason = reason
        return self.farewell(reason)

    def on_decode_error(self, line: bytes) -> Reply:
        """Refuse a line that is not UTF-8 (the connection goes on)."""
        return self.error("that line is not valid UTF-8; nothing was sent")

    # ------------------------------------------------------------------ actions both dialects share

    def check_nick(self, nick: str) -> str | None:
        """Return why *nick* cannot be taken now, or None if it can."""
        if not valid_nick(nick, self.settings.nick_len):
            return "erroneous"
        holder = self.backplane.find(nick)
        if holder is not None and holder is not self:
            return "in use"
        return None

    def take_nick(self, nick: str) -> bool:
        """Claim *nick* in the shared namespace and announce the change; False if taken meanwhile."""
        old = self.nick
        if fold(old) == fold(nick):
            if old != nick:  # only the case changes: the claim is already ours
                self._announce_nick(old, nick)
            return True
        if not self.backplane.claim_nick(nick, self):
            return False
        if old:
            self.backplane.release_nick(old, self)
            self._announce_nick(old, nick)
        else:
            self.nick = nick
        return True

    def _announce_nick(self, old: str, new: str) -> None:
        event = Event("nick", old, self.user, self.host, "", new)
        self.nick = new
        self.backplane.publish_rooms(list(self.rooms.values()), event, exclude=self)
        self.deliver(event)

    def room_name_ok(self, room: str) -> bool:
        """True if *room* is a valid room name here."""
        return valid_room(room, self.settings.room_len)

    def enter(self, room: str) -> RoomInfo | None:
        """Join *room* and announce it (to the joiner too); None if already there."""
        info = self.backplane.join(room, self)
        if info is None:
            return None
        self.rooms[fold(info.name)] = info.name
        self.backplane.publish(info.name, self.event("join", info.name))
        return info

    def leave(self, room: str, reason: str = "") -> bool:
        """Announce leaving *room* (to the leaver too) and leave it; False if not in it."""
        name = self.rooms.pop(fold(room), None)
        if name is None:
            return False
        self.backplane.publish(name, self.event("part", name, reason))
        self.backplane.part(name, self)
        return True

    def say(self, target: str, text: str, kind: str = "message") -> bool:
        """Send a message, notice or action to a room or a nick; False if there is no such target."""
        event = self.event(kind, target, text)
        if target.startswith("#"):
            return self.backplane.publish(target, event, exclude=self) >= 0
        return self.backplane.send(target, event)

    def disconnect(self, reason: str) -> Reply:
        """Say goodbye with *reason* and close after it; the rooms hear *reason* as a quit."""
        self.quit_reason = reason
        self.send(self.farewell(reason))
        self.close()
        return None

    def farewell(self, reason: str) -> Reply:
        """The last line this dialect sends a closing peer."""
        return None

    def on_shutdown(self) -> Reply:
        """The server stops: tell the peer."""
        self.quit_reason = "Server shutting down"
        return self.farewell(self.quit_reason)

    def on_close(self) -> None:
        """Leave every room and free the nick; the rooms hear the quit on the next turn."""
        if self._flood_timer is not None:
            self._flood_timer.cancel()
            self._flood_timer = None
        self.left = True
        rooms = list(self.rooms.values())
        self.rooms.clear()
        backplane = self.backplane
        for room in rooms:
            backplane.part(room, self)
        if self.nick:
            backplane.release_nick(self.nick, self)
            if rooms:
                event = self.event("quit", "", self.quit_reason or "Connection closed")
                # Not now: on_close may run inside another broadcast (a slow
                # reader cut off mid-loop); announcing from the next turn keeps
                # the stack flat however many readers are cut at once.
                self.reactor.call_soon(backplane.publish_rooms, rooms, event)
