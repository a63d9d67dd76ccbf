"""Credentials shared by every service: hashed passwords, a users file, SASL PLAIN and LOGIN.

A users file has one ``name:hash`` line per user (``#`` starts a comment);
the hash comes from :func:`hash_password` (``linechat hash-password``) and
uses scrypt, so the file can be read by others without giving passwords
away.  The file is read again when it changes, so users can be added
without a restart.

:class:`Credentials` is what a service asks: ``mode`` is ``off`` (no
authentication offered), ``any`` (every name and password accepted: the
development sink, so clients configured with credentials just work) or
``users`` (checked against the file).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path
from typing import Literal

__all__ = [
    "Credentials",
    "SaslError",
    "UsersFile",
    "decode_login_step",
    "decode_plain",
    "hash_password",
    "verify_password",
]

_SCHEME = "scrypt"
# scrypt cost: about 50 ms and 16 MiB on a 2020s core; stops offline guessing,
# cheap enough for a login.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` (base64 parts) for *password*."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"{_SCHEME}${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(stored: str, password: str) -> bool:
    """True when *password* matches *stored* (a :func:`hash_password` result); constant time."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != _SCHEME:
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=64 << 20
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, expected)


class UsersFile:
    """``name:hash`` lines, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}

    def users(self) -> dict[str, str]:
        """The current name -> hash table (empty if the file is missing)."""
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self._users = None, {}
            return self._users
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            table: dict[str, str] = {}
            for raw in self.path.read_text(encoding="utf-8").splitlines():
                line = raw.strip()
                if not line or line.startswith("#") or ":" not in line:
                    continue
                name, _, hashed = line.partition(":")
                table[name.strip()] = hashed.strip()
            self._stamp, self._users = stamp, table
        return self._users

    def check(self, name: str, password: str) -> bool:
        """True when *name* exists and *password* is its password."""
        stored = self.users().get(name)
        if stored is None:
            # Spend the same work on unknown names: no user enumeration by timing.
            verify_password(_DUMMY, password)
            return False
        return verify_password(stored, password)


_DUMMY = hash_password("linechat-dummy", salt=b"\0" * 16)


class Credentials:
    """A service's authentication policy: off, accept anything, or a users file."""

    def __init__(self, mode: Literal["off", "any", "users"], users_file: Path | None = None) -> None:
        if mode == "users" and users_file is None:
            raise ValueError("auth mode 'users' needs a users file")
        self.mode = mode
        self.file = UsersFile(users_file) if users_file is not None else None

    @property
    def enabled(self) -> bool:
        """True when the service offers authentication at all."""
        return self.mode != "off"

    def check(self, name: str, password: str) -> bool:
        """True when the pair is accepted under the policy."""
        if self.mode == "any":
            return bool(name)
        if self.mode == "users" and self.file is not None:
            return self.file.check(name, password)
        return False


class SaslError(ValueError):
    """A malformed SASL response (bad base64, missing fields)."""


def _b64(text: str | bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("invalid base64") from None


def decode_plain(response: str | bytes) -> tuple[str, str, str]:
    """Decode a SASL PLAIN response: ``(authzid, authcid, password)`` (RFC 4616)."""
    raw = _b64(response)
    parts = raw.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        raise SaslError("PLAIN needs authzid NUL authcid NUL password")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise SaslError("PLAIN fields must be UTF-8") from None
    return authzid, authcid, password


def decode_login_step(response: str | bytes) -> str:
    """Decode one step of the LOGIN mechanism (a base64 user name or password)."""
    try:
        return _b64(response).decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("LOGIN fields must be UTF-8") from None
