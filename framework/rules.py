"""Framing rules: how a protocol's input is cut into frames in each state.

A rule is data, nothing more: a delimiter, a byte count given when switching to
it, or no end at all (a stream), with an optional size limit and the name of the
protocol method that receives its frames.  The channel (``linechat.channel``)
turns the rule in force into terminators for ``async_chat``; this module knows
nothing of commands, protocols or sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Rule", "terminator"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Rule:
    """How input is framed in one state: by a delimiter, by a byte count, or not at all."""

    name: str
    delimiter: bytes | None = b"\n"
    count: bool = False  # the byte count is given when switching to the rule
    max_size: int | None = None  # None: the service's max_line for commands, unlimited otherwise
    stream: bool = False  # hand chunks to the handler as they arrive
    handler: str | None = None  # method name; None: command dispatch

    @property
    def is_command(self) -> bool:
        """True for the rule whose frames are command lines."""
        return self.handler is None


def terminator(
    name: str,
    delimiter: bytes | None = b"\n",
    *,
    count: bool = False,
    max_size: int | None = None,
    stream: bool = False,
) -> Callable[[F], F]:
    """Declare a framing rule whose frames go to the decorated method.

    The method receives ``(frame: bytes)``, or ``(chunk: bytes, end: bool)`` when
    *stream* is true.  ``count=True`` frames by a byte count given to
    :meth:`Protocol.switch`.
    """

    if delimiter is None and not count and not stream:
        raise TypeError(f"rule {name!r}: without a delimiter or a count, frames never end: use stream=True")
    if delimiter is not None and not delimiter:
        raise TypeError(f"rule {name!r}: the delimiter must not be empty")

    def decorate(func: F) -> F:
        func.__linechat_rule__ = Rule(  # type: ignore[attr-defined]
            name=name, delimiter=delimiter, count=count, max_size=max_size, stream=stream, handler=func.__name__
        )
        return func

    return decorate


def rule_of(value: Any) -> Rule | None:
    """The rule a method was declared with by :func:`terminator`, or None."""
    return getattr(value, "__linechat_rule__", None)
