"""The sign-up mail, sent by Django over real SMTP to linechat's sink and read back from it."""

from django.test import Client, override_settings
from linechat.testing.mail import MailInbox


def test_signup_mails_a_welcome(linechat_inbox: MailInbox) -> None:
    # The SMTP backend named too: Django's own test runner (and pytest-django) switch to locmem.
    smtp = override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=linechat_inbox.host,
        EMAIL_PORT=linechat_inbox.port,
    )
    with smtp:
        response = Client().post("/signup", {"email": "ann@example.test"})
    assert response.status_code == 201

    mail = linechat_inbox.wait_for(to="ann@example.test", subject="Welcome", timeout=10)
    assert mail.to == ["ann@example.test"]
    assert mail.mail_from == "noreply@shop.example"
    assert "https://shop.example/activate/tok-ann" in mail.text
    assert 'href="https://shop.example/activate/tok-ann"' in mail.html
    assert mail.recipients == ["ann@example.test", "audit@shop.example"]  # the envelope
    assert mail.bcc == ["audit@shop.example"]  # the blind copy, recorded by the sink

    linechat_inbox.clear()
    assert linechat_inbox.messages == []
