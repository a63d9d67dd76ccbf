"""``python -m linechat``: the same as the ``linechat`` command."""

from linechat.cli import main

raise SystemExit(main())
