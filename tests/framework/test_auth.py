"""linechat.auth: password hashes, the users file, SASL decoding."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from linechat.auth import (
    Credentials,
    SaslError,
    UsersFile,
    decode_login_step,
    decode_plain,
    hash_password,
    verify_password,
)


def test_hash_verifies_only_its_password() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$")
    assert verify_password(stored, "s3cret")
    assert not verify_password(stored, "s3cret ")
    assert not verify_password("garbage", "s3cret")
    assert hash_password("s3cret") != stored  # salted


def test_users_file_reloads_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"# users\nalice:{hash_password('a')}\n")
    users = UsersFile(path)
    assert users.check("alice", "a") and not users.check("alice", "b") and not users.check("bob", "b")
    path.write_text(f"alice:{hash_password('a')}\nbob:{hash_password('b')}\n")
    assert users.check("bob", "b")


def test_credentials_modes(tmp_path: Path) -> None:
    assert not Credentials("off").enabled
    assert Credentials("any").check("anyone", "anything")
    with pytest.raises(ValueError):
        Credentials("users")
    path = tmp_path / "users"
    path.write_text(f"carol:{hash_password('pw')}\n")
    creds = Credentials("users", path)
    assert creds.check("carol", "pw") and not creds.check("carol", "nope")


def test_sasl_plain_and_login() -> None:
    assert decode_plain(base64.b64encode(b"\0user\0pass")) == ("", "user", "pass")
    assert decode_plain(base64.b64encode(b"admin\0user\0p\xc3\xa4ss").decode()) == ("admin", "user", "päss")
    assert decode_login_step(base64.b64encode(b"user")) == "user"
    for bad in ("not base64!", base64.b64encode(b"only-one-part").decode(), base64.b64encode(b"\0\0pw").decode()):
        with pytest.raises(SaslError):
            decode_plain(bad)
    with pytest.raises(SaslError):
        decode_login_step("%%%")
