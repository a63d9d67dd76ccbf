"""Run irctest (the IRC conformance suite) against our chat service and against ngircd.

Usage::

    .venv/bin/python bench/irctest.py /path/to/irctest [--python /path/to/irctest-venv/bin/python]

irctest is not part of this repository: check it out anywhere (its source is
public, github.com/progval/irctest) and install its requirements into a venv
of its own (``python -m venv v && v/bin/pip install -r irctest/requirements.txt
pytest-xdist``); ``--python`` names that venv's interpreter.

Each server is started by this script on a free loopback port (ours with
``python -m linechat serve --only chat``, ngircd with a config written to a
temporary directory) and tested through irctest's ``external_server``
controller, one test at a time (the tests share the one running server), with
the selection irctest's Makefile uses for small servers such as ngircd
(``not services and not implementation-specific and not deprecated and not
strict``).  The result is a table of passed / failed / skipped per marker
(RFC1459, RFC2812, modern, IRCv3) and in total, one column per server, and
the irctest commit when the checkout is a git work tree.  ``--failures``
lists the tests that failed on our side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

SELECTION = "not services and not implementation-specific and not deprecated and not strict"
MARKERS = ("RFC1459", "RFC2812", "modern", "IRCv3")
# irctest's own oper credentials (its controllers configure every server with these).
OPER_NAME = "operuser"
OPER_PASSWORD = "operpassword"

NGIRCD_CONFIG = """\
[Global]
    Name = My.Little.Server
    Info = test server
    Bind = 127.0.0.1
    Ports = {port}
    AdminInfo1 = Bob Smith
    AdminEMail = email@example.org
    MotdFile = {directory}/empty.txt
    PidFile = {directory}/ngircd.pid

[Options]
    MorePrivacy = no
    PAM = no
    Ident = no
    DNS = no

[Operator]
    Name = {oper_name}
    Password = {oper_password}

[Limits]
    MaxNickLength = 32
"""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Block until *port* accepts connections (or fail if *proc* died)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on port {port} within 30 s")


def oper_hash(password: str) -> str:
    """The password hash the chat service's ``opers`` setting holds."""
    sys.path.insert(0, ROOT)
    from linechat.services.chat.opers import hash_password

    return hash_password(password)


@contextmanager
def run_ours(directory: str) -> Iterator[int]:
    """Our chat service, IRC on a free port."""
    port = free_port()
    config = os.path.join(directory, "linechat.toml")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(
            "[services.chat]\n"
            f"irc_port = {port}\nport = 0\n"
            'server_name = "My.Little.Server"\n'
            f'opers = {{ {OPER_NAME} = "{oper_hash(OPER_PASSWORD)}" }}\n'
        )
    cmd = [
        sys.executable,
        "-m",
        "linechat",
        "serve",
        "--only",
        "chat",
        "-c",
        config,
        "--data-dir",
        directory,
        "--log-level",
        "error",
    ]
    with open(os.path.join(directory, "ours.log"), "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc, "linechat")
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def run_ngircd(directory: str) -> Iterator[int]:
    """ngircd (Debian's package), with irctest's oper and nick length settings."""
    binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
    if not os.path.exists(binary):
        raise SystemExit("ngircd is not installed (apt-get install ngircd)")
    port = free_port()
    with open(os.path.join(directory, "empty.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n")
    config = os.path.join(directory, "ngircd.conf")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(NGIRCD_CONFIG.format(port=port, directory=directory, oper_name=OPER_NAME, oper_password=OPER_PASSWORD))
    with open(os.path.join(directory, "ngircd.log"), "wb") as log:
        proc = subprocess.Popen([binary, "--nodaemon", "--config", config], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc, "ngircd")
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def run_irctest(irctest: str, python: str, port: int, out: str, extra: list[str]) -> dict[str, dict[str, object]]:
    """Run the selection against 127.0.0.1:*port*; return {test: {outcome, markers}}."""
    env = dict(os.environ)
    env["IRCTEST_SERVER_HOSTNAME"] = "127.0.0.1"
    env["IRCTEST_SERVER_PORT"] = str(port)
    env["IRCTEST_MARKERS_OUT"] = out
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "irctest_markers",
        "--controller",
        "irctest.controllers.external_server",
        "-m",
        SELECTION,
        "-q",
        "-rN",
        *extra,
    ]
    subprocess.run(cmd, cwd=irctest, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not os.path.exists(out):
        raise SystemExit(f"irctest wrote no results (try: cd {irctest} && {' '.join(cmd)})")
    with open(out, encoding="utf-8") as fh:
        return json.load(fh)


def tally(rows: dict[str, dict[str, object]]) -> dict[str, dict[str, int]]:
    """passed / failed / skipped per marker and in total."""
    table = {name: {"passed": 0, "failed": 0, "skipped": 0} for name in (*MARKERS, "total")}
    for row in rows.values():
        outcome = str(row["outcome"])
        markers = row["markers"]
        assert isinstance(markers, list)
        for name in MARKERS:
            if name in markers:
                table[name][outcome] += 1
        table["total"][outcome] += 1
    return table


def commit_of(irctest: str) -> str:
    """The checkout's git commit, or a note that it has none."""
    try:
        return subprocess.run(
            ["git", "-C", irctest, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        marker = os.path.join(irctest, "COMMIT")
        if os.path.exists(marker):
            with open(marker, encoding="utf-8") as fh:
                return fh.read().strip()
        return "unknown (not a git checkout; put the commit in a COMMIT file beside Makefile)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("irctest", nargs="?", help="path of an irctest checkout")
    parser.add_argument("--python", default=sys.executable, help="interpreter with irctest's requirements")
    parser.add_argument("--servers", default="ours,ngircd", help="comma-separated: ours, ngircd")
    parser.add_argument("--failures", action="store_true", help="list the tests each server failed")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression (a subset, for work)")
    parser.add_argument("--json", help="also write the per-test results here")
    args = parser.parse_args()
    if not args.irctest:
        print(
            "bench/irctest.py: no irctest checkout given.\n"
            "Check out https://github.com/progval/irctest somewhere outside this repository, install its\n"
            "requirements into a venv, then: .venv/bin/python bench/irctest.py PATH --python VENV/bin/python",
            file=sys.stderr,
        )
        return 2
    irctest = os.path.abspath(args.irctest)
    if not os.path.exists(os.path.join(irctest, "irctest", "controllers", "external_server.py")):
        print(
            f"bench/irctest.py: {irctest} is not an irctest checkout (no irctest/controllers/external_server.py)",
            file=sys.stderr,
        )
        return 2
    extra = ["-k", args.select] if args.select else []
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    results: dict[str, dict[str, dict[str, object]]] = {}
    for name in servers:
        with tempfile.TemporaryDirectory(prefix=f"irctest-{name}-") as directory:
            runner = {"ours": run_ours, "ngircd": run_ngircd}[name]
            started = time.monotonic()
            with runner(directory) as port:
                results[name] = run_irctest(irctest, args.python, port, os.path.join(directory, "out.json"), extra)
            print(f"{name}: {len(results[name])} tests in {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(f"irctest {commit_of(irctest)}, selection: -m '{SELECTION}'" + (f" -k '{args.select}'" if extra else ""))
    print()
    print("| | " + " | ".join(f"{name} pass / fail / skip" for name in servers) + " |")
    print("|---|" + "---|" * len(servers))
    tables = {name: tally(rows) for name, rows in results.items()}
    for marker in (*MARKERS, "total"):
        cells = []
        for name in servers:
            row = tables[name][marker]
            cell = f"{row['passed']} / {row['failed']} / {row['skipped']}"
            cells.append(f"**{cell}**" if marker == "total" else cell)
        print(f"| {marker} | " + " | ".join(cells) + " |")
    if args.failures:
        for name in servers:
            failed = sorted(test for test, row in results[name].items() if row["outcome"] == "failed")
            print(f"\n{name}: {len(failed)} failed")
            for test in failed:
                print(f"  {test}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
