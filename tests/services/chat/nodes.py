"""A redis-server and ``linechat serve --only chat`` nodes sharing it, for the backplane's tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from irc_clients import DEADLINE, read_until
from linechat.testing import LineClient, ServeProcess, connect_when_listening, free_port

LINECHAT = str(Path(sys.executable).parent / "linechat")
REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """A throw-away redis-server (no persistence) on a loopback port; stop() and start() keep the port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, prefix: Sequence[str] = ()) -> None:
        self.host = host
        self.port = port or free_port()
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL the nodes are given."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and wait until it answers."""
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [*self.prefix, REDIS_SERVER, "--port", str(self.port), "--bind", self.host, "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        connect_when_listening(self.port, self.host, within=DEADLINE).close()

    def stop(self) -> None:
        """Stop redis-server at once (SIGKILL: what a crash looks like to the nodes)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class LinechatRedis(RedisServer):
    """linechat's own Redis service (``linechat serve --only redis``) in place of redis-server."""

    def __init__(self, cwd: Path) -> None:
        super().__init__()
        self.cwd = cwd

    def start(self) -> None:
        """Start the service and wait until it listens."""
        self.proc = subprocess.Popen(
            [LINECHAT, "serve", "--only", "redis", "--set", f"services.redis.port={self.port}"],
            cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        connect_when_listening(self.port, self.host, within=DEADLINE).close()


class Node(ServeProcess):
    """One ``linechat serve --only chat`` process on the Redis backplane, its JSON log collected."""

    def __init__(
        self,
        cwd: Path,
        redis_url: str,
        *,
        # Long unless a test kills a node to see it reaped: a live node that a busy machine holds up past
        # the timeout is declared dead by the others, which no test but those means to see.
        node_timeout: float = 60.0,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port, self.irc_port = free_port(), free_port()
        settings = {
            "port": self.port,
            "irc_port": self.irc_port,
            "host": host,
            "backplane": "redis",
            "redis_url": redis_url,
            "node_timeout": node_timeout,
            "ping_interval": 0,
        }
        args = [arg for key, value in settings.items() for arg in ("--set", f"services.chat.{key}={value}")]
        super().__init__(["--only", "chat", *args, *extra], cwd=cwd, prefix=prefix, timeout=DEADLINE)

    def connected(self, times: int = 1) -> None:
        """Wait until the node has joined the backplane and read the network's state *times* times."""
        self.wait_for(lambda events: sum(e["event"] == "backplane_synced" for e in events) >= times)

    @property
    def irc_address(self) -> tuple[str, int]:
        """Where its IRC listener is."""
        return (self.host, self.irc_port)

    def telnet(self, nick: str) -> LineClient:
        """A plain-text user called *nick*, in the default room."""
        client = LineClient.from_socket(connect_when_listening(self.port, self.host, within=DEADLINE))
        read_until(client, b"nickname")
        client.send(nick + "\r\n")
        read_until(client, b"You are in")
        return client
