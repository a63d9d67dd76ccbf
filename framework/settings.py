"""Settings: one pydantic-settings model built from the discovered services and plugins.

Sources, lowest priority first: defaults, a TOML file, ``LINECHAT_*``
environment variables (``__`` separates levels), command-line flags.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from linechat.plugin import Plugin
from linechat.service import Service
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

__all__ = ["LogSettings", "SettingsError", "build_settings_model", "load_settings", "parse_assignment"]

ENV_PREFIX = "LINECHAT_"


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
    service_fields.update({name: (cls.Settings, Field(default_factory=cls.Settings)) for name, cls in services.items()})
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
        log: LogSettings = Field(default_factory=LogSettings)
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
    bound = type(model.__name__, (model,), {"model_config": {**model.model_config, "toml_file": config_file}})
    try:
        return bound(**init)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise SettingsError(_explain(exc, init, toml_data, config_file)) from None


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


def _explain(exc: ValidationError, flags: dict[str, Any], toml_data: dict[str, Any], config_file: Any) -> str:
    lines = ["invalid settings:"]
    env = {key.upper() for key in os.environ}
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        field = ".".join(loc) or "(root)"
        # The source holding the deepest part of the path supplied the value;
        # on a tie the higher-priority source wins (flags, then env, then file).
        env_depth = next((d for d in range(len(loc), 0, -1) if ENV_PREFIX + "__".join(loc[:d]).upper() in env), 0)
        candidates = [
            (_depth(flags, loc), 3, f"the command line (--set {field}=...)"),
            (env_depth, 2, f"environment variable {ENV_PREFIX}{'__'.join(loc[:env_depth]).upper()}"),
            (_depth(toml_data, loc), 1, f"config file {config_file}"),
        ]
        depth, _, origin = max(candidates)
        if depth == 0:
            origin = "the defaults"
        message = error["msg"]
        if error["type"] != "missing" and "input" in error and not isinstance(error["input"], dict):
            message += f" (got {error['input']!r})"
        lines.append(f"  {field}: {message} -- from {origin}")
    return "\n".join(lines)
