"""linechat.reactor: timers, thread-safe callbacks, mixed dispatchers, errors, stop and interest."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import linechat.reactor as reactor_module
import pytest
from linechat._compat import asyncore
from linechat.asynchat import async_chat
from linechat.reactor import Reactor

MAX_TURNS = 2000
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Stands in for a structlog logger; remembers (level, event, exception) per call."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, BaseException | None]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def log(event: str, **kw: Any) -> None:
            self.records.append((level, event, sys.exc_info()[1]))

        return log


class LineChannel(async_chat):
    """Answers every CRLF line with ``echo: <line>``; counts readable()/writable() calls."""

    def __init__(self, sock: socket.socket | None = None, map: dict[int, Any] | None = None) -> None:  # noqa: A002
        self.polls = 0
        super().__init__(sock, map)
        self.set_terminator(b"\r\n")
        self.parts: list[bytes] = []
        self.lines: list[bytes] = []
        self.logger = Recorder()

    def collect_incoming_data(self, data: bytes) -> None:
        self.parts.append(data)

    def found_terminator(self) -> None:
        line = b"".join(self.parts)
        self.parts.clear()
        self.lines.append(line)
        if line == b"boom":
            raise RuntimeError("handler failed")
        self.push(b"echo: " + line + b"\r\n")

    def readable(self) -> bool:
        self.polls += 1
        return super().readable()

    def writable(self) -> bool:
        self.polls += 1
        return super().writable()


class PlainEcho(asyncore.dispatcher):
    """An ordinary asyncore dispatcher: echoes whatever it reads, counts polls."""

    def __init__(self, sock: socket.socket, map: dict[int, Any]) -> None:  # noqa: A002
        self.polls = 0
        self.pending = b""
        super().__init__(sock, map)

    def readable(self) -> bool:
        self.polls += 1
        return True

    def writable(self) -> bool:
        self.polls += 1
        return bool(self.pending)

    def handle_read(self) -> None:
        data = self.recv(4096)
        if data == b"raise\n":
            raise ValueError("plain handler failed")
        self.pending += data

    def handle_write(self) -> None:
        sent = self.send(self.pending)
        self.pending = self.pending[sent:]

    def handle_error(self) -> None:
        self.close()


@pytest.fixture(params=["epoll", "selectors"])
def reactor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reactor]:
    """A reactor on Linux's epoll (used when present) and on the portable selectors fallback."""
    if request.param == "epoll" and not reactor_module._HAS_EPOLL:
        pytest.skip("no epoll on this platform")
    if request.param == "selectors":
        monkeypatch.setattr(reactor_module, "_HAS_EPOLL", False)
    r = Reactor()
    yield r
    r.close()


def run_until(reactor: Reactor, cond: Callable[[], bool]) -> None:
    for _ in range(MAX_TURNS):
        if cond():
            return
        reactor.run_once(0.05)
    assert cond(), "condition not reached"


def recv_line(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------- timers


def test_call_later_runs_in_time_order_and_fifo_for_ties() -> None:
    clock = FakeClock()
    r = Reactor(clock=clock)
    fired: list[str] = []
    r.call_later(0.3, fired.append, "c")
    r.call_later(0.1, fired.append, "a")
    r.call_later(0.2, fired.append, "b1")
    r.call_later(0.2, fired.append, "b2")
    r.call_at(clock.now + 0.15, fired.append, "at")
    r.run_once(0)
    assert fired == []
    clock.now += 0.2
    r.run_once(0)
    assert fired == ["a", "at", "b1", "b2"]
    clock.now += 1
    r.run_once(0)
    assert fired == ["a", "at", "b1", "b2", "c"]
    assert r.next_timer_delay() is None
    r.close()


def test_call_later_with_real_clock_fires() -> None:
    r = Reactor()
    fired: list[int] = []
    r.call_later(0.02, fired.append, 2)
    r.call_later(0.01, fired.append, 1)
    run_until(r, lambda: len(fired) == 2)
    assert fired == [1, 2]
    r.close()


def test_cancel_stops_a_timer_even_from_another_callback_in_the_same_turn() -> None:
    clock = FakeClock()
    r = Reactor(clock=clock)
    fired: list[str] = []
    victim = r.call_later(0.2, fired.append, "victim")
    r.call_later(0.1, victim.cancel)
    gone = r.call_later(0.1, fired.append, "cancelled early")
    gone.cancel()
    gone.cancel()  # twice is fine
    clock.now += 1
    r.run_once(0)
    assert fired == []
    assert r.next_timer_delay() is None
    r.close()


def test_many_cancelled_timers_do_not_pile_up() -> None:
    r = Reactor(clock=FakeClock())
    for _ in range(5000):
        r.call_later(10, lambda: None).cancel()
    assert len(r._timers) < 1000
    r.close()


def test_call_every_repeats_until_cancelled() -> None:
    clock = FakeClock()
    r = Reactor(clock=clock)
    ticks: list[float] = []
    timer = r.call_every(1.0, lambda: ticks.append(clock.now))
    for _ in range(3):
        clock.now += 1.0
        r.run_once(0)
    assert len(ticks) == 3
    # After a stall the missed ticks are skipped, not fired all at once.
    clock.now += 5.5
    r.run_once(0)
    assert len(ticks) == 4
    timer.cancel()
    clock.now += 10
    r.run_once(0)
    assert len(ticks) == 4
    with pytest.raises(ValueError):
        r.call_every(0, lambda: None)
    r.close()


def test_call_soon_runs_next_turn_and_errors_are_logged() -> None:
    r = Reactor(clock=FakeClock())
    r.log = Recorder()  # type: ignore[assignment]
    fired: list[str] = []

    def broken() -> None:
        raise KeyError("bad callback")

    r.call_soon(broken)
    r.call_soon(fired.append, "after")
    r.run_once(0)
    assert fired == ["after"]
    assert [(lvl, ev) for lvl, ev, _ in r.log.records] == [("exception", "callback_error")]  # type: ignore[attr-defined]
    r.close()


def test_call_soon_threadsafe_wakes_a_blocked_loop(reactor: Reactor) -> None:
    fired: list[str] = []
    guard_fired = threading.Event()

    def guard() -> None:  # only so that a broken wake-up fails instead of hanging
        if not fired:
            guard_fired.set()
            reactor.wake()

    watchdog = threading.Timer(30, guard)
    watchdog.start()
    poster = threading.Timer(0.05, reactor.call_soon_threadsafe, (fired.append, "from thread"))
    poster.start()
    reactor.run_once(None)  # no timers, no channels: only a wake-up returns
    watchdog.cancel()
    poster.join()
    assert fired == ["from thread"]
    assert not guard_fired.is_set()


# --------------------------------------------------------------------------- channels


def test_plain_dispatcher_and_async_chat_share_one_map(reactor: Reactor) -> None:
    a_local, a_peer = socket.socketpair()
    b_local, b_peer = socket.socketpair()
    plain = PlainEcho(a_local, reactor.map)
    chat = LineChannel(b_local, reactor.map)
    a_peer.sendall(b"raw bytes\n")
    b_peer.sendall(b"a line\r\n")
    a_peer.setblocking(False)
    b_peer.setblocking(False)
    got_a, got_b = bytearray(), bytearray()

    def drained() -> bool:
        for sock, buf in ((a_peer, got_a), (b_peer, got_b)):
            with contextlib.suppress(BlockingIOError):
                buf += sock.recv(4096)
        return bytes(got_a) == b"raw bytes\n" and bytes(got_b) == b"echo: a line\r\n"

    run_until(reactor, drained)
    assert plain.connected and chat.connected
    a_peer.close()
    b_peer.close()


def test_handler_exception_closes_only_that_channel_and_the_loop_goes_on(reactor: Reactor) -> None:
    pairs = [socket.socketpair() for _ in range(3)]
    fragile = LineChannel(pairs[0][0], reactor.map)
    sturdy = LineChannel(pairs[1][0], reactor.map)
    plain = PlainEcho(pairs[2][0], reactor.map)
    pairs[0][1].sendall(b"boom\r\n")
    pairs[2][1].sendall(b"raise\n")
    run_until(reactor, lambda: not fragile.connected and not plain.connected)
    assert [(lvl, ev) for lvl, ev, _ in fragile.logger.records] == [("exception", "channel_error")]
    assert isinstance(fragile.logger.records[0][2], RuntimeError)
    # The loop goes on, and the other channel still works.
    pairs[1][1].sendall(b"still here\r\n")
    ticked: list[bool] = []
    reactor.call_later(0.01, ticked.append, True)
    run_until(reactor, lambda: bool(ticked) and sturdy.lines == [b"still here"])
    assert recv_line(pairs[1][1]) == b"echo: still here\r\n"
    assert set(reactor.map.values()) == {sturdy}
    for _, peer in pairs:
        peer.close()


def test_channel_closed_by_an_earlier_handler_in_the_same_turn_is_not_dispatched(reactor: Reactor) -> None:
    calls: list[str] = []
    peers: list[socket.socket] = []
    channels: list[Rival] = []

    class Rival(LineChannel):
        """Closes every other rival when it gets to read first."""

        name = ""

        def handle_read(self) -> None:
            calls.append(self.name)
            for other in channels:
                if other is not self:
                    other.close()
            super().handle_read()

    for name in ("first", "second", "third"):
        local, peer = socket.socketpair()
        chan = Rival(local, reactor.map)
        chan.name = name
        channels.append(chan)
        peers.append(peer)
    for peer in peers:
        peer.sendall(b"x\r\n")
    reactor.run_once(5)  # all three are ready in this one turn
    reactor.run_once(0)
    assert len(calls) == 1, calls
    assert all(chan.logger.records == [] for chan in channels)
    for peer in peers:
        peer.close()


def test_events_of_a_closed_socket_do_not_reach_a_new_one_on_its_fd(reactor: Reactor) -> None:
    reads: list[str] = []
    keep: list[socket.socket] = []
    reused: list[bool] = []

    class Named(LineChannel):
        name = ""

        def handle_read(self) -> None:
            reads.append(self.name)
            if self.name == "closer":
                # Close the victim, then open a channel that takes its fd number.
                fd = victim._fileno
                victim.close()
                local, peer = socket.socketpair()
                keep.append(peer)
                reused.append(local.fileno() == fd)
                newcomer = Named(local, reactor.map)
                newcomer.name = "newcomer"
            super().handle_read()

    pairs = [socket.socketpair() for _ in range(2)]
    closer = Named(pairs[0][0], reactor.map)
    closer.name = "closer"
    victim = Named(pairs[1][0], reactor.map)
    victim.name = "victim"
    for _, peer in pairs:  # the closer's input first: it is first in the turn
        peer.sendall(b"x\r\n")
    reactor.run_once(5)  # both are ready in this one turn
    reactor.run_once(0)
    assert reads == ["closer"]
    assert reused == [True]  # the newcomer got the victim's fd number: the case under test
    for sock in keep + [peer for _, peer in pairs]:
        sock.close()


def test_idle_timeout_fires_via_timer(reactor: Reactor) -> None:
    local, peer = socket.socketpair()
    fired: list[float] = []

    class Idle(LineChannel):
        idle_timeout = 0.05

        def handle_idle_timeout(self) -> None:
            fired.append(reactor.time())
            super().handle_idle_timeout()

    chan = Idle(local, reactor.map)
    run_until(reactor, lambda: bool(fired))
    assert not chan.connected
    assert ("info", "idle_timeout", None) in chan.logger.records
    peer.settimeout(10)
    assert peer.recv(10) == b""  # the peer sees the close
    peer.close()


def test_idle_timeout_counts_from_the_last_input() -> None:
    clock = FakeClock()
    r = Reactor(clock=clock)
    local, peer = socket.socketpair()
    fired: list[bool] = []

    class Idle(LineChannel):
        idle_timeout = 10.0

        def handle_idle_timeout(self) -> None:
            fired.append(True)
            super().handle_idle_timeout()

    chan = Idle(local, r.map)
    clock.now += 8
    peer.sendall(b"keepalive\r\n")
    run_until(r, lambda: chan.lines == [b"keepalive"])
    clock.now += 8  # 16 s after connecting, 8 s after the last input
    r.run_once(0)
    assert not fired and chan.connected
    clock.now += 3
    r.run_once(0)
    assert fired and not chan.connected
    peer.close()
    r.close()


# --------------------------------------------------------------------------- stopping


def test_graceful_stop_closes_listeners_first_and_flushes_output() -> None:
    reactor = Reactor()
    order: list[str] = []
    queued_at_listener_close: list[int] = []

    class Listener(asyncore.dispatcher):
        def handle_accept(self) -> None:
            pair = self.accept()
            if pair is not None:
                pair[0].close()

        def close(self) -> None:
            order.append("listener")
            queued_at_listener_close.append(chan.out_buffered)
            super().close()

    class Talker(LineChannel):
        def close(self) -> None:
            if self.connected:
                order.append("channel")
            super().close()

    listener = Listener(map=reactor.map)
    listener.create_socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    assert listener.socket is not None
    port = listener.socket.getsockname()[1]
    local, peer = socket.socketpair()
    local.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    chan = Talker(local, reactor.map)
    payload = os.urandom(3_000_000)
    chan.push(payload)
    assert chan.out_buffered > 0  # the peer has not read yet
    runner = threading.Thread(target=reactor.run, kwargs={"handle_signals": False, "grace": 30.0})
    runner.start()
    reactor.call_soon_threadsafe(reactor.stop, 30.0)
    peer.settimeout(10)
    received = bytearray()
    while True:
        data = peer.recv(1 << 16)
        if not data:
            break
        received += data
    runner.join(10)
    assert not runner.is_alive()
    assert bytes(received) == payload
    assert order == ["listener", "channel"]
    assert queued_at_listener_close[0] > 0  # the listener went while output was still queued
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert not reactor.map
    peer.close()
    reactor.close()


def test_stop_forces_close_after_grace() -> None:
    reactor = Reactor()
    local, peer = socket.socketpair()
    local.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    chan = LineChannel(local, reactor.map)
    chan.push(b"z" * 3_000_000)  # the peer never reads: cannot flush
    reactor.call_soon(reactor.stop, 0.05)
    reactor.run(handle_signals=False)
    assert not chan.connected
    assert not reactor.map
    peer.close()
    reactor.close()


SIGTERM_SCRIPT = """
import socket, sys
from linechat.asynchat import async_chat
from linechat._compat import asyncore
from linechat.reactor import Reactor

class Echo(async_chat):
    def __init__(self, sock, map):
        super().__init__(sock, map)
        self.set_terminator(b"\\n")
        self.parts = []
    def collect_incoming_data(self, data):
        self.parts.append(data)
    def found_terminator(self):
        self.push(b"".join(self.parts) + b"\\n")
        self.parts.clear()

class Listener(asyncore.dispatcher):
    def __init__(self, reactor):
        super().__init__(map=reactor.map)
        self.reactor = reactor
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.bind(("127.0.0.1", 0))
        self.listen(5)
    def handle_accept(self):
        pair = self.accept()
        if pair is not None:
            Echo(pair[0], self.reactor.map)

reactor = Reactor()
listener = Listener(reactor)
print(listener.socket.getsockname()[1], flush=True)
reactor.run(grace=5.0)
reactor.close()
print("stopped", flush=True)
"""


def test_sigterm_makes_a_running_reactor_exit_zero(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(SIGTERM_SCRIPT))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"ping\n")
        assert recv_line(client) == b"ping\n"
        proc.send_signal(signal.SIGTERM)
        assert client.recv(100) == b""  # the open connection is closed on the way out
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert out.splitlines()[-1] == b"stopped"  # structlog prints to stdout by default
    client.close()


# --------------------------------------------------------------------------- interest


@pytest.fixture
def many_fds(fd_limit: Callable[[int], None]) -> None:
    """Allow the descriptors this test's 2048 connections (both ends) need."""
    fd_limit(4096)


def test_idle_channels_are_not_polled_but_plain_dispatchers_are(reactor: Reactor, many_fds: None) -> None:
    pairs = [socket.socketpair() for _ in range(1000)]
    channels = [LineChannel(local, reactor.map) for local, _ in pairs]
    plain_local, plain_peer = socket.socketpair()
    plain = PlainEcho(plain_local, reactor.map)
    for _ in range(3):
        reactor.run_once(0)
    for chan in channels:
        chan.polls = 0
    plain.polls = 0
    reactor.run_once(0)
    assert sum(chan.polls for chan in channels) == 0
    assert plain.polls >= 2  # readable() and writable() asked each turn
    # Event-driven does not mean deaf: one channel among the thousand answers.
    pairs[500][1].sendall(b"wake\r\n")
    run_until(reactor, lambda: channels[500].lines == [b"wake"])
    assert recv_line(pairs[500][1]) == b"echo: wake\r\n"
    assert sum(chan.polls for chan in channels) == 0
    for _, peer in pairs:
        peer.close()
    plain_peer.close()


OTHER_THREAD_SCRIPT = """
import signal, sys, threading
from linechat.reactor import Reactor

reactor = Reactor()
ready = threading.Event()

def bystander():
    # A thread that leaves SIGTERM unblocked: the kernel may hand the process's signal to it.
    ready.set()
    threading.Event().wait()

thread = threading.Thread(target=bystander, daemon=True)
thread.start()
ready.wait()

def deliver():
    # The C-level handler then runs on this thread: the main thread's epoll_wait() is not
    # interrupted, as when a signal lands just before the loop goes to sleep.
    signal.pthread_kill(thread.ident, signal.SIGTERM)

reactor.call_soon(deliver)  # from inside the loop: no timer or event is left to wake it
reactor.run(grace=5.0)
reactor.close()
print("stopped", flush=True)
"""


def test_a_signal_that_does_not_interrupt_the_wait_still_stops_the_loop(tmp_path: Path) -> None:
    script = tmp_path / "other_thread.py"
    script.write_text(OTHER_THREAD_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=30)  # a safety net: without a wake-up the loop sleeps for good
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"signal_received" in out and out.splitlines()[-1] == b"stopped"
