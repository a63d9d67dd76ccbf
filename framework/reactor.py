"""One event loop for many services: selectors (epoll on Linux), timers, signals.

The reactor owns an asyncore-compatible channel map.  Channels built on
:class:`linechat.asynchat.async_chat` report their own changes of interest,
so a turn of the loop costs O(ready channels).  Any other asyncore dispatcher
put in the same map still works: it is asked ``readable()``/``writable()``
each turn, as ``asyncore.loop`` would.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import select
import selectors
import signal
import socket
import threading
import time
from collections import deque

from linechat._compat import asyncore, lazy_logger
from linechat.limits import release_memory

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see asynchat.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["ChannelMap", "Reactor", "Timer"]

_log: Any = lazy_logger("linechat.reactor")

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE

_HAS_EPOLL = hasattr(select, "epoll")
if _HAS_EPOLL:
    _EPOLLIN = select.EPOLLIN
    _EPOLLOUT = select.EPOLLOUT

# asyncore lets these escape its handlers; so do we.
_ESCAPING = (asyncore.ExitNow, KeyboardInterrupt, SystemExit)


def _epoll_mask(events: int) -> int:
    return (_EPOLLIN if events & READ else 0) | (_EPOLLOUT if events & WRITE else 0)


class Timer:
    """A scheduled call; :meth:`cancel` stops it (and any repetition)."""

    __slots__ = ("_reactor", "args", "callback", "cancelled", "interval", "when")

    def __init__(
        self, reactor: Reactor, when: float, callback: Callable[..., Any], args: tuple[Any, ...], interval: float | None
    ) -> None:
        self._reactor = reactor
        self.when = when
        self.callback = callback
        self.args = args
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        """Stop this timer; safe to call more than once."""
        if not self.cancelled:
            self.cancelled = True
            self._reactor._timer_cancelled()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"at {self.when:.3f}"
        return f"<Timer {getattr(self.callback, '__qualname__', self.callback)} {state}>"


if TYPE_CHECKING:
    _MapBase = dict[int, Any]
else:
    _MapBase = dict


class ChannelMap(_MapBase):
    """An asyncore channel map that tells its reactor when dispatchers come and go."""

    def __init__(self, reactor: Reactor) -> None:
        super().__init__()
        self.reactor = reactor

    def __setitem__(self, fd: int, obj: Any) -> None:
        old = self.get(fd)
        if old is not None and old is not obj:
            self.reactor._forget(fd, old)
        super().__setitem__(fd, obj)
        self.reactor._adopt(fd, obj)

    def __delitem__(self, fd: int) -> None:
        obj = self[fd]
        super().__delitem__(fd)
        self.reactor._forget(fd, obj)

    def pop(self, fd: int, *default: Any) -> Any:  # type: ignore[override]
        """Remove *fd* and tell the reactor."""
        if fd in self:
            obj = self[fd]
            del self[fd]
            return obj
        if default:
            return default[0]
        raise KeyError(fd)


class _Waker:
    """The read end of a socket pair that other threads and signals write to."""

    def __init__(self) -> None:
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)

    def wake(self) -> None:
        # A full socket means a wake-up is pending anyway.
        with contextlib.suppress(BlockingIOError, OSError):
            self.wsock.send(b"\0")

    def handle_read_event(self) -> None:
        try:
            while self.rsock.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self.rsock.close()
        self.wsock.close()


class Reactor:
    """An event loop that drives asyncore dispatchers, timers and thread-safe callbacks."""

    #: Seconds after a large buffer was freed before free heap pages go back to the system.
    memory_release_delay = 1.0
    _memory_timer: Timer | None = None

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.time = clock
        self.map: ChannelMap = ChannelMap(self)
        # On Linux the loop talks to epoll itself: selectors would build a key
        # object list per turn only for the loop to walk it again.
        self._epoll: Any = select.epoll() if _HAS_EPOLL else None
        self._selector: selectors.BaseSelector | None = None if _HAS_EPOLL else selectors.DefaultSelector()
        self._handlers: dict[int, Any] = {}  # fd -> the object its events go to (epoll)
        self._registered: dict[int, int] = {}
        self._legacy: dict[int, Any] = {}  # dispatchers that are polled each turn
        self._timers: list[tuple[float, int, Timer]] = []
        self._cancelled = 0
        self._seq = itertools.count()
        self._ready: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._threadsafe: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._waker = _Waker()
        self._poll_register(self._waker.rsock.fileno(), READ, self._waker)
        self._running = False
        self._stopping = False
        self._stop_deadline: Timer | None = None
        self._thread_id: int | None = None
        #: Called (without arguments) when a graceful stop begins.
        self.stop_callbacks: list[Callable[[], Any]] = []
        #: Other signals the loop answers while it runs (SIGHUP: reload certificates), called on its thread.
        self.signal_callbacks: dict[int, Callable[[], Any]] = {}
        self.log = _log

    # ------------------------------------------------------------------ channel map

    def _adopt(self, fd: int, obj: Any) -> None:
        attach = getattr(obj, "_reactor_attach", None)
        if attach is not None:
            attach(self)  # the channel reports its interest itself
        else:
            self._legacy[fd] = obj

    def _forget(self, fd: int, obj: Any) -> None:
        self._legacy.pop(fd, None)
        if fd in self._registered:
            del self._registered[fd]
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._poll_unregister(fd)
        detach = getattr(obj, "_reactor_detach", None)
        if detach is not None:
            detach()

    def set_interest(self, obj: Any, events: int) -> None:
        """Register (or change, or drop) what the reactor watches *obj*'s socket for."""
        fd = obj._fileno
        if fd is None:
            return
        old = self._registered.get(fd, 0)
        if events == old:
            return
        if not events:
            del self._registered[fd]
            self._poll_unregister(fd)
        elif old:
            self._registered[fd] = events
            if self._epoll is not None:
                self._handlers[fd] = obj
                self._epoll.modify(fd, _epoll_mask(events))
            else:
                self._selector.modify(fd, events, obj)  # type: ignore[union-attr]
        else:
            self._registered[fd] = events
            self._poll_register(fd, events, obj)

    def _poll_register(self, fd: int, events: int, obj: Any) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, _epoll_mask(events))
            self._handlers[fd] = obj
        else:
            self._selector.register(fd, events, obj)  # type: ignore[union-attr]

    def _poll_unregister(self, fd: int) -> None:
        if self._epoll is not None:
            self._handlers.pop(fd, None)
            self._epoll.unregister(fd)
        else:
            self._selector.unregister(fd)  # type: ignore[union-attr]

    def _poll_legacy(self) -> None:
        legacy = self._legacy
        for fd, obj in list(legacy.items()):
            if fd not in legacy:
                continue  # closed by another dispatcher's readable()/writable()
            try:
                events = 0
                if obj.readable():
                    events |= READ
                if obj.writable() and not obj.accepting:
                    events |= WRITE
                self.set_interest(obj, events)
            except _ESCAPING:
                raise
            except Exception:
                self._handle_error(obj)

    def install(self) -> None:
        """Make this reactor's map the default one for dispatchers created without a map."""
        asyncore.socket_map = self.map

    # ------------------------------------------------------------------ timers and callbacks

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` once, *delay* seconds from now."""
        timer = Timer(self, self.time() + max(delay, 0.0), callback, args, None)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` once, at the reactor time *when*."""
        return self.call_later(when - self.time(), callback, *args)

    def call_every(self, interval: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` every *interval* seconds until the timer is cancelled."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        timer = Timer(self, self.time() + interval, callback, args, interval)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def release_memory_soon(self) -> None:
        """A large buffer was freed: give free heap pages back to the system shortly after the last such call."""
        # Re-armed on every call: a trim that fires while the next large frame is
        # still arriving cannot give back that frame's pieces, and nothing would
        # trim again once they are freed.
        if self._memory_timer is not None:
            self._memory_timer.cancel()
        self._memory_timer = self.call_later(self.memory_release_delay, self._release_memory)

    def _release_memory(self) -> None:
        self._memory_timer = None
        release_memory()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` on the next turn (from the loop's own thread)."""
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` on the loop's thread; safe from any thread or signal handler."""
        self._threadsafe.append((callback, args))
        self._waker.wake()

    def _timer_cancelled(self) -> None:
        self._cancelled += 1
        # Cancelled entries are skipped lazily; rebuild only when they dominate,
        # so cancel stays O(1) and the heap stays bounded.
        if self._cancelled > 256 and self._cancelled * 2 > len(self._timers):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def _run_timers(self) -> None:
        timers = self._timers
        now = self.time()
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                self._cancelled = max(self._cancelled - 1, 0)
                continue
            if timer.interval is not None:
                # Keep the cadence; after a stall skip the missed ticks rather
                # than firing again in this same turn.
                timer.when += timer.interval
                if timer.when <= now:
                    timer.when = now + timer.interval
                heapq.heappush(timers, (timer.when, next(self._seq), timer))
            else:
                timer.cancelled = True
            self._call(timer.callback, timer.args)

    def _run_ready(self) -> None:
        threadsafe = self._threadsafe
        while threadsafe:
            self._ready.append(threadsafe.popleft())
        ready = self._ready
        for _ in range(len(ready)):
            callback, args = ready.popleft()
            self._call(callback, args)

    def _call(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except _ESCAPING:
            raise
        except Exception:
            self.log.exception("callback_error", callback=getattr(callback, "__qualname__", repr(callback)))

    def next_timer_delay(self) -> float | None:
        """Seconds until the next live timer, or None when there is none."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
            self._cancelled = max(self._cancelled - 1, 0)
        if not timers:
            return None
        return max(timers[0][0] - self.time(), 0.0)

    # ------------------------------------------------------------------ the loop

    def run_once(self, timeout: float | None = None) -> None:
        """Wait at most *timeout* seconds for events, then handle events, timers and callbacks."""
        if self._legacy:
            self._poll_legacy()
        if self._ready or self._threadsafe:
            timeout = 0.0
        else:
            delay = self.next_timer_delay()
            if delay is not None and (timeout is None or delay < timeout):
                timeout = delay
        channels = self.map
        if self._epoll is not None:
            if timeout is None:
                timeout = -1
            elif timeout > 0:
                # epoll counts whole milliseconds: round up, or a timer due in
                # 0.4 ms would spin through zero-timeout polls until it is due.
                timeout = math.ceil(timeout * 1e3) * 1e-3
            handlers = self._handlers
            # Take each fd's object now: a handler may close a socket and an
            # accept reuse its number in this same turn, and the old socket's
            # events must not reach the new channel.
            for obj, fd, flags in [(handlers.get(fd), fd, flags) for fd, flags in self._epoll.poll(timeout)]:
                if obj is None:
                    continue
                if obj is self._waker:
                    obj.handle_read_event()
                    continue
                current: Any = channels.get(fd)
                if current is not obj:
                    continue  # closed (or replaced) by an earlier handler in this turn
                if flags == _EPOLLIN:  # the common case, without _dispatch's call
                    try:
                        obj.handle_read_event()
                    except _ESCAPING:
                        raise
                    except Exception:
                        self._handle_error(obj)
                    continue
                # As selectors reports them: an error or hang-up wakes both
                # directions, limited to what the channel asked for.
                mask = 0
                if flags & ~_EPOLLOUT:
                    mask |= READ
                if flags & ~_EPOLLIN:
                    mask |= WRITE
                self._dispatch(obj, mask & self._registered.get(fd, 0))
        else:
            for key, mask in self._selector.select(timeout):  # type: ignore[union-attr]
                obj = key.data
                if obj is self._waker:
                    obj.handle_read_event()
                    continue
                if channels.get(key.fd) is not obj:
                    continue  # closed (or replaced) by an earlier handler in this turn
                self._dispatch(obj, mask)
        if self._timers:
            self._run_timers()
        if self._ready or self._threadsafe:
            self._run_ready()

    @classmethod
    def _dispatch(cls, obj: Any, mask: int) -> None:
        try:
            if mask & READ:
                obj.handle_read_event()
            # The read handler may have closed the channel: then no write.
            if mask & WRITE and obj.socket is not None and obj._fileno is not None:
                obj.handle_write_event()
        except _ESCAPING:
            raise
        except Exception:
            cls._handle_error(obj)

    @staticmethod
    def _handle_error(obj: Any) -> None:
        """Let *obj* handle the exception being handled; if that fails too, log and close it."""
        try:
            obj.handle_error()
        except _ESCAPING:
            raise
        except Exception:
            _log.exception("handle_error_failed", channel=repr(obj))
            try:
                obj.close()
            except Exception:
                _log.exception("close_failed", channel=repr(obj))

    def run(self, *, handle_signals: bool = True, grace: float = 5.0) -> None:
        """Run until :meth:`stop` (or SIGINT/SIGTERM when *handle_signals*) and shut down."""
        self._running = True
        self._thread_id = threading.get_ident()
        previous: dict[int, Any] = {}
        previous_wakeup: int | None = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            # Python runs a signal's handler between bytecodes; a signal that lands after the last
            # check and before epoll_wait() (or on another thread) would leave the loop asleep with
            # its handler not yet run. The C-level handler writes to the waker, which wakes it.
            previous_wakeup = signal.set_wakeup_fd(self._waker.wsock.fileno(), warn_on_full_buffer=False)
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal(grace))
            for other, callback in self.signal_callbacks.items():
                previous[other] = signal.signal(other, self._on_other_signal(callback))
        try:
            while self._running:
                self.run_once(None if not self._stopping else 0.1)
                if self._stopping and not self.map:
                    break
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            if previous_wakeup is not None:
                signal.set_wakeup_fd(previous_wakeup)
            if self._stop_deadline is not None:
                self._stop_deadline.cancel()
                self._stop_deadline = None
            self._running = False
            self._thread_id = None

    def _on_signal(self, grace: float) -> Callable[[int, Any], None]:
        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stopping:
                # A second signal while draining: stop now.
                self.call_soon_threadsafe(self._force_stop, name)
            else:
                self.call_soon_threadsafe(self._log_and_stop, name, grace)

        return handler

    def _on_other_signal(self, callback: Callable[[], Any]) -> Callable[[int, Any], None]:
        def handler(signum: int, frame: Any) -> None:
            self.call_soon_threadsafe(callback)

        return handler

    def _log_and_stop(self, signame: str, grace: float) -> None:
        self.log.info("signal_received", signal=signame, grace=grace)
        self.stop(grace)

    def _force_stop(self, reason: str) -> None:
        self.log.warning("forced_stop", reason=reason)
        self.close_all()
        self._running = False

    def stop(self, grace: float = 5.0) -> None:
        """Stop gracefully: close listeners, let channels flush for up to *grace* seconds, then close all."""
        if self._stopping:
            return
        self._stopping = True
        for callback in self.stop_callbacks:
            self._call(callback, ())
        for obj in list(self.map.values()):
            if getattr(obj, "accepting", False):
                self._safe_close(obj)
        for obj in list(self.map.values()):
            shutdown = getattr(obj, "handle_shutdown", None)
            if shutdown is None:
                self._safe_close(obj)
                continue
            try:
                shutdown()
            except Exception:
                self.log.exception("shutdown_error", channel=repr(obj))
                self._safe_close(obj)
        self._stop_deadline = self.call_later(grace, self._force_stop, "grace period over")
        self._waker.wake()

    def _safe_close(self, obj: Any) -> None:
        try:
            obj.close()
        except Exception:
            self.log.exception("close_failed", channel=repr(obj))
            self.map.pop(getattr(obj, "_fileno", -1), None)

    def close_all(self) -> None:
        """Close every dispatcher in the map now."""
        for obj in list(self.map.values()):
            self._safe_close(obj)
        self.map.clear()
        for fd in list(self._registered):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._poll_unregister(fd)
        self._registered.clear()
        self._legacy.clear()

    def close(self) -> None:
        """Release the reactor's own resources (call after :meth:`run` has returned)."""
        self.close_all()
        if self._epoll is not None:
            self._epoll.close()
        else:
            self._selector.close()  # type: ignore[union-attr]
        self._waker.close()

    @property
    def stopping(self) -> bool:
        """True once a graceful stop has begun."""
        return self._stopping

    @property
    def running(self) -> bool:
        """True while :meth:`run` is looping."""
        return self._running

    def wake(self) -> None:
        """Interrupt a blocking wait from another thread."""
        self._waker.wake()

    def __repr__(self) -> str:
        return f"<Reactor channels={len(self.map)} timers={len(self._timers)}>"
