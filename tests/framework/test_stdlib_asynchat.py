"""CPython 3.11's own asynchat test suite, run against linechat.asynchat.

The test file is loaded from a Python 3.11 installation on this machine (it
is not copied into the repository); only its ``asynchat`` import is swapped.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import types
import unittest
from pathlib import Path

import pytest

IMPORT_LINE = "asynchat = warnings_helper.import_deprecated('asynchat')"


def _find_stdlib_test() -> Path | None:
    """Locate test/test_asynchat.py of a Python 3.11 installation."""
    explicit = os.environ.get("LINECHAT_ASYNCHAT_TEST")
    candidates: list[str] = [explicit] if explicit else []
    if sys.version_info[:2] == (3, 11):
        candidates.append(os.path.join(os.path.dirname(os.__file__), "test", "test_asynchat.py"))
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
        if root:
            candidates += sorted(glob.glob(f"{root}/versions/3.11*/lib/python3.11/test/test_asynchat.py"))
    default_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{default_root}/versions/3.11*/lib/python3.11/test/test_asynchat.py"))
    candidates += sorted(glob.glob("/usr/lib/python3.11/test/test_asynchat.py"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def test_cpython_asynchat_suite_passes() -> None:
    """Every test of CPython 3.11's test_asynchat passes with linechat.asynchat swapped in."""
    path = _find_stdlib_test()
    if path is None:
        pytest.skip("no Python 3.11 installation with test/test_asynchat.py found (set LINECHAT_ASYNCHAT_TEST)")
    try:
        import test.support  # noqa: F401  - the suite needs the running Python's test package
    except ImportError:
        pytest.skip("this Python has no 'test' package (test.support) to run the suite with")
    source = path.read_text(encoding="utf-8")
    assert source.count(IMPORT_LINE) == 1, "the 3.11 suite changed shape; update the import swap"
    source = source.replace(IMPORT_LINE, "from linechat import asynchat")
    module = types.ModuleType("linechat_cpython_test_asynchat")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)

    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TestResult()
    suite.run(result)
    problems = [f"{test}: {trace}" for test, trace in result.errors + result.failures]
    assert not problems, "\n".join(problems)
    assert result.testsRun >= 20 and not result.skipped, (result.testsRun, result.skipped)
