"""Suite-wide set-up: quiet, structured logs that pytest captures."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Iterator

import pytest
from linechat.logs import configure_logging

configure_logging("info", "console", stream=sys.stdout)

# Heavy integration tests (real task queues, worker processes, a browser) run
# once per CI run, on one Python; .ci/run sets this variable for the others.
SKIP_HEAVY = os.environ.get("LINECHAT_SKIP_HEAVY", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``heavy`` when LINECHAT_SKIP_HEAVY is set, saying why."""
    if not SKIP_HEAVY:
        return
    reason = "heavy integration test: LINECHAT_SKIP_HEAVY is set (CI runs these on Python 3.12 only)"
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def fd_limit() -> Iterator[Callable[[int], None]]:
    """Raise RLIMIT_NOFILE to at least N for one test (skip if the hard limit forbids it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def ensure(wanted: int) -> None:
        if soft >= wanted:
            return
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    yield ensure
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
