"""IRC operator passwords: scrypt hashes in the ``opers`` setting (the shared :mod:`linechat.auth` format).

``python -m linechat.services.chat.opers`` asks for a password and prints its hash.
"""

from __future__ import annotations

from linechat.auth import hash_password, verify_password

__all__ = ["check_oper", "hash_password"]


def check_oper(opers: dict[str, str], name: str, password: str) -> bool:
    """True if *name* is an operator in *opers* and *password* matches its hash."""
    stored = opers.get(name)
    return stored is not None and verify_password(stored, password)


if __name__ == "__main__":
    import getpass

    print(hash_password(getpass.getpass("operator password: ")))
