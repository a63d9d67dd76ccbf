"""A minimal Redis server (PING, SET, GET; RESP and inline) on asyncio, optionally on uvloop.

Written the straightforward fast way for asyncio: a Protocol whose
``data_received`` parses every complete command in the buffer and writes
all their replies at once.  Run: ``python bench/peers/asyncio_redis.py PORT [--uvloop]``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys

from minimal_redis import execute


def parse(buf: bytes, pos: int) -> tuple[list[bytes] | None, int]:
    """Parse one command at *pos*; return (args, next position), args None if incomplete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None, pos
    if buf[pos] != 42:  # inline
        return buf[pos:nl].split(), nl + 2
    count = int(buf[pos + 1 : nl])
    at = nl + 2
    args = []
    for _ in range(count):
        nl = buf.find(b"\r\n", at)
        if nl < 0:
            return None, pos
        size = int(buf[at + 1 : nl])
        start = nl + 2
        if start + size + 2 > len(buf):
            return None, pos
        args.append(buf[start : start + size])
        at = start + size + 2
    return args, at


class RedisProtocol(asyncio.Protocol):
    """One client connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        out = []
        while pos < len(buf):
            args, pos = parse(buf, pos)
            if args is None:
                break
            if args:
                out.append(execute(args))
        self.buf = buf[pos:]
        if out:
            self.transport.write(b"".join(out))


async def main(port: int, tls: ssl.SSLContext | None = None) -> None:
    """Serve forever (over TLS when given a server context)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RedisProtocol, "127.0.0.1", port, backlog=1024, ssl=tls)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    context = None
    if "--tls" in sys.argv:
        # --tls CERT KEY: asyncio's own TLS (ssl.SSLObject over memory BIOs, as ours).
        at = sys.argv.index("--tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
    asyncio.run(main(int(sys.argv[1]), context))
