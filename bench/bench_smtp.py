"""SMTP throughput: the linechat SMTP service against aiosmtpd, both storing to a fsynced Maildir.

Run: ``.venv/bin/python bench/bench_smtp.py`` (needs the bench extras:
``pip install -e '.[test,bench]'``).

Each server runs in its own process.  10 client processes (smtplib, one
session each, EHLO once, then ``sendmail`` in a loop) start together; the
figure is messages accepted per second of wall time, for 1 KB and 100 KB
messages.  Both servers store every message with the same code
(:class:`services.smtp.maildir.MaildirWriter`: write to tmp/, fsync, rename
into new/, fsync new/) before answering 250, and both do that write on a pool
of 4 threads (``--inline`` does it on the event loop instead, for both).
Every message is checked to be in the Maildir afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from linechat.services.smtp.maildir import MaildirWriter

HOST = "127.0.0.1"
THREADS = 4


def make_message(size: int, index: int) -> bytes:
    """A plain text message of about *size* bytes: 76-character lines, a few starting with a dot."""
    head = b"From: bench@example.org\r\nTo: sink@example.org\r\nSubject: bench %d\r\n\r\n" % index
    line = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\r\n"
    dotted = b"." + line[1:]
    lines = []
    total = len(head)
    n = 0
    while total < size:
        piece = dotted if n % 10 == 0 else line
        lines.append(piece)
        total += len(piece)
        n += 1
    return head + b"".join(lines)


# --------------------------------------------------------------------------- servers


def serve_linechat(maildir: str, inline: bool) -> None:
    """Run the linechat SMTP service in this process until SIGTERM."""
    from linechat.app import App
    from linechat.logs import configure_logging
    from linechat.services.smtp import SmtpService
    from linechat.settings import build_settings_model, load_settings

    configure_logging("warning", "json")
    flags: list[tuple[list[str], Any]] = [
        (["services", "smtp", "host"], HOST),
        (["services", "smtp", "port"], 0),
        (["services", "smtp", "maildir"], maildir),
        (["services", "smtp", "hostname"], "bench.test"),
        (["services", "smtp", "delivery_threads"], 0 if inline else THREADS),
        (["data_dir"], os.path.dirname(maildir)),
    ]
    model = build_settings_model({"smtp": SmtpService}, {})
    app = App(load_settings(model, None, flags), {"smtp": SmtpService}, {})
    app.start()
    print(app.address("smtp")[1], flush=True)
    try:
        app.reactor.run(grace=2.0)
    finally:
        app.shutdown()


def serve_aiosmtpd(maildir: str, inline: bool, use_uvloop: bool) -> None:
    """Run aiosmtpd with a handler doing the same durable Maildir write, until SIGTERM."""
    from aiosmtpd.smtp import SMTP, Envelope, Session

    writer = MaildirWriter("bench.test")
    root = Path(maildir)
    writer.ensure(root)
    pool = ThreadPoolExecutor(THREADS)

    class MaildirHandler:
        def store(self, envelope: Envelope, peer: Any) -> None:
            header = (
                f"Received: from {envelope.mail_from} ([{peer[0]}])\r\n\tby bench.test (aiosmtpd) with ESMTP; "
                f"{time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            ).encode()
            writer.deliver(root, header, io.BytesIO(envelope.original_content or b""))

        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
            if inline:
                self.store(envelope, session.peer)
            else:
                await asyncio.get_running_loop().run_in_executor(pool, self.store, envelope, session.peer)
            return "250 2.0.0 OK"

    handler = MaildirHandler()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench.test", data_size_limit=32 << 20, enable_SMTPUTF8=True), HOST, 0
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


# --------------------------------------------------------------------------- clients


def client(port: int, count: int, size: int, seed: int, start: Any, done: Any) -> None:
    """One smtplib session sending *count* messages; puts how many were accepted on *done*."""
    messages = [make_message(size, seed * 100000 + i) for i in range(count)]
    sent = 0
    try:
        start.wait(60)
        with smtplib.SMTP(HOST, port, timeout=60) as smtp:
            smtp.ehlo("client.bench")
            for message in messages:
                smtp.sendmail("bench@example.org", ["sink@example.org"], message)
                sent += 1
    finally:
        done.put(sent)


def measure(port: int, clients: int, count: int, size: int) -> float:
    """Messages per second for *clients* processes sending *count* messages each."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(clients + 1)
    done = ctx.Queue()
    procs = [ctx.Process(target=client, args=(port, count, size, seed, start, done)) for seed in range(clients)]
    for proc in procs:
        proc.start()
    start.wait(60)
    began = time.perf_counter()
    total = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join(60)
    return total / elapsed


def run_server(kind: str, maildir: str, inline: bool) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind, "--maildir", maildir]
    if inline:
        cmd.append("--inline")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} server did not start")
    return proc, int(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=["linechat", "aiosmtpd", "aiosmtpd-uvloop"], help=argparse.SUPPRESS)
    parser.add_argument("--maildir", help=argparse.SUPPRESS)
    parser.add_argument("--inline", action="store_true", help="store on the event loop instead of 4 threads")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server; the best is kept")
    parser.add_argument("--small", type=int, default=200, help="1 KB messages per client per round")
    parser.add_argument("--large", type=int, default=30, help="100 KB messages per client per round")
    args = parser.parse_args()
    if args.serve == "linechat":
        serve_linechat(args.maildir, args.inline)
        return
    if args.serve:
        serve_aiosmtpd(args.maildir, args.inline, args.serve == "aiosmtpd-uvloop")
        return

    kinds = ["linechat", "aiosmtpd", "aiosmtpd-uvloop"]
    best: dict[tuple[str, int], float] = {}
    work = tempfile.mkdtemp(prefix="bench-smtp-")
    try:
        for size, count in ((1024, args.small), (100 * 1024, args.large)):
            for _ in range(args.rounds):
                for kind in kinds:  # alternate, so background load hits every server alike
                    maildir = os.path.join(work, f"{kind}-{size}", "maildir")
                    os.makedirs(os.path.dirname(maildir), exist_ok=True)
                    proc, port = run_server(kind, maildir, args.inline)
                    try:
                        rate = measure(port, args.clients, count, size)
                    finally:
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(30)
                    stored = len(os.listdir(os.path.join(maildir, "new")))
                    assert stored == args.clients * count, (kind, stored)
                    shutil.rmtree(os.path.dirname(maildir))
                    best[kind, size] = max(best.get((kind, size), 0.0), rate)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mode = "inline (on the event loop)" if args.inline else f"{THREADS} threads"
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.clients} client processes, store: {mode}")
    print(f"{'size':>8} {'linechat':>10} {'aiosmtpd':>10} {'+uvloop':>10} {'ratio':>7} {'ratio uv':>9}  (msgs/s)")
    for size in (1024, 100 * 1024):
        ours, theirs, uv = (best[kind, size] for kind in kinds)
        ratios = f"{ours / theirs:>6.2f}x {ours / uv:>8.2f}x"
        print(f"{size // 1024:>6}KB {ours:>10.0f} {theirs:>10.0f} {uv:>10.0f} {ratios}")


if __name__ == "__main__":
    main()
