"""PATCH /v1/messages/{id}/labels: guide section 7 and the labels row of the failure table."""

from __future__ import annotations

from typing import Any

import pytest

from mail.models import Message, MessageLabel
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code, ids

pytestmark = pytest.mark.django_db


def patch(persona: Any, message_id: str, body: Any) -> Any:
    return persona.client.patch(f"/v1/messages/{message_id}/labels", body, format="json")


def labels(message: Any) -> list[str]:
    return sorted(MessageLabel.objects.filter(message=message).values_list("name", flat=True))


def test_it_adds_and_removes_atomically_and_returns_the_item(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    MessageLabel.objects.create(message=message, name="inbox")
    response = patch(owner, message.id, {"add": ["needs-review", "urgent"], "remove": ["inbox"]})
    assert response.status_code == 200
    assert response.json()["Labels"] == ["needs-review", "urgent"]
    assert response.json()["MessageID"] == message.id
    assert labels(message) == ["needs-review", "urgent"]


def test_it_lets_either_field_be_omitted_or_empty(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    assert patch(owner, message.id, {"add": ["a"]}).json()["Labels"] == ["a"]
    assert patch(owner, message.id, {"remove": ["a"], "add": []}).json()["Labels"] == []
    assert patch(owner, message.id, {}).status_code == 200


def test_adding_a_present_or_removing_an_absent_label_is_a_no_op(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    patch(owner, message.id, {"add": ["a"]})
    response = patch(owner, message.id, {"add": ["a"], "remove": ["zzz"]})
    assert response.status_code == 200 and response.json()["Labels"] == ["a"]


def test_it_lists_by_the_new_label(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    MessageFactory(agent=owner.agent)
    patch(owner, message.id, {"add": ["needs-review"]})
    assert ids(owner.client.get("/v1/inbox?label=needs-review")) == [message.id]


@pytest.mark.parametrize(
    "label",
    ["", " ", "\t\n", "x" * 65, "bad\x00label", "bell\x07", "new\nline", 7, None],
)
def test_it_rejects_an_invalid_label_and_changes_nothing(owner: Any, label: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = patch(owner, message.id, {"add": ["good", label]})
    assert response.status_code == 400
    assert error_code(response) == "invalid_label"
    assert labels(message) == []


def test_it_accepts_64_characters_and_unicode(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = patch(owner, message.id, {"add": ["x" * 64, "café ☕"]})
    assert response.status_code == 200 and len(response.json()["Labels"]) == 2


def test_it_compares_labels_exactly(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    assert patch(owner, message.id, {"add": ["Urgent", "urgent", " urgent"]}).json()["Labels"] == [
        " urgent",
        "Urgent",
        "urgent",
    ]


def test_it_rejects_a_label_in_both_lists(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = patch(owner, message.id, {"add": ["a", "b"], "remove": ["b"]})
    assert response.status_code == 400
    assert error_code(response) == "label_in_add_and_remove"
    assert labels(message) == []


def test_it_allows_20_labels_and_rejects_the_21st_changing_nothing(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    twenty = [f"l{i:02d}" for i in range(20)]
    assert patch(owner, message.id, {"add": twenty}).status_code == 200
    response = patch(owner, message.id, {"add": ["one-more"], "remove": []})
    assert response.status_code == 400
    assert error_code(response) == "too_many_labels"
    assert labels(message) == twenty
    # A swap that stays at 20 is fine: removals count before the limit is checked.
    assert patch(owner, message.id, {"add": ["swap"], "remove": ["l00"]}).status_code == 200


def test_a_patch_that_would_exceed_20_changes_nothing_even_its_removals(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    patch(owner, message.id, {"add": [f"l{i}" for i in range(19)]})
    response = patch(owner, message.id, {"add": ["a", "b", "c"], "remove": ["l0"]})
    assert response.status_code == 400
    assert "l0" in labels(message) and len(labels(message)) == 19


@pytest.mark.parametrize("body", [[], "add", {"add": "urgent"}, {"add": [["x"]]}])
def test_it_rejects_a_malformed_body(owner: Any, body: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = patch(owner, message.id, body)
    assert response.status_code == 400
    assert error_code(response) in {"validation_error", "invalid_label"}


def test_it_rejects_invalid_json(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.generic(
        "PATCH", f"/v1/messages/{message.id}/labels", b"{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_json"


def test_it_returns_404_for_an_unknown_message(owner: Any) -> None:
    response = patch(owner, "msg_nope", {"add": ["a"]})
    assert response.status_code == 404 and error_code(response) == "message_not_found"


def test_the_service_answers_404_for_a_message_deleted_meanwhile(owner: Any) -> None:
    from assmbl.domain import NotFound
    from mail.services import message_labels_patch, message_read_set

    message = MessageFactory(agent=owner.agent)
    Message.objects.filter(pk=message.pk).delete()
    with pytest.raises(NotFound):
        message_labels_patch(message=message, add=["a"])
    with pytest.raises(NotFound):
        message_read_set(message=message, is_read=True)
