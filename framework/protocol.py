"""The per-connection protocol: framing rules and command handlers in force, replies, state.

A :class:`Protocol` subclass is instantiated once per connection.  It declares
how its input is framed in each state (``@terminator``, ``linechat.rules``)
and which commands it answers (``@command``, ``linechat.commands``); it turns
frames into replies and never touches a socket.  What it sends goes through
the channel that owns it (``linechat.channel``), which it reaches only through
the few methods below (``send``, ``switch``, ``close``, ``pause``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Union

from linechat.asynchat import Producer
from linechat.commands import BadArgumentError, CommandSpec, declaration_of
from linechat.rules import Rule, rule_of

if TYPE_CHECKING:
    from linechat.channel import ServiceChannel
    from linechat.context import ServiceContext
    from linechat.reactor import Reactor, Timer
    from linechat.service import ListenerSpec, Service

__all__ = ["CommandError", "Pending", "Protocol", "Reply"]

#: What a handler may return: nothing, bytes, a str (sent as a line), a producer,
#: a :class:`Pending` (the answer comes later), or a list of those.
Reply = Union[None, bytes, bytearray, memoryview, str, Producer, "Pending", list[Any], tuple[Any, ...]]


class CommandError(Exception):
    """Raise from a handler to send a protocol error reply with this message."""


class Pending:
    """A reply that comes later; the connection handles no further input until it is resolved."""

    __slots__ = ("_protocol", "_timer", "done")

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol
        self.done = False
        self._timer: Timer | None = None

    def resolve(self, reply: Reply = None) -> None:
        """Send *reply* and let the connection go on; later calls do nothing."""
        if self.done:
            return
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._protocol._pending_resolved(self, reply)

    def cancel(self) -> None:
        """Drop the pending reply without sending anything."""
        self.resolve(None)


class Protocol:
    """Per-connection protocol logic: framing rules, command handlers, replies.

    Class attributes to set: ``line_delimiter`` and ``line_ending`` (for the
    built-in command rule and for str replies), ``encoding`` (``None`` keeps
    arguments as bytes), ``initial_state``.
    """

    line_delimiter: ClassVar[bytes] = b"\n"
    line_ending: ClassVar[bytes] = b"\r\n"
    encoding: ClassVar[str | None] = "utf-8"
    initial_state: ClassVar[str] = "initial"
    #: Rule used at connect; "command" is the built-in line rule.
    initial_rule: ClassVar[str] = "command"
    #: Rules that continue a command begun under another one (Redis: the
    #: frames of a cut multibulk): while one is in force the ``line_timeout``
    #: clock keeps running, so a command trickled piece by piece is cut off.
    command_rules: ClassVar[frozenset[str]] = frozenset()

    _commands: ClassVar[dict[str, CommandSpec]] = {}
    _rules: ClassVar[dict[str, Rule]] = {}

    # The framework's per-connection state in slots: a subclass's own
    # attributes then fit the instance dict's compact (shared-key) form.
    __slots__ = (
        "__dict__",
        "_log",
        "_pending",
        "channel",
        "closing",
        "command_name",
        "id",
        "last_status",
        "listener",
        "peer",
        "rule",
        "service",
        "settings",
        "state",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        arg_type: type = bytes if cls.encoding is None else str
        commands: dict[str, CommandSpec] = {}
        rules: dict[str, Rule] = {"command": Rule("command", cls.line_delimiter)}
        # Walk the MRO from the base down so subclasses override parents.
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                declared = declaration_of(value)
                if declared is not None:
                    for name in declared.names:
                        commands[name] = CommandSpec.build(name, value, declared, arg_type)
                rule = rule_of(value)
                if rule is not None:
                    rules[rule.name] = rule
        cls._commands = commands
        cls._rules = rules

    def __init__(self, channel: ServiceChannel, service: Service) -> None:
        self._log: Any = None
        self.channel = channel
        self.service = service
        self.settings = service.settings
        self.id: int = channel.conn_id
        self.peer: tuple[str, int] | None = channel.peer
        #: The listener this connection arrived on (None when built by hand).
        self.listener: ListenerSpec | None = channel.listener
        self.state: str = self.initial_state
        self.rule: Rule = self._rules[self.initial_rule]
        self.closing = False
        self.command_name: str | None = None  # the command being handled, for hooks and logs
        #: "ok", or "error" when the last command line was answered by an error hook.
        self.last_status = "ok"
        self._pending: Pending | None = None

    @property
    def log(self) -> Any:
        """The connection's logger (bound to service, conn and peer when first used)."""
        return self._log or self.channel.logger

    @log.setter
    def log(self, value: Any) -> None:
        self._log = value

    # ------------------------------------------------------------------ hooks

    def on_connect(self) -> Reply:
        """Called when the connection opens; the return value is sent (a greeting)."""
        return None

    def on_close(self) -> None:
        """Called once when the connection has closed, for clean-up."""

    def on_idle_timeout(self) -> Reply:
        """Called after ``idle_timeout`` seconds of silence; the reply is sent, then the connection closed."""
        return None

    def partial_input(self) -> bool:
        """True while the protocol itself holds part of a line (a stream rule that splits lines)."""
        return False

    def idle_allowed(self) -> bool:
        """True while silence is expected (a subscriber, a blocked command): the idle timeout waits."""
        return self._pending is not None

    def on_shutdown(self) -> Reply:
        """Called when the server stops; the reply is sent, then the connection closed."""
        return None

    def on_unknown_command(self, name: str, args: list[Any]) -> Reply:
        """Reply to a command no handler declares."""
        return self.error(f"unknown command '{name}'")

    def on_arity_error(self, name: str, args: list[Any]) -> Reply:
        """Reply to a command with the wrong number of arguments."""
        return self.error(f"wrong number of arguments for '{name.lower()}' command")

    def on_bad_argument(self, name: str, param: str, value: Any, exc: Exception) -> Reply:
        """Reply to an argument that does not convert to its declared type."""
        return self.error(f"invalid value for '{param}' of '{name.lower()}'")

    def on_bad_state(self, name: str, args: list[Any]) -> Reply:
        """Reply to a command that is not valid in the current state."""
        return self.error(f"'{name.lower()}' is not allowed now")

    def on_command_error(self, name: str, exc: CommandError) -> Reply:
        """Reply to a handler that raised :class:`CommandError`."""
        return self.error(str(exc))

    def on_handler_error(self, name: str | None, exc: BaseException) -> Reply:
        """Reply to a handler that raised unexpectedly (the traceback is already logged)."""
        return self.error("internal error")

    def on_frame_too_long(self, rule: Rule, size: int) -> bool:
        """Called when a frame passes its limit; return True to skip it and go on, False to close."""
        if rule.is_command:
            self.send(self.error("line too long"))
            return True
        return False

    def on_empty_line(self) -> Reply:
        """Reply to an empty command line; the default ignores it."""
        return None

    def on_abuse(self, reason: str) -> Reply:
        """The last reply to a peer disconnected for abuse (too many bad lines); the default is an error."""
        return self.error(reason)

    def bad_line(self, line: bytes) -> Reply:
        """Answer an undecodable line: counted against ``bad_line_limit``, then :meth:`on_decode_error`."""
        self.last_status = "error"
        if not self.channel.note_bad_input("undecodable_line", size=len(line)):
            self.close()
            return self.on_abuse("too many invalid lines")
        return self.on_decode_error(line)

    def on_decode_error(self, line: bytes) -> Reply:
        """Reply to a command line that is not valid in ``encoding``."""
        return self.error(f"invalid {self.encoding} in command line")

    def error(self, message: str) -> Reply:
        """Format a protocol error reply (override per protocol)."""
        return f"ERR {message}"

    def reply_status(self, reply: Reply) -> str:
        """Classify a reply for the access log: "error" if an error hook answered (override per protocol)."""
        return self.last_status

    # ------------------------------------------------------------------ parsing and dispatch

    def parse_command(self, line: bytes) -> tuple[str, list[Any]] | None:
        """Split a command line into an upper-case name and arguments; None for an empty line."""
        if self.encoding is not None:
            try:
                text = line.decode(self.encoding)
            except UnicodeDecodeError:
                raise _DecodeError(line) from None
            parts: list[Any] = text.split()
        else:
            parts = line.split()
        if not parts:
            return None
        name = parts[0]
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        return name.upper(), parts[1:]

    def handle_line(self, line: bytes) -> Reply:
        """Dispatch one command line; the built-in command rule calls this."""
        # Reset first: an unknown, empty or undecodable line must not be
        # accounted under the previous command's name.
        self.command_name = None
        self.last_status = "ok"
        if line[-1:] == b"\r":
            line = line[:-1]
        try:
            parsed = self.parse_command(line)
        except _DecodeError:
            return self.bad_line(line)
        if parsed is None:
            return self.on_empty_line()
        return self.dispatch(parsed[0], parsed[1])

    def dispatch(self, name: str, args: list[Any]) -> Reply:
        """Run the handler for *name* with *args*, turning every failure into a protocol reply."""
        spec = self._commands.get(name)
        if spec is None:
            upper = name.upper()
            spec = self._commands.get(upper)
            if spec is None:
                self.last_status = "error"
                return self.on_unknown_command(upper, args)
            name = upper
        self.command_name = name
        if spec.states is not None and self.state not in spec.states:
            self.last_status = "error"
            return self.on_bad_state(name, args)
        if not spec.accepts(len(args)):
            self.last_status = "error"
            return self.on_arity_error(name, args)
        if not spec.plain:
            try:
                args = spec.convert(args)
            except BadArgumentError as bad:
                self.last_status = "error"
                return self.on_bad_argument(name, bad.param, bad.value, bad.exc)
        try:
            return spec.func(self, *args)  # type: ignore[no-any-return]
        except CommandError as exc:
            self.last_status = "error"
            return self.on_command_error(name, exc)
        except Exception as exc:
            self.last_status = "error"
            self.log.exception("handler_error", command=name)
            return self.on_handler_error(name, exc)

    @classmethod
    def commands(cls) -> dict[str, str]:
        """Map each declared command name to its help text."""
        return {name: spec.help for name, spec in sorted(cls._commands.items())}

    @classmethod
    def command_spec(cls, name: str) -> CommandSpec | None:
        """The spec of the command *name* (any case), or None if no handler declares it."""
        return cls._commands.get(name) or cls._commands.get(name.upper())

    @classmethod
    def command_specs(cls) -> dict[str, CommandSpec]:
        """Every declared command's spec, by upper-case name."""
        return dict(cls._commands)

    # ------------------------------------------------------------------ replies and control

    def send(self, reply: Reply) -> None:
        """Send a reply: bytes as they are, str as a line, producers, or a list of those."""
        self.channel.send_reply(reply)

    def later(self, timeout: float | None = None, on_timeout: Callable[[], Reply] | None = None) -> Pending:
        """Return a :class:`Pending` to answer later; optionally resolved by *on_timeout* after *timeout*."""
        pending = Pending(self)
        if timeout is not None:
            pending._timer = self.reactor.call_later(
                timeout, lambda: pending.resolve(on_timeout() if on_timeout is not None else None)
            )
        return pending

    def _pending_resolved(self, pending: Pending, reply: Reply) -> None:
        if self._pending is pending:
            self._pending = None
        if self.channel.closed:
            return
        self.channel.send_reply(reply)
        self.channel.resume_reading("pending")

    def switch(self, rule: str, count: int | None = None) -> None:
        """Frame further input by the named rule (*count* bytes for a counting rule)."""
        self.rule = self.channel.use_rule(rule, count)

    def set_state(self, state: str) -> None:
        """Enter a protocol state (commands declared with ``state=`` check it)."""
        self.state = state

    def close(self) -> None:
        """Close the connection once the current reply (if any) and all before it are sent."""
        self.closing = True
        self.channel.close_after_reply()

    def abort(self) -> None:
        """Close the connection now, dropping queued output."""
        self.closing = True
        self.channel.discard_buffers()
        self.channel.close()

    def defer(self, then: Callable[[], Reply]) -> None:
        """Handle no more input this turn; on a later one (once the peer has read its backlog) send then()'s reply.

        For a handler that runs many commands of one read: past
        :meth:`allowance` it keeps the rest and defers them, so one pipeline
        cannot hold the loop nor build more output than the limits allow.
        """
        self.channel.defer_reply(then)

    def allowance(self) -> tuple[int, int]:
        """(commands, bytes of replies) a handler may still run and build this turn before it should defer."""
        return self.channel.turn_allowance()

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the input not yet framed."""
        self.channel.unread(data)

    def pause(self, reason: str = "user") -> None:
        """Stop handling input until :meth:`resume` is called with the same reason."""
        self.channel.pause_reading(reason)

    def resume(self, reason: str = "user") -> None:
        """Handle input again after :meth:`pause`."""
        self.channel.resume_reading(reason)

    @property
    def context(self) -> ServiceContext:
        """What the running process gives this connection's service (reactor, data directory, hooks)."""
        return self.service.context

    # ------------------------------------------------------------------ TLS

    @property
    def tls_available(self) -> bool:
        """True when the process has a TLS certificate this connection could switch to."""
        return self.service.context.tls is not None

    @property
    def secure(self) -> bool:
        """True when this connection is encrypted (a TLS listener, or after :meth:`start_tls`)."""
        return self.channel.transport.secure

    def start_tls(self) -> None:
        """Switch this connection to TLS once the replies queued so far (the "go ahead") are sent.

        Input the peer sent after the command and that is already here is
        dropped, not handled: only what arrives inside TLS counts.
        """
        tls = self.service.context.tls
        if tls is None:
            raise RuntimeError("no TLS context: the process has no certificate")
        self.channel.tls_handshake_timeout = tls.settings.handshake_timeout
        self.channel.start_tls(tls.context)

    def peer_certificate(self) -> dict[str, Any] | None:
        """The client's verified certificate (when client certificates are asked for), or None."""
        return self.channel.transport.peer_certificate()

    @property
    def reactor(self) -> Reactor:
        """The reactor this connection runs on."""
        return self.service.reactor

    @property
    def out_buffered(self) -> int:
        """Bytes queued for this peer."""
        return self.channel.out_buffered


class _DecodeError(Exception):
    """A command line that does not decode."""
