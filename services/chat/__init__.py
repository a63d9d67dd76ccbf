"""The chat service: rooms shared by plain-text (telnet) users and IRC clients.

Two listeners, one room model: ``port`` speaks plain text, ``irc_port``
speaks IRC.  Rooms and the nick namespace live behind a
:class:`~services.chat.backplane.Backplane`; the default keeps them in this process.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from linechat import ListenerSpec, Service, ServiceContext, ServiceSettings
from linechat.auth import UsersFile
from linechat.services.chat.backplane import Backplane, ChannelModes, Event, LocalBackplane, Member, RoomInfo
from linechat.services.chat.irc import IrcSession
from linechat.services.chat.plain import PlainSession
from linechat.services.chat.session import ChatSession
from pydantic import Field

if TYPE_CHECKING:
    from linechat.reactor import Reactor

__all__ = [
    "Backplane",
    "ChannelModes",
    "ChatService",
    "ChatSettings",
    "Event",
    "IrcSession",
    "LocalBackplane",
    "Member",
    "PlainSession",
    "RoomInfo",
]


class ChatSettings(ServiceSettings):
    """Settings of the chat service."""

    port: int = Field(7000, ge=0, le=65535, description="plain-text (telnet) port")
    irc_port: int = Field(6667, ge=0, le=65535, description="IRC port")
    irc_tls_port: int = Field(0, ge=0, le=65535, description="IRC over TLS (6697 by convention; 0: off)")
    password: str | None = Field(
        None, description="server password IRC clients must send with PASS (a `linechat hash-password` hash, or text)"
    )
    sasl_users_file: Path | None = Field(
        None, description="name:hash lines (`linechat hash-password`): offers SASL PLAIN through CAP (sasl)"
    )
    # IRC's own limit, 512 bytes with CR LF; plain-text lines share it.
    max_line: int = Field(512, ge=16, description="longest input line in bytes")
    # Chat users may lurk, so the limit is long; IRC clients answer PINGs and
    # so are never silent that long, and vanished peers are found by TCP keepalive.
    idle_timeout: float | None = Field(
        3600.0, ge=0, description="seconds of silence before a peer is dropped (0 or null: never)"
    )
    # A chat peer needs little buffered output; past the hard limit it is a slow reader and cut off.
    out_high_water: int = Field(256 << 10, ge=1024, description="queued output that pauses reading from a peer")
    out_low_water: int = Field(64 << 10, ge=0, description="queued output that resumes reading")
    out_hard_limit: int = Field(1 << 20, ge=1024, description="queued output that disconnects a slow reader")
    out_soft_limit: int | None = Field(
        512 << 10, ge=1024, description="queued output a reader may stay above for out_soft_seconds"
    )
    out_soft_seconds: float = Field(30.0, gt=0, description="grace time above out_soft_limit before a disconnect")
    # The kernel's send buffer is memory a slow reader holds too; on some
    # systems it defaults to megabytes, hiding a stalled peer from out_hard_limit.
    server_name: str = Field("linechat", min_length=1, description="the server's name in IRC prefixes")
    network: str = Field("linechat", min_length=1, description="the network name shown to users")
    motd: str = Field("", description="message of the day for IRC clients (empty: 422)")
    default_room: str = Field("#lobby", description="room a plain-text user enters after choosing a nick ('' none)")
    history: int = Field(0, ge=0, le=10000, description="messages replayed to who joins a room (0: off)")
    nick_len: int = Field(30, ge=1, le=100, description="longest nickname")
    room_len: int = Field(50, ge=2, le=200, description="longest room name, '#' included")
    max_rooms: int = Field(50, ge=1, description="rooms one IRC user may be in at once")
    topic_len: int = Field(300, ge=1, le=390, description="longest topic in bytes (TOPICLEN)")
    user_len: int = Field(10, ge=1, le=30, description="longest user name shown in nick!user@host (USERLEN)")
    max_targets: int = Field(4, ge=1, le=50, description="targets of one PRIVMSG/NOTICE (MAXTARGETS)")
    default_modes: str = Field("nt", pattern=r"^[imnst]*$", description="modes a new room starts with")
    plain_formatting: Literal["strip", "ansi"] = Field(
        "strip", description="IRC bold/colour codes for telnet users: removed, or drawn as ANSI"
    )
    flood_rate: float = Field(4.0, ge=0, description="lines a second a client may send on average (0: no limit)")
    flood_burst: int = Field(20, ge=1, description="lines a client may send at once before being slowed down")
    register_timeout: float = Field(60.0, ge=0, description="seconds to choose a nick (IRC: register) (0: no limit)")
    whowas: int = Field(200, ge=0, le=100000, description="departed nicks WHOWAS remembers")
    admin: str = Field("", description="who runs this server (ADMIN)")
    admin_email: str = Field("", description="how to reach them (ADMIN)")
    ping_interval: float = Field(120.0, ge=0, description="seconds of IRC silence before the server PINGs (0: never)")
    ping_timeout: float = Field(60.0, gt=0, description="seconds to wait for the answer to a PING")
    opers: dict[str, str] = Field(
        default_factory=dict,
        description="IRC operators: name -> scrypt hash (`linechat hash-password NAME` makes one)",
    )
    backplane: Literal["local", "redis"] = Field(
        "local", description="where rooms live: this process (local), or shared by every node on redis_url (redis)"
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="the Redis server the nodes share (backplane = redis)"
    )
    redis_prefix: str = Field("linechat:chat:", min_length=1, description="prefix of the backplane's Redis keys")
    node_timeout: float = Field(
        15.0, ge=1.0, description="seconds without a heartbeat before a node's users are quit on the others"
    )
    redis_timeout: float = Field(
        0.5, gt=0, description="longest wait for Redis on the reactor's thread (a nick claim); then a local claim"
    )
    redis_queue: int = Field(10000, ge=100, description="changes queued for Redis at most (then dropped and re-sent)")


class ChatService(Service):
    """Multi-room chat for telnet users and IRC clients, in the same rooms."""

    name = "chat"
    Settings = ChatSettings
    description = "multi-room chat: plain text on port, IRC on irc_port"
    #: The class can share processes only through a shared backplane: see :meth:`can_share_processes`.
    multiprocess = False

    settings: ChatSettings

    def __init__(
        self, settings: ServiceSettings, context: ServiceContext | None = None, *, reactor: Reactor | None = None
    ) -> None:
        super().__init__(settings, context, reactor=reactor)
        self.backplane: Backplane = self.make_backplane()
        self._dirty: list[ChatSession] = []  # sessions with room traffic to push this turn
        self.created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.started = time.time()
        # Who was here: (nick, user, host, realname, when), newest last.
        self.whowas: deque[tuple[str, str, str, str, float]] = deque(maxlen=self.settings.whowas or None)
        self.max_users = 0  # the most nicks held at once (LUSERS)
        #: Accounts for SASL PLAIN (None: SASL is not offered).
        self.sasl_users = UsersFile(self.settings.sasl_users_file) if self.settings.sasl_users_file else None

    def can_share_processes(self) -> bool:
        """True with a shared (Redis) backplane: every process then sees the same rooms and nicks."""
        return self.settings.backplane != "local"

    def start(self) -> None:
        """Connect a shared backplane (in the serving process, after the reactor exists)."""
        start = getattr(self.backplane, "start", None)
        if start is not None:
            start()

    def stop(self) -> None:
        """Leave a shared backplane, so the other nodes quit this one's users at once."""
        close = getattr(self.backplane, "close", None)
        if close is not None:
            close()

    def remember(self, session: ChatSession) -> None:
        """Keep *session*'s nick for WHOWAS (it quits or changes nick)."""
        if self.settings.whowas:
            self.whowas.append((session.nick, session.user, session.host, session.realname, time.time()))

    def flush_soon(self, session: ChatSession) -> None:
        """Have *session*'s queued room traffic pushed at the end of this reactor turn."""
        if not self._dirty:
            self.reactor.call_soon(self._flush)
        self._dirty.append(session)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            session.flush()

    def make_backplane(self) -> Backplane:
        """Build the room registry: in this process, or shared through Redis (``backplane``)."""
        settings = self.settings
        if settings.backplane == "redis":
            from linechat.services.chat.redis_backplane import RedisBackplane

            return RedisBackplane(
                self.reactor,
                settings.redis_url,
                prefix=settings.redis_prefix,
                node_timeout=settings.node_timeout,
                call_timeout=settings.redis_timeout,
                queue_size=settings.redis_queue,
                history=settings.history,
                default_modes=settings.default_modes,
                server_name=settings.server_name,
                log=self.log,
            )
        return LocalBackplane(history=settings.history, default_modes=settings.default_modes)

    def listeners(self) -> list[ListenerSpec]:
        """Plain text on ``port`` (listener "main"), IRC on ``irc_port`` (listener "irc")."""
        settings = self.settings
        specs = [
            ListenerSpec(PlainSession, settings.host, settings.port, name="main"),
            ListenerSpec(IrcSession, settings.host, settings.irc_port, name="irc"),
        ]
        if settings.irc_tls_port:
            specs.append(ListenerSpec(IrcSession, settings.host, settings.irc_tls_port, name="irc-tls", tls=True))
        return specs
