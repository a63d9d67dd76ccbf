"""The opt-in step that lets ``import asynchat`` give linechat's module: ``install()`` and the runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TIMEOUT = 60


def _python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


def test_install_makes_import_asynchat_ours() -> None:
    result = _python(
        "-c",
        "import sys, linechat.asynchat as ours\n"
        "assert 'asynchat' not in sys.modules\n"
        "assert ours.install() is ours\n"
        "import asynchat, asyncore\n"
        "assert asynchat is ours and asynchat.async_chat is ours.async_chat\n"
        "assert issubclass(asynchat.async_chat, asyncore.dispatcher)\n"
        "assert ours.install() is ours  # twice is fine\n",
    )
    assert result.returncode == 0, result.stderr


def test_install_refuses_when_another_asynchat_was_imported() -> None:
    result = _python(
        "-c",
        "import sys, types, linechat.asynchat as ours\n"
        "sys.modules['asynchat'] = types.ModuleType('asynchat')  # as if the other one came first\n"
        "try:\n"
        "    ours.install()\n"
        "except RuntimeError as exc:\n"
        "    assert 'before anything imports it' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "assert ours.install(replace=True) is ours and sys.modules['asynchat'] is ours\n",
    )
    assert result.returncode == 0, result.stderr


def test_runner_runs_a_script_and_a_module(tmp_path: Path) -> None:
    program = "import asynchat, sys\nprint(asynchat.__name__, sys.argv[1:], __name__)\n"
    (tmp_path / "prog.py").write_text(program)
    (tmp_path / "helper.py").write_text("VALUE = 7\n")
    (tmp_path / "uses_helper.py").write_text("import helper\nprint(helper.VALUE)\n")
    script = _python("-m", "linechat.asynchat", "run", str(tmp_path / "prog.py"), "a", "--b")
    assert script.returncode == 0, script.stderr
    assert script.stdout == "linechat.asynchat ['a', '--b'] __main__\n"
    module = _python("-m", "linechat.asynchat", "run", "-m", "prog", "x", cwd=tmp_path)
    assert module.returncode == 0, module.stderr
    assert module.stdout == "linechat.asynchat ['x'] __main__\n"
    # A script's own folder is on the path, as with `python script.py`.
    sibling = _python("-m", "linechat.asynchat", "run", str(tmp_path / "uses_helper.py"))
    assert sibling.stdout == "7\n", sibling.stderr


def test_runner_usage() -> None:
    for args in ([], ["serve", "x.py"], ["run", "-m"]):
        result = _python("-m", "linechat.asynchat", *args)
        assert result.returncode == 2
        assert "usage: python -m linechat.asynchat run" in result.stderr
    assert _python("-m", "linechat.asynchat", "--help").returncode == 0
