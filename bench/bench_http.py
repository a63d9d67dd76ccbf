"""HTTP requests per second: linechat's HTTP service against an h11-on-asyncio server, in the same run.

Run: ``.venv/bin/python bench/bench_http.py`` (needs ``wrk``: ``apt-get install wrk``;
the uvloop peer runs when uvloop, from the bench extras, is installed).

Each server runs in its own process on 127.0.0.1 and answers two requests:

- ``GET /health``: a small JSON body built per request;
- ``GET /api/v1/messages?limit=10``: the inbox API's list of the newest
  messages of a Maildir holding a few (``--messages``, 5 by default) as JSON.

linechat runs as ``linechat serve`` would for the mail catcher: the SMTP
service (whose index of the Maildir the API reads) and the HTTP service, with
the metrics plugin counting every request.  The peer
(``bench/peers/asyncio_h11_http.py``) parses and writes with h11 on asyncio
(and on uvloop) and lists the same Maildir through the same index class, so
only the HTTP layer differs; before measuring, both answers are checked to
be the same JSON.  ``wrk`` drives each server with keep-alive connections
(``--connections``, one thread) for ``--seconds``.  Figures: requests per
second, and the server process's CPU time (user + system, from /proc) per
request, which moves less than throughput when other work shares the
machine.  Rounds alternate the servers (one round: every path on every
server); the best of each is kept.

``--in-memory`` measures the user-space CPU per ``GET /health`` with no
sockets and no event loop: our protocol fed through the test harness, the
peer's ``data_received`` with a transport that drops what it writes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

PATHS = ["/health", "/api/v1/messages?limit=10"]


def serve_linechat(data_dir: str) -> None:
    """Run SMTP + HTTP (with the metrics plugin) in this process until SIGTERM; print the HTTP port."""
    from linechat.app import App
    from linechat.logs import configure_logging
    from linechat.plugins.metrics import Metrics
    from linechat.services.http import HttpService
    from linechat.services.smtp import SmtpService
    from linechat.settings import build_settings_model, load_settings

    configure_logging("warning", "json")
    flags: list[tuple[list[str], Any]] = [
        (["services", "http", "host"], "127.0.0.1"),
        (["services", "http", "port"], 0),
        (["services", "smtp", "host"], "127.0.0.1"),
        (["services", "smtp", "port"], 0),
        (["services", "smtp", "maildir"], os.path.join(data_dir, "maildir")),
        (["data_dir"], data_dir),
    ]
    services = {"smtp": SmtpService, "http": HttpService}
    plugins = {"metrics": Metrics}
    model = build_settings_model(services, plugins)
    app = App(load_settings(model, None, flags), services, plugins)
    app.start()
    print(app.address("http")[1], flush=True)
    try:
        app.reactor.run(grace=2.0)
    finally:
        app.shutdown()


def fill_maildir(root: Path, count: int) -> None:
    """Store *count* ordinary messages (text and HTML, a few recipients) as the SMTP service would."""
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    now = time.time()
    for index in range(count):
        message = EmailMessage()
        message["Return-Path"] = "<orders@shop.example>"
        message["Delivered-To"] = f"customer{index}@example.org"
        message["From"] = "Shop <orders@shop.example>"
        message["To"] = f"Customer {index} <customer{index}@example.org>"
        message["Cc"] = "Support <support@shop.example>"
        message["Subject"] = f"Your order #{1000 + index} has shipped ✓"
        message["Date"] = format_datetime(datetime.fromtimestamp(now - 60 * (count - index), UTC))
        message["Message-ID"] = make_msgid(domain="shop.example")
        message.set_content(f"Hello Customer {index},\n\nyour order is on its way.\n" * 4)
        message.add_alternative(f"<p>Hello Customer {index},</p><p>your order is on its way.</p>\n", subtype="html")
        seconds = int(now) - count + index
        (root / "new" / f"{seconds}.M{index:06d}P{os.getpid()}Q{index}.bench").write_bytes(message.as_bytes())


def start(kind: str, data_dir: str) -> tuple[subprocess.Popen[str], int]:
    if kind == "linechat":
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", data_dir]
    else:
        cmd = [sys.executable, os.path.join(HERE, "peers", "asyncio_h11_http.py")]
        cmd += ["--maildir", os.path.join(data_dir, "maildir")]
        if kind == "asyncio-h11-uvloop":
            cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} did not start")
    return proc, int(line)


def fetch_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, path: str, connections: int, seconds: int) -> tuple[float, int]:
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
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


def in_memory(requests: int, rounds: int) -> None:
    """User-space CPU per ``GET /health`` without sockets: our protocol in the harness, the peer's data_received."""
    sys.path.insert(0, os.path.join(HERE, "peers"))
    import asyncio_h11_http as peer
    from linechat.services.http import HttpService
    from linechat.testing import ServiceHarness

    wire = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    harness = ServiceHarness(HttpService)
    client = harness.connect()

    def ours() -> float:
        started = time.process_time()
        for _ in range(requests):
            client.send(wire)
            client.read()
        return (time.process_time() - started) / requests * 1e6

    class Transport:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    protocol = peer.HttpProtocol(peer.Server(None))
    protocol.connection_made(Transport())

    def theirs() -> float:
        started = time.process_time()
        for _ in range(requests):
            protocol.data_received(wire)
        return (time.process_time() - started) / requests * 1e6

    best = {"linechat (harness)": 1e9, "asyncio-h11 (data_received)": 1e9}
    for _ in range(rounds):
        best["linechat (harness)"] = min(best["linechat (harness)"], ours())
        best["asyncio-h11 (data_received)"] = min(best["asyncio-h11 (data_received)"], theirs())
    print(f"in memory, GET /health, {requests} requests, least of {rounds} rounds:")
    for name, value in best.items():
        print(f"  {name:>28}: {value:6.1f} us CPU per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5, help="messages in the Maildir the API lists")
    parser.add_argument("--path", action="append", help=f"a request target (repeatable; default {PATHS})")
    parser.add_argument(
        "--in-memory", action="store_true", help="CPU per request without sockets (our harness, the peer's protocol)"
    )
    args = parser.parse_args()
    if args.serve:
        serve_linechat(args.serve)
        return
    if args.in_memory:
        in_memory(30000, args.rounds)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    paths = args.path or PATHS
    kinds = ["linechat", "asyncio-h11"]
    try:
        import uvloop  # noqa: F401

        kinds.append("asyncio-h11-uvloop")
    except ImportError:
        pass
    best: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}  # the least server CPU per request seen, in microseconds
    print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    work = tempfile.mkdtemp(prefix="bench-http-")
    fill_maildir(Path(work) / "maildir", args.messages)
    try:
        for _ in range(args.rounds):
            for path in paths:
                answers: dict[str, Any] = {}
                for kind in kinds:  # alternate, so background load hits every server alike
                    proc, port = start(kind, work)
                    try:
                        answers[kind] = fetch_json(port, path)
                        before = cpu_seconds(proc.pid)
                        rate, total = wrk(port, path, args.connections, args.seconds)
                        used = (cpu_seconds(proc.pid) - before) / total * 1e6
                    finally:
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(30)
                    print(f"  {path:<28} {kind:>20}: {rate:10.0f} req/s {used:8.1f} us CPU/req", flush=True)
                    best[path, kind] = max(best.get((path, kind), 0.0), rate)
                    cpu[path, kind] = min(cpu.get((path, kind), 1e9), used)
                if path.startswith("/api/"):
                    first = answers["linechat"]
                    if any(answer != first for answer in answers.values()):
                        raise RuntimeError(f"the servers disagree on GET {path}: {answers}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.2f} at the end, "
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.messages} messages, best of {args.rounds}"
    )
    for path in paths:
        print(f"GET {path}")
        ours = best[path, "linechat"]
        ours_cpu = cpu[path, "linechat"]
        for kind in kinds:
            print(
                f"  {kind:>20} {best[path, kind]:10.0f} req/s  {cpu[path, kind]:7.1f} us CPU/req   "
                f"linechat/{kind}: {ours / best[path, kind]:.2f}x req/s, "
                f"{cpu[path, kind] / ours_cpu:.2f}x less CPU per request"
            )


if __name__ == "__main__":
    main()
