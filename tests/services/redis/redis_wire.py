"""Helpers for the Redis service tests: RESP encoding and reply splitting, a raw client, redis-server beside ours."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from linechat.testing import free_port


def cmd(*args: bytes | str | int) -> bytes:
    """Encode one command as a RESP multibulk."""
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def reply_end(data: bytes, pos: int = 0) -> int | None:
    """Offset just past the RESP2 or RESP3 reply starting at *pos*, or None if *data* holds only part of it."""
    nl = data.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind = data[pos : pos + 1]
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return nl + 2
    count = int(data[pos + 1 : nl])
    if kind in (b"$", b"=", b"!"):
        if count < 0:
            return nl + 2
        end = nl + 2 + count + 2
        return end if end <= len(data) else None
    if kind in (b"*", b"~", b">", b"%", b"|"):
        elements = 2 * count if kind in (b"%", b"|") else count
        at: int | None = nl + 2
        for _ in range(max(elements, 0)):
            assert at is not None
            at = reply_end(data, at)
            if at is None:
                return None
        if kind == b"|" and at is not None:
            return reply_end(data, at)  # an attribute comes before the reply it annotates
        return at
    raise ValueError(f"not RESP: {data[pos : pos + 40]!r}")


def split_replies(data: bytes) -> list[bytes]:
    """Cut a byte string holding whole replies into one byte string per reply."""
    out = []
    pos = 0
    while pos < len(data):
        end = reply_end(data, pos)
        assert end is not None, f"partial reply: {data[pos:]!r}"
        out.append(data[pos:end])
        pos = end
    return out


class RawClient:
    """A blocking socket client that returns each reply as raw RESP bytes."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """Read one whole reply."""
        while True:
            end = reply_end(self.buf) if self.buf else None
            if end is not None:
                out, self.buf = self.buf[:end], self.buf[end:]
                return out
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed with {self.buf!r} buffered")
            self.buf += chunk

    def call(self, *args: bytes | str | int) -> bytes:
        """Send a command, return its raw reply."""
        self.send(cmd(*args))
        return self.reply()

    def closed_by_peer(self) -> bool:
        """True if the server closed the connection (after any buffered data)."""
        try:
            return self.sock.recv(1) == b""
        except (TimeoutError, ConnectionError):
            return True

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@contextmanager
def real_redis(tmp: Path, *extra: str) -> Iterator[tuple[str, int]]:
    """Run a throw-away redis-server on a free loopback port (no persistence unless *extra* options say so)."""
    exe = shutil.which("redis-server")
    assert exe is not None
    port = free_port()
    base = [exe, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    proc = subprocess.Popen(
        [*base, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(10)


Address = tuple[str, int]


@contextmanager
def side_by_side(tmp: Path) -> Iterator[tuple[Address, Address]]:
    """A throw-away redis-server and our Redis service (no AOF) at once: (redis-server, ours)."""
    from linechat.services.redis import RedisService
    from linechat.testing import serve

    settings = {"services": {"redis": {"appendonly": False}}}
    with real_redis(tmp) as real, serve(RedisService, data_dir=tmp / "ours", settings=settings) as srv:
        yield real, srv.address()


def run_commands(address: Address, commands: list[tuple[str | bytes, ...]], hello: int | None = None) -> list[bytes]:
    """Each command's raw reply on a new connection (after ``HELLO <hello>`` when given)."""
    client = RawClient(address)
    try:
        if hello is not None:
            client.call("HELLO", hello)
        return [client.call(*(a if isinstance(a, bytes) else a.encode("latin-1") for a in c)) for c in commands]
    finally:
        client.close()


def assert_same_replies(
    both: tuple[Address, Address], commands: list[tuple[str | bytes, ...]], hello: int | None = None
) -> None:
    """Run *commands* on redis-server and on ours; every reply must be the same bytes."""
    real, ours = both
    expected = run_commands(real, commands, hello)
    got = run_commands(ours, commands, hello)
    mismatches = [(c, e, g) for c, e, g in zip(commands, expected, got, strict=True) if e != g]
    assert not mismatches, "\n".join(f"{c!r}: redis {e!r} ours {g!r}" for c, e, g in mismatches[:20])
