"""Parsing the arguments of MAIL and RCPT: ``FROM:<path> params`` / ``TO:<path> params``."""

from __future__ import annotations

__all__ = ["PathError", "parse_path_argument"]


class PathError(ValueError):
    """The argument of MAIL or RCPT is not valid syntax."""


def parse_path_argument(arg: str, keyword: str, allow_unbracketed: bool = False) -> tuple[str, dict[str, str | None]]:
    """Split ``KEYWORD:<address> [PARAM[=VALUE] ...]`` into the address and its parameters.

    Parameter names are upper-cased.  A source route (``<@a,@b:user@c>``) is
    dropped, as RFC 5321 section 4.1.1.3 asks servers to do.  Whitespace after
    the colon is tolerated because widely used clients send it.  With
    *allow_unbracketed*, ``FROM:a@b`` (no angle brackets, as aiosmtpd and most
    MTAs accept) is read as ``FROM:<a@b>``; the address then ends at the first space.
    """
    head = keyword + ":"
    if arg[: len(head)].upper() != head:
        raise PathError(f"expected {head}<address>")
    rest = arg[len(head) :].lstrip(" ")
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        address = rest[1:end]
        params = _parse_params(rest[end + 1 :])
    elif allow_unbracketed and rest and not rest.startswith(('"', ">")):
        address, space, tail = rest.partition(" ")
        if ">" in address or "<" in address:
            raise PathError("unbalanced <>")
        params = _parse_params(space + tail)
    else:
        raise PathError("the address must be enclosed in <>")
    if address.startswith("@"):
        colon = address.find(":")
        if colon < 0:
            raise PathError("bad source route")
        address = address[colon + 1 :]
    _check_address(address)
    return address, params


def _closing_bracket(text: str) -> int:
    """Index of the ``>`` that ends the path, skipping quoted strings and escapes."""
    quoted = False
    escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    raise PathError("missing closing >")


def _parse_params(text: str) -> dict[str, str | None]:
    if text and not text.startswith(" "):
        raise PathError("parameters must follow the address after a space")
    params: dict[str, str | None] = {}
    for word in text.split():
        name, sep, value = word.partition("=")
        if not name or (sep and not value):
            raise PathError(f"bad parameter {word!r}")
        params[name.upper()] = value if sep else None
    return params


def _check_address(address: str) -> None:
    """Reject what can never be a mailbox: controls, unquoted spaces, a missing part around @."""
    if any(ord(char) < 32 or ord(char) == 127 for char in address):
        raise PathError("control characters in the address")
    if not address:
        return  # the null path; the caller decides where it is allowed
    local, at, domain = address.rpartition("@")
    if not at:
        # Only RCPT TO:<postmaster> may omit the domain; the caller checks it.
        local, domain = address, ""
    elif not local or not domain:
        raise PathError("empty local part or domain")
    if not (local.startswith('"') and local.endswith('"') and len(local) >= 2) and " " in local:
        raise PathError("spaces in an unquoted local part")
    if " " in domain or "@" in domain:
        raise PathError("bad domain")
