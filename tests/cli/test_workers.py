"""``linechat serve --workers N``: real worker processes sharing listeners over loopback."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from linechat.testing import ServeProcess, connect_when_listening, free_port
from linechat.workers import resolve_workers

LINECHAT = str(Path(sys.executable).parent / "linechat")
TIMEOUT = 60.0  # a safety net only: every wait ends as soon as its event is seen

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see who serves")


class Server(ServeProcess):
    """A ``linechat serve --workers 2`` process serving echo and SMTP, its JSON log collected."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.echo_port, self.smtp_port = free_port(), free_port()
        super().__init__(
            [
                "--workers", "2", "--only", "echo,smtp",
                "--set", f"services.echo.port={self.echo_port}", "--set", f"services.smtp.port={self.smtp_port}",
                *args,
            ],
            cwd=cwd, timeout=TIMEOUT,
        )  # fmt: skip

    def ready_pids(self, count: int, exclude: set[int] = frozenset()) -> dict[int, int]:  # type: ignore[assignment]
        """Worker slot -> pid of the last *count* distinct ready workers not in *exclude*."""

        def check(events: list[dict[str, Any]]) -> dict[int, int] | None:
            ready = {e["pid"]: e["worker"] for e in events if e["event"] == "worker_ready" and e["pid"] not in exclude}
            alive = {pid: slot for pid, slot in ready.items() if not _exited(events, pid)}
            return {slot: pid for pid, slot in alive.items()} if len(alive) >= count else None

        return self.wait_for(check)  # type: ignore[no-any-return]


def _exited(events: list[dict[str, Any]], pid: int) -> bool:
    return any(e["event"] in ("worker_exited", "worker_died") and e.get("pid") == pid for e in events)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.kill()


def _holder(pids: list[int], server_port: int, client: socket.socket) -> int | None:
    """Which of *pids* holds the server end of *client*'s connection (from /proc/net/tcp and /proc/PID/fd)."""
    client_port = client.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def _children(pid: int) -> list[int]:
    """The live child processes of *pid* (the supervisor's workers)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _greeted_by(server: Server, pids: list[int] | Callable[[], list[int]]) -> int | None:
    """Open an echo connection, read the greeting and an echo; return which of *pids* holds it."""
    sock = connect_when_listening(server.echo_port, within=TIMEOUT)
    with sock, sock.makefile("rb") as reader:
        sock.settimeout(TIMEOUT)
        assert reader.readline() == b"+ linechat echo ready\r\n"
        sock.sendall(b"ECHO hello\r\n")
        assert reader.readline() == b"+ hello\r\n"
        return _holder(pids() if callable(pids) else pids, server.echo_port, sock)


def _served_only_by(server: Server, serving: int, stopped: int) -> int | None:
    """With *stopped* frozen (SIGSTOP), the connection can only be taken by *serving*: return its holder."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        return _greeted_by(server, [serving, stopped])
    finally:
        os.kill(stopped, signal.SIGCONT)


@pytest.mark.heavy
def test_both_workers_serve_a_killed_one_is_replaced_and_sigterm_stops_all(server: Server) -> None:
    pids = server.ready_pids(2)
    a, b = pids[0], pids[1]
    assert a != b and server.proc.pid not in (a, b)
    # Each worker takes connections on the shared listener: freeze one, the other answers.
    assert _served_only_by(server, serving=a, stopped=b) == a
    assert _served_only_by(server, serving=b, stopped=a) == b
    # Logs carry the worker id (bound in each worker's structlog context).
    listening = server.wait_for(lambda ev: [e for e in ev if e["event"] == "listening" and "worker" in e])
    assert {e["worker"] for e in listening} == {0, 1}

    os.kill(a, signal.SIGKILL)
    died = server.wait_for(lambda ev: [e for e in ev if e["event"] == "worker_died" and e["pid"] == a])
    assert died[0]["worker"] == 0 and "SIGKILL" in died[0]["status"] and died[0]["restart_in"] > 0
    # The other carries on meanwhile (the replacement may already be up and take it instead).
    workers = lambda: _children(server.proc.pid)  # noqa: E731 - listed once the connection is served
    assert _greeted_by(server, workers) not in (a, None)
    new = server.ready_pids(2, exclude={a})
    assert new[1] == b and new[0] not in (a, b)
    assert _served_only_by(server, serving=new[0], stopped=b) == new[0]

    assert server.stop() == 0
    events = [e["event"] for e in server.events]
    assert events[-1] == "supervisor_stopped"
    exited = {e["pid"] for e in server.events if e["event"] == "worker_exited"}
    assert exited == {new[0], b}
    for pid in (a, b, new[0]):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.heavy
def test_every_acknowledged_message_is_stored_when_workers_are_killed(server: Server, tmp_path: Path) -> None:
    pids = server.ready_pids(2)
    acked: list[int] = []
    failed: list[str] = []
    total = 120
    lock = threading.Lock()

    def send_all() -> None:
        for n in range(total):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", f"load-{n}"
            msg.set_content(f"message {n}\n" * 50)
            try:
                with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as client:
                    client.send_message(msg)  # returns only after the 250 to the end of DATA
            except (smtplib.SMTPException, OSError) as exc:
                with lock:
                    failed.append(f"{n}: {exc!r}")
                continue
            with lock:
                acked.append(n)

    sender = threading.Thread(target=send_all)
    sender.start()
    killed: set[int] = set()
    try:
        for slot, after in ((0, 20), (1, 50)):
            deadline = time.monotonic() + TIMEOUT
            while len(acked) < after and sender.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(pids[slot], signal.SIGKILL)
            killed.add(pids[slot])
            pids = server.ready_pids(2, exclude=killed)
    finally:
        sender.join(timeout=TIMEOUT * 3)
    assert not sender.is_alive()
    assert server.stop() == 0
    maildir = tmp_path / "data" / "smtp" / "maildir"
    stored = set()
    for folder in ("new", "cur"):
        for path in (maildir / folder).iterdir():
            for line in path.read_bytes().splitlines():
                if line.startswith(b"Subject: load-"):
                    stored.add(int(line.split(b"-")[1]))
    assert acked, failed
    missing = sorted(set(acked) - stored)
    assert not missing, f"acknowledged but not stored: {missing}"
    assert max(acked) > 50  # the service kept taking mail after both kills
    assert len(acked) + len(failed) == total


@pytest.mark.heavy
def test_sighup_replaces_each_worker_without_refusing_connections(server: Server) -> None:
    old = server.ready_pids(2)
    refused: list[str] = []
    answered = 0
    done = threading.Event()

    def keep_connecting() -> None:
        nonlocal answered
        while not done.is_set():
            try:
                with socket.create_connection(("127.0.0.1", server.echo_port), timeout=TIMEOUT) as sock:
                    sock.settimeout(TIMEOUT)
                    greeting = sock.makefile("rb").readline()
                if greeting == b"+ linechat echo ready\r\n":
                    answered += 1
                elif greeting:
                    refused.append(repr(greeting))
                # An empty read is a connection a stopping worker closed after taking it: that
                # one was accepted, not refused (the graceful stop closes idle sessions).
            except OSError as exc:
                refused.append(repr(exc))

    client = threading.Thread(target=keep_connecting)
    client.start()
    try:
        server.proc.send_signal(signal.SIGHUP)
        replaced = server.wait_for(lambda ev: len([e for e in ev if e["event"] == "worker_replaced"]) >= 2 and ev)
        new = server.ready_pids(2, exclude=set(old.values()))
    finally:
        done.set()
        client.join(timeout=TIMEOUT)
    assert not refused, refused
    assert answered > 0
    assert set(new.values()).isdisjoint(old.values())
    olds = {e["old_pid"] for e in replaced if e["event"] == "worker_replaced"}
    assert olds == set(old.values())
    # worker_replaced is logged when the old worker is told to stop, not once it has: until it
    # exits it may still take a connection (and then close it in its graceful stop).
    server.wait_for(lambda ev: all(_exited(ev, pid) for pid in old.values()))
    assert _greeted_by(server, list(new.values())) in new.values()
    assert server.stop() == 0


def test_services_that_cannot_share_are_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [LINECHAT, "serve", "--workers", "2", "--only", "echo,redis", "--set", f"services.echo.port={free_port()}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "redis cannot run in several processes" in lines[0] and "--only echo" in lines[0]
    assert "echo cannot" not in lines[0]


def test_workers_setting_is_checked(tmp_path: Path) -> None:
    result = subprocess.run(
        [LINECHAT, "serve", "--workers", "0", "--only", "echo"], cwd=tmp_path, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2 and "workers" in result.stderr and "Traceback" not in result.stderr
    shown = subprocess.run(
        [LINECHAT, "config", "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "LINECHAT_WORKERS": "auto"},
    )  # fmt: skip
    assert json.loads(shown.stdout)["workers"] == "auto"


def test_auto_means_one_worker_per_usable_cpu() -> None:
    assert resolve_workers("auto") == len(os.sched_getaffinity(0))
    assert resolve_workers(3) == 3
