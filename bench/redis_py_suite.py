"""Run redis-py's own test suite against redis-server 7.0 and against our Redis service, side by side.

Run: ``.venv/bin/python bench/redis_py_suite.py`` (``--help`` for options;
``-k acl`` runs only the tests a pytest ``-k`` expression selects).

What it does:

1. Takes the version of redis-py installed here and downloads *that
   version's* sdist from the package index (``pip download --no-binary``);
   the tests are run from there, never copied into this repository.
2. Makes a throw-away virtual environment beside it (with this one's
   packages visible) and installs what redis-py's tests need that we do not
   (pytest-asyncio, ...).
3. Starts ``redis-server`` and ours (``linechat serve --only redis``, no AOF)
   on free loopback ports and runs the same pytest selection against each
   (``--redis-url``), one after the other, with a JUnit report each.
4. Prints per-server counts and the tests that pass on redis-server but not
   on ours; ``--out DIR`` keeps the reports and that list.

The selection leaves out, by file or marker, what needs something neither a
single Redis 7.0 nor this service is meant to be; each with its reason in
``EXCLUDED``.  Everything else runs on both servers.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Test files not run, and why.
EXCLUDED: dict[str, str] = {
    "test_cluster.py": "Redis Cluster (needs a cluster of servers)",
    "test_cluster_transaction.py": "Redis Cluster",
    "test_command_policies.py": "Redis Cluster request/response policies",
    "test_sentinel.py": "Sentinel (needs sentinel processes)",
    "test_sentinel_managed_connection.py": "Sentinel",
    "test_ssl.py": "TLS listeners with the suite's certificates",
    "test_search.py": "RediSearch module",
    "test_search_aggregation.py": "RediSearch module",
    "test_search_querystring.py": "RediSearch module",
    "test_search_result.py": "RediSearch module",
    "test_json.py": "RedisJSON module",
    "test_timeseries.py": "RedisTimeSeries module",
    "test_bloom.py": "RedisBloom module",
    "test_vsets.py": "vector sets (Redis 8 module)",
    "test_keyspace_notifications.py": "keyspace notifications (not offered)",
    "test_cache.py": "client-side caching (CLIENT TRACKING, not offered)",
    "test_function.py": "Redis functions (FUNCTION/FCALL, not offered)",
    "test_multidb": "multi-database failover client (needs several clusters)",
    "test_scenario": "fault-injection scenarios (need a proxy and Redis Enterprise)",
    "test_http": "an HTTP client for Redis Enterprise endpoints",
    "test_observability": "OpenTelemetry exporters",
    "test_asyncio": "the asyncio copy of the suite (run with --asyncio)",
}
#: Markers deselected, and why.
MARKERS = {
    "onlycluster": "Redis Cluster",
    "redismod": "Redis modules",
    "ssl": "TLS",
    "replica": "replication (a replica server)",
    "cp_integration": "credential-provider integration (Redis Enterprise)",
    "multidb_integration": "several clusters",
}
#: Test names deselected (-k), and why.
KEYWORDS = {
    "sentinel": "Sentinel",
    "replicaof or slaveof or failover": "replication",
    "module": "MODULE LOAD",
}
#: Tests that pass on redis-server but not on ours, and why: (a substring of the test's name, the reason).
#: The script prints each difference with its reason, and lists apart any it cannot explain.
KNOWN_DIFFERENCES: list[tuple[str, str]] = [
    ("::test_get_moveable_keys", "asks COMMAND GETKEYS about MIGRATE (not offered: no moving keys between servers)"),
    ("::test_bgsave", "BGSAVE: no RDB snapshots are written (the append-only file is the persistence)"),
    ("::test_client_tracking", "CLIENT TRACKING/TRACKINGINFO: client-side caching is not offered"),
    ("::test_command_list", "expects more than 300 command names; cluster, replication, functions... are not offered"),
]
EXTRA_PACKAGES = [
    "pytest-asyncio>=0.24",
    "pytest-timeout",
    "packaging",
    "ujson",
    "numpy",
    "xxhash",
    "pybreaker",
    "redis-entraid",  # imported by the credential-provider tests
]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(kind: str, workdir: Path) -> Iterator[int]:
    """Run redis-server or ours on a free port until the block ends."""
    port = free_port()
    if kind == "redis-server":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir), "--enable-debug-command", "yes"]  # fmt: skip
    else:
        argv = [sys.executable, "-m", "linechat", "serve", "--only", "redis", "--log-level", "error",
                "--data-dir", str(workdir / "linechat"), "--set", f"services.redis.port={port}",
                "--set", "services.redis.appendonly=false",
                "--set", "services.redis.enable_debug_command=yes"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch_suite(workdir: Path) -> Path:
    """Download and unpack the sdist of the installed redis-py; return its tests directory's parent."""
    version = importlib.metadata.version("redis")
    if (workdir / f"redis-{version}" / "tests").is_dir():
        return workdir / f"redis-{version}"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(workdir),
         f"redis=={version}"],
        check=True,
    )  # fmt: skip
    archive = next(workdir.glob(f"redis-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / f"redis-{version}"


def make_venv(workdir: Path) -> Path:
    """A virtual environment that sees this one's packages, plus what the suite needs."""
    venv = workdir / "venv"
    if not (venv / "bin" / "python").exists():  # a kept one (--workdir) is reused, its packages brought up to date
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *EXTRA_PACKAGES], check=True)
    return python


def run_suite(
    python: Path, source: Path, port: int, report: Path, asyncio: bool, timeout: int, only: str | None = None
) -> None:
    """Run the selected tests against the server on *port*, writing a JUnit report (*only*: a -k expression)."""
    ignores = [f"--ignore=tests/{name}" for name in EXCLUDED if asyncio is False or name != "test_asyncio"]
    if asyncio:
        ignores += [f"--ignore=tests/test_asyncio/{name}" for name in EXCLUDED if name != "test_asyncio"]
    marker = " and ".join(f"not {m}" for m in MARKERS)
    keyword = " and ".join(f"not ({k})" for k in KEYWORDS)
    if only:
        keyword = f"({only}) and {keyword}"
    subprocess.run(
        [str(python), "-m", "pytest", "tests", *ignores, "-m", marker, "-k", keyword, "-p", "no:cacheprovider",
         f"--redis-url=redis://127.0.0.1:{port}/9", f"--junitxml={report}", "-q", "-o", "log_cli=false",
         f"--timeout={timeout}"],
        cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def outcomes(report: Path) -> dict[str, str]:
    """Each test's outcome (passed, failed, error, skipped) from a JUnit report."""
    result: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None:
            result[name] = "failed"
        elif case.find("error") is not None:
            result[name] = "error"
        elif case.find("skipped") is not None:
            result[name] = "skipped"
        else:
            result[name] = "passed"
    return result


def main() -> None:
    """Fetch the suite, run it on both servers, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="keep the JUnit reports and the list of differences here")
    parser.add_argument("--asyncio", action="store_true", help="also run the asyncio copy of the suite")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per test (pytest-timeout)")
    parser.add_argument("-k", dest="only", help="run only the tests this pytest -k expression selects (e.g. acl)")
    parser.add_argument("--workdir", type=Path, help="keep the suite and its environment here and reuse them")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="redis-py-suite-") as tmp:
        workdir = Path(tmp) if args.workdir is None else args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        source = fetch_suite(workdir)
        python = make_venv(workdir)
        results = {}
        for kind in ("redis-server", "linechat"):
            report = workdir / f"{kind}.xml"
            with server(kind, workdir) as port:
                run_suite(python, source, port, report, args.asyncio, args.timeout, args.only)
            results[kind] = outcomes(report)
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                shutil.copy(report, args.out / report.name)
    version = importlib.metadata.version("redis")
    theirs, ours = results["redis-server"], results["linechat"]
    print(f"redis-py {version} test suite ({'sync and asyncio' if args.asyncio else 'sync'})")
    print()
    print("| server | passed | failed | errors | skipped |")
    print("|---|---|---|---|---|")
    for kind, res in results.items():
        counts = [sum(1 for v in res.values() if v == o) for o in ("passed", "failed", "error", "skipped")]
        print(f"| {kind} | " + " | ".join(str(c) for c in counts) + " |")
    missing = sorted(name for name, o in theirs.items() if o == "passed" and ours.get(name) != "passed")
    explained = {name: next((why for part, why in KNOWN_DIFFERENCES if part in name), None) for name in missing}
    print()
    print(f"passing on redis-server but not on ours: {len(missing)}")
    if args.out is not None:
        (args.out / "differences.txt").write_text(
            "".join(f"{n} {ours.get(n, 'absent')}: {explained[n] or 'NOT EXPLAINED'}\n" for n in missing)
        )
    reasons: dict[str, int] = {}
    for name in missing:
        if explained[name] is not None:
            reasons[explained[name]] = reasons.get(explained[name], 0) + 1  # type: ignore[index]
    for why, count in reasons.items():
        print(f"  {count:3d}  {why}")
    unexplained = [name for name in missing if explained[name] is None]
    print(f"not explained by KNOWN_DIFFERENCES: {len(unexplained)}")
    for name in unexplained:
        print(f"  {name} ({ours.get(name, 'absent')})")


if __name__ == "__main__":
    main()
