"""Nick and room names, masks, and text made safe for the other dialect's wire or a terminal."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = [
    "clean_text",
    "fold",
    "irc_to_ansi",
    "mask_matches",
    "normalise_mask",
    "strip_formatting",
    "terminal_safe",
    "valid_nick",
    "valid_room",
    "valid_user",
]

# Letters, digits and the punctuation IRC has always allowed in nicks; the
# first character may not be a digit or '-'.  ASCII only, so both dialects
# and every client agree on what a nick is.
_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")
# Rooms start with '#'; no blanks, commas, colons, control characters (C0,
# DEL, C1: U+009B is a CSI to some terminals) or BELs, which would break
# IRC's parameter syntax or a terminal.
_ROOM = re.compile(r"#[^\x00-\x20\x7f-\x9f,:]+\Z")
_CONTROL = re.compile(r"[\x00\r\n]")
# What a user name (USER's first parameter) keeps: it shows in nick!user@host,
# so no '@', '!', blanks or controls can fake another host.
_USER_DROP = re.compile(r"[^A-Za-z0-9._\-\[\]\\`^{|}]")

_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# IRC formatting codes: bold, colour, hex colour, reset, monospace, reverse,
# italic, strikethrough, underline.  A colour code takes up to two digits of
# foreground and, after a comma, two of background.
_COLOUR = re.compile(r"\x03(?:(\d{1,2})(?:,(\d{1,2}))?)?|\x04(?:[0-9A-Fa-f]{6}(?:,[0-9A-Fa-f]{6})?)?")
_FORMAT = re.compile(
    r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|\x04(?:[0-9A-Fa-f]{6}(?:,[0-9A-Fa-f]{6})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
# Every other control character a terminal acts on: C0 (ESC included), DEL and C1.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# IRC toggles: the SGR code that turns each on, and the one that turns it off.
_ANSI_SIMPLE = {"\x02": ("1", "22"), "\x1d": ("3", "23"), "\x1f": ("4", "24"), "\x16": ("7", "27"), "\x1e": ("9", "29")}
# mIRC's sixteen colours as the nearest of the 16 ANSI ones (foreground codes).
_MIRC_ANSI = [97, 30, 34, 32, 91, 31, 35, 33, 93, 92, 36, 96, 94, 95, 90, 37]


def fold(name: str) -> str:
    """Case-fold a nick or room name the way the server compares them (ASCII casemapping)."""
    return name.translate(_FOLD)


def valid_nick(nick: str, max_len: int) -> bool:
    """True if *nick* may be used as a nickname."""
    return 0 < len(nick) <= max_len and _NICK.match(nick) is not None


def valid_room(room: str, max_len: int) -> bool:
    """True if *room* may be used as a room name."""
    return 1 < len(room) <= max_len and _ROOM.match(room) is not None


def valid_user(user: str, max_len: int) -> str:
    """The user name to show for what a client gave to USER (unsafe characters dropped, cut to *max_len*)."""
    return _USER_DROP.sub("", user)[:max_len]


def clean_text(text: str) -> str:
    """Drop the characters that could end or split a line on the other dialect's wire."""
    return _CONTROL.sub("", text)


def strip_formatting(text: str) -> str:
    """Text without IRC formatting codes and without any other control character."""
    return _UNSAFE.sub("", _FORMAT.sub("", text))


def terminal_safe(text: str) -> str:
    """Text a terminal shows as is: every control character (C0, DEL, C1) removed."""
    return _UNSAFE.sub("", text)


def irc_to_ansi(text: str) -> str:
    """IRC formatting rendered as ANSI SGR sequences we write ourselves; other controls removed.

    The only escape sequences in the result are the ones made here (SGR,
    ``ESC [ ... m``), and a line that changed anything ends with a reset, so
    formatting never leaks into the next line.
    """
    if not _FORMAT.search(text):
        return _UNSAFE.sub("", text)
    out: list[str] = []
    pos = 0
    used = False
    active: set[str] = set()
    for match in _FORMAT.finditer(text):
        out.append(_UNSAFE.sub("", text[pos : match.start()]))
        pos = match.end()
        code = match.group(0)
        first = code[0]
        used = True
        if first in _ANSI_SIMPLE:
            on, off = _ANSI_SIMPLE[first]
            out.append(f"\x1b[{off if first in active else on}m")
            active ^= {first}
        elif first == "\x0f":
            active.clear()
            out.append("\x1b[0m")
        elif first == "\x03":
            colour = _COLOUR.match(code)
            fg = colour.group(1) if colour else None
            bg = colour.group(2) if colour else None
            if fg is None:
                out.append("\x1b[39;49m")
            else:
                parts = [str(_MIRC_ANSI[int(fg) % 16])]
                if bg is not None:
                    parts.append(str(_MIRC_ANSI[int(bg) % 16] + 10))
                out.append(f"\x1b[{';'.join(parts)}m")
        # \x04 (hex colour) and \x11 (monospace) have no portable ANSI form: dropped.
    out.append(_UNSAFE.sub("", text[pos:]))
    if used:
        out.append("\x1b[0m")
    return "".join(out)


@lru_cache(maxsize=1024)
def _mask_parts(mask: str) -> tuple[tuple[re.Pattern[str], int], ...]:
    """The folded mask cut at its stars: each piece a fixed-width expression (``?`` one character) and its width."""
    return tuple(
        (re.compile("".join("." if c == "?" else re.escape(c) for c in piece), re.S), len(piece))
        for piece in fold(mask).split("*")
    )


def mask_matches(mask: str, text: str) -> bool:
    """True if the IRC wildcard *mask* (``*``, ``?``) matches *text*, ignoring ASCII case.

    No backtracking (a mask like ``*a*a*a*a*b`` from any WHO cannot stall the
    server): the first piece must match at the start, the last at the end, and
    each piece between is placed at its leftmost place after the one before,
    which matches whenever any placement does.  Each piece is searched once.
    """
    parts = _mask_parts(mask)
    folded = fold(text)
    if len(parts) == 1:
        return parts[0][0].fullmatch(folded) is not None
    (head, head_width), *middle, (tail, tail_width) = parts
    end = len(folded) - tail_width  # where the last piece must start
    if end < head_width or head.match(folded) is None:
        return False
    pos = head_width
    for piece, width in middle:
        if width:
            found = piece.search(folded, pos, end)
            if found is None:
                return False
            pos = found.end()
    return tail.fullmatch(folded, end) is not None


def normalise_mask(mask: str) -> str:
    """A ban mask in full ``nick!user@host`` form (``bob`` -> ``bob!*@*``, ``*@h`` -> ``*!*@h``)."""
    if "!" not in mask and "@" not in mask:
        return f"{mask}!*@*"
    if "!" not in mask:
        return f"*!{mask}"
    if "@" not in mask:
        return f"{mask}@*"
    return mask
