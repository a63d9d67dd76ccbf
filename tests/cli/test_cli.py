"""The ``linechat`` command as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from linechat.testing import connect_when_listening, free_port

LINECHAT = shutil.which("linechat", path=os.path.dirname(sys.executable)) or "linechat"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([LINECHAT, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


def test_services_lists_bundled(tmp_path: Path) -> None:
    result = run("services", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {(row["kind"], row["name"]): row for row in json.loads(result.stdout)}
    assert rows[("service", "echo")]["origin"] == "linechat"
    assert rows[("service", "echo")]["status"] == "ok"
    assert rows[("plugin", "access")]["status"] == "ok"


def test_config_prints_effective_settings(tmp_path: Path) -> None:
    (tmp_path / "linechat.toml").write_text("[services.echo]\nport = 7777\n")
    result = run("config", "--format", "json", "--set", "services.echo.max_line=99", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["services"]["echo"]["port"] == 7777  # picked up ./linechat.toml
    assert data["services"]["echo"]["max_line"] == 99
    toml_out = run("config", cwd=tmp_path)
    assert "[services.echo]" in toml_out.stdout and "port = 7777" in toml_out.stdout


def test_invalid_value_exits_2_without_traceback(tmp_path: Path) -> None:
    result = run("serve", cwd=tmp_path, env={"LINECHAT_SERVICES__ECHO__PORT": "70000"})
    assert result.returncode == 2
    assert "services.echo.port" in result.stderr and "LINECHAT_SERVICES__ECHO__PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_only_name_exits_2(tmp_path: Path) -> None:
    result = run("serve", "--only", "nosuch", cwd=tmp_path)
    assert result.returncode == 2 and "nosuch" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [LINECHAT, "serve", "--only", "echo", "--log-format", "json", "--set", f"services.echo.port={port}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sock = connect_when_listening(port)
        with sock, sock.makefile("rb") as reader:
            assert reader.readline() == b"+ linechat echo ready\r\n"
            sock.sendall(b"ECHO over loopback\r\n")
            assert reader.readline() == b"+ over loopback\r\n"
            proc.send_signal(signum)
            assert reader.readline() == b""  # closed by the graceful stop
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "listening" in events and "signal_received" in events and events[-1] == "stopped"


def test_hash_password_prints_a_users_file_line(tmp_path: Path) -> None:
    from linechat.auth import UsersFile

    result = subprocess.run(
        [LINECHAT, "hash-password", "alice", "--password-stdin"],
        input="wonderland\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("alice:scrypt$") and "wonderland" not in line
    users = tmp_path / "users"
    users.write_text(line + "\n")
    assert UsersFile(users).check("alice", "wonderland") and not UsersFile(users).check("alice", "x")
    refused = subprocess.run(
        [LINECHAT, "hash-password", "a:b", "--password-stdin"], input="pw\n", capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "':'" in refused.stderr
