"""EVALSHA of a small Lua script: our Redis service, redis-server and fakeredis's TCP server in one run.

Run: ``.venv/bin/python bench/bench_redis_evalsha.py`` (``--help`` for options).
Needs ``redis-benchmark``; ``redis-server`` and ``fakeredis`` (with lupa) are
used when present.

Each server runs in its own process on a free loopback port, one after
another.  The script is loaded with ``SCRIPT LOAD`` and then called as::

    redis-benchmark -p PORT -c 50 -n N -q -P 1 (and -P 16) EVALSHA <sha> 1 key:__rand_int__

where the script is ``return redis.call('INCR', KEYS[1])``: one command
through ``redis.call``, an integer back, the key changing per request.  The
table gives requests per second (best of ``--rounds``) and our ratio to each
peer; only ratios from the same run count.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

from redis_servers import benchmark_rate, running

SCRIPT = "return redis.call('INCR', KEYS[1])"


def load(port: int) -> str:
    """SCRIPT LOAD the script; return its SHA1."""
    done = subprocess.run(
        ["redis-cli", "-p", str(port), "SCRIPT", "LOAD", SCRIPT], capture_output=True, text=True, timeout=30
    )
    sha = done.stdout.strip()
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise RuntimeError(f"SCRIPT LOAD failed: {done.stdout!r} {done.stderr!r}")
    return sha


def rate(port: int, sha: str, requests: int, pipeline: int, clients: int) -> float:
    """Requests per second of redis-benchmark calling EVALSHA."""
    command = ["-r", "100000", "EVALSHA", sha, "1", "key:__rand_int__"]
    return benchmark_rate(port, command, requests=requests, pipeline=pipeline, clients=clients)


def main() -> None:
    """Measure every available server and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=20000, help="requests per measurement")
    parser.add_argument("-c", "--clients", type=int, default=50, help="redis-benchmark connections")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server and pipeline (best kept)")
    parser.add_argument("--pipelines", default="1,16", help="comma-separated pipeline depths")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed")
    kinds = ["linechat"]
    if shutil.which("redis-server"):
        kinds.append("redis-server")
    try:
        import fakeredis  # noqa: F401
        import lupa  # noqa: F401

        kinds.append("fakeredis")
    except ImportError:
        pass
    pipelines = [int(p) for p in args.pipelines.split(",")]
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for kind in kinds:
            with running(kind, sys.executable, "evalsha") as (port, _pid):
                sha = load(port)
                for pipeline in pipelines:
                    # fakeredis is slow: fewer requests keep the run short (a rate is a rate).
                    n = args.requests if kind != "fakeredis" else max(args.requests // 10, 1000)
                    value = rate(port, sha, n, pipeline, args.clients)
                    best[kind, pipeline] = max(best.get((kind, pipeline), 0.0), value)
    print(f"EVALSHA `{SCRIPT}`, {args.clients} clients, best of {args.rounds}")
    print()
    print("| pipeline | " + " | ".join(kinds) + " | " + " | ".join(f"ours / {k}" for k in kinds[1:]) + " |")
    print("|---" * (1 + len(kinds) + len(kinds) - 1) + "|")
    for pipeline in pipelines:
        ours = best["linechat", pipeline]
        cells = [f"{best[k, pipeline]:,.0f}" for k in kinds]
        ratios = [f"{ours / best[k, pipeline]:.2f}" for k in kinds[1:]]
        print(f"| {pipeline} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
