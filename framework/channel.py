"""The channel: joins one protocol instance to one socket.

:class:`ServiceChannel` is an ``async_chat``: it turns the protocol's rule in
force (``linechat.rules``) into terminators and limits for the framing, hands
each frame to the rule's handler or to command dispatch, and queues the
replies on the producer FIFO.  Every call into protocol code goes through one
place (:meth:`ServiceChannel._invoke`), which catches a failing handler and
makes a ``close()`` from inside a handler wait until its reply is queued.
It knows the service only for its settings, logger and context.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from linechat.asynchat import BIG_BUFFER, async_chat
from linechat.limits import LogThrottle
from linechat.protocol import Pending, Protocol, Reply
from linechat.rules import Rule

if TYPE_CHECKING:
    from linechat.service import ListenerSpec, Service

__all__ = ["ServiceChannel"]

_conn_ids = itertools.count(1)

#: Bad lines further apart than this (seconds) do not add up.
_BAD_LINE_WINDOW = 60.0


class _Abuse:
    """A connection's record of bad input: made only when the first bad line arrives."""

    __slots__ = ("count", "last", "throttle")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.count = 0
        self.last = clock()
        self.throttle = LogThrottle(burst=3, interval=10.0, clock=clock)


class ServiceChannel(async_chat):
    """Joins one :class:`Protocol` instance to one socket: framing, dispatch, replies."""

    ac_in_buffer_size = 65536
    #: Frames per turn before the other connections get theirs (see async_chat).
    frame_budget = 1000

    # An idle connection should cost little memory: its state lives in slots.
    __slots__ = (
        "_abuse",
        "_access",
        "_chunks",
        "_close_wanted",
        "_hooks",
        "_in_handler",
        "_logger",
        "_on_frame",
        "_raw",
        "_rule",
        "_stream",
        "closed",
        "conn_id",
        "idle_timeout",
        "line_timeout",
        "listener",
        "max_frame_size",
        "max_input_buffer",
        "max_line",
        "opened_at",
        "out_hard_limit",
        "out_high_water",
        "out_low_water",
        "out_soft_limit",
        "out_soft_seconds",
        "peer",
        "protocol",
        "service",
    )

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
        self.out_soft_limit = settings.out_soft_limit
        self.out_soft_seconds = settings.out_soft_seconds
        self.max_frame_size = None
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
        self._hooks = service.context.hooks
        super().__init__(sock, map)
        self._logger = None  # bound to the connection's context when first used
        if peer is not None:
            self.addr = peer  # the same pair: no second copy per connection
        self.protocol = protocol_cls(self, service)
        self._access = service.access_log or (self._hooks is not None and self._hooks.wants_commands)
        self.use_rule(protocol_cls.initial_rule)
        service.connection_made(self)
        if listener is not None and listener.tls:
            # Implicit TLS: the greeting below already goes out encrypted.
            tls = service.context.tls
            if tls is None:
                raise RuntimeError(f"listener {listener.name!r} wants TLS but the process has no TLS context")
            self.tls_handshake_timeout = tls.settings.handshake_timeout
            self.wrap_tls(tls.context)
        if self.service.access_log:  # open and close are access-log events, not routine info
            self.logger.info("connection_opened")
        self._open()

    @property  # type: ignore[override]
    def logger(self) -> Any:
        """The service's logger bound to this connection (``conn``, ``peer``), made when first used."""
        log = self._logger
        if log is None:
            peer = self.peer
            log = self._logger = self.service.log.bind(conn=self.conn_id, peer=f"{peer[0]}:{peer[1]}" if peer else None)
        return log

    @logger.setter
    def logger(self, value: Any) -> None:
        self._logger = value

    def _open(self) -> None:
        if self._hooks is not None:
            self._hooks.connection_opened(self.protocol)
        self._answer(self._invoke(self.protocol.on_connect, (), "<connect>"))

    # ------------------------------------------------------------------ calling the protocol

    def _invoke(self, handler: Callable[..., Reply], args: tuple[Any, ...], where: str) -> Reply:
        """Call a protocol handler and return its reply; an exception is logged and answered by the protocol.

        *where* names the handler in the log: ``"command"`` (the command line
        being handled), ``"rule"`` (the handler of the rule in force), or a
        label such as ``"<connect>"``.  While it runs, ``close()`` waits for
        its reply (see :meth:`close_after_reply` and :meth:`_answer`).
        """
        self._in_handler += 1
        try:
            return handler(*args)
        except Exception as exc:
            return self._handler_failed(exc, where)
        finally:
            self._in_handler -= 1

    def _handler_failed(self, exc: Exception, where: str) -> Reply:
        protocol = self.protocol
        if where == "command":
            self.logger.exception("handler_error", command=protocol.command_name)
            protocol.last_status = "error"
        elif where == "rule":
            self.logger.exception("handler_error", rule=self._rule.name if self._rule else None)
        else:
            self.logger.exception("handler_error", command=where)
            if where == "<farewell>":
                return None  # the connection is closing anyway: no error reply
            return protocol.on_handler_error(None, exc)
        return protocol.on_handler_error(protocol.command_name, exc)

    def _answer(self, reply: Reply) -> int:
        """Queue a handler's reply, then the close it asked for; return the bytes queued."""
        size = self.send_reply(reply)
        if self._close_wanted:
            self._handled()
        return size

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
        return super().frame_unfinished() or self.protocol.partial_input()

    def defer_reply(self, then: Callable[[], Reply]) -> None:
        """Yield the turn; on a later one, send what *then* returns (see :meth:`Protocol.defer`)."""
        self.yield_turn(lambda: self._answer(self._invoke(then, (), "command")))

    def _skip_chunk(self, chunk: bytes, end: bool) -> None:
        if end:
            self.protocol.rule = self.use_rule("command")

    def handle_read_event(self) -> None:
        """Readable: under a plain stream rule, read and hand the chunk to the rule in one step."""
        if not (
            self._raw
            and self._plain_recv
            and not self._layered
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
            and not self._ac_closed
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
        # _invoke, inlined: this runs once per read on the pipelining fast path.
        self._dispatching += 1
        self._in_handler += 1
        try:
            reply = self._on_frame(data, False)
        except Exception as exc:
            reply = self._handler_failed(exc, "rule")
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
        if reply.__class__ is bytes and reply and not self._ofifo and not self._ac_closed:
            # Nothing queued before it: straight to the socket, as push would.
            self._send_direct(reply, len(reply))
            if self._ac_closed:
                return
        elif reply is not None:
            self.send_reply(reply)
        if self._flush_wanted:  # the handler pushed output of its own
            self._flush_wanted = False
            self.initiate_send()
        if self._close_wanted:
            self._handled()
        if self.line_timeout and (self._line_since or protocol.partial_input()):
            # A protocol that splits lines itself (plain chat) holds part of one.
            self._watch_line()

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
                if len(frame) >= BIG_BUFFER:
                    # Its pieces are free now (give their heap pages back soon),
                    # the frame itself once handled.
                    self._big = True
                    if self._reactor is not None:
                        self._reactor.release_memory_soon()
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
        """Close now if a handler asked to while it ran (its reply is queued by now)."""
        if self._close_wanted:
            self._close_wanted = False
            self.close_when_done()

    def _no_frame(self, frame: bytes) -> None:
        raise RuntimeError("no framing rule in force")

    def _deliver(self, handler: Callable[..., Any], *args: Any) -> None:
        if not self.protocol.closing:
            self._answer(self._invoke(handler, args, "rule"))

    def _command_frame(self, line: bytes) -> None:
        protocol = self.protocol
        if protocol.closing:
            return
        if self._access:
            started = time.perf_counter()
            reply = self._invoke(protocol.handle_line, (line,), "command")
            self._account(protocol.command_name, reply, self._answer(reply), started)
        else:
            self._answer(self._invoke(protocol.handle_line, (line,), "command"))

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
        # now and then: a peer cannot turn the log into a weapon.  A service-wide
        # budget on top keeps one that reconnects again and again from doing so.
        abuse.throttle.hit(self._budgeted_warning, event, **fields)
        if now - abuse.last > _BAD_LINE_WINDOW:
            abuse.count = 0
        abuse.last = now
        abuse.count += 1
        limit = self.service.settings.bad_line_limit
        if limit and abuse.count > limit:
            if self.service.log_budget("bad_input_disconnect"):
                self.logger.warning("bad_input_disconnect", count=abuse.count, limit=limit)
            return False
        return True

    def _budgeted_warning(self, event: str, **fields: Any) -> None:
        if self.service.log_budget(event):
            self.logger.warning(event, **fields)

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
        reply = self._invoke(hook, (), "<farewell>")
        self.protocol.closing = True
        self._close_wanted = False  # closing below in any case
        self.send_reply(reply)
        self.close_when_done()

    def handle_slow_consumer(self, queued: int) -> None:
        """Disconnect a peer that does not read its replies."""
        self.logger.warning(
            "slow_consumer_disconnected",
            queued=queued,
            hard_limit=self.out_hard_limit,
            soft_limit=self.out_soft_limit,
            soft_seconds=self.out_soft_seconds,
        )
        if self._hooks is not None:
            self._hooks.slow_consumer(self.protocol, queued)
        self.protocol.closing = True
        self.discard_buffers()
        self.close()

    def close(self) -> None:
        """Close the socket once, then run the protocol's clean-up."""
        if self.closed:
            return
        self.closed = True
        if self._hooks is not None and hasattr(self, "protocol"):
            self._hooks.connection_closing(self.protocol)
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
