"""The IRC dialect: the server side of what RFC 1459/2812 clients need to chat."""

from __future__ import annotations

from typing import Any

from linechat import Reply, Rule, command
from linechat.reactor import Timer
from linechat.services.chat.backplane import Event
from linechat.services.chat.names import clean_text, fold
from linechat.services.chat.session import ChatSession

__all__ = ["IrcSession", "render_irc"]

# RFC 1459: a line is at most 512 bytes with its CR LF.
_IRC_LINE = 510
_VERSION = "linechat-0.1.0"


def _line(head: str, text: str) -> bytes:
    """``head :text`` + CRLF, cut at a character boundary to fit IRC's 512 bytes."""
    data = f"{head} :{text}".encode()
    if len(data) > _IRC_LINE:
        data = data[:_IRC_LINE].decode("utf-8", "ignore").encode()
    return data + b"\r\n"


def render_irc(event: Event) -> bytes | None:
    """Format an event as an IRC line from the user who caused it."""
    kind = event.kind
    source = f":{event.nick}!{event.user}@{event.host}"
    target = event.target
    if kind == "message":
        return _line(f"{source} PRIVMSG {target}", event.text)
    if kind == "action":
        return _line(f"{source} PRIVMSG {target}", f"\x01ACTION {event.text}\x01")
    if kind == "notice":
        return _line(f"{source} NOTICE {target}", event.text)
    if kind == "join":
        return f"{source} JOIN {target}\r\n".encode()
    if kind == "part":
        return _line(f"{source} PART {target}", event.text) if event.text else f"{source} PART {target}\r\n".encode()
    if kind == "quit":
        return _line(f"{source} QUIT", event.text)
    if kind == "nick":
        return _line(f"{source} NICK", event.text)
    if kind == "topic":
        return _line(f"{source} TOPIC {target}", event.text)
    return None


class IrcSession(ChatSession):
    """An IRC client: registration, channels, messages, numerics for every error."""

    dialect = "irc"
    render = staticmethod(render_irc)
    initial_state = "registering"
    #: Sent to a connection refused for lack of room (too many connections or descriptors).
    refusal_line = "ERROR :Closing Link: too many connections, try again later"

    def __init__(self, channel: Any, service: Any) -> None:
        super().__init__(channel, service)
        self.server = self.settings.server_name
        self.realname = ""
        self.cap_negotiating = False
        self._ping_sent: float | None = None
        self._ping_timer: Timer | None = None
        interval = self.settings.ping_interval
        if interval:
            self._ping_timer = self.reactor.call_later(interval, self._ping_check)

    # ------------------------------------------------------------------ replies

    def num(self, code: str, *params: str) -> str:
        """A numeric reply to this client; the last parameter is the trailing one."""
        *middle, last = params
        head = f":{self.server} {code} {self.nick or '*'}"
        if middle:
            head += " " + " ".join(middle)
        return f"{head} :{last}"

    def error(self, message: str) -> str:
        """Errors without a numeric of their own go out as a server NOTICE."""
        return f":{self.server} NOTICE {self.nick or '*'} :{message}"

    def farewell(self, reason: str) -> Reply:
        """The ERROR line a closing client gets."""
        return f"ERROR :Closing Link: {self.host} ({reason})"

    # ------------------------------------------------------------------ parsing

    def parse_command(self, line: bytes) -> tuple[str, list[Any]] | None:
        """Split an IRC line: optional tags and prefix, command, middle parameters, trailing one."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            # Older clients speak latin-1; every byte means something there.
            text = line.decode("latin-1")
        text = clean_text(text)
        if text.startswith("@"):
            text = text.partition(" ")[2]  # message tags: we support none
        text = text.lstrip(" ")
        if text.startswith(":"):
            text = text.partition(" ")[2]  # a client's own prefix means nothing
        head, colon, trailing = text.partition(" :")
        parts: list[Any] = head.split()
        if not parts:
            return None
        if colon:
            parts.append(trailing)
        elif len(parts) > 1 and parts[-1].startswith(":"):
            parts[-1] = parts[-1][1:]  # "CMD :x" with the colon right after the command
        return parts[0].upper(), parts[1:]

    # ------------------------------------------------------------------ hooks

    def on_unknown_command(self, name: str, args: list[Any]) -> Reply:
        """421 ERR_UNKNOWNCOMMAND."""
        return self.num("421", name, "Unknown command")

    def on_arity_error(self, name: str, args: list[Any]) -> Reply:
        """461 ERR_NEEDMOREPARAMS."""
        return self.num("461", name, "Not enough parameters")

    def on_bad_state(self, name: str, args: list[Any]) -> Reply:
        """451 ERR_NOTREGISTERED."""
        return self.num("451", "You have not registered")

    def on_frame_too_long(self, rule: Rule, size: int) -> bool:
        """417 ERR_INPUTTOOLONG; the line is skipped and the connection goes on (it counts against the flood gate)."""
        if not self.admit_line():
            return True  # already saying goodbye
        self.send(self.num("417", "Input line was too long"))
        return True

    def on_close(self) -> None:
        """Stop pinging, then leave the rooms."""
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        super().on_close()

    # ------------------------------------------------------------------ liveness

    def _ping_check(self) -> None:
        """Ping a silent client; drop it if the answer does not come in time."""
        self._ping_timer = None
        if self.channel.closed:
            return
        settings = self.settings
        now = self.reactor.time()
        if self._ping_sent is not None:
            if self.last_seen < self._ping_sent:
                self.log.info("ping_timeout", nick=self.nick)
                self.disconnect(f"Ping timeout: {int(now - self.last_seen)} seconds")
                return
            self._ping_sent = None
        idle = now - self.last_seen
        if idle >= settings.ping_interval:
            self._ping_sent = now
            self.send(f"PING :{self.server}")
            self._ping_timer = self.reactor.call_later(settings.ping_timeout, self._ping_check)
        else:
            self._ping_timer = self.reactor.call_later(settings.ping_interval - idle, self._ping_check)

    # ------------------------------------------------------------------ registration

    @command("CAP")
    def cap(self, sub: str, *args: str) -> Reply:
        """Capability negotiation: we offer none, so modern clients go on without."""
        sub = sub.upper()
        if sub == "LS":
            if self.state == "registering":
                self.cap_negotiating = True  # registration waits for CAP END
            return f":{self.server} CAP {self.nick or '*'} LS :"
        if sub == "LIST":
            return f":{self.server} CAP {self.nick or '*'} LIST :"
        if sub == "REQ":
            return f":{self.server} CAP {self.nick or '*'} NAK :{args[-1] if args else ''}"
        if sub == "END":
            self.cap_negotiating = False
            return self._try_register()
        return self.num("410", sub, "Invalid CAP command")

    @command("PASS")
    def pass_(self, password: str, *_: str) -> Reply:
        """Accepted and ignored: this server has no connection password."""
        if self.state != "registering":
            return self.num("462", "You may not reregister")
        return None

    @command("NICK")
    def nick_command(self, nick: str = "", *_: str) -> Reply:
        """Choose or change the nickname."""
        if not nick:
            return self.num("431", "No nickname given")
        why = self.check_nick(nick)
        if why == "erroneous":
            return self.num("432", nick, "Erroneous nickname")
        if why == "in use":
            return self.num("433", nick, "Nickname is already in use")
        if self.state == "registering":
            if not self.backplane.claim_nick(nick, self):
                return self.num("433", nick, "Nickname is already in use")
            if self.nick and fold(self.nick) != fold(nick):
                self.backplane.release_nick(self.nick, self)
            self.nick = nick
            return self._try_register()
        if not self.take_nick(nick):
            return self.num("433", nick, "Nickname is already in use")
        return None

    @command("USER", min_args=4)
    def user_command(self, user: str, mode: str, unused: str, realname: str, *_: str) -> Reply:
        """Give the user name and real name."""
        if self.state != "registering":
            return self.num("462", "You may not reregister")
        self.user = "~" + user[: self.settings.nick_len]
        self.realname = realname
        return self._try_register()

    def _try_register(self) -> Reply:
        if self.state != "registering" or not self.nick or not self.user or self.cap_negotiating:
            return None
        self.set_state("registered")
        settings = self.settings
        nick = self.nick
        replies: list[Reply] = [
            self.num("001", f"Welcome to the {settings.network} network, {nick}!{self.user}@{self.host}"),
            self.num("002", f"Your host is {self.server}, running version {_VERSION}"),
            self.num("003", f"This server was created {self.service.created}"),
            f":{self.server} 004 {nick} {self.server} {_VERSION} i n",
            self.num(
                "005",
                f"NETWORK={settings.network}",
                "CASEMAPPING=ascii",
                "CHANTYPES=#",
                f"CHANLIMIT=#:{settings.max_rooms}",
                f"NICKLEN={settings.nick_len}",
                f"CHANNELLEN={settings.room_len}",
                "TOPICLEN=390",
                "PREFIX=",
                "CHANMODES=,,,n",
                "SAFELIST",
                "are supported by this server",
            ),
        ]
        replies.extend(self._motd())
        return replies

    def _motd(self) -> list[Reply]:
        motd = self.settings.motd
        if not motd:
            return [self.num("422", "MOTD File is missing")]
        lines: list[Reply] = [self.num("375", f"- {self.server} Message of the day - ")]
        lines.extend(self.num("372", f"- {text}") for text in motd.splitlines())
        lines.append(self.num("376", "End of /MOTD command."))
        return lines

    @command("MOTD", state="registered")
    def motd(self, *_: str) -> Reply:
        """The message of the day."""
        return self._motd()

    # ------------------------------------------------------------------ liveness and leaving

    @command("PING")
    def ping(self, token: str = "", *_: str) -> Reply:
        """Answer a client's PING."""
        if not token:
            return self.num("409", "No origin specified")
        return f":{self.server} PONG {self.server} :{token}"

    @command("PONG")
    def pong(self, *_: str) -> Reply:
        """The answer to our PING (any line already proved the client alive)."""
        return None

    @command("QUIT")
    def quit_command(self, reason: str = "", *_: str) -> Reply:
        """Leave the server."""
        return self.disconnect(f"Quit: {reason}" if reason else "Quit")

    # ------------------------------------------------------------------ channels

    @command("JOIN", state="registered")
    def join(self, rooms: str, keys: str = "", *_: str) -> Reply:
        """Join one or more channels (``JOIN 0`` leaves them all)."""
        if rooms == "0":
            for room in list(self.rooms.values()):
                self.leave(room)
            return None
        # Each channel's replies go out right after its JOIN line (which the
        # room delivers), so they are sent as we go rather than returned.
        for room in rooms.split(","):
            if not room:
                continue
            if not self.room_name_ok(room):
                self.send(self.num("403", room, "No such channel"))
                continue
            if fold(room) in self.rooms:
                continue
            if len(self.rooms) >= self.settings.max_rooms:
                self.send(self.num("405", room, "You have joined too many channels"))
                continue
            info = self.enter(room)
            if info is None:
                continue
            replies: list[Reply] = []
            if info.topic:
                replies.append(self.num("332", info.name, info.topic))
                replies.append(self.num("333", info.name, info.topic_by, str(int(info.topic_at))))
            replies.extend(self._names(info.name))
            replies.extend(event.encoded(self.render) for event in self.backplane.history(info.name))
            self.send(replies)
        return None

    def _names(self, room: str) -> list[Reply]:
        nicks = sorted((member.nick for member in self.backplane.members(room)), key=fold)
        replies: list[Reply] = []
        head = f":{self.server} 353 {self.nick} = {room} :"
        batch: list[str] = []
        size = len(head)
        for nick in nicks:
            if batch and size + len(nick) + 1 > _IRC_LINE:
                replies.append(head + " ".join(batch))
                batch, size = [], len(head)
            batch.append(nick)
            size += len(nick) + 1
        if batch:
            replies.append(head + " ".join(batch))
        replies.append(self.num("366", room, "End of /NAMES list."))
        return replies

    @command("PART", state="registered")
    def part(self, rooms: str, reason: str = "", *_: str) -> Reply:
        """Leave one or more channels."""
        replies: list[Reply] = []
        for room in rooms.split(","):
            if not room:
                continue
            if self.backplane.room(room) is None:
                replies.append(self.num("403", room, "No such channel"))
            elif not self.leave(room, reason):
                replies.append(self.num("442", room, "You're not on that channel"))
        return replies

    @command("TOPIC", state="registered")
    def topic(self, room: str, *text: str) -> Reply:
        """Show or set a channel's topic."""
        info = self.backplane.room(room)
        if info is None:
            return self.num("403", room, "No such channel")
        if not text:
            if not info.topic:
                return self.num("331", info.name, "No topic is set")
            return [
                self.num("332", info.name, info.topic),
                self.num("333", info.name, info.topic_by, str(int(info.topic_at))),
            ]
        if fold(room) not in self.rooms:
            return self.num("442", info.name, "You're not on that channel")
        topic = text[0][:390]
        self.backplane.set_topic(info.name, topic, self.nick)
        self.backplane.publish(info.name, self.event("topic", info.name, topic))
        return None

    @command("NAMES", state="registered")
    def names(self, rooms: str = "", *_: str) -> Reply:
        """List who is in channels."""
        if not rooms:
            return self.num("366", "*", "End of /NAMES list.")
        replies: list[Reply] = []
        for room in rooms.split(","):
            info = self.backplane.room(room)
            if info is None:
                replies.append(self.num("366", room, "End of /NAMES list."))
            else:
                replies.extend(self._names(info.name))
        return replies

    @command("LIST", state="registered")
    def list_command(self, rooms: str = "", *_: str) -> Reply:
        """List channels with their member counts and topics."""
        wanted = {fold(room) for room in rooms.split(",") if room} if rooms else None
        replies: list[Reply] = [self.num("321", "Channel", "Users  Name")]
        for info in self.backplane.rooms():
            if wanted is None or fold(info.name) in wanted:
                replies.append(self.num("322", info.name, str(info.members), info.topic))
        replies.append(self.num("323", "End of /LIST"))
        return replies

    @command("WHO", state="registered")
    def who(self, mask: str = "", *_: str) -> Reply:
        """Describe the members of a channel, or one nick."""
        replies: list[Reply] = []
        if mask.startswith("#"):
            info = self.backplane.room(mask)
            for member in self.backplane.members(mask):
                replies.append(self._who_line(info.name if info else mask, member))
        elif mask:
            found = self.backplane.find(mask)
            if found is not None:
                replies.append(self._who_line("*", found))
        replies.append(self.num("315", mask or "*", "End of /WHO list."))
        return replies

    def _who_line(self, room: str, member: Any) -> str:
        user = member.user or member.nick
        return self.num("352", room, user, member.host, self.server, member.nick, "H", f"0 {member.realname}")

    @command("WHOIS", state="registered")
    def whois(self, target: str, *rest: str) -> Reply:
        """Describe a nick."""
        nick = rest[0] if rest else target  # "WHOIS server nick" names the server first
        member = self.backplane.find(nick)
        if member is None:
            return [self.num("401", nick, "No such nick/channel"), self.num("318", nick, "End of /WHOIS list.")]
        rooms = " ".join(getattr(member, "rooms", {}).values())
        replies: list[Reply] = [
            self.num("311", member.nick, member.user or member.nick, member.host, "*", member.realname)
        ]
        if rooms:
            replies.append(self.num("319", member.nick, rooms))
        replies.append(self.num("312", member.nick, self.server, f"{self.settings.network} ({member.dialect})"))
        replies.append(self.num("318", member.nick, "End of /WHOIS list."))
        return replies

    @command("ISON", state="registered")
    def ison(self, *nicks: str) -> Reply:
        """Which of these nicks are online."""
        found = (self.backplane.find(nick) for nick in " ".join(nicks).split())
        online = [member.nick for member in found if member is not None]
        return self.num("303", " ".join(online))

    @command("MODE", state="registered")
    def mode(self, target: str, *changes: str) -> Reply:
        """Modes are answered minimally: channels are +n, users have none to set."""
        if target.startswith("#"):
            info = self.backplane.room(target)
            if info is None:
                return self.num("403", target, "No such channel")
            if not changes:
                return [
                    self.num("324", info.name, "+n"),
                    self.num("329", info.name, str(int(info.created))),
                ]
            if changes[0].lstrip("+") == "b":
                return self.num("368", info.name, "End of channel ban list")
            return self.num("482", info.name, "You're not channel operator")
        if fold(target) != fold(self.nick):
            return self.num("502", "Can't change mode for other users")
        if not changes:
            return self.num("221", "+")
        return None  # user modes are accepted and ignored

    # ------------------------------------------------------------------ messages

    @command("PRIVMSG", state="registered")
    def privmsg(self, targets: str = "", text: str = "", *_: str) -> Reply:
        """Send a message to channels or nicks."""
        return self._message(targets, text, notice=False)

    @command("NOTICE", state="registered")
    def notice(self, targets: str = "", text: str = "", *_: str) -> Reply:
        """Send a notice (never answered with an error, as the RFC asks)."""
        return self._message(targets, text, notice=True)

    def _message(self, targets: str, text: str, notice: bool) -> Reply:
        if not targets:
            return None if notice else self.num("411", "No recipient given (PRIVMSG)")
        if not text:
            return None if notice else self.num("412", "No text to send")
        kind = "notice" if notice else "message"
        if not notice and text.startswith("\x01ACTION ") and text.endswith("\x01"):
            kind, text = "action", text[8:-1]
        replies: list[Reply] = []
        for target in targets.split(",")[:4]:
            if target.startswith("#"):
                if self.backplane.room(target) is None:
                    replies.append(self.num("403", target, "No such channel"))
                elif fold(target) not in self.rooms:
                    replies.append(self.num("404", target, "Cannot send to channel"))
                else:
                    room = self.rooms[fold(target)]
                    self.backplane.publish(room, self.event(kind, room, text), exclude=self)
                continue
            member = self.backplane.find(target)
            if member is None or not self.backplane.send(member.nick, self.event(kind, member.nick, text)):
                replies.append(self.num("401", target, "No such nick/channel"))
        return None if notice else replies
