"""Cross-protocol defence: recognise HTTP sent to a line service (a browser made to post to it) and log it sparingly.

A web page can make a browser send an HTTP request to any port the browser
reaches; a line protocol that runs every line it gets would then run the
request's body as commands.  Services call :func:`is_http_request_line` (or
:func:`is_http_header`) on input that cannot be legitimate at that point,
refuse it, close, and report it with :func:`report_cross_protocol`, which logs
at most once a minute per service (an attack page can open connections in a
loop: the log stays bounded).
"""

from __future__ import annotations

import ipaddress
import time
import weakref
from typing import Any

__all__ = [
    "HTTP_METHODS",
    "is_http_header",
    "is_http_request_line",
    "is_loopback_host",
    "is_loopback_peer",
    "report_cross_protocol",
]

#: Request methods a browser (fetch, a form, XHR) can send.
HTTP_METHODS = frozenset((b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE"))

_QUIET_SECONDS = 60.0
# Per service object, so that each running service (and each test's) has its own minute.
_last_report: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_suppressed: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def is_http_request_line(line: bytes | str) -> bool:
    """True for ``METHOD target HTTP/x.y`` (any case for the method, as browsers never vary it anyway)."""
    raw = line.encode("latin-1", "replace") if isinstance(line, str) else line
    words = raw.split()
    return len(words) == 3 and words[0].upper() in HTTP_METHODS and words[2].startswith(b"HTTP/")


def is_http_header(line: bytes | str, name: bytes = b"host") -> bool:
    """True for a ``Name: value`` header line of the given name (``Host:`` by default), any case."""
    raw = line.encode("latin-1", "replace") if isinstance(line, str) else line
    head = raw.lstrip()[: len(name) + 1]
    return head.lower() == name.lower() + b":"


def report_cross_protocol(log: Any, service: Any, what: str) -> None:
    """Log a refused HTTP request once a minute per service at most (how many were not logged goes with it)."""
    now = time.monotonic()
    last = _last_report.get(service)
    if last is not None and now - last < _QUIET_SECONDS:
        _suppressed[service] = _suppressed.get(service, 0) + 1
        return
    _last_report[service] = now
    log.warning(
        "possible_security_attack",
        message=(
            "Possible SECURITY ATTACK detected: something sent an HTTP request to this port, likely a web page "
            "attempting cross-protocol scripting. Connection aborted."
        ),
        saw=what,
        not_logged_since_last=_suppressed.pop(service, 0),
    )


def is_loopback_peer(peer: tuple[str, int] | None) -> bool:
    """True for a peer on the loopback interface (127.0.0.0/8, ::1, IPv4-mapped loopback) or a Unix socket."""
    if not peer or not isinstance(peer, tuple) or not peer[0]:
        return True  # a Unix socket (or no address at all): local by construction
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback_host(host: str) -> bool:
    """True when a bind address only reaches this machine (``localhost``, 127.x, ::1)."""
    if host == "localhost":
        return True
    return is_loopback_peer((host, 0)) if host else False
