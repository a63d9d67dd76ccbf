"""Command declarations: ``@command`` and the spec each declared command compiles to.

``@command`` only records what the author wrote (names, states, arity
overrides, help).  When a :class:`~linechat.Protocol` subclass is created, each
declaration becomes a :class:`CommandSpec` (arity and argument converters read
from the handler's signature), which dispatch, help and service-specific
checks (Redis's MULTI queueing and AOF replay, say) all read.  Nothing here
knows of framing, connections or sockets.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

__all__ = ["CommandSpec", "command"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CommandDeclaration:
    """What ``@command`` recorded on a handler, before the protocol class compiles it."""

    names: tuple[str, ...]
    states: frozenset[str] | None
    min_args: int | None
    max_args: int | None  # -1: from the signature; None: variadic
    help: str


@dataclass
class CommandSpec:
    """One command of a protocol: its handler, the states it runs in, its arity and argument converters."""

    name: str
    func: Callable[..., Any]
    states: frozenset[str] | None
    min_args: int
    max_args: int | None  # None: variadic
    converters: list[Callable[[Any], Any] | None]
    rest_converter: Callable[[Any], Any] | None
    param_names: list[str]
    plain: bool  # no conversion needed at all
    help: str = ""

    def accepts(self, nargs: int) -> bool:
        """True if the handler takes *nargs* arguments."""
        return nargs >= self.min_args and (self.max_args is None or nargs <= self.max_args)

    @classmethod
    def build(cls, name: str, func: Callable[..., Any], declared: CommandDeclaration, arg_type: type) -> CommandSpec:
        """Compile a declaration: arity and converters from *func*'s signature; arguments arrive as *arg_type*."""
        sig = inspect.signature(func)
        try:
            hints = get_type_hints(func)
        except Exception:
            hints = {}
        params = list(sig.parameters.values())[1:]  # drop self
        converters: list[Callable[[Any], Any] | None] = []
        names: list[str] = []
        required = 0
        variadic = False
        rest: Callable[[Any], Any] | None = None
        for param in params:
            annotation = hints.get(param.name, param.annotation)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                variadic = True
                rest = _converter(annotation, arg_type)
            elif param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                converters.append(_converter(annotation, arg_type))
                names.append(param.name)
                if param.default is inspect.Parameter.empty:
                    required += 1
        min_args = declared.min_args if declared.min_args is not None else required
        max_args = declared.max_args
        if max_args == -1:
            max_args = None if variadic else len(converters)
        plain = rest is None and all(c is None for c in converters)
        return cls(
            name=name,
            func=func,
            states=declared.states,
            min_args=min_args,
            max_args=max_args,
            converters=converters,
            rest_converter=rest,
            param_names=names,
            plain=plain,
            help=declared.help,
        )

    def convert(self, args: list[Any]) -> list[Any]:
        """Convert raw arguments to the handler's declared types; raise :class:`BadArgumentError`."""
        out: list[Any] = []
        converters = self.converters
        for index, value in enumerate(args):
            if index < len(converters):
                conv = converters[index]
                param = self.param_names[index]
            else:
                conv = self.rest_converter
                param = "args"
            if conv is None:
                out.append(value)
                continue
            try:
                out.append(conv(value))
            except (ValueError, TypeError, UnicodeError, ArithmeticError) as exc:
                raise BadArgumentError(param, value, exc) from None
        return out


class BadArgumentError(Exception):
    """An argument that does not convert to its parameter's declared type."""

    def __init__(self, param: str, value: Any, exc: Exception) -> None:
        super().__init__(param)
        self.param = param
        self.value = value
        self.exc = exc


def command(
    *names: str,
    state: str | Collection[str] | None = None,
    min_args: int | None = None,
    max_args: int | None = -1,
    help: str | None = None,  # noqa: A002 - natural name for users
) -> Callable[[F], F]:
    """Declare the decorated method as the handler of one or more commands.

    Arity and argument types come from the signature (``bytes``, ``str``,
    ``int``, ``float``; ``*args`` for a variadic tail) unless *min_args* /
    *max_args* say otherwise.  *state* limits the command to protocol states.
    Names are case-insensitive; the method name is used when none is given.
    """

    def decorate(func: F) -> F:
        states: frozenset[str] | None
        if state is None:
            states = None
        elif isinstance(state, str):
            states = frozenset({state})
        else:
            states = frozenset(state)
        func.__linechat_command__ = CommandDeclaration(  # type: ignore[attr-defined]
            names=tuple(n.upper() for n in names) or (func.__name__.upper(),),
            states=states,
            min_args=min_args,
            max_args=max_args,
            help=help if help is not None else (inspect.getdoc(func) or "").split("\n")[0],
        )
        return func

    return decorate


def declaration_of(value: Any) -> CommandDeclaration | None:
    """What :func:`command` recorded on a method, or None."""
    return getattr(value, "__linechat_command__", None)


def _converter(annotation: Any, arg_type: type) -> Callable[[Any], Any] | None:
    """Return a function turning a raw argument into *annotation*, or None for as-is."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is arg_type:
        return None
    if annotation is bytes:
        return _to_bytes
    if annotation is str:
        return _to_str
    if annotation is int:
        return _to_int
    if annotation is float:
        return _to_float
    if callable(annotation):
        return annotation  # type: ignore[no-any-return]
    return None


def _to_bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _to_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii")
    return float(value)
