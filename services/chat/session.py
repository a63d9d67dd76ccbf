"""What both dialects share: a chat user on a connection, its rooms, its flood gate."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from linechat import Protocol, Reply
from linechat.crossprotocol import is_http_header, is_http_request_line, report_cross_protocol
from linechat.reactor import Timer
from linechat.services.chat.backplane import Backplane, Event, RoomInfo
from linechat.services.chat.names import fold, mask_matches, normalise_mask, valid_nick, valid_room

# RFC 1459: a line is at most 512 bytes with its CR LF.
IRC_LINE = 510

if TYPE_CHECKING:
    from linechat.services.chat import ChatService, ChatSettings

__all__ = ["ChannelOps", "ChatSession", "FloodGate", "Problem"]


class FloodGate:
    """A penalty clock per connection, as RFC 1459 (section 8.10) describes.

    Each line moves the clock forward by its cost (``1 / rate`` seconds for an
    ordinary line); the clock never lags behind now.  While it is at most
    *burst* lines ahead of now, lines are handled at once; past that the
    caller holds further input (pauses reading) for the returned number of
    seconds.  Held input stays in the socket, so TCP slows the sender down;
    nothing is dropped and nobody is disconnected for sending fast.
    """

    __slots__ = ("clock", "cost", "window")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.cost = 1.0 / rate
        self.window = burst * self.cost
        self.clock = now

    def admit(self, now: float, weight: float = 1.0) -> float:
        """Account for one line of *weight* at *now*; return seconds to hold further input (0: none)."""
        clock = self.clock
        if clock < now:
            clock = now
        clock += weight * self.cost
        self.clock = clock
        ahead = clock - now
        return ahead - self.window if ahead > self.window else 0.0


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
    nick: str
    user: str
    realname: str
    away: str
    oper: bool

    def __init__(self, channel: Any, service: Any) -> None:
        super().__init__(channel, service)
        self.nick = ""
        self.user = ""
        self.realname = ""
        self.host = self.peer[0] if self.peer else "unknown"
        self.rooms: dict[str, str] = {}  # folded name -> name as created
        self.quit_reason = ""
        self.left = False
        self.away = ""  # the away message ("" when here)
        self.oper = False  # an IRC operator (OPER)
        self.last_seen = self.reactor.time()
        self.signon = self.reactor.time()
        self.last_spoke = self.signon  # for WHOIS idle time
        settings = self.settings
        self.flood: FloodGate | None = None
        if settings.flood_rate > 0:
            self.flood = FloodGate(settings.flood_rate, settings.flood_burst, self.last_seen)
        self._flood_timer: Timer | None = None
        self._register_timer: Timer | None = None
        if settings.register_timeout:
            self._register_timer = self.reactor.call_later(settings.register_timeout, self._register_expired)
        self._hard_limit = self.channel.out_hard_limit
        self.ops = ChannelOps(self)
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

    def event(self, kind: str, target: str, text: str = "", arg: str = "", tags: str = "") -> Event:
        """An event from this user."""
        return Event(kind, self.nick, self.user, self.host, target, text, arg=arg, tags=tags)

    def removed(self, room: str) -> None:
        """Someone else took us out of *room* (a kick): forget it."""
        self.rooms.pop(fold(room), None)

    def kill(self, reason: str) -> None:
        """An operator disconnects us."""
        if not self.left and not self.channel.closed:
            self.disconnect(reason)

    @property
    def registered(self) -> bool:
        """True once the user has a nick and may chat."""
        return self.state != self.initial_state

    def _register_expired(self) -> None:
        self._register_timer = None
        if not self.registered and not self.channel.closed:
            self.log.info("registration_timeout")
            self.disconnect("Registration timeout")

    def registration_done(self) -> None:
        """Stop the registration clock (the dialects call this once the user has a nick)."""
        if self._register_timer is not None:
            self._register_timer.cancel()
            self._register_timer = None

    # ------------------------------------------------------------------ input

    def line_weight(self, line: bytes) -> float:
        """What a line costs on the flood clock (1: an ordinary line; the dialects make queries free)."""
        return 1.0

    def charge(self, weight: float = 1.0) -> None:
        """Move the flood clock by *weight* lines; past the burst, hold further input until it catches up."""
        gate = self.flood
        if gate is None or not weight:
            return
        hold = gate.admit(self.reactor.time(), weight)
        if hold and self._flood_timer is None:
            # Input stays unread (in our buffer and the socket) until the clock
            # catches up: the sender is slowed down by TCP, nothing is lost.
            self.pause("flood")
            self._flood_timer = self.reactor.call_later(hold, self._flood_over)

    @property
    def held(self) -> bool:
        """True while input is held back by the flood clock."""
        return self._flood_timer is not None

    def handle_line(self, line: bytes) -> Reply:
        """Dispatch the line, then count it against the flood clock."""
        if self.state == self.initial_state and (is_http_request_line(line) or is_http_header(line)):
            # A browser made to post here: refuse before the body's lines can
            # name a user and say things, and close.
            report_cross_protocol(self.log, self.service, line[:64].decode("latin-1"))
            self.close()
            return self.farewell("HTTP request refused: this is a chat server")
        self.last_seen = self.reactor.time()
        weight = self.line_weight(line)
        reply = super().handle_line(line)
        if self._outq:
            self.flush()  # what the handler caused reaches us before its reply
        self.charge(weight)
        return reply

    def _flood_over(self) -> None:
        self._flood_timer = None
        gate = self.flood
        if gate is not None:
            hold = gate.clock - self.reactor.time() - gate.window
            if hold > 0:  # timers may fire a little early
                self._flood_timer = self.reactor.call_later(hold, self._flood_over)
                return
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
        self.service.remember(self)
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
        self.ops.joined(info.name)
        self.backplane.publish(info.name, self.event("join", info.name))
        if self.away:  # away-notify clients learn it along with the join
            self.backplane.publish(info.name, self.event("away", "", self.away), exclude=self)
        return info

    def leave(self, room: str, reason: str = "") -> bool:
        """Announce leaving *room* (to the leaver too) and leave it; False if not in it."""
        name = self.rooms.pop(fold(room), None)
        if name is None:
            return False
        self.backplane.publish(name, self.event("part", name, reason))
        self.backplane.part(name, self)
        return True

    def fit_irc(self, command: str, target: str, text: str, kind: str = "message") -> str:
        """*text* cut (at a character boundary) so this user's line reaches IRC users whole in 512 bytes."""
        head = f":{self.nick}!{self.user}@{self.host} {command} {target} :"
        extra = 9 if kind == "action" else 0  # \x01ACTION ... \x01
        budget = IRC_LINE - len(head.encode()) - extra
        data = text.encode()
        if len(data) <= budget:
            return text
        return data[: max(budget, 0)].decode("utf-8", "ignore")

    def say(self, target: str, text: str, kind: str = "message") -> bool:
        """Send a message, notice or action to a room or a nick; False if there is no such target."""
        command = "NOTICE" if kind == "notice" else "PRIVMSG"
        fitted = self.fit_irc(command, target, text, kind)
        if fitted != text:
            self.told_cut(len(fitted.encode()))
        event = self.event(kind, target, fitted)
        self.last_spoke = self.reactor.time()
        if target.startswith("#"):
            return self.backplane.publish(target, event, exclude=self) >= 0
        return self.backplane.send(target, event)

    def told_cut(self, size: int, what: str = "line") -> None:
        """Tell this user their *what* was cut to *size* bytes for IRC (the plain dialect does)."""

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
        for timer in (self._flood_timer, self._register_timer):
            if timer is not None:
                timer.cancel()
        self._flood_timer = self._register_timer = None
        if self.nick and self.registered:
            self.service.remember(self)
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


# ---------------------------------------------------------------------- channel operations both dialects share
#
# They answer with "problems": (code, *params) tuples named after the IRC
# numerics; the IRC dialect sends them as numerics, the plain one as sentences.

Problem = tuple[str, ...]

_MODE_FLAGS = frozenset("imnst")
_MAX_BANS = 100


def _status_of(backplane: Backplane, room: str, member: Any) -> str:
    return backplane.status(room, member) or ""


class ChannelOps:
    """Moderation on top of the backplane: modes, kicks, invitations, topics, who may join and speak."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    @property
    def backplane(self) -> Backplane:
        """The session's room registry."""
        return self.session.backplane

    def is_op(self, room: str) -> bool:
        """True if the session operates *room*."""
        return "o" in _status_of(self.backplane, room, self.session)

    def banned(self, room: str, member: Any) -> bool:
        """True if a ban mask of *room* matches *member*."""
        modes = self.backplane.modes(room)
        if modes is None or not modes.bans:
            return False
        full = f"{member.nick}!{member.user}@{member.host}"
        return any(mask_matches(mask, full) for mask, _, _ in modes.bans)

    def join_problem(self, room: str, key: str = "") -> Problem | None:
        """Why the session may not join *room* now (471/473/474/475), or None."""
        backplane = self.backplane
        modes = backplane.modes(room)
        if modes is None:
            return None
        session = self.session
        invited = fold(session.nick) in modes.invited
        if modes.key and key != modes.key:
            return ("475", room)
        if modes.limit and len(backplane.members(room)) >= modes.limit:
            return ("471", room)
        if "i" in modes.flags and not invited:
            return ("473", room)
        if not invited and self.banned(room, session):
            return ("474", room)
        return None

    def joined(self, room: str) -> None:
        """Forget an invitation once used."""
        modes = self.backplane.modes(room)
        if modes is not None:
            modes.invited.discard(fold(self.session.nick))

    def speak_problem(self, room: str) -> Problem | None:
        """Why the session may not say anything in *room* (+n, +m, bans), or None."""
        backplane = self.backplane
        modes = backplane.modes(room)
        if modes is None:
            return ("403", room)
        status = backplane.status(room, self.session)
        if status is None:
            return ("404", room) if "n" in modes.flags else None
        if status:
            return None
        if "m" in modes.flags or self.banned(room, self.session):
            return ("404", room)
        return None

    def set_topic(self, room: str, topic: str) -> Problem | None:
        """Change *room*'s topic (cut to topic_len) and tell the room; or say why not."""
        backplane = self.backplane
        session = self.session
        modes = backplane.modes(room)
        if modes is None:
            return ("403", room)
        status = backplane.status(room, session)
        if status is None:
            return ("442", room)
        if "t" in modes.flags and "o" not in status:
            return ("482", room)
        limit = session.settings.topic_len
        data = topic.encode()
        if len(data) > limit:
            topic = data[:limit].decode("utf-8", "ignore")
            session.told_cut(len(topic.encode()), "topic")
        name = backplane.room(room).name  # type: ignore[union-attr]
        backplane.set_topic(name, topic, f"{session.nick}!{session.user}@{session.host}")
        backplane.publish(name, session.event("topic", name, topic))
        return None

    def kick(self, room: str, nick: str, reason: str) -> Problem | None:
        """Take *nick* out of *room* (told to the room, the kicked user included); or say why not."""
        backplane = self.backplane
        session = self.session
        info = backplane.room(room)
        if info is None:
            return ("403", room)
        status = backplane.status(room, session)
        if status is None:
            return ("442", info.name)
        if "o" not in status:
            return ("482", info.name)
        victim = backplane.find(nick)
        if victim is None:
            return ("401", nick)
        if backplane.status(room, victim) is None:
            return ("441", victim.nick, info.name)
        reason = session.fit_irc("KICK", f"{info.name} {victim.nick}", reason or session.nick)
        backplane.publish(info.name, session.event("kick", info.name, reason, arg=victim.nick))
        backplane.part(info.name, victim)
        victim.removed(info.name)
        return None

    def invite(self, nick: str, room: str) -> tuple[Problem | None, Any]:
        """Invite *nick* to *room* (past +i and bans); returns (problem, the invited member)."""
        backplane = self.backplane
        session = self.session
        victim = backplane.find(nick)
        if victim is None:
            return ("401", nick), None
        modes = backplane.modes(room)
        name = room
        if modes is not None:
            name = backplane.room(room).name  # type: ignore[union-attr]
            status = backplane.status(room, session)
            if status is None:
                return ("442", name), None
            if backplane.status(room, victim) is not None:
                return ("443", victim.nick, name), None
            if "i" in modes.flags and "o" not in status:
                return ("482", name), None
            modes.invited.add(fold(victim.nick))
        victim.deliver(session.event("invite", victim.nick, arg=name))
        return None, victim

    def change_modes(self, room: str, spec: str, params: list[str]) -> tuple[list[Problem], list[Problem]]:
        """Apply a MODE change string to *room*; returns (problems, replies such as ban lists).

        What changed is told to the room in one MODE event.  Listing bans
        (``b`` without a mask) needs no operator status; changes do.
        """
        backplane = self.backplane
        session = self.session
        info = backplane.room(room)
        modes = backplane.modes(room)
        if info is None or modes is None:
            return [("403", room)], []
        name = info.name
        status = backplane.status(name, session)
        is_op = status is not None and "o" in status
        problems: list[Problem] = []
        replies: list[Problem] = []
        applied: list[tuple[str, str, str | None]] = []  # sign, letter, parameter
        sign = "+"
        args = list(params)
        refused = False
        for letter in spec:
            if letter in "+-":
                sign = letter
                continue
            if letter in "ov":
                if not args:
                    continue
                nick = args.pop(0)
                if not is_op:
                    refused = True
                    continue
                target = backplane.find(nick)
                if target is None:
                    problems.append(("401", nick))
                elif backplane.status(name, target) is None:
                    problems.append(("441", target.nick, name))
                elif backplane.set_status(name, target, letter, sign == "+"):
                    applied.append((sign, letter, target.nick))
            elif letter == "b":
                if not args:
                    replies.extend(("367", name, mask, by, str(int(at))) for mask, by, at in modes.bans)
                    replies.append(("368", name))
                    continue
                mask = normalise_mask(args.pop(0))
                if not is_op:
                    refused = True
                    continue
                present = [entry for entry in modes.bans if fold(entry[0]) == fold(mask)]
                if sign == "+" and not present:
                    if len(modes.bans) >= _MAX_BANS:
                        problems.append(("478", name, mask))
                        continue
                    modes.bans.append((mask, f"{session.nick}!{session.user}@{session.host}", time.time()))
                    applied.append((sign, letter, mask))
                elif sign == "-" and present:
                    modes.bans.remove(present[0])
                    applied.append((sign, letter, present[0][0]))
            elif letter == "k":
                if sign == "+" and not args:
                    problems.append(("696", name, "k", "*", "You must specify a parameter for the key mode"))
                    continue
                key = args.pop(0) if args else ""
                if not is_op:
                    refused = True
                    continue
                if sign == "+":
                    if not key or " " in key or "," in key:
                        problems.append(("696", name, "k", key or "*", "Invalid key"))
                        continue
                    modes.key = key[:23]
                    applied.append((sign, letter, modes.key))
                elif modes.key:
                    modes.key = ""
                    applied.append((sign, letter, "*"))
            elif letter == "l":
                if sign == "+":
                    if not args:
                        problems.append(("696", name, "l", "*", "You must specify a parameter for the limit mode"))
                        continue
                    value = args.pop(0)
                    if not is_op:
                        refused = True
                        continue
                    if not value.isdigit() or int(value) <= 0:
                        problems.append(("696", name, "l", value, "Invalid limit"))
                        continue
                    modes.limit = int(value)
                    applied.append((sign, letter, str(modes.limit)))
                else:
                    if not is_op:
                        refused = True
                        continue
                    if modes.limit:
                        modes.limit = 0
                        applied.append((sign, letter, None))
            elif letter in _MODE_FLAGS:
                if not is_op:
                    refused = True
                    continue
                if sign == "+" and letter not in modes.flags:
                    modes.flags.add(letter)
                    applied.append((sign, letter, None))
                elif sign == "-" and letter in modes.flags:
                    modes.flags.discard(letter)
                    applied.append((sign, letter, None))
            else:
                problems.append(("472", letter))
        if refused:
            problems.insert(0, ("442", name) if status is None else ("482", name))
        if applied:
            text = ""
            last = ""
            args_out: list[str] = []
            for change_sign, letter, param in applied:
                if change_sign != last:
                    text += change_sign
                    last = change_sign
                text += letter
                if param is not None:
                    args_out.append(param)
            backplane.publish(name, session.event("mode", name, arg=" ".join([text, *args_out])))
        return problems, replies
