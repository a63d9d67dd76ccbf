"""A minimal Redis server (PING, SET, GET; RESP and inline) on the standard library's asynchat.

Written the way asynchat is meant to be used: a CRLF terminator for lines,
an integer terminator for each bulk.  Python 3.11 only (asynchat left the
standard library in 3.12).  Run: ``python bench/peers/asynchat_redis.py PORT``.
"""

from __future__ import annotations

import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asynchat
    import asyncore

from minimal_redis import execute


class RedisChannel(asynchat.async_chat):
    """One client: lines, then bulks framed by byte counts."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.set_terminator(b"\r\n")
        self.parts: list[bytes] = []
        self.args: list[bytes] = []
        self.remaining = 0
        self.in_bulk = False

    def collect_incoming_data(self, data: bytes) -> None:
        self.parts.append(data)

    def found_terminator(self) -> None:
        data = b"".join(self.parts)
        self.parts = []
        if self.in_bulk:
            self.args.append(data[:-2])
            self.in_bulk = False
            self.remaining -= 1
            self.set_terminator(b"\r\n")
            if not self.remaining:
                self.push(execute(self.args))
                self.args = []
        elif self.remaining:
            self.in_bulk = True
            self.set_terminator(int(data[1:]) + 2)
        elif data[:1] == b"*":
            self.remaining = int(data[1:])
        elif data:
            self.push(execute(data.split()))


class Server(asyncore.dispatcher):
    """Accepts clients."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind(("127.0.0.1", port))
        self.listen(1024)

    def handle_accepted(self, sock: socket.socket, addr: object) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        RedisChannel(sock)


if __name__ == "__main__":
    Server(int(sys.argv[1]))
    asyncore.loop(timeout=1.0, use_poll=True)
