"""The web page in a real headless Chromium (Debian's, driven by Playwright): live list, open, delete."""

from __future__ import annotations

import os
import re
import shutil
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from linechat.plugins.metrics import Metrics
from linechat.services.http import HttpService
from linechat.services.smtp import SmtpService
from linechat.testing import RunningServer, serve
from mail_samples import related_message, tiny_png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The screenshot linked from docs/services/smtp.md; refreshed when LINECHAT_SCREENSHOT is set.
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "images" / "mail-page.png"

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")

TIMEOUT_MS = 20_000
# How Chromium reports a request it refused itself (a CSP, a scheme it cannot fetch).
BLOCKED = {"net::ERR_BLOCKED_BY_CSP", "net::ERR_UNKNOWN_URL_SCHEME", "csp"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = {"services": {"smtp": {"fsync": False, "hostname": "mx.test"}}}
    with serve([SmtpService, HttpService], data_dir=tmp_path, plugins=[Metrics], settings=settings) as srv:
        yield srv


@pytest.fixture
def page(server: RunningServer) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            # expect() has its own 5 s default, which a loaded machine can pass: the same safety net.
            playwright_api.expect.set_options(timeout=TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            outside: list[str] = []
            host, port = server.address("http")
            origin = f"http://{host}:{port}"

            blocked: dict[str, str] = {}

            def record(request: Any) -> None:
                if not (request.url.startswith(origin) or request.url.startswith(("about:", "data:"))):
                    outside.append(request.url)

            def failed(request: Any) -> None:
                # A message's remote or unknown references are tried by the browser and refused
                # before any network use: they count as fetched only if they did not fail so.
                if request.url in outside and request.failure in BLOCKED:
                    outside.remove(request.url)
                    blocked[request.url] = request.failure

            page.on("request", record)
            page.on("requestfailed", failed)
            page.blocked = blocked  # type: ignore[attr-defined]
            page.goto(origin + "/")
            yield page
            assert errors == [], errors
            assert outside == [], f"the page fetched from elsewhere: {outside}"
        finally:
            browser.close()


def send(server: RunningServer, subject: str, html: str | None = None) -> None:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Subject"] = subject
    message.set_content(f"Plain text of {subject}.\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
        message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="report.csv")
    with smtplib.SMTP(*server.address("smtp"), timeout=20) as client:
        client.send_message(message, to_addrs=["bob@example.org", "audit@example.org"])


def test_mail_appears_live_opens_and_deletes(server: RunningServer, page: Any) -> None:
    expect = playwright_api.expect
    expect(page.locator("#live")).to_have_class("on")  # the event stream is open
    expect(page.locator("#empty")).to_be_visible()
    send(
        server,
        "Welcome aboard",
        "<h1 id='greeting'>Hello Bob</h1><script>document.title='pwned'</script><p>Your account is ready.</p>",
    )
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(1)  # no reload: it came over the event stream
    expect(rows.first.locator(".subject")).to_have_text("Welcome aboard")
    send(server, "Second note")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".subject")).to_have_text("Second note")

    rows.filter(has_text="Welcome aboard").click()
    expect(page.locator("#view-subject")).to_have_text("Welcome aboard")
    expect(page.locator("#view-meta")).to_contain_text("audit@example.org")  # the Bcc'd recipient
    frame = page.frame_locator("#pane-html")
    expect(frame.locator("#greeting")).to_have_text("Hello Bob")
    assert page.title() == "linechat mail"  # the message's script did not run
    page.click("#tabs button[data-tab=text]")
    expect(page.locator("#pane-text")).to_have_text("Plain text of Welcome aboard.\n")
    page.click("#tabs button[data-tab=headers]")
    expect(page.locator("#pane-headers")).to_contain_text("Return-Path")
    page.click("#tabs button[data-tab=raw]")
    expect(page.locator("#pane-raw")).to_contain_text("Delivered-To: audit@example.org")
    page.click("#tabs button[data-tab=attachments]")
    expect(page.locator("#pane-attachments a")).to_have_text("report.csv")
    page.click("#tabs button[data-tab=html]")

    page.fill("#search", "second")
    expect(rows).to_have_count(1)
    page.fill("#search", "")
    expect(rows).to_have_count(2)
    rows.filter(has_text="Welcome aboard").click()
    expect(page.locator("#view-subject")).to_have_text("Welcome aboard")
    if os.environ.get("LINECHAT_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))

    page.click("#delete")
    expect(rows).to_have_count(1)
    expect(page.locator("#view")).to_be_hidden()
    assert server.app.services["smtp"].inbox is not None
    assert [m.subject for m in server.app.services["smtp"].inbox.list()[1]] == ["Second note"]


def test_mail_sent_before_the_event_stream_opens_is_listed(server: RunningServer, page: Any) -> None:
    # The page fetches the list, then opens its event stream; a message stored in between sends
    # its event to nobody. Hold the stream's request until a message has been stored, then let it go.
    expect = playwright_api.expect
    held: list[Any] = []
    page.route("**/api/v1/events", lambda route: held.append(route))
    page.reload()
    expect(page.locator("#empty")).to_be_visible()  # the first list came back empty
    for _ in range(400):  # the browser's request reaches the route on its own (a 20 s safety net)
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page never asked for its event stream"
    send(server, "In the gap")
    held[0].continue_()
    expect(page.locator("#live")).to_have_class("on")
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".subject")).to_have_text("In the gap")


def test_html_mail_shows_its_own_cid_images(server: RunningServer, page: Any) -> None:
    expect = playwright_api.expect
    with smtplib.SMTP(*server.address("smtp"), timeout=20) as client:
        client.send_message(related_message(tiny_png()))
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.locator("#view-subject")).to_have_text("With a logo")
    frame = page.frame_locator("#pane-html")
    logo = frame.locator("#logo")
    expect(logo).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    # Decoded by the browser inside the sandboxed frame: the message's own part, fetched from nowhere.
    assert logo.evaluate(LOADED_WIDTH) == 2
    assert frame.locator("#missing").evaluate(LOADED_WIDTH) == 0
    assert frame.locator("#remote").evaluate(LOADED_WIDTH) == 0
    tracker = "https://tracker.example/pixel.gif"
    for _ in range(400):  # the refusal's event comes on its own (a safety net of 20 s, not a timing)
        if tracker in page.blocked:
            break
        page.wait_for_timeout(50)
    assert page.blocked.get(tracker) in BLOCKED  # refused by the CSP, not fetched


# The width of an image once the browser is done with it (0: it failed).
LOADED_WIDTH = (
    "img => img.complete ? img.naturalWidth"
    " : new Promise(done => { img.onload = img.onerror = () => done(img.naturalWidth); })"
)
