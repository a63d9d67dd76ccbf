"""Third-party services and plugins arrive by entry point, with no change to linechat.

The example distribution in examples/linechat-hello (its own pyproject.toml)
is pip-installed into this environment, used through the ``linechat``
command, and uninstalled again; so is a deliberately broken one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from linechat.testing import connect_when_listening, free_port

ROOT = Path(__file__).resolve().parents[2]
LINECHAT = shutil.which("linechat", path=os.path.dirname(sys.executable)) or "linechat"


def pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install the example and a broken distribution; remove both afterwards."""
    broken = tmp_path_factory.mktemp("broken")
    (broken / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "linechat-broken-example"
            version = "0.0.1"
            [project.entry-points."linechat.plugins"]
            broken = "linechat_broken_example:Missing"
            [tool.setuptools]
            py-modules = ["linechat_broken_example"]
            """
        )
    )
    (broken / "linechat_broken_example.py").write_text("raise ImportError('this plugin cannot load')\n")
    # --no-build-isolation: build with the setuptools of the test extras, offline.
    # Build from a copy: pip leaves build/ and egg-info behind in the source.
    example = tmp_path_factory.mktemp("example") / "linechat-hello"
    shutil.copytree(ROOT / "examples" / "linechat-hello", example)
    pip("install", "--no-deps", "--no-build-isolation", str(example), str(broken))
    try:
        yield
    finally:
        pip("uninstall", "-y", "linechat-hello", "linechat-broken-example")


def linechat(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINECHAT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_listed_with_origin_and_version(installed: None, tmp_path: Path) -> None:
    result = linechat("services", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {(row["kind"], row["name"]): row for row in json.loads(result.stdout)}
    hello = rows[("service", "hello")]
    assert (hello["origin"], hello["version"], hello["status"]) == ("linechat-hello", "1.2.3", "ok")
    assert rows[("plugin", "banner")]["status"] == "ok"
    assert rows[("plugin", "broken")]["status"].startswith("error: ImportError: this plugin cannot load")
    text = linechat("services", cwd=tmp_path).stdout
    assert "linechat-hello" in text and "1.2.3" in text


def test_served_and_broken_plugin_skipped(installed: None, tmp_path: Path) -> None:
    port = free_port()
    args = [
        LINECHAT,
        "serve",
        "--only",
        "hello",
        "--log-format",
        "json",
        "--set",
        f"services.hello.port={port}",
        "--set",
        "plugins.banner.enabled=true",
        "--set",
        'plugins.banner.text="third party"',
    ]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = connect_when_listening(port)
        with sock, sock.makefile("rb") as reader:
            assert reader.readline() == b"# third party\r\n"  # the third-party plugin ran
            assert reader.readline() == b"hello service ready\r\n"
            sock.sendall(b"HELLO linechat\r\nQUIT\r\n")
            assert reader.readline() == b"hello, linechat\r\n"
            assert reader.readline() == b"bye\r\n"
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    failures = {
        entry["name"]: entry
        for entry in (json.loads(line) for line in stderr.splitlines() if '"entry_point_failed"' in line)
    }
    assert "cannot load" in failures["broken"]["error"]


def test_strict_refuses_to_start(installed: None, tmp_path: Path) -> None:
    result = linechat("serve", "--only", "hello", "--strict", "--set", "services.hello.port=0", cwd=tmp_path)
    assert result.returncode == 1
    assert "broken" in result.stderr and "strict" in result.stderr
    assert "Traceback" not in result.stderr
