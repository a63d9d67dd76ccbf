"""Importing the drop-in is cheap: no pydantic, no structlog, few modules (timings live in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys

import linechat
import pytest

# The budget is 80 modules; the standard library's asynchat (as
# pyasynchat) loads 22 and ours about 25 (docs/performance.md).  A bound well
# under the budget catches a heavy import (typing alone pulls in about ten).
MAX_NEW_MODULES = 40

HEAVY = ("pydantic", "pydantic_core", "pydantic_settings", "structlog", "typing")


def _modules_loaded_by(statement: str) -> list[str]:
    """The modules a fresh interpreter loads for *statement* (beyond those loaded at start-up)."""
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(out.stdout))


@pytest.mark.parametrize("statement", ["import linechat.asynchat", "from linechat.asynchat import async_chat"])
def test_drop_in_loads_no_framework_dependencies(statement: str) -> None:
    loaded = _modules_loaded_by(statement)
    assert "linechat.asynchat" in loaded
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    assert heavy == [], f"{statement} imported {heavy}"
    # Nothing of the service framework either.
    assert not {"linechat.service", "linechat.protocol", "linechat.app"} & set(loaded)
    assert len(loaded) <= MAX_NEW_MODULES, f"{len(loaded)} modules: {loaded}"


def test_reactor_loads_no_framework_dependencies() -> None:
    loaded = _modules_loaded_by("import linechat.reactor")
    assert not {"pydantic", "structlog"} & {name.split(".")[0] for name in loaded}


def test_the_logger_arrives_with_the_first_event() -> None:
    loaded = _modules_loaded_by(
        "import linechat.asynchat as a\nassert 'structlog' not in sys.modules\na._log.bind(x=1)"
    )
    assert "structlog" in loaded


def test_public_names_resolve_on_first_use() -> None:
    loaded = _modules_loaded_by("import linechat\nlinechat.Protocol")
    assert "linechat.protocol" in loaded
    assert "linechat.app" not in loaded
    for name in linechat.__all__:
        assert getattr(linechat, name) is not None
    assert set(linechat.__all__) <= set(dir(linechat))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        linechat.Nope  # noqa: B018
    namespace: dict[str, object] = {}
    exec("from linechat import *", namespace)
    assert namespace["Service"] is linechat.Service
