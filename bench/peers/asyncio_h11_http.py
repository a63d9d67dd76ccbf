"""The peer for bench_http.py: an HTTP/1.1 server on asyncio with h11 doing the parsing.

The same work as linechat's HTTP service for ``GET /health`` (a JSON body
built per request, keep-alive, pipelined requests answered in order), written
the efficient asyncio way: a ``Protocol`` with ``data_received``, no streams.
Run: ``python bench/peers/asyncio_h11_http.py [--uvloop]``; prints the port.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import h11

REASON = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}


class HttpProtocol(asyncio.Protocol):
    """One connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn = h11.Connection(h11.SERVER)
        self.transport: Any = None
        self.target = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        out = []
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                self.transport.write(b"".join(out) + b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                self.transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Request):
                self.target = event.target
            elif isinstance(event, h11.EndOfMessage):
                out.append(self.respond())
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    self.transport.write(b"".join(out))
                    self.transport.close()
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return
        if out:
            self.transport.write(b"".join(out))

    def respond(self) -> bytes:
        if self.target == b"/health":
            status = 200
            data = {"status": "ok", "services": {"http": {"connections": len(self.server.connections)}}}
        else:
            status, data = 404, {"error": "Not Found"}
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [("server", "peer"), ("content-type", "application/json"), ("content-length", str(len(body)))]
        conn = self.conn
        return (
            conn.send(h11.Response(status_code=status, headers=headers, reason=REASON[status]))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )


class Server:
    """The open connections (reported by /health, as linechat's service does)."""

    def __init__(self) -> None:
        self.connections: set[HttpProtocol] = set()


async def main() -> None:
    server = Server()
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: HttpProtocol(server), "127.0.0.1", 0, backlog=512)
    print(listener.sockets[0].getsockname()[1], flush=True)
    await listener.serve_forever()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main())
