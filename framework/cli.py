"""The ``linechat`` command: ``serve``, ``services`` and ``config``."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog
from linechat import __version__
from linechat.logs import configure_logging
from linechat.plugin import PLUGIN_GROUP, SERVICE_GROUP, Discovered, discover
from linechat.settings import SettingsError, build_settings_model, load_settings, parse_assignment

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # invalid settings or arguments, as argparse does

DEFAULT_CONFIG = "linechat.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linechat", description="Serve line protocols (SMTP, Redis, chat and your own) on one reactor."
    )
    parser.add_argument("--version", action="version", version=f"linechat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            "-c",
            metavar="FILE",
            help=f"TOML settings file (default: $LINECHAT_CONFIG, else ./{DEFAULT_CONFIG} if present)",
        )
        p.add_argument(
            "--set",
            dest="assignments",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one setting, e.g. --set services.smtp.port=2525 (repeatable; VALUE is JSON or text)",
        )
        p.add_argument("--data-dir", metavar="DIR", help="local data folder for embedded storage")
        p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
        p.add_argument("--log-format", choices=["auto", "console", "json"])

    serve = sub.add_parser("serve", help="run every enabled service on one reactor")
    common(serve)
    serve.add_argument("--only", metavar="NAME,...", help="run only these services (enabled or not)")
    serve.add_argument("--access-log", action="store_true", default=None, help="log every command")
    serve.add_argument("--strict", action="store_true", default=None, help="fail if a service or plugin cannot load")
    serve.add_argument(
        "--workers", metavar="N", help="worker processes sharing the listeners (a number, or auto: one per CPU)"
    )

    services = sub.add_parser("services", help="list the services and plugins found by entry point")
    services.add_argument("--json", action="store_true", help="print JSON")

    config = sub.add_parser("config", help="print the effective configuration")
    common(config)
    config.add_argument("--format", choices=["toml", "json"], default="toml")

    hashing = sub.add_parser(
        "hash-password", help="print a users-file line (name:scrypt hash) for SMTP AUTH, IRC SASL and operators"
    )
    hashing.add_argument("name", help="the user name")
    hashing.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input instead of a prompt"
    )
    return parser


def _cmd_hash_password(args: argparse.Namespace, out: TextIO) -> int:
    import getpass

    from linechat.auth import hash_password

    if ":" in args.name or not args.name.strip():
        return _fail("hash-password: the name must be non-empty and contain no ':'", sys.stderr)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    if not password:
        return _fail("hash-password: empty password", sys.stderr)
    out.write(f"{args.name}:{hash_password(password)}\n")
    return EXIT_OK


def _flags(args: argparse.Namespace) -> list[tuple[list[str], Any]]:
    flags = [parse_assignment(text) for text in args.assignments]
    if args.data_dir:
        flags.append((["data_dir"], args.data_dir))
    if args.log_level:
        flags.append((["log", "level"], args.log_level))
    if args.log_format:
        flags.append((["log", "format"], args.log_format))
    if getattr(args, "access_log", None):
        flags.append((["log", "access"], True))
    if getattr(args, "strict", None):
        flags.append((["strict"], True))
    if getattr(args, "workers", None) is not None:
        flags.append((["workers"], parse_assignment(f"workers={args.workers}")[1]))
    return flags


def _config_path(args: argparse.Namespace) -> str | None:
    if args.config:
        return str(args.config)
    env = os.environ.get("LINECHAT_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def _discover() -> tuple[list[Discovered], list[Discovered]]:
    return discover(SERVICE_GROUP), discover(PLUGIN_GROUP)


def _usable(items: list[Discovered], base: type) -> tuple[dict[str, type], list[Discovered]]:
    good: dict[str, type] = {}
    bad: list[Discovered] = []
    for item in items:
        if item.ok and not issubclass(item.obj, base):
            item.error = f"{item.value} is not a {base.__name__} subclass"
        if item.ok:
            good[item.name] = item.obj
        else:
            bad.append(item)
    return good, bad


def _fail(message: str, out: TextIO, code: int = EXIT_USAGE) -> int:
    """Write each line of *message* as one ``linechat: ...`` line; return *code*."""
    for line in message.splitlines() or [""]:
        out.write(f"linechat: {line}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "services":
        return _cmd_services(args, sys.stdout)
    if args.command == "hash-password":
        return _cmd_hash_password(args, sys.stdout)
    from linechat.plugin import Plugin
    from linechat.service import Service

    service_items, plugin_items = _discover()
    services, bad_services = _usable(service_items, Service)
    plugins, bad_plugins = _usable(plugin_items, Plugin)
    try:
        unloaded = [f"services.{item.name}" for item in bad_services] + [f"plugins.{item.name}" for item in bad_plugins]
        model = build_settings_model(services, plugins, unloaded)
        settings = load_settings(model, _config_path(args), _flags(args))
    except SettingsError as exc:
        return _fail(str(exc), sys.stderr)
    if args.command == "config":
        return _cmd_config(args, settings, sys.stdout)
    _, problem = _only(args, services, bad_services)
    if problem:  # before the load failures are logged: this line says all there is
        return _fail(problem, sys.stderr)
    configure_logging(settings.log.level, settings.log.format)  # type: ignore[attr-defined]
    log = structlog.get_logger("linechat.cli")
    for item in bad_services + bad_plugins:
        log.error("entry_point_failed", group=item.group, name=item.name, origin=item.origin, error=item.error)
    if (bad_services or bad_plugins) and settings.strict:  # type: ignore[attr-defined]
        return _fail("a service or plugin failed to load and strict is set", sys.stderr, EXIT_FAILURE)
    return _cmd_serve(args, settings, services, plugins, bad_services, log)


def _cmd_services(args: argparse.Namespace, out: TextIO) -> int:
    rows = []
    for item in [*discover(SERVICE_GROUP), *discover(PLUGIN_GROUP)]:
        kind = "service" if item.group == SERVICE_GROUP else "plugin"
        description = getattr(item.obj, "description", "") if item.ok else ""
        rows.append(
            {
                "kind": kind,
                "name": item.name,
                "origin": item.origin,
                "version": item.version,
                "entry_point": item.value,
                "status": "ok" if item.ok else f"error: {item.error}",
                "description": description,
            }
        )
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    widths = {key: max([len(key)] + [len(str(row[key])) for row in rows]) for key in ("kind", "name", "origin")}
    widths["version"] = max([7] + [len(str(row["version"])) for row in rows])
    for row in rows:
        out.write(
            f"{row['kind']:<{widths['kind']}}  {row['name']:<{widths['name']}}  "
            f"{row['origin']:<{widths['origin']}}  {row['version']:<{widths['version']}}  "
            f"{row['status'] if row['status'] != 'ok' else row['description']}\n"
        )
    return EXIT_OK


def _cmd_config(args: argparse.Namespace, settings: Any, out: TextIO) -> int:
    data = settings.model_dump(mode="json")
    if args.format == "json":
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        out.write(_to_toml(data))
    return EXIT_OK


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render nested settings as TOML (None values are left out: TOML has no null)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        inner = _to_toml(table, f"{name}.")
        if any(not isinstance(v, dict) for v in table.values()):
            text += f"\n[{name}]\n"
        text += inner
    return text


def _only(
    args: argparse.Namespace, services: dict[str, type], bad_services: list[Discovered]
) -> tuple[list[str] | None, str | None]:
    """The services named by ``--only`` (None: no such flag), or why the flag is wrong."""
    if getattr(args, "only", None) is None:
        return None, None
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if not only:
        return None, f"--only needs at least one service name (known: {', '.join(services)})"
    for name in only:
        failed = next((item for item in bad_services if item.name == name), None)
        if failed is not None:
            return None, f"--only names service {name}, which failed to load: {failed.error}"
    unknown = sorted(set(only) - set(services))
    if unknown:
        return None, f"--only names unknown services: {', '.join(unknown)} (known: {', '.join(services)})"
    return only, None


def _cmd_serve(
    args: argparse.Namespace,
    settings: Any,
    services: dict[str, type],
    plugins: dict[str, type],
    bad_services: list[Discovered],
    log: Any,
) -> int:
    from linechat.app import App
    from linechat.preflight import ListenError, data_dir_problem, endpoint, listen_conflicts

    only, problem = _only(args, services, bad_services)
    if problem:
        return _fail(problem, sys.stderr)
    problem = data_dir_problem(Path(settings.data_dir))
    if problem:
        return _fail(problem, sys.stderr)
    try:
        app = App(settings, services, plugins, only=only)
    except Exception:
        log.exception("start_failed", reason="a service or plugin failed to configure and strict is set")
        return EXIT_FAILURE
    if not app.services:
        app.reactor.close()
        if app.failed:
            # Every service asked for failed to configure: say why rather than "none enabled".
            why = "; ".join(f"{what.partition(':')[2]}: {error}" for what, error in app.failed.items())
            return _fail(f"no service could start ({why})", sys.stderr, EXIT_FAILURE)
        return _fail("no service is enabled (see `linechat config`)", sys.stderr, EXIT_FAILURE)
    conflicts = listen_conflicts(app.services.values())
    if conflicts:
        app.reactor.close()
        return _fail("\n".join(conflicts), sys.stderr)
    from linechat.workers import resolve_workers

    workers = resolve_workers(settings.workers)
    if workers > 1:
        app.reactor.close()  # the supervisor runs no reactor: each worker builds its own after the fork
        return _serve_workers(settings, services, plugins, only, app, workers, log)
    try:
        app.start()
    except ListenError as exc:
        app.reactor.close()
        if exc.errno == errno.EADDRINUSE:
            # Hosts that are spelt differently but overlap ("localhost" and "127.0.0.1").
            for listener in app.listeners:
                if listener.address[1] == exc.port:
                    name = listener.service.name
                    who = name if listener.spec.name == "main" else f"{name} ({listener.spec.name} listener)"
                    exc.holder = f"{who} on {endpoint(*listener.address)}"
        return _fail(str(exc), sys.stderr)
    except OSError as exc:
        app.reactor.close()
        return _fail(f"cannot start: {exc}", sys.stderr, EXIT_FAILURE)
    except Exception:
        log.exception("start_failed")
        app.reactor.close()
        return EXIT_FAILURE
    try:
        app.reactor.run(grace=settings.shutdown_grace)
    finally:
        app.shutdown()
    return EXIT_OK


def _serve_workers(
    settings: Any,
    services: dict[str, type],
    plugins: dict[str, type],
    only: list[str] | None,
    probe: Any,
    count: int,
    log: Any,
) -> int:
    """Bind every listener once, then fork *count* workers that share them (``serve --workers N``)."""
    import signal

    from linechat.app import App
    from linechat.preflight import ListenError
    from linechat.workers import Supervisor, bind_listeners, single_process_services

    single = single_process_services(probe)
    if single:
        others = [name for name in probe.services if name not in single]
        them = ", ".join(single)
        also = f", and the others with --workers {count} --only {','.join(others)}" if others else ""
        return _fail(
            f"--workers {count}: {them} cannot run in several processes: serve {them} in one process"
            f" (linechat serve --only {','.join(single)}){also}",
            sys.stderr,
        )
    try:
        probe.check_tls()  # once, before the fork: workers must not each make a development CA
        sockets = bind_listeners(probe)
    except ListenError as exc:
        return _fail(str(exc), sys.stderr)
    except Exception:
        log.exception("start_failed")
        return EXIT_FAILURE
    for (service, listener), sock in sockets.items():
        host, port = sock.getsockname()[:2]
        log.info("listening", service=service, listener=listener, host=host, port=port)

    def work(slot: int, ready_fd: int) -> int:
        structlog.contextvars.bind_contextvars(worker=slot, pid=os.getpid())
        app = App(settings, services, plugins, only=only, sockets=sockets)
        # Ctrl-C reaches the whole process group; the supervisor alone answers it (by SIGTERM to
        # each worker), or the second signal would cut the graceful stop short.
        app.reactor.signal_callbacks[signal.SIGINT] = lambda: None
        try:
            app.start()
            os.write(ready_fd, b"1")
            os.close(ready_fd)
            app.reactor.run(grace=settings.shutdown_grace)
        finally:
            app.shutdown()
        return EXIT_OK

    try:
        return Supervisor(count, work, grace=settings.shutdown_grace).run()
    finally:
        for sock in sockets.values():
            sock.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
