"""Settings sources, priorities and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from linechat.plugins.access import AccessControl
from linechat.services.echo import EchoService
from linechat.settings import SettingsError, build_settings_model, host_problem, load_settings, parse_assignment

MODEL = build_settings_model({"echo": EchoService}, {"access": AccessControl})


def test_defaults() -> None:
    settings = load_settings(MODEL)
    assert settings.services.echo.port == 7007  # type: ignore[attr-defined]
    assert settings.services.echo.host == "127.0.0.1"  # type: ignore[attr-defined]
    assert str(settings.data_dir) == "data"  # type: ignore[attr-defined]


def test_priority_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "linechat.toml"
    config.write_text('[services.echo]\nport = 1111\ngreeting = "from file"\nmax_line = 100\n')
    settings = load_settings(MODEL, config)
    assert settings.services.echo.port == 1111  # type: ignore[attr-defined]
    monkeypatch.setenv("LINECHAT_SERVICES__ECHO__PORT", "2222")
    monkeypatch.setenv("LINECHAT_SERVICES__ECHO__GREETING", "from env")
    settings = load_settings(MODEL, config)
    assert settings.services.echo.port == 2222  # type: ignore[attr-defined]
    assert settings.services.echo.greeting == "from env"  # type: ignore[attr-defined]
    assert settings.services.echo.max_line == 100  # type: ignore[attr-defined]  # still from the file
    settings = load_settings(MODEL, config, [parse_assignment("services.echo.port=3333")])
    assert settings.services.echo.port == 3333  # type: ignore[attr-defined]
    assert settings.services.echo.greeting == "from env"  # type: ignore[attr-defined]


def test_error_names_field_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[services.echo]\nport = "many"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(MODEL, config)
    assert "services.echo.port" in str(info.value) and str(config) in str(info.value)

    monkeypatch.setenv("LINECHAT_SERVICES__ECHO__MAX_CONNECTIONS", "0")
    with pytest.raises(SettingsError) as info:
        load_settings(MODEL)
    assert "services.echo.max_connections" in str(info.value)
    assert "LINECHAT_SERVICES__ECHO__MAX_CONNECTIONS" in str(info.value)
    monkeypatch.delenv("LINECHAT_SERVICES__ECHO__MAX_CONNECTIONS")

    with pytest.raises(SettingsError) as info:
        load_settings(MODEL, None, [parse_assignment('plugins.access.default.deny=["10.0.0.300/8"]')])
    assert "plugins.access.default.deny" in str(info.value) and "command line" in str(info.value)


def test_unknown_keys_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"services\.nosuch"):
        load_settings(MODEL, None, [parse_assignment("services.nosuch.port=1")])
    with pytest.raises(SettingsError, match="not found"):
        load_settings(MODEL, tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[services.echo\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(MODEL, broken)


def test_parse_assignment() -> None:
    assert parse_assignment("a.b=3") == (["a", "b"], 3)
    assert parse_assignment("a=text") == (["a"], "text")
    assert parse_assignment('a=["x"]') == (["a"], ["x"])
    with pytest.raises(SettingsError):
        parse_assignment("novalue")


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1", "::", "fe80::1%lo", "localhost", "", "mx.example"])
def test_listening_hosts_accepted(host: str) -> None:
    assert host_problem(host) is None
    settings = load_settings(MODEL, None, [(["services", "echo", "host"], host)])
    assert settings.services.echo.host == host  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1:17308", "port"),
        ("localhost:80", "port"),
        ("[::1]", "brackets"),
        ("bad host", "host name"),
        ("-bad.test", "host name"),
        ("a..b", "host name"),
        ("1::2::3", "IPv6"),
    ],
)
def test_listening_hosts_refused_at_load_time(host: str, why: str) -> None:
    assert why in (host_problem(host) or "")
    with pytest.raises(SettingsError, match=r"invalid setting services\.echo\.host: .*command line"):
        load_settings(MODEL, None, [(["services", "echo", "host"], host)])
