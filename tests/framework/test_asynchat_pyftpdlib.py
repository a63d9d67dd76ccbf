"""Unmodified third-party asynchat code on linechat's module: pyftpdlib 1.5.7 and the stdlib's FTP clients.

pyftpdlib 1.5.7 is the last release that does ``import asynchat`` (later
ones carry their own copy).  Its FTP handler is an ``async_chat``; its TLS
handler wraps sockets in pyOpenSSL and overrides ``send``/``recv``; its
throttled data handler overrides them to limit bandwidth.  It is installed
without dependencies (it declares none), so nothing brings ``pyasynchat``: the
server, ``tests/framework/apps/ftp_server.py``, runs in a subprocess through
``python -m linechat.asynchat run`` and reports which ``asynchat`` pyftpdlib
got.  ``ftplib.FTP`` and ``ftplib.FTP_TLS`` drive it over loopback.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

pytest.importorskip("pyftpdlib", reason="pyftpdlib 1.5.7 is in the test extra")
pytest.importorskip("OpenSSL", reason="pyOpenSSL is in the test extra")

APP = Path(__file__).parent / "apps" / "ftp_server.py"
TIMEOUT = 30.0
PAYLOAD = os.urandom(300_000)


@contextmanager
def ftp_server(mode: str, root: Path, *extra: str) -> Iterator[dict[str, object]]:
    """Run the pyftpdlib app in mode *mode* under the runner; yield what it reported."""
    log = (root.parent / f"{mode}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "linechat.asynchat", "run", str(APP), mode, str(root), *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            proc.wait(TIMEOUT)
            log.flush()
            raise AssertionError(f"the server did not start: {(root.parent / f'{mode}.log').read_text()}")
        yield json.loads(line)
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
        log.close()


def exercise(ftp: ftplib.FTP) -> None:
    """Upload, list, download, rename, delete: what an FTP client does."""
    ftp.login("user", "secret")
    ftp.mkd("dir")
    ftp.cwd("dir")
    ftp.storbinary("STOR up.bin", io.BytesIO(PAYLOAD))
    assert ftp.nlst() == ["up.bin"]
    ftp.voidcmd("TYPE I")
    assert ftp.size("up.bin") == len(PAYLOAD)
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    assert len(lines) == 1 and lines[0].endswith("up.bin")
    out = io.BytesIO()
    ftp.retrbinary("RETR up.bin", out.write)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(PAYLOAD).digest()
    ftp.rename("up.bin", "moved.bin")
    ftp.delete("moved.bin")
    assert ftp.nlst() == []
    ftp.quit()


def check_module(info: dict[str, object]) -> None:
    assert info["asynchat"] == "linechat.asynchat"
    assert str(info["file"]).endswith(os.path.join("asynchat.py"))
    assert "pyasynchat" not in str(info["file"]) and "site-packages/asynchat" not in str(info["file"])


def test_plain_ftp(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with ftp_server("plain", root) as info:
        check_module(info)
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", int(info["port"]), timeout=TIMEOUT)  # type: ignore[call-overload]
        exercise(ftp)
    assert list((root / "dir").iterdir()) == []


def test_tls_ftp(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ca = trustme.CA()
    cert = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with ftp_server("tls", root, str(cert)) as info:
        check_module(info)
        # The server requires TLS: a plain login is refused.
        plain = ftplib.FTP()
        plain.connect("127.0.0.1", int(info["port"]), timeout=TIMEOUT)  # type: ignore[call-overload]
        with pytest.raises(ftplib.error_perm, match="SSL/TLS required"):
            plain.login("user", "secret")
        plain.close()
        ftp = ftplib.FTP_TLS(context=context)
        ftp.connect("127.0.0.1", int(info["port"]), timeout=TIMEOUT)  # type: ignore[call-overload]
        ftp.auth()
        ftp.prot_p()  # the data connections too
        assert isinstance(ftp.sock, ssl.SSLSocket)
        exercise(ftp)


def test_throttled_ftp(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with ftp_server("throttled", root) as info:
        check_module(info)
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", int(info["port"]), timeout=TIMEOUT)  # type: ignore[call-overload]
        ftp.login("user", "secret")
        started = time.monotonic()
        ftp.storbinary("STOR up.bin", io.BytesIO(PAYLOAD))
        out = io.BytesIO()
        ftp.retrbinary("RETR up.bin", out.write)
        elapsed = time.monotonic() - started
        ftp.quit()
    assert out.getvalue() == PAYLOAD
    # The handler limits each direction to 100 KiB/s: past twice the limit in
    # one second it sleeps the data channel (about 2 s here, each way).  A load
    # on the machine only makes it slower; without the throttle (a drop-in that
    # bypassed send()/recv()) both transfers take milliseconds.
    assert elapsed > 2.0
