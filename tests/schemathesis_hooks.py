"""Schemathesis hooks for tests/test_schema_live.py (loaded with SCHEMATHESIS_HOOKS).

The schema states every rule the server checks on a request's shape. A few values are valid
only by the server's state or the world, which no schema can say; these strategies supply
them, so that a schema-valid request is a request the server must accept:

- ``format: cursor`` / ``format: event-cursor``: opaque page cursors the server hands out;
- ``format: uri`` (a webhook URL): it must resolve to an address the service may call, so a
  loopback URL (the run allows loopback, as ``make run`` does) that nothing listens on;
- a send's ``attachments`` are ids of uploads this agent completed, and to + cc + bcc hold
  at most MAX_RECIPIENTS addresses together; positive cases are brought within both.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")
django.setup()

import schemathesis  # noqa: E402
from django.conf import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from assmbl.query import cursor_encode  # noqa: E402
from mail.models import Draft, MessageLabel  # noqa: E402
from mail.services import MAX_LABELS  # noqa: E402
from webhooks.events import MAX_WAIT, Cursor  # noqa: E402
from webhooks.models import Endpoint, Event  # noqa: E402

_TIMES = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1), timezones=st.just(dt.UTC))
schemathesis.openapi.format("cursor", st.builds(cursor_encode, _TIMES, st.from_regex(r"\Amsg_[0-9a-z]{1,26}\Z")))
schemathesis.openapi.format(
    "event-cursor", st.builds(lambda seq: Cursor(seq, int(time.time() * 1000)).encode(), st.integers(0, 2**31))
)
# A send time in the next 30 days (with some room on both sides for the run's own duration).
schemathesis.openapi.format(
    "send-at",
    st.integers(3600, 20 * 86400).map(
        lambda ahead: (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead)).isoformat().replace("+00:00", "Z")
    ),
)
# Port 9 (discard): nothing listens, so a delivery attempt fails at once.
schemathesis.openapi.format("uri", st.from_regex(r"\A/[a-z0-9/]{0,30}\Z").map(lambda path: f"http://127.0.0.1:9{path}"))

_SENDS = ("/v1/send", "/v1/messages/{message_id}/reply", "/v1/drafts", "/v1/drafts/{draft_id}")
_DRAFT_SEND = "/v1/drafts/{draft_id}/send"
_REPLAY = "/v1/webhooks/{endpoint_id}/replay"
_LABELS = "/v1/messages/{message_id}/labels"


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    wait = case.query.get("wait") if isinstance(case.query, dict) else None
    if isinstance(wait, int) and not isinstance(wait, bool) and 1 < wait <= MAX_WAIT:
        # A valid wait long-polls that many seconds: keep 0 and 1 (the long-poll path).
        case.query["wait"] = 1
    meta = case.meta
    if meta is not None and meta.generation.mode == GenerationMode.POSITIVE and case.operation.path == _DRAFT_SEND:
        _sendable_draft(case.path_parameters.get("draft_id", ""))
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE or not isinstance(case.body, dict):
        return
    if case.operation.path in _SENDS:
        _within_send_limits(case.body)
    elif case.operation.path == _LABELS:
        _within_label_limit(case.body, case.path_parameters.get("message_id", ""))
    elif case.operation.path == _REPLAY:
        # until must be after since: a relation between two fields, which no schema states.
        since, until = _when(case.body.get("since")), _when(case.body.get("until"))
        if since and until and until <= since:
            del case.body["until"]
        _replayable_event(case.body, case.path_parameters.get("endpoint_id", ""))


def _within_send_limits(body: dict[str, Any]) -> None:
    if body.get("attachments"):
        body["attachments"] = []
    budget = settings.MAX_RECIPIENTS
    for name in ("to", "cc", "bcc"):
        value = body.get(name)
        if isinstance(value, list):
            kept = value[: max(budget, 1 if name == "to" else 0)]
            body[name] = kept if kept or name == "to" else None
            budget -= len(kept)
        elif isinstance(value, str):
            budget -= 1


def _sendable_draft(draft_id: str) -> None:
    """A draft is sent as it stands, and what it holds is state no request states: one
    without recipients or body, or whose send_at has passed, is rightly refused. Make the
    draft a sendable one, as an agent would before sending it."""
    draft = Draft.objects.filter(pk=draft_id).first()
    if draft is None:
        return
    draft.to = draft.to or ["someone@example.com"]
    draft.body = draft.body if draft.body is not None or draft.html is not None else ""
    draft.attachment_ids = []
    if draft.send_at is not None and draft.send_at <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        draft.send_at = None
    budget = settings.MAX_RECIPIENTS
    draft.to = draft.to[:budget]
    draft.cc = draft.cc[: budget - len(draft.to)]
    draft.bcc = draft.bcc[: max(0, budget - len(draft.to) - len(draft.cc))]
    draft.save()


def _within_label_limit(body: dict[str, Any], message_id: str) -> None:
    """At most MAX_LABELS labels on a message afterwards: a rule about the message's
    current labels, which the schema of one request cannot state; read them and keep the
    additions within it."""
    if not isinstance(body.get("add"), list) or not isinstance(body.get("remove", []), list):
        return
    current = set(MessageLabel.objects.filter(message_id=message_id).values_list("name", flat=True))
    kept = current - set(body.get("remove", []))
    room = MAX_LABELS - len(kept)
    additions = []
    for name in body["add"]:
        if name in kept or name in additions:
            additions.append(name)
        elif room > 0:
            additions.append(name)
            room -= 1
    body["add"] = additions


def _replayable_event(body: dict[str, Any], endpoint_id: str) -> None:
    """An event_id must name an event this endpoint covers (its account, agents and types):
    a state no schema states. Otherwise the 404 event_not_found is right, and the stateful
    run (a webhook just created, then replayed) would read it as the webhook missing; so
    such a replay becomes the range form."""
    event_id = body.get("event_id")
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if not isinstance(event_id, str) or endpoint is None:
        return
    events = Event.objects.filter(id=event_id, agent__account_id=endpoint.account_id)
    if not endpoint.all_agents:
        events = events.filter(agent__in=endpoint.agents.all())
    if endpoint.event_types:
        events = events.filter(type__in=endpoint.event_types)
    if not events.exists():
        del body["event_id"]
        body["since"] = "2020-01-01T00:00:00Z"
        body.pop("until", None)


def _when(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
