"""Front-door errors through the real ``linechat`` command: one line that names the cause, exit status 2."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from linechat.testing import free_port

LINECHAT = shutil.which("linechat", path=os.path.dirname(sys.executable)) or "linechat"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, module: bool = False) -> str:
    """Run the command, check it failed with status 2 and one line on stderr; return that line."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LINECHAT_")}
    full_env.update(env or {})
    command = [sys.executable, "-m", "linechat"] if module else [LINECHAT]
    result = subprocess.run([*command, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("linechat: "), result.stderr
    assert result.stdout == ""  # and no log line: nothing started
    return lines[0]


@pytest.mark.parametrize("module", [False, True], ids=["linechat", "python -m linechat"])
def test_port_in_use_names_service_host_and_port(tmp_path: Path, module: bool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        line = run("serve", "--only", "echo", "--set", f"services.echo.port={port}", cwd=tmp_path, module=module)
    assert f"echo cannot listen on 127.0.0.1:{port}" in line and "Address already in use" in line


def test_two_services_on_one_port_name_both(tmp_path: Path) -> None:
    port = free_port()
    line = run(
        "serve",
        "--only",
        "echo,redis",
        "--set",
        f"services.echo.port={port}",
        "--set",
        f"services.redis.port={port}",
        cwd=tmp_path,
    )
    assert "echo" in line and "redis" in line and f"127.0.0.1:{port}" in line
    assert "services.echo.port" in line and "services.redis.port" in line
    # Nothing was left listening: the port is free again at once.
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_a_wildcard_host_collides_with_a_loopback_one(tmp_path: Path) -> None:
    port = free_port()
    line = run(
        "serve",
        "--only",
        "echo,redis",
        "--set",
        f"services.echo.port={port}",
        "--set",
        f"services.redis.port={port}",
        "--set",
        "services.redis.host=0.0.0.0",
        cwd=tmp_path,
    )
    assert f"0.0.0.0:{port}" in line and f"127.0.0.1:{port}" in line


def test_chat_irc_port_equal_to_port(tmp_path: Path) -> None:
    port = free_port()
    line = run(
        "serve",
        "--only",
        "chat",
        "--set",
        f"services.chat.port={port}",
        "--set",
        f"services.chat.irc_port={port}",
        cwd=tmp_path,
    )
    assert f"127.0.0.1:{port}" in line and "services.chat.irc_port" in line and "services.chat.port" in line


@pytest.mark.parametrize("command", ["config", "serve"])
def test_host_with_a_port_refused_at_settings_time(tmp_path: Path, command: str) -> None:
    line = run(command, "--set", "services.echo.host=127.0.0.1:17308", cwd=tmp_path)
    assert "services.echo.host" in line and "port" in line and "--set services.echo.host" in line
    line = run(command, cwd=tmp_path, env={"LINECHAT_SERVICES__ECHO__HOST": "[::1]"})
    assert "services.echo.host" in line and "brackets" in line and "LINECHAT_SERVICES__ECHO__HOST" in line


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("LINECHAT_SERVICES__ECHOO__PORT", "LINECHAT_SERVICES__ECHO__PORT"),
        ("LINECHAT_LOG_LEVEL", "LINECHAT_LOG__LEVEL"),
        ("LINECHAT_SHUTDOWN_GRCE", "LINECHAT_SHUTDOWN_GRACE"),
        ("LINECHAT_CONFG", "LINECHAT_CONFIG"),
    ],
)
def test_misspelt_environment_variable_named_with_the_closest_name(
    tmp_path: Path, variable: str, suggestion: str
) -> None:
    line = run("config", cwd=tmp_path, env={variable: "1"})
    assert variable in line and suggestion in line
    assert "defaults" not in line


def test_unknown_service_in_a_variable_lists_the_known_ones(tmp_path: Path) -> None:
    line = run("config", cwd=tmp_path, env={"LINECHAT_SERVICES__NOPE__PORT": "1"})
    assert "LINECHAT_SERVICES__NOPE__PORT" in line and "echo" in line and "smtp" in line


def test_unrelated_linechat_variables_and_good_ones_are_accepted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINECHAT_")} | {
        "LINECHAT_LOG__LEVEL": "debug",
        "LINECHAT_SERVICES__ECHO__PORT": "7111",
        "LINECHAT_UNRELATED_TOOL_FLAG": "1",
    }
    result = subprocess.run(
        [LINECHAT, "config", "--format", "json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert '"port": 7111' in result.stdout and '"level": "debug"' in result.stdout


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    port = free_port()
    line = run("serve", "--only", "echo", "--set", f"services.echo.port={port}", cwd=tmp_path)
    assert "data dir data is a file" in line
    line = run("serve", "--data-dir", "data/inner", cwd=tmp_path)
    assert "data/inner" in line and "is a file" in line


def test_data_dir_that_cannot_be_written(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/sys/linechat-test-data")  # sysfs refuses new folders, even to root
        try:
            target.mkdir()
        except OSError:
            pass
        else:
            target.rmdir()
            pytest.skip("root can write everywhere here: no unwritable folder to try")
    else:
        target = tmp_path / "locked"
        target.mkdir(mode=0o500)
    line = run("serve", "--only", "echo", "--data-dir", str(target), cwd=tmp_path)
    assert str(target) in line and ("not writable" in line or "cannot be created" in line)


def test_only_names_a_service_that_failed_to_import(tmp_path: Path) -> None:
    # A distribution found on sys.path (no pip needed): its service module cannot be imported.
    site = tmp_path / "site"
    info = site / "linechat_broken_service-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: linechat-broken-service\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[linechat.services]\nbroken = linechat_broken_service:Service\n")
    (site / "linechat_broken_service.py").write_text("import linechat_no_such_dependency\n")
    line = run("serve", "--only", "broken", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert "broken" in line and "failed to load" in line and "linechat_no_such_dependency" in line
    assert "unknown" not in line


def test_only_empty_is_an_error(tmp_path: Path) -> None:
    line = run("serve", "--only", "", cwd=tmp_path)
    assert "--only" in line and "echo" in line


def test_hosts_spelt_differently_name_the_listener_that_holds_the_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINECHAT_")}
    ports = ["--set", f"services.echo.port={port}", "--set", f"services.redis.port={port}"]
    result = subprocess.run(
        [LINECHAT, "serve", "--only", "echo,redis", *ports, "--set", "services.redis.host=localhost"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    held = f"echo on 127.0.0.1:{port} has it"
    assert last == f"linechat: redis cannot listen on localhost:{port}: Address already in use ({held})"


def test_a_missing_optional_dependency_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # redis-py made unimportable, as where the chat-redis extra is not installed.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "redis.py").write_text('raise ImportError("redis-py is not installed here")\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINECHAT_")}
    env["PYTHONPATH"] = str(hide)
    args = ["serve", "--only", "chat", "--set", "services.chat.backplane=redis", "--log-format", "json"]
    args += ["--set", f"services.chat.port={free_port()}", "--set", "services.chat.irc_port=0"]
    result = subprocess.run([LINECHAT, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "linechat: no service could start (chat: backplane = 'redis' needs redis-py: "
        "pip install 'linechat[chat-redis]')"
    ), result.stderr
    assert "Traceback" not in result.stderr and "exc_type" not in result.stderr
    assert len(lines) == 2  # the log's service_failed line, then the command's own
