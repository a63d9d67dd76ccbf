"""Settings: one pydantic-settings model built from the discovered services and plugins.

Sources, lowest priority first: defaults, a TOML file, ``LINECHAT_*``
environment variables (``__`` separates levels), command-line flags.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from linechat.plugin import Plugin
from linechat.service import Service
from linechat.tls import TlsSettings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

__all__ = [
    "LogSettings",
    "SettingsError",
    "build_settings_model",
    "host_problem",
    "load_settings",
    "parse_assignment",
]

ENV_PREFIX = "LINECHAT_"
#: LINECHAT_ variables that are not settings.
ENV_NOT_SETTINGS = frozenset({"LINECHAT_CONFIG"})

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class LogSettings(BaseModel):
    """How linechat logs."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="lowest level logged")
    format: Literal["auto", "console", "json"] = Field(
        "auto", description="console on a terminal and JSON lines otherwise, unless chosen"
    )
    access: bool = Field(False, description="log every command with its status, size and duration")


class SettingsError(Exception):
    """Invalid settings; the message names each field and where its value came from."""


def host_problem(host: str) -> str | None:
    """Why *host* cannot be a listening address (None if it can): an IP address or a host name, no port."""
    if host == "":
        return None  # every interface, as socket.bind has it
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if host.startswith("[") and host.endswith("]"):
        return f"write an IPv6 address without brackets ({host[1:-1]!r})"
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return f"a port does not belong in host: use {name!r} and set the port ({port}) on its own"
    if ":" in host:
        return "not a valid IPv6 address"
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "not an IP address or a host name"
    return None


def _check_host(cls: type, value: Any) -> Any:
    if isinstance(value, str):
        problem = host_problem(value)
        if problem:
            raise ValueError(problem)
    return value


def _with_host_check(settings_cls: type[BaseModel]) -> type[BaseModel]:
    """A subclass of a service's settings whose ``host`` and ``*_host`` fields are checked at load time."""
    names = [name for name in settings_cls.model_fields if name == "host" or name.endswith("_host")]
    if not names:
        return settings_cls
    check = field_validator(*names)(_check_host)  # type: ignore[arg-type]
    return create_model(  # type: ignore[no-any-return, call-overload]
        settings_cls.__name__,
        __base__=settings_cls,
        __module__=settings_cls.__module__,
        __validators__={"check_listen_hosts": check},
    )


def build_settings_model(
    services: dict[str, type[Service]],
    plugins: dict[str, type[Plugin]] | None = None,
    unloaded: Iterable[str] = (),
) -> type[BaseSettings]:
    """Build the root settings model with one nested model per service and plugin.

    *unloaded* names ("services.x", "plugins.y") entry points that failed to
    load: their tables are accepted as they are, so a broken plugin does not
    also make the configuration invalid.
    """
    plugins = plugins or {}
    forbid = ConfigDict(extra="forbid")
    loose = {name.split(".", 1)[1]: name.split(".", 1)[0] for name in unloaded}
    service_fields: dict[str, Any] = {
        name: (dict[str, Any], Field(default_factory=dict)) for name, group in loose.items() if group == "services"
    }
    for name, cls in services.items():
        checked = _with_host_check(cls.Settings)
        service_fields[name] = (checked, Field(default_factory=checked))
    plugin_fields: dict[str, Any] = {
        name: (dict[str, Any], Field(default_factory=dict)) for name, group in loose.items() if group == "plugins"
    }
    plugin_fields.update({name: (cls.Settings, Field(default_factory=cls.Settings)) for name, cls in plugins.items()})
    services_model = create_model(  # type: ignore[call-overload]
        "ServicesSettings", __config__=forbid, **dict(sorted(service_fields.items()))
    )
    plugins_model = create_model(  # type: ignore[call-overload]
        "PluginsSettings", __config__=forbid, **dict(sorted(plugin_fields.items()))
    )

    class LinechatSettings(BaseSettings):
        """The whole configuration of a linechat process."""

        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX,
            env_nested_delimiter="__",
            env_parse_none_str="null",
            extra="forbid",
            validate_default=True,
        )

        data_dir: Path = Field(Path("data"), description="local data folder for embedded storage")
        strict: bool = Field(False, description="fail the start when a plugin or service cannot load")
        shutdown_grace: float = Field(5.0, ge=0, description="seconds given to connections to flush on stop")
        workers: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
            1, description="worker processes for `serve` (auto: one per CPU; 1: a single process, no supervisor)"
        )
        log: LogSettings = Field(default_factory=LogSettings)
        tls: TlsSettings = Field(default_factory=TlsSettings)
        services: services_model = Field(default_factory=services_model)  # type: ignore[valid-type]
        plugins: plugins_model = Field(default_factory=plugins_model)  # type: ignore[valid-type]

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            toml_file = settings_cls.model_config.get("toml_file")
            if toml_file:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
            return tuple(sources)

    return LinechatSettings


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """Parse a ``--set a.b.c=value`` flag; the value is JSON when it parses, else a string."""
    if "=" not in text:
        raise SettingsError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise SettingsError(f"--set has an empty key in {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return path, value


def _nest(assignments: list[tuple[list[str], Any]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path, value in assignments:
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"--set {'.'.join(path)} conflicts with another --set")
        node[path[-1]] = value
    return root


def load_settings(
    model: type[BaseSettings],
    config_file: str | os.PathLike[str] | None = None,
    flags: list[tuple[list[str], Any]] | None = None,
) -> BaseSettings:
    """Load settings from defaults, *config_file*, the environment and *flags*; raise SettingsError."""
    toml_data: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            toml_data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    init = _nest(flags or [])
    unknown = _unknown_env(model)
    if unknown:
        raise SettingsError("\n".join(unknown))
    bound = type(model.__name__, (model,), {"model_config": {**model.model_config, "toml_file": config_file}})
    try:
        return bound(**init)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise SettingsError(_explain(model, exc, init, toml_data, config_file)) from None


def _models_in(annotation: Any) -> tuple[list[type[BaseModel]], bool]:
    """The settings models an annotation holds (``X | None`` included), and whether it is an open table."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    models: list[type[BaseModel]] = []
    is_open = False
    for item in args or (annotation,):
        if isinstance(item, type) and issubclass(item, BaseModel):
            models.append(item)
        elif item is dict or typing.get_origin(item) is dict:
            is_open = True
    return models, is_open


def _paths(model: type[BaseModel]) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """(every dotted path to a table or key of *model*, the paths of open tables that take any key)."""
    paths: set[tuple[str, ...]] = set()
    open_tables: set[tuple[str, ...]] = set()

    def walk(cls: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, field in cls.model_fields.items():
            path = (*prefix, name.lower())
            paths.add(path)
            models, is_open = _models_in(field.annotation)
            if is_open:
                open_tables.add(path)
            for sub in models:
                walk(sub, path)

    walk(model, ())
    return paths, open_tables


def _children(paths: set[tuple[str, ...]], parent: tuple[str, ...]) -> list[str]:
    return sorted(p[-1] for p in paths if len(p) == len(parent) + 1 and p[:-1] == parent)


def _plausible(wrong: str, right: str) -> bool:
    """Whether *right* is a likely meaning of *wrong*: level by level, each differing name is close."""
    a, b = wrong.split("__"), right.split("__")
    if len(a) != len(b):
        return True  # a level separator missed or doubled: LOG_LEVEL for LOG__LEVEL
    return all(x == y or difflib.SequenceMatcher(None, x, y).ratio() >= 0.75 for x, y in zip(a, b, strict=True))


def _unknown_env(model: type[BaseModel]) -> list[str]:
    """One line for each ``LINECHAT_*`` variable that looks like a setting but is none, with the closest name.

    pydantic-settings reads only the variables it knows, so a misspelt one
    would otherwise be ignored without a word.
    """
    paths, open_tables = _paths(model)
    names = {"__".join(path): path for path in paths}
    problems = []
    for key in sorted(os.environ):
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in ENV_NOT_SETTINGS:
            continue
        suffix = upper[len(ENV_PREFIX) :].lower()
        parts = tuple(suffix.split("__"))
        if parts in paths or any(parts[: len(t)] == t for t in open_tables):
            continue
        others = [name[len(ENV_PREFIX) :].lower() for name in ENV_NOT_SETTINGS]
        close = [c for c in difflib.get_close_matches(suffix, [*names, *others], 3, 0.8) if _plausible(suffix, c)][:1]
        if close:
            guess = close[0]
            dotted = f" ({'.'.join(names[guess])})" if guess in names else ""
            problems.append(f"{key} is not a setting; did you mean {ENV_PREFIX}{guess.upper()}{dotted}?")
            continue
        known = max((d for d in range(1, len(parts)) if parts[:d] in paths), default=0)
        if known:
            parent, children = ".".join(parts[:known]), _children(paths, parts[:known])
            if children:
                has = ", ".join(children)
                problems.append(f"{key} is not a setting: {parent} has no {parts[known]!r} (it has: {has})")
            else:
                problems.append(f"{key} is not a setting: {parent} is a value, not a table")
        # Otherwise it does not look like a setting (another tool's variable): left alone.
    return problems


def _depth(data: Any, loc: tuple[str, ...]) -> int:
    """How many leading parts of *loc* exist in nested *data* (dicts and lists)."""
    node = data
    for depth, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return depth
    return len(loc)


def _env_origin(loc: tuple[str, ...], env: set[str]) -> tuple[int, str]:
    """How much of *loc* an environment variable supplied, and that variable's name."""
    for depth in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:depth]).upper()
        found = sorted(key for key in env if key == name or key.startswith(name + "__"))
        if found:
            return depth, found[0]
    return 0, ""


def _explain(
    model: type[BaseModel], exc: ValidationError, flags: dict[str, Any], toml_data: dict[str, Any], config_file: Any
) -> str:
    """One line per problem: the dotted key, what is wrong with it, and the source of its value."""
    lines = []
    env = {key.upper() for key in os.environ}
    paths, _ = _paths(model)
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        field = ".".join(loc) or "(root)"
        # The source holding the deepest part of the path supplied the value;
        # on a tie the higher-priority source wins (flags, then env, then file).
        env_depth, env_name = _env_origin(loc, env)
        candidates = [
            (_depth(flags, loc), 3, f"the command line (--set {field}=...)"),
            (env_depth, 2, f"environment variable {env_name}"),
            (_depth(toml_data, loc), 1, f"config file {config_file}"),
        ]
        depth, _, origin = max(candidates)
        if depth == 0:
            origin = "the defaults"
        if error["type"] == "extra_forbidden":
            siblings = _children(paths, tuple(part.lower() for part in loc[:-1]))
            close = difflib.get_close_matches(loc[-1].lower(), siblings, 1, 0.6)
            if close:
                message = f"no such setting; did you mean {'.'.join((*loc[:-1], close[0]))}?"
            else:
                message = f"no such setting (known: {', '.join(siblings)})"
            lines.append(f"unknown setting {field}: {message} -- from {origin}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] != "missing" and "input" in error and not isinstance(error["input"], dict):
            message += f" (got {error['input']!r})"
        lines.append(f"invalid setting {field}: {message} -- from {origin}")
    return "\n".join(lines)
