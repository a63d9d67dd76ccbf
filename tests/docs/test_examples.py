"""Every complete Python example in the README and docs runs as written.

Each ```python block carries a marker on the line before it (an HTML comment,
invisible when rendered):

- ``<!-- example: complete -->``: a whole script; it is run in a fresh
  interpreter in an empty folder and must exit 0 (its asserts are the test).
- ``<!-- example: complete, pytest -->``: a whole test module, run by pytest.
- ``<!-- example: fragment -->``: a signature, an outline or an excerpt that
  needs context (a running server, names defined elsewhere); not run.

A block without a marker fails the collection, so a new example cannot skip this.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"<!--\s*example:\s*(complete|complete,\s*pytest|fragment)\s*-->")
FENCE = re.compile(r"^(\s*)```python\s*$")


@dataclass
class Example:
    """One fenced Python block of a document."""

    path: Path
    line: int  # of the opening fence
    kind: str | None
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            opening = FENCE.match(lines[index])
            if opening:
                end = next(i for i in range(index + 1, len(lines)) if lines[i].strip().startswith("```"))
                indent = len(opening.group(1))
                code = "\n".join(line[indent:] for line in lines[index + 1 : end]) + "\n"
                marker = MARKER.search(lines[index - 1]) if index else None
                kind = re.sub(r"\s+", " ", marker.group(1)) if marker else None
                found.append(Example(path, index + 1, kind, code))
                index = end
            index += 1
    return found


EXAMPLES = examples()


def test_examples_found() -> None:
    assert sum(example.kind == "complete" for example in EXAMPLES) >= 10


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_every_block_is_marked(example: Example) -> None:
    assert example.kind is not None, f"{example.id}: put <!-- example: complete --> or fragment before the fence"
    if example.kind != "fragment":
        ast.parse(example.code, filename=example.id)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.kind and e.kind != "fragment"], ids=lambda e: e.id)
def test_complete_example_runs(example: Example, tmp_path: Path) -> None:
    script = tmp_path / ("test_example.py" if example.kind.endswith("pytest") else "example.py")
    script.write_text(example.code, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    if not example.kind.endswith("pytest"):
        command = [sys.executable, script.name]
    # Run as a reader would: from an empty folder, with the venv's scripts not necessarily on PATH.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINECHAT_") and k != "PYTHONPATH"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{example.id} failed:\n{result.stdout}\n{result.stderr}"
