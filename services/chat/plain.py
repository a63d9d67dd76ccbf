"""The plain-text dialect: telnet or nc users, one line per message, slash commands."""

from __future__ import annotations

from typing import Any

from linechat import Reply, Rule, command
from linechat.services.chat.backplane import Event
from linechat.services.chat.names import clean_text, fold
from linechat.services.chat.session import ChatSession

__all__ = ["PlainSession", "render_plain"]

_CRLF = "\r\n"

# How many arguments each command is split into; the last one keeps its
# spaces (a message, a reason).  Commands not listed split on every blank.
_SPLITS = {"SAY": 1, "MSG": 2, "ME": 1, "QUIT": 1, "PART": 1, "TOPIC": 1}


def _strip_ctcp(text: str) -> str:
    return text.replace("\x01", "")


def render_plain(event: Event) -> bytes | None:
    """Format an event as a plain-text line."""
    kind = event.kind
    nick = event.nick
    text = _strip_ctcp(event.text)
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
    else:
        return None
    return (line + _CRLF).encode("utf-8")


class PlainSession(ChatSession):
    """A telnet user: asked for a nickname, then every line is said to the current room."""

    dialect = "plain"
    render = staticmethod(render_plain)
    initial_state = "naming"
    #: Sent to a connection refused for lack of room (too many connections or descriptors).
    refusal_line = "*** Server full: too many connections, try again later"

    def __init__(self, channel: Any, service: Any) -> None:
        super().__init__(channel, service)
        self.current = ""  # the room lines go to ("" when in none)
        self.realname = "plain-text user"

    # ------------------------------------------------------------------ framing and parsing

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

    def handle_line(self, line: bytes) -> Reply:
        """Refuse lines that are not UTF-8 (they count as lines and as bad lines), then go on as usual."""
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return self.bad_line(line) if self.admit_line() else None
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

    def on_unknown_command(self, name: str, args: list[Any]) -> Reply:
        """Unknown slash commands point to /help."""
        return self.error(f"unknown command /{name.lower()} (try /help)")

    def on_arity_error(self, name: str, args: list[Any]) -> Reply:
        """Show the usage of a command used wrongly."""
        return self.error(f"usage: {_USAGE.get(name, '/' + name.lower())}")

    def on_bad_state(self, name: str, args: list[Any]) -> Reply:
        """Before a nickname is chosen, only a few commands make sense."""
        return self.error("choose a nickname first: type it, or /nick name")

    def on_frame_too_long(self, rule: Rule, size: int) -> bool:
        """Skip the over-long line and say so (it counts against the flood gate)."""
        if not self.admit_line():
            return True  # already saying goodbye
        self.send(self.error(f"line too long (the limit is {self.settings.max_line} bytes); nothing was sent"))
        return True

    def farewell(self, reason: str) -> Reply:
        """The last line a closing telnet user sees."""
        return f"*** Goodbye ({reason})"

    # ------------------------------------------------------------------ commands

    @command("NICK")
    def nick_command(self, nick: str) -> Reply:
        """Choose or change your nickname."""
        why = self.check_nick(nick)
        if why == "erroneous":
            return self.error(
                f"'{nick}' is not a valid nickname (letters, digits, -_[]\\`^{{|}}; "
                f"at most {self.settings.nick_len}; not starting with a digit or -)"
            )
        if why == "in use" or not self.take_nick(nick):
            return self.error(f"the nickname '{nick}' is taken; try another")
        if self.state != "naming":
            if not self.rooms:
                return f"*** You are now known as {nick}"
            return None  # the room's announcement reaches us too
        self.set_state("chat")
        self.user = nick
        replies: list[Reply] = [f"*** Hello {nick}."]
        room = self.settings.default_room
        if room:
            replies.append(self._join(room))
        else:
            replies.append("*** Join a room with /join #name.")
        return replies

    @command("JOIN", state="chat")
    def join_command(self, room: str) -> Reply:
        """Move to a room (created if new)."""
        if not room.startswith("#"):
            room = "#" + room
        if not self.room_name_ok(room):
            return self.error(f"'{room}' is not a valid room name")
        if fold(room) == fold(self.current):
            return f"*** You are already in {self.current}."
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
            replies.append(f"*** Topic: {info.topic}")
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
        self.leave(room, reason)
        return "*** Join another room with /join #name."

    @command("ROOMS", "LIST", state="chat")
    def rooms_command(self) -> Reply:
        """List the rooms and how many people are in each."""
        rooms = self.backplane.rooms()
        if not rooms:
            return "*** No rooms yet; /join #name creates one."
        lines: list[Reply] = [f"*** {len(rooms)} room{'s' if len(rooms) != 1 else ''}:"]
        for info in rooms:
            topic = f" - {info.topic}" if info.topic else ""
            lines.append(f"***   {info.name} ({info.members}){topic}")
        return lines

    @command("WHO", "NAMES", state="chat")
    def who_command(self, room: str = "") -> Reply:
        """List who is in the current room (or in the one named)."""
        room = room or self.current
        if not room:
            return self.error("you are not in a room; /who #room")
        if not room.startswith("#"):
            room = "#" + room
        info = self.backplane.room(room)
        if info is None:
            return self.error(f"no room {room}")
        nicks = sorted((member.nick for member in self.backplane.members(room)), key=fold)
        return f"*** {info.name} ({len(nicks)}): {', '.join(nicks)}"

    @command("SAY", state="chat")
    def say_command(self, text: str) -> Reply:
        """Say a line to the current room (what typing a line does)."""
        if not self.current:
            return self.error("you are not in a room; /join #name first")
        self.say(self.current, text)
        return None

    @command("ME", state="chat")
    def me_command(self, action: str) -> Reply:
        """Say an action to the current room ('* nick waves')."""
        if not self.current:
            return self.error("you are not in a room; /join #name first")
        self.say(self.current, action, kind="action")
        return None

    @command("MSG", state="chat")
    def msg_command(self, nick: str, text: str) -> Reply:
        """Send a private message to a nick."""
        if nick.startswith("#"):
            if fold(nick) not in self.rooms:
                return self.error(f"you are not in {nick}")
            self.say(nick, text)
            return None
        if not self.say(nick, text):
            return self.error(f"no one is called '{nick}'")
        return f"-> *{nick}* {text}"

    @command("TOPIC", state="chat")
    def topic_command(self, topic: str = "") -> Reply:
        """Show or set the topic of the current room."""
        if not self.current:
            return self.error("you are not in a room")
        if not topic:
            info = self.backplane.room(self.current)
            shown = info.topic if info is not None and info.topic else "(none)"
            return f"*** Topic of {self.current}: {shown}"
        self.backplane.set_topic(self.current, topic, self.nick)
        self.backplane.publish(self.current, self.event("topic", self.current, topic))
        return None

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
    "JOIN": "/join #room         move to a room",
    "PART": "/part [reason]      leave the current room",
    "ROOMS": "/rooms              list the rooms",
    "WHO": "/who [#room]        who is in the room",
    "MSG": "/msg nick text      private message",
    "ME": "/me action          say an action",
    "TOPIC": "/topic [text]       show or set the topic",
    "HELP": "/help               this list",
    "QUIT": "/quit [reason]      leave",
}
