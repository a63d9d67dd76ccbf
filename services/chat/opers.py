"""IRC operator passwords: stored as scrypt hashes in the settings, never in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["hash_password", "verify_password"]

# scrypt's interactive-login parameters (16 MiB, ~50 ms): OPER is rare, and a
# leaked settings file must not give the passwords away cheaply.
_N, _R, _P = 1 << 14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` (base64) for *password*, for the ``opers`` setting."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True if *password* matches *stored* (a :func:`hash_password` string); malformed hashes never match."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


if __name__ == "__main__":  # python -m linechat.services.chat.opers: hash a password for the settings
    import getpass

    print(hash_password(getpass.getpass("operator password: ")))
