"""The console in a real browser: Playwright drives Debian's Chromium (never a downloaded
one). A moderator filters the queue, opens hostile HTML that must neither run nor load
anything, releases it, archives another message; the database shows both."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from assmbl.groups import MODERATOR
from mail.models import Message
from tests.mime import build_mail

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


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


def test_a_moderator_reviews_hostile_mail_safely(live_server: Any, browser: Any, tracker: str, owner: Any, deliver: Any) -> None:
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
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/mail/moderationitem/")
    page.click("#changelist-filter >> text=Held for moderation (policy)")
    page.wait_for_url("**disposition__exact=held**")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "moderation-queue.png"), full_page=True)

    page.click("#result_list tbody tr th a")
    page.wait_for_url("**/change/**")
    frame = page.frame_locator("#html-body")
    # nh3 keeps the heading but strips its id, like every attribute it does not allow.
    assert frame.locator("h1").inner_text() == "Hello moderator"
    page.wait_for_timeout(500)
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
