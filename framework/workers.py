"""Worker processes on one host: a supervisor that binds once, forks N workers and keeps them running.

The supervisor opens every listening socket itself and forks; each worker
inherits them and builds its own App and reactor after the fork, so no
event loop, thread or epoll descriptor is ever shared.  All workers wait on
the same accept queue: when one dies, connections queued in the kernel stay
there for the others (SO_REUSEPORT would give each worker its own queue and
drop what was queued on a dying one).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from linechat.app import App

__all__ = ["Supervisor", "bind_listeners", "resolve_workers", "single_process_services"]

_log = structlog.get_logger("linechat.workers")

#: First and longest wait before a dead worker is started again (seconds); doubled per quick death.
RESTART_MIN = 0.5
RESTART_MAX = 30.0
#: A worker that ran this long before dying starts the backoff again from RESTART_MIN.
STABLE_AFTER = 30.0
#: Beyond shutdown_grace, how long the supervisor waits for workers to finish before killing them.
KILL_MARGIN = 3.0
#: How long a replacement worker (SIGHUP) may take to start listening before the old one is kept.
READY_TIMEOUT = 60.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
_PR_SET_PDEATHSIG = 1


def resolve_workers(value: int | str) -> int:
    """The number of workers a ``workers`` setting means (``auto``: one per usable CPU)."""
    if value == "auto":
        try:
            return max(len(os.sched_getaffinity(0)), 1)
        except (AttributeError, OSError):
            return os.cpu_count() or 1
    return int(value)


def single_process_services(app: App) -> list[str]:
    """The services of *app* that cannot run in several processes at once."""
    return [name for name, service in app.services.items() if not service.can_share_processes()]


def bind_listeners(app: App) -> dict[tuple[str, str], socket.socket]:
    """Open every listener of *app*'s services (bound, listening), keyed by (service, listener name).

    Raises ListenError for the first that cannot listen, after closing the others.
    """
    from linechat.preflight import ListenError

    opened: dict[tuple[str, str], socket.socket] = {}
    try:
        for service in app.services.values():
            for spec in service.listeners():
                family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((spec.host, spec.port))
                    sock.listen(service.settings.backlog)
                except OSError as exc:
                    sock.close()
                    raise ListenError(service.name, spec, exc) from exc
                opened[(service.name, spec.name)] = sock
    except BaseException:
        for sock in opened.values():
            sock.close()
        raise
    return opened


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the supervisor goes (even by SIGKILL), so no worker is orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # it went before the request took effect
        os._exit(0)


@dataclass
class _Worker:
    slot: int
    pid: int
    ready_fd: int | None
    started: float
    ready: bool = False
    retiring: bool = False  # replaced (SIGHUP) or stopping: its exit is expected


@dataclass
class _Slot:
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Runs *count* workers, each ``target(slot, ready_fd)`` in a forked process (returns its exit status).

    The target writes a byte to *ready_fd* once it serves.  Signals: SIGTERM
    and SIGINT stop every worker gracefully (SIGTERM to each; SIGKILL after
    *grace* + KILL_MARGIN seconds); SIGHUP replaces the workers one at a
    time, each old one stopping only once its replacement serves.
    """

    count: int
    target: Callable[[int, int], int]
    grace: float = 5.0
    workers: dict[int, _Worker] = field(default_factory=dict)
    slots: dict[int, _Slot] = field(default_factory=dict)
    _stopping: bool = False
    _kill_at: float | None = None
    _ever_ready: bool = False
    _failed_start: bool = False
    _mask: Any = None

    def run(self) -> int:
        """Start the workers and supervise them until stopped; return the exit status."""
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            _log.info("supervisor_started", workers=self.count, pid=os.getpid())
            for slot in range(self.count):
                self.slots[slot] = _Slot()
                self._spawn(slot)
            while True:
                self._reap()
                self._check_ready()
                now = time.monotonic()
                if self._stopping:
                    if not self.workers:
                        break
                    if self._kill_at is not None and now >= self._kill_at:
                        for worker in self.workers.values():
                            _log.warning("worker_killed", worker=worker.slot, pid=worker.pid, reason="grace over")
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(worker.pid, signal.SIGKILL)
                        self._kill_at = None
                else:
                    for slot, state in self.slots.items():
                        if state.restart_at is not None and now >= state.restart_at:
                            state.restart_at = None
                            self._spawn(slot)
                info = signal.sigtimedwait(_SIGNALS, 0.2)
                if info is None or info.si_signo == signal.SIGCHLD:
                    continue
                if info.si_signo == signal.SIGHUP and not self._stopping:
                    self._replace_all()
                elif info.si_signo in (signal.SIGINT, signal.SIGTERM):
                    self._stop(signal.Signals(info.si_signo).name)
        finally:
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        _log.info("supervisor_stopped")
        return 1 if self._failed_start else 0

    def _spawn(self, slot: int) -> _Worker:
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(Exception):
            sys.stderr.flush()  # or the child would write the parent's buffered text again
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns here
            status = 1
            try:
                os.close(read_fd)
                for fd in [w.ready_fd for w in self.workers.values() if w.ready_fd is not None]:
                    os.close(fd)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
                _die_with_parent(parent)
                status = self.target(slot, write_fd)
            except BaseException:
                with contextlib.suppress(Exception):
                    _log.exception("worker_failed", worker=slot)
            finally:
                os._exit(status)
        os.close(write_fd)
        worker = _Worker(slot, pid, read_fd, time.monotonic())
        self.workers[pid] = worker
        _log.info("worker_started", worker=slot, pid=pid)
        return worker

    def _check_ready(self) -> None:
        waiting = {w.ready_fd: w for w in self.workers.values() if w.ready_fd is not None and not w.ready}
        if not waiting:
            return
        readable, _, _ = select.select(list(waiting), [], [], 0)
        for fd in readable:
            worker = waiting[fd]
            if os.read(fd, 1):
                worker.ready = True
                self._ever_ready = True
                _log.info("worker_ready", worker=worker.slot, pid=worker.pid)
            os.close(fd)
            worker.ready_fd = None

    def _reap(self) -> list[_Worker]:
        gone = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            gone.append(worker)
            if worker.ready_fd is not None:
                with contextlib.suppress(OSError):
                    if not worker.ready and os.read(worker.ready_fd, 1):
                        worker.ready = True  # became ready just before it went
                os.close(worker.ready_fd)
                worker.ready_fd = None
            how = _describe(status)
            if worker.retiring or self._stopping:
                _log.info("worker_exited", worker=worker.slot, pid=pid, status=how)
                continue
            if not worker.ready and not self._ever_ready:
                # The very first workers cannot start: a configuration problem, not bad luck.
                _log.error("worker_start_failed", worker=worker.slot, pid=pid, status=how)
                self._failed_start = True
                self._stop("worker start failed")
                continue
            if any(w.slot == worker.slot and not w.retiring for w in self.workers.values()):
                continue  # its replacement is already running
            state = self.slots[worker.slot]
            lived = time.monotonic() - worker.started
            state.failures = 1 if lived >= STABLE_AFTER else state.failures + 1
            delay = min(RESTART_MIN * 2 ** (state.failures - 1), RESTART_MAX)
            state.restart_at = time.monotonic() + delay
            _log.warning(
                "worker_died", worker=worker.slot, pid=pid, status=how, lived=round(lived, 3), restart_in=delay
            )
        return gone

    def _stop(self, reason: str) -> None:
        if self._stopping:
            # A second request: the workers are told again (their reactors then stop at once).
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
            return
        self._stopping = True
        _log.info("supervisor_stopping", reason=reason, grace=self.grace, workers=len(self.workers))
        for state in self.slots.values():
            state.restart_at = None
        for worker in self.workers.values():
            worker.retiring = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        self._kill_at = time.monotonic() + self.grace + KILL_MARGIN

    def _replace_all(self) -> None:
        """Replace each worker in turn: start the new one, wait until it serves, then stop the old one."""
        _log.info("workers_replacing", workers=len(self.workers))
        for old in sorted(self.workers.values(), key=lambda w: w.slot):
            if old.retiring or old.pid not in self.workers:
                continue
            new = self._spawn(old.slot)
            deadline = time.monotonic() + READY_TIMEOUT
            while not new.ready and new.pid in self.workers and time.monotonic() < deadline:
                if new.ready_fd is not None:
                    select.select([new.ready_fd], [], [], 0.2)
                self._check_ready()
                self._reap()
            if not new.ready:
                _log.error("worker_replace_failed", worker=old.slot, pid=new.pid, kept=old.pid)
                if new.pid in self.workers:
                    new.retiring = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(new.pid, signal.SIGKILL)
                return
            old.retiring = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(old.pid, signal.SIGTERM)
            _log.info("worker_replaced", worker=old.slot, old_pid=old.pid, pid=new.pid)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
