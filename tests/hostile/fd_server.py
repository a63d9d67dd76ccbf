"""A linechat echo server for the descriptor-exhaustion tests, run as its own process.

Usage: python fd_server.py LIMIT EAT.  The process's RLIMIT_NOFILE (soft and
hard) is set to LIMIT before the server starts; after start it opens EAT
spare descriptors so the process runs out of them well before the connection
cap.  It prints the echo port, serves until SIGTERM, then prints how many
times the listener was woken (a listener that spins is woken thousands of
times a second).  Logs go to stderr as JSON lines.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading

limit, eat = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

from linechat.app import Listener  # noqa: E402
from linechat.logs import configure_logging  # noqa: E402
from linechat.services.echo import EchoService  # noqa: E402
from linechat.testing import serve  # noqa: E402

configure_logging("debug", "json", stream=sys.stderr)
wakeups = 0
_original = Listener.handle_accept


def _counting(self: Listener) -> None:
    global wakeups
    wakeups += 1
    _original(self)


Listener.handle_accept = _counting  # type: ignore[method-assign]
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
with serve(EchoService) as server:
    eaten = [os.open(os.devnull, os.O_RDONLY) for _ in range(eat)]
    print(server.address("echo")[1], flush=True)
    stop.wait(60)
print(wakeups, flush=True)
