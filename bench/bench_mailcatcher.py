"""The mail catcher under load: messages stored per second while the inbox API lists them, beside SMTP alone.

Run: ``.venv/bin/python bench/bench_mailcatcher.py``.

One server process runs the SMTP and HTTP services as ``linechat serve``
does (with the metrics plugin; every message fsynced to the Maildir on 4
threads and indexed for the API).  10 smtplib client processes send 1 KB
messages (as in ``bench_smtp.py``), and:

- ``smtp alone``: nothing else;
- ``with the API``: at the same time one client process lists the newest 50
  messages over a keep-alive HTTP connection (``GET /api/v1/messages?limit=50``)
  as fast as it can, and checks that the total it sees only grows.

Figures: messages stored per second in each case (their ratio is what the
API costs the mail), and list requests answered per second while mail
arrives.  Rounds alternate the two cases; the best of each is kept.  After
each run the API's total is checked against the messages sent.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_smtp import measure  # noqa: E402 - the same SMTP clients as the SMTP benchmark


def serve(data_dir: str) -> None:
    """Run SMTP + HTTP (+ the metrics plugin) in this process until SIGTERM; print both ports."""
    from linechat.app import App
    from linechat.logs import configure_logging
    from linechat.plugins.metrics import Metrics
    from linechat.services.http import HttpService
    from linechat.services.smtp import SmtpService
    from linechat.settings import build_settings_model, load_settings

    configure_logging("warning", "json")
    flags: list[tuple[list[str], Any]] = [
        (["services", "smtp", "port"], 0),
        (["services", "smtp", "hostname"], "bench.test"),
        (["services", "http", "port"], 0),
        (["data_dir"], data_dir),
    ]
    services = {"smtp": SmtpService, "http": HttpService}
    plugins = {"metrics": Metrics}
    app = App(load_settings(build_settings_model(services, plugins), None, flags), services, plugins)
    app.start()
    print(app.address("smtp")[1], app.address("http")[1], flush=True)
    try:
        app.reactor.run(grace=2.0)
    finally:
        app.shutdown()


def lister(port: int, stop: Any, result: Any) -> None:
    """List the newest 50 over one keep-alive connection until told to stop; report requests and the last total."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    requests = 0
    last = 0
    began = time.perf_counter()
    while not stop.is_set():
        conn.request("GET", "/api/v1/messages?limit=50")
        response = conn.getresponse()
        data = json.loads(response.read())
        assert response.status == 200
        assert data["total"] >= last, "the total went down"
        last = data["total"]
        requests += 1
    result.put((requests, time.perf_counter() - began, last))
    conn.close()


def api_total(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/api/v1/messages?limit=1")
    total = int(json.loads(conn.getresponse().read())["total"])
    conn.close()
    return total


def run(case: str, clients: int, count: int) -> tuple[float, float]:
    work = tempfile.mkdtemp(prefix="bench-mail-")
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", work], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    smtp_port, http_port = (int(p) for p in proc.stdout.readline().split())
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    result = ctx.Queue()
    listing = ctx.Process(target=lister, args=(http_port, stop, result)) if case == "api" else None
    try:
        if listing is not None:
            listing.start()
        rate = measure(smtp_port, clients, count, 1024)
        lists = 0.0
        if listing is not None:
            stop.set()
            requests, elapsed, _ = result.get(timeout=60)
            listing.join(60)
            lists = requests / elapsed
        assert api_total(http_port) == clients * count
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return rate, lists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--count", type=int, default=200, help="1 KB messages per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for case in ("alone", "api"):
            rate, lists = run(case, args.clients, args.count)
            print(f"  {case:>6}: {rate:8.0f} msgs/s stored, {lists:8.0f} lists/s", flush=True)
            if rate > best.get(case, (0.0, 0.0))[0]:
                best[case] = (rate, lists)
    alone, api = best["alone"], best["api"]
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.clients} SMTP clients x {args.count} "
        f"messages of 1 KB, best of {args.rounds}"
    )
    print(f"smtp alone:    {alone[0]:8.0f} msgs/s stored")
    print(
        f"with the API:  {api[0]:8.0f} msgs/s stored ({api[0] / alone[0]:.2f}x of alone), "
        f"{api[1]:.0f} list requests/s answered (newest 50, while mail arrives)"
    )


if __name__ == "__main__":
    main()
