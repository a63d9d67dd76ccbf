"""The peer for bench_http.py: an HTTP/1.1 server on asyncio with h11 doing the parsing.

The same work as linechat's HTTP service for the benchmark's two requests,
written the efficient asyncio way (a ``Protocol`` with ``data_received``, no
streams; keep-alive, pipelined requests answered in order) with h11 used as
its documentation shows, for both directions:

- ``GET /health``: a small JSON body built per request;
- ``GET /api/v1/messages?limit=N`` (with ``--maildir DIR``): the newest
  messages of a Maildir as JSON, through the same index linechat's service
  uses (``linechat.services.smtp.inbox``), so only the HTTP layer differs.

Run: ``python bench/peers/asyncio_h11_http.py [--uvloop] [--maildir DIR]``; prints the port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11

REASON = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}
# Made once: json.dumps with options would build an encoder per call.
ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


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
        path, _, query = self.target.partition(b"?")
        if b"%" in path:
            path = unquote(path.decode("utf-8", "replace")).encode()
        if path == b"/health":
            status = 200
            data: Any = {"status": "ok", "services": {"http": {"connections": len(self.server.connections)}}}
        elif path == b"/api/v1/messages" and self.server.inbox is not None:
            fields = dict(parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True))
            status, data = 200, self.server.list_messages(fields)
        else:
            status, data = 404, {"error": "Not Found"}
        body = ENCODE(data).encode()
        headers = [("server", "peer"), ("content-type", "application/json"), ("content-length", str(len(body)))]
        conn = self.conn
        return (
            conn.send(h11.Response(status_code=status, headers=headers, reason=REASON[status]))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )


class Server:
    """The open connections (reported by /health, as linechat's service does) and the inbox."""

    def __init__(self, maildir: str | None) -> None:
        self.connections: set[HttpProtocol] = set()
        self.inbox: Any = None
        if maildir:
            from linechat.services.smtp.inbox import Inbox

            self.inbox = Inbox(Path(maildir))
            self.inbox.scan()

    def list_messages(self, query: dict[str, str]) -> dict[str, Any]:
        """The page of newest messages, as linechat's ``GET /api/v1/messages`` answers it."""
        from linechat.services.smtp.inbox import Query

        def number(name: str, default: int, low: int, high: int) -> int:
            try:
                value = int(query.get(name, default))
            except ValueError:
                value = default
            return max(low, min(high, value))

        offset = number("offset", 0, 0, 1 << 30)
        limit = number("limit", 50, 1, 1000)
        wanted = Query(
            to=query.get("to") or None,
            sender=query.get("from") or None,
            subject=query.get("subject") or None,
            text=query.get("text") or query.get("q") or None,
        )
        total, page = self.inbox.list(wanted, offset, limit)
        return {
            "total": total,
            "offset": offset,
            "limit": limit,
            "count": len(page),
            "messages": [m.summary() for m in page],
        }


async def main(maildir: str | None) -> None:
    server = Server(maildir)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: HttpProtocol(server), "127.0.0.1", 0, backlog=512)
    print(listener.sockets[0].getsockname()[1], flush=True)
    await listener.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--maildir")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(args.maildir))
