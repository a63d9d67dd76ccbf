"""The IRC dialect: the server side of what RFC 1459/2812 and IRCv3 clients need to run a channel."""

from __future__ import annotations

import hmac
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

from linechat import Reply, Rule, command
from linechat.auth import SaslError, decode_plain, verify_password
from linechat.reactor import Timer
from linechat.services.chat.backplane import Event
from linechat.services.chat.names import clean_text, fold, mask_matches, valid_user
from linechat.services.chat.opers import check_oper
from linechat.services.chat.session import IRC_LINE, ChatSession, Problem

__all__ = ["CAPABILITIES", "IrcSession", "render_irc"]

_VERSION = "linechat-0.1.0"

#: The IRCv3 capabilities offered (``CAP LS``).
CAPABILITIES = (
    "away-notify",
    "cap-notify",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
)

# Commands whose only effect is a reply to the sender: free on the flood
# clock, since a client that floods them only fills its own output queue,
# and the framework stops reading from a client that does not read.
_FREE = frozenset(
    {
        b"PING", b"PONG", b"WHO", b"WHOIS", b"WHOWAS", b"ISON", b"USERHOST", b"NAMES", b"LIST", b"LUSERS",
        b"MOTD", b"VERSION", b"TIME", b"ADMIN", b"INFO", b"CAP",
    }
)  # fmt: skip

# The text of each numeric the channel operations can answer with.
_TEXT = {
    "401": "No such nick/channel",
    "403": "No such channel",
    "404": "Cannot send to channel",
    "441": "They aren't on that channel",
    "442": "You're not on that channel",
    "443": "is already on channel",
    "471": "Cannot join channel (+l)",
    "472": "is unknown mode char to me",
    "473": "Cannot join channel (+i)",
    "474": "Cannot join channel (+b)",
    "475": "Cannot join channel (+k)",
    "478": "Channel ban list is full",
    "482": "You're not channel operator",
    "367": "",
    "368": "End of channel ban list",
}


def _line(head: str, text: str) -> bytes:
    """``head :text`` + CRLF, cut at a character boundary to fit IRC's 512 bytes."""
    data = f"{head} :{text}".encode()
    if len(data) > IRC_LINE:
        data = data[:IRC_LINE].decode("utf-8", "ignore").encode()
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
    if kind == "kick":
        return _line(f"{source} KICK {target} {event.arg}", event.text)
    if kind == "mode":
        return f"{source} MODE {target} {event.arg}\r\n".encode()
    if kind == "invite":
        return f"{source} INVITE {target} {event.arg}\r\n".encode()
    if kind == "away":
        return _line(f"{source} AWAY", event.text) if event.text else f"{source} AWAY\r\n".encode()
    if kind == "server":  # from the server itself (its name in nick), e.g. the backplane's state
        return _line(f":{event.nick} NOTICE {target}", event.text)
    return None


def _time_tag(at: float) -> str:
    return "time=" + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def render_irc_time(event: Event) -> bytes | None:
    """:func:`render_irc` with the server-time tag (clients with ``server-time`` only)."""
    data = render_irc(event)
    return None if data is None else f"@{_time_tag(event.at)} ".encode() + data


# Message ids: unique for this process's life (a random prefix tells restarts apart).
_MSGID_PREFIX = os.urandom(4).hex()
_msgids = itertools.count(1)
# IRCv3 message-tags: up to 4096 bytes of tags (with '@' and the space) before the 512-byte line.
_TAGS_MAX = 4096


def render_irc_tags(event: Event) -> bytes | None:
    """:func:`render_irc` with the time, a message id and the sender's client tags (``message-tags``)."""
    if event.kind == "tagmsg":
        data: bytes | None = f":{event.nick}!{event.user}@{event.host} TAGMSG {event.target}\r\n".encode()
    else:
        data = render_irc(event)
    if data is None:
        return None
    tags = _time_tag(event.at)
    if event.kind in ("message", "notice", "action", "tagmsg"):
        tags += f";msgid={_MSGID_PREFIX}{next(_msgids)}"
    if event.tags:
        tags += ";" + event.tags
    return f"@{tags} ".encode() + data


def _unescape_tag(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        nxt = next(chars, "")
        out.append({":": ";", "s": " ", "r": "\r", "n": "\n", "\\": "\\"}.get(nxt, nxt))
    return "".join(out)


def _client_tags(raw: str) -> str:
    """The client-only tags (``+name``) of a tag string, kept as sent (they are relayed verbatim)."""
    kept = [tag for tag in raw.split(";") if tag.startswith("+") and len(tag) > 1]
    return ";".join(kept)


class IrcSession(ChatSession):
    """An IRC client: registration, channels with operators and modes, numerics for every error."""

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
        self.caps: set[str] = set()
        self.invisible = False  # user mode +i: hidden from WHO masks of those sharing no room
        self.bot = False  # user mode +B (IRCv3 bot mode): marked in WHO, WHOIS and message tags
        self.cap_version = 0
        self.tags = ""  # client tags of the line being handled
        self.password: str | None = None  # what PASS gave, checked at registration
        #: The account this client logged in to with SASL, or None.
        self.account: str | None = None
        self._sasl_buffer: str | None = None  # AUTHENTICATE chunks so far (None: no exchange)
        self._render: Callable[[Event], bytes | None] = render_irc
        self._ping_sent: float | None = None
        self._ping_timer: Timer | None = None
        interval = self.settings.ping_interval
        if interval:
            self._ping_timer = self.reactor.call_later(interval, self._ping_check)

    # ------------------------------------------------------------------ delivery

    def deliver(self, event: Event) -> None:
        """Queue *event* as this client's capabilities want it rendered."""
        kind = event.kind
        if kind == "away" and "away-notify" not in self.caps:
            return
        if kind == "tagmsg" and "message-tags" not in self.caps:
            return
        if self.left:
            return
        data = event.encoded(self._render)
        if data is None:
            return
        outq = self._outq
        if not outq:
            self.service.flush_soon(self)
        outq.append(data)

    def _caps_changed(self) -> None:
        if "message-tags" in self.caps:
            self._render = render_irc_tags
        elif "server-time" in self.caps:
            self._render = render_irc_time
        else:
            self._render = render_irc

    # ------------------------------------------------------------------ replies

    def num(self, code: str, *params: str) -> str:
        """A numeric reply to this client; the last parameter is the trailing one."""
        *middle, last = params
        head = f":{self.server} {code} {self.nick or '*'}"
        if middle:
            head += " " + " ".join(middle)
        return f"{head} :{last}"

    def problem(self, problem: Problem) -> str:
        """A channel operation's refusal as its numeric."""
        code, *params = problem
        if code == "696":
            *middle, text = params
            return self.num(code, *(p if p and " " not in p else "*" for p in middle), text)
        return self.num(code, *params, _TEXT.get(code, ""))

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
        self.tags = ""
        if text.startswith("@"):
            raw, _, text = text.partition(" ")
            if "message-tags" in self.caps:
                self.tags = _client_tags(raw[1:])
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

    def handle_line(self, line: bytes) -> Reply:
        """Refuse a line whose tags pass 4096 bytes or whose rest passes 512 (417), then go on as usual."""
        rest = line
        if line[:1] == b"@":
            space = line.find(b" ")
            if space < 0 or space + 1 > _TAGS_MAX:
                return self._too_long()
            rest = line[space + 1 :]
        if len(rest.rstrip(b"\r")) > IRC_LINE:
            return self._too_long()
        return super().handle_line(line)

    def _too_long(self) -> Reply:
        self.charge()
        if not self.channel.note_bad_input("frame_too_long", rule="command"):
            self.close()
            return self.on_abuse("too many over-long lines")
        return self.num("417", "Input line was too long")

    def line_weight(self, line: bytes) -> float:
        """Queries and pings are free on the flood clock; everything else costs a line."""
        if line[:1] == b"@":
            line = line.partition(b" ")[2]
        if line[:1] == b":":
            line = line.partition(b" ")[2]
        name = line.lstrip(b" ").split(b" ", 1)[0].rstrip(b"\r").upper()
        return 0.0 if name in _FREE else 1.0

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
        """417 ERR_INPUTTOOLONG; the line is skipped, counted on the flood clock, and the connection goes on."""
        self.send(self.num("417", "Input line was too long"))
        self.charge()
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
        """IRCv3 capability negotiation; registration waits for ``CAP END`` once it starts."""
        sub = sub.upper()
        me = self.nick or "*"
        head = f":{self.server} CAP {me}"
        if sub == "LS":
            if self.state == "registering":
                self.cap_negotiating = True
            version = args[0] if args else ""
            if version.isdigit() and int(version) >= 302:
                self.cap_version = max(self.cap_version, int(version))
                self.caps.add("cap-notify")  # implied by 302
            offered = list(CAPABILITIES)
            if self.service.sasl_users is not None:
                # CAP 302 lists the mechanisms as the capability's value.
                offered.append("sasl=PLAIN" if self.cap_version >= 302 else "sasl")
            return f"{head} LS :{' '.join(sorted(offered))}"
        if sub == "LIST":
            return f"{head} LIST :{' '.join(sorted(self.caps))}"
        if sub == "REQ":
            if self.state == "registering":
                self.cap_negotiating = True
            wanted = (args[-1] if args else "").split()
            known = set(CAPABILITIES) | ({"sasl"} if self.service.sasl_users is not None else set())
            ok = bool(wanted) and all(cap.lstrip("-") in known for cap in wanted)
            if not ok:
                return f"{head} NAK :{' '.join(wanted)}"
            for cap in wanted:
                if cap.startswith("-"):
                    self.caps.discard(cap[1:])
                else:
                    self.caps.add(cap)
            self._caps_changed()
            return f"{head} ACK :{' '.join(wanted)}"
        if sub == "END":
            self.cap_negotiating = False
            return self._try_register()
        return self.num("410", sub, "Invalid CAP command")

    @command("PASS")
    def pass_(self, password: str, *_: str) -> Reply:
        """The connection password, checked at registration when the server has one."""
        if self.state != "registering":
            return self.num("462", "You may not reregister")
        self.password = password
        return None

    def _password_ok(self) -> bool:
        wanted = self.settings.password
        if wanted is None:
            return True
        given = self.password or ""
        if wanted.startswith("scrypt$"):
            return verify_password(wanted, given)
        return hmac.compare_digest(wanted.encode(), given.encode())

    @command("AUTHENTICATE")
    def authenticate(self, data: str, *_: str) -> Reply:
        """SASL (IRCv3): PLAIN, checked against the users file, in 400-byte base64 chunks."""
        users = self.service.sasl_users
        if users is None or "sasl" not in self.caps:
            return self.num("904", "SASL authentication failed")
        if self.account is not None:
            return self.num("907", "You have already authenticated using SASL")
        if data == "*":
            self._sasl_buffer = None
            return self.num("906", "SASL authentication aborted")
        if self._sasl_buffer is None:
            if data.upper() != "PLAIN":
                return [
                    self.num("908", "PLAIN", "are available SASL mechanisms"),
                    self.num("904", "SASL authentication failed"),
                ]
            self._sasl_buffer = ""
            return "AUTHENTICATE +"
        if data != "+":
            self._sasl_buffer += data
            if len(self._sasl_buffer) > 4096:
                self._sasl_buffer = None
                return self.num("905", "SASL message too long")
            if len(data) == 400:
                return None  # more chunks follow
        response, self._sasl_buffer = self._sasl_buffer, None
        try:
            authzid, authcid, password = decode_plain(response)
        except SaslError:
            return self.num("904", "SASL authentication failed")
        if (authzid and authzid != authcid) or not users.check(authcid, password):
            self.log.info("irc_sasl_failed", account=authcid)  # never the password
            return self.num("904", "SASL authentication failed")
        self.account = authcid
        mask = f"{self.nick or '*'}!{self.user or '*'}@{self.host}"
        return [
            self.num("900", mask, authcid, f"You are now logged in as {authcid}"),
            self.num("903", "SASL authentication successful"),
        ]

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
        if not realname or not user:
            return self.num("461", "USER", "Not enough parameters")
        # The user part shows in nick!user@host: no '@', '!' or controls there.
        self.user = "~" + (valid_user(user, self.settings.user_len - 1) or "user")
        self.realname = realname
        return self._try_register()

    def _isupport(self) -> list[str]:
        settings = self.settings
        targets = settings.max_targets
        return [
            "AWAYLEN=200",
            "BOT=B",
            "CASEMAPPING=ascii",
            f"CHANLIMIT=#:{settings.max_rooms}",
            "CHANMODES=b,k,l,imnst",
            f"CHANNELLEN={settings.room_len}",
            "CHANTYPES=#",
            "ELIST=",
            "HOSTLEN=63",
            f"KICKLEN={IRC_LINE - 100}",
            f"MAXTARGETS={targets}",
            "MODES=4",
            f"NETWORK={settings.network}",
            f"NICKLEN={settings.nick_len}",
            "PREFIX=(ov)@+",
            "SAFELIST",
            "STATUSMSG=",
            f"TARGMAX=PRIVMSG:{targets},NOTICE:{targets},TAGMSG:{targets},JOIN:,PART:,KICK:1,WHOIS:1,NAMES:1",
            f"TOPICLEN={settings.topic_len}",
            f"USERLEN={settings.user_len}",
        ]

    def _isupport_lines(self) -> list[Reply]:
        tokens = [token for token in self._isupport() if token != "STATUSMSG="]
        return [self.num("005", *tokens[i : i + 12], "are supported by this server") for i in range(0, len(tokens), 12)]

    def _try_register(self) -> Reply:
        if self.state != "registering" or not self.nick or not self.user or self.cap_negotiating:
            return None
        if not self._password_ok():
            self.log.info("irc_bad_password")
            self.close()
            return [self.num("464", "Password incorrect"), "ERROR :Closing link: bad password"]
        self.set_state("registered")
        self.registration_done()
        service = self.service
        service.max_users = max(service.max_users, len(self.backplane.users()))
        settings = self.settings
        nick = self.nick
        replies: list[Reply] = [
            self.num("001", f"Welcome to the {settings.network} network, {nick}!{self.user}@{self.host}"),
            self.num("002", f"Your host is {self.server}, running version {_VERSION}"),
            self.num("003", f"This server was created {service.created}"),
            f":{self.server} 004 {nick} {self.server} {_VERSION} io biklmnostv bklov",
            *self._isupport_lines(),
        ]
        replies.extend(self._lusers())
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

    # ------------------------------------------------------------------ server queries

    def _lusers(self) -> list[Reply]:
        service = self.service
        users = [user for user in self.backplane.users() if getattr(user, "registered", True)]
        count = len(users)
        service.max_users = max(service.max_users, count)
        invisible = sum(1 for user in users if getattr(user, "invisible", False))
        opers = sum(1 for user in users if getattr(user, "oper", False))
        unknown = sum(1 for channel in service.connections if not getattr(channel.protocol, "registered", True))
        rooms = len(self.backplane.rooms())
        top = service.max_users
        return [
            self.num("251", f"There are {count - invisible} users and {invisible} invisible on 1 servers"),
            self.num("252", str(opers), "operator(s) online"),
            self.num("253", str(unknown), "unknown connection(s)"),
            self.num("254", str(rooms), "channels formed"),
            self.num("255", f"I have {count} clients and 0 servers"),
            self.num("265", str(count), str(top), f"Current local users {count}, max {top}"),
            self.num("266", str(count), str(top), f"Current global users {count}, max {top}"),
        ]

    @command("LUSERS", state="registered")
    def lusers(self, *_: str) -> Reply:
        """Counts of users, operators, channels."""
        return self._lusers()

    @command("VERSION", state="registered")
    def version(self, *_: str) -> Reply:
        """The server's version and ISUPPORT."""
        return [self.num("351", _VERSION, self.server, "linechat chat service"), *self._isupport_lines()]

    @command("TIME", state="registered")
    def time_command(self, *_: str) -> Reply:
        """The server's local time."""
        now = time.time()
        return self.num(
            "391", self.server, str(int(now)), "0", time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
        )

    @command("ADMIN", state="registered")
    def admin(self, *_: str) -> Reply:
        """Who runs this server."""
        settings = self.settings
        return [
            self.num("256", self.server, "Administrative info"),
            self.num("257", settings.network),
            self.num("258", settings.admin or "linechat chat service"),
            self.num("259", settings.admin_email or "no contact given"),
        ]

    @command("INFO", state="registered")
    def info(self, *_: str) -> Reply:
        """About this server."""
        return [
            self.num("371", f"{_VERSION}: the chat service of linechat"),
            self.num("371", "Plain-text (telnet) users and IRC clients share the rooms."),
            self.num("371", f"Up since {self.service.created}"),
            self.num("374", "End of INFO list"),
        ]

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

    @command("AWAY", state="registered")
    def away_command(self, message: str = "", *_: str) -> Reply:
        """Mark yourself away (with a message) or back (without); away-notify clients are told."""
        message = message[:200]
        changed = message != self.away
        self.away = message
        if changed:
            self.backplane.publish_rooms(list(self.rooms.values()), self.event("away", "", message), exclude=self)
        if message:
            return self.num("306", "You have been marked as being away")
        return self.num("305", "You are no longer marked as being away")

    # ------------------------------------------------------------------ channels

    @command("JOIN", state="registered")
    def join(self, rooms: str, keys: str = "", *_: str) -> Reply:
        """Join one or more channels (``JOIN 0`` leaves them all)."""
        if rooms == "0":
            for room in list(self.rooms.values()):
                self.leave(room)
            return None
        key_list = keys.split(",") if keys else []
        # Each channel's replies go out right after its JOIN line (which the
        # room delivers), so they are sent as we go rather than returned.
        for index, room in enumerate(rooms.split(",")):
            if not room:
                continue
            key = key_list[index] if index < len(key_list) else ""
            if not self.room_name_ok(room):
                self.send(self.num("403" if room.startswith("#") else "476", room, "No such channel"))
                continue
            if fold(room) in self.rooms:
                continue
            if len(self.rooms) >= self.settings.max_rooms:
                self.send(self.num("405", room, "You have joined too many channels"))
                continue
            refused = self.ops.join_problem(room, key)
            if refused is not None:
                self.send(self.problem(refused))
                continue
            info = self.enter(room)
            if info is None:
                continue
            replies: list[Reply] = []
            if info.topic:
                replies.append(self.num("332", info.name, info.topic))
                replies.append(f":{self.server} 333 {self.nick} {info.name} {info.topic_by} {int(info.topic_at)}")
            replies.extend(self._names(info.name))
            replies.extend(event.encoded(self._render) for event in self.backplane.history(info.name))
            self.send(replies)
        return None

    def _prefix(self, status: str) -> str:
        if not status:
            return ""
        marks = ("@" if "o" in status else "") + ("+" if "v" in status else "")
        return marks if "multi-prefix" in self.caps else marks[:1]

    def _names(self, room: str) -> list[Reply]:
        hosts = "userhost-in-names" in self.caps
        members = sorted(self.backplane.member_status(room), key=lambda pair: fold(pair[0].nick))
        modes = self.backplane.modes(room)
        symbol = "@" if modes is not None and "s" in modes.flags else "="
        entries = [self._prefix(status) + (f"{m.nick}!{m.user}@{m.host}" if hosts else m.nick) for m, status in members]
        replies: list[Reply] = []
        head = f":{self.server} 353 {self.nick} {symbol} {room} :"
        batch: list[str] = []
        size = len(head)
        for entry in entries:
            if batch and size + len(entry) + 1 > IRC_LINE:
                replies.append(head + " ".join(batch))
                batch, size = [], len(head)
            batch.append(entry)
            size += len(entry) + 1
        if batch:
            replies.append(head + " ".join(batch))
        replies.append(self.num("366", room, "End of /NAMES list."))
        return replies

    def _visible(self, room: str) -> bool:
        """Secret rooms (+s) are seen by their members only."""
        modes = self.backplane.modes(room)
        return modes is None or "s" not in modes.flags or fold(room) in self.rooms

    @command("PART", state="registered")
    def part(self, rooms: str, reason: str = "", *_: str) -> Reply:
        """Leave one or more channels."""
        replies: list[Reply] = []
        for room in rooms.split(","):
            if not room:
                continue
            if self.backplane.room(room) is None:
                replies.append(self.num("403", room, "No such channel"))
            elif not self.leave(room, self.fit_irc("PART", room, reason) if reason else ""):
                replies.append(self.num("442", room, "You're not on that channel"))
        return replies

    @command("TOPIC", state="registered")
    def topic(self, room: str, *text: str) -> Reply:
        """Show or set a channel's topic (+t: operators only)."""
        info = self.backplane.room(room)
        if info is None:
            return self.num("403", room, "No such channel")
        if not text:
            if not self._visible(info.name):
                return self.num("403", room, "No such channel")
            if not info.topic:
                return self.num("331", info.name, "No topic is set")
            return [
                self.num("332", info.name, info.topic),
                f":{self.server} 333 {self.nick} {info.name} {info.topic_by} {int(info.topic_at)}",
            ]
        refused = self.ops.set_topic(info.name, text[0])
        return self.problem(refused) if refused is not None else None

    @command("NAMES", state="registered")
    def names(self, rooms: str = "", *_: str) -> Reply:
        """List who is in channels."""
        if not rooms:
            return self.num("366", "*", "End of /NAMES list.")
        replies: list[Reply] = []
        for room in rooms.split(","):
            info = self.backplane.room(room)
            if info is None or not self._visible(info.name):
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
            if (wanted is None or fold(info.name) in wanted) and self._visible(info.name):
                replies.append(self.num("322", info.name, str(info.members), info.topic))
        replies.append(self.num("323", "End of /LIST"))
        return replies

    @command("MODE", state="registered")
    def mode(self, target: str, *changes: str) -> Reply:
        """Show or change a channel's modes (operators only) or your own user modes."""
        if target.startswith("#"):
            info = self.backplane.room(target)
            modes = self.backplane.modes(target)
            if info is None or modes is None:
                return self.num("403", target, "No such channel")
            if not changes:
                shown, params = modes.describe(show_key=fold(info.name) in self.rooms)
                return [
                    f":{self.server} 324 {self.nick} {info.name} {' '.join([shown, *params])}",
                    f":{self.server} 329 {self.nick} {info.name} {int(info.created)}",
                ]
            problems, replies = self.ops.change_modes(info.name, changes[0], list(changes[1:]))
            out: list[Reply] = []
            for reply in replies:
                if reply[0] == "367":
                    out.append(f":{self.server} 367 {self.nick} {' '.join(reply[1:])}")
                else:
                    out.append(self.problem(reply))
            out.extend(self.problem(problem) for problem in problems)
            return out
        if fold(target) != fold(self.nick):
            if self.backplane.find(target) is None:
                return self.num("401", target, "No such nick/channel")
            return self.num("502", "Can't change mode for other users")
        if not changes:
            umodes = ("B" if self.bot else "") + ("i" if self.invisible else "") + ("o" if self.oper else "")
            return self.num("221", "+" + umodes)
        applied = ""
        sign = "+"
        for letter in changes[0]:
            if letter in "+-":
                sign = letter
            elif letter == "o" and sign == "-" and self.oper:
                self.oper = False  # operators may drop their status, never take it this way
                applied += "-o"
            elif letter == "i" and self.invisible != (sign == "+"):
                self.invisible = sign == "+"
                applied += sign + "i"
            elif letter == "B" and self.bot != (sign == "+"):
                self.bot = sign == "+"
                applied += sign + "B"
            elif letter not in "ioB":
                self.send(self.num("501", "Unknown MODE flag"))
        if applied:
            return f":{self.nick} MODE {self.nick} :{applied}"
        return None

    @command("KICK", state="registered")
    def kick(self, room: str, nicks: str, reason: str = "", *_: str) -> Reply:
        """Remove users from a channel (operators only)."""
        replies: list[Reply] = []
        for nick in nicks.split(","):
            if nick:
                refused = self.ops.kick(room, nick, reason)
                if refused is not None:
                    replies.append(self.problem(refused))
        return replies

    @command("INVITE", state="registered")
    def invite(self, nick: str, room: str) -> Reply:
        """Invite a user to a channel (operators only when it is +i)."""
        refused, victim = self.ops.invite(nick, room)
        if refused is not None:
            return self.problem(refused)
        name = self.backplane.room(room).name if self.backplane.room(room) else room  # type: ignore[union-attr]
        replies: list[Reply] = [f":{self.server} 341 {self.nick} {victim.nick} {name}"]
        if victim.away:
            replies.append(self.num("301", victim.nick, victim.away))
        return replies

    # ------------------------------------------------------------------ users

    def _flags(self, member: Any, status: str) -> str:
        flags = "G" if member.away else "H"
        if getattr(member, "oper", False):
            flags += "*"
        if getattr(member, "bot", False):
            flags += "B"
        return flags + self._prefix(status)

    def _who_line(self, room: str, member: Any, status: str = "") -> str:
        user = member.user or member.nick
        return self.num(
            "352",
            room,
            user,
            member.host,
            self.server,
            member.nick,
            self._flags(member, status),
            f"0 {member.realname}",
        )

    @command("WHO", state="registered")
    def who(self, mask: str = "", flags: str = "", *_: str) -> Reply:
        """Describe a channel's members, or the users a mask matches (``o``: operators only)."""
        replies: list[Reply] = []
        opers_only = "o" in flags
        if mask.startswith("#"):
            info = self.backplane.room(mask)
            if info is not None and self._visible(info.name):
                for member, status in self.backplane.member_status(info.name):
                    if not opers_only or getattr(member, "oper", False):
                        replies.append(self._who_line(info.name, member, status))
        else:
            pattern = mask if mask not in ("", "0") else "*"
            exact = None if "*" in pattern or "?" in pattern else self.backplane.find(pattern)
            candidates = [exact] if exact is not None else self.backplane.users()
            mine = set(self.rooms)
            for member in candidates:
                if opers_only and not getattr(member, "oper", False):
                    continue
                if not getattr(member, "registered", True):
                    continue
                rooms = list(getattr(member, "rooms", {}).values())
                if (
                    exact is None
                    and member is not self
                    and getattr(member, "invisible", False)
                    and not mine.intersection(fold(room) for room in rooms)
                ):
                    continue  # invisible users show to masks only where a room is shared
                fields = (member.nick, member.user, member.host, member.realname, self.server)
                if exact is not None or any(mask_matches(pattern, value) for value in fields):
                    visible = [room for room in rooms if self._visible(room)]
                    room = visible[0] if visible else "*"
                    status = (self.backplane.status(room, member) or "") if visible else ""
                    replies.append(self._who_line(room, member, status))
        replies.append(self.num("315", mask or "*", "End of /WHO list."))
        return replies

    @command("WHOIS", state="registered")
    def whois(self, target: str, *rest: str) -> Reply:
        """Describe a nick: user, channels, server, operator, away and idle time."""
        nick = rest[0] if rest else target  # "WHOIS server nick" names the server first
        nick = nick.split(",")[0]
        member = self.backplane.find(nick)
        if member is None:
            return [self.num("401", nick, "No such nick/channel"), self.num("318", nick, "End of /WHOIS list.")]
        replies: list[Reply] = [
            self.num("311", member.nick, member.user or member.nick, member.host, "*", member.realname)
        ]
        rooms = []
        for room in getattr(member, "rooms", {}).values():
            if self._visible(room):
                rooms.append(self._prefix(self.backplane.status(room, member) or "") + room)
        if rooms:
            replies.append(self.num("319", member.nick, " ".join(rooms)))
        replies.append(self.num("312", member.nick, self.server, f"{self.settings.network} ({member.dialect})"))
        if getattr(member, "oper", False):
            replies.append(self.num("313", member.nick, "is an IRC operator"))
        if getattr(member, "bot", False):
            replies.append(self.num("335", member.nick, f"is a bot on {self.settings.network}"))
        if member.away:
            replies.append(self.num("301", member.nick, member.away))
        now = self.reactor.time()
        idle = int(now - getattr(member, "last_spoke", now))
        signon = int(time.time() - (now - getattr(member, "signon", now)))
        replies.append(self.num("317", member.nick, str(max(idle, 0)), str(signon), "seconds idle, signon time"))
        replies.append(self.num("318", member.nick, "End of /WHOIS list."))
        return replies

    @command("WHOWAS", state="registered")
    def whowas(self, nick: str = "", count: str = "", *_: str) -> Reply:
        """Who used a nick before (newest first)."""
        if not nick:
            return self.num("431", "No nickname given")
        limit = int(count) if count.lstrip("-").isdigit() and int(count) > 0 else None
        replies: list[Reply] = []
        found = 0
        for was_nick, user, host, realname, at in reversed(self.service.whowas):
            if fold(was_nick) != fold(nick):
                continue
            replies.append(self.num("314", was_nick, user, host, "*", realname))
            replies.append(self.num("312", was_nick, self.server, time.strftime("%c", time.gmtime(at))))
            found += 1
            if limit is not None and found >= limit:
                break
        if not found:
            replies.append(self.num("406", nick, "There was no such nickname"))
        replies.append(self.num("369", nick, "End of WHOWAS"))
        return replies

    @command("ISON", state="registered")
    def ison(self, *nicks: str) -> Reply:
        """Which of these nicks are online."""
        found = (self.backplane.find(nick) for nick in " ".join(nicks).split())
        online = [member.nick for member in found if member is not None]
        return self.num("303", " ".join(online))

    @command("USERHOST", state="registered")
    def userhost(self, *nicks: str) -> Reply:
        """``nick[*]=[+|-]user@host`` for up to five nicks."""
        entries = []
        for nick in " ".join(nicks).split()[:5]:
            member = self.backplane.find(nick)
            if member is not None:
                star = "*" if getattr(member, "oper", False) else ""
                here = "-" if member.away else "+"
                entries.append(f"{member.nick}{star}={here}{member.user}@{member.host}")
        return self.num("302", " ".join(entries))

    @command("OPER", state="registered")
    def oper_command(self, name: str, password: str, *_: str) -> Reply:
        """Become an IRC operator with a name and password from the ``opers`` setting."""
        if not check_oper(self.settings.opers, name, password):
            self.log.warning("oper_failed", name=name, nick=self.nick)
            return self.num("464", "Password incorrect")
        self.oper = True
        self.log.info("oper", name=name, nick=self.nick)
        return [self.num("381", "You are now an IRC operator"), f":{self.nick} MODE {self.nick} :+o"]

    @command("KILL", state="registered")
    def kill_command(self, nick: str, reason: str = "", *_: str) -> Reply:
        """Disconnect a user (IRC operators only)."""
        if not self.oper:
            return self.num("481", "Permission Denied- You're not an IRC operator")
        victim = self.backplane.find(nick)
        if victim is None:
            return self.num("401", nick, "No such nick/channel")
        reason = reason or self.nick
        self.log.info("kill", victim=victim.nick, reason=reason)
        if isinstance(victim, IrcSession):
            victim.send(f":{self.nick}!{self.user}@{self.host} KILL {victim.nick} :{reason}")
        victim.kill(f"Killed ({self.nick} ({reason}))")
        return None

    # ------------------------------------------------------------------ messages

    @command("PRIVMSG", state="registered")
    def privmsg(self, targets: str = "", text: str = "", *_: str) -> Reply:
        """Send a message to channels or nicks."""
        return self._message(targets, text, "message")

    @command("NOTICE", state="registered")
    def notice(self, targets: str = "", text: str = "", *_: str) -> Reply:
        """Send a notice (never answered with an error, as the RFC asks)."""
        return self._message(targets, text, "notice")

    @command("TAGMSG", state="registered")
    def tagmsg(self, targets: str = "", *_: str) -> Reply:
        """Send client tags alone (IRCv3 message-tags)."""
        if "message-tags" not in self.caps:
            return self.num("421", "TAGMSG", "Unknown command")
        return self._message(targets, "", "tagmsg")

    def _message(self, targets: str, text: str, kind: str) -> Reply:
        quiet = kind == "notice"
        name = "NOTICE" if quiet else ("TAGMSG" if kind == "tagmsg" else "PRIVMSG")
        if not targets:
            return None if quiet else self.num("411", f"No recipient given ({name})")
        if not text and kind != "tagmsg":
            return None if quiet else self.num("412", "No text to send")
        if kind == "message" and text.startswith("\x01ACTION ") and text.endswith("\x01"):
            kind, text = "action", text[8:-1]
        replies: list[Reply] = []
        seen: set[str] = set()
        echo = "echo-message" in self.caps
        tags = self.tags
        if self.bot:  # IRCv3 bot mode: message-tags clients see who is a bot
            tags = f"bot;{tags}" if tags else "bot"
        self.last_spoke = self.reactor.time()
        for target in targets.split(","):
            key = fold(target)
            if not target or key in seen:
                continue  # a target named twice gets the message once
            seen.add(key)
            if len(seen) > self.settings.max_targets:
                if not quiet:
                    replies.append(self.num("407", target, f"Too many targets. Limit is {self.settings.max_targets}"))
                break
            if target.startswith("#"):
                info = self.backplane.room(target)
                if info is None:
                    if not quiet:
                        replies.append(self.num("403" if kind != "notice" else "401", target, "No such channel"))
                    continue
                refused = self.ops.speak_problem(info.name)
                if refused is not None:
                    if not quiet:
                        replies.append(self.problem(refused))
                    continue
                event = self.event(kind, info.name, text, tags=tags)
                self.backplane.publish(info.name, event, exclude=self)
                if echo:
                    self.deliver(event)
                continue
            member = self.backplane.find(target)
            if member is None:
                if not quiet:
                    replies.append(self.num("401", target, "No such nick/channel"))
                continue
            event = self.event(kind, member.nick, text, tags=tags)
            member.deliver(event)
            if echo:
                self.deliver(event)
            if member.away and kind in ("message", "action"):
                replies.append(self.num("301", member.nick, member.away))
        if self._outq:
            self.flush()
        return None if quiet else replies


# Tagged lines may be up to 4096 + 512 bytes; handle_line checks each part.
IrcSession._rules = {**IrcSession._rules, "command": Rule("command", b"\n", max_size=_TAGS_MAX + 512)}
