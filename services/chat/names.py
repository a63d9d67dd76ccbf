"""Nick and room names: what is valid, and when two names are the same."""

from __future__ import annotations

import re

__all__ = ["clean_text", "fold", "valid_nick", "valid_room"]

# Letters, digits and the punctuation IRC has always allowed in nicks; the
# first character may not be a digit or '-'.  ASCII only, so both dialects
# and every client agree on what a nick is.
_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")
# Rooms start with '#'; no blanks, commas, colons or control characters,
# which would break IRC's parameter syntax.
_ROOM = re.compile(r"#[^\x00-\x20\x7f,:]+\Z")
_CONTROL = re.compile(r"[\x00\r\n]")

_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """Case-fold a nick or room name the way the server compares them (ASCII casemapping)."""
    return name.translate(_FOLD)


def valid_nick(nick: str, max_len: int) -> bool:
    """True if *nick* may be used as a nickname."""
    return 0 < len(nick) <= max_len and _NICK.match(nick) is not None


def valid_room(room: str, max_len: int) -> bool:
    """True if *room* may be used as a room name."""
    return 1 < len(room) <= max_len and _ROOM.match(room) is not None


def clean_text(text: str) -> str:
    """Drop the characters that could end or split a line on the other dialect's wire."""
    return _CONTROL.sub("", text)
