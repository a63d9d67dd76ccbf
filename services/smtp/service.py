"""The SMTP service: an ESMTP server (RFC 5321) that stores the mail it accepts in Maildirs."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import IO, Any, Literal

from linechat import Pending, Protocol, Reply, Rule, Service, ServiceSettings, command, terminator
from linechat.auth import Credentials, SaslError, decode_login_step, decode_plain
from linechat.crossprotocol import is_http_header, is_http_request_line, report_cross_protocol
from linechat.services.smtp.address import PathError, parse_path_argument
from linechat.services.smtp.data import INJECTED, DataReader
from linechat.services.smtp.inbox import Inbox
from linechat.services.smtp.maildir import MaildirWriter, clean_tmp, safe_folder_name
from pydantic import Field, model_validator

__all__ = ["Envelope", "SmtpProtocol", "SmtpService", "SmtpSettings", "format_reply"]

#: What :meth:`SmtpService.handle_message` may return instead of None (accepted).
Verdict = tuple[int, str]

# How much of a message's head is read to find its To/Cc (a header block is rarely over a few KiB).
_HEAD_LIMIT = 256 << 10

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(\s|$)")


class SmtpSettings(ServiceSettings):
    """Settings of the SMTP service."""

    port: int = Field(8025, ge=0, le=65535, description="TCP port (0: any free port)")
    max_line: int = Field(512, ge=64, description="longest command line in octets (RFC 5321: 512)")
    idle_timeout: float | None = Field(
        300.0, gt=0, description="seconds without input, in any phase, before 421 and close (RFC 5321: 5 min)"
    )
    hostname: str = Field(default_factory=socket.gethostname, description="name announced in replies and headers")
    max_message_size: int = Field(32 << 20, ge=1, description="largest message in octets (advertised as SIZE)")
    max_recipients: int = Field(100, ge=1, description="recipients per message before 452")
    maildir: Path | None = Field(None, description="Maildir (or folder of Maildirs); default <data_dir>/maildir")
    delivery: Literal["shared", "per_recipient"] = Field(
        "shared", description="one Maildir for all mail, or one Maildir per recipient under `maildir`"
    )
    spool_threshold: int = Field(1 << 20, ge=0, description="message bytes kept in memory before spooling to disk")
    spool_dir: Path | None = Field(None, description="where large messages spool (default: the system temp dir)")
    delivery_threads: int = Field(4, ge=0, description="threads storing messages (0: on the event loop)")
    fsync: bool = Field(True, description="fsync each message and its directory before answering 250")
    allow_unbracketed: bool = Field(
        True, description="accept MAIL FROM:a@b and RCPT TO:a@b without <> (as aiosmtpd and most MTAs do)"
    )
    lmtp: bool = Field(False, description="speak LMTP (RFC 2033): LHLO, and one reply per recipient after DATA")
    hidden_recipients: Literal["bcc", "x-envelope-to", "none"] = Field(
        "bcc", description="header recording envelope recipients absent from To/Cc (Bcc: as Mailpit shows them)"
    )
    retention_max_messages: int | None = Field(
        None, ge=1, description="keep at most this many messages; the oldest go first (None: no limit)"
    )
    retention_max_age: float | None = Field(
        None, gt=0, description="delete messages older than this many seconds (None: keep them)"
    )
    starttls: bool = Field(True, description="offer STARTTLS (with the development certificate when none is set)")
    auth: Literal["off", "any", "users"] = Field(
        "any", description="AUTH PLAIN/LOGIN: off, any credentials accepted (a development sink), or auth_users_file"
    )
    auth_users_file: Path | None = Field(None, description="name:hash lines (`linechat hash-password`) for auth=users")
    auth_plaintext: bool = Field(
        False, description="offer AUTH on connections that are not encrypted (passwords then cross in the clear)"
    )
    auth_required: bool = Field(False, description="refuse MAIL FROM (530) until the client has authenticated")

    @model_validator(mode="after")
    def _users_file_for_users(self) -> SmtpSettings:
        if self.auth == "users" and self.auth_users_file is None:
            raise ValueError("auth = 'users' needs auth_users_file")
        return self


@dataclass
class Envelope:
    """One accepted message: the envelope, the session it came from, and its content."""

    id: str
    mail_from: str
    rcpt_tos: list[str]
    mail_options: dict[str, str | None]
    helo: str
    esmtp: bool
    peer: tuple[str, int] | None
    received_at: datetime
    size: int
    file: IO[bytes] = field(repr=False)
    lmtp: bool = False
    #: The TLS protocol and cipher the message came over (None: in the clear).
    tls: str | None = None
    #: The name the client authenticated as (None: it did not).
    auth_user: str | None = None

    @property
    def smtputf8(self) -> bool:
        """True when the client asked for SMTPUTF8 (RFC 6531) in MAIL FROM."""
        return "SMTPUTF8" in self.mail_options

    @property
    def body_type(self) -> str:
        """``7BIT`` or ``8BITMIME`` as declared by ``BODY=`` (RFC 6152)."""
        return (self.mail_options.get("BODY") or "7BIT").upper()

    def read_content(self) -> bytes:
        """The whole message as received (without our Received: header)."""
        self.file.seek(0)
        return self.file.read()


def _valid_helo(arg: str) -> bool:
    # The name ends up in our Received: header: no spaces, no control characters.
    return bool(arg) and arg.isprintable() and " " not in arg


def _header_safe(text: str) -> str:
    """*text* without characters that could end or fold a header line."""
    return "".join(ch if ch.isprintable() and ch not in "()\\" else "?" for ch in text)[:200]


def format_reply(code: int, text: str) -> str:
    """Build a reply line (or lines, for text with newlines), adding an enhanced status code if absent."""
    if not 200 <= code <= 599:
        raise ValueError(f"not an SMTP reply code: {code}")
    lines = text.splitlines() or [""]
    default = f"{code // 100}.0.0"
    out = []
    for index, line in enumerate(lines):
        if not _ENHANCED.match(line):
            line = f"{default} {line}".rstrip()
        sep = " " if index == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{line}")
    return "\r\n".join(out)


class SmtpProtocol(Protocol):
    """One SMTP session: greeting, EHLO, transactions, DATA."""

    line_delimiter = b"\n"
    line_ending = b"\r\n"
    initial_state = "fresh"  # fresh -> greeted -> mail -> rcpt (-> greeted after DATA/RSET)
    #: Sent to a connection refused for lack of room (RFC 5321 4.3.2: 421 may answer a connection).
    refusal_line = "421 4.3.2 Too many connections, try again later"

    service: SmtpService
    settings: SmtpSettings

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.helo: str | None = None
        self.esmtp = False
        #: The name this session authenticated as (AUTH), or None.
        self.auth_user: str | None = None
        self._sasl: tuple[str, str] | None = None  # (mechanism, user so far) while AUTH waits for a response
        self._reset_transaction()
        self._reader: DataReader | None = None

    # ------------------------------------------------------------------ helpers

    def _reset_transaction(self) -> None:
        self.mail_from: str | None = None
        self.mail_options: dict[str, str | None] = {}
        self.rcpt_tos: list[str] = []
        if self.helo is not None:
            self.state = "greeted"

    def _drop_data(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------ framework hooks

    def on_connect(self) -> str:
        kind = "LMTP" if self.settings.lmtp else "ESMTP"
        return f"220 {self.settings.hostname} {kind} linechat ready"

    def on_close(self) -> None:
        # A client that vanished mid-DATA: its spooled data just goes away.
        self._drop_data()

    def on_idle_timeout(self) -> str:
        self._drop_data()
        return f"421 4.4.2 {self.settings.hostname} Error: timeout exceeded, closing connection"

    def on_shutdown(self) -> str:
        self._drop_data()
        return f"421 4.3.2 {self.settings.hostname} Service shutting down, closing transmission channel"

    def on_unknown_command(self, name: str, args: list[Any]) -> str:
        return "502 5.5.2 Error: command not recognized"

    def on_arity_error(self, name: str, args: list[Any]) -> str:
        return "501 5.5.4 Syntax error in parameters or arguments"

    def on_handler_error(self, name: str | None, exc: BaseException) -> str:
        if self.rule.name == "data":
            # Mid-message we cannot tell where the client's data ends any more:
            # answer and hang up rather than read message lines as commands.
            self._drop_data()
            self.close()
        return "451 4.3.0 Error: local error in processing"

    def on_frame_too_long(self, rule: Rule, size: int) -> bool:
        if rule.is_command:
            self.send("500 5.5.2 Error: line too long")
            return True  # the rest of the line is skipped; the session goes on
        return False

    def on_empty_line(self) -> str:
        return "500 5.5.2 Error: bad syntax"

    def error(self, message: str) -> str:
        return f"500 5.5.2 Error: {message}"

    def on_abuse(self, reason: str) -> str:
        """The connection closes after this (RFC 5321 4.2.3: 421 announces it)."""
        self._drop_data()
        return f"421 4.7.0 {self.settings.hostname} Error: {reason}, closing connection"

    def reply_status(self, reply: Reply) -> str:
        if isinstance(reply, str) and reply[:1] in ("4", "5"):
            return "error"
        return "ok"

    def handle_line(self, line: bytes) -> Reply:
        """Split a command line into the verb and the rest, which SMTP parses per command."""
        if line[-1:] == b"\r":
            line = line[:-1]
        if self._sasl is not None:
            return self._sasl_response(line)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return "500 5.5.2 Error: command line is not valid UTF-8"
        text = text.strip(" \t")
        if not text:
            return self.on_empty_line()
        if is_http_request_line(text) or is_http_header(text):
            # A browser made to post here: its body must not be read as SMTP commands.
            report_cross_protocol(self.log, self.service, text[:64])
            self._drop_data()
            self.close()
            return "221 2.7.0 Error: HTTP request refused, this is an SMTP server; closing connection"
        verb, _, rest = text.partition(" ")
        rest = rest.strip(" \t")
        return self.dispatch(verb.upper(), [rest] if rest else [])

    # ------------------------------------------------------------------ session commands

    @command("HELO")
    def helo_command(self, arg: str = "") -> str:
        """HELO domain: start a plain SMTP session."""
        if self.settings.lmtp:
            return "500 5.5.1 Error: this is an LMTP server, say LHLO"
        if not _valid_helo(arg):
            return "501 5.5.4 Syntax: HELO hostname"
        self.helo = arg
        self.esmtp = False
        self._reset_transaction()
        return f"250 {self.settings.hostname}"

    @command("EHLO")
    def ehlo_command(self, arg: str = "") -> list[str]:
        """EHLO domain: start an ESMTP session and list the extensions."""
        if self.settings.lmtp:
            return ["500 5.5.1 Error: this is an LMTP server, say LHLO"]
        return self._hello(arg, "EHLO")

    @command("LHLO")
    def lhlo_command(self, arg: str = "") -> list[str]:
        """LHLO domain: start an LMTP session (RFC 2033) and list the extensions."""
        if not self.settings.lmtp:
            return ["500 5.5.2 Error: command not recognized"]
        return self._hello(arg, "LHLO")

    def _hello(self, arg: str, verb: str) -> list[str]:
        if not _valid_helo(arg):
            return [f"501 5.5.4 Syntax: {verb} hostname"]
        self.helo = arg
        self.esmtp = True
        self._reset_transaction()
        lines = [
            f"{self.settings.hostname} Hello {arg}",
            f"SIZE {self.settings.max_message_size}",
            "8BITMIME",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
        ]
        if self._starttls_offered():
            lines.append("STARTTLS")
        if self._auth_offered():
            lines.append("AUTH PLAIN LOGIN")
        lines.append("HELP")
        return [f"250-{text}" for text in lines[:-1]] + [f"250 {lines[-1]}"]

    # ------------------------------------------------------------------ STARTTLS and AUTH

    def _starttls_offered(self) -> bool:
        return self.settings.starttls and self.tls_available and not self.secure and not self.settings.lmtp

    def _auth_offered(self) -> bool:
        return self.settings.auth != "off" and (self.secure or self.settings.auth_plaintext)

    @command("STARTTLS")
    def starttls_command(self, arg: str = "") -> str:
        """STARTTLS (RFC 3207): switch to TLS; the session starts over inside it."""
        if arg:
            return "501 5.5.4 Syntax: STARTTLS"
        if self.secure:
            return "503 5.5.1 Error: TLS already active"
        if not self._starttls_offered():
            return "502 5.5.1 Error: command not implemented"
        if self.mail_from is not None:
            return "503 5.5.1 Error: STARTTLS inside a mail transaction"
        # RFC 3207 4.2: forget everything the client said before TLS.
        self.helo = None
        self.esmtp = False
        self.auth_user = None
        self._reset_transaction()
        self.state = "fresh"
        self.start_tls()
        return "220 2.0.0 Ready to start TLS"

    @command("AUTH")
    def auth_command(self, arg: str = "") -> Reply:
        """AUTH mechanism [initial-response] (RFC 4954): PLAIN or LOGIN."""
        if self.settings.auth == "off":
            return "502 5.5.1 Error: command not implemented"
        if self.helo is None or not self.esmtp:
            return "503 5.5.1 Error: send EHLO first"
        if not self._auth_offered():
            return "538 5.7.11 Encryption required for requested authentication mechanism"
        if self.auth_user is not None:
            return "503 5.5.1 Error: already authenticated"
        if self.mail_from is not None:
            return "503 5.5.1 Error: AUTH not permitted during a mail transaction"
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        initial = initial.strip()
        if mechanism == "PLAIN":
            if not initial:
                self._sasl = ("PLAIN", "")
                return "334 "
            return self._sasl_plain(initial)
        if mechanism == "LOGIN":
            if not initial:
                self._sasl = ("LOGIN", "")
                return "334 VXNlcm5hbWU6"  # "Username:"
            return self._sasl_login_user(initial)
        if not mechanism:
            return "501 5.5.4 Syntax: AUTH mechanism"
        return "504 5.5.4 Error: unrecognized authentication type"

    def _sasl_response(self, line: bytes) -> Reply:
        assert self._sasl is not None
        mechanism, user = self._sasl
        self._sasl = None
        text = line.decode("ascii", "replace").strip()
        if text == "*":
            return "501 5.7.0 Error: authentication cancelled"
        if mechanism == "PLAIN":
            return self._sasl_plain(text)
        if not user:
            return self._sasl_login_user(text)
        try:
            password = decode_login_step(text)
        except SaslError:
            return "501 5.5.2 Error: cannot decode the response"
        return self._authenticate(user, password)

    def _sasl_plain(self, response: str) -> str:
        try:
            authzid, authcid, password = decode_plain(response)
        except SaslError:
            return "501 5.5.2 Error: cannot decode the response"
        if authzid and authzid != authcid:
            return "535 5.7.8 Error: authorization identity differs from the login"
        return self._authenticate(authcid, password)

    def _sasl_login_user(self, response: str) -> str:
        try:
            user = decode_login_step(response)
        except SaslError:
            return "501 5.5.2 Error: cannot decode the response"
        if not user:
            return "501 5.5.2 Error: empty user name"
        self._sasl = ("LOGIN", user)
        return "334 UGFzc3dvcmQ6"  # "Password:"

    def _authenticate(self, user: str, password: str) -> str:
        if self.service.credentials.check(user, password):
            self.auth_user = user
            self.log.info("smtp_authenticated", user=user)  # never the password
            return "235 2.7.0 Authentication successful"
        self.log.info("smtp_auth_failed", user=user)
        return "535 5.7.8 Error: authentication credentials invalid"

    @command("NOOP")
    def noop_command(self, arg: str = "") -> str:
        """NOOP: do nothing (an argument is allowed and ignored)."""
        return "250 2.0.0 OK"

    @command("RSET")
    def rset_command(self, arg: str = "") -> str:
        """RSET: abort the current transaction."""
        if arg:
            return "501 5.5.4 Syntax: RSET"
        self._reset_transaction()
        return "250 2.0.0 OK"

    @command("QUIT")
    def quit_command(self, arg: str = "") -> str:
        """QUIT: say goodbye and close."""
        if arg:
            return "501 5.5.4 Syntax: QUIT"
        self.close()
        return "221 2.0.0 Bye"

    @command("VRFY")
    def vrfy_command(self, arg: str = "") -> str:
        """VRFY name: never confirms anyone (252), as most servers do."""
        if not arg:
            return "501 5.5.4 Syntax: VRFY <address>"
        return "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"

    @command("EXPN")
    def expn_command(self, arg: str = "") -> str:
        """EXPN: not implemented (mailing lists are not expanded)."""
        return "502 5.5.1 Error: command not implemented"

    @command("HELP")
    def help_command(self, arg: str = "") -> str:
        """HELP: list the commands."""
        return "214 2.0.0 Commands: HELO EHLO LHLO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"

    # ------------------------------------------------------------------ the transaction

    @command("MAIL")
    def mail_command(self, arg: str = "") -> str:
        """MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]: start a transaction."""
        if self.helo is None:
            return "503 5.5.1 Error: send HELO/EHLO first"
        if self.mail_from is not None:
            return "503 5.5.1 Error: nested MAIL command"
        if self.settings.auth_required and self.auth_user is None:
            return "530 5.7.0 Authentication required"
        try:
            address, params = parse_path_argument(arg, "FROM", self.settings.allow_unbracketed)
        except PathError as exc:
            return f"501 5.5.4 Syntax: MAIL FROM:<address> ({exc})"
        if params and not self.esmtp:
            return "555 5.5.4 MAIL FROM parameters need EHLO"
        for name, value in params.items():
            if name == "SIZE":
                if value is None or not value.isdigit():
                    return "501 5.5.4 Syntax: SIZE=<octets>"
                if int(value) > self.settings.max_message_size:
                    return "552 5.3.4 Error: message size exceeds fixed maximum message size"
            elif name == "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    return "501 5.5.4 Syntax: BODY=7BIT|8BITMIME"
            elif name == "SMTPUTF8":
                if value is not None:
                    return "501 5.5.4 Syntax: SMTPUTF8 takes no value"
            else:
                return f"555 5.5.4 Error: MAIL FROM parameter {name} not recognized"
        if not address.isascii() and "SMTPUTF8" not in params:
            return "553 5.6.7 Error: non-ASCII address needs SMTPUTF8"
        if address and "@" not in address:
            return "501 5.1.7 Error: bad sender address syntax"
        self.mail_from = address
        self.mail_options = params
        self.state = "mail"
        return "250 2.1.0 OK"

    @command("RCPT")
    def rcpt_command(self, arg: str = "") -> str:
        """RCPT TO:<address>: add a recipient."""
        if self.mail_from is None:
            return "503 5.5.1 Error: need MAIL command"
        try:
            address, params = parse_path_argument(arg, "TO", self.settings.allow_unbracketed)
        except PathError as exc:
            return f"501 5.5.4 Syntax: RCPT TO:<address> ({exc})"
        if params:
            name = next(iter(params))
            return f"555 5.5.4 Error: RCPT TO parameter {name} not recognized"
        if not address or ("@" not in address and address.lower() != "postmaster"):
            return "501 5.1.3 Error: bad recipient address syntax"
        if not address.isascii() and "SMTPUTF8" not in self.mail_options:
            return "553 5.6.7 Error: non-ASCII address needs SMTPUTF8"
        if len(self.rcpt_tos) >= self.settings.max_recipients:
            return "452 4.5.3 Error: too many recipients"
        # Refuse here what could not be stored, never after DATA (a half delivery).
        verdict = self.service.check_recipient(address)
        if verdict is not None:
            return format_reply(*verdict)
        self.rcpt_tos.append(address)
        self.state = "rcpt"
        return "250 2.1.5 OK"

    @command("DATA")
    def data_command(self, arg: str = "") -> str:
        """DATA: receive the message, up to a line holding a single dot."""
        if arg:
            return "501 5.5.4 Syntax: DATA"
        if self.mail_from is None:
            return "503 5.5.1 Error: need MAIL command"
        if not self.rcpt_tos:
            return "503 5.5.1 Error: need RCPT command"
        settings = self.settings
        self._reader = DataReader(
            settings.max_message_size,
            settings.spool_threshold,
            str(settings.spool_dir) if settings.spool_dir is not None else None,
        )
        self.state = "data"
        # The injected CRLF lets "\r\n.\r\n" also end a message with no lines.
        self.unread(INJECTED)
        self.switch("data")
        return "354 End data with <CR><LF>.<CR><LF>"

    @terminator("data", b"\r\n.\r\n", stream=True)
    def data_chunk(self, chunk: bytes, end: bool) -> Reply:
        """Receive a piece of the message; at the end, store it and answer."""
        reader = self._reader
        if reader is None:  # dropped by a farewell; the connection is closing
            return None
        if chunk:
            reader.feed(chunk)
        if not end:
            return None
        reader.finish()
        self._reader = None
        self.switch("command")
        mail_from, rcpt_tos, options = self.mail_from, self.rcpt_tos, self.mail_options
        self._reset_transaction()
        if reader.too_big:
            reader.close()
            return self._each(rcpt_tos, "552 5.3.4 Error: message size exceeds fixed maximum message size")
        if reader.error is not None:
            self.log.error("spool_failed", error=str(reader.error))
            if reader.error.errno == errno.ENOSPC:
                return self._each(rcpt_tos, "452 4.3.1 Error: insufficient system storage")
            return self._each(rcpt_tos, "451 4.3.0 Error: local error in processing")
        assert mail_from is not None and self.helo is not None
        envelope = Envelope(
            id=uuid.uuid4().hex[:16].upper(),
            mail_from=mail_from,
            rcpt_tos=rcpt_tos,
            mail_options=options,
            helo=self.helo,
            esmtp=self.esmtp,
            peer=self.peer,
            received_at=datetime.now().astimezone(),
            size=reader.size,
            file=reader.file,
            lmtp=self.settings.lmtp,
            tls=self._tls_text(),
            auth_user=self.auth_user,
        )
        return self.service.submit(self, envelope, reader.close)

    def _tls_text(self) -> str | None:
        transport: Any = self.channel.transport
        if not self.secure or not hasattr(transport, "tls_version"):
            return None
        cipher = transport.cipher()
        return f"{transport.tls_version()} with cipher {cipher[0]}" if cipher else transport.tls_version()

    def _each(self, rcpt_tos: list[str], reply: str) -> str | list[str]:
        """One reply, or under LMTP the same reply once per accepted recipient."""
        return [reply] * len(rcpt_tos) if self.settings.lmtp else reply


class SmtpService(Service):
    """A local mail sink: accepts mail over ESMTP (or LMTP) and stores it in Maildirs.

    To take messages yourself, subclass and override :meth:`handle_message`.
    """

    name = "smtp"
    Settings = SmtpSettings
    protocol = SmtpProtocol
    description = "ESMTP mail sink storing to Maildir"
    starttls = True
    # Maildir delivery (a unique name in tmp/, then a rename into new/) is safe across processes.
    multiprocess = True

    settings: SmtpSettings

    @property
    def requires_authentication(self) -> bool:
        """True when mail is refused until a user from the users file logs in (the app warns otherwise)."""
        return self.settings.auth_required and self.settings.auth == "users"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer = MaildirWriter(self.settings.hostname, fsync=self.settings.fsync)
        self.maildir: Path | None = None
        #: The index of stored messages that the HTTP inbox API reads (set by :meth:`start`).
        self.inbox: Inbox | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._name_max = 255
        #: Messages handed to the delivery threads and not yet answered (a queue figure for /metrics).
        self.deliveries_pending = 0
        self._retention_timer: Any = None
        #: Who may AUTH (the settings' mode; the users file is read again when it changes).
        self.credentials = Credentials(self.settings.auth, self.settings.auth_users_file)

    def start(self) -> None:
        """Create the Maildir, clean what a crash left in tmp/, index the mail, start the delivery threads."""
        if self.settings.maildir is not None:
            self.maildir = Path(self.settings.maildir)
        elif self.data_dir is not None:
            self.maildir = Path(self.data_dir) / "maildir"
        else:
            raise ValueError("smtp: set `maildir` or run with a data directory")
        if self.settings.delivery == "shared":
            self.writer.ensure(self.maildir)
            roots = [self.maildir]
        else:
            self.maildir.mkdir(parents=True, exist_ok=True)
            roots = [p for p in self.maildir.iterdir() if (p / "new").is_dir()]
        with contextlib.suppress(OSError, ValueError):
            self._name_max = os.pathconf(self.maildir, "PC_NAME_MAX")
        for root in roots:
            removed = clean_tmp(root, self.settings.hostname)
            if removed:
                self.log.warning("tmp_cleaned", maildir=str(root), files=len(removed))
        self.inbox = Inbox(
            self.maildir,
            per_recipient=self.settings.delivery == "per_recipient",
            reactor=self.reactor,
            max_messages=self.settings.retention_max_messages,
            max_age=self.settings.retention_max_age,
        )
        self.inbox.scan()
        if self.settings.retention_max_age is not None:
            self._prune_by_age()
        if self.settings.delivery_threads:
            self._executor = ThreadPoolExecutor(self.settings.delivery_threads, thread_name_prefix="smtp-delivery")

    def stop(self) -> None:
        """Wait for deliveries in progress, so no accepted message is cut short."""
        if self._retention_timer is not None:
            self._retention_timer.cancel()
            self._retention_timer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _prune_by_age(self) -> None:
        assert self.inbox is not None and self.settings.retention_max_age is not None
        pruned = self.inbox.prune()
        if pruned:
            self.log.info("retention_pruned", messages=pruned)
        # Check again often enough that nothing outlives its age by more than a tenth of it.
        every = min(max(self.settings.retention_max_age / 10, 1.0), 3600.0)
        self._retention_timer = self.reactor.call_later(every, self._prune_by_age)

    # ------------------------------------------------------------------ the delivery hook

    def check_recipient(self, address: str) -> Verdict | None:
        """Refuse at RCPT a recipient whose copy could not be stored: None accepts, ``(code, text)`` refuses.

        Under ``delivery = "per_recipient"`` the folder name must fit the file
        system (255 bytes on most).  Override to accept only known addresses.
        """
        if self.settings.delivery != "per_recipient" or self.maildir is None:
            return None
        root = self.maildir_for(address)
        if len(os.fsencode(root.name)) > self._name_max:
            return 553, "5.1.3 Error: recipient address too long to store (mailbox name)"
        # tmp/<unique name> under the folder must fit PATH_MAX (4096) with room for the name.
        if len(os.fsencode(str(root))) > 3800:
            return 553, "5.1.3 Error: recipient address too long to store (path)"
        return None

    def handle_message(self, envelope: Envelope) -> Verdict | list[Verdict | None] | None:
        """Take an accepted message: return None to answer 250, or ``(code, text)`` to answer that.

        The default stores it with :meth:`store` (all copies or none).  Under
        LMTP with ``per_recipient`` delivery it stores each recipient's copy on
        its own and returns one verdict per recipient (a list), as LMTP lets
        the server answer each recipient apart.  Override to deliver, forward
        or reject mail yourself (call ``super().handle_message`` to store as
        well).  With ``delivery_threads > 0`` it runs in a worker thread, so it
        may block but must be thread-safe.  An exception answers 451.
        """
        if envelope.lmtp and self.settings.delivery == "per_recipient":
            return self.store_each(envelope)
        self.store(envelope)
        return None

    def maildir_for(self, recipient: str) -> Path:
        """The Maildir a recipient's copy goes to under ``delivery = "per_recipient"``."""
        assert self.maildir is not None
        return self.maildir / safe_folder_name(recipient)

    def received_header(self, envelope: Envelope, recipients: list[str] | None = None) -> bytes:
        """The ``Received:`` trace header (RFC 5321 section 4.4) put at the top of stored messages."""
        # RFC 3848 and RFC 6531 section 3.7.3 name the protocol; UTF8 when SMTPUTF8 was used.
        base = "LMTP" if envelope.lmtp else ("ESMTP" if envelope.esmtp else "SMTP")
        protocol = ("UTF8" + base.removeprefix("E")) if envelope.smtputf8 else base
        # RFC 3848: an S for TLS, an A for an authenticated session (ESMTPSA).
        protocol += ("S" if envelope.tls else "") + ("A" if envelope.auth_user else "")
        peer = f"[{envelope.peer[0]}]" if envelope.peer else "unknown"
        rcpts = envelope.rcpt_tos if recipients is None else recipients
        recipient = f"\r\n\tfor <{rcpts[0]}>" if len(rcpts) == 1 else ""
        details = ""
        if envelope.tls:
            details += f"\r\n\t(using {envelope.tls})"
        if envelope.auth_user:
            # The name only: it is the client's own claim, kept as Postfix does.
            details += f"\r\n\t(Authenticated sender: {_header_safe(envelope.auth_user)})"
        text = (
            f"Received: from {envelope.helo} ({peer}){details}\r\n"
            f"\tby {self.settings.hostname} (linechat) with {protocol} id {envelope.id}"
            f"{recipient}; {format_datetime(envelope.received_at)}\r\n"
        )
        return text.encode("utf-8")

    def envelope_headers(self, envelope: Envelope, recipients: list[str], visible: set[str] | None) -> bytes:
        """``Return-Path``, one ``Delivered-To`` per recipient, and the hidden recipients' header.

        *visible* is the lower-cased set of addresses in the message's To/Cc
        (None when its head could not be read).  Envelope recipients not in it
        (Bcc'd) are recorded as ``Bcc:`` (or ``X-Envelope-To:``, by the
        ``hidden_recipients`` setting), so a test can check who was really mailed.
        """
        lines = [f"Return-Path: <{envelope.mail_from}>"]
        lines.extend(f"Delivered-To: {rcpt}" for rcpt in recipients)
        mode = self.settings.hidden_recipients
        if mode != "none" and visible is not None:
            hidden = [rcpt for rcpt in recipients if rcpt.lower() not in visible]
            if hidden:
                # A message that kept its own Bcc: gets no second one (RFC 5322 allows one).
                name = "X-Envelope-To" if mode == "x-envelope-to" or "\0bcc" in visible else "Bcc"
                lines.append(f"{name}: " + ",\r\n\t".join(hidden))
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def store(self, envelope: Envelope) -> list[Path]:
        """Write the message durably to the Maildir(s) chosen by the settings, all copies or none."""
        copies = [self._copy(envelope, root, rcpts, self._visible(envelope)) for root, rcpts in self._roots(envelope)]
        paths = self.writer.deliver_all(copies, envelope.file)
        if self.inbox is not None:
            self.inbox.add(paths)
        return paths

    def store_each(self, envelope: Envelope) -> list[Verdict | None]:
        """Store each recipient's copy on its own (LMTP); one verdict per envelope recipient."""
        visible = self._visible(envelope)
        verdicts: dict[Path, Verdict | None] = {}
        for root, rcpts in self._roots(envelope):
            try:
                paths = self.writer.deliver_all([self._copy(envelope, root, rcpts, visible)], envelope.file)
            except Exception:
                self.log.exception("delivery_failed", id=envelope.id, maildir=str(root))
                verdicts[root] = (451, "4.3.0 Error: local error in processing")
                continue
            verdicts[root] = None
            if self.inbox is not None:
                self.inbox.add(paths)
        return [verdicts[self.maildir_for(rcpt)] for rcpt in envelope.rcpt_tos]

    def _roots(self, envelope: Envelope) -> list[tuple[Path, list[str]]]:
        assert self.maildir is not None
        if self.settings.delivery == "shared":
            return [(self.maildir, list(envelope.rcpt_tos))]
        groups: dict[Path, list[str]] = {}
        for rcpt in envelope.rcpt_tos:
            groups.setdefault(self.maildir_for(rcpt), []).append(rcpt)
        return list(groups.items())

    def _copy(self, envelope: Envelope, root: Path, rcpts: list[str], visible: set[str] | None) -> tuple[Path, bytes]:
        return root, self.envelope_headers(envelope, rcpts, visible) + self.received_header(envelope, rcpts)

    def _visible(self, envelope: Envelope) -> set[str] | None:
        """Lower-cased addresses of the message's To and Cc ("\\0bcc" marks an existing Bcc field)."""
        envelope.file.seek(0)
        head = envelope.file.read(_HEAD_LIMIT)
        end = head.find(b"\r\n\r\n")
        if head.startswith(b"\r\n"):
            return set()
        if end < 0 and len(head) == _HEAD_LIMIT:
            return None
        try:
            parsed = BytesHeaderParser(policy=compat32).parsebytes(head[: end + 2] if end >= 0 else head)
            fields = [str(v) for name in ("to", "cc") for v in parsed.get_all(name, [])]
            visible = {addr.lower() for _, addr in getaddresses(fields) if addr}
        except Exception:  # a header we cannot read: record nothing rather than guess
            return None
        if parsed.get("bcc") is not None:
            visible.add("\0bcc")
        return visible

    # ------------------------------------------------------------------ plumbing

    def submit(self, protocol: SmtpProtocol, envelope: Envelope, done: Any) -> Reply:
        """Run the hook for a complete message; the reply comes now or, from a thread, later."""
        executor = self._executor
        if executor is None:
            return self._run_hook(envelope, done)
        pending: Pending = protocol.later()

        def job() -> None:
            reply = self._run_hook(envelope, done)
            self.reactor.call_soon_threadsafe(self._delivered, pending, reply)

        self.deliveries_pending += 1
        executor.submit(job)
        return pending

    def _delivered(self, pending: Pending, reply: Reply) -> None:
        self.deliveries_pending -= 1
        pending.resolve(reply)

    def _run_hook(self, envelope: Envelope, done: Any) -> str | list[str]:
        count = len(envelope.rcpt_tos) if envelope.lmtp else 1
        try:
            verdict = self.handle_message(envelope)
            verdicts = verdict if isinstance(verdict, list) else [verdict] * count
            if len(verdicts) != count:
                raise ValueError(f"handle_message returned {len(verdicts)} verdicts for {count} recipients")
            replies = [
                "250 2.0.0 OK: queued as " + envelope.id if item is None else format_reply(*item) for item in verdicts
            ]
        except Exception:
            self.log.exception("delivery_failed", id=envelope.id)
            replies = ["451 4.3.0 Error: local error in processing"] * count
        finally:
            done()
        self.log.debug(
            "message",
            id=envelope.id,
            mail_from=envelope.mail_from,
            rcpts=len(envelope.rcpt_tos),
            size=envelope.size,
            reply=replies[0][:3],
        )
        return replies if envelope.lmtp else replies[0]
