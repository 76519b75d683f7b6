"""Outbound awaiting approval in a real browser (Debian's Chromium through Playwright): a
moderator opens the held message, reads who it goes to and what it says, approves one with
a note and rejects another; the database shows one sent and one never sent."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail as outbox

from assmbl.groups import MODERATOR
from directory.models import OutboundPolicy
from mail.models import ApprovalDecision, Message
from mail.sending import Outgoing, message_send
from tests.admin.test_browser import browser  # noqa: F401  (the Chromium fixture)

pytestmark = pytest.mark.browser


def _held(owner: Any, subject: str, body: str) -> Message:
    return message_send(
        agent=owner.agent,
        outgoing=Outgoing(to=["bob@example.com"], cc=["carol@example.com"], subject=subject, body=body),
    )


def _decide(page: Any, live_server: Any, message: Message, button: str, note: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/mail/outboundapproval/")
    page.click(f"#result_list >> text={message.subject}")
    page.wait_for_url("**/change/**")
    expect(page.locator("#extracted-text")).to_contain_text(message.body_preview[:20])
    expect(page.locator("#content-main")).to_contain_text("carol@example.com")
    page.fill("#id_note", note)
    page.click(button)
    page.wait_for_url("**/outboundapproval/")
    expect(page.locator(".messagelist")).to_contain_text(message.id)


def test_a_moderator_approves_one_held_message_and_rejects_another(
    live_server: Any,
    browser: Any,  # noqa: F811
    owner: Any,
    settings: Any,
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboundPolicy.objects.create(agent=owner.agent, approval="always")
    good = _held(owner, "Quarterly report", "Revenue grew 4% this quarter.")
    bad = _held(owner, "Wire the money", "Please wire 10,000 EUR today.")
    user = User.objects.create_user("mod", password="mod-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATOR))

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "mod")
    page.fill("#id_password", "mod-pass-123")
    page.click("input[type=submit]")
    _decide(page, live_server, good, "#approve", "numbers checked")
    _decide(page, live_server, bad, "#reject", "looks like fraud")

    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == Message.Status.SENT
    assert bad.status == Message.Status.REJECTED
    assert [m.subject for m in outbox.outbox] == ["Quarterly report"]
    assert ApprovalDecision.objects.get(message=bad).note == "looks like fraud"
    assert ApprovalDecision.objects.get(message=good).decided_by == "staff:mod"
