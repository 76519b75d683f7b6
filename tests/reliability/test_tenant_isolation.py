"""Item 5: tenant isolation. Every /v1/ operation is found by walking the URL resolver, so
an endpoint added later is covered without editing this file.

- Every operation that takes an id, called by another agent (same account and another
  account) with the owner's ids, answers exactly as it does for an id that does not exist,
  and changes nothing.
- Missing, malformed and revoked tokens get 401 on every operation.
- PATCH bodies carrying fields an agent may not set change nothing.
- List and search never return another agent's row (hypothesis, 200+ examples).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from directory.services import agent_create, token_create, token_revoke
from mail.models import Attachment, Draft, Message, MessageLabel, Suppression
from mail.trust import sender_entry_create
from tests.factories import MessageFactory
from tests.mime import build_mail
from webhooks.models import Endpoint, Event

pytestmark = pytest.mark.django_db
PUBLIC = {"schema", "docs", "attachments/<str:attachment_id>/upload"}  # no token by design
METHODS = ("get", "post", "put", "patch", "delete")


def api_operations() -> list[tuple[str, str]]:
    """(method, route) for every view under /v1/."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif isinstance(p, URLPattern) and route.startswith("v1/"):
                view = getattr(p.callback, "cls", None) or getattr(p.callback, "view_class", None)
                if view is None:
                    continue
                found.extend((m, route[3:]) for m in METHODS if hasattr(view, m))

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


OPERATIONS = api_operations()
BODIES = {
    ("patch", "labels"): {"add": ["x"], "remove": []},
    ("patch", "read"): {"is_read": True},
    ("patch", "archive"): {"archived": True},
    ("post", "reply"): {"body": "hello"},
    ("post", "forward"): {"to": "someone@example.com"},
    ("patch", "<str:endpoint_id>"): {"enabled": False},
    ("post", "replay"): {"since": "2020-01-01T00:00:00Z"},
    ("patch", "<str:agent_id>"): {"display_name": "renamed"},
}


def _body(method: str, route: str) -> dict[str, Any] | None:
    if method in ("get", "delete"):
        return None
    return BODIES.get((method, route.rsplit("/", 1)[-1]), {})


def _call(client: APIClient, method: str, path: str, body: dict[str, Any] | None) -> Any:
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


def _fill(route: str, ids: dict[str, str]) -> str:
    return "/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids[m.group(1)], route)


@pytest.fixture
def world(owner: Any, teammate: Any, stranger: Any, deliver: Any, operator: Any) -> dict[str, Any]:
    """The owner's objects of every kind an id can name, plus 50 messages each."""
    deliver(
        build_mail(to=owner.address, subject="with attachment", attachments=[("a.txt", "text/plain", b"secret")]),
        to=owner.address,
    )
    message = Message.objects.get(agent=owner.agent)
    MessageLabel.objects.create(message=message, name="keep")
    for persona in (owner, teammate):
        MessageFactory.create_batch(50, agent=persona.agent)
    upload = Attachment.objects.create(agent=owner.agent, kind="upload", state="pending", filename="u.bin", size=3)
    endpoint = Endpoint.objects.create(
        account=owner.agent.account,
        created_by=owner.agent,
        url="https://hooks.example.com/x",
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    endpoint.agents.add(owner.agent)
    entry = sender_entry_create(agent=owner.agent, address_or_domain="friend@example.com", action="trust")
    draft = Draft.objects.create(agent=owner.agent, to=["bob@example.com"], subject="draft", body="b")
    Suppression.objects.create(account=owner.agent.account, address="bounced@example.com", reason="bounce")
    return {
        "owner": {
            "message_id": message.id,
            "attachment_id": message.attachments.get().id,
            "thread_id": message.thread_id,
            "endpoint_id": endpoint.id,
            "entry_id": str(entry.pk),
            "agent_id": owner.agent.agent_id,
            "draft_id": draft.id,
            "address": "bounced@example.com",
        },
        "upload_id": upload.id,
        "unknown": {
            k: f"{p}_00000000000000000000000000"
            for k, p in [("message_id", "msg"), ("attachment_id", "att"), ("thread_id", "thr"), ("endpoint_id", "whk")]
        }
        | {
            "entry_id": "999999",
            "agent_id": "nobody-here",
            "draft_id": "drf_00000000000000000000000000",
            "address": "nobody@example.com",
        },
    }


def _snapshot(agent: Any) -> tuple[Any, ...]:
    return (
        list(
            Message.objects.filter(agent=agent)
            .order_by("id")
            .values_list("id", "is_read", "archived", "disposition", "subject")
        ),
        list(MessageLabel.objects.filter(message__agent=agent).order_by("id").values_list("message_id", "name")),
        list(Attachment.objects.filter(agent=agent).order_by("id").values_list("id", "state")),
        list(Endpoint.objects.order_by("id").values_list("id", "enabled", "url")),
        Event.objects.filter(agent=agent).count(),
        list(Draft.objects.filter(agent=agent).order_by("id").values_list("id", "body")),
        list(Suppression.objects.filter(account=agent.account).order_by("id").values_list("address")),
    )


ID_OPERATIONS = [(m, r) for m, r in OPERATIONS if "<" in r and r not in PUBLIC]


def test_the_walk_finds_the_endpoints_that_take_ids() -> None:
    routes = {r for _, r in ID_OPERATIONS}
    for expected in (
        "messages/<str:message_id>",
        "messages/<str:message_id>/archive",
        "threads/<str:thread_id>",
        "webhooks/<str:endpoint_id>",
        "directory/senders/<str:entry_id>",
        "agents/<str:agent_id>",
    ):
        assert expected in routes
    assert len(ID_OPERATIONS) >= 20


@pytest.mark.parametrize(("method", "route"), ID_OPERATIONS, ids=[f"{m.upper()} {r}" for m, r in ID_OPERATIONS])
def test_a_foreign_id_is_indistinguishable_from_an_unknown_one(
    method: str, route: str, world: dict[str, Any], owner: Any, teammate: Any, stranger: Any, account: Any
) -> None:
    if route.startswith("attachments/"):
        world["owner"]["attachment_id"] = world["upload_id"]
    outsiders = [teammate.client, stranger.client]
    # Operator endpoints: the outsider is another account's operator.
    if route.startswith(("agents/", "approvals/", "suppressions/")):
        other = agent_create(agent_id="elsewhere-ops", account=stranger.agent.account)[0]
        op = APIClient()
        op.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(kind='operator', account=other.account).plaintext}")
        outsiders = [op]
    before = _snapshot(owner.agent)
    for client in outsiders:
        foreign = _call(client, method, _fill(route, world["owner"]), _body(method, route))
        unknown = _call(client, method, _fill(route, world["unknown"]), _body(method, route))
        assert foreign.status_code == unknown.status_code, (foreign.status_code, foreign.content)
        assert foreign.status_code in (400, 403, 404, 405)
        assert foreign.content == unknown.content
    assert _snapshot(owner.agent) == before


TOKEN_OPERATIONS = [(m, r) for m, r in OPERATIONS if r not in PUBLIC]


@pytest.mark.parametrize(("method", "route"), TOKEN_OPERATIONS, ids=[f"{m.upper()} {r}" for m, r in TOKEN_OPERATIONS])
def test_missing_malformed_and_revoked_tokens_get_401(
    method: str, route: str, world: dict[str, Any], owner: Any
) -> None:
    revoked = token_create(kind="agent", account=owner.agent.account, agent=owner.agent)
    token_revoke(token=revoked.token)
    path = _fill(route, world["owner"])
    for header in (
        None,
        "Bearer",
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        f"Bearer {revoked.plaintext}",
        f"Token {owner.token}",
    ):
        client = APIClient()
        if header:
            client.credentials(HTTP_AUTHORIZATION=header)
        response = _call(client, method, path, _body(method, route))
        assert response.status_code == 401, (header, response.status_code, response.content[:200])
        assert response.json()["error"]["code"] in {"unauthenticated", "invalid_token"}


@pytest.mark.parametrize("suffix", ["labels", "read", "archive"])
def test_patch_bodies_with_fields_an_agent_may_not_set_change_nothing_else(
    suffix: str, world: dict[str, Any], owner: Any, teammate: Any
) -> None:
    message_id = world["owner"]["message_id"]
    before = (
        Message.objects.filter(pk=message_id).values("agent_id", "storage_key", "sha256", "sender", "subject").get()
    )
    body = {
        **BODIES[("patch", suffix)],
        "agent_id": teammate.agent.agent_id,
        "storage_key": "../../etc/passwd",
        "sha256": "0" * 64,
        "AgentID": teammate.agent.agent_id,
        "Subject": "rewritten",
    }
    response = owner.client.patch(f"/v1/messages/{message_id}/{suffix}", body, format="json")
    assert response.status_code in (200, 400)
    assert (
        Message.objects.filter(pk=message_id).values("agent_id", "storage_key", "sha256", "sender", "subject").get()
        == before
    )


QUERY_WORDS = ["message", "number", "with", "attachment", "1", "2", "example", "%", "_", "\\", "person"]


@hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    q=st.one_of(st.none(), st.sampled_from(QUERY_WORDS), st.text(min_size=1, max_size=8).filter(lambda s: s.strip())),
    label=st.one_of(st.none(), st.sampled_from(["keep", "x"])),
    is_read=st.one_of(st.none(), st.sampled_from(["true", "false"])),
    include_archived=st.one_of(st.none(), st.sampled_from(["true", "false"])),
    verified_only=st.one_of(st.none(), st.sampled_from(["true", "false"])),
    limit=st.integers(1, 100),
)
def test_list_and_search_never_return_a_foreign_row(
    world: dict[str, Any],
    owner: Any,
    q: Any,
    label: Any,
    is_read: Any,
    include_archived: Any,
    verified_only: Any,
    limit: int,
) -> None:
    params = {
        k: v
        for k, v in {
            "q": q,
            "label": label,
            "is_read": is_read,
            "include_archived": include_archived,
            "verified_only": verified_only,
            "limit": limit,
        }.items()
        if v is not None
    }
    for path in ("/v1/inbox", "/v1/sent"):
        response = owner.client.get(path, params if path == "/v1/inbox" else {"limit": limit})
        assert response.status_code in (200, 400)
        if response.status_code == 200:
            assert all(item["AgentID"] == "owner" for item in response.json()["items"])
    count = owner.client.get("/v1/inbox/unread-count")
    assert count.status_code == 200
    assert (
        count.json()["unread_count"]
        == Message.objects.for_agent(owner.agent).in_inbox().unread().not_archived().count()
    )
