"""A chat room server written the straightforward asyncio way, as a benchmark peer.

It speaks the slice of the plain-text chat dialect the fan-out benchmark
uses: a greeting, the nickname as the first line, everyone in one room,
every further line said to the others as ``<nick> text``.  Each line is
encoded once and written to every member with ``StreamWriter.write``.

Run: ``python bench/peers/asyncio_chat.py [--port N] [--uvloop]``; it prints
``port N`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


class Room:
    """One room: the writers of its members."""

    def __init__(self) -> None:
        self.members: dict[asyncio.StreamWriter, str] = {}

    def broadcast(self, data: bytes, exclude: asyncio.StreamWriter | None = None) -> None:
        """Write *data* to every member but *exclude*."""
        for writer in list(self.members):
            if writer is not exclude and not writer.is_closing():
                writer.write(data)


ROOM = Room()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection."""
    writer.write(b"*** Welcome to asyncio chat.\r\n*** What is your nickname?\r\n")
    nick = ""
    try:
        line = await reader.readline()
        if not line:
            return
        nick = line.decode("utf-8").strip()
        ROOM.members[writer] = nick
        ROOM.broadcast(f"*** {nick} joined #bench\r\n".encode())
        writer.write(f"*** You are in #bench ({len(ROOM.members)} here).\r\n".encode())
        while True:
            line = await reader.readline()
            if not line:
                break
            text = line.decode("utf-8").rstrip("\r\n")
            ROOM.broadcast(f"<{nick}> {text}\r\n".encode(), exclude=writer)
    except (ConnectionError, UnicodeDecodeError):
        pass
    finally:
        ROOM.members.pop(writer, None)
        if nick:
            ROOM.broadcast(f"*** {nick} quit\r\n".encode())
        writer.close()


async def main(port: int) -> None:
    """Listen and serve forever."""
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of the default loop")
    options = parser.parse_args()
    if options.uvloop:
        import uvloop

        uvloop.install()
    try:
        asyncio.run(main(options.port))
    except KeyboardInterrupt:
        sys.exit(0)
