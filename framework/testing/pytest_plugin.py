"""pytest fixtures: ``linechat_harness`` and ``linechat_server`` for service authors, ``linechat_inbox`` for mail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from linechat.testing import RunningServer, ServiceHarness, serve
from linechat.testing.mail import MailInbox, smtp_sink


@pytest.fixture
def linechat_harness(tmp_path: Path) -> Iterator[Callable[..., ServiceHarness]]:
    """Factory: ``linechat_harness(MyService, **settings)`` drives a service in memory."""
    made: list[ServiceHarness] = []

    def make(service_cls: Any, **overrides: Any) -> ServiceHarness:
        harness = ServiceHarness(service_cls, data_dir=tmp_path / "data", **overrides)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def linechat_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``linechat_server(MyService, settings={...})`` serves on a loopback port."""
    with ExitStack() as stack:

        def start(services: Any, **kwargs: Any) -> RunningServer:
            kwargs.setdefault("data_dir", tmp_path / "data")
            return stack.enter_context(serve(services, **kwargs))

        yield start


@pytest.fixture
def linechat_inbox(tmp_path: Path) -> Iterator[MailInbox]:
    """An SMTP sink on a free loopback port: ``host``/``port``, ``messages``, ``wait_for()``, ``clear()``."""
    with smtp_sink(tmp_path / "linechat-inbox") as inbox:
        yield inbox
