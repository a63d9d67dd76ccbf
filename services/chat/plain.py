"""The plain-text dialect: telnet or nc users, one line per message, slash commands."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from linechat import Reply, command, terminator
from linechat.services.chat.backplane import Event
from linechat.services.chat.names import clean_text, fold, irc_to_ansi, strip_formatting
from linechat.services.chat.session import ChatSession, Problem

__all__ = ["PlainSession", "render_plain", "render_plain_ansi"]

_CRLF = "\r\n"

# How many arguments each command is split into; the last one keeps its
# spaces (a message, a reason).  Commands not listed split on every blank.
_SPLITS = {"SAY": 1, "MSG": 2, "ME": 1, "QUIT": 1, "PART": 1, "TOPIC": 1, "KICK": 2, "AWAY": 1}

# A line ends at CR, at LF, or at CR LF (a CR LF split across reads ends
# one line, and the lone LF after it an empty one, which is ignored).
_LINE_END = re.compile(rb"[\r\n]")

# Slash commands that only answer the sender: free on the flood clock.
_FREE = frozenset({b"/WHO", b"/NAMES", b"/ROOMS", b"/LIST", b"/HELP", b"/WHOIS"})

# A refused channel operation as a sentence (the numerics' parameters fill it in).
_TEXT = {
    "401": "no one is called '{0}'",
    "403": "there is no room {0}",
    "404": "you cannot speak in {0} (moderated, banned, or not in it)",
    "441": "{0} is not in {1}",
    "442": "you are not in {0}",
    "443": "{0} is already in {1}",
    "471": "{0} is full",
    "472": "'{0}' is not a room mode (modes: b k l i m n s t o v)",
    "473": "{0} is invite-only: ask an operator for an invitation",
    "474": "you are banned from {0}",
    "475": "{0} needs a key: /join {0} key",
    "478": "the ban list of {0} is full",
    "482": "you are not an operator of {0}",
    "696": "mode {1} of {0}: {3}",
}


def _render(event: Event, safe: Any) -> bytes | None:
    kind = event.kind
    nick = event.nick
    text = event.text.replace("\x01", "")
    if kind == "message":
        line = f"*{nick}* {text}" if event.private else f"<{nick}> {text}"
    elif kind == "action":
        line = f"* {nick} {text}" if not event.private else f"*{nick}* * {nick} {text}"
    elif kind == "notice":
        line = f"-{nick}- {text}"
    elif kind == "join":
        line = f"*** {nick} joined {event.target}"
    elif kind == "part":
        line = f"*** {nick} left {event.target}" + (f" ({text})" if text else "")
    elif kind == "quit":
        line = f"*** {nick} quit" + (f" ({text})" if text else "")
    elif kind == "nick":
        line = f"*** {nick} is now known as {text}"
    elif kind == "topic":
        line = f"*** {nick} set the topic of {event.target}: {text}"
    elif kind == "kick":
        line = f"*** {event.arg} was kicked from {event.target} by {nick}" + (f" ({text})" if text else "")
    elif kind == "mode":
        line = f"*** {nick} set mode {event.arg} on {event.target}"
    elif kind == "invite":
        line = f"*** {nick} invites you to {event.arg} (/join {event.arg})"
    elif kind == "server":
        line = f"*** {text}"
    else:
        return None
    # Whatever a peer sent, the terminal sees no control character but the
    # formatting drawn here: no ESC/CSI/OSC sequence, no BEL, no CR.
    return (safe(line) + _CRLF).encode("utf-8")


def render_plain(event: Event) -> bytes | None:
    """Format an event as a plain-text line, IRC formatting and every control character removed."""
    return _render(event, strip_formatting)


def render_plain_ansi(event: Event) -> bytes | None:
    """Format an event as a plain-text line, IRC formatting drawn as ANSI, other controls removed."""
    return _render(event, irc_to_ansi)


# Shared by every session with no lines waiting; nothing is added to it.
_NO_LINES: deque[bytes] = deque()


class PlainSession(ChatSession):
    """A telnet user: asked for a nickname, then every line is said to the current room."""

    dialect = "plain"
    render = staticmethod(render_plain)
    initial_state = "naming"
    initial_rule = "text"
    #: Sent to a connection refused for lack of room (too many connections or descriptors).
    refusal_line = "*** Server full: too many connections, try again later"

    def __init__(self, channel: Any, service: Any) -> None:
        super().__init__(channel, service)
        self.current = ""  # the room lines go to ("" when in none)
        self.realname = "plain-text user"
        self._inbuf = b""
        self._lines: deque[bytes] = _NO_LINES  # made when lines arrive (an idle user holds no deque)
        self._discarding = False  # inside an over-long line, up to its end
        if self.settings.plain_formatting == "ansi":
            self.render = render_plain_ansi  # type: ignore[assignment]

    # ------------------------------------------------------------------ framing and parsing

    @terminator("text", None, stream=True)
    def on_text(self, chunk: bytes, end: bool) -> Reply:
        """Split what arrived into lines at CR or LF, then handle them (as the flood clock allows)."""
        data = self._inbuf + chunk if self._inbuf else chunk
        pieces = _LINE_END.split(data)
        self._inbuf = pieces.pop()
        limit = self.settings.max_line
        if self._lines is _NO_LINES:
            self._lines = deque()
        for piece in pieces:
            if self._discarding:
                self._discarding = False  # the rest of an over-long line: already refused
                continue
            if len(piece) > limit:
                self._lines.append(b"\x00too-long")
            elif piece:
                self._lines.append(piece)
        if len(self._inbuf) > limit:
            self._inbuf = b""
            if not self._discarding:
                self._discarding = True
                self._lines.append(b"\x00too-long")
        self._drain()
        return None

    def partial_input(self) -> bool:
        """A line begun but not finished is held: the framework's line_timeout clock runs."""
        return bool(self._inbuf)

    def _drain(self) -> None:
        lines = self._lines
        while lines and not self.held and not self.closing and not self.channel.closed:
            line = lines.popleft()
            if line == b"\x00too-long":
                self.charge()
                if not self.channel.note_bad_input("frame_too_long", rule="text"):
                    self.close()
                    self.send(self.on_abuse("too many over-long lines"))
                    return
                self.send(self.error(f"line too long (the limit is {self.settings.max_line} bytes); nothing was sent"))
                continue
            self.send(self.handle_line(line))

    def _flood_over(self) -> None:
        """The flood clock caught up: handle the lines held back, then read again."""
        super()._flood_over()
        if not self.held:
            self._drain()

    def parse_command(self, line: bytes) -> tuple[str, list[Any]] | None:
        """A line starting with '/' is a command; any other line is said (or is the nickname)."""
        text = clean_text(line.decode("utf-8"))  # UnicodeDecodeError: see handle_line
        if not text.strip():
            return None
        if text.startswith("/") and not text.startswith("//"):
            name, _, rest = text[1:].partition(" ")
            name = name.upper()
            rest = rest.strip()
            if not rest:
                return name, []
            return name, rest.split(None, _SPLITS.get(name, 0) - 1)
        if text.startswith("//"):
            text = text[1:]  # '//' says a line that starts with '/'
        if self.state == "naming":
            return "NICK", text.split()
        return "SAY", [text]

    def line_weight(self, line: bytes) -> float:
        """Commands that only answer the sender are free on the flood clock; lines said cost one."""
        if line[:1] == b"/" and line.split(b" ", 1)[0].upper().rstrip(b"\r") in _FREE:
            return 0.0
        return 1.0

    def handle_line(self, line: bytes) -> Reply:
        """Refuse lines that are not UTF-8 (they count on the flood clock too), then go on as usual."""
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            self.charge()
            return self.bad_line(line)  # counted against bad_line_limit too
        return super().handle_line(line)

    # ------------------------------------------------------------------ hooks

    def on_connect(self) -> Reply:
        """Greet and ask for a nickname."""
        return [
            f"*** Welcome to {self.settings.network} chat.",
            "*** Type /help for the commands.",
            "*** What is your nickname?",
        ]

    def error(self, message: str) -> str:
        """Errors are lines starting with '*** Error:'."""
        return f"*** Error: {message}"

    def problem(self, problem: Problem) -> str:
        """A refused channel operation as an error line."""
        code, *params = problem
        return self.error(_TEXT.get(code, code).format(*params, "", "", "", ""))

    def on_unknown_command(self, name: str, args: list[Any]) -> Reply:
        """Unknown slash commands point to /help."""
        return self.error(f"unknown command /{name.lower()} (try /help)")

    def on_arity_error(self, name: str, args: list[Any]) -> Reply:
        """Show the usage of a command used wrongly."""
        return self.error(f"usage: {_USAGE.get(name, '/' + name.lower())}")

    def on_bad_state(self, name: str, args: list[Any]) -> Reply:
        """Before a nickname is chosen, only a few commands make sense."""
        return self.error("choose a nickname first: type it, or /nick name")

    def farewell(self, reason: str) -> Reply:
        """The last line a closing telnet user sees."""
        return f"*** Goodbye ({reason})"

    def told_cut(self, size: int, what: str = "line") -> None:
        """Say that a line (or topic) was cut to fit IRC."""
        self.send(f"*** Note: your {what} was cut to {size} bytes to fit IRC's line limit.")

    def removed(self, room: str) -> None:
        """Kicked out of *room*: it is no longer where lines go."""
        super().removed(room)
        if fold(room) == fold(self.current):
            self.current = ""

    # ------------------------------------------------------------------ commands

    @command("NICK")
    def nick_command(self, nick: str) -> Reply:
        """Choose or change your nickname."""
        why = self.check_nick(nick)
        if why == "erroneous":
            return self.error(
                f"'{strip_formatting(nick)}' is not a valid nickname (letters, digits, -_[]\\`^{{|}}; "
                f"at most {self.settings.nick_len}; not starting with a digit or -)"
            )
        if why == "in use" or not self.take_nick(nick):
            return self.error(f"the nickname '{nick}' is taken; try another")
        if self.state != "naming":
            if not self.rooms:
                return f"*** You are now known as {nick}"
            return None  # the room's announcement reaches us too
        self.set_state("chat")
        self.registration_done()
        self.user = nick[: self.settings.user_len]
        replies: list[Reply] = [f"*** Hello {nick}."]
        room = self.settings.default_room
        if room:
            replies.append(self._join(room))
        else:
            replies.append("*** Join a room with /join #name.")
        return replies

    def _room_arg(self, room: str) -> str:
        if not room:
            return self.current
        return room if room.startswith("#") else "#" + room

    @command("JOIN", state="chat")
    def join_command(self, room: str, key: str = "") -> Reply:
        """Move to a room (created if new)."""
        room = self._room_arg(room)
        if not self.room_name_ok(room):
            return self.error(
                f"'{strip_formatting(room)}' is not a valid room name (at most {self.settings.room_len} characters)"
            )
        if fold(room) == fold(self.current):
            return f"*** You are already in {self.current}."
        refused = self.ops.join_problem(room, key)
        if refused is not None:
            return self.problem(refused)
        if self.current:
            self.leave(self.current, "moved to " + room)
        return self._join(room)

    def _join(self, room: str) -> Reply:
        info = self.enter(room)
        if info is None:
            return None
        self.current = info.name
        nicks = sorted((member.nick for member in self.backplane.members(info.name)), key=fold)
        replies: list[Reply] = [f"*** You are in {info.name} ({len(nicks)} here: {', '.join(nicks)})."]
        if info.topic:
            replies.append(f"*** Topic: {strip_formatting(info.topic)}")
        history = self.backplane.history(info.name)
        if history:
            replies.append(f"*** Last {len(history)} messages:")
            replies.extend(event.encoded(self.render) for event in history)
        return replies

    @command("PART", state="chat")
    def part_command(self, reason: str = "") -> Reply:
        """Leave the current room."""
        if not self.current:
            return self.error("you are not in a room")
        room, self.current = self.current, ""
        self.leave(room, self.fit_irc("PART", room, reason) if reason else "")
        return "*** Join another room with /join #name."

    @command("ROOMS", "LIST", state="chat")
    def rooms_command(self) -> Reply:
        """List the rooms and how many people are in each."""
        rooms = [info for info in self.backplane.rooms() if self._visible(info.name)]
        if not rooms:
            return "*** No rooms yet; /join #name creates one."
        lines: list[Reply] = [f"*** {len(rooms)} room{'s' if len(rooms) != 1 else ''}:"]
        for info in rooms:
            topic = f" - {strip_formatting(info.topic)}" if info.topic else ""
            lines.append(f"***   {info.name} ({info.members}){topic}")
        return lines

    def _visible(self, room: str) -> bool:
        modes = self.backplane.modes(room)
        return modes is None or "s" not in modes.flags or fold(room) in self.rooms

    @command("WHO", "NAMES", state="chat")
    def who_command(self, room: str = "") -> Reply:
        """List who is in the current room (or in the one named), operators marked '@', voiced '+'."""
        room = self._room_arg(room)
        if not room:
            return self.error("you are not in a room; /who #room")
        info = self.backplane.room(room)
        if info is None or not self._visible(info.name):
            return self.error(f"no room {strip_formatting(room)}")
        members = sorted(self.backplane.member_status(room), key=lambda pair: fold(pair[0].nick))
        shown = []
        for member, status in members:
            mark = "@" if "o" in status else "+" if "v" in status else ""
            shown.append(mark + member.nick + (" (away)" if member.away else ""))
        return f"*** {info.name} ({len(shown)}): {', '.join(shown)}"

    @command("SAY", state="chat")
    def say_command(self, text: str) -> Reply:
        """Say a line to the current room (what typing a line does)."""
        if not self.current:
            return self.error("you are not in a room; /join #name first")
        refused = self.ops.speak_problem(self.current)
        if refused is not None:
            return self.problem(refused)
        self.say(self.current, text)
        return None

    @command("ME", state="chat")
    def me_command(self, action: str) -> Reply:
        """Say an action to the current room ('* nick waves')."""
        if not self.current:
            return self.error("you are not in a room; /join #name first")
        refused = self.ops.speak_problem(self.current)
        if refused is not None:
            return self.problem(refused)
        self.say(self.current, action, kind="action")
        return None

    @command("MSG", state="chat")
    def msg_command(self, nick: str, text: str) -> Reply:
        """Send a private message to a nick."""
        if nick.startswith("#"):
            if fold(nick) not in self.rooms:
                return self.error(f"you are not in {strip_formatting(nick)}")
            refused = self.ops.speak_problem(nick)
            if refused is not None:
                return self.problem(refused)
            self.say(nick, text)
            return None
        if not self.say(nick, text):
            return self.error(f"no one is called '{strip_formatting(nick)}'")
        member = self.backplane.find(nick)
        replies: list[Reply] = [f"-> *{nick}* {text}"]
        if member is not None and member.away:
            replies.append(f"*** {member.nick} is away: {strip_formatting(member.away)}")
        return replies

    @command("TOPIC", state="chat")
    def topic_command(self, topic: str = "") -> Reply:
        """Show or set the topic of the current room (operators only where the room is +t)."""
        if not self.current:
            return self.error("you are not in a room")
        if not topic:
            info = self.backplane.room(self.current)
            shown = strip_formatting(info.topic) if info is not None and info.topic else "(none)"
            return f"*** Topic of {self.current}: {shown}"
        refused = self.ops.set_topic(self.current, topic)
        return self.problem(refused) if refused is not None else None

    # ------------------------------------------------------------------ moderation (room operators)

    def _mode(self, spec: str, params: list[str]) -> Reply:
        if not self.current:
            return self.error("you are not in a room")
        problems, replies = self.ops.change_modes(self.current, spec, params)
        out: list[Reply] = []
        for reply in replies:
            if reply[0] == "367":
                out.append(f"*** ban {reply[2]} (set by {reply[3].split('!')[0]})")
            elif reply[0] == "368":
                out.append(f"*** {len(replies) - 1} ban(s) on {reply[1]}")
        out.extend(self.problem(problem) for problem in problems)
        return out

    @command("OP", state="chat")
    def op_command(self, nick: str) -> Reply:
        """Make *nick* an operator of the current room."""
        return self._mode("+o", [nick])

    @command("DEOP", state="chat")
    def deop_command(self, nick: str) -> Reply:
        """Take operator status from *nick*."""
        return self._mode("-o", [nick])

    @command("VOICE", state="chat")
    def voice_command(self, nick: str) -> Reply:
        """Let *nick* speak in a moderated (+m) room."""
        return self._mode("+v", [nick])

    @command("DEVOICE", state="chat")
    def devoice_command(self, nick: str) -> Reply:
        """Take voice from *nick*."""
        return self._mode("-v", [nick])

    @command("BAN", state="chat")
    def ban_command(self, mask: str = "") -> Reply:
        """Ban a nick or a nick!user@host mask from the current room (no argument: list the bans)."""
        return self._mode("+b", [mask] if mask else [])

    @command("UNBAN", state="chat")
    def unban_command(self, mask: str) -> Reply:
        """Lift a ban."""
        return self._mode("-b", [mask])

    @command("MODE", state="chat")
    def mode_command(self, *args: str) -> Reply:
        """Show or change the modes of the current room (``/mode +m``, ``/mode +k key``, ``/mode +l 10``)."""
        if not self.current:
            return self.error("you are not in a room")
        if not args:
            modes = self.backplane.modes(self.current)
            if modes is None:
                return self.error("no such room")
            shown, params = modes.describe()
            return f"*** Modes of {self.current}: {' '.join([shown, *params])}"
        return self._mode(args[0], list(args[1:]))

    @command("KICK", state="chat")
    def kick_command(self, nick: str, reason: str = "") -> Reply:
        """Remove *nick* from the current room."""
        if not self.current:
            return self.error("you are not in a room")
        refused = self.ops.kick(self.current, nick, reason)
        return self.problem(refused) if refused is not None else None

    @command("INVITE", state="chat")
    def invite_command(self, nick: str, room: str = "") -> Reply:
        """Invite *nick* to the current room (or the one named), past +i and bans."""
        room = self._room_arg(room)
        if not room:
            return self.error("you are not in a room; /invite nick #room")
        refused, victim = self.ops.invite(nick, room)
        if refused is not None:
            return self.problem(refused)
        return f"*** Invited {victim.nick} to {room}."

    @command("AWAY", state="chat")
    def away_command(self, message: str = "") -> Reply:
        """Mark yourself away (with a message) or back (without)."""
        message = message[:200]
        if message != self.away:
            self.away = message
            self.backplane.publish_rooms(list(self.rooms.values()), self.event("away", "", message), exclude=self)
        return "*** You are marked as away." if message else "*** You are back."

    @command("HELP")
    def help_command(self, *_: str) -> Reply:
        """List the commands."""
        return ["*** Commands:", *(f"***   {usage}" for usage in _USAGE.values()), "*** Any other line is said."]

    @command("QUIT")
    def quit_command(self, reason: str = "") -> Reply:
        """Leave the chat."""
        return self.disconnect(reason or "Quit")


_USAGE = {
    "NICK": "/nick name          change your nickname",
    "JOIN": "/join #room [key]   move to a room",
    "PART": "/part [reason]      leave the current room",
    "ROOMS": "/rooms              list the rooms",
    "WHO": "/who [#room]        who is in the room (@ operator, + voice)",
    "MSG": "/msg nick text      private message",
    "ME": "/me action          say an action",
    "TOPIC": "/topic [text]       show or set the topic",
    "AWAY": "/away [message]     mark yourself away (no message: back)",
    "HELP": "/help               this list",
    "QUIT": "/quit [reason]      leave",
    "OP": "/op nick            (operators) make nick an operator; /deop nick",
    "VOICE": "/voice nick         (operators) let nick speak when +m; /devoice nick",
    "KICK": "/kick nick [reason] (operators) remove nick from the room",
    "BAN": "/ban [nick|mask]    (operators) ban from the room (no argument: list); /unban mask",
    "INVITE": "/invite nick [#room] invite nick (past +i and bans)",
    "MODE": "/mode [+-modes args] (operators) room modes: i m n s t, k key, l limit, b mask, o/v nick",
}
