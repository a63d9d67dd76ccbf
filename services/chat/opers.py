"""IRC operator passwords: scrypt hashes in the ``opers`` setting (the shared :mod:`linechat.auth` format).

``linechat hash-password NAME`` makes one (the part after ``NAME:``).
"""

from __future__ import annotations

from linechat.auth import hash_password, verify_password

__all__ = ["check_oper", "hash_password"]


def check_oper(opers: dict[str, str], name: str, password: str) -> bool:
    """True if *name* is an operator in *opers* and *password* matches its hash."""
    stored = opers.get(name)
    return stored is not None and verify_password(stored, password)
