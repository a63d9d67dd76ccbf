"""The framework's modules follow the path of a byte: each imports only the stages below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from linechat import (
    CommandSpec,
    Protocol,
    Service,
    ServiceContext,
    ServiceSettings,
    command,
)
from linechat.app import App
from linechat.plugin import Plugin
from linechat.reactor import Reactor
from linechat.testing import ServiceHarness, serve

FRAMEWORK = Path(__file__).resolve().parents[2] / "framework"

# What each module may import from linechat when it runs (TYPE_CHECKING imports are free).
ALLOWED = {
    "transport": set(),
    "tls": set(),
    "auth": set(),
    "producers": set(),
    "rules": set(),
    "commands": set(),
    "context": set(),
    "protocol": {"asynchat", "commands", "rules"},
    "channel": {"asynchat", "limits", "protocol", "rules"},
    "service": {"context"},
}


def _runtime_imports(path: Path) -> set[str]:
    """The linechat modules *path* imports outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                visit(node.orelse)
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("linechat"):
                parts = node.module.split(".")
                if len(parts) == 1:
                    found.update(alias.name for alias in node.names)
                else:
                    found.add(parts[1])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("linechat."))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_lower_stages(module: str) -> None:
    imported = _runtime_imports(FRAMEWORK / f"{module}.py")
    assert imported <= ALLOWED[module], f"{module}.py imports {sorted(imported - ALLOWED[module])}"


def test_no_module_below_the_app_mentions_it() -> None:
    for module in ALLOWED:
        source = (FRAMEWORK / f"{module}.py").read_text()
        assert "linechat.app" not in source, module


class _Proto(Protocol):
    @command("GET", help="fetch")
    def get(self, key: str, count: int = 1) -> str:
        return f"{key}x{count}"


class _Svc(Service):
    name = "layered"
    protocol = _Proto


def test_command_spec_is_public() -> None:
    spec = _Proto.command_spec("get")
    assert isinstance(spec, CommandSpec)
    assert (spec.min_args, spec.max_args, spec.help) == (1, 2, "fetch")
    assert spec.accepts(1) and spec.accepts(2) and not spec.accepts(3)
    assert _Proto.command_spec("nope") is None
    assert set(_Proto.command_specs()) == {"GET"}


def test_service_needs_a_context_or_a_reactor() -> None:
    with pytest.raises(ValueError, match="context"):
        _Svc(ServiceSettings())
    reactor = Reactor()
    try:
        service = _Svc(ServiceSettings(), reactor=reactor)
        assert service.context.reactor is reactor and service.data_dir is None
        with pytest.raises(ValueError, match="reactor"):
            _Svc(ServiceSettings(), ServiceContext(reactor), reactor=Reactor())
    finally:
        reactor.close()


def test_harness_context_reaches_the_protocol(tmp_path: Path) -> None:
    with ServiceHarness(_Svc, data_dir=tmp_path) as harness:
        client = harness.connect()
        assert client.protocol.context is harness.service.context
        assert harness.service.data_dir == tmp_path
        assert client.protocol.reactor is harness.reactor


class _Counter(Plugin):
    name = "counter"


def test_app_builds_one_context_per_service(tmp_path: Path) -> None:
    with serve(_Svc, data_dir=tmp_path, plugins=[_Counter]) as server:
        app: App = server.app
        context = app.services["layered"].context
        assert context.reactor is app.reactor
        assert context.hooks is app.hooks
        assert context.data_dir == tmp_path / "layered"
        assert not hasattr(app.services["layered"], "app")
