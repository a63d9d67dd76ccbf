"""Redis 7.0's multi-part append-only file: the manifest of ``appendonlydir/`` and the files it names.

redis-server 7.0 keeps ``<appenddirname>/<appendfilename>.manifest``, one
line per file::

    file appendonly.aof.2.base.rdb seq 2 type b
    file appendonly.aof.5.incr.aof seq 5 type i

``type b`` is the base (an RDB file, or commands with ``aof-use-rdb-preamble
no``), ``type i`` the incremental files of commands written since, in the
order listed (their sequence numbers rise), ``type h`` a history file the
server has yet to delete (not loaded).  Names with spaces or odd bytes are
quoted as redis-cli quotes.  Lines starting with ``#`` are comments; other
keys on a line are ignored, as newer servers may add some.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from linechat.services.redis.resp import split_inline

__all__ = ["MANIFEST_MAX_BYTES", "Manifest", "ManifestError", "read_manifest"]

#: A manifest lists a few files; anything far larger is not one (and is not read whole).
MANIFEST_MAX_BYTES = 1 << 20
#: redis-server reads manifest lines of up to this many bytes.
_LINE_MAX = 1024


class ManifestError(ValueError):
    """The manifest cannot be used; the text names the file and the line."""


@dataclass
class Manifest:
    """The files to load, base first, then the incremental files in order."""

    directory: Path
    base: Path | None = None
    incremental: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """Every file to load, in loading order."""
        return ([self.base] if self.base is not None else []) + self.incremental


def _file_name(name: bytes, where: str) -> str:
    # The manifest only names files of its own directory: a path would reach elsewhere.
    text = name.decode("utf-8", "surrogateescape")
    if not text or "/" in text or "\0" in text or text in (".", ".."):
        raise ManifestError(f"{where}: {text!r} is not a file name in the AOF directory")
    return text


def read_manifest(path: Path) -> Manifest:
    """Parse the manifest at *path* (ManifestError if it is malformed or names a file that is missing)."""
    size = path.stat().st_size
    if size > MANIFEST_MAX_BYTES:
        raise ManifestError(f"the AOF manifest {path} is {size} bytes, more than a manifest can be")
    data = path.read_bytes()
    manifest = Manifest(path.parent)
    last_seq = -1
    lines = data.split(b"\n")
    if lines[-1]:
        raise ManifestError(f"the AOF manifest {path} does not end with a newline (line {len(lines)} is cut)")
    for number, line in enumerate(lines[:-1], 1):
        where = f"the AOF manifest {path}, line {number}"
        if len(line) + 1 > _LINE_MAX:
            raise ManifestError(f"{where}: longer than {_LINE_MAX} bytes")
        if line.startswith(b"#") or not line.strip():
            continue
        words = split_inline(line.rstrip(b"\r"))
        if words is None or len(words) < 6 or len(words) % 2:
            raise ManifestError(f"{where}: not 'file <name> seq <n> type <b|i|h>'")
        pairs = {words[i].lower(): words[i + 1] for i in range(0, len(words), 2)}
        if b"file" not in pairs or b"seq" not in pairs or b"type" not in pairs:
            raise ManifestError(f"{where}: file, seq and type are all needed")
        name = _file_name(pairs[b"file"], where)
        seq_text = pairs[b"seq"]
        if not seq_text.isdigit() or len(seq_text) > 19:
            raise ManifestError(f"{where}: the sequence number {seq_text!r} is not a number")
        seq = int(seq_text)
        kind = pairs[b"type"]
        if kind == b"b":
            if manifest.base is not None:
                raise ManifestError(f"{where}: a second base file")
            manifest.base = path.parent / name
        elif kind == b"i":
            if seq <= last_seq:
                raise ManifestError(f"{where}: sequence number {seq} after {last_seq} (they must rise)")
            last_seq = seq
            manifest.incremental.append(path.parent / name)
        elif kind != b"h":
            raise ManifestError(f"{where}: unknown file type {kind!r}")
    if not manifest.files:
        raise ManifestError(f"the AOF manifest {path} lists no file to load")
    for file in manifest.files:
        if not file.is_file():
            raise ManifestError(f"the AOF manifest {path} lists {file.name}, which does not exist in {path.parent}")
    return manifest
