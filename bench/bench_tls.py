"""TLS throughput: the Redis and SMTP services over TLS against asyncio + ssl peers and redis-server.

Run: ``.venv/bin/python bench/bench_tls.py`` (``--help`` for options).  Needs
``redis-benchmark`` built with TLS (Debian's is); ``redis-server``, ``openssl``
and aiosmtpd (the ``bench`` extra) are used when present.

All servers get the same certificate: a development CA and a localhost
certificate made in a temporary folder with ``linechat.tls``.

- **Redis over TLS**: ``redis-benchmark --tls -t set,get -c 50 -P 16`` (and
  ``-P 1``) against ours (``tls_port``), the minimal asyncio server of
  ``bench/peers/`` with asyncio's own TLS, and redis-server's ``tls-port``.
- **Handshakes per second**: ``openssl s_time -new`` (a full handshake per
  connection, no session reuse) against each Redis server's TLS port.
- **SMTP STARTTLS sessions per second**: client processes run whole
  sessions (EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA of 1 KiB, QUIT) with
  smtplib against our SMTP service and aiosmtpd with ``tls_context``
  (asyncio + ssl), each with a handler that accepts and drops the message,
  so TLS and the protocol are what is measured, not storage.

Servers and clients share this machine: the clients' CPU share is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running(command: list[str], port: int, tls_port: int | None = None) -> Iterator[int]:
    """Start a server, wait until *port* accepts, yield its pid, stop it."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        for wanted in [port] + ([tls_port] if tls_port else []):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", wanted), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{command[:3]} did not start") from None
                    time.sleep(0.05)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- Redis


def redis_servers(certs: Any, python: str, data: str) -> dict[str, tuple[list[str], int, int]]:
    """name -> (command, plain port, TLS port) for each Redis server available."""
    servers: dict[str, tuple[list[str], int, int]] = {}
    port, tls_port = free_port(), free_port()
    servers["linechat"] = (
        [python, "-m", "linechat", "serve", "--only", "redis", "--log-level", "warning", "--data-dir", data,
         "--set", f"services.redis.port={port}", "--set", f"services.redis.tls_port={tls_port}",
         "--set", "services.redis.appendonly=false", "--set", "services.redis.backlog=1024",
         "--set", f"tls.cert_file={certs.cert}", "--set", f"tls.key_file={certs.key}"],
        port, tls_port,
    )  # fmt: skip
    port = free_port()
    servers["asyncio+ssl"] = (
        [python, str(PEERS / "asyncio_redis.py"), str(port), "--tls", str(certs.cert), str(certs.key)],
        port,
        port,
    )
    if shutil.which("redis-server"):
        port, tls_port = free_port(), free_port()
        servers["redis-server"] = (
            ["redis-server", "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", str(port),
             "--tls-port", str(tls_port), "--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key),
             "--tls-ca-cert-file", str(certs.ca_cert), "--tls-auth-clients", "no"],
            port, tls_port,
        )  # fmt: skip
    return servers


def redis_benchmark(tls_port: int, ca: Path, test: str, requests: int, pipeline: int, clients: int) -> float:
    """requests/s of one redis-benchmark test over TLS."""
    done = subprocess.run(
        ["redis-benchmark", "--tls", "--cacert", str(ca), "-h", "127.0.0.1", "--sni", "localhost",
         "-p", str(tls_port), "-t", test.lower(), "-c", str(clients), "-n", str(requests), "-q", "-P", str(pipeline)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    for line in done.stdout.replace("\r", "\n").splitlines():
        match = re.match(r"\s*([A-Z_]+): ([0-9.]+) requests per second", line)
        if match and match.group(1) == test:
            return float(match.group(2))
    raise RuntimeError(f"redis-benchmark failed: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")


def handshakes(tls_port: int, ca: Path, seconds: int) -> float:
    """New TLS connections per second (full handshakes) by ``openssl s_time``."""
    done = subprocess.run(
        ["openssl", "s_time", "-connect", f"127.0.0.1:{tls_port}", "-new", "-time", str(seconds), "-CAfile", str(ca)],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    match = re.search(r"(\d+) connections in ([0-9.]+)s", done.stdout)
    if not match:
        raise RuntimeError(f"openssl s_time failed: {done.stdout[-300:]!r} {done.stderr[-300:]!r}")
    return int(match.group(1)) / float(match.group(2))


# --------------------------------------------------------------------------- SMTP


def serve_aiosmtpd(port: int, cert: str, key: str) -> None:
    """aiosmtpd with STARTTLS offered; the handler accepts and drops every message."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)

    class Drop:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Drop(), hostname="bench.test", tls_context=context), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_linechat_smtp(port: int, cert: str, key: str, data: str) -> None:
    """Our SMTP service with a handler that accepts and drops every message, as the peer's does."""
    import signal

    from linechat.services.smtp import SmtpService
    from linechat.testing import serve

    class DropSmtp(SmtpService):
        def handle_message(self, envelope: Any) -> None:
            return None

    settings = {
        "services": {"smtp": {"port": port, "delivery_threads": 0, "backlog": 1024}},
        "tls": {"cert_file": cert, "key_file": key},
    }
    with serve(DropSmtp, data_dir=data, settings=settings):
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


def smtp_servers(certs: Any, python: str, data: str) -> dict[str, tuple[list[str], int]]:
    """name -> (command, port) for each SMTP server; both drop what they accept, so TLS and SMTP are measured."""
    servers: dict[str, tuple[list[str], int]] = {}
    port = free_port()
    servers["linechat"] = (
        [python, __file__, "--serve-linechat-smtp", str(port), str(certs.cert), str(certs.key), data],
        port,
    )
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return servers
    port = free_port()
    servers["aiosmtpd (asyncio+ssl)"] = (
        [python, __file__, "--serve-aiosmtpd", str(port), str(certs.cert), str(certs.key)],
        port,
    )
    return servers


def smtp_client(port: int, ca: str, seconds: float, start: Any, counter: Any) -> None:
    """Run STARTTLS sessions until *seconds* pass; add the number done to *counter*."""
    context = ssl.create_default_context(cafile=ca)
    body = b"Subject: bench\r\n\r\n" + (b"x" * 74 + b"\r\n") * 13  # about 1 KiB in lines of 76
    start.wait()
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with smtplib.SMTP("localhost", port, timeout=30) as client:
            client.starttls(context=context)
            client.sendmail("a@bench.test", ["b@bench.test"], body)
        done += 1
    with counter.get_lock():
        counter.value += done


def smtp_sessions(port: int, ca: Path, pid: int, clients: int, seconds: float) -> tuple[float, float]:
    """STARTTLS sessions per second, and the server's share of one CPU while it ran."""
    start = multiprocessing.Event()
    counter = multiprocessing.Value("i", 0)
    procs = [
        multiprocessing.Process(target=smtp_client, args=(port, str(ca), seconds, start, counter))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.5)
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    start.set()
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - began
    return counter.value / elapsed, (cpu_seconds(pid) - cpu_before) / elapsed


# --------------------------------------------------------------------------- main


def main() -> None:
    """Run the Redis and SMTP TLS benchmarks and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-aiosmtpd", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-linechat-smtp", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=50_000, help="redis-benchmark requests per test at -P 1")
    parser.add_argument("--pipelined-requests", type=int, default=300_000, help="requests per test at -P 16")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server (best counts), round-robin")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each handshake and SMTP run")
    parser.add_argument("--smtp-clients", type=int, default=4, help="client processes running SMTP sessions")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    if args.serve_aiosmtpd:
        port, cert, key = args.serve_aiosmtpd
        serve_aiosmtpd(int(port), cert, key)
        return
    if args.serve_linechat_smtp:
        port, cert, key, data = args.serve_linechat_smtp
        serve_linechat_smtp(int(port), cert, key, data)
        return
    sys.path.insert(0, str(ROOT))
    from linechat.tls import make_dev_certificates

    with tempfile.TemporaryDirectory() as tmp:
        certs = make_dev_certificates(Path(tmp) / "tls")
        data = str(Path(tmp) / "data")
        rates: dict[tuple[str, str], float] = {}
        cpus: dict[tuple[str, str], float] = {}  # server CPU microseconds per request, least of the rounds
        redis = redis_servers(certs, args.python, data) if shutil.which("redis-benchmark") else {}
        openssl = shutil.which("openssl") is not None
        for _ in range(args.rounds):
            for name, (command, port, tls_port) in redis.items():
                with running(command, port, tls_port) as pid:
                    for pipeline, requests in ((16, args.pipelined_requests), (1, args.requests)):
                        for test in ("SET", "GET"):
                            before = cpu_seconds(pid)
                            rate = redis_benchmark(tls_port, certs.ca_cert, test, requests, pipeline, 50)
                            cpu = (cpu_seconds(pid) - before) * 1e6 / requests
                            key = (name, f"redis -P {pipeline} {test}")
                            rates[key] = max(rates.get(key, 0.0), rate)
                            cpus[key] = min(cpus.get(key, cpu), cpu)
                            print(f"# {name} {key[1]}: {rate:,.0f}/s, server CPU {cpu:.1f} us/request",
                                  file=sys.stderr, flush=True)  # fmt: skip
                    if openssl:
                        rate = handshakes(tls_port, certs.ca_cert, int(args.seconds))
                        key = (name, "handshakes")
                        rates[key] = max(rates.get(key, 0.0), rate)
                        print(f"# {name} handshakes: {rate:,.0f}/s", file=sys.stderr, flush=True)
        smtp = smtp_servers(certs, args.python, data)
        shares: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, (command, port) in smtp.items():
                with running(command, port) as pid:
                    rate, share = smtp_sessions(port, certs.ca_cert, pid, args.smtp_clients, args.seconds)
                    key = (name, "smtp")
                    if rate > rates.get(key, 0.0):
                        rates[key], shares[name] = rate, share
                    print(f"# {name} STARTTLS sessions: {rate:,.1f}/s (server {share:.0%} of a CPU)", file=sys.stderr)
    print(f"{sys.implementation.name} {sys.version.split()[0]}, {os.cpu_count()} cores, best of {args.rounds}\n")
    names = list(redis)
    if names:
        print("| Redis over TLS | " + " | ".join(names) + " | " + " | ".join(f"ours/{n}" for n in names[1:]) + " |")
        print("|---" * (2 * len(names)) + "|")
        for what in sorted({k[1] for k in rates if k[1] != "smtp"}, key=lambda w: (w == "handshakes", w)):
            row = [rates.get((n, what), 0.0) for n in names]
            ratios = [row[0] / v if v else 0.0 for v in row[1:]]
            print(f"| {what} | " + " | ".join(f"{v:,.0f}" for v in row) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip
        print("\nServer CPU microseconds per request (lower is better; ratio: peer / ours):\n")
        print("| Redis over TLS | " + " | ".join(names) + " | " + " | ".join(f"{n}/ours" for n in names[1:]) + " |")
        print("|---" * (2 * len(names)) + "|")
        for what in sorted({k[1] for k in cpus}):
            row = [cpus.get((n, what), 0.0) for n in names]
            ratios = [v / row[0] if row[0] else 0.0 for v in row[1:]]
            print(f"| {what} | " + " | ".join(f"{v:.1f}" for v in row) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip
    if smtp:
        print(f"\n| SMTP STARTTLS sessions/s ({args.smtp_clients} client processes) | rate | server CPU |")
        print("|---|---|---|")
        for name in smtp:
            print(f"| {name} | {rates.get((name, 'smtp'), 0.0):,.1f} | {shares.get(name, 0.0):.0%} |")
        if len(smtp) > 1:
            first, second = list(smtp)
            if rates.get((second, "smtp")):
                print(f"\nours/{second}: {rates[(first, 'smtp')] / rates[(second, 'smtp')]:.2f}x")


if __name__ == "__main__":
    main()
