"""A pytest plugin for bench/irctest.py: write each test's outcome and markers to a JSON file.

Loaded into irctest's own pytest run with ``-p irctest_markers`` (this folder
on ``PYTHONPATH``); the file is named by ``$IRCTEST_MARKERS_OUT``.
"""

from __future__ import annotations

import json
import os
from typing import Any

_MARKERS: dict[str, list[str]] = {}
_OUTCOMES: dict[str, str] = {}


def pytest_collection_finish(session: Any) -> None:
    """Remember the markers of every selected test (after -m and -k deselected the others)."""
    for item in session.items:
        _MARKERS[item.nodeid] = sorted({mark.name for mark in item.iter_markers()})


def pytest_runtest_logreport(report: Any) -> None:
    """Keep one outcome per test: a failure in any phase wins, a skip in setup counts as a skip."""
    if report.failed:
        _OUTCOMES[report.nodeid] = "failed"
    elif report.skipped:
        _OUTCOMES.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _OUTCOMES.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session: Any) -> None:
    """Write the table for the parent script."""
    path = os.environ.get("IRCTEST_MARKERS_OUT")
    if not path:
        return
    rows = {
        nodeid: {"outcome": _OUTCOMES.get(nodeid, "skipped"), "markers": marks} for nodeid, marks in _MARKERS.items()
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1, sort_keys=True)
