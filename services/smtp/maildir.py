"""Durable Maildir delivery: write to tmp/, fsync, rename into new/, fsync the directory.

``mailbox.Maildir.add`` also goes through tmp/ and new/, but never calls
fsync, so a crash after it returns can lose the message or leave an empty
file.  We create and read Maildirs with :mod:`mailbox` and write messages
ourselves.
"""

from __future__ import annotations

import contextlib
import itertools
import mailbox
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import IO

__all__ = ["MaildirWriter", "safe_folder_name"]

_sequence = itertools.count(1)  # next() on a count is atomic under the GIL


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_folder_name(recipient: str) -> str:
    """Turn a recipient address into one safe directory name (lower-cased)."""
    name = recipient.strip().lower().replace("/", "_").replace("\0", "_").replace("\\", "_")
    if not name or name.startswith("."):
        name = "_" + name
    return name


class MaildirWriter:
    """Writes messages into Maildirs durably; safe to use from several threads."""

    def __init__(self, hostname: str | None = None, fsync: bool = True) -> None:
        host = hostname or socket.gethostname()
        # The Maildir specification reserves "/" and ":" in the host part.
        self._host = host.replace("/", r"\057").replace(":", r"\072")
        self._fsync = fsync
        self._ready: set[Path] = set()
        self._lock = threading.Lock()

    def ensure(self, root: Path) -> None:
        """Create the Maildir at *root* (tmp/, new/, cur/) unless it exists; make that durable."""
        if root in self._ready:
            return
        with self._lock:
            if root in self._ready:
                return
            created = not (root / "new").is_dir()
            root.parent.mkdir(parents=True, exist_ok=True)
            mailbox.Maildir(root, create=True)
            if created and self._fsync:
                # A message renamed into a directory that a crash forgets is lost too.
                for sub in ("tmp", "new", "cur"):
                    _fsync_dir(root / sub)
                _fsync_dir(root)
                _fsync_dir(root.parent)
            self._ready.add(root)

    def unique_name(self) -> str:
        """A file name no other delivery (thread, process, host) picks."""
        now = time.time()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        return f"{seconds}.M{micros}P{os.getpid()}Q{next(_sequence)}.{self._host}"

    def deliver(self, root: Path, header: bytes, body: IO[bytes]) -> Path:
        """Store *header* then the rest of *body* as one new message; return its path in new/."""
        self.ensure(root)
        name = self.unique_name()
        tmp_path = root / "tmp" / name
        new_path = root / "new" / name
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with open(fd, "wb", closefd=True) as out:
                out.write(header)
                body.seek(0)
                shutil.copyfileobj(body, out, 1 << 20)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
            os.rename(tmp_path, new_path)
        except BaseException:
            # Never leave a half-written file behind in tmp/.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise
        if self._fsync:
            _fsync_dir(root / "new")
        return new_path
