"""Suite-wide set-up: quiet, structured logs that pytest captures."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Iterator

import pytest
from linechat.logs import configure_logging

configure_logging("info", "console", stream=sys.stdout)


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
