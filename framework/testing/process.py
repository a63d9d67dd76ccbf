"""A real ``linechat serve`` child process whose JSON log is read as it is written."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ServeProcess"]


class ServeProcess:
    """``linechat serve ARGS --log-format json`` in a subprocess, its log events collected as they come.

    A test waits on what the server says it did (``wait_for``) rather than on the clock: the
    reader thread wakes every waiter on each new line, and *timeout* is only a safety net.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path | str | None = None,
        prefix: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        # python -m linechat: this interpreter's linechat, whether or not its venv is on PATH.
        command = [*prefix, sys.executable, "-m", "linechat", "serve", "--log-format", "json", *args]
        self.timeout = timeout
        self.proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="serve-log-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The process id of the server (of its supervisor with ``--workers``)."""
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                if line.startswith("{"):
                    # A line that is not one JSON event (a traceback's tail) is kept in lines only.
                    with contextlib.suppress(ValueError):
                        self.events.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, check: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """Wait until *check*, given the events so far, returns something true; return it."""
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                found = check(self.events)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"exit status {self.proc.poll()}:\n" + "".join(self.lines[-30:]))
                self._cond.wait(left)

    def wait_for_event(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the log holds *count* events called *name*; return those events."""

        def check(events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
            seen = [event for event in events if event.get("event") == name]
            return seen if len(seen) >= count else None

        return self.wait_for(check)  # type: ignore[no-any-return]

    def stop(self) -> int:
        """SIGTERM, then wait for the exit and the end of the log; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=self.timeout)
        self._reader.join(timeout=self.timeout)
        return code

    def kill(self) -> None:
        """SIGKILL: the server dies without a word, as in a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
