"""The console in a real browser: Playwright drives Debian's Chromium (never a downloaded
one). A moderator filters the queue, opens hostile HTML that must neither run nor load
anything, releases it, archives another message; the database shows both. At 1,400 px the
queue fits beside both sidebars and the dashboard's chart fits its panel, with dates. These
tests also take the README's screenshots (docs/screenshots/)."""

from __future__ import annotations

import datetime as dt
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from assmbl.groups import MODERATOR
from mail.models import Message
from tests.factories import MessageFactory
from tests.mime import build_mail

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Tracker(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Tracker.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tracker() -> Iterator[str]:
    """A local server standing in for a remote tracking pixel: it must get no request."""
    _Tracker.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between page actions are still synchronous, as Django's guard cannot tell.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def test_a_moderator_reviews_hostile_mail_safely(
    live_server: Any, browser: Any, tracker: str, owner: Any, deliver: Any
) -> None:
    hostile = (
        f'<html><body><h1 id="greeting">Hello moderator</h1><script>window.top.document.title="pwned";alert(1)</script>'
        f'<img src="{tracker}/pixel.png" onerror="alert(2)"><form action="{tracker}/steal"><input name=p><button>Go</button></form>'
        f'<iframe src="{tracker}/frame"></iframe><link rel=stylesheet href="{tracker}/style.css"></body></html>'
    )
    deliver(build_mail(to=owner.address, subject="Hostile offer", html=hostile), to=owner.address)
    deliver(build_mail(to=owner.address, subject="Old newsletter"), to=owner.address)
    held = Message.objects.get(subject="Hostile offer")
    Message.objects.filter(pk=held.pk).update(disposition="held")
    other = Message.objects.get(subject="Old newsletter")
    user = User.objects.create_user("mod", password="mod-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATOR))

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "mod")
    page.fill("#id_password", "mod-pass-123")
    page.click("input[type=submit]")

    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/mail/moderationitem/")
    page.click("#changelist-filter >> text=Held for moderation (policy)")
    page.wait_for_url("**disposition__exact=held**")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)

    page.click("#result_list tbody tr th a")
    page.wait_for_url("**/change/**")
    frame = page.frame_locator("#html-body")
    # nh3 keeps the heading but strips its id, like every attribute it does not allow.
    assert frame.locator("h1").inner_text() == "Hello moderator"
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "message-detail.png"), full_page=True)
    assert dialogs == []
    assert page.title() != "pwned"
    assert _Tracker.hits == []

    page.goto(f"{live_server.url}/admin/mail/moderationitem/?disposition__exact=held")
    page.check(f"input[name=_selected_action][value='{held.pk}']")
    page.select_option("select[name=action]", "release")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Released")
    held.refresh_from_db()
    assert held.disposition == "inbox"

    page.goto(f"{live_server.url}/admin/mail/message/")
    page.check(f"input[name=_selected_action][value='{other.pk}']")
    page.select_option("select[name=action]", "archive")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Archived")
    other.refresh_from_db()
    assert other.archived
    assert _Tracker.hits == []


def _login(page: Any, live_server: Any) -> None:
    User.objects.create_user("mod", password="mod-pass-123", is_staff=True).groups.add(
        Group.objects.get(name=MODERATOR)
    )
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "mod")
    page.fill("#id_password", "mod-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def _overflow(page: Any, selector: str) -> dict[str, int]:
    return page.eval_on_selector(selector, "e => ({scroll: e.scrollWidth, client: e.clientWidth})")


def test_the_queue_and_the_dashboard_fit_a_1400_pixel_window(live_server: Any, browser: Any, owner: Any) -> None:
    agent = owner.agent
    now = timezone.now()
    MessageFactory(
        agent=agent,
        disposition="held",
        sender="alice.longname@customers.example.com",
        subject="Re: the quarterly invoice you asked about, with the corrected totals",
        quarantine_reason="sender is not verified for this agent",
        received_at=now - dt.timedelta(days=3),
    )
    MessageFactory(
        agent=agent,
        disposition="quarantined",
        sender="mailer-daemon@relay.example.net",
        subject="Undeliverable",
        received_at=now - dt.timedelta(days=1),
        quarantine_reason="parser error: HeaderParseError: expected atom at a start of dot-atom-text "
        "but found '[unparseable]' in the From header of the message",
    )
    MessageFactory(
        agent=agent,
        disposition="blocked",
        sender="spam@bulk.example.org",
        subject="WIN NOW",
        quarantine_reason="sender is blocked",
    )
    MessageFactory(
        agent=agent, sender="bob@partner.example.com", subject="Unverified but delivered", sender_verified=False
    )
    for days in range(0, 25, 2):
        MessageFactory(agent=agent, direction="outbound", received_at=now - dt.timedelta(days=days))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _login(page, live_server)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    panel = page.locator("#dashboard").bounding_box()
    chart = page.locator("#mail-chart").bounding_box()
    assert chart["x"] >= panel["x"] and chart["x"] + chart["width"] <= panel["x"] + panel["width"], (chart, panel)
    assert chart["y"] >= panel["y"] and chart["y"] + chart["height"] <= panel["y"] + panel["height"], (chart, panel)
    labels = page.locator("#mail-chart .date-label").all_text_contents()
    assert len(labels) >= 4 and f"{now:%b} {now.day}" in labels, labels
    for label in page.locator("#mail-chart .date-label").all():
        box = label.bounding_box()
        assert chart["x"] <= box["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"], (box, chart)

    page.goto(f"{live_server.url}/admin/mail/moderationitem/")
    page.screenshot(path=str(SCREENSHOTS / "moderation-queue.png"), full_page=True)
    results = _overflow(page, "#changelist .results")
    assert results["scroll"] <= results["client"], results
    window = _overflow(page, "html")
    assert window["scroll"] <= window["client"], window
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert "REASON" in [h.strip().upper() for h in headers], headers
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 4
    text = page.locator("#result_list").inner_text()
    assert "sender is not verified for this agent" in text and "HeaderParseError" in text
