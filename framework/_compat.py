"""Import asyncore quietly on every supported Python."""

from __future__ import annotations

import warnings

# Python 3.11 ships asyncore but warns on import; 3.12+ lacks it and the
# ``pyasyncore`` distribution provides the same top-level module.  Users of
# linechat should never see that warning: it is about us, not about them.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore

__all__ = ["asyncore"]
