"""A moderator moderates mail but cannot manage tokens or delete agents."""

from __future__ import annotations

from typing import Any

from django.test import Client


def test_a_moderator_can_open_the_message_list_and_the_queue(moderator_client: Client, owner: Any) -> None:
    assert moderator_client.get("/admin/mail/message/").status_code == 200
    assert moderator_client.get("/admin/mail/moderationitem/").status_code == 200


def test_a_moderator_cannot_see_or_manage_api_tokens(moderator_client: Client, owner: Any) -> None:
    assert moderator_client.get("/admin/directory/apitoken/").status_code == 403
    token = owner.agent.tokens.get()
    assert moderator_client.get(f"/admin/directory/apitoken/{token.pk}/change/").status_code == 403


def test_a_moderator_cannot_delete_an_agent(moderator_client: Client, owner: Any) -> None:
    response = moderator_client.post(f"/admin/directory/agent/{owner.agent.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    owner.agent.refresh_from_db()


def test_a_superuser_can_manage_tokens(superuser_client: Client, owner: Any) -> None:
    assert superuser_client.get("/admin/directory/apitoken/").status_code == 200
