"""HTTP requests per second: linechat's HTTP service against an h11-on-asyncio server, in the same run.

Run: ``.venv/bin/python bench/bench_http.py`` (needs ``wrk``: ``apt-get install wrk``;
uvloop from the bench extras is used when present).

Each server runs in its own process on 127.0.0.1 and answers ``GET /health``
(a small JSON body built per request).  ``wrk`` drives it with keep-alive
connections (``--connections``, one thread) for ``--seconds``; the figure is
requests per second, and the server process's CPU time (user + system,
from /proc) per request, which moves less than throughput when other work
shares the machine.  Rounds alternate the servers and the best of each is
kept.  linechat runs as ``linechat serve`` would: the HTTP service with the
metrics plugin counting every request.  Both parse with the same h11.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def serve_linechat(data_dir: str) -> None:
    """Run the HTTP service (with the metrics plugin) in this process until SIGTERM."""
    from linechat.app import App
    from linechat.logs import configure_logging
    from linechat.plugins.metrics import Metrics
    from linechat.services.http import HttpService
    from linechat.settings import build_settings_model, load_settings

    configure_logging("warning", "json")
    flags: list[tuple[list[str], Any]] = [
        (["services", "http", "host"], "127.0.0.1"),
        (["services", "http", "port"], 0),
        (["data_dir"], data_dir),
    ]
    services = {"http": HttpService}
    plugins = {"metrics": Metrics}
    model = build_settings_model(services, plugins)
    app = App(load_settings(model, None, flags), services, plugins)
    app.start()
    print(app.address("http")[1], flush=True)
    try:
        app.reactor.run(grace=2.0)
    finally:
        app.shutdown()


def start(kind: str, data_dir: str) -> tuple[subprocess.Popen[str], int]:
    if kind == "linechat":
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", data_dir]
    else:
        cmd = [sys.executable, os.path.join(HERE, "peers", "asyncio_h11_http.py")]
        if kind == "asyncio-h11-uvloop":
            cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} did not start")
    return proc, int(line)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, connections: int, seconds: int) -> tuple[float, int]:
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/health"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    if "Non-2xx" in result.stdout or "Socket errors" in result.stdout:
        raise RuntimeError(result.stdout)
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    total = re.search(r"(\d+) requests in", result.stdout)
    assert found and total, result.stdout
    return float(found.group(1)), int(total.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve_linechat(args.serve)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    kinds = ["linechat", "asyncio-h11"]
    try:
        import uvloop  # noqa: F401

        kinds.append("asyncio-h11-uvloop")
    except ImportError:
        pass
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}  # the least server CPU per request seen, in microseconds
    work = tempfile.mkdtemp(prefix="bench-http-")
    try:
        for _ in range(args.rounds):
            for kind in kinds:  # alternate, so background load hits every server alike
                proc, port = start(kind, work)
                try:
                    before = cpu_seconds(proc.pid)
                    rate, total = wrk(port, args.connections, args.seconds)
                    used = (cpu_seconds(proc.pid) - before) / total * 1e6
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
                print(f"  {kind:>20}: {rate:10.0f} req/s {used:8.1f} us CPU/req", flush=True)
                best[kind] = max(best.get(kind, 0.0), rate)
                cpu[kind] = min(cpu.get(kind, 1e9), used)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, wrk -t1 -c{args.connections} "
        f"-d{args.seconds}s GET /health, best of {args.rounds}"
    )
    ours = best["linechat"]
    for kind in kinds:
        print(
            f"{kind:>20} {best[kind]:10.0f} req/s  {cpu[kind]:7.1f} us CPU/req   linechat/{kind}: "
            f"{ours / best[kind]:.2f}x req/s, CPU per request {kind}/linechat: {cpu[kind] / cpu['linechat']:.2f}x"
        )


if __name__ == "__main__":
    main()
