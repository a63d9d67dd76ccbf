"""The documented example: a Flask app's sign-up mail checked with the ``linechat_inbox`` fixture."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest
from linechat.testing.mail import MailInbox

pytest.importorskip("flask", reason="flask is not installed (the test extra)")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask-mail" / "signup_app.py"
spec = importlib.util.spec_from_file_location("signup_app", EXAMPLE)
assert spec is not None and spec.loader is not None
signup_app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(signup_app)


def test_signup_mails_a_welcome(linechat_inbox: MailInbox) -> None:
    app = signup_app.create_app(smtp_host=linechat_inbox.host, smtp_port=linechat_inbox.port)
    client = app.test_client()

    assert client.post("/signup", data={"email": "ann@example.test"}).status_code == 201

    mail = linechat_inbox.wait_for(to="ann@example.test", subject="Welcome", timeout=10)
    assert mail.to == ["ann@example.test"]
    assert "https://shop.example/activate/tok-ann" in mail.text
    assert 'href="https://shop.example/activate/tok-ann"' in mail.html
    assert mail.recipients == ["ann@example.test", "audit@shop.example"]  # the envelope
    assert mail.bcc == ["audit@shop.example"]  # the blind copy, recorded by the sink
    assert len(linechat_inbox.messages) == 1

    linechat_inbox.clear()
    assert linechat_inbox.messages == []


def test_wait_for_says_what_arrived_instead(linechat_inbox: MailInbox) -> None:
    app = signup_app.create_app(smtp_host=linechat_inbox.host, smtp_port=linechat_inbox.port)
    app.test_client().post("/signup", data={"email": "bob@example.test"})
    with pytest.raises(AssertionError, match="Welcome to the shop"):
        linechat_inbox.wait_for(to="carol@example.test", timeout=0.5)


def test_wait_for_waits_for_mail_sent_later(linechat_inbox: MailInbox) -> None:
    app = signup_app.create_app(smtp_host=linechat_inbox.host, smtp_port=linechat_inbox.port)
    sender = threading.Thread(target=lambda: app.test_client().post("/signup", data={"email": "dan@example.test"}))
    assert linechat_inbox.messages == []
    sender.start()  # the mail arrives while wait_for is waiting
    mail = linechat_inbox.wait_for(to="dan@example.test", timeout=20)
    sender.join(20)
    assert mail.subject == "Welcome to the shop"
