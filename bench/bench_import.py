"""What importing the asynchat drop-in costs: time and modules, ours beside ``pyasynchat``.

Each round starts fresh interpreters, alternating between the peers, and runs
``python -X importtime -c "import <module>"``; the time is the cumulative
figure of the module's own line, the module count the number of modules the
import statement loaded (lines of ``-X importtime`` beyond those of
``python -c pass`` in the same environment, so start-up hooks such as
editable-install finders are not counted).  Both run from cached bytecode
(one warm-up import first).  Best and median of the rounds.

    .venv-ci-3.12/bin/python bench/bench_import.py --peer /tmp/pyasynchat-venv/bin/python

The peer environment is a scratch venv with ``pip install pyasynchat``; it
is not a dependency of linechat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

# Both peers run from cached bytecode, as an installed package does: a
# PYTHONDONTWRITEBYTECODE in the environment would leave an editable checkout
# compiling from source on every start.
_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def _importtime(python: str, statement: str) -> tuple[int, list[str]]:
    """Run *statement* under ``-X importtime``; return (microseconds of the last line, module names)."""
    result = subprocess.run(
        [python, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True, env=_ENV
    )
    names: list[str] = []
    last = 0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        names.append(name.strip())
        last = int(cumulative)
    return last, names


def measure(python: str, module: str) -> tuple[int, int]:
    """One fresh interpreter: (microseconds, modules loaded by ``import module``)."""
    _, baseline = _importtime(python, "pass")
    micros, names = _importtime(python, f"import {module}")
    return micros, len(set(names) - set(baseline))


def main() -> None:
    """Measure both peers, interleaved, and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ours", default=sys.executable, help="python with linechat installed (default: this one)")
    parser.add_argument("--peer", required=True, help="python of a venv with pyasynchat installed")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    peers = {"linechat.asynchat": args.ours, "asynchat (pyasynchat)": args.peer}
    times: dict[str, list[int]] = {name: [] for name in peers}
    counts: dict[str, int] = {}
    for label, python in peers.items():
        measure(python, label.split()[0])  # warm-up: writes the bytecode caches
    for _ in range(args.rounds):
        for label, python in peers.items():
            module = label.split()[0]
            micros, count = measure(python, module)
            times[label].append(micros)
            counts[label] = count
    version = subprocess.run(
        [args.ours, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"python {version}; {args.rounds} fresh interpreters each, interleaved")
    print(f"{'import':<24} {'best ms':>8} {'median ms':>10} {'modules':>8}")
    for label in peers:
        best = min(times[label]) / 1000
        median = statistics.median(times[label]) / 1000
        print(f"{label:<24} {best:>8.1f} {median:>10.1f} {counts[label]:>8}")


if __name__ == "__main__":
    main()
