"""The service API: protocols with declared framing rules and decorated command handlers.

A :class:`Protocol` subclass is instantiated once per connection.  It declares
how its input is framed in each state (``@terminator``) and which commands it
answers (``@command``); it never touches a socket.  A :class:`Service` groups
protocols with their listeners, settings and shared state.  The channel that
joins a protocol to a socket is :class:`ServiceChannel`.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union, get_type_hints

import structlog
from linechat.asynchat import Producer, async_chat
from linechat.limits import LogThrottle
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from linechat.app import App
    from linechat.reactor import Reactor, Timer

__all__ = [
    "CommandError",
    "ListenerSpec",
    "Pending",
    "Protocol",
    "Reply",
    "Rule",
    "Service",
    "ServiceChannel",
    "ServiceSettings",
    "command",
    "terminator",
]

F = TypeVar("F", bound=Callable[..., Any])

#: What a handler may return: nothing, bytes, a str (sent as a line), a producer,
#: a :class:`Pending` (the answer comes later), or a list of those.
Reply = Union[None, bytes, bytearray, memoryview, str, Producer, "Pending", list[Any], tuple[Any, ...]]

_conn_ids = itertools.count(1)


class CommandError(Exception):
    """Raise from a handler to send a protocol error reply with this message."""


# --------------------------------------------------------------------------- settings


class ServiceSettings(BaseModel):
    """Settings every service has; a service subclasses this to add its own."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="serve this service")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(0, ge=0, le=65535, description="TCP port (0: any free port)")
    max_line: int = Field(4096, ge=16, description="longest command line in bytes")
    max_connections: int = Field(10000, ge=1, description="connections served at once")
    idle_timeout: float | None = Field(
        300.0, ge=0, description="seconds of silence before a peer is dropped (0 or null: never)"
    )
    line_timeout: float | None = Field(
        60.0, ge=0, description="seconds a peer may take to finish a command line it has begun (0 or null: no limit)"
    )
    bad_line_limit: int = Field(
        10, ge=0, description="over-long or undecodable lines, each within a minute of the last, before a disconnect"
    )
    tcp_keepalive: int = Field(
        300, ge=0, description="seconds of silence before TCP keepalive probes find a vanished peer (0: off)"
    )
    out_high_water: int = Field(1 << 20, ge=1024, description="queued output that pauses reading from a peer")
    out_low_water: int = Field(256 << 10, ge=0, description="queued output that resumes reading")
    out_hard_limit: int = Field(16 << 20, ge=1024, description="queued output that disconnects a slow peer")
    backlog: int = Field(512, ge=1, description="listen() backlog")
    send_buffer: int | None = Field(
        None, ge=4096, description="SO_SNDBUF of each accepted socket (None: the system's, which may be megabytes)"
    )


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Rule:
    """How input is framed in one state: by a delimiter, by a byte count, or not at all."""

    name: str
    delimiter: bytes | None = b"\n"
    count: bool = False  # the byte count is given when switching to the rule
    max_size: int | None = None  # None: the service's max_line for commands, unlimited otherwise
    stream: bool = False  # hand chunks to the handler as they arrive
    handler: str | None = None  # method name; None: command dispatch

    @property
    def is_command(self) -> bool:
        """True for the rule whose frames are command lines."""
        return self.handler is None


def terminator(
    name: str,
    delimiter: bytes | None = b"\n",
    *,
    count: bool = False,
    max_size: int | None = None,
    stream: bool = False,
) -> Callable[[F], F]:
    """Declare a framing rule whose frames go to the decorated method.

    The method receives ``(frame: bytes)``, or ``(chunk: bytes, end: bool)`` when
    *stream* is true.  ``count=True`` frames by a byte count given to
    :meth:`Protocol.switch`.
    """

    if delimiter is None and not count and not stream:
        raise TypeError(f"rule {name!r}: without a delimiter or a count, frames never end: use stream=True")
    if delimiter is not None and not delimiter:
        raise TypeError(f"rule {name!r}: the delimiter must not be empty")

    def decorate(func: F) -> F:
        func.__linechat_rule__ = Rule(  # type: ignore[attr-defined]
            name=name, delimiter=delimiter, count=count, max_size=max_size, stream=stream, handler=func.__name__
        )
        return func

    return decorate


@dataclass
class _CommandSpec:
    name: str
    func: Callable[..., Any]
    states: frozenset[str] | None
    min_args: int
    max_args: int | None  # None: variadic
    converters: list[Callable[[Any], Any] | None]
    rest_converter: Callable[[Any], Any] | None
    param_names: list[str]
    plain: bool  # no conversion needed at all
    help: str = ""

    def accepts(self, nargs: int) -> bool:
        """True if the handler takes *nargs* arguments."""
        return nargs >= self.min_args and (self.max_args is None or nargs <= self.max_args)


def command(
    *names: str,
    state: str | Collection[str] | None = None,
    min_args: int | None = None,
    max_args: int | None = -1,
    help: str | None = None,  # noqa: A002 - natural name for users
) -> Callable[[F], F]:
    """Declare the decorated method as the handler of one or more commands.

    Arity and argument types come from the signature (``bytes``, ``str``,
    ``int``, ``float``; ``*args`` for a variadic tail) unless *min_args* /
    *max_args* say otherwise.  *state* limits the command to protocol states.
    Names are case-insensitive; the method name is used when none is given.
    """

    def decorate(func: F) -> F:
        states: frozenset[str] | None
        if state is None:
            states = None
        elif isinstance(state, str):
            states = frozenset({state})
        else:
            states = frozenset(state)
        func.__linechat_command__ = {  # type: ignore[attr-defined]
            "names": [n.upper() for n in names] or [func.__name__.upper()],
            "states": states,
            "min_args": min_args,
            "max_args": max_args,
            "help": help if help is not None else (inspect.getdoc(func) or "").split("\n")[0],
        }
        return func

    return decorate


def _converter(annotation: Any, arg_type: type) -> Callable[[Any], Any] | None:
    """Return a function turning a raw argument into *annotation*, or None for as-is."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is arg_type:
        return None
    if annotation is bytes:
        return _to_bytes
    if annotation is str:
        return _to_str
    if annotation is int:
        return _to_int
    if annotation is float:
        return _to_float
    if callable(annotation):
        return annotation  # type: ignore[no-any-return]
    return None


def _to_bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _to_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii")
    return float(value)


def _build_spec(name: str, func: Callable[..., Any], meta: dict[str, Any], arg_type: type) -> _CommandSpec:
    sig = inspect.signature(func)
    try:
        hints = get_type_hints(func)
    except Exception:
        hints = {}
    params = list(sig.parameters.values())[1:]  # drop self
    converters: list[Callable[[Any], Any] | None] = []
    names: list[str] = []
    required = 0
    variadic = False
    rest: Callable[[Any], Any] | None = None
    for param in params:
        annotation = hints.get(param.name, param.annotation)
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            variadic = True
            rest = _converter(annotation, arg_type)
        elif param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            converters.append(_converter(annotation, arg_type))
            names.append(param.name)
            if param.default is inspect.Parameter.empty:
                required += 1
    min_args = meta["min_args"] if meta["min_args"] is not None else required
    max_args = meta["max_args"]
    if max_args == -1:
        max_args = None if variadic else len(converters)
    plain = rest is None and all(c is None for c in converters)
    return _CommandSpec(
        name=name,
        func=func,
        states=meta["states"],
        min_args=min_args,
        max_args=max_args,
        converters=converters,
        rest_converter=rest,
        param_names=names,
        plain=plain,
        help=meta["help"],
    )


# --------------------------------------------------------------------------- pending replies


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


# --------------------------------------------------------------------------- protocol


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

    _commands: ClassVar[dict[str, _CommandSpec]] = {}
    _rules: ClassVar[dict[str, Rule]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        arg_type: type = bytes if cls.encoding is None else str
        commands: dict[str, _CommandSpec] = {}
        rules: dict[str, Rule] = {"command": Rule("command", cls.line_delimiter)}
        # Walk the MRO from the base down so subclasses override parents.
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                meta = getattr(value, "__linechat_command__", None)
                if meta is not None:
                    for name in meta["names"]:
                        commands[name] = _build_spec(name, value, meta, arg_type)
                rule = getattr(value, "__linechat_rule__", None)
                if rule is not None:
                    rules[rule.name] = rule
        cls._commands = commands
        cls._rules = rules

    def __init__(self, channel: ServiceChannel, service: Service) -> None:
        self.channel = channel
        self.service = service
        self.settings = service.settings
        self.id: int = channel.conn_id
        self.peer: tuple[str, int] | None = channel.peer
        #: The listener this connection arrived on (None when built by hand).
        self.listener: ListenerSpec | None = channel.listener
        self.log: Any = channel.logger
        self.state: str = self.initial_state
        self.rule: Rule = self._rules[self.initial_rule]
        self.closing = False
        self.command_name: str | None = None  # the command being handled, for hooks and logs
        #: "ok", or "error" when the last command line was answered by an error hook.
        self.last_status = "ok"
        self._pending: Pending | None = None

    # ------------------------------------------------------------------ hooks

    def on_connect(self) -> Reply:
        """Called when the connection opens; the return value is sent (a greeting)."""
        return None

    def on_close(self) -> None:
        """Called once when the connection has closed, for clean-up."""

    def on_idle_timeout(self) -> Reply:
        """Called after ``idle_timeout`` seconds of silence; the reply is sent, then the connection closed."""
        return None

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
                args = self._convert(spec, args)
            except _BadArgumentError as bad:
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

    @staticmethod
    def _convert(spec: _CommandSpec, args: list[Any]) -> list[Any]:
        out: list[Any] = []
        converters = spec.converters
        for index, value in enumerate(args):
            if index < len(converters):
                conv = converters[index]
                param = spec.param_names[index]
            else:
                conv = spec.rest_converter
                param = "args"
            if conv is None:
                out.append(value)
                continue
            try:
                out.append(conv(value))
            except (ValueError, TypeError, UnicodeError, ArithmeticError) as exc:
                raise _BadArgumentError(param, value, exc) from None
        return out

    @classmethod
    def commands(cls) -> dict[str, str]:
        """Map each declared command name to its help text."""
        return {name: spec.help for name, spec in sorted(cls._commands.items())}

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
    def reactor(self) -> Reactor:
        """The reactor this connection runs on."""
        return self.service.reactor

    @property
    def out_buffered(self) -> int:
        """Bytes queued for this peer."""
        return self.channel.out_buffered


#: Bad lines further apart than this (seconds) do not add up.
_BAD_LINE_WINDOW = 60.0


class _Abuse:
    """A connection's record of bad input: made only when the first bad line arrives."""

    __slots__ = ("count", "last", "throttle")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.count = 0
        self.last = clock()
        self.throttle = LogThrottle(burst=3, interval=10.0, clock=clock)


class _DecodeError(Exception):
    """A command line that does not decode."""


class _BadArgumentError(Exception):
    def __init__(self, param: str, value: Any, exc: Exception) -> None:
        super().__init__(param)
        self.param = param
        self.value = value
        self.exc = exc


# --------------------------------------------------------------------------- the channel


class ServiceChannel(async_chat):
    """Joins one :class:`Protocol` instance to one socket: framing, dispatch, replies."""

    ac_in_buffer_size = 65536
    #: Frames per turn before the other connections get theirs (see async_chat).
    frame_budget = 1000

    def __init__(
        self,
        sock: Any,
        service: Service,
        protocol_cls: type[Protocol],
        map: dict[int, Any] | None = None,  # noqa: A002
        peer: tuple[str, int] | None = None,
        listener: ListenerSpec | None = None,
    ) -> None:
        settings = service.settings
        self.service = service
        self.listener = listener
        self.conn_id = next(_conn_ids)
        self.peer = peer
        self.max_line = settings.max_line
        self.idle_timeout = settings.idle_timeout or None
        self.line_timeout = settings.line_timeout or None
        self.out_high_water = settings.out_high_water
        # A low mark at or above the high mark would resume at once.
        self.out_low_water = min(settings.out_low_water, settings.out_high_water // 2)
        self.out_hard_limit = settings.out_hard_limit
        self.max_input_buffer = max(settings.max_line, self.ac_in_buffer_size) * 4
        self._chunks: list[bytes] = []
        self._on_frame: Callable[..., Any] = self._no_frame
        self._stream = False
        self._raw = False
        self._rule: Rule | None = None
        self._in_handler = 0
        self._close_wanted = False
        self.closed = False
        self._abuse: _Abuse | None = None  # made at the first bad line
        self.opened_at = time.monotonic()
        self._hooks = service.app.hooks if service.app is not None else None
        super().__init__(sock, map)
        peer_text = f"{peer[0]}:{peer[1]}" if peer else None
        self.logger = service.log.bind(conn=self.conn_id, peer=peer_text)
        self.protocol = protocol_cls(self, service)
        self._access = service.access_log or (self._hooks is not None and self._hooks.wants_commands)
        self.use_rule(protocol_cls.initial_rule)
        service.connection_made(self)
        if self.service.access_log:  # open and close are access-log events, not routine info
            self.logger.info("connection_opened")
        self._open()

    def _open(self) -> None:
        if self._hooks is not None:
            self._hooks.connection_opened(self.protocol)
        self._in_handler += 1
        try:
            greeting = self.protocol.on_connect()
        except Exception as exc:
            self.logger.exception("handler_error", command="<connect>")
            greeting = self.protocol.on_handler_error(None, exc)
        finally:
            self._in_handler -= 1
        self.send_reply(greeting)
        self._handled()

    # ------------------------------------------------------------------ framing

    def use_rule(self, name: str, count: int | None = None) -> Rule:
        """Switch the framing to the named rule of the protocol."""
        rule = self.protocol._rules[name]
        if rule.count:
            if count is None or count < 1:
                raise ValueError(f"rule {name!r} frames by a byte count: pass count= (at least 1)")
            if rule.max_size is not None and count > rule.max_size:
                return self._refuse_count(rule, count)
            self.set_terminator(count)
        else:
            self.set_terminator(rule.delimiter)
        if rule.is_command:
            self.max_frame_size = rule.max_size if rule.max_size is not None else self.max_line
            self._on_frame = self._command_frame
            self._stream = False
        else:
            self.max_frame_size = rule.max_size
            handler = getattr(self.protocol, rule.handler)  # type: ignore[arg-type]
            self._stream = rule.stream
            self._on_frame = handler
        # Every chunk read goes to the handler as it is: no framing pass needed
        # (unless a subclass computes terminators itself).
        self._raw = (
            rule.stream
            and rule.delimiter is None
            and not rule.count
            and rule.max_size is None
            and self._plain_get_terminator
        )
        self._chunks.clear()
        self._rule = rule
        return rule

    def _refuse_count(self, rule: Rule, count: int) -> Rule:
        """A counted frame over the rule's max_size: skip its bytes, or close."""
        if not self._keep_after_too_long(rule, count, rule.max_size):
            self.close_after_reply()
            return rule
        # Skip exactly `count` bytes without holding them, then read commands again.
        self.set_terminator(count)
        self.max_frame_size = None
        self._stream = True
        self._raw = False
        self._on_frame = self._skip_chunk
        self._chunks.clear()
        self._rule = rule
        return rule

    def frame_unfinished(self) -> bool:
        """True while part of a line, or of a command spanning several rules, is held."""
        rule = self._rule
        if rule is not None and rule.name in self.protocol.command_rules:
            return True
        return super().frame_unfinished()

    def defer_reply(self, then: Callable[[], Reply]) -> None:
        """Yield the turn; on a later one, send what *then* returns (see :meth:`Protocol.defer`)."""

        def resume() -> None:
            protocol = self.protocol
            self._in_handler += 1
            try:
                reply = then()
            except Exception as exc:
                self.logger.exception("handler_error", command=protocol.command_name)
                reply = protocol.on_handler_error(protocol.command_name, exc)
            finally:
                self._in_handler -= 1
            self.send_reply(reply)
            self._handled()

        self.yield_turn(resume)

    def _skip_chunk(self, chunk: bytes, end: bool) -> None:
        if end:
            self.protocol.rule = self.use_rule("command")

    def handle_read_event(self) -> None:
        """Readable: under a plain stream rule, read and hand the chunk to the rule in one step."""
        if not (
            self._raw
            and self._plain_recv
            and self.connected
            and self.terminator is None
            and self._ipos >= len(self._ibuf)
            and not self._pause_reasons
        ):
            super().handle_read_event()
            return
        try:
            data = self.socket.recv(self.ac_in_buffer_size)  # type: ignore[union-attr]
        except OSError as exc:
            self._recv_failed(exc)
            return
        if not data:
            self.handle_close()
            return
        if self._idle_timer is not None:
            self._last_input = self._reactor.time()  # type: ignore[union-attr]
        self._deliver_chunk(data)

    def feed(self, data: bytes) -> None:
        """Frame *data*; under a plain stream rule with nothing buffered, hand it straight to the rule."""
        if (
            self._raw
            and self.terminator is None
            and self._ipos >= len(self._ibuf)
            and not self._pause_reasons
            and not self._dispatching
            and not self._closed
        ):
            self._deliver_chunk(data)
        else:
            super().feed(data)

    def _deliver_chunk(self, data: bytes) -> None:
        # What the framing loop would do with this chunk (one stream frame,
        # then a flush) without its per-read bookkeeping: a pipelining protocol
        # such as Redis reads this way every time, so the saving is per request.
        protocol = self.protocol
        if protocol.closing:
            return
        self._dispatching += 1
        self._in_handler += 1
        try:
            reply = self._on_frame(data, False)
        except Exception as exc:
            self.logger.exception("handler_error", rule=self._rule.name if self._rule else None)
            reply = protocol.on_handler_error(protocol.command_name, exc)
        finally:
            self._in_handler -= 1
            self._dispatching -= 1
        if self._ipos < len(self._ibuf):
            # The handler put back a cut frame and chose a rule for it: queue
            # this reply, then let the framing loop go on (it flushes at its end).
            self._dispatching += 1
            try:
                self.send_reply(reply)
            finally:
                self._dispatching -= 1
            self._handled()
            self._process_input()
            return
        if reply.__class__ is bytes and reply and not self._ofifo and not self._closed:
            # Nothing queued before it: straight to the socket, as push would.
            self._send_direct(reply, len(reply))
            if self._closed:
                return
        elif reply is not None:
            self.send_reply(reply)
        if self._flush_wanted:  # the handler pushed output of its own
            self._flush_wanted = False
            self.initiate_send()
        if self._close_wanted:
            self._handled()

    def collect_incoming_data(self, data: bytes) -> None:
        """Keep a piece of the current frame (or stream it to the handler)."""
        if self._stream:
            self._deliver(self._on_frame, data, False)
        else:
            self._chunks.append(data)

    def found_terminator(self) -> None:
        """A frame is complete: hand it to the current rule's handler."""
        rule = self._rule
        if self._stream:
            self._deliver(self._on_frame, b"", True)
        else:
            chunks = self._chunks
            if not chunks:
                frame = b""
            elif len(chunks) == 1:
                frame = chunks[0]
                chunks.clear()
            else:
                frame = b"".join(chunks)
                chunks.clear()
            if self._on_frame is self._command_frame:
                self._command_frame(frame)
                return
            self._deliver(self._on_frame, frame)
        if rule is not None and rule.count and self._rule is rule and self.terminator == 0 and not self.closed:
            # A counted frame whose handler chose no next rule: read commands again
            # rather than let a zero count swallow everything that follows.
            self.protocol.rule = self.use_rule("command")

    def close_after_reply(self) -> None:
        """Close when the reply being built is queued (now, outside a handler)."""
        if self._in_handler:
            self._close_wanted = True
        else:
            self.close_when_done()

    def _handled(self) -> None:
        if self._close_wanted:
            self._close_wanted = False
            self.close_when_done()

    def _no_frame(self, frame: bytes) -> None:
        raise RuntimeError("no framing rule in force")

    def _deliver(self, handler: Callable[..., Any], *args: Any) -> None:
        protocol = self.protocol
        if protocol.closing:
            return
        self._in_handler += 1
        try:
            reply = handler(*args)
        except Exception as exc:
            self.logger.exception("handler_error", rule=self._rule.name if self._rule else None)
            reply = protocol.on_handler_error(protocol.command_name, exc)
        finally:
            self._in_handler -= 1
        self.send_reply(reply)
        self._handled()

    def _command_frame(self, line: bytes) -> None:
        protocol = self.protocol
        if protocol.closing:
            return
        started = time.perf_counter() if self._access else 0.0
        self._in_handler += 1
        try:
            reply = protocol.handle_line(line)
        except Exception as exc:
            self.logger.exception("handler_error", command=protocol.command_name)
            protocol.last_status = "error"
            reply = protocol.on_handler_error(protocol.command_name, exc)
        finally:
            self._in_handler -= 1
        size = self.send_reply(reply)
        if self._close_wanted:
            self._handled()
        if self._access:
            self._account(protocol.command_name, reply, size, started)

    def _account(self, name: str | None, reply: Reply, size: int, started: float) -> None:
        duration = time.perf_counter() - started
        status = self.protocol.reply_status(reply)
        if self.service.access_log:
            self.logger.info("command", command=name, status=status, bytes=size, duration_ms=round(duration * 1000, 3))
        if self._hooks is not None:
            self._hooks.command_handled(self.protocol, name, status, size, duration)

    def handle_frame_too_long(self, size: int) -> None:
        """Ask the protocol whether to skip the over-long frame or close."""
        rule = self._rule
        assert rule is not None
        self._chunks.clear()
        if not self._keep_after_too_long(rule, size, self.max_frame_size):
            self.close_when_done()

    def _keep_after_too_long(self, rule: Rule, size: int, limit: int | None) -> bool:
        """Log an over-long frame and ask the protocol whether to skip it (True) or close."""
        if not self.note_bad_input("frame_too_long", rule=rule.name, size=size, limit=limit):
            self.protocol.closing = True
            self.send_reply(self.protocol.on_abuse("too many over-long lines"))
            return False
        try:
            return bool(self.protocol.on_frame_too_long(rule, size))
        except Exception:
            self.logger.exception("handler_error", command="<frame_too_long>")
            return False

    def note_bad_input(self, event: str, **fields: Any) -> bool:
        """Count an over-long or undecodable line and log it (rate-limited); False once past ``bad_line_limit``."""
        reactor = self._reactor
        now = reactor.time() if reactor is not None else time.monotonic()
        abuse = self._abuse
        if abuse is None:
            abuse = self._abuse = _Abuse(reactor.time if reactor is not None else time.monotonic)
        # The first few go to the log as they come, then one line with a count
        # now and then: a peer cannot turn the log into a weapon.
        abuse.throttle.hit(self.logger.warning, event, **fields)
        if now - abuse.last > _BAD_LINE_WINDOW:
            abuse.count = 0
        abuse.last = now
        abuse.count += 1
        limit = self.service.settings.bad_line_limit
        if limit and abuse.count > limit:
            self.logger.warning("bad_input_disconnect", count=abuse.count, limit=limit)
            return False
        return True

    # ------------------------------------------------------------------ replies

    def send_reply(self, reply: Reply) -> int:
        """Queue a reply; return the number of bytes queued (producers count 0)."""
        if reply is None:
            return 0
        if isinstance(reply, bytes):
            if reply:
                self.push(reply)
            return len(reply)
        if isinstance(reply, str):
            data = reply.encode("utf-8") + self.protocol.line_ending
            self.push(data)
            return len(data)
        if isinstance(reply, Pending):
            if not reply.done:
                self.protocol._pending = reply
                self.pause_reading("pending")
            return 0
        if isinstance(reply, list | tuple):
            return self._send_many(reply)
        if isinstance(reply, bytearray | memoryview):
            self.push(reply)
            return reply.nbytes if isinstance(reply, memoryview) else len(reply)
        if hasattr(reply, "more"):
            self.push_with_producer(reply)
            return 0
        raise TypeError(f"cannot send a {type(reply).__name__} as a reply")

    def _send_many(self, replies: Iterable[Reply]) -> int:
        ending = self.protocol.line_ending
        items: list[bytes] = []
        total = 0
        for item in replies:
            if isinstance(item, str):
                item = item.encode("utf-8") + ending
            if isinstance(item, bytes):
                items.append(item)
                total += len(item)
                continue
            # Something richer: flush what we have, then send it on its own.
            if items:
                self.push_many(items)
                items = []
            total += self.send_reply(item)
        if items:
            self.push_many(items)
        return total

    # ------------------------------------------------------------------ lifecycle

    def handle_idle_timeout(self) -> None:
        """Let the protocol say goodbye, then close (unless it expects silence now)."""
        reactor = self._reactor
        if reactor is not None and self.idle_timeout and self.protocol.idle_allowed():
            self._last_input = reactor.time()
            self._idle_timer = reactor.call_later(self.idle_timeout, self._check_idle)
            return
        self.logger.info("idle_timeout", timeout=self.idle_timeout)
        self._farewell(self.protocol.on_idle_timeout)

    def handle_line_timeout(self) -> None:
        """A begun line was not finished in time (a slowloris peer): say goodbye as on idle, then close."""
        self.logger.info("line_timeout", timeout=self.line_timeout)
        self._farewell(self.protocol.on_idle_timeout)

    def handle_shutdown(self) -> None:
        """The server is stopping: let the protocol say goodbye, flush, close."""
        self._farewell(self.protocol.on_shutdown)

    def _farewell(self, hook: Callable[[], Reply]) -> None:
        try:
            reply = hook()
        except Exception:
            self.logger.exception("handler_error", command="<farewell>")
            reply = None
        self.protocol.closing = True
        self.send_reply(reply)
        self.close_when_done()

    def handle_slow_consumer(self, queued: int) -> None:
        """Disconnect a peer that does not read its replies."""
        self.logger.warning("slow_consumer_disconnected", queued=queued, limit=self.out_hard_limit)
        self.protocol.closing = True
        self.discard_buffers()
        self.close()

    def close(self) -> None:
        """Close the socket once, then run the protocol's clean-up."""
        if self.closed:
            return
        self.closed = True
        super().close()
        pending = self.protocol._pending if hasattr(self, "protocol") else None
        if pending is not None:
            pending.done = True
        if self.service.access_log:
            self.logger.info("connection_closed", duration_s=round(time.monotonic() - self.opened_at, 3))
        if hasattr(self, "protocol"):
            try:
                self.protocol.on_close()
            except Exception:
                self.logger.exception("handler_error", command="<close>")
            if self._hooks is not None:
                self._hooks.connection_closed(self.protocol)
        self.service._channel_closed(self)


# --------------------------------------------------------------------------- services


@dataclass
class ListenerSpec:
    """One listening socket of a service and the protocol its connections speak."""

    protocol: type[Protocol]
    host: str
    port: int
    name: str = "main"
    options: dict[str, Any] = field(default_factory=dict)


class Service:
    """A named service: settings, shared state, and the protocol(s) its listeners speak."""

    #: The name used in settings (``[services.<name>]``), logs and ``--only``.
    name: ClassVar[str] = ""
    #: The pydantic model of this service's settings.
    Settings: ClassVar[type[ServiceSettings]] = ServiceSettings
    #: The protocol of the single listener (override :meth:`listeners` for more).
    protocol: ClassVar[type[Protocol] | None] = None
    #: Shown by ``linechat services``.
    description: ClassVar[str] = ""

    def __init__(self, settings: ServiceSettings, app: App | None = None, reactor: Reactor | None = None) -> None:
        self.settings = settings
        self.app = app
        if reactor is None:
            if app is None:
                raise ValueError("a service needs an app or a reactor")
            reactor = app.reactor
        self.reactor: Reactor = reactor
        self.access_log = bool(app.settings.log.access) if app is not None else False
        self.log: Any = structlog.get_logger("linechat.service").bind(service=self.name)
        self.connections: set[ServiceChannel] = set()
        self.data_dir = app.data_dir / self.name if app is not None else None

    def listeners(self) -> list[ListenerSpec]:
        """Return the listening sockets to open; the default is one, from ``host``/``port``."""
        if self.protocol is None:
            raise NotImplementedError(f"{type(self).__name__} sets no protocol and overrides no listeners()")
        return [ListenerSpec(self.protocol, self.settings.host, self.settings.port)]

    def start(self) -> None:
        """Called after the listeners are bound (open storage, start timers)."""

    def stop(self) -> None:
        """Called when the server stops, after connections were asked to close."""

    def connection_made(self, channel: ServiceChannel) -> None:
        """Track a new connection."""
        self.connections.add(channel)

    def _channel_closed(self, channel: ServiceChannel) -> None:
        self.connections.discard(channel)
