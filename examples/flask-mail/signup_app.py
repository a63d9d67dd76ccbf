"""A small Flask app that mails a welcome message on sign-up: the example tested with ``linechat_inbox``."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from flask import Flask, request


def create_app(smtp_host: str = "127.0.0.1", smtp_port: int = 25) -> Flask:
    """The app, sending through the SMTP server at *smtp_host*:*smtp_port*."""
    app = Flask(__name__)
    app.config.update(
        SMTP_HOST=smtp_host, SMTP_PORT=smtp_port, MAIL_FROM="noreply@shop.example", AUDIT_COPY="audit@shop.example"
    )

    @app.post("/signup")
    def signup() -> tuple[dict[str, str], int]:
        address = request.form["email"]
        token = "tok-" + address.split("@")[0]
        message = EmailMessage()
        message["From"] = app.config["MAIL_FROM"]
        message["To"] = address
        message["Subject"] = "Welcome to the shop"
        message.set_content(f"Activate your account: https://shop.example/activate/{token}\n")
        message.add_alternative(
            f'<p><a href="https://shop.example/activate/{token}">Activate</a></p>\n', subtype="html"
        )
        with smtplib.SMTP(app.config["SMTP_HOST"], app.config["SMTP_PORT"], timeout=10) as smtp:
            # The audit copy is a blind copy: an envelope recipient only, never in the headers.
            smtp.send_message(message, to_addrs=[address, app.config["AUDIT_COPY"]])
        return {"status": "mailed"}, 201

    return app
