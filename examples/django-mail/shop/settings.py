"""Settings of the example project: no database, mail through a real SMTP server."""

SECRET_KEY = "example-only-not-secret"  # an example project, never deployed
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = 25
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = "noreply@shop.example"
AUDIT_COPY = "audit@shop.example"
