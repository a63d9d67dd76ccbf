"""The built distributions, installed into a clean venv next to an application.

The sdist is built from a copy of the checkout, the wheel from the unpacked
sdist (as pip and build do). A clean venv then gets the wheel next to an
application whose own top-level packages are called ``services``, ``plugins``
and ``framework``, in both orders of installation and of uninstallation; both
must keep working and neither may delete the other's files.

The venv needs linechat's dependencies and pytest without a network: they are
lent from this environment through a ``.pth`` file naming a folder of symlinks
to exactly those distributions (code and metadata), so pip sees them installed
and ``--no-index`` installs need nothing else.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
from linechat.testing import connect_when_listening, free_port
from packaging.requirements import Requirement

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # a safety net, not a threshold
SKIP = {".git", "build", "dist", "data", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with a clean environment (no PYTHONPATH, no venv of ours); fail with its output."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    full_env.update(env or {})
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def build(backend_call: str, source: Path, out: Path) -> Path:
    """Call setuptools' PEP 517 backend in *source* (this environment's setuptools: no isolation, no network)."""
    out.mkdir(parents=True, exist_ok=True)
    code = f"import setuptools.build_meta as b; print(b.{backend_call}({str(out)!r}))"
    name = run([sys.executable, "-c", code], cwd=source).stdout.strip().splitlines()[-1]
    return out / name


def ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP or n.startswith(".venv") or n.endswith(".egg-info")}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel): the sdist from a copy of the checkout, the wheel from the unpacked sdist."""
    work = tmp_path_factory.mktemp("dists")
    source = work / "checkout"
    shutil.copytree(ROOT, source, ignore=ignore)
    sdist = build("build_sdist", source, work / "dist")
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    unpacked = work / "unpacked" / sdist.name.removesuffix(".tar.gz")
    wheel = build("build_wheel", unpacked, work / "dist")
    return sdist, wheel


def test_sdist_is_the_whole_project(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for wanted in (
        "LICENSE",
        "README.md",
        "Makefile",
        "pyproject.toml",
        "framework/py.typed",
        "tests/conftest.py",
        "tests/packaging/test_install.py",
        "docs/architecture.md",
        "bench/README.md",
        "examples/linechat-hello/pyproject.toml",
        ".ci/run",
    ):
        assert wanted in names, f"{wanted} missing from {sdist.name}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_holds_only_linechat(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    with tarfile.open(sdist) as archive:
        # Every file of the three package folders, as the wheel should name it.
        mapping = {"framework": "linechat", "services": "linechat/services", "plugins": "linechat/plugins"}
        expected = {
            f"{mapping[parts[1]]}/{'/'.join(parts[2:])}"
            for parts in (member.name.split("/") for member in archive.getmembers() if member.isfile())
            if len(parts) > 2 and parts[1] in mapping
        }
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    top = {name.split("/", 1)[0] for name in names}
    dist_info = f"linechat-{metadata.version('linechat')}.dist-info"
    assert top == {"linechat", dist_info}
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "linechat/py.typed" in names
    assert "linechat/services/echo/__init__.py" in names and "linechat/plugins/access.py" in names
    # A package folder left out of pyproject's `packages` (or its data) would be missing here.
    assert sorted(expected - set(names)) == []
    assert "License-Expression: MIT" in meta.splitlines()
    assert any(line.startswith("Project-URL: ") for line in meta.splitlines())


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions *names* need, themselves included (markers evaluated here)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _lend(dists: list[metadata.Distribution], farm: Path) -> None:
    """Symlink each distribution's top-level files and metadata into *farm*."""
    farm.mkdir()
    for dist in dists:
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if not (farm / top).exists() and (base / top).exists():
                (farm / top).symlink_to(base / top)


APP_FILES = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "generic-app"
        version = "1.0"
        [tool.setuptools]
        packages = ["services", "services.billing", "plugins", "framework"]
        [tool.pytest.ini_options]
        addopts = "-p no:cacheprovider"
        """,
    "services/__init__.py": "OWNER = 'generic-app'\n",
    "services/billing/__init__.py": "def total(*amounts: int) -> int:\n    return sum(amounts)\n",
    "plugins/__init__.py": "OWNER = 'generic-app'\n",
    "framework/__init__.py": "OWNER = 'generic-app'\n",
    "tests/test_app.py": """
        import importlib.util

        import pytest


        def test_own_packages():
            import framework
            import plugins
            import services
            from services.billing import total

            assert services.OWNER == plugins.OWNER == framework.OWNER == "generic-app"
            assert total(2, 3) == 5


        @pytest.mark.skipif(importlib.util.find_spec("linechat") is None, reason="linechat is not installed")
        def test_linechat_fixture(request):
            from linechat.services.echo import EchoService

            harness = request.getfixturevalue("linechat_harness")(EchoService)
            client = harness.connect()
            client.send("ECHO from the app\\r\\n")
            assert client.read_lines()[-1] == "+ from the app"
        """,
}


class Venv:
    """A clean venv, with linechat's and pytest's dependencies lent from this environment."""

    def __init__(self, root: Path) -> None:
        run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], cwd=root)
        self.bin = root / "venv" / "bin"
        self.python = self.bin / "python"
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        self.site = Path(run([self.python, "-c", code], cwd=root).stdout.strip())
        needed = [d for d in _closure(["linechat", "pytest", "pip"]) if d.metadata["Name"] != "linechat"]
        _lend(needed, root / "lent")
        (self.site / "_lent_for_test.pth").write_text(f"{root / 'lent'}\n")
        self.baseline = self.entries()

    def entries(self) -> set[str]:
        return {p.name for p in self.site.iterdir() if p.name != "__pycache__"}

    def pip(self, *args: str | Path, cwd: Path) -> None:
        run([self.python, "-m", "pip", "--disable-pip-version-check", "-q", *args], cwd=cwd)


@pytest.fixture(scope="module")
def app_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the application's source folder, its built wheel)."""
    root = tmp_path_factory.mktemp("app")
    source = root / "generic-app"
    for name, text in APP_FILES.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    built = root / "built"
    shutil.copytree(source, built)  # building leaves build/ and egg-info behind
    return source, build("build_wheel", built, root / "dist")


def check_app(venv: Venv, source: Path, tmp: Path, with_linechat: bool) -> None:
    """The application imports its own packages, installed and from its root, and its tests pass."""
    code = "import services, plugins, framework, services.billing; print(services.__file__, framework.OWNER)"
    out = run([venv.python, "-c", code], cwd=tmp).stdout
    assert str(venv.site) in out and "generic-app" in out
    out = run([venv.python, "-m", "pytest", "-q", "-rs"], cwd=source).stdout
    if with_linechat:
        assert "2 passed" in out, out
    else:
        assert "1 passed, 1 skipped" in out, out


def check_linechat(venv: Venv, cwd: Path, tmp: Path) -> None:
    """`linechat serve --only echo` serves and answers from *cwd*, even with PYTHONPATH=. there."""
    out = run([venv.python, "-c", "import linechat, linechat.services.echo as e; print(e.__file__)"], cwd=cwd).stdout
    assert str(venv.site / "linechat" / "services" / "echo") in out
    port = free_port()
    args = ["serve", "--only", "echo", "--data-dir", tmp / "data", "--set", f"services.echo.port={port}"]
    proc = subprocess.Popen(
        [venv.bin / "linechat", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": "."},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sock = connect_when_listening(port)
        with sock, sock.makefile("rb") as reader:
            assert reader.readline() == b"+ linechat echo ready\r\n"
            sock.sendall(b"ECHO installed\r\n")
            assert reader.readline() == b"+ installed\r\n"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr


def owned(venv: Venv, dist: str) -> set[str]:
    """The top-level site-packages names that *dist*'s RECORD lists."""
    record = next(venv.site.glob(f"{dist}-*.dist-info")) / "RECORD"
    return {line.split(",", 1)[0].split("/", 1)[0] for line in record.read_text().splitlines() if line}


@pytest.mark.parametrize("first", ["linechat", "app"])
def test_installed_next_to_an_app_with_generic_package_names(
    first: str, dists: tuple[Path, Path], app_wheel: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = dists
    source, app = app_wheel
    venv = Venv(tmp_path)
    wheels = {"linechat": wheel, "app": app}
    second = "app" if first == "linechat" else "linechat"

    venv.pip("install", "--no-index", wheels[first], cwd=tmp_path)
    added = venv.entries() - venv.baseline
    if first == "linechat":
        # Nothing but the package and its metadata at the top of site-packages.
        assert added == {"linechat", wheel.name.split("-py3")[0] + ".dist-info"}
        assert owned(venv, "linechat") == added | {".."}  # ..: the linechat script in bin/
        check_linechat(venv, source, tmp_path)
    else:
        check_app(venv, source, tmp_path, with_linechat=False)

    venv.pip("install", "--no-index", wheels[second], cwd=tmp_path)
    check_linechat(venv, source, tmp_path)
    check_app(venv, source, tmp_path, with_linechat=True)
    app_names = {"services", "plugins", "framework"}
    assert not app_names & owned(venv, "linechat")
    assert app_names <= owned(venv, "generic_app")

    # Uninstall in the same order as installed: the other one must be whole.
    venv.pip("uninstall", "-y", "linechat" if first == "linechat" else "generic-app", cwd=tmp_path)
    if first == "linechat":
        assert not (venv.site / "linechat").exists() and not (venv.bin / "linechat").exists()
        check_app(venv, source, tmp_path, with_linechat=False)
    else:
        assert not app_names & venv.entries()
        check_linechat(venv, source, tmp_path)
    venv.pip("uninstall", "-y", "generic-app" if first == "linechat" else "linechat", cwd=tmp_path)
    assert venv.entries() == venv.baseline
