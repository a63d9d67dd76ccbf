"""A tiny Django project that mails a welcome on sign-up: the example tested with ``linechat_inbox``."""
