"""The documented Django example: its own pytest run, as its user would start it, must pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django", reason="django is not installed (the test extra)")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django-mail"


def test_the_django_example_passes_its_own_tests() -> None:
    # A process of its own: Django's settings are process-wide, and other tests here configure them.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
