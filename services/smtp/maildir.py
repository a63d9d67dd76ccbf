"""Durable Maildir delivery: write to tmp/, fsync, rename into new/, fsync the directory.

``mailbox.Maildir.add`` also goes through tmp/ and new/, but never calls
fsync, so a crash after it returns can lose the message or leave an empty
file.  We read Maildirs with :mod:`mailbox`, and create them and write messages
ourselves.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import IO

__all__ = ["MaildirWriter", "clean_tmp", "safe_folder_name"]

#: The Maildir convention: a file in tmp/ older than this was abandoned by its writer.
TMP_STALE_SECONDS = 36 * 3600
_OUR_NAME = re.compile(r"^\d+\.M\d+P(\d+)Q\d+\.(.+)$")

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
            # Not mailbox.Maildir(create=True): it races with another process (a worker of
            # `serve --workers`) making the same Maildir, seeing the root but not its subfolders.
            root.mkdir(mode=0o700, exist_ok=True)
            for sub in ("tmp", "new", "cur"):
                (root / sub).mkdir(mode=0o700, exist_ok=True)
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
        return self.deliver_all([(root, header)], body)[0]

    def deliver_all(self, copies: list[tuple[Path, bytes]], body: IO[bytes]) -> list[Path]:
        """Store one copy of *body* per ``(maildir, header)``, all of them or none; return their paths.

        Every copy is written and fsynced in tmp/ first; only then are they
        renamed into new/.  Any failure removes the copies already written or
        renamed, so a client told to retry never leaves a duplicate behind.
        """
        for root, _ in copies:
            self.ensure(root)
        written: list[tuple[Path, Path]] = []
        moved: list[Path] = []
        try:
            for root, header in copies:
                name = self.unique_name()
                tmp_path = root / "tmp" / name
                self._write(tmp_path, header, body)
                written.append((tmp_path, root / "new" / name))
            for tmp_path, new_path in written:
                os.rename(tmp_path, new_path)
                moved.append(new_path)
            if self._fsync:
                for root in dict.fromkeys(root for root, _ in copies):
                    _fsync_dir(root / "new")
        except BaseException:
            for tmp_path, new_path in written:
                for path in (tmp_path, new_path) if new_path in moved else (tmp_path,):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            raise
        return moved

    def _write(self, tmp_path: Path, header: bytes, body: IO[bytes]) -> None:
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with open(fd, "wb", closefd=True) as out:
                out.write(header)
                body.seek(0)
                shutil.copyfileobj(body, out, 1 << 20)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
        except BaseException:
            # Never leave a half-written file behind in tmp/.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
            raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_tmp(root: Path, hostname: str | None = None, now: float | None = None) -> list[Path]:
    """Delete what crashed writers left in *root*/tmp; return the removed paths.

    A file goes when it is older than 36 hours (the Maildir convention), or
    when its name says this host's process *P<pid>* wrote it and that process
    is gone: a crash of this server leaves exactly such files, and waiting 36
    hours for them would only hide the problem.  Files of live writers stay.
    """
    tmp = root / "tmp"
    if not tmp.is_dir():
        return []
    host = (hostname or socket.gethostname()).replace("/", r"\057").replace(":", r"\072")
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path in tmp.iterdir():
        try:
            stat = path.lstat()
        except FileNotFoundError:
            continue
        match = _OUR_NAME.match(path.name)
        orphan = bool(match and match.group(2) == host and not _pid_alive(int(match.group(1))))
        if orphan or now - stat.st_mtime > TMP_STALE_SECONDS:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                path.unlink()
                removed.append(path)
    return removed
