"""Import asyncore quietly on every supported Python; log through structlog without importing it early."""

from __future__ import annotations

import warnings

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see asynchat.py)
if TYPE_CHECKING:
    from typing import Any

# Python 3.11 ships asyncore but warns on import; 3.12+ lacks it and the
# ``pyasyncore`` distribution provides the same top-level module.  Users of
# linechat should never see that warning: it is about us, not about them.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore

__all__ = ["asyncore", "lazy_logger"]


class _LazyLogger:
    """A structlog logger that imports structlog on first use."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import structlog

            logger = self._logger = structlog.get_logger(self._name)
        return getattr(logger, attr)


def lazy_logger(name: str) -> Any:
    """structlog's ``get_logger(name)``, imported when the first event is logged.

    The drop-in ``asynchat`` and the reactor log only when something goes
    wrong; importing them must cost no more than the standard library's module.
    """
    return _LazyLogger(name)
