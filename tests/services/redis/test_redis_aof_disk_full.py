"""A real disk that fills up under a real server: every write acknowledged is in the AOF after a restart.

The append-only file lives on a small tmpfs mounted in a private mount
namespace that the test makes (``unshare --mount``); the server runs in it
(``nsenter``), and the test fills and frees the filesystem through
``/proc/<pid>/root``.  redis-py writes until the disk is full: the writes
answered OK must all be there once space is freed and the server restarted,
the writes during the error get ``MISCONF``, and writing works again after.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from linechat.testing import ServeProcess, free_port
from redis.backoff import NoBackoff
from redis.retry import Retry

DEADLINE = 60.0  # a safety net for each wait, never a performance bound
SIZE = 2 << 20  # the filesystem: 2 MiB
SLACK = 96 << 10  # what the filler leaves free once the server runs
VALUE = b"v" * 1000

pytestmark = pytest.mark.heavy


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A process holding a private mount namespace with a 2 MiB tmpfs on *tmp_path*/disk; (its pid, the mount)."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("unshare and nsenter (util-linux) are needed to make a small filesystem")
    mount = tmp_path / "disk"
    mount.mkdir()
    script = f'mount -t tmpfs -o size={SIZE} tmpfs "{mount}" && echo ready && exec sleep 3600'
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "ready":
        holder.kill()
        _, err = holder.communicate(timeout=DEADLINE)
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace here: {err.strip()}")
    try:
        yield holder.pid, mount
    finally:
        holder.kill()
        holder.wait(timeout=DEADLINE)


class KilledError(Exception):
    """The server was killed on purpose."""


def inside(pid: int, path: Path) -> Path:
    """*path* as the processes of *pid*'s mount namespace see it."""
    return Path(f"/proc/{pid}/root") / path.relative_to("/")


def fill(path: Path, leave: int) -> None:
    """Write *path* until the filesystem is full, then give back *leave* bytes."""
    chunk = b"\0" * (64 << 10)
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        f.truncate(max(f.tell() - leave, 0))


def start(pid: int, mount: Path, port: int, policy: str) -> ServeProcess:
    settings = [f"services.redis.port={port}", f"services.redis.appendfsync={policy}"]
    server = ServeProcess(
        ["--only", "redis", "--data-dir", str(mount), *(arg for item in settings for arg in ("--set", item))],
        prefix=("nsenter", "-t", str(pid), "-m", "--"),
        timeout=DEADLINE,
    )
    server.wait_for_event("aof_loaded")
    server.wait_for_event("listening")
    return server


def client(port: int) -> redis.Redis:
    # No retries: a dropped connection must show as one (redis-py would resend the write otherwise).
    return redis.Redis(port=port, socket_timeout=DEADLINE, retry=Retry(NoBackoff(), 0))


@pytest.mark.parametrize("ending", ["recover", "kill"])
@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_a_full_disk_loses_no_acknowledged_write(small_disk: tuple[int, Path], policy: str, ending: str) -> None:
    """Fill the disk under writes; then free it (the server recovers), or SIGKILL the server in the error state.

    Killed while records wait in its buffer, the server loses them: none of
    them may have been acknowledged.
    """
    pid, mount = small_disk
    port = free_port()
    server = start(pid, mount, port, policy)
    filler = inside(pid, mount / "filler")
    acknowledged: dict[bytes, bytes] = {}
    try:
        r = client(port)
        assert r.set(b"first", VALUE)
        acknowledged[b"first"] = VALUE
        fill(filler, SLACK)
        dropped = refused = 0
        i = 0
        while not refused:
            key = b"k%d" % i
            i += 1
            assert i < 10 * SLACK // len(VALUE), "the disk never filled up"
            try:
                if r.set(key, VALUE):
                    acknowledged[key] = VALUE
            except redis.ConnectionError:
                dropped += 1  # not acknowledged: the write may or may not have been made
            except redis.ResponseError as exc:
                assert str(exc) == "MISCONF Errors writing to the AOF file: No space left on device"
                refused += 1
        assert len(acknowledged) > 10, "writes should succeed until the disk is full"
        assert dropped == 1, "the client whose write could not be written is dropped, once"
        server.wait_for_event("aof_write_failed")
        # The error state: writes refused (a transaction too), reads served.
        with pytest.raises(redis.ResponseError, match=r"^MISCONF Errors writing to the AOF file"):
            r.rpush(b"list", b"x")
        with pytest.raises(redis.ResponseError, match="caused error: MISCONF Errors writing to the AOF file"):
            r.pipeline(transaction=True).set(b"t", b"1").incr(b"n").execute()
        assert r.get(b"first") == VALUE
        assert r.info("persistence")["aof_last_write_status"] == "err"
        if ending == "kill":
            server.kill()
            filler.unlink()
            r.close()
            raise KilledError
        # Space comes back: the retry writes what was kept, and writing works again.
        filler.unlink()
        server.wait_for_event("aof_write_recovered")
        assert r.info("persistence")["aof_last_write_status"] == "ok"
        assert r.set(b"after", b"recovered")
        acknowledged[b"after"] = b"recovered"
        r.close()
    except KilledError:
        pass
    finally:
        server.stop()
    assert not [e for e in server.events if e["event"] == "aof_closed_unwritten"]
    data = next(inside(pid, mount).rglob("appendonly.aof")).read_bytes()
    for key in acknowledged:
        assert b"\r\n" + key + b"\r\n" in data, key
    # Restarted on the same file: every acknowledged write is there.
    server = start(pid, mount, port, policy)
    try:
        r = client(port)
        keys = list(acknowledged)
        values = r.mget(keys)
        missing = [k for k, v in zip(keys, values, strict=True) if v != acknowledged[k]]
        assert missing == []
        r.close()
    finally:
        with contextlib.suppress(Exception):
            server.stop()
