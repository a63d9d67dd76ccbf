"""Suite-wide set-up: quiet, structured logs that pytest captures."""

from __future__ import annotations

import sys

from framework.logs import configure_logging

configure_logging("info", "console", stream=sys.stdout)
