"""The sign-up view: mails a welcome, text and HTML, with an audit copy in Bcc."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST


@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    """Mail a welcome to the address in the form."""
    address = request.POST["email"]
    link = "https://shop.example/activate/tok-" + address.split("@")[0]
    mail = EmailMultiAlternatives(
        subject="Welcome to the shop",
        body=f"Activate your account: {link}\n",
        to=[address],
        bcc=[settings.AUDIT_COPY],  # an envelope recipient only: never in the headers
    )
    mail.attach_alternative(f'<p><a href="{link}">Activate</a></p>\n', "text/html")
    mail.send()
    return JsonResponse({"status": "mailed"}, status=201)
